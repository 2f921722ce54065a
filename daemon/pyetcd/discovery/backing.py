"""The token service's backing v2 keyspace: endpoints with failover, TLS and credentials, and reading a
response while watching whether the client is still there.

Credentials (--etcd-username/--etcd-password): every connection to a backing endpoint sends the service's
own basic auth with each request, in place of any Authorization header a proxied client sent (the
service talks to the backing store as itself)."""

from __future__ import annotations

import http.client
import io
import secrets
import select
import socket
import ssl
import threading
from collections.abc import Sequence
from urllib.parse import urlencode, urlsplit

from ..client.tls import client_context
from ..client.v2 import basic_auth
from .service_settings import REGISTRY, Settings

# ---- the backing keyspace ----------------------------------------------------------------------

class BackingError(Exception):
    """No backing endpoint gave a usable answer."""


class _Authed(http.client.HTTPConnection):
    """Every request carries `auth`; a caller's own Authorization header is dropped."""

    auth = ""

    def putrequest(self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False) -> None:
        super().putrequest(method, url, skip_host=skip_host, skip_accept_encoding=skip_accept_encoding)
        super().putheader("Authorization", self.auth)

    def putheader(self, header: str | bytes, *values: object) -> None:
        name = header.decode("latin-1") if isinstance(header, bytes) else header
        if name.strip().lower() != "authorization":
            super().putheader(header, *values)  # type: ignore[arg-type]


class _AuthedHTTP(_Authed):
    pass


class _AuthedHTTPS(_Authed, http.client.HTTPSConnection):
    pass


class Backing:
    """The backing endpoints: which one to try first, TLS, credentials, and small requests with failover.

    Invariant: `_preferred` indexes `_endpoints`. Connection-level failures (and 5xx answers) move
    the preference on to the next endpoint, so a dead member costs one failed dial, not one per
    request.
    """

    def __init__(self, endpoints: Sequence[str], tls: ssl.SSLContext | None, timeout_s: float,
                 auth: str | None = None) -> None:
        """`auth`: an Authorization header value (backing_auth) for every backing request, or None."""
        self._endpoints = list(endpoints)
        self._preferred = 0
        self._lock = threading.Lock()
        self.tls = tls
        self.timeout_s = timeout_s
        self.auth = auth

    @property
    def endpoints(self) -> list[str]:
        with self._lock:
            return list(self._endpoints)

    def rotation(self) -> list[str]:
        """Every endpoint once, the preferred one first."""
        with self._lock:
            i = self._preferred
            return self._endpoints[i:] + self._endpoints[:i]

    def demote(self, endpoint: str) -> None:
        with self._lock:
            if self._endpoints[self._preferred] == endpoint:
                self._preferred = (self._preferred + 1) % len(self._endpoints)

    def promote(self, endpoint: str) -> None:
        """A 307 named the leader: prefer it from now on (the original remembers it too)."""
        with self._lock:
            if endpoint not in self._endpoints:
                self._endpoints.append(endpoint)
            self._preferred = self._endpoints.index(endpoint)

    def connection(self, endpoint: str, timeout_s: float) -> http.client.HTTPConnection:
        u = urlsplit(endpoint)
        host = u.hostname or "127.0.0.1"
        conn: http.client.HTTPConnection
        if u.scheme == "https":
            https = _AuthedHTTPS if self.auth else http.client.HTTPSConnection
            conn = https(host, u.port or 443, timeout=timeout_s, context=self.tls or ssl.create_default_context())
        else:
            conn = (_AuthedHTTP if self.auth else http.client.HTTPConnection)(host, u.port or 80, timeout=timeout_s)
        if isinstance(conn, _Authed):
            conn.auth = self.auth or ""
        return conn

    def call(self, method: str, target: str, form: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One small request (etcd's Go client style: form body), failing over across endpoints."""
        body = urlencode(form).encode() if form is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        errors: list[str] = []
        for endpoint in self.rotation():
            conn = self.connection(endpoint, self.timeout_s)
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"{endpoint}: {e or type(e).__name__}")
                self.demote(endpoint)
                continue
            finally:
                conn.close()
            if resp.status >= 500:
                errors.append(f"{endpoint}: {resp.status} {data[:200]!r}")
                self.demote(endpoint)
                continue
            return resp.status, data
        raise BackingError("; ".join(errors) or "no endpoint")

    def create_token(self, size: int) -> str:
        """A fresh token whose size key was created (prevExist=false, so never two with one name)."""
        token = secrets.token_hex(16)
        status, data = self.call("PUT", f"{REGISTRY}/{token}/_config/size?prevExist=false",
                                 {"value": str(size)})
        if not 200 <= status < 300:
            raise BackingError(f"creating the size key gave {status}: {data[:200]!r}")
        return token

    def delete_token(self, token: str) -> None:
        status, data = self.call("DELETE", f"{REGISTRY}/{token}?recursive=true")
        if not 200 <= status < 300:
            raise BackingError(f"deleting the token gave {status}: {data[:200]!r}")


def backing_auth(settings: Settings) -> str | None:
    """The Authorization header for the backing endpoints, if credentials are set."""
    if not settings.etcd_username:
        return None
    return basic_auth(settings.etcd_username, settings.etcd_password or "")


def backing_tls(settings: Settings) -> ssl.SSLContext | None:
    if not any(u.startswith("https:") for u in settings.etcd) and not settings.etcd_ca_file:
        return None
    return client_context(settings.etcd_ca_file or "", settings.etcd_cert_file or "", settings.etcd_key_file or "")


# ---- reading a backing response while watching the client --------------------------------------

class ClientGone(Exception):
    """The client hung up while its request waited on the backing: abandon the request."""


class WatchfulReader(io.RawIOBase):
    """Raw reads from the backing socket that wait in poll() on both sockets, so a long-poll whose
    client went away is dropped (closing the backing connection cancels the backing's watch)
    instead of pinning a thread until the next event. `timeout_s` None waits for ever."""

    def __init__(self, sock: socket.socket, client: socket.socket | None, timeout_s: float | None) -> None:
        super().__init__()
        self._sock = sock
        self._fd = sock.fileno()
        self._client = client
        self._timeout_ms = None if timeout_s is None else int(timeout_s * 1000)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN | select.POLLPRI)
        if client is not None:
            self._poll.register(client.fileno(), select.POLLIN | select.POLLPRI)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        while True:
            if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
                return self._sock.recv_into(buf)
            events = self._poll.poll(self._timeout_ms)
            if not events:
                raise TimeoutError("the backing etcd did not answer in time")
            if any(fd != self._fd for fd, _ in events):
                self._check_client()
            if any(fd == self._fd for fd, _ in events):
                try:
                    return self._sock.recv_into(buf)
                except (ssl.SSLWantReadError, BlockingIOError):
                    continue

    def _check_client(self) -> None:
        assert self._client is not None
        try:
            # Peek at the raw TCP stream (bypassing TLS, if any): EOF means the client is gone.
            data = socket.socket.recv(self._client, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            raise ClientGone() from None
        if not data:
            raise ClientGone()
        # Bytes (a pipelined request, a TLS record): cannot tell more, so stop watching.
        self._poll.unregister(self._client.fileno())
        self._client = None


class SocketShim:
    """What http.client.HTTPResponse needs from a socket: makefile()."""

    def __init__(self, raw: io.RawIOBase) -> None:
        self._raw = raw

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(self._raw, 65536)


