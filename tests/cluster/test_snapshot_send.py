"""A large snapshot sent to a lagging follower causes no election (issue 15).

A follower is stopped while the leader takes N keys (the leader snapshots every --snapshot-count entries,
in a forked writer, and compacts its log), then started again: too far behind for the log, it gets the
leader's snapshot (MsgSnap: read back from the leader's snapshot file, sent in one POST /raft, saved and
decoded on the follower's loop) while a light write load goes on. No member may see a new term: the
leader's own snapshots must not stall it past an election timeout, heartbeats must keep the other
follower in its lease, and the follower's stall while it installs the snapshot must not make it campaign
(its ticks are not replayed after a stall). The cluster runs the tests' short timers (heartbeat 50 ms,
election timeout 500 ms): twice as strict as the defaults.

N is 30,000 keys of 100 bytes by default (about 15 s here); `make test-snapshot-send` runs it with
PYETCD_SNAPSHOT_SEND_KEYS=300000 (a few minutes: the fill runs at the cluster's write rate).
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import time

from tests.cluster.conftest import Cluster, MakeCluster, Member, WriteLoad, get, put
from tests.support.kit import wait_for

KEYS = int(os.environ.get("PYETCD_SNAPSHOT_SEND_KEYS", "30000"))
VALUE = "v" * 100
CLIENTS = 32


def _fill(m: Member, n: int) -> None:
    """PUT /big/d<i%1000>/k<i> for i < n over CLIENTS keep-alive connections, one request in flight each."""
    sel = selectors.DefaultSelector()
    todo = iter(range(n))
    inflight = 0
    body = f"value={VALUE}".encode()

    def send(s: socket.socket) -> None:
        nonlocal inflight
        i = next(todo, None)
        if i is not None:
            s.sendall(f"PUT /v2/keys/big/d{i % 1000}/k{i} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      f"application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            inflight += 1

    socks = []
    for _ in range(CLIENTS):
        s = socket.create_connection(("127.0.0.1", m.client_port), timeout=10)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, bytearray())
        send(s)
    deadline = time.monotonic() + 30 + n / 500
    try:
        while inflight:
            assert time.monotonic() < deadline, f"fill: {inflight} PUTs unanswered"
            for key, _ in sel.select(1.0):
                s, buf = key.fileobj, key.data
                assert isinstance(s, socket.socket)
                data = s.recv(65536)
                assert data, "the leader closed a connection during the fill"
                buf += data
                while True:  # answers are small and have a Content-Length
                    head_end = buf.find(b"\r\n\r\n")
                    if head_end < 0:
                        break
                    length = int(re.search(rb"(?i)content-length: *(\d+)", buf[:head_end]).group(1))  # type: ignore[union-attr]
                    end = head_end + 4 + length
                    if len(buf) < end:
                        break
                    assert buf[9:12] == b"201", bytes(buf[:200])
                    del buf[:end]
                    inflight -= 1
                    send(s)
    finally:
        for s in socks:
            s.close()
        sel.close()


def _term(c: Cluster, m: Member) -> int:
    st = c.stats_self(m, timeout=5.0)
    assert st is not None, f"{m.name} did not answer /v2/stats/self"
    r = get(m, "/big/d0", quorum=False, timeout=5.0)
    return int(r.header("X-Raft-Term") or 0)


def test_a_large_snapshot_to_a_lagging_follower_causes_no_election(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, snapshot_count=5000)
    lead = c.wait_leader()
    lagging = next(m for m in c.members if m is not lead)
    other = next(m for m in c.members if m is not lead and m is not lagging)
    assert put(lead, "/big/d0/first", "1").status == 201
    marks = {m.name: len(m.log()) for m in c.members}  # the first election is behind these
    lagging.stop()
    term = _term(c, lead)

    started = time.monotonic()
    _fill(lead, KEYS)
    filled_s = time.monotonic() - started
    assert "saved snapshot at index" in lead.log_tail(200000), "the leader took no snapshot"
    assert (_term(c, lead), _term(c, other)) == (term, term), f"a new term during the fill:\n{c.logs()}"

    lead_index = int(get(lead, "/big/d0/first", timeout=5.0).header("X-Etcd-Index") or 0)
    with WriteLoad(lambda: [lead], prefix="/load", threads=2) as load:
        restarted = time.monotonic()
        c.restart(lagging, timeout_s=60)
        caught_up = wait_for(lambda: int(get(lagging, "/big/d0/first", timeout=5.0).header("X-Etcd-Index") or 0)
                             >= lead_index, 120, 0.2)
        assert caught_up, f"{lagging.name} did not catch up:\n{lagging.log_tail()}"
        caught_up_s = time.monotonic() - restarted
        n0 = load.count()
        assert wait_for(lambda: load.count() >= n0 + 20, 15), "writes stalled after the snapshot"
    assert "installed snapshot from the leader" in lagging.log_tail(200000), lagging.log_tail()
    assert len(load.result.acks) > 0

    terms = {m.name: _term(c, m) for m in c.members}
    assert terms == {m.name: term for m in c.members}, f"an election happened: {terms}\n{c.logs(20000)}"
    assert c.agreed_leader() is lead
    for m in c.members:
        since = m.log()[marks[m.name]:]
        assert "became candidate" not in since, f"{m.name} campaigned:\n{since[-20000:]}"
    stalls = re.findall(r"apply request took too long: ([\d.]+)s", lagging.log()[marks[lagging.name]:])
    print(f"{KEYS} keys filled in {filled_s:.1f}s; the follower restarted, got the snapshot and caught up in "
          f"{caught_up_s:.1f}s (longest apply stall {max(map(float, stalls), default=0):.2f}s); no election "
          f"(term {term} throughout)")
