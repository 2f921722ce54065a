"""Go-compatible URL path and query/form decoding (pure).

etcd is a Go program: its parameter rules are net/url's. Query strings split on '&' (a ';' is an
error), '+' is a space, a bad %-escape is an error naming it, the first occurrence of a name wins.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from ..gocompat.strconv import NumError
from ..gocompat.strconv import parse_bool as go_parse_bool
from ..gocompat.strconv import quote as go_quote
from ..store.store import clean_key

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class FormError(Exception):
    """A parse failure; str() is Go's error text (etcd puts it in `cause`)."""


def _escape_error(s: str, i: int) -> FormError:
    return FormError(f"invalid URL escape {go_quote(s[i:i + 3])}")


def unescape(s: str, query: bool) -> str:
    if "%" in s:
        m = _BAD_ESCAPE.search(s)
        if m:
            raise _escape_error(s, m.start())
        if query:
            s = s.replace("+", " ")
        # Go strings are bytes: invalid UTF-8 survives as surrogate escapes (rendered as \ufffd in JSON)
        return unquote_to_bytes(s.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")
    if query and "+" in s:
        return s.replace("+", " ")
    return s


def parse_query(raw: str, into: dict[str, str]) -> FormError | None:
    """Add name=value pairs from a query string (first occurrence wins). Returns the first error,
    after parsing every good pair, as Go's url.ParseQuery does."""
    first_err: FormError | None = None
    if not raw:
        return None
    for part in raw.split("&"):
        if not part:
            continue
        if ";" in part:
            first_err = FormError("invalid semicolon separator in query")  # Go lets this one win
            continue
        name, _, value = part.partition("=")
        try:
            name = unescape(name, True)
            value = unescape(value, True)
        except FormError as e:
            first_err = first_err or e
            continue
        if name not in into:
            into[name] = value
    return first_err


def is_form_urlencoded(content_type: bytes | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/x-www-form-urlencoded"


def clean_path(path: str) -> str:
    """Go's ServeMux cleanPath: path.Clean, keeping a trailing slash."""
    if path[:1] == "/" and "//" not in path and "/." not in path:
        return path  # already clean: the common case, checked without splitting
    cleaned = clean_key(path)  # the same path.Clean the store uses for keys
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def parse_bool(text: str) -> bool | None:
    """strconv.ParseBool; None when the spelling is not one Go accepts."""
    try:
        return go_parse_bool(text)
    except NumError:
        return None


def parse_uint64(text: str) -> int | None:
    """strconv.ParseUint(text, 10, 64); None when invalid or out of range."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value < 2**64 else None
