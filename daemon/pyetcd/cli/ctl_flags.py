"""Command-line parsing and help text the way etcdctl v2 (urfave/cli v1 over Go's flag package) does it.

Theory of operation:
* Global flags are parsed with Go's flag rules and stop at the first non-flag word (the command), so
  `pyetcdctl get /a --endpoints X` is a usage error, as with etcdctl.
* A command's words are first reordered as urfave/cli does (its own flags, with the word after a flag,
  move to the front; a `--` ends flag parsing and is dropped), then parsed with Go's rules. Hence
  `get /a --sort` works, `set /k -x` sets the value "-x", and `set -x /k v` is an unknown flag.
* Go's flag rules (scanning and value parsing from pyetcd.gocompat.flag): `-f`, `--f`, `-f=v`, `-f v`
  (the next word is taken even if it starts with "-"), `-b=false` for booleans; ints accept Go's base
  prefixes; durations are Go's ("2s", "1m30s", "0").
* Help text follows urfave's templates: names joined by ", ", a value placeholder, columns aligned two
  spaces past the widest entry, defaults appended as "(default: ...)".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..gocompat import flag as goflag
from ..gocompat.duration import format_duration
from ..gocompat.flag import HelpRequested as HelpRequested
from ..gocompat.flag import UsageError as UsageError

BOOL, STRING, INT, DURATION = "bool", "string", "int", "duration"
SLICE = "slice"  # urfave's StringSliceFlag: repeatable, each use appends one value (no comma splitting)


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]  # the first is the canonical name
    kind: str
    usage: str
    default: Any = None

    @property
    def name(self) -> str:
        return self.names[0]

    def initial(self) -> Any:
        if self.default is not None:
            return self.default
        if self.kind == SLICE:
            return []
        return {BOOL: False, STRING: "", INT: 0, DURATION: 0.0}[self.kind]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    args_usage: str = ""
    description: str = ""
    flags: tuple[Flag, ...] = ()
    subcommands: tuple[Command, ...] = ()
    aliases: tuple[str, ...] = ()
    run: Callable[..., int] | None = field(default=None, compare=False)

    def find(self, name: str) -> Command | None:
        for c in self.subcommands:
            if name == c.name or name in c.aliases:
                return c
        return None


# ---- values ------------------------------------------------------------------------------------

_VALUE: dict[str, Callable[[str], Any]] = {STRING: str, BOOL: goflag.bool_value, INT: goflag.int_value,
                                          DURATION: goflag.duration_value, SLICE: str}


# ---- parsing -----------------------------------------------------------------------------------


def _lookup(flags: Sequence[Flag], name: str) -> Flag | None:
    for f in flags:
        if name in f.names:
            return f
    return None


def _is_flag_word(flags: Sequence[Flag], word: str) -> bool:
    """urfave's argIsFlag: a word naming one of the command's flags (`-x`, `--x`, `--x=v`)."""
    if word in ("-", "--") or not word.startswith("-"):
        return False
    name = word[2:] if word.startswith("--") else word[1:]
    return _lookup(flags, name.split("=", 1)[0]) is not None


def reorder(flags: Sequence[Flag], words: Sequence[str]) -> list[str]:
    """urfave's reorderArgs: flags (and the word after each) first, then the rest; `--` moves to the
    front of the rest so Go's parser drops it there."""
    moved: list[str] = []
    rest: list[str] = []
    value_may_follow = False
    for i, word in enumerate(words):
        if value_may_follow and not _is_flag_word(flags, word):
            value_may_follow = False
            moved.append(word)
        elif word == "--":
            rest = ["--", *rest, *words[i + 1:]]
            break
        elif _is_flag_word(flags, word):
            moved.append(word)
            value_may_follow = "=" not in word
        else:
            rest.append(word)
    return moved + rest


def parse(flags: Sequence[Flag], words: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Go's FlagSet.Parse. Returns ({canonical name: value}, positional words). `-h`/`--help` raise
    HelpRequested; anything wrong raises UsageError with Go's message."""
    values = {f.name: f.initial() for f in flags}
    scanner = goflag.FlagScanner(words, lambda name: None if (f := _lookup(flags, name)) is None else f.kind == BOOL)
    for name, value in scanner:
        flag = _lookup(flags, name)
        assert flag is not None
        if value is None:
            values[flag.name] = True
            continue
        if flag.kind == SLICE:
            values[flag.name] = [*values[flag.name], value]
            continue
        try:
            values[flag.name] = _VALUE[flag.kind](value)
        except ValueError as e:
            if flag.kind == BOOL:
                raise UsageError(f'invalid boolean value "{value}" for -{name}: {e}') from None
            raise UsageError(f'invalid value "{value}" for flag -{name}: {e}') from None
    return values, scanner.rest


# ---- help --------------------------------------------------------------------------------------


def _columns(rows: list[tuple[str, str]], indent: str = "   ") -> list[str]:
    width = max((len(left) for left, _ in rows), default=0) + 2
    return [f"{indent}{left.ljust(width)}{right}".rstrip() if right else f"{indent}{left}" for left, right in rows]


def flag_row(flag: Flag) -> tuple[str, str]:
    usage = flag.usage
    placeholder = "value"
    m = re.search(r"`([^`]*)`", usage)
    if m:  # urfave: the first `quoted` word of the usage names the placeholder
        placeholder = m.group(1)
        usage = usage[:m.start()] + placeholder + usage[m.end():]
    names = []
    for n in flag.names:
        text = ("-" if len(n) == 1 else "--") + n
        names.append(text if flag.kind == BOOL else f"{text} {placeholder}")
    default = ""
    if flag.kind == INT:
        default = f" (default: {flag.initial()})"
    elif flag.kind == DURATION:
        default = f" (default: {format_duration(flag.initial())})"
    elif flag.kind == STRING and flag.default:
        default = f' (default: "{flag.default}")'
    return ", ".join(names), usage + default


def command_help(prog: str, cmd: Command) -> str:
    """urfave's CommandHelpTemplate."""
    out = [f"NAME:\n   {prog} - {cmd.usage}\n", "USAGE:"]
    options = " [command options]" if cmd.flags else ""
    out.append(f"   {prog}{options} {cmd.args_usage or '[arguments...]'}")
    if cmd.description:
        out.append(f"\nDESCRIPTION:\n   {cmd.description}")
    text = "\n".join(out) + "\n"
    if cmd.flags:
        text += "\nOPTIONS:\n" + "".join(line + "\n" for line in _columns([flag_row(f) for f in cmd.flags])) + "   \n"
    return text


def subcommands_help(prog: str, cmd: Command) -> str:
    """urfave's SubcommandHelpTemplate (a command with subcommands, run bare)."""
    rows = [(", ".join((c.name, *c.aliases)), c.usage) for c in cmd.subcommands]
    return (f"NAME:\n   {prog} - {cmd.usage}\n\nUSAGE:\n   {prog} command [command options] [arguments...]\n\n"
            "COMMANDS:\n" + "".join(line + "\n" for line in _columns(rows))
            + "\nOPTIONS:\n" + "".join(line + "\n" for line in _columns([("--help, -h", "show help")])) + "   \n")


def app_help(prog: str, usage: str, version: str, commands: Sequence[Command], flags: Sequence[Flag]) -> str:
    """urfave's AppHelpTemplate."""
    rows = [(", ".join((c.name, *c.aliases)), c.usage) for c in commands]
    return (f"NAME:\n   {prog} - {usage}\n\nUSAGE:\n   {prog} [global options] command [command options] "
            f"[arguments...]\n\nVERSION:\n   {version}\n\nCOMMANDS:\n" + "".join(line + "\n" for line in _columns(rows))
            + "\nGLOBAL OPTIONS:\n" + "".join(line + "\n" for line in _columns([flag_row(f) for f in flags])))
