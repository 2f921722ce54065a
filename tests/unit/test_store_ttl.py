"""TTLs: rendering, expiry through SYNC (`Store.expire`), refresh, and how they use indexes."""

from __future__ import annotations

import pytest
from pyetcd.store.event import rfc3339_ns
from pyetcd.store.node import ttl_from
from pyetcd.store.store import EXPIRE_AT_NS_MAX, Store

from .helpers import T0, S, delete, err, js, ok, put, qget, sync


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.mark.parametrize(("left_ns", "ttl"), [
    (5 * S, 5), (4 * S + 200_000_000, 5), (3 * S + 800_000_000, 4), (1, 1), (S, 1), (S + 1, 2),
    (0, 0), (-1, 0), (-500_000_000, 0), (-S, -1), (-1_500_000_000, -1), (-2 * S - 1, -2),
])
def test_ttl_is_ceiling_of_remaining_seconds(left_ns: int, ttl: int) -> None:
    assert ttl_from(T0 + left_ns, T0) == ttl


@pytest.mark.parametrize(("ns", "text"), [
    (T0, "2023-11-14T22:13:20Z"),
    (T0 + 685_668_010, "2023-11-14T22:13:20.68566801Z"),
    (T0 + 1, "2023-11-14T22:13:20.000000001Z"),
    (T0 + 473_857_007, "2023-11-14T22:13:20.473857007Z"),
])
def test_expiration_rfc3339_nano(ns: int, text: str) -> None:
    assert rfc3339_ns(ns) == text


def test_ttl_rendering_over_time(store: Store) -> None:
    ok(put(store, "/k", "v", ttl_s=5))
    assert js(store.get("/k", False, False, T0))["node"] == {
        "key": "/k", "value": "v", "expiration": "2023-11-14T22:13:25Z", "ttl": 5, "modifiedIndex": 1,
        "createdIndex": 1}
    assert store.get("/k", False, False, T0 + 1_200_000_000).node.ttl == 4
    node = store.get("/k", False, False, T0 + 5 * S).node.to_json_obj()
    assert "ttl" not in node and node["expiration"] == "2023-11-14T22:13:25Z"  # due, not yet expired


def test_ttl_zero_is_due_immediately(store: Store) -> None:
    ev = ok(put(store, "/z", "v", ttl_s=0))
    assert "ttl" not in js(ev)["node"] and "expiration" in js(ev)["node"]  # type: ignore[operator]
    assert [e.action for e in store.expire(T0)] == ["expire"]


def test_expire_at_or_before_now_only(store: Store) -> None:
    ok(put(store, "/k", "v", ttl_s=2))
    assert store.next_expiry_ns() == T0 + 2 * S and store.has_ttl_keys
    assert store.expire(T0 + 2 * S - 1) == []
    assert store.index == 1
    evs = store.expire(T0 + 2 * S)
    assert len(evs) == 1 and store.index == 2
    assert store.next_expiry_ns() == 0 and not store.has_ttl_keys
    assert store.stats.expire_count == 1


def test_expire_event_shape(store: Store) -> None:
    ok(put(store, "/ex/k", "v", ttl_s=2))
    (ev,) = store.expire(T0 + 2 * S + 390_000_000)
    assert js(ev) == {"action": "expire", "node": {"key": "/ex/k", "modifiedIndex": 2, "createdIndex": 1},
                      "prevNode": {"key": "/ex/k", "value": "v", "expiration": "2023-11-14T22:13:22Z",
                                   "modifiedIndex": 1, "createdIndex": 1}}
    assert (ev.index, ev.etcd_index) == (2, 2)
    assert err(qget(store, "/ex/k")).code == 100
    assert store.get("/ex", False, False, T0).node.dir  # child expiry leaves the parent


def test_sync_request_expires(store: Store) -> None:
    ok(put(store, "/k", "v", ttl_s=1))
    assert sync(store, T0) is None and store.index == 1
    assert sync(store, T0 + 3 * S) is None and store.index == 2
    assert ok(put(store, "/n", "x")).index == 3  # the expiry consumed index 2


def test_directory_expiry_removes_subtree_and_fires_descendant_watchers(store: Store) -> None:
    ok(put(store, "/d", dir=True, ttl_s=10))
    ok(put(store, "/d/a/b", "x"))
    ok(put(store, "/d/c", "y", ttl_s=100))
    w_leaf, _ = store.watch("/d/a/b", False, False, 0, 1)
    w_dir, _ = store.watch("/d", False, False, 0, 2)
    w_root, _ = store.watch("/", True, False, 0, 3)
    w_other, _ = store.watch("/e", True, False, 0, 4)
    (ev,) = store.expire(T0 + 10 * S)
    assert js(ev)["node"] == {"key": "/d", "dir": True, "modifiedIndex": 4, "createdIndex": 1}
    fired = {w.watcher_id: e for w, e in store.hub.drain()}
    assert set(fired) == {1, 2, 3}
    assert all(e is ev for e in fired.values())
    assert not w_other.removed and w_leaf.removed
    assert err(qget(store, "/d")).code == 100
    assert store.next_expiry_ns() == 0  # the child's own TTL went with the subtree
    assert store.expire(T0 + 1000 * S) == []


def test_expiry_order_and_one_index_each(store: Store) -> None:
    ok(put(store, "/b", "2", ttl_s=3))
    ok(put(store, "/a", "1", ttl_s=1))
    ok(put(store, "/c", "3", ttl_s=2))
    evs = store.expire(T0 + 5 * S)
    assert [(e.node.key, e.index) for e in evs] == [("/a", 4), ("/c", 5), ("/b", 6)]


@pytest.mark.parametrize("how", ["set", "update", "cas"])
def test_write_without_ttl_makes_key_permanent(store: Store, how: str) -> None:
    ok(put(store, "/k", "v", ttl_s=1))
    kwargs = {"set": {}, "update": {"prev_exist": True}, "cas": {"prev_value": "v"}}[how]
    ev = ok(put(store, "/k", "w", **kwargs))
    assert ev.node.expire_at_ns == 0 and "ttl" not in js(ev)["node"]  # type: ignore[operator]
    assert store.expire(T0 + 10 * S) == []
    assert not store.has_ttl_keys
    assert store.get("/k", False, False, T0 + 10 * S).node.value == "w"


def test_ttl_moved_later_does_not_expire_at_old_time(store: Store) -> None:
    ok(put(store, "/k", "v", ttl_s=1))
    ok(put(store, "/k", "v", prev_exist=True, ttl_s=10))
    assert store.expire(T0 + 5 * S) == []
    assert [e.node.key for e in store.expire(T0 + 10 * S)] == ["/k"]


def test_deleted_or_replaced_ttl_key_never_expires(store: Store) -> None:
    ok(put(store, "/a", "v", ttl_s=1))
    ok(put(store, "/b", "v", ttl_s=1))
    ok(delete(store, "/a"))
    ok(put(store, "/b", "w"))
    assert store.expire(T0 + 5 * S) == [] and store.index == 4


def test_huge_ttl_is_capped_not_wrapped(store: Store) -> None:
    ev = ok(put(store, "/k", "v", ttl_s=99999999999999))
    assert ev.node.expire_at_ns == EXPIRE_AT_NS_MAX


# ---- refresh -------------------------------------------------------------------------------------

def test_refresh_update_keeps_value_and_created_index(store: Store) -> None:
    ok(put(store, "/ttlkey", "bar", ttl_s=5))
    w, _ = store.watch("/ttlkey", False, False, 0, 1)
    ev = ok(put(store, "/ttlkey", ttl_s=20, refresh=True, prev_exist=True, now_ns=T0 + S))
    assert (ev.action, ev.node.value, ev.node.created_index, ev.node.modified_index) == ("update", "bar", 1, 2)
    assert ev.node.ttl == 20 and ev.prev_node is not None and ev.prev_node.ttl == 4
    assert ev.refresh and store.index == 2
    assert store.hub.drain() == [] and not w.removed  # refresh wakes nobody
    assert store.expire(T0 + 6 * S) == []  # old deadline dropped
    assert [e.node.key for e in store.expire(T0 + 21 * S)] == ["/ttlkey"]


def test_refresh_set_creates_new_node_with_old_value(store: Store) -> None:
    ok(put(store, "/ttlkey", "bar", ttl_s=5))
    ev = ok(put(store, "/ttlkey", ttl_s=20, refresh=True))
    assert (ev.action, ev.node.value, ev.node.created_index) == ("set", "bar", 2)
    assert not ev.is_created()  # 200, not 201


def test_refresh_cas_keeps_value(store: Store) -> None:
    ok(put(store, "/k", "bar", ttl_s=5))
    ev = ok(put(store, "/k", ttl_s=9, refresh=True, prev_value="bar"))
    assert (ev.action, ev.node.value, ev.node.ttl, ev.refresh) == ("compareAndSwap", "bar", 9, True)


@pytest.mark.parametrize("kwargs", [{}, {"prev_exist": True}])
def test_refresh_missing_key_is_not_found(store: Store, kwargs: dict[str, object]) -> None:
    e = err(put(store, "/nope", ttl_s=5, refresh=True, **kwargs))
    assert (e.code, e.cause, e.index) == (100, "/nope", 0)
    assert store.index == 0


def test_refresh_is_skipped_by_history_watch(store: Store) -> None:
    ok(put(store, "/k", "v", ttl_s=5))  # 1
    ok(put(store, "/k", ttl_s=20, refresh=True, prev_exist=True))  # 2 (refresh)
    ok(put(store, "/k", "w"))  # 3
    _, found = store.watch("/k", False, False, 2, 1)
    assert found is not None and found.index == 3
