"""Log entry payloads: what a client asked for, decided into a store operation only when applied.

A Request is encoded into the WAL as a compact JSON array, so replay (and, later, every replica)
applies exactly the same operation with the same time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..compactjson import compact_dumps

PUT = "PUT"
POST = "POST"
DELETE = "DELETE"
QGET = "QGET"  # a GET applied through the log (etcd v2's quorum read); the runtime uses ReadIndex instead
SYNC = "SYNC"  # carries the leader's time; applying it expires due TTLs
MEMBER_ATTRS = "MEMBER_ATTRS"  # a member publishes its name and client URLs (value, peer_urls)
AUTH = "AUTH"  # a change to users, roles or auth on/off (value: server/auth.py's AuthOp, encoded)



# Not frozen (1.6 -> about 0.4 us to build one; a write builds two): treat a Request as immutable.
@dataclass(slots=True)
class Request:
    kind: str
    path: str = "/"
    value: str = ""
    dir: bool = False
    prev_value: str = ""
    prev_index: int = 0
    prev_exist: bool | None = None
    expire_at_ns: int = 0
    refresh: bool = False
    recursive: bool = False
    sorted: bool = False
    time_ns: int = 0
    peer_urls: tuple[str, ...] = ()
    origin: int = 0  # member that proposed it: only that member answers the client
    req_id: int = 0  # the proposer's request number

    def encode(self) -> bytes:
        pe = -1 if self.prev_exist is None else int(self.prev_exist)
        fields = [self.kind, self.path, self.value, int(self.dir), self.prev_value, self.prev_index, pe,
                  self.expire_at_ns, int(self.refresh), int(self.recursive), int(self.sorted), self.time_ns,
                  list(self.peer_urls), self.origin, self.req_id]
        return compact_dumps(fields).encode("utf-8", "surrogatepass")

    @staticmethod
    def decode(data: bytes) -> Request:
        (kind, path, value, is_dir, prev_value, prev_index, pe, expire_at_ns, refresh, recursive, sort_keys,
         time_ns, peer_urls, origin, req_id) = json.loads(data.decode("utf-8", "surrogatepass"))
        return Request(kind, path, value, bool(is_dir), prev_value, prev_index, None if pe < 0 else bool(pe),
                       expire_at_ns, bool(refresh), bool(recursive), bool(sort_keys), time_ns, tuple(peer_urls),
                       origin, req_id)
