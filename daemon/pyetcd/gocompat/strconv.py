"""Go's strconv: Quote, and number and boolean parsing with its errors (NumError: `strconv.Atoi: parsing "x": invalid
syntax`). Only characters Go accepts count: no spaces, no Unicode digits."""

from __future__ import annotations

SYNTAX = "invalid syntax"
RANGE = "value out of range"
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_DIGIT_VALUES = {c: i for i, c in enumerate("0123456789abcdefghijklmnopqrstuvwxyz")}


class NumError(ValueError):
    """strconv.NumError: `reason` is SYNTAX or RANGE."""

    def __init__(self, func: str, num: str, reason: str) -> None:
        super().__init__(func, num, reason)
        self.func, self.num, self.reason = func, num, reason

    def __str__(self) -> str:
        return f"strconv.{self.func}: parsing {quote(self.num)}: {self.reason}"


def parse_bool(text: str) -> bool:
    """strconv.ParseBool: 1, t, T, TRUE, true, True and their false counterparts."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise NumError("ParseBool", text, SYNTAX)


def _underscores_ok(s: str) -> bool:
    """Go's underscoreOK: `_` only between digits, or between a base prefix and a digit."""
    saw = "^"
    s = s[1:] if s[:1] in ("+", "-") else s
    i, hex_digits = 0, False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hex_digits = 2, "0", s[1].lower() == "x"
    for ch in s[i:]:
        if "0" <= ch <= "9" or hex_digits and "a" <= ch.lower() <= "f":
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def _parse_uint(s: str, base: int, func: str, num: str) -> int:
    """ParseUint's digits loop for a 64-bit value; NumError as ParseInt reports it."""
    s0, base0 = s, base == 0
    if base0:
        base = 10
        if s[:1] == "0":
            if len(s) >= 3 and s[1].lower() in "box":
                base, s = {"b": 2, "o": 8, "x": 16}[s[1].lower()], s[2:]
            else:
                base, s = 8, s[1:]
    n, underscores = 0, False
    for ch in s:
        if ch == "_" and base0:
            underscores = True
            continue
        digit = _DIGIT_VALUES.get(ch.lower() if ch.isascii() else "", 99)
        if digit >= base:
            raise NumError(func, num, SYNTAX)
        n = n * base + digit
        if n >= 1 << 64:  # Go stops at the first digit that overflows, before any later bad byte
            raise NumError(func, num, RANGE)
    if underscores and not _underscores_ok(s0):
        raise NumError(func, num, SYNTAX)
    return n


def parse_int(text: str, base: int = 0, func: str = "ParseInt") -> int:
    """strconv.ParseInt(text, base, 64). Base 0 reads Go's prefixes (0x, 0o, 0b, a leading 0 for octal)
    and allows `_` between digits."""
    if not text:
        raise NumError(func, text, SYNTAX)
    negative = text[0] == "-"
    digits = text[1:] if text[0] in "+-" else text
    if not digits:
        raise NumError(func, text, SYNTAX)
    try:
        value = _parse_uint(digits, base, func, text)
    except NumError as e:
        if e.reason != RANGE:
            raise
        value = 1 << 64
    if value > (1 << 63) - (0 if negative else 1):
        raise NumError(func, text, RANGE)
    return -value if negative else value


def atoi(text: str) -> int:
    """strconv.Atoi for a 64-bit int: decimal only, `strconv.Atoi: ...` errors."""
    return parse_int(text, 10, "Atoi")


_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                  "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def quote(text: str) -> str:
    """Go's strconv.Quote (bytes that were not UTF-8 arrive as surrogate escapes and print as \\xNN)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable() and code < 0x10000:
            out.append(f"\\u{code:04x}")
        elif not ch.isprintable():
            out.append(f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
