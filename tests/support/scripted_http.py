"""A real loopback HTTP server whose answers come from a test's function: for the client-side error paths
(odd bodies, 5xx, redirects, dropped connections) that a correct etcd never produces on demand."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from tests.support.kit import TcpListener, head_fields, pump, read_head


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # the request target exactly as sent (path and query, or an absolute URI via a proxy)
    headers: dict[str, str]  # lower-case names
    body: bytes


Reply = tuple[int, dict[str, str], bytes]
Script = Callable[[Seen], Reply | None]  # None: drop the connection without answering


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"")
        self.server.seen.append(seen)
        reply = self.server.script(seen)
        if reply is None:
            self.close_connection = True
            return
        status, headers, body = reply
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_CONNECT = _handle

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script
    seen: list[Seen]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (timeout tests) is expected; the test asserts what matters


class ScriptedHttp:
    def __init__(self, script: Script, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        if ssl_context is not None:  # handshakes run in accept(), on the serving thread: fine for tests
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if ssl_context is not None else "http"
        self._server.script = script
        self._server.seen = []
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[Seen]:
        return self._server.seen

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> ScriptedHttp:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def json_reply(status: int, body: bytes, index: int | None = None) -> Reply:
    headers = {"Content-Type": "application/json"}
    if index is not None:
        headers["X-Etcd-Index"] = str(index)
    return status, headers, body


class TunnelProxy(TcpListener):
    """A CONNECT-only forward proxy on loopback (the https-through-a-proxy path); it records each CONNECT."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, dict[str, str]]] = []  # (host:port, lower-case headers)
        super().__init__(name="tunnel-proxy")

    def serve(self, conn: socket.socket) -> None:
        request_line, headers = head_fields(read_head(conn, self.stopping))
        target = request_line.split()[1]
        self.connects.append((target, headers))
        host, _, port = target.rpartition(":")
        with socket.create_connection((host, int(port))) as upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pump(conn, upstream, self.stopping)
