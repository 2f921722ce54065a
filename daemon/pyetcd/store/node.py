"""The v2 key tree: files hold a value, directories hold children by name.

Invariants: a node is a directory iff `children` is not None (then `value` is None, and the node is a
`DirNode`, which stores its `path`); `name` equals the node's key in its parent's `children` (the same
str object once restored from a snapshot); `path` is absolute, clean, and equals parent.path + "/" + name. A file does not store its path:
`path` is computed from the parent's, one concatenation (a file never moves, and after it leaves the tree
its parent link stays, so the path still reads right). A node is `alive` while the chain of parents up
to the root still holds it; the TTL heap uses that to drop stale entries lazily.

Where the bytes go, per key of a 100-byte value in one large directory (keys /bench/m/k{i}; CPython 3.11,
64-bit, pymalloc blocks are multiples of 16 bytes; tracemalloc agrees within a few percent, see
tests/unit/test_store_node.py):

    Node object (8 slots + GC header)     96 B   (was 112: 10 slots, with `path` and `alive`)
    value str (100 ASCII chars)          160 B
    name str ("k123456"), the dict key    64 B   (a key written by a PUT has a second, equal str as its
                                                  dict key, from store.py's rpartition: +64 B until restart)
    created_index int (> 256)             32 B   (modified_index is the same object until a rewrite; a
                                                  format-1 restart used to allocate a second one)
    slot in the parent's dict            ~42 B   (at 1M keys: 2^21 slots, 8 MB of indices + 34 MB entries)
    path str ("/bench/m/k123456")          0 B   (was 80: a file computes it, a directory stores it)
    ----------------------------------------------
    sum of the blocks                   ~394 B   (was ~522 after a restart)
    tracemalloc, tree restored          ~366 B   (was ~478; it counts requested bytes, not whole blocks)
    tracemalloc, tree written by PUTs   ~420 B   (was ~508: the duplicate name, the 1000-event history)

Outside the tree: the newest snapshot's bytes while Raft holds them in memory to send to a lagging
follower (~126 B/key in format 2, ~141 B in format 1); the in-memory Raft log (up to --snapshot-count
entries of ~250 B: 2.5 MB at 10,000, whatever the key count); the 1000-event history (~1 MB, fixed). A
directory costs a DirNode (112 B) + its path and prefix strs + its children dict.
"""

from __future__ import annotations

from dataclasses import dataclass

from .event import NodeView


def is_hidden_name(name: str) -> bool:
    return name.startswith("_")


class Node:
    """A file (or, as its subclass DirNode, a directory). `Node(path, None, ...)` makes a DirNode."""

    __slots__ = ("name", "value", "parent", "created_index", "modified_index", "expire_at_ns", "ttl_seq")

    children: dict[str, Node] | None = None  # a file's; DirNode has its own slot
    name: str
    value: str | None
    parent: Node | None
    created_index: int
    modified_index: int
    expire_at_ns: int  # 0 means permanent
    ttl_seq: int  # order of the live TTL heap entry; ties on expire_at_ns expire in this order

    def __new__(cls, path: str, value: str | None, created_index: int, parent: Node | None,
                expire_at_ns: int = 0) -> Node:
        return object.__new__(DirNode if value is None else cls)

    def __init__(self, path: str, value: str | None, created_index: int, parent: Node | None,
                 expire_at_ns: int = 0) -> None:
        self.name = path[path.rfind("/") + 1:]
        self.value = value
        if value is None:  # DirNode's slots
            self.path = path
            self.prefix = path + "/" if path != "/" else "/"
            self.children = {}
        self.parent = parent
        self.created_index = created_index
        self.modified_index = created_index
        self.expire_at_ns = expire_at_ns
        self.ttl_seq = 0

    @property
    def path(self) -> str:  # a file's; DirNode stores its own
        return self.parent.prefix + self.name  # type: ignore[union-attr]

    @property
    def alive(self) -> bool:
        """Still in the tree: every node up to the root is still its parent's child under its name."""
        node = self
        parent = node.parent
        while parent is not None:
            if parent.children.get(node.name) is not node:  # type: ignore[union-attr]
                return False
            node = parent
            parent = node.parent
        return True

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    def ttl_s(self, now_ns: int) -> int:
        """Remaining seconds as etcd computes them: ceiling for positive, Go truncation for negative."""
        if not self.expire_at_ns:
            return 0
        return ttl_from(self.expire_at_ns, now_ns)

    def view(self, now_ns: int, recursive: bool = False, sort_keys: bool = False, with_children: bool = False,
             with_value: bool = True) -> NodeView:
        """A frozen copy for responses and events. Directories list visible children only when asked."""
        children = self.children
        nodes: tuple[NodeView, ...] | None = None
        if children is None:
            key = self.parent.prefix + self.name  # type: ignore[union-attr]  # (the `path` property, inlined)
        else:
            key = self.path
            if with_children or recursive:
                kids = [c for c in children.values() if not is_hidden_name(c.name)]
                if sort_keys:
                    kids.sort(key=_key_bytes)
                nodes = tuple(c.view(now_ns, recursive, sort_keys, recursive) for c in kids)
        expire_at_ns = self.expire_at_ns
        # NodeView(key, dir, value, expire_at_ns, ttl, nodes, modified_index, created_index)
        return NodeView(key, children is not None, self.value if with_value else None, expire_at_ns,
                        ttl_from(expire_at_ns, now_ns) if expire_at_ns else 0, nodes, self.modified_index,
                        self.created_index)


class DirNode(Node):
    """A directory: a Node that stores its path, and the prefix of its children's ("/" for the root)."""

    __slots__ = ("children", "path", "prefix")  # type: ignore[assignment]


def _key_bytes(node: Node) -> bytes:
    return node.path.encode("utf-8", "surrogateescape")  # keys are bytes in etcd; sort them as bytes


def ttl_from(expire_at_ns: int, now_ns: int) -> int:
    left_ns = expire_at_ns - now_ns
    secs = abs(left_ns) // 1_000_000_000
    if left_ns < 0:
        return -secs
    return secs + (1 if left_ns % 1_000_000_000 else 0)


@dataclass(frozen=True, slots=True)
class TtlEntry:
    expire_at_ns: int
    seq: int
    node: Node
