"""Go's time.Duration as text, both ways: time.ParseDuration and Duration.String.

Go keeps a duration as int64 nanoseconds; so do the `_ns` functions here. The others take and give float
seconds (what the callers count in) and go through whole nanoseconds.

Parsing follows Go's rules exactly: an optional sign, then one or more `<number><unit>` parts, a number
being digits with an optional fraction ("1.5", "1.", ".5"), a unit one of ns, us, µs (U+00B5), μs (U+03BC),
ms, s, m, h; "0" alone needs no unit; no spaces anywhere. Errors carry Go's words:
`time: invalid duration "x"`, `time: missing unit in duration "1"`, `time: unknown unit "d" in duration "1d"`.
"""

from __future__ import annotations

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
_UNITS = {"ns": NANOSECOND, "us": MICROSECOND, "\u00b5s": MICROSECOND, "\u03bcs": MICROSECOND,
          "ms": MILLISECOND, "s": SECOND, "m": MINUTE, "h": HOUR}
_DIGITS = "0123456789"
_MAX = 1 << 63  # |int64 min|; the largest positive duration is one less


def _quote(text: str) -> str:
    """The time package's own quote: ASCII as is (with \\ before " and \\), other bytes as \\xNN."""
    out = ['"']
    for ch in text:
        if ord(ch) < 0x20 or ord(ch) >= 0x80:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape"))
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def _leading_digits(s: str) -> int:
    i = 0
    while i < len(s) and s[i] in _DIGITS:
        i += 1
    return i


def parse_duration_ns(text: str) -> int:
    """time.ParseDuration: nanoseconds. ValueError with Go's message."""
    invalid = ValueError(f"time: invalid duration {_quote(text)}")
    s = text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if s[0] != "." and s[0] not in _DIGITS:
            raise invalid
        n = _leading_digits(s)
        digits = s[:n].lstrip("0")
        if len(digits) > 19 or int(digits or "0") > _MAX:  # Go's leadingInt overflows
            raise invalid
        whole = int(digits or "0")
        pre, s = n > 0, s[n:]
        frac, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            n = _leading_digits(s)
            post = n > 0
            for ch in s[:n]:  # Go's leadingFraction: stops gaining precision before it would overflow
                if frac > (_MAX - 1) // 10:
                    break
                nxt = frac * 10 + ord(ch) - 48
                if nxt > _MAX:
                    break
                frac, scale = nxt, scale * 10
            s = s[n:]
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and s[i] != "." and s[i] not in _DIGITS:
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {_quote(text)}")
        unit_text, s = s[:i], s[i:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise ValueError(f"time: unknown unit {_quote(unit_text)} in duration {_quote(text)}")
        if whole > _MAX // unit:
            raise invalid
        value = whole * unit
        if frac > 0:
            value += int(float(frac) * (float(unit) / scale))  # float64, as Go (exact to the ns for hours)
            if value > _MAX:
                raise invalid
        total += value
        if total > _MAX:
            raise invalid
    if neg:
        return -total
    if total > _MAX - 1:
        raise invalid
    return total


def parse_duration(text: str) -> float:
    """time.ParseDuration in seconds: `1h30m` -> 5400.0, `300ms` -> 0.3, `0` -> 0.0."""
    return parse_duration_ns(text) / SECOND


def _fraction(value: int, digits: int) -> tuple[int, str]:
    """Go's fmtFrac: (value // 10**digits, "." and the fraction's digits without trailing zeros, or "")."""
    whole, rest = divmod(value, 10**digits)
    text = f"{rest:0{digits}d}".rstrip("0") if digits else ""
    return whole, "." + text if text else ""


def format_duration_ns(ns: int) -> str:
    """Duration.String: `0s`, `1.5µs`, `300ms`, `1.5s`, `1m30s`, `2h0m0s`, `-20s`."""
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u == 0:
        return "0s"
    if u < SECOND:
        if u < MICROSECOND:
            digits, unit = 0, "ns"
        elif u < MILLISECOND:
            digits, unit = 3, "\u00b5s"
        else:
            digits, unit = 6, "ms"
        whole, frac = _fraction(u, digits)
        return f"{sign}{whole}{frac}{unit}"
    secs, frac = _fraction(u, 9)
    minutes, secs = divmod(secs, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}{frac}s"
    if minutes:
        return f"{sign}{minutes}m{secs}{frac}s"
    return f"{sign}{secs}{frac}s"


def format_duration(seconds: float) -> str:
    """Duration.String of `seconds` (rounded to whole nanoseconds): `0s`, `100ms`, `5m0s`, `1h30m0s`."""
    return format_duration_ns(round(seconds * SECOND))
