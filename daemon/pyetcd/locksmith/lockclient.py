"""The semaphore on a v2 keyspace: init (create if absent), get, and compare-and-swap on modifiedIndex.

Works against any v2 endpoint list (pyetcd or etcd). Reads are `quorum=true` (a pyetcd deviation from
locksmith, harmless on the wire): a stale read from a lagging member could otherwise make "holder does
not exist" look true and leave a slot taken for ever.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from ..client.connection import ConnectionOptions, connect
from ..client.v2 import ClientError, EtcdError, KeysClient, RequestTimeout
from .semaphore import Semaphore, semaphore_key

DEFAULT_ENDPOINTS = ("http://127.0.0.1:2379", "http://127.0.0.1:4001")
KEY_EXISTS = 105
COMPARE_FAILED = 101
EVENT_INDEX_CLEARED = 401


class Connection(ConnectionOptions):
    """The connection options of both commands' global flags, with locksmith's rule on TLS files."""

    def ssl_context(self) -> ssl.SSLContext | None:
        """Upstream loads the three files together; a CA alone (server-only TLS) is a pyetcd extension."""
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("-etcd-certfile and -etcd-keyfile must be given together")
        return super().ssl_context()


class LockClient:
    """locksmith's EtcdLockClient: one group's semaphore. Nothing here retries; callers decide."""

    def __init__(self, keys: KeysClient, group: str = "") -> None:
        self.keys = keys
        self.group = group
        self.key = semaphore_key(group)
        self.last_etcd_index: int | None = None  # X-Etcd-Index of the last get: where a watch starts

    @staticmethod
    def connect(conn: Connection, group: str = "") -> LockClient:
        """Build a client and run Init, as every locksmith command does first."""
        client = LockClient(connect(conn), group)
        client.init()
        return client

    def init(self) -> bool:
        """Create the initial value if the key is absent; True if this call created it."""
        try:
            self.keys.create(self.key, Semaphore().dumps())
        except EtcdError as e:
            if e.error_code == KEY_EXISTS:
                return False
            raise
        return True

    def get(self) -> tuple[Semaphore, int]:
        """The value and its modifiedIndex (the version the next CAS is conditioned on)."""
        resp = self.keys.get(self.key, quorum=True)
        self.last_etcd_index = resp.etcd_index
        node = resp.node
        value = node.get("value")
        if not isinstance(value, str):
            raise ValueError(f"{self.key} has no value")
        return Semaphore.loads(value), int(node.get("modifiedIndex", 0))

    def cas(self, sem: Semaphore, index: int) -> int:
        """Store `sem` only if the key is still at `index` (EtcdError 101 otherwise); the new index."""
        resp = self.keys.set(self.key, sem.dumps(), prev_index=index)
        return int(resp.node.get("modifiedIndex", 0))

    def update(self, mutate: Callable[[Semaphore], Semaphore]) -> tuple[Semaphore, Semaphore]:
        """Get, mutate, CAS once: (old, new). A SemaphoreError from `mutate` writes nothing."""
        old, index = self.get()
        new = mutate(old)
        self.cas(new, index)
        return old, new

    def lock(self, holder: str) -> Semaphore:
        return self.update(lambda s: s.lock(holder))[1]

    def unlock(self, holder: str) -> Semaphore:
        return self.update(lambda s: s.unlock(holder))[1]

    def set_max(self, new_max: int) -> tuple[int, int]:
        old, new = self.update(lambda s: s.set_max(new_max))
        return old.max, new.max

    def wait_change(self, index: int, timeout: float) -> bool:
        """Block until the key changes after store index `index` (a v2 watch) or `timeout` passes: True if
        it changed. Errors other than the timeout are raised; a cleared history counts as a change. Pass
        the X-Etcd-Index of the last get (not the key's modifiedIndex, which may be older than the 1000
        events etcd remembers)."""
        if timeout <= 0:
            return False
        try:
            self.keys.get(self.key, wait=True, wait_index=index + 1, timeout=timeout)
        except RequestTimeout:
            return False
        except EtcdError as e:
            if e.error_code == EVENT_INDEX_CLEARED:
                return True
            raise
        return True


def is_compare_failed(err: BaseException) -> bool:
    return isinstance(err, EtcdError) and err.error_code == COMPARE_FAILED


__all__ = ["ClientError", "Connection", "DEFAULT_ENDPOINTS", "LockClient", "is_compare_failed"]
