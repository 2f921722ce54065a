"""Go-compatible form/query decoding helpers (`pyetcd.http.forms`)."""

from __future__ import annotations

import pytest
from pyetcd.http import forms


@pytest.mark.parametrize(("raw", "bad"), [("%", "%"), ("a%", "%"), ("%Z", "%Z"), ("%ZZ", "%ZZ"),
                                          ("%zzz", "%zz"), ("ok%4", "%4"), ("%4G", "%4G"), ("%%41", "%%4")])
def test_bad_escape_names_first_three_bytes(raw: str, bad: str) -> None:
    with pytest.raises(forms.FormError) as info:
        forms.unescape(raw, query=True)
    assert str(info.value) == f'invalid URL escape "{bad}"'


@pytest.mark.parametrize(("raw", "query", "out"), [
    ("a+b", True, "a b"), ("a+b", False, "a+b"), ("a%2Bb", True, "a+b"), ("%41%62", True, "Ab"),
    ("%C3%A9", True, "é"), ("%e2%98%83", False, "☃"), ("plain", True, "plain"), ("%2F", False, "/"),
])
def test_unescape(raw: str, query: bool, out: str) -> None:
    assert forms.unescape(raw, query) == out


def test_invalid_utf8_escapes_stay_distinct() -> None:
    a, b = forms.unescape("%FF", True), forms.unescape("%FE", True)
    assert a != b
    assert a.encode("utf-8", "surrogateescape") == b"\xff"


def test_parse_query_first_wins_and_keeps_good_pairs_after_error() -> None:
    into: dict[str, str] = {"pre": "set"}
    err = forms.parse_query("a=1&&a=2&b=%ZZ&c=3&pre=x&novalue&=empty", into)
    assert str(err) == 'invalid URL escape "%ZZ"'
    assert into == {"pre": "set", "a": "1", "c": "3", "novalue": "", "": "empty"}


def test_parse_query_first_error_is_reported() -> None:
    into: dict[str, str] = {}
    err = forms.parse_query("x;y=1&v=%Q1&w=2", into)
    assert str(err) == "invalid semicolon separator in query"
    assert into == {"w": "2"}
    assert forms.parse_query("", into) is None


@pytest.mark.parametrize(("ctype", "ok"), [
    (b"application/x-www-form-urlencoded", True), (b"application/x-www-form-urlencoded; charset=utf-8", True),
    (b" APPLICATION/X-WWW-FORM-URLENCODED ", True), (b"application/json", False), (b"", False), (None, False),
    (b"multipart/form-data; boundary=x", False),
])
def test_is_form_urlencoded(ctype: bytes | None, ok: bool) -> None:
    assert forms.is_form_urlencoded(ctype) is ok


@pytest.mark.parametrize(("path", "clean"), [
    ("", "/"), ("/", "/"), ("v2", "/v2"), ("/v2/keys/", "/v2/keys/"), ("/v2//keys", "/v2/keys"),
    ("/v2/keys//", "/v2/keys/"), ("/a/./b", "/a/b"), ("/a/b/..", "/a"), ("/a/b/../", "/a/"), ("/..", "/"),
    ("/a/.b", "/a/.b"), ("/a/b.", "/a/b."),
])
def test_clean_path_like_go_servemux(path: str, clean: str) -> None:
    assert forms.clean_path(path) == clean


def test_parse_bool_is_strconv() -> None:
    assert [forms.parse_bool(s) for s in ("1", "t", "T", "TRUE", "true", "True")] == [True] * 6
    assert [forms.parse_bool(s) for s in ("0", "f", "F", "FALSE", "false", "False")] == [False] * 6
    assert [forms.parse_bool(s) for s in ("", "yes", "tRUE", " true", "2")] == [None] * 5


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("007", 7), (str(2**64 - 1), 2**64 - 1), (str(2**64), None), ("", None), ("+1", None),
    ("-0", None), (" 5", None), ("1_000", None), ("\u0661", None), ("0x10", None),
])
def test_parse_uint64_is_strconv(text: str, value: int | None) -> None:
    assert forms.parse_uint64(text) == value


def test_semicolon_error_overrides_earlier_escape_error() -> None:
    into: dict[str, str] = {}
    err = forms.parse_query("v=%ZZ&a;b=1&w=2", into)
    assert str(err) == "invalid semicolon separator in query"
