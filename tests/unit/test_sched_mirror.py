"""Mirror: a full read, then events in order; resume after errors; a full re-read after 401."""

from __future__ import annotations

import pytest
from pyetcd.client.v2 import ClusterError
from pyetcd.sched.mirror import Mirror, StaleRead

from tests.unit.test_sched_fakes import FakeClock, StoreKV


def values(m: Mirror) -> dict[str, str]:
    return {k: e.value for k, e in m.entries.items()}


def drain(m: Mirror) -> None:
    while m.poll(0.1):
        pass


def test_full_read_then_events() -> None:
    kv = StoreKV(FakeClock())
    kv.set("/s/a/x", "1")
    kv.set("/other", "z")
    m = Mirror(kv, "/s")
    assert m.poll(0.1)  # the first poll reads everything
    assert values(m) == {"/s/a/x": "1"} and m.index == kv.store.index
    kv.set("/s/a/x", "2")
    kv.create("/s/b", "3")
    kv.set("/other", "zz")  # outside the prefix: not an event for us
    drain(m)
    assert values(m) == {"/s/a/x": "2", "/s/b": "3"}
    idx = kv.delete("/s/a", recursive=True).node["modifiedIndex"]
    drain(m)
    assert values(m) == {"/s/b": "3"} and m.index == idx
    assert m.resyncs == 0


def test_missing_prefix_is_empty_and_fills_in() -> None:
    kv = StoreKV(FakeClock())
    m = Mirror(kv, "/s")
    m.sync()
    assert m.entries == {} and m.synced
    kv.set("/s/k", "v", ttl=5)
    drain(m)
    assert values(m) == {"/s/k": "v"}
    kv.set("/s/k", "", refresh=True, ttl=5, prev_exist=True)  # refreshes wake no watcher
    assert not m.poll(0.1)
    kv.clock.advance(6)
    kv.expire()
    drain(m)
    assert values(m) == {}


def test_resume_after_errors_loses_nothing() -> None:
    kv = StoreKV(FakeClock())
    m = Mirror(kv, "/s")
    m.sync()
    kv.set("/s/a", "1")
    kv.down_until = 10.0
    with pytest.raises((ClusterError, TimeoutError)):
        for _ in range(20):
            m.poll(0.1)
    StoreKV(kv.clock, kv.store).set("/s/b", "2")  # written by someone else while we are cut off
    kv.down_until = -1
    drain(m)
    assert values(m) == {"/s/a": "1", "/s/b": "2"}
    assert m.resyncs == 0


def test_cleared_history_means_a_full_read() -> None:
    kv = StoreKV(FakeClock())
    m = Mirror(kv, "/s")
    m.sync()
    kv.set("/s/a", "1")
    for i in range(1100):  # push our index out of the 1000-event history
        kv.set("/noise", str(i))
    kv.set("/s/b", "2")
    assert m.poll(0.1)
    assert values(m) == {"/s/a": "1", "/s/b": "2"}
    assert m.resyncs == 1 and m.index == kv.store.index


def test_a_full_read_never_goes_back_in_time() -> None:
    kv = StoreKV(FakeClock())
    m = Mirror(kv, "/s")
    m.sync()
    kv.set("/s/a", "1")
    drain(m)
    m.index += 5  # as if a lagging member answered the next full read
    m.invalidate()
    with pytest.raises(StaleRead):
        m.poll(0.1)
    assert values(m) == {"/s/a": "1"}


def test_caught_up() -> None:
    kv = StoreKV(FakeClock())
    m = Mirror(kv, "/s")
    assert not m.caught_up(0)
    m.sync()
    idx = kv.create("/s/x", "1").node["modifiedIndex"]
    assert not m.caught_up(idx)
    drain(m)
    assert m.caught_up(idx)
