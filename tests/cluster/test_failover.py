"""Crashes: kill -9 the leader under load, a minority (catch-up by log and by snapshot), a majority."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.cluster.conftest import (
    CLIENT_ERRORS,
    REQUEST_TIMEOUT_S,
    MakeCluster,
    WriteLoad,
    assert_no_acked_write_lost,
    get,
    put,
    put_retry,
    read_all,
)
from tests.integration._http import Resp
from tests.support.kit import wait_for

# From kill -9 of the leader to the first acknowledged write sent after it: detection (one election
# timeout, randomized up to two) + an election + a round trip, with a wide margin for a loaded 2-core box.
FAILOVER_BOUND_S = 4.0


def test_kill_leader_under_write_load(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    lead = c.wait_leader()
    with WriteLoad(lambda: c.alive, threads=3) as load:
        assert wait_for(lambda: load.count() >= 60, 15), "no write load before the kill"
        t_kill = time.monotonic()
        lead.kill9()
        new = c.wait_leader(10, not_=lead)
        assert wait_for(lambda: len(load.acks_sent_after(t_kill)) >= 20, 15), "writes did not resume"
    result = load.result
    window = min(a.acked for a in result.acks if a.sent > t_kill) - t_kill
    print(f"failover window {window:.2f}s; {len(result.acks)} acked, {result.failed} failed, "
          f"{result.indeterminate} without answer")
    assert window < FAILOVER_BOUND_S, f"failover window {window:.2f}s"
    assert new is not lead
    # The old leader's writes and the new leader's are one history: distinct indexes, all present.
    indexes = [a.index for a in result.acks]
    assert len(set(indexes)) == len(indexes), "two acknowledged writes share a modifiedIndex"
    assert_no_acked_write_lost(c, result.acked)
    # The old leader comes back as a follower and catches up.
    c.restart(lead)
    assert_no_acked_write_lost(c, result.acked, members=[lead])
    assert c.wait_leader() is not None


@pytest.mark.parametrize(("n", "snapshot_count"), [(5, None), (3, 100)], ids=["5-members-log", "3-members-snapshot"])
def test_minority_crash_restart_catches_up(make_cluster: MakeCluster, n: int, snapshot_count: int | None) -> None:
    c = make_cluster(n, snapshot_count=snapshot_count)
    lead = c.wait_leader()
    followers = [m for m in c.members if m is not lead]
    down = followers[: (n - 1) // 2]
    for i in range(20):
        assert put(c.members[i % n], f"/before/{i}", str(i)).status == 201
    for m in down:
        m.kill9()
    # With --snapshot-count 100 the leader compacts its log past what the restarted members have.
    writes = 300 if snapshot_count else 120
    with WriteLoad(lambda: c.alive, prefix="/during", threads=3) as load:
        assert wait_for(lambda: load.count() >= writes, 30), f"only {load.count()} writes with a minority down"
    assert load.result.acks, "no write acknowledged with a minority down"
    for m in down:
        c.restart(m)
    expected = load.result.acked
    for m in down:
        assert wait_for(lambda m=m: read_all(m, "/during", quorum=False) == expected, 20, 0.2), \
            f"{m.name} did not catch up: {len(read_all(m, '/during', quorum=False))}/{len(expected)} keys"
        assert len(read_all(m, "/before", quorum=False)) == 20
        if snapshot_count is not None:
            assert "installed snapshot from the leader" in m.log_tail(20000), \
                f"{m.name} caught up without a snapshot although the log was compacted"
    # The restarted members take part again: a write needs them once others are gone.
    assert_no_acked_write_lost(c, expected, prefix="/during")


def _timed(fn: object) -> tuple[float, Resp | Exception]:
    t0 = time.monotonic()
    try:
        r: Resp | Exception = fn()  # type: ignore[operator]
    except CLIENT_ERRORS as e:
        r = e
    return time.monotonic() - t0, r


def test_majority_down_fails_with_error_then_resumes(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    lead = c.wait_leader()
    assert put(lead, "/k", "before").status == 201
    survivor = lead
    for m in c.members:
        if m is not survivor:
            m.kill9()
    # Both at once (each waits for etcd's request timeout): a write and a quorum read on the survivor.
    results: dict[str, tuple[float, Resp | Exception]] = {}
    timeout = REQUEST_TIMEOUT_S + 5
    threads = [
        threading.Thread(target=lambda: results.__setitem__("put", _timed(lambda: put(survivor, "/k", "x",
                                                                                      timeout=timeout)))),
        threading.Thread(target=lambda: results.__setitem__("qget", _timed(lambda: get(survivor, "/k", quorum=True,
                                                                                       timeout=timeout)))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    for what in ("put", "qget"):
        elapsed, r = results[what]
        assert isinstance(r, Resp), f"{what}: no answer ({r!r}) after {elapsed:.1f}s"
        assert r.status == 500, (what, r.status, r.body)
        assert r.json() == {"errorCode": 300, "message": "Raft Internal Error",
                            "cause": "etcdserver: request timed out", "index": 0}, (what, r.body)
        assert REQUEST_TIMEOUT_S - 1 <= elapsed <= REQUEST_TIMEOUT_S + 3, f"{what} answered after {elapsed:.1f}s"
    # A plain read is served locally.
    r = get(survivor, "/k")
    assert r.status == 200 and r.json()["node"]["value"] == "before"
    # The others come back: the cluster resumes.
    for m in c.members:
        if m is not survivor:
            c.restart(m)
    c.wait_leader()
    put_retry(c, "/k", "after")
    for m in c.members:
        assert get(m, "/k", quorum=True).json()["node"]["value"] == "after"


def test_whole_cluster_kill9_under_load_loses_no_acked_write(make_cluster: MakeCluster) -> None:
    """Every member killed at once: what a quorum acknowledged was fsynced by a quorum, so it survives."""
    c = make_cluster(3, snapshot_count=100)
    with WriteLoad(lambda: c.alive, prefix="/all", threads=3) as load:
        assert wait_for(lambda: load.count() >= 150, 20)
        for m in c.members:
            m.kill9()
    acked = load.result.acked
    for m in c.members:
        c.launch(m)
    c.wait_leader(15)
    assert_no_acked_write_lost(c, acked, prefix="/all")


def test_graceful_leader_shutdown_hands_over_leadership(make_cluster: MakeCluster) -> None:
    """SIGTERM on the leader transfers leadership: the next leader is in place well before any follower's
    election timeout (1.5 s here, so a plain election could not be that fast)."""
    c = make_cluster(3, extra=["--election-timeout", "1500"])
    old = c.wait_leader()
    others = [m for m in c.members if m is not old]
    with WriteLoad(lambda: c.alive, prefix="/term", threads=2) as load:
        assert wait_for(lambda: load.count() >= 20, 10)
        t_stop = time.monotonic()
        old.signal(signal.SIGTERM)
        c.wait_leader(10, among=others, not_=old)
        handover = time.monotonic() - t_stop
        assert old.stop() == 0
        assert wait_for(lambda: len(load.acks_sent_after(t_stop)) >= 10, 15), "writes did not resume"
    assert handover < 0.75, f"{handover:.2f}s from SIGTERM to the next leader: no leadership transfer?"
    assert_no_acked_write_lost(c, load.result.acked, prefix="/term")
