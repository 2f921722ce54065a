"""Go `flag`-style options, as locksmith parses them, each with an environment fallback.

* `-name value`, `-name=value`, `--name value`, `--name=value`; a bool is `-name` or `-name=false`.
* Parsing stops at the first non-flag argument (the command) or at `--`.
* A flag not given on the command line comes from the environment, `<PREFIX>_<NAME>` (upper case, `-` ->
  `_`); an explicit flag beats its variable. Environment files (`KEY=value` lines, as systemd's
  EnvironmentFile) are folded in below the real environment by the caller.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .timeparse import format_duration, parse_duration

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class UsageError(Exception):
    """A bad command line or setting: reported with the usage text, exit status 2."""


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"invalid boolean {text!r}")


def _split_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str, "bool": parse_bool, "int": int, "duration": parse_duration, "list": _split_list,
}


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # str | bool | int | duration | list
    default: Any
    help: str
    env: tuple[str, ...] | None = None  # None: the derived <PREFIX>_<NAME>; () : no variable
    aliases: tuple[str, ...] = ()

    def env_names(self, prefix: str) -> tuple[str, ...]:
        if self.env is not None:
            return self.env
        return (f"{prefix}_{self.name.upper().replace('-', '_')}",)


@dataclass
class FlagSet:
    prog: str
    env_prefix: str
    flags: list[Flag]
    usage_head: str = ""
    _by_name: dict[str, Flag] = field(init=False)

    def __post_init__(self) -> None:
        self._by_name = {n: f for f in self.flags for n in (f.name, *f.aliases)}

    def usage(self) -> str:
        lines = [self.usage_head.rstrip(), "", "Flags (each also read from the environment variable shown):"]
        for f in self.flags:
            names = ", ".join(f"-{n}" for n in (f.name, *f.aliases))
            arg = "" if f.kind == "bool" else f" {f.kind}"
            default = f.default
            if f.kind == "duration":
                default = format_duration(default)
            elif f.kind == "list":
                default = ",".join(default)
            elif f.kind == "bool" and default:
                default = "true"
            shown = f" (default {default})" if default not in ("", None, False, []) else ""
            env = " | ".join(f"${e}" for e in f.env_names(self.env_prefix))
            lines.append(f"  {names}{arg}\n        {f.help}{shown}" + (f"  [{env}]" if env else ""))
        return "\n".join(lines) + "\n"

    def parse(self, argv: Sequence[str], environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
        """(values by flag name, the remaining arguments). Raises UsageError; `-h`/`-help` -> SystemExit(0)."""
        given: dict[str, Any] = {}
        args = list(argv)
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                i += 1
                break
            if not arg.startswith("-") or arg == "-":
                break
            name, eq, value = arg.lstrip("-").partition("=")
            if arg.startswith("---") or not name:
                raise UsageError(f"bad flag syntax: {arg}")
            if name in ("h", "help"):
                sys.stdout.write(self.usage())
                raise SystemExit(0)
            flag = self._by_name.get(name)
            if flag is None:
                raise UsageError(f"flag provided but not defined: -{name}")
            if not eq and flag.kind != "bool":
                if i + 1 >= len(args):
                    raise UsageError(f"flag needs an argument: -{name}")
                i += 1
                value = args[i]
            elif not eq:
                value = "true"
            given[flag.name] = self._convert(flag, value, f"-{name}", given.get(flag.name))
            i += 1
        values: dict[str, Any] = {}
        for flag in self.flags:
            if flag.name in given:
                values[flag.name] = given[flag.name]
                continue
            values[flag.name] = flag.default
            for env in flag.env_names(self.env_prefix):
                if environ.get(env, "") != "":
                    values[flag.name] = self._convert(flag, environ[env], f"${env}", None)
                    break
        return values, args[i:]

    @staticmethod
    def _convert(flag: Flag, text: str, source: str, previous: Any) -> Any:
        try:
            value = _PARSERS[flag.kind](text)
        except ValueError as e:
            raise UsageError(f"invalid value {text!r} for {source}: {e}") from e
        if flag.kind == "list" and previous:
            return [*previous, *value]  # a repeated list flag accumulates
        return value


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines as systemd's EnvironmentFile reads them (comments, blank lines and quotes allowed)."""
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            continue
        value = value.strip()
        if value[:1] in ("'", '"'):
            try:
                parts = shlex.split(value)
                value = parts[0] if parts else ""
            except ValueError:
                pass
        out[key.strip()] = value
    return out
