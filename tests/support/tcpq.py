"""What the kernel holds for a loopback TCP connection, read from /proc/net/tcp (Linux, IPv4).

For a connection from a socket we own to a server, both ends are on this machine, so both are listed:

* our end's tx_queue: bytes we sent that the server's kernel has not acknowledged yet;
* the server's end's rx_queue: bytes its kernel received that the server process has not read yet.

So "our tx_queue is 0 and the server's rx_queue is N" proves the server's kernel holds exactly N of our bytes
unread (e.g. a request queued at a SIGSTOPped process), and "both are 0" proves the server process has read
everything we sent. The server's end is listed even while it waits in the listen backlog, not yet accepted.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from tests.support.kit import wait_for

ESTABLISHED = 1


@dataclass(frozen=True)
class TcpEnd:
    state: int
    tx_queue: int
    rx_queue: int


def _addr(field: str) -> tuple[str, int]:
    ip, port = field.split(":")
    return socket.inet_ntoa(struct.pack("=I", int(ip, 16))), int(port, 16)


def tcp_end(local: tuple[str, int], remote: tuple[str, int]) -> TcpEnd | None:
    """The /proc/net/tcp entry of the connection end at `local` talking to `remote` (None: not listed)."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if _addr(fields[1]) == local and _addr(fields[2]) == remote:
                tx, rx = fields[4].split(":")
                return TcpEnd(int(fields[3], 16), int(tx, 16), int(rx, 16))
    return None


def ends(sock: socket.socket) -> tuple[TcpEnd | None, TcpEnd | None]:
    """(our end, the peer's end) of a connected socket."""
    ours, theirs = sock.getsockname()[:2], sock.getpeername()[:2]
    return tcp_end(ours, theirs), tcp_end(theirs, ours)


def peer_holds_unread(sock: socket.socket) -> int | None:
    """Bytes the peer's kernel holds unread from us, once all we sent has arrived (None: still in flight,
    or the connection is not established at both ends)."""
    mine, peer = ends(sock)
    if mine is None or peer is None or mine.state != ESTABLISHED or peer.state != ESTABLISHED:
        return None
    return peer.rx_queue if mine.tx_queue == 0 else None


def wait_peer_holds(sock: socket.socket, nbytes: int, timeout_s: float = 5.0) -> bool:
    """Wait until the peer's kernel holds exactly `nbytes` unread from us (0: the peer read it all)."""
    return wait_for(lambda: peer_holds_unread(sock) == nbytes, timeout_s, 0.01)
