"""Many watchers, pipelining, chunked bodies, HTTP/1.0 and concurrent writers on one real server."""

from __future__ import annotations

import json
import threading
import time

from tests.support.servers import Server

from ._http import FORM_CT, RawConn, build_request, raw_exchange, request

WATCHERS_EACH = 100


def _watchers(srv: Server) -> int:
    return int(json.loads(request(srv.port, "GET", "/v2/stats/store").body)["watchers"])


def test_300_long_poll_watches_all_woken(server: Server) -> None:
    port = server.port
    start_index = request(port, "PUT", "/v2/keys/cw/same", form={"value": "0"}).etcd_index
    groups: dict[str, list[RawConn]] = {"same": [], "recursive": [], "distinct": []}
    try:
        for i in range(WATCHERS_EACH):
            for group, target in (("same", "/v2/keys/cw/same?wait=true"),
                                  ("recursive", "/v2/keys/cw?wait=true&recursive=true"),
                                  ("distinct", f"/v2/keys/cw/k{i}?wait=true")):
                c = RawConn(port, timeout=10)
                c.send(build_request("GET", target))
                groups[group].append(c)
        heads = {g: [c.read_head() for c in conns] for g, conns in groups.items()}
        for g in heads.values():
            for h in g:
                assert h.status == 200 and h.chunked
                assert h.etcd_index == start_index
        assert _watchers(server) == 3 * WATCHERS_EACH

        # one PUT wakes the 200 watchers of /cw/same and of /cw (recursive)
        t0 = time.monotonic()
        r = request(port, "PUT", "/v2/keys/cw/same", form={"value": "1"})
        assert r.status == 200
        same_index = r.etcd_index
        for g in ("same", "recursive"):
            for c, h in zip(groups[g], heads[g], strict=True):
                ev = c.read_body(h).json()
                assert ev["action"] == "set" and ev["node"] == {
                    "key": "/cw/same", "value": "1", "modifiedIndex": same_index, "createdIndex": same_index}
                assert ev["prevNode"]["value"] == "0"
        assert time.monotonic() - t0 < 5
        assert _watchers(server) == WATCHERS_EACH

        # one PUT each wakes exactly its own watcher
        with RawConn(port) as w:
            for i in range(WATCHERS_EACH):
                assert w.call("PUT", f"/v2/keys/cw/k{i}", form={"value": f"v{i}"}).status == 201
        for i, (c, h) in enumerate(zip(groups["distinct"], heads["distinct"], strict=True)):
            ev = c.read_body(h).json()
            assert ev["node"]["key"] == f"/cw/k{i}" and ev["node"]["value"] == f"v{i}"
            assert ev["node"]["modifiedIndex"] == same_index + 1 + i
        assert _watchers(server) == 0
        # a connection whose watch ended is an ordinary keep-alive connection again
        c = groups["distinct"][7]
        assert c.call("GET", "/v2/keys/cw/k7").json()["node"]["value"] == "v7"
    finally:
        for conns in groups.values():
            for c in conns:
                c.close()
    assert _watchers(server) == 0


def test_closed_watch_connections_are_forgotten(server: Server) -> None:
    conns = [RawConn(server.port) for _ in range(50)]
    for c in conns:
        c.send(build_request("GET", "/v2/keys/gone?wait=true"))
        assert c.read_head().status == 200
    assert _watchers(server) == 50
    for c in conns:
        c.close()
    deadline = time.monotonic() + 5
    while _watchers(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _watchers(server) == 0
    assert request(server.port, "PUT", "/v2/keys/gone", form={"value": "x"}).status == 201


def test_stream_watch_gets_every_event(server: Server) -> None:
    with RawConn(server.port) as c:
        c.send(build_request("GET", "/v2/keys/st?wait=true&recursive=true&stream=true"))
        head = c.read_head()
        assert head.status == 200 and head.chunked
        with RawConn(server.port) as w:
            for i in range(20):
                assert w.call("PUT", f"/v2/keys/st/k{i}", form={"value": str(i)}).status == 201
        for i in range(20):
            ev = json.loads(c.read_chunk())
            assert ev["node"]["key"] == f"/st/k{i}"


def test_50_pipelined_requests_in_one_write_answered_in_order(server: Server) -> None:
    """Groups of ten: a write, a read that must see it, a HEAD, and reads of missing keys."""
    reqs: list[tuple[str, bytes]] = []
    for i in range(5):
        reqs.append(("PUT", build_request("PUT", "/v2/keys/pl/k", form={"value": f"v{i}"})))
        reqs.append(("GET", build_request("GET", "/v2/keys/pl/k")))
        reqs.append(("HEAD", build_request("HEAD", "/v2/keys/pl/k")))
        reqs.extend(("GET", build_request("GET", f"/v2/keys/pl/missing{i}-{j}")) for j in range(7))
    assert len(reqs) == 50
    with RawConn(server.port, timeout=15) as c:
        c.send(b"".join(data for _, data in reqs))  # one write
        last_index = 0
        for n, (method, _) in enumerate(reqs):
            i, kind = divmod(n, 10)
            r = c.read_response(head_request=method == "HEAD")
            if kind == 0:
                assert r.status in (200, 201)
                assert r.json()["node"]["value"] == f"v{i}"
                assert r.etcd_index > last_index
                last_index = r.etcd_index
            elif kind == 1:
                assert r.json()["node"]["value"] == f"v{i}"  # sees the PUT pipelined before it
                assert r.etcd_index == last_index
            elif kind == 2:
                assert r.status == 200 and r.body == b"" and int(r.header("Content-Length") or 0) > 0
            else:
                assert r.status == 404 and r.json()["cause"] == f"/pl/missing{i}-{kind - 3}"
        # nothing more is pending on the connection
        assert c.call("GET", "/version").status == 200


def test_pipelined_writes_are_not_delayed(server: Server) -> None:
    with RawConn(server.port) as c:
        c.send(b"".join(build_request("PUT", f"/v2/keys/pp{i}", form={"value": "x"}) for i in range(5)))
        t0 = time.monotonic()
        for _ in range(5):
            assert c.read_response(timeout=max(0.01, 1.0 - (time.monotonic() - t0))).status == 201


def test_pipelined_watch_then_get(server: Server) -> None:
    """A GET pipelined behind a blocking watch waits for the watch to finish, then is answered."""
    with RawConn(server.port) as c:
        c.send(build_request("GET", "/v2/keys/pw?wait=true") + build_request("GET", "/version"))
        head = c.read_head()
        assert head.status == 200  # sent once the watch is registered (see the watcher count above)
        assert request(server.port, "PUT", "/v2/keys/pw", form={"value": "x"}).status == 201
        assert c.read_body(head).json()["node"]["value"] == "x"
        assert c.read_response().status == 200


def test_chunked_request_body(server: Server) -> None:
    form = b"value=chunked+body&ttl=100"
    chunks = [form[:3], form[3:9], form[9:]]
    body = b"".join(b"%x\r\n%s\r\n" % (len(ch), ch) for ch in chunks) + b"0\r\n\r\n"
    head = build_request("PUT", "/v2/keys/ch", headers=[("Content-Type", FORM_CT), ("Transfer-Encoding", "chunked")])
    with RawConn(server.port) as c:
        c.send(head + body)
        r = c.read_response()
        assert r.status == 201, r.body
        node = r.json()["node"]
        assert node["value"] == "chunked body" and node["ttl"] == 100
        # chunk extensions, a trailer and a 1 MiB value over many chunks, sent slowly
        value = b"value=" + b"z" * (1 << 20)
        c.send(build_request("PUT", "/v2/keys/ch2", headers=[("Content-Type", FORM_CT),
                                                             ("Transfer-Encoding", "chunked")]))
        for i in range(0, len(value), 100_000):
            piece = value[i:i + 100_000]
            c.send(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.005)
        c.send(b"0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
        assert r.status == 201 and len(r.json()["node"]["value"]) == 1 << 20
        assert c.call("GET", "/v2/keys/ch").json()["node"]["value"] == "chunked body"


def test_http10_client(server: Server) -> None:
    port = server.port
    out = raw_exchange(port, b"PUT /v2/keys/old HTTP/1.0\r\nContent-Type: " + FORM_CT.encode()
                       + b"\r\nContent-Length: 11\r\n\r\nvalue=1.0ok")
    assert out.startswith(b"HTTP/1.1 201 Created\r\n"), out[:200]
    head, _, body = out.partition(b"\r\n\r\n")
    assert json.loads(body)["node"]["value"] == "1.0ok"

    with RawConn(port) as c:
        c.send(b"GET /v2/keys/old HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.json()["node"]["value"] == "1.0ok"
        assert c.closed_by_peer(5)  # HTTP/1.0 without keep-alive: the server closes

    # a watch answered to an HTTP/1.0 client cannot be chunked: the body is delimited by the close
    with RawConn(port) as c:
        c.send(b"GET /v2/keys/old?wait=true HTTP/1.0\r\n\r\n")
        head10 = c.read_head()
        assert head10.status == 200 and not head10.chunked
        assert request(port, "PUT", "/v2/keys/old", form={"value": "new"}).status == 200
        r = c.read_body(head10)
        assert json.loads(r.body)["node"]["value"] == "new"


def test_concurrent_compare_and_swap_is_atomic(server: Server) -> None:
    port = server.port
    assert request(port, "PUT", "/v2/keys/ctr", form={"value": "0"}).status == 201
    wins: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with RawConn(port) as c:
            for _ in range(60):
                cur = c.call("GET", "/v2/keys/ctr").json()["node"]
                r = c.call("PUT", "/v2/keys/ctr", form={"value": str(int(cur["value"]) + 1),
                                                        "prevIndex": str(cur["modifiedIndex"])})
                if r.status == 200:
                    with lock:
                        wins.append(1)
                else:
                    assert r.status == 412 and r.json()["errorCode"] == 101

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert int(request(port, "GET", "/v2/keys/ctr").json()["node"]["value"]) == len(wins) > 0
