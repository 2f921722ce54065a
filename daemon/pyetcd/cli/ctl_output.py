"""What pyetcdctl prints, byte for byte as etcdctl v2 prints it.

* `-o json` re-encodes the answer as Go's encoding/json encodes client.Response: fields in struct order
  (action, node, prevNode; key, dir only when true, value, nodes, createdIndex, modifiedIndex, expiration
  and ttl only when set), `nodes` null when absent, HTML-safe escapes (<, >, & as \\u003c...), control
  characters as \\u00XX except \\n \\r \\t, everything else raw UTF-8.
* `-o extended` is etcdctl's RFC 2822-like block; `Index` is the X-Etcd-Index header (0 if missing).
* Errors print as Go's client errors print: `Error:  <code>: <message> (<cause>) [<index>]`, and a cluster
  error as "client: etcd cluster is unavailable or misconfigured; error #0: dial tcp ...: connect:
  connection refused\\n" followed by the same list again (ClusterError.Detail()).
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from typing import Any, TextIO
from urllib.parse import urlsplit

from ..client.v2 import ClusterError, EtcdError, InvalidResponse, RequestTimeout, Response
from ..store.event import dump_json

CLUSTER_UNAVAILABLE = "client: etcd cluster is unavailable or misconfigured"
INVALID_JSON = "client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint"
_GO_STATUS_TEXT = {500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
                   503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported"}


# ---- Go's encoding/json ------------------------------------------------------------------------


def go_json(value: Any) -> str:
    """Compact JSON as Go's encoder writes it (HTML-safe escapes; the store's encoder, without its newline)."""
    return dump_json(value).decode()[:-1]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def go_time(text: str) -> str:
    """time.Time's RFC3339Nano form of a parsed timestamp: trailing zeros of the fraction dropped."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)\.(\d+)(Z|[+-]\d\d:\d\d)", text)
    if not m:
        return text
    frac = m.group(2)[:9].rstrip("0")
    return m.group(1) + (f".{frac}" if frac else "") + m.group(3)


def go_node(node: Any) -> dict[str, Any] | None:
    """client.Node as Go decodes it from the server's JSON and encodes it again."""
    if not isinstance(node, dict):
        return None
    out: dict[str, Any] = {"key": _str(node.get("key"))}
    if node.get("dir") is True:
        out["dir"] = True
    out["value"] = _str(node.get("value"))
    nodes = node.get("nodes")
    out["nodes"] = [go_node(n) for n in nodes] if isinstance(nodes, list) else None
    out["createdIndex"] = _int(node.get("createdIndex"))
    out["modifiedIndex"] = _int(node.get("modifiedIndex"))
    if isinstance(node.get("expiration"), str):
        out["expiration"] = go_time(node["expiration"])
    if _int(node.get("ttl")):
        out["ttl"] = _int(node.get("ttl"))
    return out


def response_json(resp: Response) -> str:
    body = resp.body
    return go_json({"action": _str(body.get("action")), "node": go_node(body.get("node")),
                    "prevNode": go_node(body.get("prevNode"))})


# ---- printResponseKey --------------------------------------------------------------------------


def print_response(resp: Response, fmt: str, out: TextIO, err: TextIO) -> None:
    node = resp.node
    action = _str(resp.body.get("action"))
    prev = resp.prev_node
    if fmt == "simple":
        if action != "delete":
            out.write(f"{_str(node.get('value'))}\n")
        else:
            out.write(f"PrevNode.Value: {_str((prev or {}).get('value'))}\n")
    elif fmt == "extended":
        lines = [f"Key: {_str(node.get('key'))}", f"Created-Index: {_int(node.get('createdIndex'))}",
                 f"Modified-Index: {_int(node.get('modifiedIndex'))}"]
        if prev is not None:
            lines.append(f"PrevNode.Value: {_str(prev.get('value'))}")
        lines += [f"TTL: {_int(node.get('ttl'))}", f"Index: {resp.etcd_index or 0}"]
        if action != "delete":
            lines += ["", _str(node.get("value"))]
        out.write("\n".join(lines) + "\n")
    elif fmt == "json":
        out.write(response_json(resp) + "\n")
    else:
        err.write(f"Unsupported output format: {fmt}\n")


# ---- errors as Go's client words them ----------------------------------------------------------


class HeaderTimeout(Exception):
    """One endpoint did not answer within --timeout (Go: the endpoint's header timeout)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"client: endpoint {endpoint} exceeded header timeout")


class DeadlineExceeded(Exception):
    """--total-timeout ran out (Go's context.DeadlineExceeded)."""

    def __init__(self) -> None:
        super().__init__("context deadline exceeded")


class BadEndpoint(Exception):
    """An endpoint Go's transport refuses before dialing (`unsupported protocol scheme "ftp"`)."""


class CtlClusterError(Exception):
    """Go's client.ClusterError: every endpoint failed; `errors` are (endpoint URL, cause)."""

    def __init__(self, errors: list[tuple[str, Exception]]) -> None:
        self.errors = errors
        super().__init__(CLUSTER_UNAVAILABLE + "".join(f"; error #{i}: {endpoint_error(ep, e)}\n"
                                                       for i, (ep, e) in enumerate(errors)))

    def detail(self) -> str:
        return "".join(f"error #{i}: {endpoint_error(ep, e)}\n" for i, (ep, e) in enumerate(self.errors))


def _hostport(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def tls_error(e: ssl.SSLError) -> str:
    """OpenSSL's reasons in the words of Go's crypto/tls and crypto/x509."""
    if isinstance(e, ssl.SSLCertVerificationError):
        why = (e.verify_message or "").lower()
        if "issuer" in why or "self-signed" in why or "self signed" in why:
            return "x509: certificate signed by unknown authority"
        if "expired" in why or "not yet valid" in why:
            return "x509: certificate has expired or is not yet valid"
        if "hostname" in why or "ip address" in why:
            return f"x509: certificate is not valid for this host ({e.verify_message})"
        return f"x509: {e.verify_message or e.reason}"
    alert = re.fullmatch(r"(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)", e.reason or "")
    if alert:
        return "remote error: tls: " + alert.group(1).lower().replace("_", " ")
    return f"tls: {(e.reason or str(e)).lower().replace('_', ' ')}"


def dial_error(endpoint: str, e: BaseException) -> str:
    """A connection failure in the words of Go's net package."""
    if isinstance(e, socket.gaierror):
        return f"dial tcp: lookup {urlsplit(endpoint).hostname}: no such host"
    if isinstance(e, ssl.SSLError):
        return tls_error(e)
    if isinstance(e, ConnectionResetError):
        return f"read tcp {_hostport(endpoint)}: read: connection reset by peer"
    if isinstance(e, OSError) and e.errno is not None:
        text = (e.strerror or errno.errorcode.get(e.errno, str(e))).lower()
        return f"dial tcp {_hostport(endpoint)}: connect: {text}"
    return str(e) or type(e).__name__


def endpoint_error(endpoint: str, e: BaseException) -> str:
    if isinstance(e, EtcdError):  # a 5xx answer
        if e.status in (500, 503):
            return f"client: etcd member {endpoint} has no leader"
        return f"client: etcd member {endpoint} returns server error [{_GO_STATUS_TEXT.get(e.status, e.status)}]"
    if isinstance(e, InvalidResponse):
        return f"client: etcd member {endpoint} has no leader"
    if isinstance(e, HeaderTimeout | BadEndpoint | DeadlineExceeded):
        return str(e)
    return dial_error(endpoint, e)


def is_connection_error(e: BaseException) -> bool:
    """etcdctl's isConnectionError: every endpoint failed to connect (or the deadline hit)."""
    if isinstance(e, DeadlineExceeded):
        return True
    if isinstance(e, CtlClusterError):
        return all(isinstance(c, OSError) and not isinstance(c, ssl.SSLError) for _, c in e.errors)
    return False


def error_text(e: BaseException) -> str:
    """err.Error() of what Go's client would have returned."""
    if isinstance(e, InvalidResponse):
        return "client: response body is empty" if "empty" in str(e) else INVALID_JSON
    if isinstance(e, ClusterError):  # raised by a single-endpoint client outside the failover loop
        return str(CtlClusterError([(ep, c) for ep, c in e.errors]))
    if isinstance(e, RequestTimeout):
        return DeadlineExceeded().args[0]
    return str(e)


def handle_error(e: BaseException, err: TextIO) -> None:
    """etcdctl's handleError output (the caller picks the exit code)."""
    err.write(f"Error:  {error_text(e)}\n")
    if isinstance(e, CtlClusterError):
        err.write(e.detail() + "\n")
