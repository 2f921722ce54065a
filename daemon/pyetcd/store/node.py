"""The v2 key tree: files hold a value, directories hold children by name.

Invariants: a node is a directory iff `children` is not None (then `value` is None); `path` is absolute,
clean, and equals parent.path + "/" + name; `alive` turns False once the node leaves the tree, which is
how the TTL heap drops stale entries lazily.
"""

from __future__ import annotations

from dataclasses import dataclass

from .event import NodeView


def is_hidden_name(name: str) -> bool:
    return name.startswith("_")


class Node:
    __slots__ = ("path", "name", "value", "children", "created_index", "modified_index", "expire_at_ns",
                 "parent", "alive", "ttl_seq")

    def __init__(self, path: str, value: str | None, created_index: int, parent: Node | None,
                 expire_at_ns: int = 0) -> None:
        self.path = path
        self.name = path.rsplit("/", 1)[-1]
        self.value = value
        self.children: dict[str, Node] | None = {} if value is None else None
        self.created_index = created_index
        self.modified_index = created_index
        self.expire_at_ns = expire_at_ns  # 0 means permanent
        self.parent = parent
        self.alive = True
        self.ttl_seq = 0  # order of the live TTL heap entry; ties on expire_at_ns expire in this order

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
        nodes: tuple[NodeView, ...] | None = None
        if self.children is not None and (with_children or recursive):
            kids = [c for c in self.children.values() if not is_hidden_name(c.name)]
            if sort_keys:
                kids.sort(key=_key_bytes)
            nodes = tuple(c.view(now_ns, recursive, sort_keys, recursive) for c in kids)
        return NodeView(
            key=self.path,
            dir=self.children is not None,
            value=self.value if with_value else None,
            expire_at_ns=self.expire_at_ns,
            ttl=self.ttl_s(now_ns),
            nodes=nodes,
            modified_index=self.modified_index,
            created_index=self.created_index,
        )


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
