"""Lease: expiry bound from send times; lost on 100/101; unknown outcomes keep the old bound."""

from __future__ import annotations

import pytest
from pyetcd.client.v2 import ClientError
from pyetcd.sched.lease import Lease, LeaseLost

from tests.unit.test_sched_fakes import FakeClock, StoreKV


def test_acquire_refresh_release() -> None:
    clock = FakeClock(100.0)
    kv = StoreKV(clock)
    a = Lease(kv, "/lock", "a", 3, clock)
    b = Lease(kv, "/lock", "b", 3, clock)
    assert a.acquire(1.0) and a.last_ok == 100.0
    assert not b.acquire(1.0) and not b.held
    clock.advance(2.0)
    a.refresh(1.0)
    assert a.last_ok == 102.0 and a.remaining() == 3.0
    with pytest.raises(LeaseLost):
        b.refresh(1.0)  # not b's
    a.release(1.0)
    assert not a.held and b.acquire(1.0)


def test_expired_key_is_lost_for_good() -> None:
    clock = FakeClock()
    kv = StoreKV(clock)
    a = Lease(kv, "/m/x", "x", 2, clock)
    assert a.acquire(1.0)
    clock.advance(2.5)
    kv.expire()
    with pytest.raises(LeaseLost):
        a.refresh(1.0)  # a refresh never re-creates the key
    assert not a.held and a.remaining() < 0
    assert "/m/x" not in str(kv.store.get("/m", True, False, kv.now_ns()).node)


def test_the_bound_uses_the_send_time_and_survives_failures() -> None:
    clock = FakeClock()
    kv = StoreKV(clock)
    a = Lease(kv, "/m/x", "x", 4, clock)
    assert a.acquire(1.0)
    clock.advance(1.0)
    kv.down_until = 100.0  # the request hangs (the clock moves) and fails
    with pytest.raises(ClientError):
        a.refresh(1.0)
    assert a.last_ok == 0.0  # nothing new is known: the old bound stands
    kv.down_until = -1
    clock.advance(0.5)
    sent = clock()
    a.refresh(1.0)
    assert a.last_ok == sent
    node = kv.store.get("/m/x", False, False, kv.now_ns()).node
    assert node.expire_at_ns >= kv.now_ns() + 4 * 10**9 - 1  # the store's expiry is not before last_ok + ttl
