"""http/auth_api.py: Basic credentials as Go reads them, and the gate's per-connection memo."""

from __future__ import annotations

import base64

from pyetcd.http.auth_api import authorization, basic_credentials


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def test_basic_credentials_as_go_reads_them() -> None:
    assert basic_credentials(None) is None and basic_credentials(b"") is None
    assert basic_credentials(b"Basic " + b64("bob:pw:with:colons")) == ("bob", "pw:with:colons")
    assert basic_credentials(b"basic " + b64("bob:")) == ("bob", "")  # the scheme is case-insensitive
    assert basic_credentials(b"Basic " + b64("no-colon")) is False
    assert basic_credentials(b"Bearer abc") is False
    assert basic_credentials(b"Basic !!!") is False
    assert authorization([(b"Host", b"x"), (b"authorization", b"A"), (b"Authorization", b"B")]) == b"A"
    assert authorization([(b"Host", b"x")]) is None
