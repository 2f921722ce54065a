"""Small shared helpers for the unit tests: a fixed clock origin and terse store/apply wrappers."""

from __future__ import annotations

import json

from pyetcd.server.apply import Result, apply_request
from pyetcd.server.requests import DELETE, POST, PUT, QGET, SYNC, Request
from pyetcd.store.errors import V2Error
from pyetcd.store.event import Event
from pyetcd.store.store import Store

S = 1_000_000_000  # one second in ns
T0 = 1_700_000_000 * S  # a fixed "now" (2023-11-14T22:13:20Z); never 0, which means "no TTL"


def put(store: Store, path: str, value: str = "", *, now_ns: int = T0, ttl_s: int | None = None,
        **kw: object) -> Result:
    expire = now_ns + ttl_s * S if ttl_s is not None else 0
    return apply_request(store, Request(PUT, path, value=value, expire_at_ns=expire, time_ns=now_ns,
                                        **kw))  # type: ignore[arg-type]


def post(store: Store, path: str, value: str = "", *, now_ns: int = T0, ttl_s: int | None = None,
         **kw: object) -> Result:
    expire = now_ns + ttl_s * S if ttl_s is not None else 0
    return apply_request(store, Request(POST, path, value=value, expire_at_ns=expire, time_ns=now_ns,
                                        **kw))  # type: ignore[arg-type]


def delete(store: Store, path: str, *, now_ns: int = T0, **kw: object) -> Result:
    return apply_request(store, Request(DELETE, path, time_ns=now_ns, **kw))  # type: ignore[arg-type]


def qget(store: Store, path: str, *, now_ns: int = T0, **kw: object) -> Result:
    return apply_request(store, Request(QGET, path, time_ns=now_ns, **kw))  # type: ignore[arg-type]


def sync(store: Store, now_ns: int) -> Result:
    return apply_request(store, Request(SYNC, time_ns=now_ns))


def ok(result: Result) -> Event:
    assert isinstance(result, Event), f"expected an event, got {result!r}"
    return result


def err(result: Result) -> V2Error:
    assert isinstance(result, V2Error), f"expected a V2Error, got {result!r}"
    return result


def js(event: Event) -> dict[str, object]:
    """The event as etcd would print it, parsed back (so tests compare dicts, with field order checked
    separately where it matters)."""
    return json.loads(event.to_json_bytes())  # type: ignore[no-any-return]


def listing(store: Store, path: str = "/", now_ns: int = T0) -> dict[str, object]:
    return store.get(path, True, True, now_ns).node.to_json_obj()
