"""Runtime membership changes under write load: add (catching up by snapshot), remove, remove the leader."""

from __future__ import annotations

import time

from tests.cluster.conftest import (
    MakeCluster,
    WriteLoad,
    assert_no_acked_write_lost,
    put,
    put_retry,
    read_all,
)
from tests.integration._http import request
from tests.support.kit import wait_for

EXIT_BOUND_S = 10.0  # a removed member shuts itself down


def _member_names(port: int) -> list[str]:
    r = request(port, "GET", "/v2/members")
    assert r.status == 200, (r.status, r.body)
    return sorted(m["name"] for m in r.json()["members"])


def test_add_then_remove_member_under_write_load(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, snapshot_count=100)
    lead = c.wait_leader()
    follower = next(m for m in c.members if m is not lead)
    for i in range(150):  # past --snapshot-count: the leader's log is compacted, a new member needs a snapshot
        assert put(c.members[i % 3], f"/pre/{i}", str(i)).status == 201
    with WriteLoad(lambda: c.alive, prefix="/load", threads=2) as load:
        assert wait_for(lambda: load.count() >= 20, 10)
        m4 = c.add_member("m4", via=follower)  # POST on a follower; the new member starts with "existing"
        assert wait_for(lambda: len(read_all(m4, "/pre", quorum=False)) == 150, 20), "m4 did not catch up"
        assert "installed snapshot from the leader" in m4.log_tail(20000)
        assert _member_names(lead.client_port) == ["m1", "m2", "m3", "m4"]
        n0 = load.count()
        assert wait_for(lambda: load.count() >= n0 + 20, 15), "writes stalled after adding m4"
        # Remove a follower (not m4) through another member.
        victim = next(m for m in c.members if m is not lead and m is not m4)
        r = c.remove_member(victim, via=m4)
        assert r.status == 204, (r.status, r.body)
        assert victim.proc is not None
        assert wait_for(lambda: victim.proc is None or victim.proc.poll() is not None,
                                                    EXIT_BOUND_S), f"removed {victim.name} still running"
        n1 = load.count()
        assert wait_for(lambda: load.count() >= n1 + 20, 15), "writes stalled after removing a member"
    assert victim.proc.returncode == 0, "the removed member did not exit cleanly"
    assert victim.name not in _member_names(lead.client_port)
    assert len(_member_names(m4.client_port)) == 3
    assert_no_acked_write_lost(c, load.result.acked)
    assert len(read_all(m4, "/pre", quorum=True)) == 150


def test_remove_the_leader_under_write_load(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    old = c.wait_leader()
    via = next(m for m in c.members if m is not old)
    with WriteLoad(lambda: c.alive, prefix="/load", threads=2) as load:
        assert wait_for(lambda: load.count() >= 20, 10)
        r = c.remove_member(old, via=via)
        assert r.status == 204, (r.status, r.body)
        t_removed = time.monotonic()
        assert wait_for(lambda: old.proc is None or old.proc.poll() is not None, EXIT_BOUND_S), \
            "removed leader still running"
        new = c.wait_leader(10)
        assert new is not old
        assert wait_for(lambda: len(load.acks_sent_after(t_removed)) >= 20, 15), "writes did not resume"
    assert old.name not in _member_names(new.client_port)
    assert_no_acked_write_lost(c, load.result.acked)
    # Two members left: both are needed now, and both work.
    put_retry(c, "/after", "x")
    assert old.proc is not None and old.proc.returncode == 0, "the removed leader did not exit cleanly"
