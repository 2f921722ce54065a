"""`pyetcd discovery-service`: a discovery.etcd.io look-alike over any etcd v2 keyspace (spec §2).

Theory of operation. The service keeps no state of its own: a token is the key
`/_etcd/registry/<token>/_config/size` in a backing etcd v2 keyspace (a pyetcd cluster, or etcd
with --enable-v2), and every token route is a reverse proxy onto `/v2/keys/_etcd/registry/...`.
`/new` and `/health` are the only routes that talk to the backing on their own behalf.

Why a thread per connection (ThreadingHTTPServer + blocking http.client) and not the selectors
loop a pyetcd node uses: a discovering member parks a long-poll watch here for as long as the
other members take to boot (minutes), and the proxy must not bound it. A thread per connection
parks such a watch at the cost of one idle thread and keeps the proxy plain blocking code; there is
no shared state beyond the endpoint cursor and the /metrics counters (each behind a lock). It runs
as its own process so a slow or misbehaving client can never stall a member's Raft loop.

Compatibility: routes, status codes, bodies and content types follow the coreos service (Go's
ServeMux path cleaning, gorilla/mux 404/405, http.Error's text bodies). Deliberate differences:
- several backing endpoints with failover on connection errors, and the configured scheme (https
  included) is used for proxying too (the original always proxies over plain http);
- a backing that cannot be reached gives 500 `All attempts at proxying to etcd failed` (the
  original drops the connection), and a long-poll whose client hung up is abandoned at once;
- a watch's headers are relayed as soon as the backing sends them, the body when it comes;
- `/` redirects to etcd.io's discovery docs instead of the defunct coreos.com page.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ..gocompat.net import ascii_query, html_escape, multipart_fields, quote_path
from ..gocompat.strconv import atoi
from ..http import forms
from .backing import Backing, BackingError, ClientGone, SocketShim, WatchfulReader, backing_auth, backing_tls
from .service_settings import (
    _CHUNK_SIZE_RE,
    _FOLD_RE,
    _METHOD_RE,
    _NOSNIFF,
    _NOT_FORWARDED,
    _NOT_RELAYED,
    CONNECT_TIMEOUT_S,
    DEFAULT_HOST,
    DEFAULT_SIZE,
    DOCS_URL,
    HANDSHAKE_TIMEOUT_S,
    HTML_CT,
    IDLE_TIMEOUT_S,
    MAX_BODY_BYTES,
    MAX_CONNECTIONS,
    MAX_REDIRECTS,
    REGISTRY,
    RESPONSE_TIMEOUT_S,
    TEXT_CT,
    TOKEN_RE,
    ConfigError,
    Settings,
    log,
    parse_addr,
    parse_settings,
)

# ---- metrics -----------------------------------------------------------------------------------

class Counters:
    """The original's Prometheus counters endpoint_{new,token,health}_requests_total{code,method}."""

    HELP = {"new": "/new requests by status code and method",
            "token": "token (proxied) requests by status code and method",
            "health": "/health requests by status code and method"}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int, str], int] = {}

    def inc(self, endpoint: str, code: int, method: str) -> None:
        with self._lock:
            key = (endpoint, code, method)
            self._counts[key] = self._counts.get(key, 0) + 1

    def render(self) -> bytes:
        with self._lock:
            counts = dict(self._counts)
        lines: list[str] = []
        for endpoint, text in self.HELP.items():
            name = f"endpoint_{endpoint}_requests_total"
            lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
            for (ep, code, method), n in sorted(counts.items()):
                if ep == endpoint:
                    label = method.replace("\\", "\\\\").replace('"', '\\"')
                    lines.append(f'{name}{{code="{code}",method="{label}"}} {n}')
        return ("\n".join(lines) + "\n").encode()


# ---- HTTP --------------------------------------------------------------------------------------

class _BadBody(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    """One client connection (HTTP/1.1 keep-alive); every response carries a length or is chunked."""

    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # so even an unparsable request line gets a status line back
    timeout = IDLE_TIMEOUT_S
    server: DiscoveryServer
    _status = 0

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(HANDSHAKE_TIMEOUT_S)
            self.connection.do_handshake()  # here, in this connection's thread, not in accept()
            self.connection.settimeout(self.timeout)

    def __getattr__(self, name: str) -> object:
        # Go routes any method token (an unknown one gets a 404 or 405), so no do_* list here.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's signature
        log.debug("%s: " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests, as Go's server answers them: plain text, then close."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        try:
            self._respond(code, f"{code} {phrase}".encode(), [("Content-Type", TEXT_CT), ("Connection", "close")])
        except OSError:
            self.close_connection = True

    # ---- dispatch ------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._status = 0
        try:
            self._route()
        except OSError as e:  # the client went away or stalled; nothing to answer
            self.close_connection = True
            log.debug("%s: %s %s: connection dropped: %s", self.address_string(), self.command, self.path, e)
            return
        log.debug('%s "%s %s %s" %d', self.address_string(), self.command, self.path,
                  self.request_version, self._status)

    def _route(self) -> None:
        # The target as sent: http.server rewrites a leading "//" in self.path, Go redirects it.
        words = self.requestline.split()
        raw = (words[1] if len(words) > 1 else self.path).encode("latin-1").decode("utf-8", "surrogateescape")
        if (len(words) != 3 or not _METHOD_RE.fullmatch(self.command)
                or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw)):  # Go refuses HTTP/0.9 lines too
            return self.send_error(400)
        if raw.startswith(("http://", "https://")):  # absolute-form target
            u = urlsplit(raw)
            raw = (u.path or "/") + ("?" + u.query if u.query else "")
        raw_path, _, raw_query = raw.partition("?")
        try:
            body = self._read_body()
        except _BadBody as e:
            return self.send_error(e.status)
        if not raw_path.startswith("/"):
            return self.send_error(400)
        try:
            path = forms.unescape(raw_path, query=False)
        except forms.FormError:
            return self.send_error(400)
        cleaned = forms.clean_path(path)
        if cleaned != path:  # Go's ServeMux: 301 to the clean path, query kept
            return self._redirect(quote_path(cleaned) + ("?" + raw_query if raw_query else ""))
        method = self.command
        if path == "/metrics":
            return self._respond(200, self.server.counters.render(),
                                 [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
        if path == "/":
            return self._redirect(DOCS_URL)
        if path == "/new":
            return self._new(raw_query, body)
        if path == "/health":
            return self._health()
        if path == "/robots.txt":
            return self._respond(200, b"User-agent: *\nDisallow: /", [("Content-Type", TEXT_CT)])
        parts = path[1:].split("/")
        if not TOKEN_RE.fullmatch(parts[0]):
            return self._error(404, "404 page not found")
        if len(parts) == 1 or (len(parts) == 2 and parts[1] == ""):
            allowed: tuple[str, ...] = ("GET", "PUT")
        elif len(parts) == 2:
            allowed = ("GET", "PUT", "DELETE")
        elif len(parts) == 3 and parts[1:] == ["_config", "size"]:
            allowed = ("GET",)  # the size is written by /new only
        else:
            return self._error(404, "404 page not found")
        if method not in allowed:
            return self._respond(405, b"")  # gorilla/mux: bare 405, no body
        # path.Join in the original: /<token>/ maps onto the token directory itself
        return self._proxy("/" + "/".join(p for p in parts if p), raw_query, body)

    def _read_body(self) -> bytes:
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise _BadBody(501)
            return self._read_chunked()
        lengths = {v.strip() for v in self.headers.get_all("Content-Length", [])}
        if not lengths:
            return b""
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise _BadBody(400)
        n = int(next(iter(lengths)))
        if n > MAX_BODY_BYTES:
            raise _BadBody(413)
        data = self.rfile.read(n)
        if len(data) < n:
            raise ConnectionError("request body cut short")
        return data

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise ConnectionError("chunked body cut short") if not line else _BadBody(400)
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE_RE.fullmatch(size_text):
                raise _BadBody(400)
            size = int(size_text, 16)
            if size == 0:
                break
            if len(out) + size > MAX_BODY_BYTES:
                raise _BadBody(413)
            data = self.rfile.read(size)
            if len(data) < size:
                raise ConnectionError("chunked body cut short")
            out += data
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BadBody(400)
        for _ in range(100):  # trailers, ignored
            if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                return bytes(out)
        raise _BadBody(400)

    # ---- responses -----------------------------------------------------------------------------

    def _respond(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        self._status = status
        self.send_response_only(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(body)))
        if self.request_version != "HTTP/1.1" or self.close_connection:
            self.send_header("Connection", "close")  # no HTTP/1.0 keep-alive here
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, text: str) -> None:
        """Go's http.Error: plain text plus a newline, nosniff."""
        self._respond(status, (text + "\n").encode(), [("Content-Type", TEXT_CT), _NOSNIFF])

    def _redirect(self, location: str) -> None:
        """Go's http.Redirect with 301: GET gets a tiny HTML body, HEAD only its content type."""
        headers = [("Location", location)]
        body = b""
        if self.command in ("GET", "HEAD"):
            headers.insert(0, ("Content-Type", HTML_CT))
        if self.command == "GET":
            body = f'<a href="{html_escape(location)}">Moved Permanently</a>.\n\n'.encode()
        self._respond(301, body, headers)

    # ---- /new and /health ----------------------------------------------------------------------

    def _new(self, raw_query: str, body: bytes) -> None:
        method = self.command
        content_type = self.headers.get("Content-Type", "")
        values: dict[str, str] = {}
        # Go's FormValue: an urlencoded body (POST/PUT/PATCH) first, then the query, then multipart.
        if method in ("POST", "PUT", "PATCH") and forms.is_form_urlencoded(content_type.encode("latin-1", "replace")):
            forms.parse_query(body.decode("utf-8", "surrogateescape"), values)
        forms.parse_query(raw_query, values)
        if "size" not in values and content_type.lower().lstrip().startswith("multipart/form-data"):
            values.update(multipart_fields(content_type, body))
        size = DEFAULT_SIZE
        if values.get("size"):
            try:
                size = atoi(values["size"])
            except ValueError as e:
                self.server.counters.inc("new", 400, method)
                return self._error(400, str(e))
        try:
            token = self.server.backing.create_token(size)
        except BackingError as e:
            log.warning("/new: cannot create a token: %s", e)
            self.server.counters.inc("new", 400, method)
            return self._error(400, "Unable to generate token")
        log.info("new cluster created: %s (size %d)", token, size)
        self.server.counters.inc("new", 200, method)
        self._respond(200, f"{self.server.host_prefix}/{token}".encode(), [("Content-Type", TEXT_CT)])

    def _health(self) -> None:
        """A throw-away token of size 0, created then deleted: proves the backing takes writes."""
        method = self.command
        try:
            token = self.server.backing.create_token(0)
        except BackingError as e:
            log.warning("health failed to set up a token: %s", e)
            self.server.counters.inc("health", 400, method)
            return self._error(400, "health failed to setupToken")
        try:
            self.server.backing.delete_token(token)
        except BackingError as e:
            log.warning("health failed to delete token %s: %s", token, e)
            self.server.counters.inc("health", 400, method)
            return self._error(400, "health failed to deleteToken")
        self.server.counters.inc("health", 200, method)
        self._respond(200, b"OK", [("Content-Type", TEXT_CT)])

    # ---- the token proxy -----------------------------------------------------------------------

    def _forward_headers(self) -> list[tuple[str, str]]:
        listed = {t.strip().lower() for v in self.headers.get_all("Connection", []) for t in v.split(",")}
        return [(k, _FOLD_RE.sub(" ", v)) for k, v in self.headers.items()
                if k.lower() not in _NOT_FORWARDED and k.lower() not in listed]

    def _proxy(self, key_path: str, raw_query: str, body: bytes) -> None:
        """Forward to the backing's /v2/keys/_etcd/registry<key_path>; relay its answer as it comes.

        Dial or send failures move on to the next endpoint (the request never arrived). A failure
        after sending is retried elsewhere only for GET: a PUT may already have been applied, and
        a retried prevExist=false create would then wrongly report the member as a duplicate.
        """
        method = self.command
        target = REGISTRY + quote_path(key_path) + ("?" + ascii_query(raw_query) if raw_query else "")
        query: dict[str, str] = {}
        forms.parse_query(raw_query, query)
        wait = forms.parse_bool(query.get("wait", "")) is True
        headers = self._forward_headers()
        backing = self.server.backing
        candidates = backing.rotation()
        failure = "no backing endpoint"
        redirects = 0
        i = 0
        while i < len(candidates):
            endpoint = candidates[i]
            conn = backing.connection(endpoint, CONNECT_TIMEOUT_S)
            try:
                conn.putrequest(method, target, skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                if body or method in ("PUT", "POST", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                backing.demote(endpoint)
                failure = f"{endpoint}: {e or type(e).__name__}"
                i += 1
                continue
            assert conn.sock is not None
            reader = WatchfulReader(conn.sock, self.connection if wait else None,
                                     None if wait else RESPONSE_TIMEOUT_S)
            resp = http.client.HTTPResponse(SocketShim(reader), method=method)  # type: ignore[arg-type]
            try:
                resp.begin()
            except ClientGone:
                conn.close()
                self.close_connection = True
                log.debug("%s: client left while waiting on %s", self.address_string(), target)
                return
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                backing.demote(endpoint)
                failure = f"{endpoint}: {e or type(e).__name__}"
                if method != "GET":
                    break
                i += 1
                continue
            if resp.status == 307 and method in ("PUT", "DELETE"):
                location = urlsplit(resp.getheader("Location") or "")
                conn.close()
                redirects += 1
                if redirects > MAX_REDIRECTS or location.scheme not in ("http", "https") or not location.netloc:
                    failure = f"{endpoint}: 307 without a usable Location, or too many"
                    break
                leader = f"{location.scheme}://{location.netloc}"
                backing.promote(leader)
                candidates[i] = leader
                continue
            if resp.status >= 500:
                backing.demote(endpoint)  # e.g. a member without a leader: prefer another next time
            try:
                self._relay(resp)
            finally:
                conn.close()
            return
        log.warning("proxying %s %s failed: %s", method, target, failure)
        self.server.counters.inc("token", 500, method)
        self._error(500, "All attempts at proxying to etcd failed")

    def _relay(self, resp: http.client.HTTPResponse) -> None:
        status = resp.status
        self._status = status
        self.server.counters.inc("token", status, self.command)
        listed = {t.strip().lower() for v in resp.msg.get_all("Connection", []) for t in v.split(",")}
        self.send_response_only(status)
        has_date = False
        for k, v in resp.getheaders():
            if k.lower() in _NOT_RELAYED or k.lower() in listed:
                continue
            self.send_header(k, _FOLD_RE.sub(" ", v))
            has_date = has_date or k.lower() == "date"
        if not has_date:
            self.send_header("Date", self.date_time_string())
        no_body = status in (204, 304) or 100 <= status < 200
        length = 0 if no_body else resp.length
        chunked = False
        if length is not None:
            self.send_header("Content-Length", str(length))
        elif self.request_version == "HTTP/1.1":
            self.send_header("Transfer-Encoding", "chunked")
            chunked = True
        if self.request_version != "HTTP/1.1" or self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()  # a watch's head reaches the client now, its body when the event comes
        if no_body:
            return
        while True:
            try:
                data = resp.read1(65536)
            except ClientGone:
                self.close_connection = True
                log.debug("%s: client left while waiting on %s", self.address_string(), self.path)
                return
            except (OSError, http.client.HTTPException) as e:
                log.warning("backing etcd broke off a response to %s %s: %s", self.command, self.path, e)
                self.close_connection = True  # the client sees a cut body, never a wrong one
                return
            if not data:
                break
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class DiscoveryServer(ThreadingHTTPServer):
    """Listener plus what every handler shares: the backing, the token URL prefix, counters."""

    daemon_threads = True       # parked long-polls must not hold up shutdown...
    block_on_close = False      # ...nor server_close(), which would join them
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, backing: Backing,
                 host_prefix: str, tls: ssl.SSLContext | None = None) -> None:
        self.address_family = family
        self.backing = backing
        self.host_prefix = host_prefix.rstrip("/")
        self.counters = Counters()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # ":port" takes IPv4 too
        # TCPServer's bind only: HTTPServer's would call getfqdn(), a DNS lookup that can hang offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        if not self._slots.acquire(blocking=False):
            log.warning("%d connections open: closing the one from %s", MAX_CONNECTIONS, client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError, EOFError)):
            log.debug("connection from %s ended: %s", client_address, exc)
        else:
            log.warning("error serving %s", client_address, exc_info=True)


def make_server(settings: Settings) -> DiscoveryServer:
    host, port = parse_addr(settings.addr)
    if host:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        address = (str(sockaddr[0]), port)
    elif socket.has_ipv6:
        family, address = socket.AF_INET6, ("::", port)
    else:
        family, address = socket.AF_INET, ("0.0.0.0", port)
    serving_tls = None
    if settings.cert_file:
        serving_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        serving_tls.load_cert_chain(settings.cert_file, settings.key_file)
    backing = Backing(settings.etcd, backing_tls(settings), settings.etcd_timeout_s, backing_auth(settings))
    try:
        return DiscoveryServer(address, family, backing, settings.host, serving_tls)
    except OSError:
        if host or family != socket.AF_INET6:
            raise
        return DiscoveryServer(("0.0.0.0", port), socket.AF_INET, backing, settings.host, serving_tls)


def _setup_logging(level: str) -> None:
    """ops/logsetup.py, as every pyetcd program (PYETCD_LOGGER, PYETCD_LOG_OUTPUTS; journald under systemd)."""
    from ..ops import logsetup

    try:
        logsetup.setup("pyetcd-discovery", level)
    except logsetup.LogSetupError as e:
        print(f"pyetcd discovery-service: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    from .. import __version__

    logsetup.log_start("pyetcd discovery-service", __version__, name="pyetcd.discovery")


def main(argv: list[str]) -> int:
    """Run the token service until SIGTERM/SIGINT (exit 0). Bad settings exit 2, a failed start 1."""
    try:
        settings = parse_settings(argv, os.environ)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 2
    except ConfigError as e:
        print(f"pyetcd discovery-service: {e}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    try:
        server = make_server(settings)
    except (OSError, ssl.SSLError) as e:
        log.error("cannot start the discovery service on %s: %s", settings.addr, e)
        return 1
    stop = threading.Event()
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _sig, _frame: stop.set())
    except ValueError:
        pass  # not the main thread (embedded use): the caller stops us
    scheme = "https" if settings.cert_file else "http"
    log.info("discovery server started with etcd %s and host %r", ",".join(settings.etcd), settings.host)
    log.info("discovery serving on %s://%s", scheme, settings.addr)
    if settings.host == DEFAULT_HOST:
        log.warning("token URLs will name %s; set --host to this service's own URL", DEFAULT_HOST)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="discovery-accept", daemon=True)
    thread.start()
    while not stop.wait(0.5):
        if not thread.is_alive():
            log.error("the accept loop stopped unexpectedly")
            server.server_close()
            return 1
    log.info("discovery service stopping")
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

