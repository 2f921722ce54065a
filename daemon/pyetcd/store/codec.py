"""Store snapshot <-> bytes: versioned, compact JSON of the tree, index, history and stats.

Watchers are not saved (their connections die with the process), exactly like etcd.
"""

from __future__ import annotations

import json
from dataclasses import astuple

from .event import Event, NodeView
from .event_history import EventHistory
from .node import Node
from .stats import StoreStats
from .store import Store

FORMAT_VERSION = 1


def _view_to(v: NodeView | None) -> list[object] | None:
    if v is None:
        return None
    nodes = None if v.nodes is None else [_view_to(n) for n in v.nodes]
    return [v.key, v.dir, v.value, v.expire_at_ns, v.ttl, nodes, v.modified_index, v.created_index]


def _view_from(raw: list[object] | None) -> NodeView | None:
    if raw is None:
        return None
    key, is_dir, value, exp, ttl, nodes, mod, created = raw
    kids = None if nodes is None else tuple(_view_from(n) for n in nodes)  # type: ignore[union-attr]
    return NodeView(key, is_dir, value, exp, ttl, kids, mod, created)  # type: ignore[arg-type]


def encode_store(store: Store) -> bytes:
    tree: list[list[object]] = []
    stack = list(store.root.children.values()) if store.root.children else []
    stack.reverse()
    while stack:  # preorder: parents before children, so decode can attach in one pass
        n = stack.pop()
        tree.append([n.path, n.value, n.created_index, n.modified_index, n.expire_at_ns, n.ttl_seq])
        if n.children:
            stack.extend(reversed(list(n.children.values())))
    history = [[e.action, _view_to(e.node), _view_to(e.prev_node), e.index, e.etcd_index, e.refresh]
               for e in store.history.events]
    doc = {"v": FORMAT_VERSION, "index": store.index, "ttl_seq": store._ttl_seq, "tree": tree, "history": history,
           "stats": list(astuple(store.stats))}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def decode_store(data: bytes) -> Store:
    doc = json.loads(data.decode("utf-8", "surrogatepass"))
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown store snapshot version {doc.get('v')!r}")
    store = Store()
    store.index = doc["index"]
    by_path: dict[str, Node] = {"/": store.root}
    store._ttl_seq = doc["ttl_seq"]
    for path, value, created, modified, expire, ttl_seq in doc["tree"]:
        parent = by_path[path.rsplit("/", 1)[0] or "/"]
        node = Node(path, value, created, parent, expire)
        node.modified_index = modified
        assert parent.children is not None
        parent.children[node.name] = node
        if node.children is not None:
            by_path[path] = node
        if expire:
            store._push_ttl(node, ttl_seq)
    hist = EventHistory()
    for action, node, prev, index, etcd_index, refresh in doc["history"]:
        hist.add(Event(action, _view_from(node), _view_from(prev), index, etcd_index, refresh))  # type: ignore[arg-type]
    store.history = hist
    store.stats = StoreStats(*doc["stats"])
    return store
