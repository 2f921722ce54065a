"""Store snapshot codec: encode/decode keeps tree, indexes, TTLs, history and stats."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyetcd.server.apply import apply_request
from pyetcd.server.requests import DELETE, POST, PUT, SYNC, Request
from pyetcd.store import codec
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
    assert json.loads(data)["v"] == codec.FORMAT_VERSION
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
    doc = json.loads(codec.encode_store(Store()))
    doc["v"] = 99
    with pytest.raises(ValueError, match="unknown store snapshot version 99"):
        codec.decode_store(json.dumps(doc).encode())


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
    back = codec.decode_store(codec.encode_store(store))
    read_ns = now + read_at_s * S
    assert back.index == store.index
    assert (back.get("/", True, True, read_ns).to_json_bytes()
            == store.get("/", True, True, read_ns).to_json_bytes())
    assert _history(back) == _history(store)
    assert back.stats == store.stats
    assert back.next_expiry_ns() == store.next_expiry_ns()


@settings(max_examples=100, deadline=None)
@given(st.builds(Request, kind=st.sampled_from([PUT, POST, DELETE, SYNC]), path=st.text(max_size=8),
                 value=st.text(max_size=8), dir=st.booleans(), prev_value=st.text(max_size=4),
                 prev_index=st.integers(0, 2**64 - 1), prev_exist=st.sampled_from([None, True, False]),
                 expire_at_ns=st.integers(0, 2**63 - 1), refresh=st.booleans(), recursive=st.booleans(),
                 sorted=st.booleans(), time_ns=st.integers(0, 2**63 - 1),
                 peer_urls=st.lists(st.text(max_size=5), max_size=2).map(tuple)))
def test_log_request_round_trip(req: Request) -> None:
    assert Request.decode(req.encode()) == req
