"""/v2/stats/self for a member, with Go's time and duration formatting."""

from __future__ import annotations

from ..store.event import rfc3339_ns
from .members import id_hex


def go_duration(ns: int) -> str:
    """Go's time.Duration.String for non-negative durations, e.g. 2m20.678793963s."""
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _trim(f"{ns / 1_000:.3f}") + "µs"
    if ns < 1_000_000_000:
        return _trim(f"{ns // 1_000_000}.{ns % 1_000_000:06d}") + "ms"
    hours, rem = divmod(ns, 3_600_000_000_000)
    minutes, rem = divmod(rem, 60_000_000_000)
    secs, frac = divmod(rem, 1_000_000_000)
    text = _trim(f"{secs}.{frac:09d}") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def _trim(num: str) -> str:
    return num.rstrip("0").rstrip(".") if "." in num else num


def self_stats(name: str, self_id: int, state: str, start_ns: int, leader_id: int, leader_start_ns: int,
               now_ns: int, recv_appends: int = 0, send_appends: int = 0) -> dict[str, object]:
    return {
        "name": name,
        "id": id_hex(self_id),
        "state": state,
        "startTime": rfc3339_ns(start_ns),
        "leaderInfo": {"leader": id_hex(leader_id), "uptime": go_duration(max(0, now_ns - leader_start_ns)),
                       "startTime": rfc3339_ns(leader_start_ns)},
        "recvAppendRequestCnt": recv_appends,
        "sendAppendRequestCnt": send_appends,
    }
