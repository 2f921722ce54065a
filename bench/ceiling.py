"""The ceiling of our own stack: a bare single-threaded `selectors` + h11 server with a canned answer.

Every request, whatever its method or path, gets the same etcd-sized `set` response (headers as etcd
3.4 sends them, Content-Length framing, keep-alive).  The h11 events are built once and re-sent, so the
per-request cost is h11's parsing and serialisation plus the socket calls: "h11 overhead only".  It
does not serve watches.

    python -m bench.ceiling --port 23790 [--raw]

`--raw` bypasses h11 (finds request ends by hand, writes pre-encoded bytes); it measures how fast the
load generator and the socket layer go, not a server we could ship.
"""

from __future__ import annotations

import argparse
import selectors
import signal
import socket
import sys
from collections.abc import Callable

import h11

from bench.loadgen import VALUE, response_end

BODY = (b'{"action":"set","node":{"key":"/bench/k1","value":"' + VALUE.encode()
        + b'","modifiedIndex":12,"createdIndex":12}}\n')
HEADERS: list[tuple[bytes, bytes]] = [
    (b"Access-Control-Allow-Headers", b"accept, content-type, authorization"),
    (b"Access-Control-Allow-Methods", b"POST, GET, OPTIONS, PUT, DELETE"),
    (b"Access-Control-Allow-Origin", b"*"),
    (b"Content-Type", b"application/json"),
    (b"X-Etcd-Cluster-Id", b"cdf818194e3a8c32"),
    (b"X-Etcd-Index", b"12"),
    (b"X-Raft-Index", b"13"),
    (b"X-Raft-Term", b"2"),
    (b"Date", b"Wed, 25 Nov 2026 12:00:00 GMT"),
    (b"Content-Length", str(len(BODY)).encode()),
]
RESPONSE = h11.Response(status_code=200, headers=HEADERS, reason=b"OK")
DATA = h11.Data(data=BODY)
EOM = h11.EndOfMessage()
RAW_RESPONSE = (b"HTTP/1.1 200 OK\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in HEADERS) + b"\r\n" + BODY)


class Client:
    """One accepted connection: its socket, h11 state and unsent output."""

    __slots__ = ("sock", "h11", "out", "raw")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.h11 = h11.Connection(h11.SERVER)
        self.out = b""
        self.raw = b""


def listen(port: int, host: str = "127.0.0.1") -> socket.socket:
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(4096)
    lsock.setblocking(False)
    return lsock


def accept_all(sel: selectors.BaseSelector, lsock: socket.socket) -> None:
    while True:
        try:
            sock, _ = lsock.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel.register(sock, selectors.EVENT_READ, Client(sock))


def close(sel: selectors.BaseSelector, c: Client) -> None:
    sel.unregister(c.sock)
    c.sock.close()


def h11_answers(c: Client, data: bytes) -> tuple[bytes, bool]:
    """Feed bytes to h11; return (response bytes for every complete request, keep the connection)."""
    conn = c.h11
    conn.receive_data(data)
    out: list[bytes] = []
    while True:
        try:
            ev = conn.next_event()
        except h11.RemoteProtocolError:
            return b"".join(out) + _bad_request(conn), False
        t = type(ev)
        if t is h11.EndOfMessage:
            out.append(conn.send(RESPONSE))
            out.append(conn.send(DATA))
            conn.send(EOM)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return b"".join(out), False  # Connection: close or HTTP/1.0
            conn.start_next_cycle()
        elif ev is h11.NEED_DATA or ev is h11.PAUSED:
            return b"".join(out), True
        elif t is h11.ConnectionClosed:
            return b"".join(out), False


def _bad_request(conn: h11.Connection) -> bytes:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return b""
    head = conn.send(h11.Response(status_code=400, headers=[(b"Content-Length", b"0"), (b"Connection", b"close")]))
    return head + conn.send(h11.EndOfMessage())


def raw_answers(c: Client, data: bytes) -> tuple[bytes, bool]:
    """No h11: count complete requests by their framing and answer each with the pre-encoded bytes."""
    buf = c.raw + data
    n = 0
    while True:
        end, _ = response_end(buf)
        if end < 0:
            break
        buf, n = buf[end:], n + 1
    c.raw = buf
    return RAW_RESPONSE * n, True


def on_readable(sel: selectors.BaseSelector, c: Client, answer: Callable[[Client, bytes], tuple[bytes, bool]]) -> None:
    try:
        data = c.sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        data = b""
    if not data:
        close(sel, c)
        return
    out, keep = answer(c, data)
    if out:
        send(sel, c, out)
    if not keep and not c.out:
        close(sel, c)


def send(sel: selectors.BaseSelector, c: Client, out: bytes) -> None:
    if c.out:
        c.out += out
        return
    try:
        n = c.sock.send(out)
    except (BlockingIOError, InterruptedError):
        n = 0
    except OSError:
        close(sel, c)
        return
    if n < len(out):
        c.out = out[n:]
        sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)


def on_writable(sel: selectors.BaseSelector, c: Client) -> None:
    try:
        n = c.sock.send(c.out)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        close(sel, c)
        return
    c.out = c.out[n:]
    if not c.out:
        sel.modify(c.sock, selectors.EVENT_READ, c)


def serve(port: int, raw: bool = False) -> None:
    sel = selectors.DefaultSelector()
    lsock = listen(port)
    sel.register(lsock, selectors.EVENT_READ, None)
    answer = raw_answers if raw else h11_answers
    read, write = selectors.EVENT_READ, selectors.EVENT_WRITE
    while True:
        for key, mask in sel.select():
            c = key.data
            if c is None:
                accept_all(sel, lsock)
                continue
            if mask & write:
                on_writable(sel, c)
            if mask & read and key.fd == c.sock.fileno():
                on_readable(sel, c, answer)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="canned-response selectors+h11 server (benchmark ceiling)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--raw", action="store_true", help="skip h11: loadgen/socket-layer capacity check")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve(a.port, a.raw)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
