"""Go's net/url path escaping, html escaping and multipart form fields, as the discovery service answers with them."""

from __future__ import annotations

import email.parser
import email.policy
from urllib.parse import quote


def quote_path(path: str) -> str:
    """net/url's path escaping (what the original's url.URL.String() sends)."""
    return quote(path, safe="/$&+,:;=@", errors="surrogateescape")


def ascii_query(raw_query: str) -> str:
    """Raw bytes >= 0x80 as %XX: same values once decoded, and http.client only sends ASCII."""
    return "".join(c if ord(c) < 0x80 else f"%{ord(c):02X}" for c in raw_query)


def html_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))


def multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    """Non-file fields of a multipart/form-data body (Go's ParseMultipartForm), first value wins."""
    try:
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
        if not msg.is_multipart():
            return {}
        out: dict[str, str] = {}
        for part in msg.iter_parts():  # type: ignore[attr-defined]
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str) and part.get_filename() is None and name not in out:
                payload = part.get_payload(decode=True)
                out[name] = payload.decode("utf-8", "surrogateescape") if isinstance(payload, bytes) else ""
        return out
    except Exception:  # a malformed body is simply "no fields", as Go ignores the parse error
        return {}


