"""What the HTTP layer may read of a running member (a Protocol, so the API stays pure and testable)."""

from __future__ import annotations

from typing import Protocol

from ..server.auth import AuthState
from ..server.members import MemberRegistry
from ..store.store import Store


class ServerView(Protocol):
    store: Store
    members: MemberRegistry
    auth: AuthState
    cluster_id_bytes: bytes
    cluster_token: str
    self_id: int

    @property
    def leader_id(self) -> int: ...

    @property
    def commit_index(self) -> int: ...

    @property
    def term(self) -> int: ...

    @property
    def healthy(self) -> bool: ...

    def self_stats(self, now_ns: int) -> dict[str, object]: ...

    def follower_stats(self) -> dict[str, object]: ...
