"""SIGTERM/SIGINT stop the daemon cleanly and quickly, whatever its clients are doing."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from tests.support.servers import Server

from ._http import RawConn, answered, build_request, request
from .conftest import MakeServer


def _timed_stop(srv: Server, sig: int = signal.SIGTERM) -> tuple[int | None, float]:
    t0 = time.monotonic()
    rc = srv.stop(sig, timeout_s=10)
    return rc, time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_server_stops_cleanly(make_server: MakeServer, sig: int) -> None:
    srv = make_server().start()
    assert request(srv.port, "PUT", "/v2/keys/a", form={"value": "1"}).status == 201
    rc, took = _timed_stop(srv, sig)
    assert rc == 0
    assert took < 2.0
    log = srv.log_tail()
    assert f"received {signal.Signals(sig).name}, shutting down" in log and "stopped" in log
    assert "Traceback" not in log


def test_sigterm_with_watches_idle_and_half_sent_requests(make_server: MakeServer) -> None:
    srv = make_server().start()
    port = srv.port
    watches: list[RawConn] = []
    for i in range(30):
        c = RawConn(port)
        stream = "&stream=true" if i % 3 == 0 else ""
        c.send(build_request("GET", f"/v2/keys/w{i % 5}?wait=true{stream}"))
        assert c.read_head().status == 200
        watches.append(c)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    half = RawConn(port)
    half.send(b"PUT /v2/keys/half HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nvalue=")
    keepalive = RawConn(port)
    assert keepalive.call("GET", "/version").status == 200
    try:
        rc, took = _timed_stop(srv)
        assert rc == 0, srv.log_tail()
        assert took < 2.0
        for c in watches:  # every watcher sees the end of its connection, not a hang
            assert c.closed_by_peer(2)
        assert keepalive.closed_by_peer(2)
        assert half.closed_by_peer(2)
    finally:
        for c in [*watches, half, keepalive]:
            c.close()
        for s in idle:
            s.close()
    assert "Traceback" not in srv.log_tail()
    srv.start()
    assert request(srv.port, "GET", "/v2/keys/half").status == 404
    assert "torn" not in srv.log_tail(50000)


def test_sigterm_with_a_client_that_never_reads(make_server: MakeServer) -> None:
    srv = make_server().start()
    assert request(srv.port, "PUT", "/v2/keys/big", form={"value": "b" * (1 << 20)}).status == 201
    hog = socket.create_connection(("127.0.0.1", srv.port))
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    try:
        hog.sendall(build_request("GET", "/v2/keys/big") * 40)  # ~40 MiB of answers nobody reads
        assert answered(hog), "the server never started answering the hog"
        time.sleep(0.5)  # it fills the buffers and is left stuck writing
        rc, took = _timed_stop(srv)
        assert rc == 0 and took < 2.0, (rc, took, srv.log_tail())
    finally:
        hog.close()


def test_sigterm_during_write_load_keeps_acknowledged_writes(make_server: MakeServer) -> None:
    srv = make_server().start()
    acked: dict[str, str] = {}
    stop = threading.Event()

    def writer(t: int) -> None:
        try:
            with RawConn(srv.port, timeout=5) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    key, value = f"/st/t{t}/k{n}", f"{t}-{n}"
                    if c.call("PUT", f"/v2/keys{key}", form={"value": value}).status == 201:
                        acked[key] = value
        except (OSError, ValueError):
            pass

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    rc, took = _timed_stop(srv)
    stop.set()
    for t in threads:
        t.join(10)
    assert rc == 0 and took < 2.0, (rc, took, srv.log_tail())
    assert len(acked) > 50
    srv.start()
    with RawConn(srv.port) as c:
        for key, value in acked.items():
            r = c.call("GET", f"/v2/keys{key}")
            assert r.status == 200 and r.json()["node"]["value"] == value, key
    assert "torn" not in srv.log_tail(50000)
