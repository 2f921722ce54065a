"""Restart durability: SIGTERM and kill -9 both recover keys, indexes, TTLs and the watch history."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.kit import wait_for
from tests.support.servers import Server

from ._http import RawConn, dump, dump_when, request, strip_ttl
from .conftest import MakeServer

STOPS = ["sigterm", "kill9"]


def _stop(srv: Server, how: str) -> None:
    if how == "kill9":
        srv.kill9()
    else:
        assert srv.stop() == 0, srv.log_tail()


def _populate(port: int) -> list[tuple[str, int, dict[str, Any]]]:
    """A mix of every kind of write; returns (key, index, response body) of each successful one."""
    writes: list[tuple[str, str, dict[str, str] | None]] = [
        ("PUT", "/d/a", {"value": "1"}),
        ("PUT", "/d/b", {"value": "two", "ttl": "300"}),
        ("PUT", "/d/dir", {"dir": "true", "ttl": "600"}),
        ("PUT", "/d/dir/x", {"value": "x"}),
        ("POST", "/d/q", {"value": "job1"}),
        ("POST", "/d/q", {"value": "job2"}),
        ("PUT", "/d/a", {"value": "1b", "prevValue": "1"}),
        ("PUT", "/d/gone", {"value": "g"}),
        ("DELETE", "/d/gone", None),
        ("PUT", "/d/_hidden", {"value": "h"}),
        ("PUT", "/d/uni%C3%A9", {"value": "é ü"}),
        ("PUT", "/d/b", {"value": "three", "ttl": "300", "prevExist": "true"}),
        ("PUT", "/d/empty", {"dir": "true"}),
        ("PUT", "/d/a", {"value": "1c", "prevIndex": "0"}),
    ]
    out = []
    with RawConn(port) as c:
        for method, key, form in writes:
            r = c.call(method, f"/v2/keys{key}", form=form)
            assert r.status in (200, 201), (method, key, r.status, r.body)
            body = r.json()
            out.append((body["node"]["key"], body["node"]["modifiedIndex"], body))
        # a key that expires while the server runs: its expire event must survive too
        r = c.call("PUT", "/v2/keys/d/short", form={"value": "s", "ttl": "1"})
        assert r.status == 201
        idx = r.json()["node"]["modifiedIndex"]
        out.append(("/d/short", idx, r.json()))
        w = c.call("GET", f"/v2/keys/d/short?wait=true&waitIndex={idx + 1}", timeout=5)
        assert w.status == 200 and w.json()["action"] == "expire", w.body
        out.append(("/d/short", w.json()["node"]["modifiedIndex"], w.json()))
    return out


def _history(port: int, writes: list[tuple[str, int, dict[str, Any]]]) -> list[Any]:
    """Each write's event read back through a waitIndex watch (answered from history)."""
    got = []
    with RawConn(port) as c:
        for key, index, _ in writes:
            r = c.call("GET", f"/v2/keys{quote(key)}?wait=true&waitIndex={index}", timeout=5)
            assert r.status == 200, (key, index, r.body)
            got.append(strip_ttl(r.json()))
    return got


@pytest.mark.parametrize("how", STOPS)
def test_restart_recovers_everything(make_server: MakeServer, how: str) -> None:
    srv = make_server().start()
    writes = _populate(srv.port)
    r = request(srv.port, "PUT", "/v2/keys/d/b", form={"refresh": "true", "ttl": "400", "prevExist": "true"})
    assert r.status == 200 and r.json()["node"]["ttl"] == 400
    raft_before = int(r.header("X-Raft-Index") or 0)
    before_index, before_tree = dump(srv.port)
    before_hist = _history(srv.port, writes)
    assert [strip_ttl(w[2]) for w in writes] == before_hist  # history == what the writers were told
    ttl_before = request(srv.port, "GET", "/v2/keys/d/b").json()["node"]
    dir_before = request(srv.port, "GET", "/v2/keys/d/dir").json()["node"]
    hidden_before = request(srv.port, "GET", "/v2/keys/d/_hidden").json()["node"]

    _stop(srv, how)
    srv.start()
    assert "recovered:" in srv.log_tail(20000)

    after_index, after_tree = dump_when(srv.port, before_index + 1)
    assert after_index == before_index + 1  # the restart republished the member's attributes, as etcd's does
    assert int(request(srv.port, "GET", "/v2/keys/").header("X-Raft-Index") or 0) > raft_before
    assert after_tree == before_tree
    r = request(srv.port, "GET", "/v2/keys/d/b")
    assert r.etcd_index == before_index + 1
    node = r.json()["node"]
    assert node["expiration"] == ttl_before["expiration"]
    assert node["value"] == "three"
    assert (node["createdIndex"], node["modifiedIndex"]) == (ttl_before["createdIndex"], ttl_before["modifiedIndex"])
    assert 390 < node["ttl"] <= 400
    assert request(srv.port, "GET", "/v2/keys/d/dir").json()["node"]["expiration"] == dir_before["expiration"]
    assert request(srv.port, "GET", "/v2/keys/d/_hidden").json()["node"] == hidden_before
    assert request(srv.port, "GET", "/v2/keys/d/short").status == 404
    assert _history(srv.port, writes) == before_hist

    # indexes continue where they were
    r = request(srv.port, "PUT", "/v2/keys/d/next", form={"value": "n"})
    assert r.status == 201 and r.json()["node"]["modifiedIndex"] == before_index + 2
    assert r.etcd_index == before_index + 2


@pytest.mark.parametrize("how", STOPS)
def test_ttl_expiring_while_down_expires_after_restart(make_server: MakeServer, how: str) -> None:
    srv = make_server().start()
    with RawConn(srv.port) as c:
        assert c.call("PUT", "/v2/keys/e/keep", form={"value": "stay"}).status == 201
        r = c.call("PUT", "/v2/keys/e/k", form={"value": "v", "ttl": "2"})
        assert r.status == 201
        k_index = r.json()["node"]["modifiedIndex"]
        expiration = r.json()["node"]["expiration"]
        assert c.call("PUT", "/v2/keys/e/tdir", form={"dir": "true", "ttl": "2"}).status == 201
        r = c.call("PUT", "/v2/keys/e/tdir/child", form={"value": "c"})
        assert r.status == 201
        last = r.etcd_index
    set_at = time.monotonic()
    _stop(srv, how)
    time.sleep(max(0.0, 2.3 - (time.monotonic() - set_at)))  # the TTLs (2 s) run out while it is down
    srv.start()
    started = time.monotonic()

    assert wait_for(lambda: request(srv.port, "GET", "/v2/keys/e/k").status == 404, 3.0), "key did not expire"
    assert wait_for(lambda: request(srv.port, "GET", "/v2/keys/e/tdir").status == 404, 3.0)
    assert time.monotonic() - started < 3.0

    r = request(srv.port, "GET", f"/v2/keys/e/k?wait=true&waitIndex={last + 1}", timeout=5)
    ev = r.json()
    assert ev["action"] == "expire"
    assert ev["node"] == {"key": "/e/k", "modifiedIndex": ev["node"]["modifiedIndex"], "createdIndex": k_index}
    assert ev["node"]["modifiedIndex"] > last
    # prevNode's ttl is the time left when the expiry is applied, rounded as etcd does: omitted (0) when
    # that happens within a second of the deadline, -1 later (a slow restart); both are etcd's answers.
    prev = ev["prevNode"]
    assert prev.pop("ttl", -1) == -1
    assert prev == {"key": "/e/k", "value": "v", "expiration": expiration,
                    "modifiedIndex": k_index, "createdIndex": k_index}
    r = request(srv.port, "GET", f"/v2/keys/e/tdir/child?wait=true&waitIndex={last + 1}", timeout=5)
    ev = r.json()
    assert ev["action"] == "expire" and ev["node"]["key"] == "/e/tdir" and ev["node"]["dir"] is True

    r = request(srv.port, "GET", "/v2/keys/e/keep")
    assert r.status == 200 and r.json()["node"]["value"] == "stay"
    assert wait_for(lambda: request(srv.port, "GET", "/v2/keys/e/keep").etcd_index == last + 3, 5.0)
    # exactly two expire events, each one index, and the restart's republished member attributes (one)

    # and the expirations themselves are durable
    srv.stop()
    srv.start()
    assert request(srv.port, "GET", "/v2/keys/e/k").status == 404
    assert dump_when(srv.port, last + 4)[0] == last + 4  # nothing expires twice; one more republication
