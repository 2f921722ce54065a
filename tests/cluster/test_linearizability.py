"""Concurrent clients (PUT / CAS / quorum GET on several members) across a leader kill and restart,
checked for linearizability with the WGL checker of pyetcd.testing.sim."""

from __future__ import annotations

import time

from pyetcd.testing.sim.linearizability import OK, TEST_FAILED, Kind, Op, check

from tests.cluster.conftest import HistoryClients, MakeCluster


def test_checker_rejects_a_stale_read() -> None:
    """Negative control: a quorum read that misses an acknowledged write is caught."""
    ops = [
        Op(1, "/k", Kind.WRITE, 0.0, 1.0, value="a", outcome=OK),
        Op(2, "/k", Kind.WRITE, 2.0, 3.0, value="b", outcome=OK),
        Op(3, "/k", Kind.READ, 4.0, 5.0, value="a", outcome=OK),
    ]
    assert not check(ops).ok
    # ... but a write whose answer never came may take effect at any later point.
    ops = [
        Op(1, "/k", Kind.WRITE, 0.0, 1.0, value="a", outcome=OK),
        Op(2, "/k", Kind.WRITE, 2.0, None, value="b"),
        Op(3, "/k", Kind.READ, 4.0, 5.0, value="a", outcome=OK),
        Op(4, "/k", Kind.READ, 6.0, 7.0, value="b", outcome=OK),
        Op(5, "/k", Kind.CAS, 8.0, 9.0, value="c", expected="a", outcome=TEST_FAILED),
    ]
    assert check(ops).ok


def test_history_across_leader_kill_is_linearizable(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    lead = c.wait_leader()
    with HistoryClients(lambda: c.alive, threads=6, seed=3) as clients:
        time.sleep(1.5)
        lead.kill9()
        c.wait_leader(10, not_=lead)
        time.sleep(2.0)
        c.restart(lead)  # back as a follower: its quorum reads and forwarded writes join the history
        time.sleep(2.0)
    print(f"{len(clients.ops)} ops, {sum(o.complete is None for o in clients.ops)} indeterminate")
    clients.check()
