"""Go's time.Duration text form, both ways: locksmith's settings and messages use it ("1h30m", "5m0s")."""

from __future__ import annotations

import re

_UNITS_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000, "s": 10**9,
             "m": 60 * 10**9, "h": 3600 * 10**9}
_PART = re.compile(r"(\d*)(?:\.(\d*))?([a-zA-Z\u00b5\u03bc]+)")


def parse_duration(text: str) -> float:
    """Seconds from a Go duration such as `1h30m`, `1.5s`, `300ms` or `0` (Go's time.ParseDuration)."""
    s = text.strip()
    orig = s
    sign = 1
    if s and s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {orig!r}")
    total_ns = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None or (not m.group(1) and not m.group(2)):
            raise ValueError(f"invalid duration {orig!r}")
        unit = _UNITS_NS.get(m.group(3))
        if unit is None:
            raise ValueError(f"unknown unit {m.group(3)!r} in duration {orig!r}")
        whole = int(m.group(1) or "0")
        frac = m.group(2) or ""
        total_ns += whole * unit + (int(frac) * unit / 10 ** len(frac) if frac else 0)
        pos = m.end()
    return sign * total_ns / 1e9


def format_duration(seconds: float) -> str:
    """Go's Duration.String(): `0s`, `100ms`, `10s`, `5m0s`, `1h30m0s`, `1.5s`."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("\u00b5s", 10**3), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + _trim(rest / 1e9) + "s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"
