"""Apply one committed Request to the store, choosing the operation as etcd's v2 applier does.

PUT decision table: prevExist=true -> update, or compareAndSwap when prevValue/prevIndex are given;
prevExist=false -> create; prevValue/prevIndex without prevExist -> compareAndSwap; otherwise set.
"""

from __future__ import annotations

from ..store.errors import V2Error
from ..store.event import Event
from ..store.store import Store
from .auth import AuthError, Outcome
from .requests import DELETE, POST, PUT, QGET, SYNC, Request

Result = Event | V2Error | Outcome | AuthError | None  # the last two: an AUTH entry's answer


def apply_request(store: Store, req: Request) -> Result:
    try:
        return _apply(store, req)
    except V2Error as e:
        return e


def _apply(store: Store, r: Request) -> Result:
    now = r.time_ns
    if r.kind == PUT:
        if r.prev_exist is True:
            if r.prev_index == 0 and r.prev_value == "":
                return store.update(r.path, r.value, r.expire_at_ns, r.refresh, now)
            return store.compare_and_swap(r.path, r.prev_value, r.prev_index, r.value, r.expire_at_ns,
                                          r.refresh, now)
        if r.prev_exist is False:
            return store.create(r.path, r.dir, r.value, False, r.expire_at_ns, now)
        if r.prev_index > 0 or r.prev_value != "":
            return store.compare_and_swap(r.path, r.prev_value, r.prev_index, r.value, r.expire_at_ns,
                                          r.refresh, now)
        return store.set(r.path, r.dir, r.value, r.expire_at_ns, r.refresh, now)
    if r.kind == POST:
        return store.create(r.path, r.dir, r.value, True, r.expire_at_ns, now)
    if r.kind == DELETE:
        if r.prev_index > 0 or r.prev_value != "":
            return store.compare_and_delete(r.path, r.prev_value, r.prev_index, now)
        return store.delete(r.path, r.dir, r.recursive, now)
    if r.kind == QGET:
        return store.get(r.path, r.recursive, r.sorted, now)
    if r.kind == SYNC:
        store.expire(r.time_ns)
        return None
    return None
