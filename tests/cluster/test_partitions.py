"""Network partitions through relays, and a paused (SIGSTOP) leader."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.cluster.conftest import (
    CLIENT_ERRORS,
    ELECTION_MS,
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
from tests.integration._http import RawConn, Resp, build_request, request
from tests.support.tcpq import ends, wait_peer_holds

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


def _answer(conn: RawConn) -> Resp | str:
    try:
        return conn.read_response(timeout=REQUEST_TIMEOUT_S + 5)
    except CLIENT_ERRORS as e:
        return f"no answer: {e!r}"


def _outcome(r: Resp | str) -> tuple[int, int | None] | str:
    """(status, errorCode) of an answer; the error text when there was none."""
    if isinstance(r, str):
        return r
    return r.status, r.json().get("errorCode") if r.status >= 400 else None


TIMED_OUT = (500, 300)  # etcd's "etcdserver: request timed out": the request's fate is not known


def test_paused_leader_steps_down_and_no_write_is_acknowledged_twice(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    old = c.wait_leader()
    others = [m for m in c.members if m is not old]
    assert put(old, "/k", "before").status == 201
    requests = {"qget": build_request("GET", "/v2/keys/k?quorum=true"),
                "put": build_request("PUT", "/v2/keys/stale", form={"value": "x"}),
                "cas": build_request("PUT", "/v2/keys/k", form={"value": "cas", "prevValue": "before"})}
    conns: dict[str, RawConn] = {}
    try:
        with WriteLoad(lambda: c.alive, prefix="/pause", threads=3) as load:
            assert wait_for(lambda: load.count() >= 30, 10)
            old.signal(signal.SIGSTOP)
            try:
                new = c.wait_leader(10, among=others)
                assert put(new, "/k", "during-pause").status == 200
                # Queued at the paused leader, sent after "during-pause" was acknowledged: its kernel holds
                # each request whole and unread (it reads them when it resumes, still believing it leads).
                for name, data in requests.items():
                    conns[name] = RawConn(old.client_port, timeout=REQUEST_TIMEOUT_S + 5)
                    conns[name].send(data)
                for name, data in requests.items():
                    assert wait_peer_holds(conns[name].sock, len(data)), \
                        f"{name}: the paused leader's kernel does not hold the request: {ends(conns[name].sock)}"
                assert _state(c, new) == "StateLeader" and old.alive
            finally:
                old.signal(signal.SIGCONT)
            t_cont = time.monotonic()
            assert wait_for(lambda: _state(c, old) == "StateFollower", STEP_DOWN_BOUND_S), \
                f"resumed leader: {c.stats_self(old)}"
            out = {name: _answer(conn) for name, conn in conns.items()}
            assert c.wait_leader() is new
            assert wait_for(lambda: len(load.acks_sent_after(t_cont)) >= 20, 10)
    finally:
        for conn in conns.values():
            conn.close()
    outcomes = {name: _outcome(r) for name, r in out.items()}
    print("answers of the resumed leader:", outcomes)
    # Every queued request got an answer, and only one the scenario allows:
    # the quorum read, invoked after "during-pause" was acknowledged, sees it or times out;
    assert outcomes["qget"] in ((200, None), TIMED_OUT), outcomes
    if outcomes["qget"] == (200, None):
        assert out["qget"].json()["node"]["value"] == "during-pause", out["qget"].body  # type: ignore[union-attr]
    # the CAS against the value before the pause is refused (compare failed) or times out, and never applies;
    assert outcomes["cas"] in ((412, 101), TIMED_OUT), outcomes
    assert get(new, "/k", quorum=True).json()["node"]["value"] == "during-pause"
    # the plain write is acknowledged and then present, or times out (then either way is possible).
    assert outcomes["put"] in ((201, None), TIMED_OUT), outcomes
    stale = get(new, "/stale", quorum=True).status
    print(f"/stale after the {outcomes['put']} answer: {stale}")
    if outcomes["put"] == (201, None):
        assert stale == 200
    # Every acknowledged write (before, during, after the pause) is in one history: distinct modifiedIndex.
    indexes = [a.index for a in load.result.acks]
    assert len(set(indexes)) == len(indexes), "two acknowledged writes share a modifiedIndex (two leaders?)"
    assert_no_acked_write_lost(c, load.result.acked, prefix="/pause")
    put_retry(c, "/k", "after")


def _local_term(m: Member) -> int:
    """The member's own Raft term: a plain GET is served from its store, with its term in X-Raft-Term."""
    r = get(m, "/", timeout=2.0)
    assert r.status == 200, (r.status, r.body)
    return int(r.header("X-Raft-Term") or 0)


def _fails_to(lead: Member, m: Member) -> int:
    """The leader's count of failed sends to m (/v2/stats/leader)."""
    r = request(lead.client_port, "GET", "/v2/stats/leader", timeout=2.0)
    assert r.status == 200, (r.status, r.body)
    return int(r.json()["followers"][m.id_hex]["counts"]["fail"])


def test_isolated_follower_rejoins_without_disrupting_the_leader(make_cluster: MakeCluster) -> None:
    """PreVote: a follower cut off for several election timeouts does not bump the term when it returns."""
    c = make_cluster(3, relay=True)
    lead = c.wait_leader()
    follower = next(m for m in c.members if m is not lead)
    others = [m for m in c.members if m is not follower]
    r = put(lead, "/k", "1")
    term = int(r.header("X-Raft-Term") or 0)
    assert term > 0
    assert wait_for(lambda: _local_term(follower) == term, 5)
    fails_before = _fails_to(lead, follower)
    c.isolate(follower)
    # It stops hearing from the leader and, one election timeout later, asks for pre-votes: a pre-candidate.
    assert wait_for(lambda: _state(c, follower) == "StatePreCandidate", 5 * ELECTION_MS / 1000), \
        f"the isolated follower did not start campaigning: {c.stats_self(follower)}"
    # Cut off for four more election timeouts, sampled all along: still a pre-candidate (never a candidate:
    # no pre-vote can be won) and still at the leader's term, while the leader carries on without it.
    refused_before = sum(m.relay.refused for m in others if m.relay is not None)
    states: set[str | None] = set()
    terms: set[int] = set()
    deadline = time.monotonic() + 4 * ELECTION_MS / 1000
    while time.monotonic() < deadline:
        states.add(_state(c, follower))
        terms.add(_local_term(follower))
        time.sleep(0.05)
    assert states == {"StatePreCandidate"} and terms == {term}, (states, terms)
    assert put(lead, "/k", "2").status == 200  # the other two still make a quorum
    # It kept trying to reach its peers (every attempt refused at their relays), and the leader lost it.
    refused = sum(m.relay.refused for m in others if m.relay is not None) - refused_before
    fails = _fails_to(lead, follower) - fails_before
    print(f"isolated follower: {states} at term {terms}; {refused} of its connections refused, "
          f"{fails} failed sends to it from the leader")
    assert refused >= 2, f"only {refused} connections from the isolated follower in {4 * ELECTION_MS} ms"
    assert fails > 0, "the leader never failed to reach the isolated follower"
    c.heal()
    assert wait_for(lambda: get(follower, "/k").json().get("node", {}).get("value") == "2", 10), \
        "follower did not catch up"
    assert c.wait_leader() is lead
    assert _local_term(follower) == term and _local_term(lead) == term
    r = put(follower, "/k", "3")
    assert r.status == 200 and int(r.header("X-Raft-Term") or 0) == term, (term, r.headers)
