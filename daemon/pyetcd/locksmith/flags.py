"""Go `flag`-style options, as locksmith parses them, each with an environment fallback.

* `-name value`, `-name=value`, `--name value`, `--name=value`; a bool is `-name` or `-name=false`.
* Parsing stops at the first non-flag argument (the command) or at `--` (the scanning is Go's FlagSet's,
  from pyetcd.gocompat.flag; so are the bool and int values and the error texts).
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

from ..gocompat import flag as goflag
from ..gocompat.duration import format_duration, parse_duration
from ..gocompat.flag import UsageError as UsageError  # a bad command line or setting: exit status 2
from ..gocompat.strconv import parse_bool as parse_bool


def _split_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


# bool and int as Go's flag package parses them; a duration's error keeps the time package's detail.
# Spaces around a number or a duration are allowed, as they always were here.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str, "bool": goflag.bool_value, "int": lambda t: goflag.int_value(t.strip()),
    "duration": lambda t: parse_duration(t.strip()), "list": _split_list,
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
        scanner = goflag.FlagScanner(argv, lambda n: None if (f := self._by_name.get(n)) is None else f.kind == "bool")
        try:
            for name, value in scanner:
                flag = self._by_name[name]
                given[flag.name] = self._convert(flag, "true" if value is None else value, f"-{name}",
                                                 given.get(flag.name))
        except goflag.HelpRequested:
            sys.stdout.write(self.usage())
            raise SystemExit(0) from None
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
        return values, scanner.rest

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
