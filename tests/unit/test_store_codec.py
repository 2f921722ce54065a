"""Store snapshot codec: encode/decode keeps tree, indexes, TTLs, history and stats."""

from __future__ import annotations

import gc
import json
import marshal
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyetcd.server.apply import apply_request
from pyetcd.server.requests import DELETE, POST, PUT, SYNC, Request
from pyetcd.store import codec
from pyetcd.store.node import DirNode, Node
from pyetcd.store.store import Store

from .helpers import T0, S, delete, listing, ok, put


def _history(store: Store) -> list[object]:
    return [(e.action, e.to_json_obj(), e.index, e.etcd_index, e.refresh) for e in store.history.events]


def _sample() -> Store:
    store = Store()
    ok(put(store, "/dir1/a", "A"))
    ok(put(store, "/dir1/_hidden", "H"))
    ok(put(store, "/dir1/sub/c", "C", ttl_s=30))
    ok(put(store, "/ttldir", dir=True, ttl_s=60))
    ok(put(store, "/ttldir/x", "x"))
    ok(put(store, "/uni/é ☃", "<&>\u2028"))
    ok(put(store, "/empty", ""))
    ok(put(store, "/e", dir=True))
    ok(put(store, "/dir1/a", "A2", prev_exist=True))
    ok(delete(store, "/e", dir=True))
    ok(put(store, "/dir1/sub/c", ttl_s=40, refresh=True, prev_exist=True))
    return store


def test_round_trip_preserves_everything() -> None:
    store = _sample()
    data = codec.encode_store(store)
    assert data[:8] == codec.MAGIC + bytes((codec.FORMAT_VERSION,)) == b"PYSTORE\x02"
    back = codec.decode_store(data)
    assert codec.encode_store(back) == data  # (before any read: gets count in stats)
    assert back.index == store.index == 11
    for now in (T0, T0 + 35 * S):
        assert listing(back, "/", now) == listing(store, "/", now)
    assert back.get("/dir1/_hidden", False, False, T0).node == store.get("/dir1/_hidden", False, False, T0).node
    assert _history(back) == _history(store)
    assert back.stats == store.stats
    assert back.next_expiry_ns() == store.next_expiry_ns() == T0 + 40 * S


def test_decoded_store_keeps_working() -> None:
    store = _sample()
    back = codec.decode_store(codec.encode_store(store))
    # TTLs still fire (file and directory) and consume the next indexes
    evs = back.expire(T0 + 100 * S)
    assert [(e.action, e.node.key, e.index) for e in evs] == [("expire", "/dir1/sub/c", 12),
                                                               ("expire", "/ttldir", 13)]
    # history answers waitIndex watches after restore
    _, found = back.watch("/dir1/a", False, False, 2, 1)
    assert found is not None and found.index == 9
    # and writes continue from the saved index
    assert ok(put(back, "/new", "v")).index == 14


def test_watchers_are_not_saved() -> None:
    store = Store()
    store.watch("/a", True, True, 0, 1)
    back = codec.decode_store(codec.encode_store(store))
    assert back.hub.count == 0


def test_unknown_version_is_rejected() -> None:
    doc = json.loads(codec.encode_store_v1(Store()))
    doc["v"] = 99
    with pytest.raises(ValueError, match="unknown store snapshot version 99"):
        codec.decode_store(json.dumps(doc).encode())
    data = bytearray(codec.encode_store(Store()))
    data[7] = 3
    with pytest.raises(ValueError, match="unknown store snapshot version"):
        codec.decode_store(bytes(data))
    with pytest.raises(ValueError, match="not a store snapshot"):
        codec.decode_store(b"garbage")


def test_a_damaged_payload_is_an_error_not_a_wrong_store() -> None:
    data = codec.encode_store(_sample())
    with pytest.raises(ValueError, match="corrupt store snapshot"):
        codec.decode_store(data[:len(data) // 2])
    payload = marshal.loads(data[8:])
    for damage in ((3, payload[3][:-1]),  # one directory's group missing
                   (3, [*payload[3], 0]),  # one group too many
                   (3, [payload[3][0] + 1, *payload[3][1:]]),  # a count past the columns' end
                   (3, [10**12, *payload[3][1:]]),
                   (5, payload[5][:-1]),  # a column short
                   (4, [payload[4][0]] * len(payload[4])),  # a name repeats
                   (8, [len(payload[4])])):  # a TTL for a node that is not there
        bad = list(payload)
        bad[damage[0]] = damage[1]
        with pytest.raises(ValueError, match="corrupt store snapshot"):
            codec.decode_store(data[:8] + marshal.dumps(tuple(bad), 2))


# ---- format 2: layout and what the decoder shares --------------------------------------------------


def test_format_2_lists_the_tree_by_directory_breadth_first() -> None:
    store = Store()
    ok(put(store, "/a/x", "1"))
    ok(put(store, "/b", "2", ttl_s=5))
    ok(put(store, "/a/y/z", "3"))
    ok(put(store, "/a/x", "4", prev_exist=True))  # modified later than created
    (index, ttl_seq, stats, counts, names, values, created, modified, ttl_at, ttl_expire, seqs,
     history) = marshal.loads(codec.encode_store(store)[8:])
    assert (index, ttl_seq) == (4, 1)
    assert counts == [2, 2, 1]  # directories only: / (a, b), /a (x, y), /a/y (z)
    assert names == ["a", "b", "x", "y", "z"]
    assert values == [None, "2", "4", None, "3"]
    assert created == [1, 2, 1, 3, 3]
    assert modified == [0, 0, 4, 0, 0]  # 0: same as created
    assert (ttl_at, ttl_expire, seqs) == ([1], [T0 + 5 * S], [1])
    assert len(history) == 4 and stats == list(astuple_stats(store))


def astuple_stats(store: Store) -> tuple[int, ...]:
    from dataclasses import astuple

    return astuple(store.stats)


def test_decoded_nodes_share_their_strings_and_ints() -> None:
    store = Store()
    for i in range(50):
        ok(put(store, f"/d/k{i}", f"value {i}"))
    ok(put(store, "/d/k7", "again"))
    back = codec.decode_store(codec.encode_store(store))
    d = back.root.children["d"]  # type: ignore[index]
    assert isinstance(d, DirNode) and d.path == "/d" and d.parent is back.root
    for name, node in d.children.items():  # type: ignore[union-attr]
        assert type(node) is Node and node.name is name and node.parent is d
        if node.modified_index == node.created_index:
            assert node.modified_index is node.created_index
    assert d.children["k7"].modified_index == 51 and d.children["k7"].path == "/d/k7"  # type: ignore[index]


def test_deep_and_wide_trees_round_trip() -> None:
    store = Store()
    deep = "".join(f"/l{i}" for i in range(300))
    ok(put(store, deep + "/leaf", "v", ttl_s=9))
    for i in range(200):
        ok(put(store, f"/w/d{i}/k", str(i)))
        ok(put(store, f"/w/e{i}", dir=True))
    back = codec.decode_store(codec.encode_store(store))
    assert back.get(deep + "/leaf", False, False, T0).node == store.get(deep + "/leaf", False, False, T0).node
    assert listing(back, "/", T0) == listing(store, "/", T0)
    assert codec.encode_store(back) == codec.encode_store(store)


@pytest.mark.parametrize("enabled", [True, False])
def test_decode_leaves_the_collector_as_it_found_it(enabled: bool) -> None:
    data = codec.encode_store(_sample())
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        codec.decode_store(data)
        assert gc.isenabled() is enabled
        with pytest.raises(ValueError):
            codec.decode_store(data[:20])
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


# ---- format 1: data dirs written before format 2 still restart ------------------------------------

# What the format-1 encoder (before format 2) wrote for _sample() plus a key and value of non-UTF-8 bytes
# and one GET, byte for byte.
V1_SAMPLE = (
    b'{"v":1,"index":12,"ttl_seq":3,"tree":[["/dir1",null,1,1,0,0],["/dir1/a","A2",1,10,0,0],'
    b'["/dir1/_hidden","H",2,2,0,0],["/dir1/sub",null,3,3,0,0],'
    b'["/dir1/sub/c","C",3,12,1700000040000000000,3],["/ttldir",null,4,4,1700000060000000000,2],'
    b'["/ttldir/x","x",5,5,0,0],["/uni",null,6,6,0,0],'
    b'["/uni/\xc3\xa9 \xe2\x98\x83","<&>\xe2\x80\xa8",6,6,0,0],'
    b'["/b\xed\xb3\xbf","\xed\xb3\xbf\xed\xb3\xbe",7,7,0,0],["/empty","",8,8,0,0]],'
    b'"history":[["set",["/dir1/a",false,"A",0,0,null,1,1],null,1,1,false],'
    b'["set",["/dir1/_hidden",false,"H",0,0,null,2,2],null,2,2,false],'
    b'["set",["/dir1/sub/c",false,"C",1700000030000000000,30,null,3,3],null,3,3,false],'
    b'["set",["/ttldir",true,null,1700000060000000000,60,null,4,4],null,4,4,false],'
    b'["set",["/ttldir/x",false,"x",0,0,null,5,5],null,5,5,false],'
    b'["set",["/uni/\xc3\xa9 \xe2\x98\x83",false,"<&>\xe2\x80\xa8",0,0,null,6,6],null,6,6,false],'
    b'["set",["/b\xed\xb3\xbf",false,"\xed\xb3\xbf\xed\xb3\xbe",0,0,null,7,7],null,7,7,false],'
    b'["set",["/empty",false,"",0,0,null,8,8],null,8,8,false],'
    b'["set",["/e",true,null,0,0,null,9,9],null,9,9,false],'
    b'["update",["/dir1/a",false,"A2",0,0,null,10,1],["/dir1/a",false,"A",0,0,null,1,1],10,10,false],'
    b'["delete",["/e",true,null,0,0,null,11,9],["/e",true,null,0,0,null,9,9],11,11,false],'
    b'["update",["/dir1/sub/c",false,"C",1700000040000000000,40,null,12,3],'
    b'["/dir1/sub/c",false,"C",1700000030000000000,30,null,3,3],12,12,true]],'
    b'"stats":[1,0,9,0,1,0,2,0,0,0,0,0,0,0,0]}'
)


def _v1_sample_store() -> Store:
    store = Store()
    ok(put(store, "/dir1/a", "A"))
    ok(put(store, "/dir1/_hidden", "H"))
    ok(put(store, "/dir1/sub/c", "C", ttl_s=30))
    ok(put(store, "/ttldir", dir=True, ttl_s=60))
    ok(put(store, "/ttldir/x", "x"))
    ok(put(store, "/uni/é ☃", "<&>\u2028"))
    ok(put(store, "/b\udcff", "\udcff\udcfe"))
    ok(put(store, "/empty", ""))
    ok(put(store, "/e", dir=True))
    ok(put(store, "/dir1/a", "A2", prev_exist=True))
    ok(delete(store, "/e", dir=True))
    ok(put(store, "/dir1/sub/c", ttl_s=40, refresh=True, prev_exist=True))
    store.get("/dir1/a", False, False, T0)
    return store


def test_a_format_1_snapshot_still_loads() -> None:
    store = _v1_sample_store()
    assert codec.encode_store_v1(store) == V1_SAMPLE  # the test helper writes what releases wrote
    back = codec.decode_store(V1_SAMPLE)
    assert back.stats == store.stats and back.index == 12 and back._ttl_seq == 3
    assert codec.encode_store(back) == codec.encode_store(store)  # the next snapshot: format 2, the same
    for now in (T0, T0 + 35 * S, T0 + 45 * S):
        assert listing(back, "/", now) == listing(store, "/", now)
    assert back.get("/dir1/_hidden", False, False, T0).node == store.get("/dir1/_hidden", False, False, T0).node
    assert back.get("/b\udcff", False, False, T0).node.value == "\udcff\udcfe"
    assert _history(back) == _history(store)
    # the TTLs fire in the same order
    want = [(e.node.key, e.index) for e in store.expire(T0 + 100 * S)]
    assert [(e.node.key, e.index) for e in back.expire(T0 + 100 * S)] == want == [("/dir1/sub/c", 13),
                                                                                   ("/ttldir", 14)]


def test_format_1_decode_shares_equal_indexes() -> None:
    back = codec.decode_store(V1_SAMPLE)
    x = back._walk("/ttldir/x")
    assert x.modified_index is x.created_index


def test_non_utf8_values_survive() -> None:
    store = Store()
    ok(put(store, "/b", "\udcff\udcfe"))  # invalid UTF-8 bytes from a form, as surrogate escapes
    back = codec.decode_store(codec.encode_store(store))
    assert back.get("/b", False, False, T0).node.value == "\udcff\udcfe"


def test_equal_expirations_expire_in_the_same_order_after_restore() -> None:
    store = Store()
    exp_ttl = 10
    ok(put(store, "/x/k1", "1", ttl_s=exp_ttl))
    ok(put(store, "/y", "2", ttl_s=exp_ttl))
    ok(put(store, "/x/k2", "3", ttl_s=exp_ttl))
    back = codec.decode_store(codec.encode_store(store))
    want = [(e.node.key, e.index) for e in store.expire(T0 + exp_ttl * S)]
    got = [(e.node.key, e.index) for e in back.expire(T0 + exp_ttl * S)]
    assert got == want


# ---- property: any op sequence round-trips -------------------------------------------------------

PATHS = ["/a", "/a/b", "/a/_h", "/a/b/c", "/c", "/_x/y", "/q"]

op = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(PATHS), st.booleans(), st.text(max_size=3),
              st.sampled_from([None, 0, 1, 5])),
    st.tuples(st.just("create"), st.sampled_from(PATHS), st.booleans(), st.text(max_size=3),
              st.sampled_from([None, 2])),
    st.tuples(st.just("update"), st.sampled_from(PATHS), st.text(max_size=3), st.sampled_from([None, 3])),
    st.tuples(st.just("refresh"), st.sampled_from(PATHS), st.booleans()),
    st.tuples(st.just("cas"), st.sampled_from(PATHS), st.sampled_from(["", "x", "0"]), st.integers(0, 12)),
    st.tuples(st.just("delete"), st.sampled_from(PATHS), st.booleans(), st.booleans()),
    st.tuples(st.just("cad"), st.sampled_from(PATHS), st.sampled_from(["", "x"]), st.integers(0, 12)),
    st.tuples(st.just("post"), st.sampled_from(["/q", "/", "/a"]), st.text(max_size=2)),
    st.tuples(st.just("sync"), st.integers(0, 3)),
)


def _request(o: tuple[object, ...], now: int) -> Request:
    kind = o[0]

    def exp(ttl: object) -> int:
        return 0 if ttl is None else now + int(ttl) * S  # type: ignore[call-overload]

    if kind == "set":
        return Request(PUT, str(o[1]), value=str(o[3]), dir=bool(o[2]), expire_at_ns=exp(o[4]), time_ns=now)
    if kind == "create":
        return Request(PUT, str(o[1]), value=str(o[3]), dir=bool(o[2]), prev_exist=False,
                       expire_at_ns=exp(o[4]), time_ns=now)
    if kind == "update":
        return Request(PUT, str(o[1]), value=str(o[2]), prev_exist=True, expire_at_ns=exp(o[3]), time_ns=now)
    if kind == "refresh":
        return Request(PUT, str(o[1]), refresh=True, prev_exist=True if o[2] else None, expire_at_ns=exp(4),
                       time_ns=now)
    if kind == "cas":
        return Request(PUT, str(o[1]), value="0", prev_value=str(o[2]), prev_index=int(o[3]),  # type: ignore[call-overload]
                       time_ns=now)
    if kind == "delete":
        return Request(DELETE, str(o[1]), dir=bool(o[2]), recursive=bool(o[3]), time_ns=now)
    if kind == "cad":
        return Request(DELETE, str(o[1]), prev_value=str(o[2]), prev_index=int(o[3]),  # type: ignore[call-overload]
                       time_ns=now)
    if kind == "post":
        return Request(POST, str(o[1]), value=str(o[2]), time_ns=now)
    return Request(SYNC, time_ns=now)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=40), st.integers(0, 8))
def test_property_random_ops_round_trip(ops: list[tuple[object, ...]], read_at_s: int) -> None:
    store = Store()
    now = T0
    for o in ops:
        if o[0] == "sync":
            now += int(o[1]) * S  # type: ignore[call-overload]
        else:
            now += 250_000_000
        apply_request(store, _request(o, now))
        store.hub.drain()
    read_ns = now + read_at_s * S
    v2, v1 = codec.decode_store(codec.encode_store(store)), codec.decode_store(codec.encode_store_v1(store))
    want_expired = [(e.node.key, e.index) for e in codec.decode_store(codec.encode_store(store)).expire(read_ns)]
    want_stats = replace(store.stats)
    for back in (v2, v1):
        assert back.index == store.index
        assert back.stats == want_stats
        assert _history(back) == _history(store)
        assert back.next_expiry_ns() == store.next_expiry_ns()
        assert (back.get("/", True, True, read_ns).to_json_bytes()
                == store.get("/", True, True, read_ns).to_json_bytes())
        assert [(e.node.key, e.index) for e in back.expire(read_ns)] == want_expired


@settings(max_examples=100, deadline=None)
@given(st.builds(Request, kind=st.sampled_from([PUT, POST, DELETE, SYNC]), path=st.text(max_size=8),
                 value=st.text(max_size=8), dir=st.booleans(), prev_value=st.text(max_size=4),
                 prev_index=st.integers(0, 2**64 - 1), prev_exist=st.sampled_from([None, True, False]),
                 expire_at_ns=st.integers(0, 2**63 - 1), refresh=st.booleans(), recursive=st.booleans(),
                 sorted=st.booleans(), time_ns=st.integers(0, 2**63 - 1),
                 peer_urls=st.lists(st.text(max_size=5), max_size=2).map(tuple)))
def test_log_request_round_trip(req: Request) -> None:
    assert Request.decode(req.encode()) == req
