"""Watchers keyed by path. The hub knows watcher ids, not sockets: firing appends (watcher, event) to
`fired`, which the server drains after each applied entry and turns into writes.

Matching follows etcd: an event on key K is offered to watchers at every ancestor path of K (recursive
watchers take it unless a path component between them and K is hidden) and at K itself; deleting or
expiring a directory offers the event to watchers at every path inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .event import Event


@dataclass(eq=False, slots=True)
class Watcher:
    watcher_id: int
    key: str
    recursive: bool
    stream: bool
    since_index: int
    removed: bool = False
    last_fired_index: int = 0  # a stream watcher on a deleted dir is offered the event twice


def is_hidden_below(watch_path: str, key: str) -> bool:
    """True if `key` lies under `watch_path` through a component starting with '_'."""
    if len(watch_path) >= len(key):
        return False
    return "/_" in "/" + key[len(watch_path):].lstrip("/")


@dataclass(slots=True)
class WatcherHub:
    by_path: dict[str, list[Watcher]] = field(default_factory=dict)
    fired: list[tuple[Watcher, Event]] = field(default_factory=list)
    count: int = 0

    def add(self, watcher: Watcher) -> None:
        self.by_path.setdefault(watcher.key, []).append(watcher)
        self.count += 1

    def remove(self, watcher: Watcher) -> None:
        if watcher.removed:
            return
        watcher.removed = True
        lst = self.by_path.get(watcher.key)
        if lst is not None:
            lst.remove(watcher)
            if not lst:
                del self.by_path[watcher.key]
        self.count -= 1

    def notify(self, event: Event) -> None:
        """Offer a mutation event to watchers on the key and all its ancestors."""
        if not self.by_path:
            return
        key = event.node.key
        self.notify_path(event, "/", deleted=False)
        if key == "/":
            return
        pos = 0
        while True:
            pos = key.find("/", pos + 1)
            path = key if pos < 0 else key[:pos]
            self.notify_path(event, path, deleted=False)
            if pos < 0:
                return

    def notify_path(self, event: Event, path: str, deleted: bool) -> None:
        watchers = self.by_path.get(path)
        if not watchers:
            return
        key = event.node.key
        original = key == path
        if not original and is_hidden_below(path, key):
            return
        for w in list(watchers):
            if (w.recursive or original or deleted) and event.index >= w.since_index:
                if w.last_fired_index == event.index:
                    continue
                w.last_fired_index = event.index
                self.fired.append((w, event))
                if not w.stream:
                    self.remove(w)

    def drain(self) -> list[tuple[Watcher, Event]]:
        fired, self.fired = self.fired, []
        return fired
