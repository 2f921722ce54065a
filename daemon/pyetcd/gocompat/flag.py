"""Go's flag package: how a FlagSet scans a command line, and how its int, bool and duration values parse.

Scanning (FlagSet.Parse): `-f`, `--f`, `-f=v`, `-f v` (the next word is taken even if it starts with "-");
a bool flag takes a value only as `-f=v`. The flags end at the first word that is not one ("-" alone
is not), or at `--`, which is dropped. `-h`/`-help`, when no such flag is defined, ask for help. Errors
are Go's words: `bad flag syntax: ---f`, `flag provided but not defined: -x`, `flag needs an argument: -f`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from . import duration, strconv

T = TypeVar("T")

PARSE_ERROR = "parse error"  # flag's errParse
RANGE_ERROR = "value out of range"  # flag's errRange


class UsageError(Exception):
    """A command line the parser refuses; str() is the message."""


class HelpRequested(Exception):
    """-h or -help, not defined as a flag."""


class FlagScanner:
    """Go's FlagSet.parseOne, one flag at a time. Iterating yields (name as given, value), the value None for
    a bool flag given without `=`; the caller sets each value before the next word is scanned (so errors come
    in Go's order). Afterwards `rest` holds the words after the flags.

    `is_bool(name)`: None if no flag has that name, else whether it is a bool flag."""

    def __init__(self, words: Sequence[str], is_bool: Callable[[str], bool | None]) -> None:
        self.rest = list(words)
        self._is_bool = is_bool

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        args = self.rest
        while args:
            word = args[0]
            if len(word) < 2 or word[0] != "-":
                return
            if word == "--":
                args.pop(0)
                return
            name = word[2:] if word[1] == "-" else word[1:]
            if not name or name[0] in "-=":
                raise UsageError(f"bad flag syntax: {word}")
            args.pop(0)
            name, has_value, value = name.partition("=")
            is_bool = self._is_bool(name)
            if is_bool is None:
                if name in ("help", "h"):
                    raise HelpRequested()
                raise UsageError(f"flag provided but not defined: -{name}")
            if not is_bool and not has_value:
                if not args:
                    raise UsageError(f"flag needs an argument: -{name}")
                value, has_value = args.pop(0), "="
            yield name, value if has_value else None


def bool_value(text: str) -> bool:
    """boolValue.Set."""
    return _parse_error_if_bad(strconv.parse_bool, text)


def int_value(text: str) -> int:
    """intValue.Set: strconv.ParseInt(text, 0, 64), its errors as the flag package words them."""
    try:
        return strconv.parse_int(text)
    except strconv.NumError as e:
        raise ValueError(RANGE_ERROR if e.reason == strconv.RANGE else PARSE_ERROR) from None


def duration_value(text: str) -> float:
    """durationValue.Set, in seconds."""
    return _parse_error_if_bad(duration.parse_duration, text)


def _parse_error_if_bad(parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except ValueError:
        raise ValueError(PARSE_ERROR) from None
