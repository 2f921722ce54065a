"""Command-line parsing and help text the way etcdctl v2 (urfave/cli v1 over Go's flag package) does it.

Theory of operation:
* Global flags are parsed with Go's flag rules and stop at the first non-flag word (the command), so
  `pyetcdctl get /a --endpoints X` is a usage error, as with etcdctl.
* A command's words are first reordered as urfave/cli does (its own flags, with the word after a flag,
  move to the front; a `--` ends flag parsing and is dropped), then parsed with Go's rules. Hence
  `get /a --sort` works, `set /k -x` sets the value "-x", and `set -x /k v` is an unknown flag.
* Go's flag rules: `-f`, `--f`, `-f=v`, `-f v` (the next word is taken even if it starts with "-"),
  `-b=false` for booleans; ints accept Go's base prefixes; durations are Go's ("2s", "1m30s", "0").
* Help text follows urfave's templates: names joined by ", ", a value placeholder, columns aligned two
  spaces past the widest entry, defaults appended as "(default: ...)".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

BOOL, STRING, INT, DURATION = "bool", "string", "int", "duration"
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class UsageError(Exception):
    """A word the parser refused; the message is Go's flag package's."""


class HelpRequested(Exception):
    pass


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


def parse_go_int(text: str) -> int:
    """strconv.ParseInt(text, 0, 64): optional sign, 0x/0o/0b prefixes, a leading 0 for octal, '_' as in Go."""
    octal = re.fullmatch(r"([+-]?)0(_?[0-7]+(?:_[0-7]+)*)", text)
    try:
        if text != text.strip():
            raise ValueError
        value = int(f"{octal.group(1)}0o{octal.group(2)}" if octal else text, 0)
    except ValueError:
        raise ValueError("parse error") from None
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError("value out of range")
    return value


def parse_go_duration(text: str) -> float:
    """time.ParseDuration, in seconds."""
    s = text
    sign = -1.0 if s.startswith("-") else 1.0
    s = s[1:] if s[:1] in "+-" else s
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    return sign * total


def format_go_duration(seconds: float) -> str:
    """time.Duration.String() for the whole-second and millisecond defaults shown in help."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    out = f"{h}h" if h else ""
    out += f"{m}m" if h or m else ""
    return out + f"{s}s"


def _convert(flag: Flag, text: str) -> Any:
    if flag.kind == STRING:
        return text
    if flag.kind == INT:
        return parse_go_int(text)
    if flag.kind == DURATION:
        try:
            return parse_go_duration(text)
        except ValueError:
            raise ValueError("parse error") from None
    raise AssertionError(flag.kind)


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
    args = list(words)
    while args:
        word = args[0]
        if len(word) < 2 or word[0] != "-":
            break
        dashes = 2 if word[1] == "-" else 1
        if word == "--":
            args.pop(0)
            break
        name = word[dashes:]
        if not name or name[0] in "-=":
            raise UsageError(f"bad flag syntax: {word}")
        args.pop(0)
        name, has_value, value = name.partition("=")
        flag = _lookup(flags, name)
        if flag is None:
            if name in ("help", "h"):
                raise HelpRequested()
            raise UsageError(f"flag provided but not defined: -{name}")
        if flag.kind == BOOL:
            if has_value:
                if value not in _TRUE | _FALSE:
                    raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')
                values[flag.name] = value in _TRUE
            else:
                values[flag.name] = True
            continue
        if not has_value:
            if not args:
                raise UsageError(f"flag needs an argument: -{name}")
            value = args.pop(0)
        try:
            values[flag.name] = _convert(flag, value)
        except ValueError as e:
            raise UsageError(f'invalid value "{value}" for flag -{name}: {e}') from None
    return values, args


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
        default = f" (default: {format_go_duration(flag.initial())})"
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
