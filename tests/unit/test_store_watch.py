"""Watchers (`Store.watch` + `store.hub.drain()`) and the 1000-event history ring."""

from __future__ import annotations

import pytest
from pyetcd.store import errors
from pyetcd.store.errors import V2Error
from pyetcd.store.event_history import HISTORY_EVENTS_MAX
from pyetcd.store.store import Store

from .helpers import T0, delete, js, ok, put


@pytest.fixture
def store() -> Store:
    return Store()


def fired_ids(store: Store) -> list[int]:
    return [w.watcher_id for w, _ in store.hub.drain()]


def test_exact_key_watch_fires_once_then_unregisters(store: Store) -> None:
    ok(put(store, "/w/k", "v0"))
    w, found = store.watch("/w/k", False, False, 0, 7)
    assert found is None and store.hub.count == 1 and w.since_index == 2
    ev = ok(put(store, "/w/k", "v1"))
    fired = store.hub.drain()
    assert [(x.watcher_id, e) for x, e in fired] == [(7, ev)]
    assert js(ev)["prevNode"] == {"key": "/w/k", "value": "v0", "modifiedIndex": 1, "createdIndex": 1}
    assert w.removed and store.hub.count == 0 and store.hub.by_path == {}
    ok(put(store, "/w/k", "v2"))
    assert store.hub.drain() == []


def test_watch_missing_key_fires_on_creation(store: Store) -> None:
    store.watch("/later", False, False, 0, 1)
    ev = ok(put(store, "/later", "x"))
    assert store.hub.drain()[0][1] is ev


def test_non_recursive_dir_watch_ignores_children(store: Store) -> None:
    ok(put(store, "/w", dir=True))
    store.watch("/w", False, False, 0, 1)
    ok(put(store, "/w/child", "x"))
    ok(put(store, "/w/sub/deep", "x"))
    ok(delete(store, "/w/child"))
    assert fired_ids(store) == [] and store.hub.count == 1


def test_dir_update_fires_non_recursive_watch(store: Store) -> None:
    ok(put(store, "/w", dir=True))
    store.watch("/w", False, False, 0, 1)
    ok(put(store, "/w/child", "x"))
    ev = ok(put(store, "/w", dir=True, prev_exist=True, ttl_s=1000))
    fired = store.hub.drain()
    assert [(w.watcher_id, e.index) for w, e in fired] == [(1, ev.index)]


def test_recursive_watch_fires_for_deep_child(store: Store) -> None:
    store.watch("/w", True, False, 0, 1)
    ev = ok(put(store, "/w/sub/deep", "d"))
    assert [(w.watcher_id, e) for w, e in store.hub.drain()] == [(1, ev)]


def test_root_recursive_watch_sees_everything_visible(store: Store) -> None:
    store.watch("/", True, True, 0, 1)
    ok(put(store, "/a", "1"))
    ok(put(store, "/_h", "x"))
    ok(put(store, "/b/_h/c", "x"))
    ok(put(store, "/b/c", "x"))
    assert [e.node.key for _, e in store.hub.drain()] == ["/a", "/b/c"]


def test_hidden_keys_do_not_fire_recursive_ancestors(store: Store) -> None:
    store.watch("/w3", True, False, 0, 1)
    store.watch("/hw/_h", False, False, 0, 2)
    store.watch("/hw/_h", True, False, 0, 3)
    ok(put(store, "/w3/_h", "x"))
    assert fired_ids(store) == []
    ok(put(store, "/w3/vis", "x"))
    ok(put(store, "/hw/_h", "x"))
    assert sorted(fired_ids(store)) == [1, 2, 3]


def test_recursive_watch_inside_hidden_dir_fires(store: Store) -> None:
    store.watch("/_d", True, False, 0, 1)
    ok(put(store, "/_d/x", "1"))
    assert fired_ids(store) == [1]


def test_dir_delete_fires_watchers_below(store: Store) -> None:
    ok(put(store, "/w2/leaf", "x"))
    ok(put(store, "/w2/sub/_h", "x"))
    store.watch("/w2/leaf", False, False, 0, 1)
    store.watch("/w2/sub/_h", False, False, 0, 2)
    store.watch("/w2/not-yet", False, False, 0, 3)
    store.watch("/w2", False, False, 0, 4)
    store.watch("/", True, False, 0, 5)
    store.watch("/w22", False, False, 0, 6)
    ev = ok(delete(store, "/w2", recursive=True))
    fired = store.hub.drain()
    assert sorted(w.watcher_id for w, _ in fired) == [1, 2, 4, 5]
    assert all(e is ev for _, e in fired)
    assert js(ev)["node"] == {"key": "/w2", "dir": True, "modifiedIndex": 3, "createdIndex": 1}
    # a watcher on a key that did not exist inside the dir is not offered the event
    assert store.hub.count == 2


def test_stream_watch_stays_registered(store: Store) -> None:
    w, _ = store.watch("/st", True, True, 0, 1)
    evs = [ok(put(store, f"/st/k{i}", str(i))) for i in range(3)]
    assert [e for _, e in store.hub.drain()] == evs
    assert not w.removed and store.hub.count == 1
    store.hub.remove(w)
    assert store.hub.count == 0 and w.removed
    store.hub.remove(w)  # idempotent
    assert store.hub.count == 0


def test_stream_watcher_below_deleted_dir_gets_event_once(store: Store) -> None:
    ok(put(store, "/d/x", "1"))
    store.watch("/d/x", False, True, 0, 1)
    store.watch("/d", True, True, 0, 2)
    ok(delete(store, "/d", recursive=True))
    assert sorted(fired_ids(store)) == [1, 2]


def test_since_index_from_history_is_answered_without_registering(store: Store) -> None:
    ok(put(store, "/wi/a", "1"))  # 1
    ok(put(store, "/wi/b", "2"))  # 2
    ok(put(store, "/wi/a", "3"))  # 3
    w, found = store.watch("/wi/a", False, False, 1, 1)
    assert found is not None and found.index == 1 and w.removed and store.hub.count == 0
    w, found = store.watch("/wi/a", False, False, 2, 2)
    assert found is not None and found.index == 3
    w, found = store.watch("/wi", True, False, 2, 3)
    assert found is not None and found.node.key == "/wi/b"
    w, found = store.watch("/wi", False, False, 1, 4)  # non-recursive: children never match
    assert found is None and not w.removed


def test_future_since_index_waits(store: Store) -> None:
    ok(put(store, "/k", "1"))
    w, found = store.watch("/k", False, False, 3, 1)
    assert found is None and not w.removed
    ok(put(store, "/k", "2"))  # index 2 < 3: ignored
    assert fired_ids(store) == []
    ok(put(store, "/k", "3"))
    assert fired_ids(store) == [1]


def test_stream_watch_answered_from_history_is_not_registered(store: Store) -> None:
    """etcd 3.4: a stream watch whose waitIndex hits history gets that one event, then silence."""
    for i in range(3):
        ok(put(store, "/s/k", str(i)))
    w, found = store.watch("/s/k", False, True, 2, 1)
    assert found is not None and found.index == 2 and w.removed and store.hub.count == 0
    ok(put(store, "/s/k", "x"))
    assert store.hub.drain() == []


def test_history_scan_finds_dir_delete_for_descendant(store: Store) -> None:
    ok(put(store, "/w2/leaf", "x"))
    ok(delete(store, "/w2", recursive=True))
    _, found = store.watch("/w2/leaf/deeper", False, False, 2, 1)
    assert found is not None and (found.action, found.node.key) == ("delete", "/w2")


def test_expire_fires_watch(store: Store) -> None:
    ok(put(store, "/ex/k", "v", ttl_s=2))
    store.watch("/ex/k", False, False, 0, 1)
    (ev,) = store.expire(T0 + 3_000_000_000)
    assert [(w.watcher_id, e) for w, e in store.hub.drain()] == [(1, ev)]


def test_watchers_count_in_store_stats(store: Store) -> None:
    store.watch("/a", False, False, 0, 1)
    store.watch("/b", True, True, 0, 2)
    assert store.stats.to_json_obj(store.hub.count)["watchers"] == 2


# ---- history ring --------------------------------------------------------------------------------

def _fill(store: Store, n: int) -> None:
    for i in range(n):
        ok(put(store, f"/hist/k{i % 7}", str(i)))


def test_history_keeps_last_1000_events(store: Store) -> None:
    assert HISTORY_EVENTS_MAX == 1000
    _fill(store, 1105)
    assert len(store.history.events) == 1000
    assert (store.history.start_index, store.history.last_index) == (106, 1105)


def test_wait_index_too_old_is_401(store: Store) -> None:
    _fill(store, 1105)
    with pytest.raises(V2Error) as info:
        store.watch("/hist/first", False, False, 100, 1)
    e = info.value
    assert e.as_dict() == {"errorCode": 401, "message": "The event in requested index is outdated and cleared",
                           "cause": "the requested history has been cleared [106/100]", "index": 1105}
    assert e.code == errors.EVENT_INDEX_CLEARED and e.http_status == 400
    assert store.hub.count == 0


def test_wait_index_current_minus_999_still_works(store: Store) -> None:
    _fill(store, 1105)
    _, found = store.watch("/hist", True, False, 1105 - 999, 1)
    assert found is not None and found.index == 106
    with pytest.raises(V2Error):
        store.watch("/hist", True, False, 1105 - 1000, 2)


def test_deletes_and_failures_in_history_accounting(store: Store) -> None:
    ok(put(store, "/a", "1"))
    ok(delete(store, "/a"))
    put(store, "/a", "x", prev_exist=True)  # fails: no event
    ok(put(store, "/a", "2", ttl_s=1))
    store.expire(T0 + 2_000_000_000)
    assert [(e.action, e.index) for e in store.history.events] == [
        ("set", 1), ("delete", 2), ("set", 3), ("expire", 4)]
