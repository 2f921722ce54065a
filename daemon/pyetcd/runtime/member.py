"""MemberView: what the HTTP API and the service manager may read of a running member (http.status's
ServerView): identity, the store, the Raft status, and the per-peer statistics of the transport.

It only reads: the member's logic is server/driver.py, its recovery server/recovery.py, its storage
storage/files.py.
"""

from __future__ import annotations

from typing import Any

from ..raft.types import Role
from ..server.auth import AuthState
from ..server.driver import MemberDriver
from ..server.members import MemberRegistry, id_hex
from ..server.stats import self_stats
from ..store.store import Store

_STATE_NAMES = {Role.LEADER: "StateLeader", Role.CANDIDATE: "StateCandidate",
                Role.PRE_CANDIDATE: "StatePreCandidate"}  # etcd's StateType names


class MemberView:
    def __init__(self, driver: MemberDriver, name: str, cluster_id: int, cluster_token: str, start_ns: int) -> None:
        self.driver = driver
        self.name = name
        self.self_id = driver.self_id
        self.cluster_id = cluster_id
        self.cluster_id_bytes = id_hex(cluster_id).encode()
        self.cluster_token = cluster_token
        self.start_ns = start_ns
        self.links: dict[int, Any] = {}  # peer id -> runtime.peers.PeerLink (the loop's)

    @property
    def store(self) -> Store:
        return self.driver.store

    @property
    def members(self) -> MemberRegistry:
        return self.driver.members

    @property
    def auth(self) -> AuthState:
        return self.driver.auth

    @property
    def leader_id(self) -> int:
        return self.driver.raft.lead

    @property
    def commit_index(self) -> int:
        return self.driver.raft.commit_index

    @property
    def term(self) -> int:
        return self.driver.raft.term

    @property
    def is_leader(self) -> bool:
        return self.driver.raft.is_leader

    @property
    def disk_full(self) -> bool:
        return self.driver.disk_full

    @property
    def healthy(self) -> bool:
        return self.driver.raft.lead != 0

    def follower_stats(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for pid, link in sorted(self.links.items()):
            lat = list(link.stats.latencies_ms)
            avg = sum(lat) / len(lat) if lat else 0.0
            sd = (sum((x - avg) ** 2 for x in lat) / len(lat)) ** 0.5 if lat else 0.0
            out[id_hex(pid)] = {
                "latency": {"current": link.stats.current_ms, "average": avg, "standardDeviation": sd,
                            "minimum": min(lat) if lat else 0.0, "maximum": max(lat) if lat else 0.0},
                "counts": {"fail": link.stats.fail, "success": link.stats.success},
            }
        return out

    def self_stats(self, now_ns: int) -> dict[str, object]:
        d = self.driver
        st = d.raft.status()
        state = _STATE_NAMES.get(st.role, "StateFollower")
        return self_stats(self.name, self.self_id, state, self.start_ns, st.lead,
                          d.leader_since_ns or self.start_ns, now_ns, d.recv_appends, d.send_appends)
