"""The lines operators grep for, in a real 3-member pyetcd cluster, each when its event happens.

One member logs as etcd's text (capnslog, the default), one as JSON lines (--logger zap), one to stderr
and a file at once (--log-outputs stderr,<file>). Events: start (version, effective settings), the first
election, peers becoming active, a snapshot with a small --snapshot-count and the log compacted, a
follower stopped and started (peer inactive, active again), a member added, updated and removed, the
leader killed (leader changed). And the one-shot tools are quiet: `pyetcd-sched ls` writes nothing on
stderr when all is well.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cluster.conftest import REQUEST_TIMEOUT_S, Cluster, Member, put
from tests.integration._http import request
from tests.support import kit
from tests.support.kit import wait_for
from tests.support.servers import Server

WAIT_S = 15.0


def _count(m: Member, text: str) -> int:
    return m.log().count(text)


def _logged(c: Cluster, m: Member, text: str, times: int = 1) -> None:
    assert wait_for(lambda: _count(m, text) >= times, WAIT_S), f"{m.name} did not log {text!r}:\n{c.logs(6000)}"


def test_event_lines_in_a_real_cluster(tmp_path: Path) -> None:
    from pyetcd import __version__

    c = Cluster(tmp_path / "c", 3, snapshot_count=20)
    c.base.mkdir(parents=True)
    m1, m2, m3 = c.members
    copy = c.base / "m2.copy.log"
    m2.extra += ["--log-outputs", f"stderr,{copy}"]
    m3.extra += ["--logger", "zap"]
    try:
        lead = c.start()
        others = [m for m in c.members if m is not lead]
        for m in c.members:  # start: the version, then each effective setting with its source
            _logged(c, m, f"pyetcd Version: {__version__}")
            _logged(c, m, "snapshot-count = 20 (flag --snapshot-count)")
        # The first election, and the leader's links to its followers.
        _logged(c, lead, f"{lead.id_hex} became leader at term")
        for m in others:
            _logged(c, m, f"elected leader {lead.id_hex} at term")
            _logged(c, lead, f"peer {m.id_hex} became active")
        # A snapshot every 20 entries: taken, saved, the Raft log compacted behind it (20 entries are kept, so
        # the first compaction comes with the second snapshot), on every member.
        for i in range(50):
            assert put(lead, f"/k/{i}", str(i)).status == 201
        for m in c.members:
            _logged(c, m, "start to snapshot (applied: ")
            _logged(c, m, "saved snapshot at index ")
            _logged(c, m, "compacted raft log at ")
        # A follower stopped, then started: the leader sees the peer inactive, then active again.
        f = others[0]
        f.stop()
        _logged(c, lead, f"peer {f.id_hex} became inactive (message send to peer failed)")
        c.restart(f)
        _logged(c, lead, f"peer {f.id_hex} became active", times=2)
        # Membership: added, updated, removed (applied on every member).
        m4 = c.add_member("m4", via=lead)
        for m in c.members:
            if m is not m4:  # the joiner may start from the leader's snapshot, which already holds itself
                _logged(c, m, f"added member {m4.id_hex} ['{m4.peer_url}'] to the cluster")
        _logged(c, lead, f"added peer {m4.id_hex}")
        body = json.dumps({"peerURLs": [m4.peer_url]}).encode()
        r = request(lead.client_port, "PUT", f"/v2/members/{m4.id_hex}", body=body,
                    headers=[("Content-Type", "application/json")], timeout=REQUEST_TIMEOUT_S + 2)
        assert r.status == 204, (r.status, r.body)
        for m in (m1, m2, m3, m4):
            _logged(c, m, f"updated member {m4.id_hex} ['{m4.peer_url}'] in the cluster")
        assert c.remove_member(m4, via=lead).status == 204
        for m in (m1, m2, m3):
            _logged(c, m, f"removed member {m4.id_hex} from the cluster")
        _logged(c, lead, f"removed peer {m4.id_hex}")
        # The leader killed: a survivor takes over, the other follows it.
        lead.kill9()
        survivors = [m for m in (m1, m2, m3) if m is not lead]
        new = c.wait_leader(WAIT_S, among=survivors, not_=lead)
        _logged(c, new, f"{new.id_hex} became leader at term")
        for m in survivors:
            _logged(c, m, f"changed leader from {lead.id_hex} to {new.id_hex} at term")
    finally:
        c.stop_all()
    # m3 wrote JSON lines only (the kit's "==== start" banners aside); m2's file has what its stderr had.
    for line in m3.log().splitlines():
        if not line.startswith("===="):
            doc = json.loads(line)
            assert {"level", "ts", "logger", "caller", "msg"} <= doc.keys(), doc
    assert any(json.loads(line).get("logger") == "raft" for line in m3.log().splitlines() if line.startswith("{"))
    copied = copy.read_text()
    assert "became" in copied and "saved snapshot at index" in copied
    assert all(line in m2.log() for line in copied.splitlines())


SCHED = [sys.executable, "-m", "pyetcd.sched.cli"]


def test_sched_one_shot_commands_are_quiet(server: Server) -> None:
    env = kit.clean_env("ETCD", "PYETCD_SCHED", "PYETCD_LOG")

    def sched(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SCHED, args[0], "--endpoints", server.url, *args[1:]], capture_output=True,
                              text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)

    for args in (("submit", "web", "--", "sleep", "1"), ("ls",), ("ls", "--json"), ("rm", "web"), ("ls",)):
        r = sched(*args)
        assert r.returncode == 0 and r.stderr == "", (args, r)
    r = sched("rm", "nothing-here")  # what went wrong still says so
    assert r.returncode != 0 and r.stderr, r
