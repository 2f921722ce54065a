"""Snapshots with a small --snapshot-count: files appear, old WAL segments go, restarts recover all."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from tests.support.servers import Server

from ._http import RawConn, dump, dump_when, flatten, request
from .conftest import MakeServer

SNAP_ARGS = ["--snapshot-count", "50"]


def _wal_files(srv: Server) -> list[Path]:
    return sorted((srv.data_dir / "member" / "wal").glob("*.wal"))


def _snap_files(srv: Server) -> list[Path]:
    return sorted((srv.data_dir / "member" / "snap").glob("*.snap"))


def _write_keys(port: int, prefix: str, n: int) -> dict[str, tuple[str, int]]:
    acked = {}
    with RawConn(port) as c:
        for i in range(n):
            key, value = f"{prefix}/k{i:04d}", f"v{i}-" + "x" * (i % 7)
            r = c.call("PUT", f"/v2/keys{key}", form={"value": value})
            assert r.status == 201, r.body
            acked[key] = (value, r.json()["node"]["modifiedIndex"])
    return acked


def _check(port: int, prefix: str, acked: dict[str, tuple[str, int]]) -> None:
    _, tree = dump(port, prefix)
    nodes = flatten(tree)
    for key, (value, index) in acked.items():
        assert key in nodes, key
        assert (nodes[key]["value"], nodes[key]["modifiedIndex"]) == (value, index), key


def test_snapshots_release_wal_and_recover(make_server: MakeServer) -> None:
    srv = make_server(extra=SNAP_ARGS).start()
    acked = _write_keys(srv.port, "/s", 500)
    # some history-bearing writes after the last snapshot point, plus deletes and TTLs
    with RawConn(srv.port) as c:
        assert c.call("DELETE", "/v2/keys/s/k0000").status == 200
        del acked["/s/k0000"]
        r = c.call("PUT", "/v2/keys/s/ttl", form={"value": "t", "ttl": "500"})
        expiration = r.json()["node"]["expiration"]

    snaps = _snap_files(srv)
    assert 1 <= len(snaps) <= 5, snaps  # several were taken, only the newest few are kept (--max-snapshots 5)
    assert all(re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{16}\.snap", p.name) for p in snaps)
    # The segments a snapshot covers are released, but the last 5 (--max-wals). Saving a snapshot cuts a
    # new segment, fsyncs it, then releases: a listing in between sees one more for that moment.
    deadline = time.monotonic() + 10
    while len(wals := _wal_files(srv)) > 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 1 <= len(wals) <= 5, wals
    log = srv.log_tail(100000)
    # 500 writes at --snapshot-count 50 ask for about 10; a forked writer takes one at a time and the
    # member asks for the next only once it finished, so under load fewer are taken (never none).
    assert log.count("saved snapshot at index") >= 3, log[-2000:]
    before_index, before_tree = dump(srv.port)
    old_event = request(srv.port, "GET", "/v2/keys/s/k0450?wait=true&waitIndex=1").json()

    assert srv.stop() == 0
    srv.start()
    m = re.findall(r"recovered: snapshot index (\d+), \d+ entries in the log, (\d+) replayed", srv.log_tail(100000))
    assert m and int(m[-1][0]) > 0, srv.log_tail()
    assert int(m[-1][1]) < 60  # only the tail after the snapshot is replayed
    after_index, after_tree = dump_when(srv.port, before_index + 1)
    assert (after_index, after_tree) == (before_index + 1, before_tree)  # + the republished attributes
    _check(srv.port, "/s", acked)
    assert request(srv.port, "GET", "/v2/keys/s/ttl").json()["node"]["expiration"] == expiration
    # watch history is part of the snapshot
    assert request(srv.port, "GET", "/v2/keys/s/k0450?wait=true&waitIndex=1").json() == old_event
    r = request(srv.port, "PUT", "/v2/keys/s/after", form={"value": "a"})
    assert r.json()["node"]["modifiedIndex"] == before_index + 2


def test_kill9_right_after_writes_with_snapshots(make_server: MakeServer) -> None:
    srv = make_server(extra=SNAP_ARGS).start()
    results: list[dict[str, tuple[str, int]]] = [{} for _ in range(4)]

    def writer(i: int) -> None:
        results[i] = _write_keys(srv.port, f"/k9/t{i}", 200)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    srv.kill9()  # immediately after the last acknowledgement
    acked = {k: v for r in results for k, v in r.items()}
    assert len(acked) == 800
    assert _snap_files(srv)
    srv.start()
    _check(srv.port, "/k9", acked)
    assert request(srv.port, "GET", "/v2/keys/").etcd_index >= max(i for _, i in acked.values())

    # and again: more writes, kill -9, restart, twice, everything still there
    for round_no in range(2):
        acked.update(_write_keys(srv.port, f"/k9/again{round_no}", 120))
        srv.kill9()
        srv.start()
        _check(srv.port, "/k9", acked)
    assert len(_wal_files(srv)) <= 5  # --max-wals
