"""pyetcd's v2 proxy (`pyetcd --proxy on|readonly`) in front of a 3-member pyetcd cluster: real processes
on loopback. What it relays, how watches stream through, what it answers itself, how it fails over, and
that a restarted proxy needs only its data dir. (tests/cluster/test_proxy_differential.py compares it
with etcd 3.4's proxy request by request.)
"""

from __future__ import annotations

import json
import subprocess
import time

from tests.cluster.conftest import CLIENT_ERRORS, Cluster, MakeCluster, StartProxy, put
from tests.integration._http import RawConn, build_request, request
from tests.support.kit import wait_for
from tests.support.servers import PYETCD_BIN, free_port


def _watchers(c: Cluster) -> int:
    total = 0
    for m in c.alive:
        try:
            r = request(m.client_port, "GET", "/v2/stats/store", timeout=2.0)
        except CLIENT_ERRORS:
            continue
        total += int(r.json()["watchers"]) if r.status == 200 else 0
    return total


def test_relays_the_client_api_as_the_members_answer(make_cluster: MakeCluster, start_proxy: StartProxy) -> None:
    c = make_cluster(3)
    p = start_proxy(c)
    config = request(p.port, "GET", "/v2/config/local/proxy").json()
    assert sorted(config["endpoints"]) == sorted(m.url for m in c.members)

    r = request(p.port, "PUT", "/v2/keys/dir/a", form={"value": "1"})
    assert r.status == 201 and r.json()["node"]["value"] == "1", r.body
    index = int(r.header("X-Etcd-Index") or 0)
    assert index > 0 and r.header("X-Etcd-Cluster-Id")
    direct = request(c.members[0].client_port, "GET", "/v2/keys/dir/a?quorum=true")
    via = request(p.port, "GET", "/v2/keys/dir/a?quorum=true")
    assert (via.status, via.body) == (direct.status, direct.body)
    for name in ("Content-Type", "X-Etcd-Cluster-Id", "Access-Control-Allow-Origin"):
        assert via.header(name) == direct.header(name), name
    # Errors pass through in etcd's form, status and body alike.
    missing = request(p.port, "GET", "/v2/keys/nope")
    assert missing.status == 404 and missing.json()["errorCode"] == 100
    # A POST (in-order key) carries its body; DELETE; HEAD gets headers only.
    posted = request(p.port, "POST", "/v2/keys/queue", form={"value": "job"})
    assert posted.status == 201 and posted.json()["node"]["value"] == "job"
    assert request(p.port, "DELETE", "/v2/keys/dir/a").status == 200
    head = request(p.port, "HEAD", "/v2/keys/queue")
    assert head.status == 200 and head.body == b""
    # Pipelined requests on one client connection are answered in order.
    with RawConn(p.port) as conn:
        conn.send(build_request("GET", "/version") + build_request("GET", "/v2/keys/queue")
                  + build_request("GET", "/v2/keys/nope"))
        answers = [conn.read_response() for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 404]
    assert "etcdserver" in answers[0].json()
    # HTTP/1.0 without a Host header: the member still gets a valid HTTP/1.1 request.
    with RawConn(p.port) as conn:
        conn.send(b"GET /v2/keys/queue HTTP/1.0\r\n\r\n")
        old = conn.read_response()
    assert old.status == 200 and old.json()["node"]["key"] == "/queue"


def test_stream_watch_events_come_through_one_by_one(make_cluster: MakeCluster, start_proxy: StartProxy) -> None:
    c = make_cluster(3)
    p = start_proxy(c)
    before = _watchers(c)
    with RawConn(p.port, timeout=10.0) as watch:
        watch.send(build_request("GET", "/v2/keys/s?wait=true&stream=true"))
        head = watch.read_head()
        assert head.status == 200 and head.header("Transfer-Encoding") == "chunked"
        for i in range(3):
            assert put(c.members[i], "/s", f"v{i}").status in (200, 201)
            event = json.loads(watch.read_chunk())  # this event, before the next write happens
            assert event["node"]["value"] == f"v{i}", event
        assert _watchers(c) == before + 1
    # The client went away: the proxy drops its member connection, and the member its watcher.
    assert wait_for(lambda: _watchers(c) == before, 5.0), "the member kept the abandoned watcher"


def test_long_poll_watch_woken_through_the_proxy(make_cluster: MakeCluster, start_proxy: StartProxy) -> None:
    c = make_cluster(3)
    p = start_proxy(c)
    with RawConn(p.port, timeout=10.0) as watch:
        watch.send(build_request("GET", "/v2/keys/w?wait=true"))
        assert wait_for(lambda: _watchers(c) >= 1, 5.0)
        assert request(p.port, "PUT", "/v2/keys/w", form={"value": "x"}).status == 201
        got = watch.read_response()
    assert got.status == 200 and got.json()["node"]["value"] == "x"


def test_readonly_proxy_refuses_all_but_get(make_cluster: MakeCluster, start_proxy: StartProxy) -> None:
    c = make_cluster(3)
    assert put(c.members[0], "/ro", "v").status == 201
    p = start_proxy(c, mode="readonly")
    for method in ("PUT", "POST", "DELETE", "HEAD"):
        r = request(p.port, method, "/v2/keys/ro", form={"value": "w"} if method in ("PUT", "POST") else None)
        assert (r.status, r.body) == (501, b""), (method, r.status, r.body)
    assert request(p.port, "GET", "/v2/keys/ro").json()["node"]["value"] == "v"
    assert request(c.members[0].client_port, "GET", "/v2/keys/ro").json()["node"]["value"] == "v"
    # Answers the proxy gives itself, pipelined by the thousand on one connection, come back in order.
    with RawConn(p.port, timeout=20.0) as conn:
        conn.send(build_request("PUT", "/v2/keys/ro", form={"value": "w"}) * 2000 + build_request("GET", "/v2/keys/ro"))
        statuses = [conn.read_response().status for _ in range(2001)]
    assert statuses == [501] * 2000 + [200]


def test_fails_over_then_answers_etcds_errors(make_cluster: MakeCluster, start_proxy: StartProxy) -> None:
    c = make_cluster(3)
    p = start_proxy(c, extra=["--proxy-failure-wait", "60000"])
    assert put(c.members[0], "/f", "v").status == 201
    first = request(p.port, "GET", "/v2/config/local/proxy").json()["endpoints"][0]  # tried first
    assert request(p.port, "GET", "/v2/keys/f").status == 200  # leaves a pooled connection to it
    victim = next(m for m in c.members if m.url == first)
    victim.kill9()
    statuses = [request(p.port, "GET", "/v2/keys/f").status for _ in range(20)]
    assert statuses == [200] * 20, statuses
    assert f"marked endpoint {victim.url} unavailable" in p.proc.log()
    assert victim.url not in request(p.port, "GET", "/v2/config/local/proxy").json()["endpoints"]
    for m in c.alive:
        m.kill9()
    r = request(p.port, "GET", "/v2/keys/f")
    assert r.status == 502 and r.header("Content-Type") == "application/json", (r.status, r.body)
    assert r.json() == {"message": "httpproxy: unable to get response from 2 endpoint(s)"} \
        or r.json() == {"message": "httpproxy: unable to get response from 3 endpoint(s)"}, r.body
    # Every endpoint is now held out (failure wait 60 s): nothing left to try.
    r = request(p.port, "GET", "/v2/keys/f")
    assert (r.status, r.json()) == (503, {"message": "httpproxy: zero endpoints currently available"})
    assert "marked endpoint" in p.proc.log()


def test_restarted_proxy_needs_only_its_data_dir(make_cluster: MakeCluster, start_proxy: StartProxy) -> None:
    c = make_cluster(3)
    p = start_proxy(c)
    kept = json.loads((p.data_dir / "proxy" / "cluster").read_text())
    assert sorted(kept["PeerURLs"]) == sorted(m.peer_url for m in c.members)
    assert p.proc.stop() == 0
    # No --proxy, no --initial-cluster: the data dir's proxy/ says what it is and where the cluster is.
    again = start_proxy(None, mode="off", data_dir=p.data_dir, port=p.port)
    assert request(again.port, "PUT", "/v2/keys/back", form={"value": "yes"}).status == 201
    assert "from cluster file" in again.proc.log()


def test_a_data_dir_with_member_and_proxy_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "both.etcd"
    (data / "member").mkdir(parents=True)
    (data / "proxy").mkdir()
    port = free_port()
    done = subprocess.run([str(PYETCD_BIN), "--data-dir", str(data), "--listen-client-urls",
                           f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "both member/ and proxy/ exist" in done.stderr, done.stderr


def test_read_timeout_cuts_a_silent_answer(make_cluster: MakeCluster, start_proxy: StartProxy) -> None:
    c = make_cluster(3)
    p = start_proxy(c, extra=["--proxy-read-timeout", "300"])
    assert request(p.port, "GET", "/version").status == 200  # answers in time pass
    with RawConn(p.port, timeout=10.0) as watch:
        t0 = time.monotonic()
        watch.send(build_request("GET", "/v2/keys/never?wait=true"))
        assert watch.read_head().status == 200  # the member answers a watch's head at once
        try:
            watch.read_chunk()
            cut = False
        except CLIENT_ERRORS:
            cut = True
        waited = time.monotonic() - t0
    assert cut and 0.25 < waited < 5.0, (cut, waited)
    assert "i/o timeout" in p.proc.log()
