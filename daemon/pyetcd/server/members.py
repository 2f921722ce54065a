"""Cluster members and their IDs, computed as etcd computes them.

member ID = first 8 bytes (big endian) of sha1(sorted peer URLs concatenated + cluster token);
cluster ID = first 8 bytes of sha1(the sorted member IDs as big-endian u64s).
IDs print as lowercase hex without zero padding (Go's types.ID.String).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass


def member_id(peer_urls: list[str] | tuple[str, ...], cluster_token: str) -> int:
    raw = "".join(sorted(peer_urls)) + cluster_token
    return int.from_bytes(hashlib.sha1(raw.encode()).digest()[:8], "big")


def cluster_id(member_ids: list[int]) -> int:
    raw = b"".join(struct.pack(">Q", m) for m in sorted(member_ids))
    return int.from_bytes(hashlib.sha1(raw).digest()[:8], "big")


def id_hex(value: int) -> str:
    return f"{value:x}"


@dataclass(slots=True)
class Member:
    id: int
    name: str
    peer_urls: list[str]
    client_urls: list[str]

    def to_json_obj(self) -> dict[str, object]:
        return {"id": id_hex(self.id), "name": self.name, "peerURLs": list(self.peer_urls),
                "clientURLs": list(self.client_urls)}


class MemberRegistry:
    def __init__(self, members: list[Member]) -> None:
        self.by_id = {m.id: m for m in members}

    @property
    def cluster_id(self) -> int:
        return cluster_id(list(self.by_id))

    def ordered(self) -> list[Member]:
        return [self.by_id[i] for i in sorted(self.by_id)]

    def peer_url_owner(self, url: str) -> Member | None:
        for m in self.by_id.values():
            if url in m.peer_urls:
                return m
        return None
