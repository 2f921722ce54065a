"""The pure v2 store: set/create/update/CAS/delete/CAD, dirs, in-order keys, hidden keys, listings,
index accounting. PUT/DELETE/POST go through `apply_request` so the decision table is exercised too."""

from __future__ import annotations

import pytest
from pyetcd.store import errors
from pyetcd.store.errors import V2Error
from pyetcd.store.store import Store, clean_key

from .helpers import T0, delete, err, js, listing, ok, post, put, qget


@pytest.fixture
def store() -> Store:
    return Store()


def _foo(store: Store) -> Store:
    ok(put(store, "/foo", "one"))  # index 1
    return store


# ---- PUT decision table --------------------------------------------------------------------------

# (prev_exist, prev_value, prev_index, expected action or error code) with /foo = "one" @ index 1
EXISTING = [
    (True, "", 0, "update"),
    (True, "one", 0, "compareAndSwap"),
    (True, "", 1, "compareAndSwap"),
    (True, "one", 1, "compareAndSwap"),
    (True, "wrong", 0, errors.TEST_FAILED),
    (True, "", 7, errors.TEST_FAILED),
    (False, "", 0, errors.NODE_EXIST),
    (False, "one", 1, errors.NODE_EXIST),  # prevValue/prevIndex ignored: create
    (None, "one", 0, "compareAndSwap"),
    (None, "", 1, "compareAndSwap"),
    (None, "wrong", 0, errors.TEST_FAILED),
    (None, "", 0, "set"),
]
MISSING = [
    (True, "", 0, errors.KEY_NOT_FOUND),
    (True, "x", 0, errors.KEY_NOT_FOUND),
    (False, "x", 5, "create"),
    (None, "x", 0, errors.KEY_NOT_FOUND),
    (None, "", 3, errors.KEY_NOT_FOUND),
    (None, "", 0, "set"),
]


@pytest.mark.parametrize(("prev_exist", "prev_value", "prev_index", "expected"), EXISTING)
def test_put_decision_table_existing_key(store: Store, prev_exist: bool | None, prev_value: str,
                                         prev_index: int, expected: str | int) -> None:
    _foo(store)
    res = put(store, "/foo", "two", prev_exist=prev_exist, prev_value=prev_value, prev_index=prev_index)
    if isinstance(expected, int):
        e = err(res)
        assert (e.code, e.index) == (expected, 1)
        assert store.index == 1
        return
    ev = ok(res)
    assert ev.action == expected
    assert ev.index == ev.etcd_index == store.index == 2
    assert ev.node.value == "two"
    assert ev.prev_node is not None and ev.prev_node.value == "one"
    # update / CAS keep createdIndex; set replaces the node
    assert ev.node.created_index == (2 if expected == "set" else 1)
    assert ev.node.modified_index == 2


@pytest.mark.parametrize(("prev_exist", "prev_value", "prev_index", "expected"), MISSING)
def test_put_decision_table_missing_key(store: Store, prev_exist: bool | None, prev_value: str,
                                        prev_index: int, expected: str | int) -> None:
    res = put(store, "/nope", "v", prev_exist=prev_exist, prev_value=prev_value, prev_index=prev_index)
    if isinstance(expected, int):
        e = err(res)
        assert (e.code, e.cause, e.index) == (expected, "/nope", 0)
        return
    ev = ok(res)
    assert ev.action == expected and ev.prev_node is None and ev.is_created()


def test_spec_sequence_on_one_key(store: Store) -> None:
    """The §5.2 'observed examples' run, indexes relative to a fresh store."""
    ev = ok(put(store, "/foo", "one", prev_exist=False))
    assert js(ev) == {"action": "create", "node": {"key": "/foo", "value": "one", "modifiedIndex": 1,
                                                   "createdIndex": 1}}
    e = err(put(store, "/foo", "two", prev_exist=False))
    assert e.as_dict() == {"errorCode": 105, "message": "Key already exists", "cause": "/foo", "index": 1}
    assert e.http_status == 412
    ev = ok(put(store, "/foo", "two", prev_exist=True))
    assert js(ev) == {"action": "update",
                      "node": {"key": "/foo", "value": "two", "modifiedIndex": 2, "createdIndex": 1},
                      "prevNode": {"key": "/foo", "value": "one", "modifiedIndex": 1, "createdIndex": 1}}
    assert ok(put(store, "/foo", "three", prev_value="two")).action == "compareAndSwap"
    e = err(put(store, "/foo", "four", prev_value="wrong"))
    assert e.as_dict() == {"errorCode": 101, "message": "Compare failed", "cause": "[wrong != three]",
                           "index": 3}
    ev = ok(put(store, "/foo", "four", prev_index=3))
    assert (ev.action, ev.node.modified_index, ev.node.created_index) == ("compareAndSwap", 4, 1)
    assert err(put(store, "/foo", "five", prev_index=1, prev_value="wrong")).cause == "[wrong != four] [1 != 4]"
    assert err(put(store, "/foo", "five", prev_index=1, prev_value="four")).cause == "[1 != 4]"
    ev = ok(put(store, "/foo", "five", prev_index=0))
    assert (ev.action, ev.node.created_index, ev.prev_node and ev.prev_node.created_index) == ("set", 5, 1)
    assert not ev.is_created()
    ev = ok(put(store, "/foo", "six", prev_exist=True, prev_value="five"))
    assert ev.action == "compareAndSwap"
    e = err(put(store, "/nope", "five", prev_value="x"))
    assert (e.code, e.cause, e.index) == (100, "/nope", 6)


def test_set_new_key_then_replace(store: Store) -> None:
    ev = ok(put(store, "/k", "v1"))
    assert ev.is_created() and ev.prev_node is None
    ev = ok(put(store, "/k", "v2"))
    assert not ev.is_created()
    assert js(ev)["prevNode"] == {"key": "/k", "value": "v1", "modifiedIndex": 1, "createdIndex": 1}
    assert (ev.node.created_index, ev.node.modified_index) == (2, 2)


def test_set_empty_value_is_written(store: Store) -> None:
    ev = ok(put(store, "/empty"))
    assert js(ev)["node"] == {"key": "/empty", "value": "", "modifiedIndex": 1, "createdIndex": 1}


def test_update_missing_value_becomes_empty(store: Store) -> None:
    _foo(store)
    assert ok(put(store, "/foo", prev_exist=True)).node.value == ""


def test_cas_and_cad_on_directory_are_not_file(store: Store) -> None:
    ok(put(store, "/d", dir=True))
    e = err(put(store, "/d", "x", prev_value="y"))
    assert (e.code, e.cause, e.http_status) == (102, "/d", 403)
    e = err(delete(store, "/d", prev_value="x", dir=True))
    assert (e.code, e.cause) == (102, "/d")
    assert store.index == 1


# ---- directories ---------------------------------------------------------------------------------

def test_directory_rules(store: Store) -> None:
    ev = ok(put(store, "/dir1", dir=True))
    assert js(ev) == {"action": "set", "node": {"key": "/dir1", "dir": True, "modifiedIndex": 1,
                                                "createdIndex": 1}}
    assert err(put(store, "/dir1", dir=True)).as_dict() == {
        "errorCode": 102, "message": "Not a file", "cause": "/dir1", "index": 1}
    assert err(put(store, "/dir1", "v")).code == errors.NOT_FILE
    assert err(put(store, "/dir1", dir=True, prev_exist=False)).code == errors.NODE_EXIST
    e = err(put(store, "/dir1", "x", prev_exist=True))
    assert (e.code, e.cause) == (102, "/dir1")
    ev = ok(put(store, "/dir1", dir=True, prev_exist=True, ttl_s=100))
    assert ev.action == "update"
    assert (ev.node.dir, ev.node.ttl, ev.node.modified_index, ev.node.created_index) == (True, 100, 2, 1)
    assert ev.prev_node is not None and ev.prev_node.ttl == 0


def test_dir_with_value_drops_value(store: Store) -> None:
    ev = ok(put(store, "/d", "ignored", dir=True))
    assert ev.node.dir and ev.node.value is None


def test_set_dir_on_file_replaces_it(store: Store) -> None:
    ok(put(store, "/file1", "f"))
    ev = ok(put(store, "/file1", dir=True))
    assert js(ev) == {"action": "set", "node": {"key": "/file1", "dir": True, "modifiedIndex": 2,
                                                "createdIndex": 2},
                      "prevNode": {"key": "/file1", "value": "f", "modifiedIndex": 1, "createdIndex": 1}}


def test_write_below_file_is_not_a_directory(store: Store) -> None:
    ok(put(store, "/dir1/a", "A"))
    e = err(put(store, "/dir1/a/x", "x"))
    assert e.as_dict() == {"errorCode": 104, "message": "Not a directory", "cause": "/dir1/a", "index": 1}
    assert e.http_status == 400
    assert err(put(store, "/dir1/a/x/y/z", "x")).cause == "/dir1/a"
    assert err(qget(store, "/dir1/a/x")).as_dict()["errorCode"] == 104


def test_implicit_parents_take_the_write_index(store: Store) -> None:
    ok(put(store, "/z", "0"))
    ok(put(store, "/a/b/c", "v"))  # index 2
    for path in ("/a", "/a/b"):
        node = store.get(path, False, False, T0).node
        assert (node.dir, node.created_index, node.modified_index) == (True, 2, 2)
    ok(put(store, "/a/b/d", "w"))
    ok(delete(store, "/a/b/c"))
    node = store.get("/a/b", False, False, T0).node
    assert node.modified_index == 2  # children changes do not touch the directory


@pytest.mark.parametrize("kwargs", [{}, {"dir": True}, {"prev_exist": True}, {"prev_exist": False},
                                    {"prev_value": "x"}])
def test_root_is_read_only_for_put(store: Store, kwargs: dict[str, object]) -> None:
    e = err(put(store, "/", "x", **kwargs))
    assert e.as_dict() == {"errorCode": 107, "message": "Root is read only", "cause": "/", "index": 0}
    assert e.http_status == 400


def test_root_delete_is_read_only_and_cad_root_is_not_file(store: Store) -> None:
    assert err(delete(store, "/", recursive=True)).code == errors.ROOT_READ_ONLY
    e = err(delete(store, "/", prev_value="x"))
    assert (e.code, e.cause) == (errors.NOT_FILE, "/")


def test_key_not_found_names_first_missing_component(store: Store) -> None:
    e = err(qget(store, "/norm/a/b"))
    assert e.as_dict() == {"errorCode": 100, "message": "Key not found", "cause": "/norm", "index": 0}
    ok(put(store, "/norm/x", "1"))
    assert err(qget(store, "/norm/a/b")).cause == "/norm/a"
    assert err(qget(store, "/norm/a/b")).index == 1


# ---- delete / compareAndDelete ------------------------------------------------------------------

def test_delete_file_event_shape(store: Store) -> None:
    ok(put(store, "/message", "Hello etcd"))
    ev = ok(delete(store, "/message"))
    assert js(ev) == {"action": "delete", "node": {"key": "/message", "modifiedIndex": 2, "createdIndex": 1},
                      "prevNode": {"key": "/message", "value": "Hello etcd", "modifiedIndex": 1,
                                   "createdIndex": 1}}
    assert err(qget(store, "/message")).code == 100


@pytest.mark.parametrize("kwargs", [{"dir": True}, {"recursive": True}, {"dir": True, "recursive": True}])
def test_delete_file_with_dir_flags_is_harmless(store: Store, kwargs: dict[str, object]) -> None:
    ok(put(store, "/f", "v"))
    assert ok(delete(store, "/f", **kwargs)).action == "delete"


def test_delete_directory_rules(store: Store) -> None:
    ok(put(store, "/dir1/a", "A"))
    ok(put(store, "/dir1/sub/c", "C"))
    assert err(delete(store, "/dir1")).as_dict() == {"errorCode": 102, "message": "Not a file",
                                                     "cause": "/dir1", "index": 2}
    e = err(delete(store, "/dir1", dir=True))
    assert e.as_dict() == {"errorCode": 108, "message": "Directory not empty", "cause": "/dir1", "index": 2}
    assert e.http_status == 403
    ev = ok(delete(store, "/dir1", recursive=True))
    assert js(ev) == {"action": "delete", "node": {"key": "/dir1", "dir": True, "modifiedIndex": 3,
                                                   "createdIndex": 1},
                      "prevNode": {"key": "/dir1", "dir": True, "modifiedIndex": 1, "createdIndex": 1}}
    assert store.index == 3  # one event, one index for the whole subtree
    assert err(qget(store, "/dir1/sub/c")).cause == "/dir1"


def test_delete_empty_dir_with_dir_flag(store: Store) -> None:
    ok(put(store, "/e", dir=True))
    assert ok(delete(store, "/e", dir=True)).node.dir


def test_hidden_child_makes_directory_non_empty(store: Store) -> None:
    ok(put(store, "/d/_h", "x"))
    assert listing(store, "/d") == {"key": "/d", "dir": True, "modifiedIndex": 1, "createdIndex": 1}
    assert err(delete(store, "/d", dir=True)).code == errors.DIR_NOT_EMPTY


def test_compare_and_delete(store: Store) -> None:
    ok(put(store, "/cad", "one"))
    assert err(delete(store, "/cad", prev_value="two")).as_dict() == {
        "errorCode": 101, "message": "Compare failed", "cause": "[two != one]", "index": 1}
    assert err(delete(store, "/cad", prev_index=9)).cause == "[9 != 1]"
    ev = ok(delete(store, "/cad", prev_value="one"))
    assert js(ev) == {"action": "compareAndDelete",
                      "node": {"key": "/cad", "modifiedIndex": 2, "createdIndex": 1},
                      "prevNode": {"key": "/cad", "value": "one", "modifiedIndex": 1, "createdIndex": 1}}
    assert err(delete(store, "/cad", prev_index=1)).code == errors.KEY_NOT_FOUND


def test_cad_by_index(store: Store) -> None:
    ok(put(store, "/c", "v"))
    assert ok(delete(store, "/c", prev_index=1)).action == "compareAndDelete"


# ---- in-order keys -------------------------------------------------------------------------------

def test_in_order_keys(store: Store) -> None:
    ok(put(store, "/other", "x"))
    evs = [ok(post(store, "/queue", f"Job{i}")) for i in range(3)]
    keys = [e.node.key for e in evs]
    assert keys == ["/queue/00000000000000000002", "/queue/00000000000000000003",
                    "/queue/00000000000000000004"]
    assert all(e.action == "create" and e.is_created() for e in evs)
    q = store.get("/queue", False, False, T0).node
    assert q.created_index == 2  # created with the first child
    listed = [n.key for n in store.get("/queue", False, True, T0).node.nodes or ()]
    assert listed == keys


def test_in_order_key_name_is_twenty_digits(store: Store) -> None:
    store.index = 12345678901
    ev = ok(post(store, "/q", "v"))
    assert ev.node.key == "/q/00000000012345678902"
    assert len(ev.node.key.rsplit("/", 1)[1]) == 20


def test_post_variants(store: Store) -> None:
    assert ok(post(store, "/", "r")).node.key == "/00000000000000000001"
    ev = ok(post(store, "/q", dir=True))
    assert ev.node.dir and ev.node.key == "/q/00000000000000000002"
    ev = ok(post(store, "/q", "t", ttl_s=100))
    assert ev.node.ttl == 100
    ev = ok(post(store, "/q", "p", prev_exist=True, prev_value="nope", prev_index=99))  # ignored
    assert ev.action == "create"
    ok(put(store, "/plain", "x"))
    assert err(post(store, "/plain", "x")).as_dict() == {
        "errorCode": 104, "message": "Not a directory", "cause": "/plain", "index": 5}


# ---- hidden keys and listings --------------------------------------------------------------------

def _dir1(store: Store) -> None:
    ok(put(store, "/dir1", dir=True))  # 1
    ok(put(store, "/dir1/b", "B"))  # 2
    ok(put(store, "/dir1/a", "A"))  # 3
    ok(put(store, "/dir1/sub/c", "C"))  # 4
    ok(put(store, "/dir1/_hidden", "H"))  # 5
    ok(put(store, "/dir1/sub/_deep", "D"))  # 6
    ok(put(store, "/dir1/_hd/x", "X"))  # 7


def test_recursive_sorted_listing_exact_bytes(store: Store) -> None:
    _dir1(store)
    ev = store.get("/dir1", True, True, T0)
    assert (ev.action, ev.index, ev.etcd_index) == ("get", 1, 7)
    assert ev.to_json_bytes() == (
        b'{"action":"get","node":{"key":"/dir1","dir":true,"nodes":['
        b'{"key":"/dir1/a","value":"A","modifiedIndex":3,"createdIndex":3},'
        b'{"key":"/dir1/b","value":"B","modifiedIndex":2,"createdIndex":2},'
        b'{"key":"/dir1/sub","dir":true,"nodes":[{"key":"/dir1/sub/c","value":"C","modifiedIndex":4,'
        b'"createdIndex":4}],"modifiedIndex":4,"createdIndex":4}],"modifiedIndex":1,"createdIndex":1}}\n')


def test_plain_listing_has_direct_children_without_nodes(store: Store) -> None:
    _dir1(store)
    nodes = store.get("/dir1", False, True, T0).node.to_json_obj()["nodes"]
    assert nodes == [{"key": "/dir1/a", "value": "A", "modifiedIndex": 3, "createdIndex": 3},
                     {"key": "/dir1/b", "value": "B", "modifiedIndex": 2, "createdIndex": 2},
                     {"key": "/dir1/sub", "dir": True, "modifiedIndex": 4, "createdIndex": 4}]


def test_hidden_keys_readable_by_exact_path(store: Store) -> None:
    _dir1(store)
    assert js(store.get("/dir1/_hidden", False, False, T0)) == {
        "action": "get", "node": {"key": "/dir1/_hidden", "value": "H", "modifiedIndex": 5, "createdIndex": 5}}
    assert [n.key for n in store.get("/dir1/_hd", True, True, T0).node.nodes or ()] == ["/dir1/_hd/x"]
    assert ok(delete(store, "/dir1/_hidden")).node.key == "/dir1/_hidden"


def test_root_listing_and_shape(store: Store) -> None:
    assert js(store.get("/", False, False, T0)) == {"action": "get", "node": {"dir": True}}
    ok(put(store, "/_top", "h"))
    ok(put(store, "/b", "1"))
    ok(put(store, "/a/x", "2"))
    assert js(store.get("/", False, True, T0))["node"] == {"dir": True, "nodes": [
        {"key": "/a", "dir": True, "modifiedIndex": 3, "createdIndex": 3},
        {"key": "/b", "value": "1", "modifiedIndex": 2, "createdIndex": 2}]}


def test_empty_dir_has_no_nodes_and_recursive_on_file(store: Store) -> None:
    ok(put(store, "/e", dir=True))
    assert "nodes" not in store.get("/e", True, True, T0).node.to_json_obj()
    ok(put(store, "/f", "v"))
    assert js(store.get("/f", True, True, T0))["node"] == {"key": "/f", "value": "v", "modifiedIndex": 2,
                                                          "createdIndex": 2}


def test_sorting_is_bytewise(store: Store) -> None:
    for name in ("z", "é", "B", "a", "_x"):
        ok(put(store, f"/s/{name}", name))
    keys = [n["key"] for n in listing(store, "/s")["nodes"]]  # type: ignore[union-attr]
    assert keys == ["/s/B", "/s/a", "/s/z", "/s/é"]


# ---- index accounting and stats ------------------------------------------------------------------

def test_failures_consume_no_index(store: Store) -> None:
    _foo(store)
    ok(put(store, "/d", dir=True))
    failures = [put(store, "/foo", "x", prev_exist=False), put(store, "/nope", "x", prev_exist=True),
                put(store, "/foo", "x", prev_value="bad"), put(store, "/foo/x", "y"), put(store, "/", "x"),
                put(store, "/d", "x"), delete(store, "/nope"), delete(store, "/d/none"),
                delete(store, "/foo", prev_index=42), post(store, "/foo", "x"), qget(store, "/nope")]
    assert all(isinstance(f, V2Error) for f in failures)
    assert all(f.index == 2 for f in failures if isinstance(f, V2Error))
    assert store.index == 2
    assert store.history.last_index == 2
    assert ok(put(store, "/next", "v")).index == 3


def test_get_event_index_is_node_modified_index(store: Store) -> None:
    ok(put(store, "/a", "1"))
    ok(put(store, "/b", "2"))
    ev = ok(qget(store, "/a"))
    assert (ev.index, ev.etcd_index) == (1, 2)
    assert store.index == 2  # reads consume nothing


def test_store_stats_counters(store: Store) -> None:
    ok(put(store, "/a", "1"))
    err(put(store, "/a/b", "1"))
    ok(put(store, "/a", "2", prev_exist=True))
    err(put(store, "/x", "2", prev_exist=True))
    ok(put(store, "/c", "3", prev_exist=False))
    err(put(store, "/c", "3", prev_exist=False))
    ok(put(store, "/a", "3", prev_value="2"))
    err(put(store, "/a", "3", prev_value="2"))
    ok(qget(store, "/a"))
    err(qget(store, "/zz"))
    ok(delete(store, "/c", prev_value="3"))
    err(delete(store, "/a", prev_value="nope"))
    ok(delete(store, "/a"))
    err(delete(store, "/a"))
    assert store.stats.to_json_obj(0) == {
        "getsSuccess": 1, "getsFail": 1, "setsSuccess": 1, "setsFail": 1, "deleteSuccess": 1,
        "deleteFail": 1, "updateSuccess": 1, "updateFail": 1, "createSuccess": 1, "createFail": 1,
        "compareAndSwapSuccess": 1, "compareAndSwapFail": 1, "compareAndDeleteSuccess": 1,
        "compareAndDeleteFail": 1, "expireCount": 0, "watchers": 0}


@pytest.mark.parametrize(("code", "status"), [(100, 404), (101, 412), (102, 403), (104, 400), (105, 412),
                                              (107, 400), (108, 403), (110, 401), (201, 400), (209, 400),
                                              (300, 500), (301, 500), (401, 400)])
def test_error_http_status_depends_only_on_code(code: int, status: int) -> None:
    assert V2Error(code, "c", 3).http_status == status


def test_error_body_omits_empty_cause() -> None:
    assert V2Error(300, "", 0).as_dict() == {"errorCode": 300, "message": "Raft Internal Error", "index": 0}


@pytest.mark.parametrize(("raw", "clean"), [("", "/"), ("/", "/"), ("a", "/a"), ("/a/", "/a"),
                                            ("//a//b/", "/a/b"), ("/a/./b", "/a/b"), ("/a/../b", "/b"),
                                            ("/../..", "/")])
def test_clean_key(raw: str, clean: str) -> None:
    assert clean_key(raw) == clean


def test_dir_update_reports_new_index_but_keeps_stored_one(store: Store) -> None:
    """etcd 3.4 quirk (node.Write refuses dirs): the event shows the new modifiedIndex, reads the old."""
    ok(put(store, "/d", dir=True))
    ev = ok(put(store, "/d", dir=True, prev_exist=True, ttl_s=100))
    assert ev.node.modified_index == 2 and store.index == 2
    assert store.get("/d", False, False, T0).node.modified_index == 1


def test_internal_event_consumes_an_index_silently(store: Store) -> None:
    store.watch("/", True, True, 0, 1)
    assert store.internal_event(T0) == 1
    assert store.index == 1 and store.hub.drain() == []
    assert store.history.last_index == 1
    _, found = store.watch("/", True, False, 1, 2)
    assert found is None  # no client path matches it
    assert ok(put(store, "/a", "x")).index == 2


def test_sorted_listing_with_non_utf8_key(store: Store) -> None:
    ok(put(store, "/s/\udcff", "v"))  # what forms.unescape makes of /s/%FF
    ok(put(store, "/s/a", "w"))
    keys = [n.key for n in store.get("/s", False, True, T0).node.nodes or ()]
    assert keys == ["/s/a", "/s/\udcff"]  # Go sorts by bytes: 0xFF after 'a'
