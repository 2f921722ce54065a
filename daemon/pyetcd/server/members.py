"""Cluster members and their IDs, computed as etcd computes them.

member ID = first 8 bytes (big endian) of sha1(sorted peer URLs concatenated + cluster token);
cluster ID = first 8 bytes of sha1(the sorted member IDs as big-endian u64s).
IDs print as lowercase hex without zero padding (Go's types.ID.String), except on the peer API's
GET /members, where etcd writes them as JSON numbers (see Member.to_peer_json_obj).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field


def member_id(peer_urls: list[str] | tuple[str, ...], cluster_token: str, added_at_s: int | None = None) -> int:
    """`added_at_s` (Unix seconds) is mixed in for members added at runtime, as etcd does."""
    raw = "".join(sorted(peer_urls)) + cluster_token + ("" if added_at_s is None else str(added_at_s))
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

    def to_peer_json_obj(self) -> dict[str, object]:
        """The member as etcd's peer `GET /members` writes it (Go's membership.Member marshalled as is):
        the id is a JSON number (types.ID is a uint64 with no JSON marshaller of its own; only the client
        API's /v2/members converts it to hex), fields in Go's struct order (id, peerURLs, name,
        clientURLs), and name and clientURLs are left out while they are empty (`omitempty`: a member
        added but not started yet). etcd's v2 proxy and joining etcd members decode this form."""
        out: dict[str, object] = {"id": self.id, "peerURLs": list(self.peer_urls)}
        if self.name:
            out["name"] = self.name
        if self.client_urls:
            out["clientURLs"] = list(self.client_urls)
        return out

    @staticmethod
    def from_peer_json_obj(obj: object) -> Member:
        """A member from a peer `GET /members` answer. ValueError if it is not one.

        The id is accepted both as etcd writes it (a JSON number) and as pyetcd before this change wrote
        it (a hex string, as on /v2/members), so a new member can still join an older pyetcd cluster during
        a rolling upgrade. Missing name/clientURLs (etcd's omitempty for an unstarted member) mean empty."""
        if not isinstance(obj, dict):
            raise ValueError(f"a member must be a JSON object, not {obj!r:.80}")
        raw = obj.get("id")
        if isinstance(raw, int) and not isinstance(raw, bool):
            mid = raw
        elif isinstance(raw, str):
            mid = int(raw, 16)  # the older pyetcd form
        else:
            raise ValueError(f"bad member id {raw!r:.80}")
        if not 0 < mid < 1 << 64:
            raise ValueError(f"member id {raw!r} out of range")

        def strings(name: str) -> list[str]:
            value = obj.get(name) or []
            if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
                raise ValueError(f"bad {name} {value!r:.80}")
            return list(value)

        name = obj.get("name") or ""
        if not isinstance(name, str):
            raise ValueError(f"bad member name {name!r:.80}")
        return Member(mid, name, strings("peerURLs"), strings("clientURLs"))

    def encode(self) -> bytes:
        return json.dumps([self.id, self.name, self.peer_urls, self.client_urls]).encode()

    @staticmethod
    def decode(data: bytes) -> Member:
        mid, name, peer_urls, client_urls = json.loads(data)
        return Member(mid, name, list(peer_urls), list(client_urls))


@dataclass
class MemberRegistry:
    """Members by id, plus the ids removed for good (etcd answers 410 for those)."""

    by_id: dict[int, Member] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)

    @staticmethod
    def of(members: list[Member]) -> MemberRegistry:
        return MemberRegistry({m.id: m for m in members})

    def encode(self) -> list[object]:
        return [[m.id, m.name, m.peer_urls, m.client_urls] for m in self.ordered()] + [sorted(self.removed)]

    @staticmethod
    def decode(raw: list[object]) -> MemberRegistry:
        *members, removed = raw
        reg = MemberRegistry({int(m[0]): Member(int(m[0]), m[1], list(m[2]), list(m[3]))  # type: ignore[index]
                              for m in members})
        reg.removed = set(removed)  # type: ignore[arg-type]
        return reg

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
