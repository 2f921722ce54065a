"""/v2/stats/self for a member, with Go's time and duration formatting."""

from __future__ import annotations

from ..gocompat.duration import format_duration_ns
from ..store.event import rfc3339_ns
from .members import id_hex


def self_stats(name: str, self_id: int, state: str, start_ns: int, leader_id: int, leader_start_ns: int,
               now_ns: int, recv_appends: int = 0, send_appends: int = 0) -> dict[str, object]:
    return {
        "name": name,
        "id": id_hex(self_id),
        "state": state,
        "startTime": rfc3339_ns(start_ns),
        "leaderInfo": {"leader": id_hex(leader_id), "uptime": format_duration_ns(max(0, now_ns - leader_start_ns)),
                       "startTime": rfc3339_ns(leader_start_ns)},
        "recvAppendRequestCnt": recv_appends,
        "sendAppendRequestCnt": send_appends,
    }
