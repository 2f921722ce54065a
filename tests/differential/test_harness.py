"""Server-free checks that the differential harness normalises what it should and nothing more."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.differential.cases import CASES
from tests.differential.harness import (
    Case,
    Context,
    Outcome,
    Response,
    compare_outcomes,
    deep_eq,
    go_json,
    normalise,
)

JSON_HEADERS = [("Content-Type", "application/json"), ("X-Etcd-Index", "10"), ("X-Raft-Index", "99"),
                ("X-Raft-Term", "2"), ("X-Etcd-Cluster-Id", "35b81dd9e328f03"),
                ("Date", "Wed, 25 Nov 2026 12:22:06 GMT")]


def view(body: bytes, base: int = 7, headers: list[tuple[str, str]] | None = None, target: str = "/v2/keys/a",
         status: int = 200) -> dict[str, object]:
    resp = Response(status, "OK", headers or JSON_HEADERS, body, recv_time=time.time())
    return normalise(resp, Context(1, "http://127.0.0.1:1", "/ns", base), "GET", target, None, watch=False)


def test_indexes_are_relative_to_base() -> None:
    a = view(b'{"action":"get","node":{"key":"/a","value":"x","modifiedIndex":9,"createdIndex":8}}\n', base=7)
    b = view(b'{"action":"get","node":{"key":"/a","value":"x","modifiedIndex":1009,"createdIndex":1008}}\n',
             base=1007, headers=[(k, "1010" if k == "X-Etcd-Index" else v) for k, v in JSON_HEADERS])
    assert deep_eq(a, b)


def test_parse_error_index_zero_stays_zero() -> None:
    body = b'{"errorCode":209,"message":"Invalid field","cause":"invalid value for \\"wait\\"","index":0}\n'
    v = view(body, headers=[(k, "0" if k == "X-Etcd-Index" else v) for k, v in JSON_HEADERS], status=400)
    assert v["headers"]["x-etcd-index"] == 0  # type: ignore[index]
    assert v["body"]["json"]["index"] == 0  # type: ignore[index]


def test_field_order_and_newline_are_compared() -> None:
    a = view(b'{"action":"get","node":{"key":"/a","value":"x","modifiedIndex":9,"createdIndex":9}}\n')
    reordered = view(b'{"action":"get","node":{"key":"/a","value":"x","createdIndex":9,"modifiedIndex":9}}\n')
    no_newline = view(b'{"action":"get","node":{"key":"/a","value":"x","modifiedIndex":9,"createdIndex":9}}')
    spaced = view(b'{"action": "get","node":{"key":"/a","value":"x","modifiedIndex":9,"createdIndex":9}}\n')
    assert not deep_eq(a, reordered)
    assert not deep_eq(a, no_newline)
    assert not deep_eq(a, spaced)


def test_go_html_escaping() -> None:
    assert go_json({"k": "<&>\u2028é\x01"}) == '{"k":"\\u003c\\u0026\\u003e\\u2028é\\u0001"}'


def test_ttl_tolerance_and_expiration_check() -> None:
    exp = (datetime.now(UTC) + timedelta(seconds=99.2)).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"
    mk = '{{"action":"get","node":{{"key":"/a","value":"x","expiration":"{}","ttl":{},"modifiedIndex":9,"createdIndex":9}}}}\n'
    assert deep_eq(view(mk.format(exp, 100).encode()), view(mk.format(exp, 99).encode()))
    assert not deep_eq(view(mk.format(exp, 100).encode()), view(mk.format(exp, 98).encode()))
    bad = view(mk.format("2001-01-01T00:00:00Z", 100).encode())
    assert "BAD" in str(bad)


def test_unsorted_nodes_compared_as_set() -> None:
    n1 = b'{"key":"/d/a","value":"1","modifiedIndex":9,"createdIndex":9}'
    n2 = b'{"key":"/d/b","value":"2","modifiedIndex":10,"createdIndex":10}'
    head = b'{"action":"get","node":{"key":"/d","dir":true,"nodes":['
    tail = b'],"modifiedIndex":9,"createdIndex":9}}\n'
    ab, ba = head + n1 + b"," + n2 + tail, head + n2 + b"," + n1 + tail
    assert deep_eq(view(ab), view(ba))
    assert not deep_eq(view(ab, target="/v2/keys/d?sorted=true"), view(ba, target="/v2/keys/d?sorted=true"))


def test_mismatch_report_is_readable() -> None:
    good = b'{"action":"get","node":{"key":"/a","value":"x","modifiedIndex":9,"createdIndex":9}}\n'
    bad = b'{"action":"get","node":{"key":"/a","value":"y","modifiedIndex":9,"createdIndex":9}}\n'
    resp = Response(200, "OK", JSON_HEADERS, good)
    a = Outcome(1, "GET /v2/keys/a", resp, view(good))
    b = Outcome(1, "GET /v2/keys/a", Response(200, "OK", JSON_HEADERS, bad), view(bad))
    report = compare_outcomes(Case("demo", ()), [a], [b], ("etcd", "pyetcd"))
    assert report is not None and "case 'demo' step 1" in report and '"value": "y"' in report


def test_case_catalogue() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(names) >= 170
    assert all(n.replace("_", "").isalnum() and not n.startswith("_") for n in names)
