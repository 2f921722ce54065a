"""Network partitions through relays, and a paused (SIGSTOP) leader."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.cluster.conftest import (
    CLIENT_ERRORS,
    REQUEST_TIMEOUT_S,
    Cluster,
    HistoryClients,
    MakeCluster,
    Member,
    WriteLoad,
    assert_no_acked_write_lost,
    get,
    put,
    put_retry,
    wait_for,
)
from tests.integration._http import Resp, request

# CheckQuorum: a leader that hears from no quorum for an election timeout (0.5 s) steps down.
STEP_DOWN_BOUND_S = 3.0


def _state(c: Cluster, m: Member) -> str | None:
    st = c.stats_self(m)
    return None if st is None else st.get("state")


def _in_thread(fn: object, out: dict[str, object], name: str) -> threading.Thread:
    def run() -> None:
        try:
            out[name] = fn()  # type: ignore[operator]
        except CLIENT_ERRORS as e:
            out[name] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("n", [3, 5])
def test_isolated_leader_steps_down_and_acknowledges_nothing(make_cluster: MakeCluster, n: int) -> None:
    """3 members: the leader alone; 5 members: the leader and one follower, cut from the other three."""
    c = make_cluster(n, relay=True)
    old = c.wait_leader()
    followers = [m for m in c.members if m is not old]
    minority, majority = [old, *followers[:n // 2 - 1]], followers[n // 2 - 1:]
    assert put(old, "/k", "before").status == 201
    with HistoryClients(lambda: c.alive, keys=("/lin/p",), threads=4, seed=5) as clients:
        time.sleep(0.5)
        t_cut = time.monotonic()
        c.partition(minority, majority)
        out: dict[str, object] = {}
        timeout = REQUEST_TIMEOUT_S + 5
        lone = minority[-1]  # the leader itself with 3 members, its follower in the minority with 5
        threads = [_in_thread(lambda: put(old, "/alone", "x", timeout=timeout), out, "put"),
                   _in_thread(lambda: get(old, "/k", quorum=True, timeout=timeout), out, "qget"),
                   _in_thread(lambda: put(lone, "/alone2", "y", timeout=timeout), out, "put2")]
        new = c.wait_leader(10, among=majority)
        assert new is not old
        assert wait_for(lambda: _state(c, old) != "StateLeader", STEP_DOWN_BOUND_S), \
            f"isolated leader still StateLeader {time.monotonic() - t_cut:.1f}s after the cut"
        assert put(new, "/k", "majority").status == 200
        for t in threads:
            t.join(timeout + 5)
        time.sleep(0.5)
        c.heal()
        c.wait_leader(10)
        time.sleep(1.0)
    # Nothing was acknowledged by the isolated member alone.
    for what in ("put", "qget", "put2"):
        r = out[what]
        assert isinstance(r, Resp), f"{what} in the minority: no answer ({r!r})"
        assert r.status == 500 and r.json()["errorCode"] == 300, (what, r.status, r.body)
    # After healing it follows and has the majority's write; its lone proposal is gone.
    assert wait_for(lambda: get(old, "/k").json().get("node", {}).get("value") == "majority", 10)
    for m in (new, old):
        assert get(m, "/alone", quorum=True).status == 404
        assert get(m, "/alone2", quorum=True).status == 404
    assert c.leaders() == [c.wait_leader()]
    clients.check()


@pytest.mark.parametrize("direction", ["outbound", "inbound"])
def test_one_way_cut_of_the_leader(make_cluster: MakeCluster, direction: str) -> None:
    """Only the leader's messages out (or only the messages to it) are dropped: the majority carries on."""
    c = make_cluster(3, relay=True)
    old = c.wait_leader()
    majority = [m for m in c.members if m is not old]
    for m in majority:
        if direction == "outbound":
            c.cut(old, m, both=False)
        else:
            c.cut(m, old, both=False)
    new = c.wait_leader(10, among=majority, not_=old)
    assert wait_for(lambda: _state(c, old) != "StateLeader", STEP_DOWN_BOUND_S), "the cut leader still leads"
    with WriteLoad(lambda: majority, prefix="/oneway", threads=2) as load:
        assert wait_for(lambda: load.count() >= 30, 15), "no writes on the majority"
        # Leadership stays with the majority while the cut lasts (no disruption by the cut member).
        assert c.agreed_leader(majority) is new
    c.heal()
    c.wait_leader(10)
    assert_no_acked_write_lost(c, load.result.acked, prefix="/oneway")


def test_paused_leader_steps_down_and_no_write_is_acknowledged_twice(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    old = c.wait_leader()
    others = [m for m in c.members if m is not old]
    with WriteLoad(lambda: c.alive, prefix="/pause", threads=3) as load:
        assert wait_for(lambda: load.count() >= 30, 10)
        old.signal(signal.SIGSTOP)
        try:
            new = c.wait_leader(10, among=others)
            assert put(new, "/k", "during-pause").status == 201
            # Queued at the paused leader (it reads them when it resumes, still believing it leads):
            out: dict[str, object] = {}
            threads = [_in_thread(lambda: get(old, "/k", quorum=True), out, "qget"),
                       _in_thread(lambda: put(old, "/stale", "x"), out, "put"),
                       _in_thread(lambda: request(old.client_port, "PUT", "/v2/keys/k",
                                                  form={"value": "cas", "prevValue": "before"}), out, "cas")]
            time.sleep(1.5)  # three election timeouts
        finally:
            old.signal(signal.SIGCONT)
        t_cont = time.monotonic()
        assert wait_for(lambda: _state(c, old) == "StateFollower", STEP_DOWN_BOUND_S), \
            f"resumed leader: {c.stats_self(old)}"
        for t in threads:
            t.join(REQUEST_TIMEOUT_S + 5)
        assert c.wait_leader() is new
        assert wait_for(lambda: len(load.acks_sent_after(t_cont)) >= 20, 10)
    print({k: (v.status, v.body[:120]) if isinstance(v, Resp) else repr(v) for k, v in out.items()})
    # The quorum read was invoked after "during-pause" was acknowledged: it must see it (or fail).
    r = out["qget"]
    if isinstance(r, Resp) and r.status == 200:
        assert r.json()["node"]["value"] == "during-pause", r.body
    # The CAS against the value before the pause must not succeed.
    r = out["cas"]
    assert not (isinstance(r, Resp) and r.status == 200), f"stale CAS acknowledged: {r.body!r}"
    # Every acknowledged write (before, during, after the pause) is in one history: distinct modifiedIndex.
    acks = load.result.acks
    r = out["put"]
    if isinstance(r, Resp) and r.status in (200, 201):
        assert get(new, "/stale", quorum=True).status == 200
    indexes = [a.index for a in acks]
    assert len(set(indexes)) == len(indexes), "two acknowledged writes share a modifiedIndex (two leaders?)"
    assert_no_acked_write_lost(c, load.result.acked, prefix="/pause")
    put_retry(c, "/k", "after")


def test_isolated_follower_rejoins_without_disrupting_the_leader(make_cluster: MakeCluster) -> None:
    """PreVote: a follower cut off for several election timeouts does not bump the term when it returns."""
    c = make_cluster(3, relay=True)
    lead = c.wait_leader()
    follower = next(m for m in c.members if m is not lead)
    r = put(lead, "/k", "1")
    term = int(r.header("X-Raft-Term") or 0)
    assert term > 0
    c.isolate(follower)
    time.sleep(2.0)  # four election timeouts: it keeps trying to campaign
    assert put(lead, "/k", "2").status == 200  # the other two still make a quorum
    c.heal()
    assert wait_for(lambda: get(follower, "/k").json().get("node", {}).get("value") == "2", 10), \
        "follower did not catch up"
    assert c.wait_leader() is lead
    r = put(follower, "/k", "3")
    assert r.status == 200 and int(r.header("X-Raft-Term") or 0) == term, (term, r.headers)
