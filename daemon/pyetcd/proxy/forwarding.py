"""How a proxy rewrites a client's request for a member and the member's answer for the client, and
the answers the proxy gives itself; all as etcd's v2 proxy does (Go's reverse-proxy rules).

Request: hop-by-hop headers dropped, HTTP/1.1 keep-alive towards the member whatever the client spoke,
the client's address appended to X-Forwarded-For, the client's Host kept, the body resent whole with its
length (so a failed endpoint can be retried with it). Answer: hop-by-hop headers dropped, the rest
(Date, X-Etcd-Index, ...) passed on as the member sent it; the body streams through as it arrives.
"""

from __future__ import annotations

import json

from ..http.client_api import CORS, Headers, Reply

# Go's httputil list: these describe one hop, not the message.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailers", b"transfer-encoding", b"upgrade"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
CONFIG_PATH = b"/v2/config/local/proxy"
# etcd's proxy wraps its own answers in its CORS layer (--cors, default "*"); a readonly refusal comes first.
_JSON = [*CORS, (b"Content-Type", b"application/json")]
_TEXT = [*CORS, (b"Content-Type", b"text/plain; charset=utf-8")]


def upstream_headers(headers: Headers, body: bytes, method: str, client_ip: str, host: bytes) -> Headers:
    """The header list to send a member for a client's request (see the module docstring)."""
    out: Headers = []
    prior: list[bytes] = []
    has_host = False
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower == b"content-length":
            continue
        if lower == b"x-forwarded-for":
            prior.append(value)
            continue
        if lower == b"host":
            has_host = True
        out.append((name, value))
    if not has_host and host:  # an HTTP/1.0 client may send none; HTTP/1.1 needs one
        out.insert(0, (b"Host", host))
    if client_ip:
        out.append((b"X-Forwarded-For", b", ".join([*prior, client_ip.encode()])))
    elif prior:
        out.append((b"X-Forwarded-For", b", ".join(prior)))
    if body or method in _BODY_METHODS:
        out.append((b"Content-Length", b"%d" % len(body)))
    return out


def downstream_headers(headers: Headers) -> Headers:
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]


def _http_error(status: int, message: str) -> Reply:
    """etcd's httptypes.HTTPError as its proxy writes it: {"message": ...} as JSON."""
    return Reply(status, list(_JSON), json.dumps({"message": message}, separators=(",", ":")).encode())


def zero_endpoints() -> Reply:
    return _http_error(503, "httpproxy: zero endpoints currently available")


def no_response(tried: int) -> Reply:
    return _http_error(502, f"httpproxy: unable to get response from {tried} endpoint(s)")


def readonly_refused(method: str) -> Reply:
    """A readonly proxy answers anything but GET with a bare 501, as etcd's does (Go writes no
    Content-Length on an empty answer to HEAD)."""
    return Reply(501, [], b"", no_length=method == "HEAD")


def config(method: str, endpoint_urls: list[str]) -> Reply:
    """GET /v2/config/local/proxy: the endpoints available now (Go's json.Encoder adds the newline)."""
    if method != "GET":
        return Reply(405, [*_TEXT, (b"Allow", b"GET"), (b"X-Content-Type-Options", b"nosniff")],
                     b"Method Not Allowed\n")
    return Reply(200, list(_TEXT), json.dumps({"endpoints": endpoint_urls}, separators=(",", ":")).encode() + b"\n")


def cluster_urls(members_json: bytes) -> tuple[list[str], list[str]]:
    """(client URLs, peer URLs) of a peer `GET /members` answer, each sorted without repeats, as etcd's
    proxy takes them (members not started yet have no client URLs). ValueError if it is not one."""
    from ..server.members import Member

    listed = json.loads(members_json)
    if not isinstance(listed, list):
        raise ValueError("GET /members did not answer a JSON list")
    members = [Member.from_peer_json_obj(d) for d in listed]
    clients = sorted({u for m in members for u in m.client_urls})
    peers = sorted({u for m in members for u in m.peer_urls})
    return clients, peers
