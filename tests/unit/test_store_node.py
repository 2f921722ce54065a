"""Node: what a key costs in memory, the path files compute, and liveness from the tree links."""

from __future__ import annotations

import gc
import sys
import tracemalloc

from pyetcd.store import codec
from pyetcd.store.node import DirNode, Node
from pyetcd.store.store import Store

from .helpers import T0, S, delete, ok, put, sync


def test_node_makes_a_file_or_a_directory() -> None:
    root = Node("/", None, 0, None)
    d = Node("/d", None, 1, root)
    f = Node("/d/k", "v", 2, d, 7)
    assert type(root) is DirNode and type(d) is DirNode and type(f) is Node
    assert (root.path, root.name, root.children) == ("/", "", {})
    assert (d.path, d.name, d.is_dir) == ("/d", "d", True)
    assert (f.path, f.name, f.value, f.children, f.is_dir) == ("/d/k", "k", "v", None, False)
    assert (f.created_index, f.modified_index, f.expire_at_ns, f.ttl_seq) == (2, 2, 7, 0)
    assert Node("/top", "", 3, root).path == "/top"


def test_a_file_is_small_and_stores_no_path() -> None:
    assert not hasattr(Node("/d/k", "v", 1, Node("/d", None, 1, None)), "__dict__")
    assert sys.getsizeof(Node("/k", "v", 1, Node("/", None, 0, None))) <= 8 * 8 + 16 + 16  # 8 slots + GC head
    assert "path" not in Node.__slots__ and "alive" not in Node.__slots__


def test_paths_of_views_and_events() -> None:
    store = Store()
    ev = ok(put(store, "/a/b/c", "1"))
    assert ev.node.key == "/a/b/c"
    assert store.get("/a", True, True, T0).node.to_json_obj()["nodes"][0]["nodes"][0]["key"] == "/a/b/c"  # type: ignore[index]
    gone = ok(delete(store, "/a", recursive=True))
    assert gone.prev_node is not None and gone.prev_node.key == "/a"


def test_alive_follows_the_tree() -> None:
    store = Store()
    ok(put(store, "/d/sub/k", "1", ttl_s=5))
    ok(put(store, "/d/x", "2"))
    k, x, d = store._walk("/d/sub/k"), store._walk("/d/x"), store._walk("/d")
    assert k.alive and x.alive and d.alive and store.root.alive
    ok(put(store, "/d/x", "3"))  # replaced: the old node is no longer in the tree
    assert not x.alive and store._walk("/d/x").alive
    assert x.path == "/d/x"  # a detached file still knows where it was
    ok(delete(store, "/d", recursive=True))
    assert not d.alive and not k.alive  # the whole subtree, through its detached top
    assert store.next_expiry_ns() == 0  # and its TTL entry is dropped
    sync(store, T0 + 10 * S)
    assert store.index == 4  # nothing left to expire


def test_memory_per_key_of_a_decoded_store() -> None:
    """The breakdown in store/node.py's docstring: about 400 bytes for a 100-byte value (was ~520)."""
    n = 20_000
    store = Store()
    value = "v" * 100
    for i in range(n):
        ok(put(store, f"/bench/k{100000 + i}", value[:99] + str(i % 10)))
    data = codec.encode_store(store)
    del store
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        back = codec.decode_store(data)
        gc.collect()
        per_key = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert back.index == n
    # Node 96 + value 160 + name 64 + one int 32 + dict entry ~42 (tracemalloc counts requested sizes,
    # a little under pymalloc's 16-byte blocks)
    print(f"{per_key:.0f} bytes per key")
    assert 330 < per_key < 420, per_key
