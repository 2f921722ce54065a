"""locksmith's semaphore: the exact JSON bytes, the three mutations, the keys of groups."""

from __future__ import annotations

import pytest
from pyetcd.locksmith.semaphore import (
    BadValue,
    HolderExists,
    HolderNotExist,
    Semaphore,
    SemaphoreFull,
    go_json,
    semaphore_key,
)

ID = "69d27b356a94476da859461d3a3bc6fd"  # the machine ID in the spec's observed CAS sequence


def test_initial_value_is_lockmiths_bytes() -> None:
    assert Semaphore().dumps() == '{"semaphore":1,"max":1,"holders":null}'


def test_lock_from_null_then_unlock_to_empty_list() -> None:
    locked = Semaphore().lock(ID)
    assert locked.dumps() == '{"semaphore":0,"max":1,"holders":["69d27b356a94476da859461d3a3bc6fd"]}'
    # Go marshals the emptied (non-nil) slice as [], not null.
    assert locked.unlock(ID).dumps() == '{"semaphore":1,"max":1,"holders":[]}'


def test_holders_kept_sorted_in_byte_order() -> None:
    sem = Semaphore(5, 5, None)
    for h in ["b", "a", "c0", "B", "c"]:
        sem = sem.lock(h)
    assert sem.holders == ("B", "a", "b", "c", "c0")
    assert sem.semaphore == 0
    assert sem.dumps() == '{"semaphore":0,"max":5,"holders":["B","a","b","c","c0"]}'


def test_lock_errors_write_nothing() -> None:
    full = Semaphore(0, 1, ("x",))
    with pytest.raises(SemaphoreFull, match="^semaphore is at 0$"):
        full.lock("y")
    with pytest.raises(SemaphoreFull, match="^semaphore is at -1$"):
        Semaphore(-1, 1, ("x", "y")).lock("z")
    with pytest.raises(HolderExists, match="^holder exists$"):
        Semaphore(1, 2, ("x",)).lock("x")
    with pytest.raises(HolderNotExist, match="^holder does not exist$"):
        full.unlock("y")
    with pytest.raises(HolderNotExist):
        Semaphore().unlock("y")  # null holders


def test_unlock_has_no_ownership_and_no_repair() -> None:
    # A value breaking semaphore == max - len(holders) is not repaired: deltas only.
    odd = Semaphore(7, 2, ("a",))
    assert odd.unlock("a").dumps() == '{"semaphore":8,"max":2,"holders":[]}'


@pytest.mark.parametrize(("before", "new_max", "after"), [
    ('{"semaphore":1,"max":1,"holders":[]}', 4, '{"semaphore":4,"max":4,"holders":[]}'),
    ('{"semaphore":0,"max":2,"holders":["a","b"]}', 1, '{"semaphore":-1,"max":1,"holders":["a","b"]}'),
    ('{"semaphore":1,"max":1,"holders":null}', 3, '{"semaphore":3,"max":3,"holders":null}'),
    ('{"semaphore":-1,"max":1,"holders":["a","b"]}', 2, '{"semaphore":0,"max":2,"holders":["a","b"]}'),
    ('{"semaphore":2,"max":2,"holders":[]}', 0, '{"semaphore":0,"max":0,"holders":[]}'),
])
def test_set_max_arithmetic(before: str, new_max: int, after: str) -> None:
    assert Semaphore.loads(before).set_max(new_max).dumps() == after


def test_round_trip_keeps_null_and_empty_apart() -> None:
    for text in ('{"semaphore":1,"max":1,"holders":null}', '{"semaphore":1,"max":1,"holders":[]}',
                 '{"semaphore":-3,"max":0,"holders":["a","b","c"]}'):
        assert Semaphore.loads(text).dumps() == text


def test_missing_fields_read_as_go_zero_values() -> None:
    sem = Semaphore.loads("{}")
    assert (sem.semaphore, sem.max, sem.holders) == (0, 0, None)
    assert Semaphore.loads('{"semaphore":1,"max":1}').holder_list == []


def test_unknown_fields_survive_a_mutation() -> None:
    # A pyetcd extension: locksmith would drop "note".
    sem = Semaphore.loads('{"note":{"by":"ops"},"max":2,"semaphore":2,"holders":null}')
    assert sem.lock("h").dumps() == '{"semaphore":1,"max":2,"holders":["h"],"note":{"by":"ops"}}'


@pytest.mark.parametrize("text", ["", "nope", "[]", '{"semaphore":"1"}', '{"max":1.5}', '{"semaphore":true}',
                                  '{"holders":"a"}', '{"holders":[1]}'])
def test_bad_values_are_rejected(text: str) -> None:
    with pytest.raises(BadValue):
        Semaphore.loads(text)


def test_go_string_escaping() -> None:
    # Go escapes <, > and & (HTML safety) and U+2028/9, and keeps other non-ASCII as UTF-8.
    assert go_json("a<b>&c\u2028é") == '"a\\u003cb\\u003e\\u0026c\\u2028é"'
    assert Semaphore(0, 1, ("<id>",)).dumps() == '{"semaphore":0,"max":1,"holders":["\\u003cid\\u003e"]}'


@pytest.mark.parametrize(("group", "key"), [
    ("", "coreos.com/updateengine/rebootlock/semaphore"),
    ("lb", "coreos.com/updateengine/rebootlock/groups/lb/semaphore"),
    ("a b/c", "coreos.com/updateengine/rebootlock/groups/a+b%2Fc/semaphore"),
    ("x-y_z.w~v", "coreos.com/updateengine/rebootlock/groups/x-y_z.w~v/semaphore"),
    ("é&?=+", "coreos.com/updateengine/rebootlock/groups/%C3%A9%26%3F%3D%2B/semaphore"),
])
def test_group_keys_use_go_query_escaping(group: str, key: str) -> None:
    assert semaphore_key(group) == key
