"""Accepting within the open-files budget (runtime/connections.py, runtime/fdlimit.py), on loopback
sockets and a real selector: the budget's numbers, the longest idle client making room, a paused
listener that rests (not spins) and comes back, and EMFILE from accept() backing off."""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Iterator

import pytest
from pyetcd.runtime import connections as connections_mod
from pyetcd.runtime.connections import Conn, Connections, Listener
from pyetcd.runtime.fdlimit import ConnectionBudget


def test_the_budget_follows_the_limit() -> None:
    assert ConnectionBudget.for_limit(65536) == ConnectionBudget(65536, 65472, 65440, 64132)
    assert ConnectionBudget.for_limit(1024) == ConnectionBudget(1024, 960, 928, 864)
    assert ConnectionBudget.for_limit(300) == ConnectionBudget(300, 236, 204, 140)
    proxy = ConnectionBudget.for_limit(1024, peers=False, fds_per_conn=2)
    assert (proxy.total, proxy.clients, proxy.watches) == (480, 480, 416)
    tiny = ConnectionBudget.for_limit(20)
    assert tiny.total >= 1 and 1 <= tiny.clients <= tiny.total and 0 < tiny.watches <= tiny.clients


class _Front:
    def __init__(self) -> None:
        self.dirty: set[Conn] = set()
        self.watch_limit = 0
        self.closed_conns: list[Conn] = []

    def serve(self, conn: Conn) -> None:
        pass

    def closed(self, conn: Conn) -> None:
        self.closed_conns.append(conn)


class _EmfileSocket(socket.socket):
    """A listening socket whose accept() fails as it does when the process is out of fds."""

    def accept(self):  # type: ignore[no-untyped-def]
        raise OSError(errno.EMFILE, "Too many open files")


@pytest.fixture
def sel() -> Iterator[selectors.BaseSelector]:
    s = selectors.DefaultSelector()
    yield s
    s.close()


def _listen(sel: selectors.BaseSelector, cls: type[socket.socket] = socket.socket) -> Listener:
    sock = cls(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    listener = Listener(sock)
    sel.register(sock, selectors.EVENT_READ, listener)
    return listener


def _ready(sel: selectors.BaseSelector, listener: Listener) -> bool:
    return any(key.data is listener for key, _ in sel.select(0))


def _dial(listener: Listener) -> socket.socket:
    return socket.create_connection(listener.sock.getsockname(), timeout=2)


def _wait_ready(sel: selectors.BaseSelector, listener: Listener) -> bool:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if any(key.data is listener for key, _ in sel.select(0.05)):
            return True
    return False


def test_the_longest_idle_client_makes_room_then_newcomers_wait(sel: selectors.BaseSelector) -> None:
    front = _Front()
    conns = Connections(sel, front)
    assert front.watch_limit == conns.budget.watches
    conns.budget = ConnectionBudget(1000, 4, 2, 1)
    listener = _listen(sel)
    clients = [_dial(listener), _dial(listener)]
    assert _wait_ready(sel, listener)
    conns.accept(listener)
    assert conns.clients == 2
    first, second = list(conns.conns.values())
    first.http.last_rx_s = first.sent_s = time.monotonic() - 10  # idle long enough

    clients.append(_dial(listener))
    assert _wait_ready(sel, listener)
    conns.accept(listener)  # at the budget: `first` goes, the newcomer is in
    assert front.closed_conns == [first] and conns.clients == 2 and second in conns.conns.values()

    clients.append(_dial(listener))  # nobody idle long enough now (`second` sent something just now)
    second.http.last_rx_s = time.monotonic()
    assert _wait_ready(sel, listener)
    conns.accept(listener)
    assert conns.clients == 2 and sel.get_key(listener.sock).events == selectors.EVENT_WRITE
    assert not _ready(sel, listener)  # paused: the pending connection does not wake the loop

    conns.close(second)  # a slot frees: the listener is back, and the newcomer gets in
    assert sel.get_key(listener.sock).events == selectors.EVENT_READ
    assert _wait_ready(sel, listener)
    conns.accept(listener)
    assert conns.clients == 2
    for c in list(conns.conns.values()):
        conns.close(c)
    for c in clients:
        c.close()
    sel.unregister(listener.sock)  # as the loop's shutdown does, paused or not
    listener.sock.close()


def test_emfile_on_accept_backs_off_instead_of_spinning(sel: selectors.BaseSelector,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    conns = Connections(sel, _Front())
    listener = _listen(sel, _EmfileSocket)
    pending = _dial(listener)
    assert _wait_ready(sel, listener)
    conns.accept(listener)
    assert listener.sock.fileno() in conns.paused
    assert not _ready(sel, listener)  # the connection waits in the backlog; the loop sleeps
    conns.reap_idle(time.monotonic())  # before ACCEPT_BACKOFF_S: still resting
    assert not _ready(sel, listener)
    conns.reap_idle(time.monotonic() + connections_mod.ACCEPT_BACKOFF_S + 0.1)  # then it tries again
    assert not conns.paused and _wait_ready(sel, listener)
    pending.close()
    sel.unregister(listener.sock)
    listener.sock.close()
