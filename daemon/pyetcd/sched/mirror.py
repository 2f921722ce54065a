"""A local copy of one subtree of the keyspace, kept current by a recursive v2 watch.

Theory of operation:
* `sync()` reads the whole subtree with one quorum GET: a consistent state at its X-Etcd-Index E (a
  missing subtree is empty at the error's index). Watching then starts at E+1.
* `poll(timeout)` waits for the next event under the subtree and applies it; the event's modifiedIndex
  becomes the mirror's index and the next watch starts right after it. Events come one at a time and in
  index order, so the mirror always equals the store's subtree at `index`: never a mix of two states.
* A reconnect (the member died, the watch timed out, any ClusterError the caller retries) resumes from
  the same next index, on whichever member answers: nothing is skipped and nothing is applied twice,
  across leader changes too, since every member has the same history for the same indexes.
* Error 401 (the 1000-event history moved past our index) means events were lost: re-read everything.
* The mirror never goes back in time: a full read older than what was already applied (a lagging
  member) is refused and retried. Callers rely on this: an agent that has seen a "stop" mark must not
  see the older "run" again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..client.v2 import ClientError, EtcdError, RequestTimeout
from .kv import EVENT_INDEX_CLEARED, KEY_NOT_FOUND, KV, leaves

log = logging.getLogger("pyetcd.sched.mirror")

_WRITES = ("set", "create", "update", "compareAndSwap")
_REMOVALS = ("delete", "expire", "compareAndDelete")


class StaleRead(Exception):
    """A full read answered with a state older than the mirror's."""


@dataclass(frozen=True, slots=True)
class Entry:
    value: str
    modified_index: int
    created_index: int


class Mirror:
    def __init__(self, kv: KV, prefix: str) -> None:
        self.kv = kv
        self.prefix = prefix.rstrip("/")
        self.entries: dict[str, Entry] = {}
        self.index = 0  # the store index the entries reflect
        self.synced = False  # False until the first full read, and again after a 401
        self.resyncs = 0  # full reads after the first one (for tests and logs)
        self._read_once = False

    def sync(self, timeout: float | None = None) -> None:
        try:
            resp = self.kv.read(self.prefix, recursive=True, quorum=True, timeout=timeout)
        except EtcdError as e:
            if e.error_code != KEY_NOT_FOUND:
                raise
            self._replace({}, e.index)
            return
        entries = {n["key"]: Entry(str(n.get("value", "")), int(n.get("modifiedIndex", 0)),
                                   int(n.get("createdIndex", 0))) for n in leaves(resp.node)}
        self._replace(entries, resp.etcd_index or 0)

    def _replace(self, entries: dict[str, Entry], index: int) -> None:
        if index < self.index:
            raise StaleRead(f"{self.prefix}: full read at index {index}, mirror already at {self.index}")
        if self._read_once:
            self.resyncs += 1
        else:
            log.info("%s: %d keys at index %d; watching from there", self.prefix, len(entries), index)
        self._read_once = True
        self.entries = entries
        self.index = index
        self.synced = True

    def poll_or_pause(self, wait_s: float, io_timeout: float, warn: Callable[[str], None],
                      sleep: Callable[[float], None]) -> bool:
        """A role's wait step: one poll; after a stale read or a failed request, a short pause instead
        (the role's loop tries again). False only when the store could not be reached."""
        try:
            self.poll(wait_s, io_timeout=io_timeout)
        except StaleRead as e:
            log.info("%s", e)
            sleep(min(wait_s, 0.1))
        except ClientError as e:
            warn(f"watch failed: {e}")
            sleep(min(wait_s, 0.2))
            return False
        return True

    def poll(self, wait_s: float, io_timeout: float = 5.0) -> bool:
        """Apply the next event (or do the pending full read); False if nothing came within `wait_s`.
        ClientErrors other than a timeout propagate; calling again resumes where this one stopped."""
        if not self.synced:
            self.sync(timeout=io_timeout)
            return True
        try:
            resp = self.kv.watch(self.prefix, self.index + 1, timeout=max(wait_s, 0.02))
        except RequestTimeout:
            return False
        except EtcdError as e:
            if e.error_code != EVENT_INDEX_CLEARED:
                raise
            log.info("%s: history cleared past index %d (%s): re-reading everything", self.prefix,
                     self.index + 1, e.cause or e.message)
            self.invalidate()  # events were lost: only a full read can tell what changed
            self.sync(timeout=io_timeout)
            return True
        self.apply(resp.action or "", resp.node, resp.prev_node)
        return True

    def invalidate(self) -> None:
        """Do a full read before the next watch (after a conditional write lost a race, say)."""
        self.synced = False

    def apply(self, action: str, node: dict[str, Any], prev: dict[str, Any] | None) -> None:
        """One watch event, in index order."""
        key = str(node.get("key", ""))
        index = int(node.get("modifiedIndex", 0))
        assert index > self.index, f"event {index} not after mirror index {self.index}"
        if action in _WRITES:
            if not node.get("dir"):
                self.entries[key] = Entry(str(node.get("value", "")), index,
                                          int(node.get("createdIndex", index)))
        elif action in _REMOVALS:
            self.entries.pop(key, None)
            if node.get("dir") or (prev is not None and prev.get("dir")):
                head = key.rstrip("/") + "/"
                for k in [k for k in self.entries if k.startswith(head)]:
                    del self.entries[k]
        self.index = index

    def caught_up(self, index: int) -> bool:
        """True once every change up to `index` (one of our own writes under the prefix) is applied."""
        return self.synced and self.index >= index
