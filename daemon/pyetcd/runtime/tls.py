"""TLS for the event loop, as a byte transformer over `ssl.MemoryBIO`.

The loop keeps plain non-blocking sockets and moves bytes; a `TlsSession` turns ciphertext read from a
socket into plaintext for h11 and h11's output into ciphertext to write. Compared with `SSLSocket` in
non-blocking mode this avoids the want-read-while-writing dance with the selector, and a handshake
never blocks the loop: it advances one received chunk at a time, and the loop drops sessions whose
handshake does not finish in time.

Contexts follow etcd's flags: TLS 1.2 or newer, the server asks for client certificates only with
`--client-cert-auth`/`--peer-client-cert-auth`, and `--peer-cert-allowed-cn` is checked on both ends of
a peer connection (etcd does the same). Contexts for dialling out come from pyetcd.client.tls.
"""

from __future__ import annotations

import ssl

from ..ops.tlsfiles import TlsFiles

HANDSHAKE_TIMEOUT_S = 5.0
# What Go's net/http answers when plain HTTP arrives on a TLS port, before closing the connection.
PLAIN_HTTP_ON_TLS_REPLY = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
_HTTP_METHOD_PREFIXES = (b"GET ", b"PUT ", b"POST", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC")


class TlsRefused(Exception):
    """The handshake failed or the peer's certificate is not acceptable; str() says why."""


class PlainHttpOnTls(TlsRefused):
    """The client spoke plain HTTP to a TLS port."""


def server_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.cert_file, files.key_file)
    if files.client_cert_auth:
        ctx.load_verify_locations(files.trusted_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def common_name(cert: dict | None) -> str:  # type: ignore[type-arg]
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class TlsSession:
    """One TLS connection's state. `receive` takes ciphertext and returns plaintext; `send` takes
    plaintext; ciphertext for the socket accumulates in `wire`."""

    __slots__ = ("obj", "incoming", "outgoing", "established", "wire", "_early", "allowed_cn", "started_at",
                 "server_side", "peer_cn", "_fresh")

    def __init__(self, ctx: ssl.SSLContext, server_side: bool, started_at: float,
                 server_hostname: str | None = None, allowed_cn: str = "") -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                server_hostname=None if server_side else server_hostname)
        self.server_side = server_side
        self.established = False
        self.wire = bytearray()
        self._early = bytearray()  # plaintext sent before the handshake finished
        self.allowed_cn = allowed_cn
        self.started_at = started_at
        self.peer_cn = ""
        self._fresh = True  # nothing received yet

    def start(self) -> None:
        """Client side: produce the ClientHello."""
        self._handshake()

    def receive(self, data: bytes) -> bytes:
        if self._fresh:
            self._fresh = False
            if self.server_side and data[:4] in _HTTP_METHOD_PREFIXES:
                raise PlainHttpOnTls("client sent plain HTTP to a TLS port")
        self.incoming.write(data)
        plain = bytearray()
        if not self.established:
            self._handshake()
        if self.established:
            while True:
                try:
                    chunk = self.obj.read(65536)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    break  # close_notify: the caller sees EOF on the socket next
                except ssl.SSLError as e:
                    raise TlsRefused(f"TLS error: {e.reason or e}") from e
                if not chunk:
                    break
                plain += chunk
        self._drain()
        return bytes(plain)

    def send(self, plain: bytes | bytearray) -> None:
        if not self.established:
            self._early += plain
            return
        self._write(plain)

    def _write(self, plain: bytes | bytearray) -> None:
        view = memoryview(plain)
        while view:
            try:
                n = self.obj.write(view)
            except ssl.SSLError as e:
                raise TlsRefused(f"TLS error: {e.reason or e}") from e
            view = view[n:]
        self._drain()

    def _handshake(self) -> None:
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            self._drain()
            return
        except ssl.SSLCertVerificationError as e:
            self._drain()  # carries the alert that tells the other side why
            raise TlsRefused(f"certificate rejected: {e.verify_message or e.reason}") from e
        except (ssl.SSLError, ValueError) as e:
            self._drain()
            raise TlsRefused(f"TLS handshake failed: {_readable(e)}") from e
        self.established = True
        self.peer_cn = common_name(self.obj.getpeercert())
        if self.allowed_cn and self.peer_cn != self.allowed_cn:
            raise TlsRefused(f"CommonName authentication failed: certificate CN {self.peer_cn!r} is not "
                             f"the allowed {self.allowed_cn!r}")
        if self._early:
            early, self._early = self._early, bytearray()
            self._write(early)
        self._drain()

    def _drain(self) -> None:
        if self.outgoing.pending:
            self.wire += self.outgoing.read()


def _readable(e: Exception) -> str:
    """OpenSSL's reason codes (PEER_DID_NOT_RETURN_A_CERTIFICATE) as words for the log."""
    reason = getattr(e, "reason", None)
    return reason.lower().replace("_", " ") if isinstance(reason, str) else str(e)
