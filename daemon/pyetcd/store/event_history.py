"""The last `capacity` events (etcd keeps 1000), for watches that start in the past (waitIndex).

Every index-consuming event is added (refreshes too, which scans skip), so the ring holds a contiguous
range of indexes [start_index, last_index]. A waitIndex older than start_index is error 401.
"""

from __future__ import annotations

from collections import deque

from . import errors
from .event import DELETE, EXPIRE, Event

HISTORY_EVENTS_MAX = 1000


class EventHistory:
    def __init__(self, capacity: int = HISTORY_EVENTS_MAX) -> None:
        self.events: deque[Event] = deque(maxlen=capacity)

    @property
    def start_index(self) -> int:
        return self.events[0].index if self.events else 0

    @property
    def last_index(self) -> int:
        return self.events[-1].index if self.events else 0

    def add(self, event: Event) -> None:
        self.events.append(event)

    def scan(self, key: str, recursive: bool, since_index: int) -> Event | None:
        """First event at or after since_index that a watch on `key` would see; None if none yet."""
        start = self.start_index
        if since_index < start:
            raise errors.V2Error(errors.EVENT_INDEX_CLEARED,
                                 f"the requested history has been cleared [{start}/{since_index}]")
        if since_index > self.last_index:
            return None
        prefix = key if key.endswith("/") else key + "/"
        for pos in range(since_index - start, len(self.events)):
            ev = self.events[pos]
            if ev.refresh:
                continue
            ev_key = ev.node.key
            if ev_key == key or (recursive and ev_key.startswith(prefix)):
                return ev
            prev = ev.prev_node
            if ev.action in (DELETE, EXPIRE) and prev is not None and prev.dir and key.startswith(prev.key):
                return ev
        return None
