"""Store snapshot <-> bytes: versioned; the tree, index, TTL order, history and stats.

Watchers are not saved (their connections die with the process), exactly like etcd.

Format 2 (written): b"PYSTORE" + the version byte, then one marshal (format version 2: no back-references,
so nothing is kept aside while loading) of a tuple of flat columns; the snapshot file's CRC (storage/snap.py)
covers it. The tree is listed directory by directory, breadth first from the root: `counts[i]` is how many
children directory i has, and its children follow in the columns `names`, `values` (None for a directory),
`created`, `modified` (0: same as created, so the decoder shares one int object) in dict order; the i-th
directory is the i-th node with value None met in that order (the root is directory 0). TTLs are sparse:
`ttl_at` (positions in the columns), `ttl_expire`, `ttl_seq`. Decoding builds each directory's children
dict in one dict(zip(...)) and each node with plain slot stores; no per-node path is built or split. The
cyclic GC is off while it runs (passes over millions of new objects cost more than the decode).

Format 1 (read only, so existing data dirs restart): compact JSON {"v": 1, "index", "ttl_seq", "tree":
[[path, value, created, modified, expire, ttl_seq], ...] in preorder, "history", "stats"}.
"""

from __future__ import annotations

import gc
import json
import marshal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple

from .event import Event, NodeView
from .event_history import EventHistory
from .node import DirNode, Node
from .stats import StoreStats
from .store import Store

FORMAT_VERSION = 2
MAGIC = b"PYSTORE"  # + one version byte
_MARSHAL_VERSION = 2  # the oldest marshal format: every Python 3 reads it; no reference table


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


def _history_to(store: Store) -> list[list[object]]:
    return [[e.action, _view_to(e.node), _view_to(e.prev_node), e.index, e.etcd_index, e.refresh]
            for e in store.history.events]


def _history_from(raw: list[list[object]]) -> EventHistory:
    hist = EventHistory()
    for action, node, prev, index, etcd_index, refresh in raw:
        hist.add(Event(action, _view_from(node), _view_from(prev), index, etcd_index, refresh))  # type: ignore[arg-type]
    return hist


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic GC off while building a large long-lived state (a store: 1M keys is 1M tracked nodes).

    On the way out, when nothing is frozen, what exists moves straight to the oldest generation
    (gc.freeze() + gc.unfreeze(): two list splices), so re-enabling does not start with a pass over
    every new object as young ones (~0.2 s at 1M keys); it stays collectable by full collections. When
    something is frozen (a member's tree, between the daemon's gc.freeze() and a snapshot child's end),
    the frozen set is left alone and the young objects get their one ordinary pass."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


# ---- format 2 ----------------------------------------------------------------------------------------


def encode_store(store: Store) -> bytes:
    counts: list[int] = []
    names: list[str] = []
    values: list[str | None] = []
    created: list[int] = []
    modified: list[int] = []
    ttl_at: list[int] = []
    ttl_expire: list[int] = []
    ttl_seq: list[int] = []
    dirs: list[Node] = [store.root]
    for d in dirs:  # grows as directories are met: breadth first
        children = d.children
        assert children is not None
        counts.append(len(children))
        if not children:
            continue
        kids = list(children.values())
        base = len(names)
        names.extend(children)  # the keys are the nodes' names
        values.extend([k.value for k in kids])
        created.extend([k.created_index for k in kids])
        modified.extend([0 if k.modified_index == k.created_index else k.modified_index for k in kids])
        expires = [k.expire_at_ns for k in kids]
        if any(expires):
            for j, exp in enumerate(expires):
                if exp:
                    ttl_at.append(base + j)
                    ttl_expire.append(exp)
                    ttl_seq.append(kids[j].ttl_seq)
        dirs.extend([k for k in kids if k.children is not None])
    doc = (store.index, store._ttl_seq, list(astuple(store.stats)), counts, names, values, created, modified,
           ttl_at, ttl_expire, ttl_seq, _history_to(store))
    return MAGIC + bytes((FORMAT_VERSION,)) + marshal.dumps(doc, _MARSHAL_VERSION)


def decode_store(data: bytes | memoryview) -> Store:
    head = bytes(data[:len(MAGIC) + 1])
    if head[:len(MAGIC)] == MAGIC:
        if head[len(MAGIC):] != bytes((FORMAT_VERSION,)):
            raise ValueError(f"unknown store snapshot version {head[len(MAGIC):]!r}")
        with gc_paused():
            return _decode_v2(memoryview(data)[len(MAGIC) + 1:])
    if head[:1] == b"{":
        with gc_paused():
            return _decode_v1(data)
    raise ValueError(f"not a store snapshot (starts with {head!r})")


def _decode_v2(payload: memoryview) -> Store:
    try:
        (index, next_ttl_seq, stats, counts, names, values, created, modified, ttl_at, ttl_expire, ttl_seq,
         history) = marshal.loads(payload)
    except (EOFError, ValueError, TypeError) as e:
        raise ValueError(f"corrupt store snapshot: {e}") from e
    if not len(names) == len(values) == len(created) == len(modified):
        raise ValueError("corrupt store snapshot: columns of different lengths")
    store = Store()
    store.index = index
    store._ttl_seq = next_ttl_seq
    root = store.root
    dirs: list[Node] = [root]
    every: list[Node] | None = [] if ttl_at else None  # by position, to find the TTL nodes
    new = object.__new__
    pos = 0
    for i, count in enumerate(counts):  # `dirs` grows as the groups name new directories
        end = pos + count
        if i >= len(dirs) or not 0 <= count <= len(names) - pos:
            raise ValueError(f"corrupt store snapshot: group {i} of {count} nodes for {len(dirs)} directories, "
                             f"{len(names) - pos} nodes left")
        parent = dirs[i]
        group = names[pos:end]
        kids: list[Node] = []
        append = kids.append
        prefix = parent.prefix  # type: ignore[attr-defined]
        for name, value, c, m in zip(group, values[pos:end], created[pos:end], modified[pos:end], strict=True):
            if value is None:
                n = new(DirNode)
                n.path = path = prefix + name
                n.prefix = path + "/"
                n.children = None  # its dict comes with its own group
                dirs.append(n)
            else:
                n = new(Node)
            n.name = name
            n.value = value
            n.parent = parent
            n.created_index = c
            n.modified_index = m or c
            n.expire_at_ns = 0
            n.ttl_seq = 0
            append(n)
        parent.children = dict(zip(group, kids, strict=True))
        if len(parent.children) != count:
            raise ValueError(f"corrupt store snapshot: a name repeats under {parent.path}")
        if every is not None:
            every.extend(kids)
        pos = end
    if len(dirs) != len(counts) or pos != len(names):
        raise ValueError(f"corrupt store snapshot: {len(counts)} groups for {len(dirs)} directories, "
                         f"{pos} of {len(names)} nodes placed")
    if every is not None:
        if not len(ttl_at) == len(ttl_expire) == len(ttl_seq) or not 0 <= min(ttl_at) <= max(ttl_at) < len(every):
            raise ValueError("corrupt store snapshot: TTL columns")
        for at, exp, seq in zip(ttl_at, ttl_expire, ttl_seq, strict=True):
            node = every[at]
            node.expire_at_ns = exp
            store._push_ttl(node, seq)
    store.history = _history_from(history)
    store.stats = StoreStats(*stats)
    return store


# ---- format 1 (read only) ----------------------------------------------------------------------------


def _decode_v1(data: bytes | memoryview) -> Store:
    doc = json.loads(str(data, "utf-8", "surrogatepass"))
    if doc.get("v") != 1:
        raise ValueError(f"unknown store snapshot version {doc.get('v')!r}")
    store = Store()
    store.index = doc["index"]
    by_path: dict[str, Node] = {"/": store.root}
    store._ttl_seq = doc["ttl_seq"]
    for path, value, created, modified, expire, ttl_seq in doc["tree"]:
        parent = by_path[path.rsplit("/", 1)[0] or "/"]
        node = Node(path, value, created, parent, expire)
        node.modified_index = modified if modified != created else created
        assert parent.children is not None
        parent.children[node.name] = node
        if node.children is not None:
            by_path[path] = node
        if expire:
            store._push_ttl(node, ttl_seq)
    store.history = _history_from(doc["history"])
    store.stats = StoreStats(*doc["stats"])
    return store


def encode_store_v1(store: Store) -> bytes:
    """Format 1, as releases before format 2 wrote it: for tests that check old data dirs still load."""
    tree: list[list[object]] = []
    stack = list(store.root.children.values()) if store.root.children else []
    stack.reverse()
    while stack:  # preorder: parents before children, so decode can attach in one pass
        n = stack.pop()
        tree.append([n.path, n.value, n.created_index, n.modified_index, n.expire_at_ns, n.ttl_seq])
        if n.children:
            stack.extend(reversed(list(n.children.values())))
    doc = {"v": 1, "index": store.index, "ttl_seq": store._ttl_seq, "tree": tree, "history": _history_to(store),
           "stats": list(astuple(store.stats))}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
