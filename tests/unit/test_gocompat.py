"""pyetcd.gocompat against Go's own test tables: time (ParseDuration, Duration.String), strconv (ParseBool,
ParseInt, Atoi) and the flag package's scanning, from the Go sources' *_test.go files."""

from __future__ import annotations

import pytest
from pyetcd.gocompat import flag, strconv
from pyetcd.gocompat.duration import (
    HOUR,
    MICROSECOND,
    MILLISECOND,
    MINUTE,
    NANOSECOND,
    SECOND,
    format_duration,
    format_duration_ns,
    parse_duration,
    parse_duration_ns,
)

# ---- time.ParseDuration (time_test.go parseDurationTests) ----------------------------------------

PARSE_DURATION = [
    ("0", 0), ("5s", 5 * SECOND), ("30s", 30 * SECOND), ("1478s", 1478 * SECOND),
    ("-5s", -5 * SECOND), ("+5s", 5 * SECOND), ("-0", 0), ("+0", 0),
    ("5.0s", 5 * SECOND), ("5.6s", 5 * SECOND + 600 * MILLISECOND), ("5.s", 5 * SECOND), (".5s", 500 * MILLISECOND),
    ("1.0s", SECOND), ("1.00s", SECOND), ("1.004s", SECOND + 4 * MILLISECOND), ("1.0040s", SECOND + 4 * MILLISECOND),
    ("100.00100s", 100 * SECOND + MILLISECOND),
    ("10ns", 10 * NANOSECOND), ("11us", 11 * MICROSECOND), ("12\u00b5s", 12 * MICROSECOND),
    ("12\u03bcs", 12 * MICROSECOND), ("13ms", 13 * MILLISECOND), ("14s", 14 * SECOND), ("15m", 15 * MINUTE),
    ("16h", 16 * HOUR),
    ("3h30m", 3 * HOUR + 30 * MINUTE), ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MILLISECOND),
    ("-2m3.4s", -(2 * MINUTE + 3 * SECOND + 400 * MILLISECOND)),
    ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5 * MICROSECOND + 6 * NANOSECOND),
    ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MILLISECOND),
    ("52763797000ns", 52763797000), ("0.3333333333333333333h", 20 * MINUTE),
    ("9007199254740993ns", (1 << 53) + 1),
    ("9223372036854775807ns", (1 << 63) - 1), ("9223372036854775.807us", (1 << 63) - 1),
    ("9223372036s854ms775us807ns", (1 << 63) - 1),
    ("-9223372036854775808ns", -1 << 63), ("-9223372036854775.808us", -1 << 63),
    ("-9223372036s854ms775us808ns", -1 << 63), ("-2562047h47m16.854775808s", -1 << 63),
    ("0.100000000000000000000h", 6 * MINUTE),
    ("0.830103483285477580700h", 49 * MINUTE + 48 * SECOND + 372539827),
    # pyetcd's callers' own examples
    ("1h30m", 90 * MINUTE), ("2h45m10s", 2 * HOUR + 45 * MINUTE + 10 * SECOND), ("1h0m0s", HOUR),
    (".5h", 30 * MINUTE), ("1.5h", 90 * MINUTE), ("-1m", -MINUTE), ("300ms", 300 * MILLISECOND),
]


@pytest.mark.parametrize(("text", "ns"), PARSE_DURATION)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns
    assert parse_duration(text) == ns / SECOND


def _bytes(raw: bytes) -> str:
    """A Go string that is not UTF-8, as Python carries it."""
    return raw.decode("utf-8", "surrogateescape")


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'), ("3", 'time: missing unit in duration "3"'),
    ("1", 'time: missing unit in duration "1"'), ("-", 'time: invalid duration "-"'),
    ("s", 'time: invalid duration "s"'), (".", 'time: invalid duration "."'), ("-.", 'time: invalid duration "-."'),
    (".s", 'time: invalid duration ".s"'), ("+.s", 'time: invalid duration "+.s"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'), ("1x", 'time: unknown unit "x" in duration "1x"'),
    ("x", 'time: invalid duration "x"'), ("1h30", 'time: missing unit in duration "1h30"'),
    ("2 s", 'time: unknown unit " s" in duration "2 s"'), (" 1s", 'time: invalid duration " 1s"'),
    ("--1s", 'time: invalid duration "--1s"'),
    (_bytes(b"\x85\x85"), r'time: invalid duration "\x85\x85"'),
    (_bytes(b"\xffff"), r'time: invalid duration "\xffff"'),
    (_bytes(b"hello \xffff world"), r'time: invalid duration "hello \xffff world"'),
    ("\ufffd", r'time: invalid duration "\xef\xbf\xbd"'),
    ("1\u00b5x", r'time: unknown unit "\xc2\xb5x" in duration "1\xc2\xb5x"'),
    ("9223372036854775810ns", 'time: invalid duration "9223372036854775810ns"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
    ("9223372036854776us", 'time: invalid duration "9223372036854776us"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ("9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'),
    ("9223372036854ms775us808ns", 'time: invalid duration "9223372036854ms775us808ns"'),
    ("1" * 5000 + "s", f'time: invalid duration "{"1" * 5000}s"'),
])
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration_ns(text)
    assert str(info.value) == message


# ---- Duration.String (time_test.go durationTests) --------------------------------------------------


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (1, "1ns"), (1100, "1.1\u00b5s"), (1500, "1.5\u00b5s"), (2200 * MICROSECOND, "2.2ms"),
    (3300 * MILLISECOND, "3.3s"), (4 * MINUTE + 5 * SECOND, "4m5s"), (4 * MINUTE + 5001 * MILLISECOND, "4m5.001s"),
    (5 * HOUR + 6 * MINUTE + 7001 * MILLISECOND, "5h6m7.001s"), (8 * MINUTE + 1, "8m0.000000001s"),
    ((1 << 63) - 1, "2562047h47m16.854775807s"), (-1 << 63, "-2562047h47m16.854775808s"),
    (300 * MILLISECOND, "300ms"), (1500 * MILLISECOND, "1.5s"), (90 * SECOND, "1m30s"), (2 * HOUR, "2h0m0s"),
    (-20 * SECOND, "-20s"), (-1500, "-1.5\u00b5s"), (140678793963, "2m20.678793963s"),
])
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration_ns(ns) == text
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize(("secs", "text"), [(0, "0s"), (10, "10s"), (300, "5m0s"), (5400, "1h30m0s"), (0.1, "100ms"),
                                            (1.5, "1.5s"), (604800, "168h0m0s"), (-20, "-20s"), (2, "2s")])
def test_format_duration_of_seconds(secs: float, text: str) -> None:
    assert format_duration(secs) == text


# ---- strconv (atob_test.go, atoi_test.go) ------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("0", False), ("f", False), ("F", False), ("FALSE", False),
                                             ("false", False), ("False", False), ("1", True), ("t", True),
                                             ("T", True), ("TRUE", True), ("true", True), ("True", True)])
def test_parse_bool(text: str, value: bool) -> None:
    assert strconv.parse_bool(text) is value


@pytest.mark.parametrize("text", ["", "asdf", "yes", "tRUE", " true", "2"])
def test_parse_bool_errors(text: str) -> None:
    with pytest.raises(ValueError) as info:
        strconv.parse_bool(text)
    assert str(info.value) == f'strconv.ParseBool: parsing "{text}": invalid syntax'


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("-0", 0), ("1", 1), ("-1", -1), ("12345", 12345), ("-12345", -12345), ("012345", 0o12345),
    ("-012345", -0o12345), ("0x12345", 0x12345), ("-0X12345", -0x12345), ("98765432100", 98765432100),
    ("-98765432100", -98765432100), ("9223372036854775807", (1 << 63) - 1), ("-9223372036854775807", -(1 << 63) + 1),
    ("-9223372036854775808", -1 << 63), ("1_2_3_4_5", 12345), ("-1_2_3_4_5", -12345), ("0x_1_2_3_4_5", 0x12345),
    ("-0x_1_2_3_4_5", -0x12345), ("0_1_2_3_4_5", 0o12345), ("0b11", 3), ("0o17", 15), ("010", 8), ("+5", 5),
])
def test_parse_int_base_0(text: str, value: int) -> None:
    assert strconv.parse_int(text) == value


@pytest.mark.parametrize(("text", "reason"), [
    ("", strconv.SYNTAX), ("-", strconv.SYNTAX), ("12345x", strconv.SYNTAX), ("-12345x", strconv.SYNTAX),
    ("9223372036854775808", strconv.RANGE), ("9223372036854775809", strconv.RANGE),
    ("-9223372036854775809", strconv.RANGE), ("-_012345", strconv.SYNTAX), ("_-012345", strconv.SYNTAX),
    ("_012345", strconv.SYNTAX), ("0__12345", strconv.SYNTAX), ("01234__5", strconv.SYNTAX),
    ("0x1_2_3_4_5_", strconv.SYNTAX), (" 5", strconv.SYNTAX), ("5s", strconv.SYNTAX), ("1e3", strconv.SYNTAX),
    ("\uff15", strconv.SYNTAX), ("0x", strconv.SYNTAX), ("08", strconv.SYNTAX),
    ("99999999999999999999x", strconv.RANGE),  # Go stops at the overflowing digit, before the bad byte
])
def test_parse_int_errors(text: str, reason: str) -> None:
    with pytest.raises(strconv.NumError) as info:
        strconv.parse_int(text)
    assert info.value.reason == reason


@pytest.mark.parametrize(("text", "message"), [
    ("12a", 'strconv.Atoi: parsing "12a": invalid syntax'), ("", 'strconv.Atoi: parsing "": invalid syntax'),
    ("0x10", 'strconv.Atoi: parsing "0x10": invalid syntax'), ("1_0", 'strconv.Atoi: parsing "1_0": invalid syntax'),
    ("9223372036854775808", 'strconv.Atoi: parsing "9223372036854775808": value out of range'),
])
def test_atoi_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        strconv.atoi(text)
    assert str(info.value) == message


def test_atoi() -> None:
    assert [strconv.atoi(t) for t in ("0", "-7", "+12", "010", "9223372036854775807")] == [0, -7, 12, 10, (1 << 63) - 1]


# ---- the flag package (flag_test.go) ---------------------------------------------------------------

BOOLS = {"b": True, "bool": True, "i": False, "s": False, "d": False}


def scan(*words: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    scanner = flag.FlagScanner(words, BOOLS.get)
    return list(scanner), scanner.rest


def test_scanning_forms() -> None:
    assert scan("-b", "--bool=false", "-i", "-5", "--s=x=y", "-d", "2s", "rest", "-i", "1") == (
        [("b", None), ("bool", "false"), ("i", "-5"), ("s", "x=y"), ("d", "2s")], ["rest", "-i", "1"])
    assert scan("-s", "--", "-b", "x") == ([("s", "--"), ("b", None)], ["x"])  # a value may look like anything
    assert scan("--", "-b") == ([], ["-b"])  # `--` ends the flags and is dropped
    assert scan("-", "-b") == ([], ["-", "-b"])  # "-" alone is an argument
    assert scan("-b", "false") == ([("b", None)], ["false"])  # a bool takes no separate word
    assert scan("-s=") == ([("s", "")], [])


@pytest.mark.parametrize(("words", "message"), [
    (("---b",), "bad flag syntax: ---b"), (("-=b",), "bad flag syntax: -=b"), (("--=",), "bad flag syntax: --="),
    (("-x",), "flag provided but not defined: -x"), (("-i",), "flag needs an argument: -i"),
])
def test_scanning_errors(words: tuple[str, ...], message: str) -> None:
    with pytest.raises(flag.UsageError) as info:
        scan(*words)
    assert str(info.value) == message


def test_help_unless_defined() -> None:
    for word in ("-h", "--help", "-help=1"):
        with pytest.raises(flag.HelpRequested):
            scan(word)
    scanner = flag.FlagScanner(["-h"], {"h": True}.get)
    assert list(scanner) == [("h", None)]


def test_errors_come_in_gos_order() -> None:
    """Each value is set before the next word is scanned: a bad value stops the scan there."""
    seen = []
    with pytest.raises(ValueError, match="parse error"):
        for name, value in flag.FlagScanner(["-i", "x", "-nope"], BOOLS.get):
            seen.append(name)
            flag.int_value(value or "")
    assert seen == ["i"]


@pytest.mark.parametrize(("setter", "text", "result"), [
    (flag.int_value, "0x10", 16), (flag.int_value, "x", "parse error"),
    (flag.int_value, "9223372036854775808", "value out of range"), (flag.bool_value, "T", True),
    (flag.bool_value, "yes", "parse error"), (flag.duration_value, "1m30s", 90.0),
    (flag.duration_value, "1", "parse error"),
])
def test_flag_values(setter: object, text: str, result: object) -> None:
    try:
        got: object = setter(text)  # type: ignore[operator]
    except ValueError as e:
        got = str(e)
    assert got == result
