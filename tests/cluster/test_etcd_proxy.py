"""etcd 3.4's v2 proxy (`etcd --proxy on`) in front of a 3-member pyetcd cluster.

The proxy learns the cluster from a peer URL's `GET /members` (etcd's wire form: member ids as JSON
numbers) and forwards client requests to the members' client URLs. With ids as hex strings it logged
"could not unmarshal cluster response" and never served.
"""

from __future__ import annotations

import shutil
import time

import pytest

from tests.cluster.conftest import CLIENT_ERRORS, MakeCluster, StartProxy, put
from tests.integration._http import RawConn, Resp, build_request, request
from tests.support.kit import wait_for

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd (Debian etcd-server 3.4) is not on PATH")

PROXY_READY_S = 20.0


def via_proxy(port: int, method: str, target: str, timeout: float = 5.0, **form: str) -> Resp | None:
    try:
        return request(port, method, target, form=form or None, timeout=timeout)
    except CLIENT_ERRORS:
        return None


def test_etcd_v2_proxy_serves_a_pyetcd_cluster(make_cluster: MakeCluster, start_proxy: StartProxy) -> None:
    c = make_cluster(3)
    p = start_proxy(c, binary="etcd", wait=False)
    proxy, port = p.proc, p.port

    # A PUT through the proxy is acknowledged (the proxy answers 503 until it knows the members).
    acked: list[Resp] = []

    def put_through_proxy() -> bool:
        assert proxy.alive, f"the proxy exited:\n{proxy.log_tail()}"
        r = via_proxy(port, "PUT", "/v2/keys/proxy/k", value="v1")
        if r is not None and r.status in (200, 201):
            acked.append(r)
        return bool(acked)

    assert wait_for(put_through_proxy, PROXY_READY_S, 0.1), \
        f"no PUT through the proxy acknowledged within {PROXY_READY_S}s:\n{proxy.log_tail()}\n{c.logs()}"
    assert acked[0].status == 201, (acked[0].status, acked[0].body)
    assert acked[0].header("X-Etcd-Cluster-Id") is not None
    index = acked[0].json()["node"]["modifiedIndex"]

    # A GET through the proxy returns it.
    r = via_proxy(port, "GET", "/v2/keys/proxy/k?quorum=true")
    assert r is not None and r.status == 200, r
    assert r.json()["node"]["value"] == "v1"

    # A watch through the proxy, woken by a PUT sent straight to a pyetcd member. waitIndex makes the
    # watch catch that PUT however the two race; the members' watcher counts show it is pending first.
    watchers_before = sum(_watchers(m.client_port) for m in c.members)
    with RawConn(port, timeout=15.0) as watch:
        watch.send(build_request("GET", f"/v2/keys/proxy/w?wait=true&waitIndex={index + 1}"))
        assert wait_for(lambda: sum(_watchers(m.client_port) for m in c.members) > watchers_before, 10), \
            "the watch sent through the proxy never reached a member"
        t0 = time.monotonic()
        assert put(c.members[0], "/proxy/w", "woken").status == 201
        got = watch.read_response(timeout=10.0)
        woke_s = time.monotonic() - t0
    assert got.status == 200, (got.status, got.body)
    event = got.json()
    assert event["action"] == "set" and event["node"]["key"] == "/proxy/w" and event["node"]["value"] == "woken"
    assert woke_s < 5.0, f"the watch took {woke_s:.1f}s to wake"

    log = proxy.log()
    assert "could not unmarshal" not in log, log[-3000:]


def _watchers(port: int) -> int:
    try:
        r = request(port, "GET", "/v2/stats/store", timeout=2.0)
    except CLIENT_ERRORS:
        return 0
    return int(r.json()["watchers"]) if r.status == 200 else 0
