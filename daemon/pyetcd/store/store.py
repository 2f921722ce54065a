"""The etcd v2 store: a pure, deterministic state machine over the key tree.

Theory of operation: every mutation is applied in log order with the time written into its log entry
(`now_ns`), so replicas and replays reach the same tree, indexes and events. The store never reads a
clock; expiry happens only when a SYNC entry calls `expire(now_ns)`. Each successful mutation consumes
exactly one etcd index, is recorded in the 1000-event history and offered to watchers; failures raise
V2Error carrying the current index and change nothing (except, as in etcd, parent directories that
`set`/`create` made before failing on the last component).
"""

from __future__ import annotations

import heapq

from . import errors
from .errors import V2Error
from .event import CAD, CAS, CREATE, DELETE, EXPIRE, GET, SET, UPDATE, Event, NodeView
from .event_history import EventHistory
from .node import Node, TtlEntry
from .stats import StoreStats
from .watcher_hub import Watcher, WatcherHub

# ttl*1e9 past this would overflow etcd's int64 nanoseconds; we cap instead of wrapping.
EXPIRE_AT_NS_MAX = 2**63 - 1


def clean_key(raw: str) -> str:
    """Join onto '/' and clean like Go's path.Join: no empty, '.' or '..' components, no trailing '/'."""
    if raw[:1] == "/" and raw[-1] != "/" and "//" not in raw and "/." not in raw:
        return raw  # already clean
    parts: list[str] = []
    for part in raw.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


class Store:
    def __init__(self) -> None:
        self.root = Node("/", None, 0, None)
        self.index = 0
        self.history = EventHistory()
        self.hub = WatcherHub()
        self.stats = StoreStats()
        self._ttl_heap: list[tuple[int, int, TtlEntry]] = []
        self._ttl_seq = 0

    # ---- lookups -------------------------------------------------------------------------------

    def _walk(self, path: str) -> Node:
        node = self.root
        if path == "/":
            return node
        for name in path[1:].split("/"):
            children = node.children
            if children is None:
                raise V2Error(errors.NOT_DIR, node.path, self.index)
            child = children.get(name)
            if child is None:
                parent = node.path if node.path != "/" else ""
                raise V2Error(errors.KEY_NOT_FOUND, f"{parent}/{name}", self.index)
            node = child
        return node

    def get(self, path: str, recursive: bool, sort_keys: bool, now_ns: int) -> Event:
        try:
            node = self._walk(path)
        except V2Error:
            self.stats.gets_fail += 1
            raise
        self.stats.gets_success += 1
        view = node.view(now_ns, recursive=recursive, sort_keys=sort_keys, with_children=True)
        return Event(GET, view, None, node.modified_index, self.index)

    def next_expiry_ns(self) -> int:
        """When the earliest TTL falls due (0 if none): the runtime proposes a SYNC then."""
        heap = self._ttl_heap
        while heap and not self._live(heap[0][2]):
            heapq.heappop(heap)
        return heap[0][0] if heap else 0

    @property
    def has_ttl_keys(self) -> bool:
        return self.next_expiry_ns() != 0

    # ---- mutations -----------------------------------------------------------------------------

    def set(self, path: str, is_dir: bool, value: str, expire_at_ns: int, refresh: bool, now_ns: int) -> Event:
        try:
            try:
                old: Node | None = self._walk(path)
            except V2Error as e:
                if e.code != errors.KEY_NOT_FOUND or refresh:
                    raise
                old = None
            if refresh and old is not None:
                value = old.value or ""
            event = self._create(path, is_dir, value, False, True, expire_at_ns, SET, now_ns)  # prev_node set
        except V2Error:
            self.stats.sets_fail += 1
            raise
        self.stats.sets_success += 1
        self._publish(event, refresh)
        return event

    def create(self, path: str, is_dir: bool, value: str, unique: bool, expire_at_ns: int, now_ns: int) -> Event:
        try:
            event = self._create(path, is_dir, value, unique, False, expire_at_ns, CREATE, now_ns)
        except V2Error:
            self.stats.create_fail += 1
            raise
        self.stats.create_success += 1
        self._publish(event, False)
        return event

    def _create(self, path: str, is_dir: bool, value: str, unique: bool, replace: bool, expire_at_ns: int,
                action: str, now_ns: int) -> Event:
        next_index = self.index + 1
        if unique:
            path = clean_key(f"{path}/{next_index:020d}")
        if path == "/":
            raise V2Error(errors.ROOT_READ_ONLY, "/", self.index)
        dir_path, _, name = path.rpartition("/")
        parent = self._make_dirs(dir_path, next_index)
        assert parent.children is not None
        existing = parent.children.get(name)
        prev: NodeView | None = None
        if existing is not None:
            if not replace:
                raise V2Error(errors.NODE_EXIST, path, self.index)
            if existing.is_dir:
                raise V2Error(errors.NOT_FILE, path, self.index)
            prev = existing.view(now_ns)
            self._unlink(existing)
        node = Node(path, None if is_dir else value, next_index, parent, min(expire_at_ns, EXPIRE_AT_NS_MAX))
        parent.children[node.name] = node  # the node's own name str as the key: one str per key, not two
        if node.expire_at_ns:
            self._push_ttl(node)
        self.index = next_index
        return Event(action, node.view(now_ns), prev, next_index, next_index)

    def _make_dirs(self, dir_path: str, created_index: int) -> Node:
        node = self.root
        if not dir_path:
            return node
        for name in dir_path[1:].split("/"):
            children = node.children
            assert children is not None
            child = children.get(name)
            if child is None:
                child = Node(f"{node.path if node.path != '/' else ''}/{name}", None, created_index, node)
                children[child.name] = child
            elif not child.is_dir:
                raise V2Error(errors.NOT_DIR, child.path, self.index)
            node = child
        return node

    def update(self, path: str, value: str, expire_at_ns: int, refresh: bool, now_ns: int) -> Event:
        try:
            if path == "/":
                raise V2Error(errors.ROOT_READ_ONLY, "/", self.index)
            node = self._walk(path)
            if node.is_dir and value:
                raise V2Error(errors.NOT_FILE, path, self.index)
        except V2Error:
            self.stats.update_fail += 1
            raise
        self.stats.update_success += 1
        if refresh:
            value = node.value or ""
        return self._rewrite(node, UPDATE, value, expire_at_ns, refresh, now_ns)

    def compare_and_swap(self, path: str, prev_value: str, prev_index: int, value: str, expire_at_ns: int,
                         refresh: bool, now_ns: int) -> Event:
        try:
            if path == "/":
                raise V2Error(errors.ROOT_READ_ONLY, "/", self.index)
            node = self._walk(path)
            if node.is_dir:
                raise V2Error(errors.NOT_FILE, path, self.index)
            self._compare(node, prev_value, prev_index)
        except V2Error:
            self.stats.cas_fail += 1
            raise
        self.stats.cas_success += 1
        if refresh:
            value = node.value or ""
        return self._rewrite(node, CAS, value, expire_at_ns, refresh, now_ns)

    def _rewrite(self, node: Node, action: str, value: str, expire_at_ns: int, refresh: bool,
                 now_ns: int) -> Event:
        """Write value and TTL in place (update, CAS): createdIndex stays, modifiedIndex moves."""
        prev = node.view(now_ns)
        self.index += 1
        expire_at_ns = min(expire_at_ns, EXPIRE_AT_NS_MAX)
        if expire_at_ns != node.expire_at_ns:
            node.expire_at_ns = expire_at_ns
            if expire_at_ns:
                self._push_ttl(node)
        if node.is_dir:
            # etcd 3.4 reports the new index for a directory update but keeps the stored one
            # (its node.Write refuses directories); later reads show the old modifiedIndex.
            view = node.view(now_ns)
            view = NodeView(view.key, True, None, view.expire_at_ns, view.ttl, None, self.index, view.created_index)
        else:
            node.value = value
            node.modified_index = self.index
            view = node.view(now_ns)
        event = Event(action, view, prev, self.index, self.index)
        self._publish(event, refresh)
        return event

    def _compare(self, node: Node, prev_value: str, prev_index: int) -> None:
        index_ok = prev_index == 0 or node.modified_index == prev_index
        value_ok = prev_value == "" or node.value == prev_value
        if index_ok and value_ok:
            return
        if value_ok:
            cause = f"[{prev_index} != {node.modified_index}]"
        elif index_ok:
            cause = f"[{prev_value} != {node.value}]"
        else:
            cause = f"[{prev_value} != {node.value}] [{prev_index} != {node.modified_index}]"
        raise V2Error(errors.TEST_FAILED, cause, self.index)

    def delete(self, path: str, is_dir: bool, recursive: bool, now_ns: int) -> Event:
        try:
            if path == "/":
                raise V2Error(errors.ROOT_READ_ONLY, "/", self.index)
            node = self._walk(path)
            if node.is_dir:
                assert node.children is not None
                if not (is_dir or recursive):
                    raise V2Error(errors.NOT_FILE, path, self.index)
                if node.children and not recursive:
                    raise V2Error(errors.DIR_NOT_EMPTY, path, self.index)
        except V2Error:
            self.stats.delete_fail += 1
            raise
        self.stats.delete_success += 1
        return self._remove(node, DELETE, now_ns)

    def compare_and_delete(self, path: str, prev_value: str, prev_index: int, now_ns: int) -> Event:
        try:
            node = self._walk(path)
            if node.is_dir:
                raise V2Error(errors.NOT_FILE, path, self.index)
            self._compare(node, prev_value, prev_index)
        except V2Error:
            self.stats.cad_fail += 1
            raise
        self.stats.cad_success += 1
        return self._remove(node, CAD, now_ns)

    def expire(self, now_ns: int) -> list[Event]:
        """Apply a SYNC: remove every node whose expiration is at or before now_ns, one event each."""
        events = []
        while True:
            due = self.next_expiry_ns()
            if not due or due > now_ns:
                return events
            _, _, entry = heapq.heappop(self._ttl_heap)
            self.stats.expire_count += 1
            events.append(self._remove(entry.node, EXPIRE, now_ns))

    def _remove(self, node: Node, action: str, now_ns: int) -> Event:
        self.index += 1
        view = NodeView(node.path, node.is_dir, None, 0, 0, None, self.index, node.created_index)
        event = Event(action, view, node.view(now_ns), self.index, self.index)
        self._unlink(node, event)
        self.history.add(event)
        self.hub.notify(event)
        return event

    def _unlink(self, node: Node, event: Event | None = None) -> None:
        """Detach a subtree; with an event, watchers inside it are told (etcd's delete callback)."""
        assert node.parent is not None and node.parent.children is not None
        del node.parent.children[node.name]
        stack = [node]
        while stack:  # liveness follows from the links just cut (Node.alive)
            n = stack.pop()
            if n.children:
                stack.extend(n.children.values())
            if event is not None:
                self.hub.notify_path(event, n.path, deleted=True)

    # ---- watches -------------------------------------------------------------------------------

    def watch(self, path: str, recursive: bool, stream: bool, since_index: int, watcher_id: int
              ) -> tuple[Watcher, Event | None]:
        """Register a watch; returns the watcher and the event history already holds for it, if any.

        A watch answered from history is not registered, even a stream one: etcd 3.4 sends that one
        event and then keeps the stream silent, and clients are written against that behaviour."""
        if since_index == 0:
            since_index = self.index + 1
        try:
            found = self.history.scan(path, recursive, since_index)
        except V2Error as e:
            e.index = self.index
            raise
        watcher = Watcher(watcher_id, path, recursive, stream, since_index)
        if found is not None:
            watcher.removed = True
        else:
            self.hub.add(watcher)
        return watcher, found

    def internal_event(self, now_ns: int) -> int:
        """Consume an index for cluster bookkeeping (etcd stores members in a hidden namespace). The
        event is in history under a key no client path can match, and it wakes nobody."""
        self.index += 1
        view = NodeView("", False, None, 0, 0, None, self.index, self.index)
        self.history.add(Event(SET, view, None, self.index, self.index, refresh=True))
        return self.index

    # ---- internals -----------------------------------------------------------------------------

    def _publish(self, event: Event, refresh: bool) -> None:
        event.refresh = refresh
        self.history.add(event)
        if not refresh:
            self.hub.notify(event)

    def _push_ttl(self, node: Node, seq: int = 0) -> None:
        """Queue a node's expiry. `seq` (restoring a snapshot) keeps the original tie order."""
        if not seq:
            self._ttl_seq += 1
            seq = self._ttl_seq
        node.ttl_seq = seq
        heapq.heappush(self._ttl_heap, (node.expire_at_ns, seq, TtlEntry(node.expire_at_ns, seq, node)))

    @staticmethod
    def _live(entry: TtlEntry) -> bool:
        return entry.node.alive and entry.node.expire_at_ns == entry.expire_at_ns
