"""HTTP mapping (`ClientApi.handle`): routing, methods, parameter parsing and the exact error bodies.

A small fake ServerView wraps a real Store and MemberRegistry; proposals are applied with apply_request
and rendered with render_result, as the runtime would after the log entry is durable."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from pyetcd.http.client_api import CORS, ClientApi, Propose, QuorumRead, Reply, StartWatch
from pyetcd.server.apply import apply_request
from pyetcd.server.auth import AuthState
from pyetcd.server.members import Member, MemberRegistry
from pyetcd.server.requests import DELETE, POST, PUT, Request
from pyetcd.server.stats import self_stats
from pyetcd.store.store import Store

from .helpers import T0, S

FORM = [(b"Content-Type", b"application/x-www-form-urlencoded")]
CID = b"a7ef944b95711739"
MEMBER_ID = 0xDDD67B312462FD7B


@dataclass
class FakeView:
    store: Store = field(default_factory=Store)
    members: MemberRegistry = field(default_factory=lambda: MemberRegistry.of(
        [Member(MEMBER_ID, "s1", ["http://127.0.0.1:12380"], ["http://127.0.0.1:12379"])]))
    cluster_id_bytes: bytes = CID
    cluster_token: str = "etcd-cluster"
    self_id: int = MEMBER_ID
    leader_id: int = MEMBER_ID
    commit_index: int = 42
    term: int = 2
    healthy: bool = True
    auth: AuthState = field(default_factory=AuthState)

    def self_stats(self, now_ns: int) -> dict[str, object]:
        return self_stats("s1", self.self_id, "StateLeader", T0, self.leader_id, T0, now_ns)

    def follower_stats(self) -> dict[str, object]:
        return {}


@pytest.fixture
def api() -> ClientApi:
    return ClientApi(FakeView())


def call(api: ClientApi, method: str, target: str | bytes, body: bytes = b"",
         headers: list[tuple[bytes, bytes]] | None = None, now_ns: int = T0) -> Reply | Propose | StartWatch:
    raw = target.encode() if isinstance(target, str) else target
    hdrs = headers if headers is not None else (FORM if body else [])
    return api.handle(method, raw, hdrs, body, now_ns)


def reply(outcome: object) -> Reply:
    assert isinstance(outcome, Reply), outcome
    return outcome


def propose(outcome: object) -> Propose:
    assert isinstance(outcome, Propose), outcome
    return outcome


def run(api: ClientApi, method: str, target: str, body: bytes = b"") -> Reply:
    """Handle, and if it is a proposal apply it to the store and render the answer."""
    out = call(api, method, target, body)
    if isinstance(out, Propose):
        return api.render_result(out, apply_request(api.view.store, out.request))
    return reply(out)


def hdr(r: Reply, name: bytes) -> bytes | None:
    for k, v in r.headers:
        if k.lower() == name.lower():
            return v
    return None


def body_json(r: Reply) -> dict[str, object]:
    assert r.body.endswith(b"\n")
    return json.loads(r.body)  # type: ignore[no-any-return]


# ---- routing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/v2", "/v2/", "/v2/keysfoo", "/v2/machines/", "/v2/stats/foo",
                                  "/nonexistent", "/v2/auth/nope"])
def test_unknown_paths_are_404(api: ClientApi, path: str) -> None:
    r = reply(call(api, "GET", path))
    assert (r.status, r.body) == (404, b"404 page not found\n")
    assert hdr(r, b"Content-Type") == b"text/plain; charset=utf-8"
    assert hdr(r, b"X-Content-Type-Options") == b"nosniff"
    assert all(h in r.headers for h in CORS)


@pytest.mark.parametrize(("method", "target", "location"), [
    ("PUT", "/v2/keys//norm//a///b", b"/v2/keys/norm/a/b"),
    ("PUT", "/v2/keys/norm/./d", b"/v2/keys/norm/d"),
    ("DELETE", "/v2/keys/norm/x/../e", b"/v2/keys/norm/e"),
    ("POST", "/v2//members", b"/v2/members"),
    ("PUT", "/v2/keys//a/?value=1", b"/v2/keys/a/?value=1"),  # trailing slash kept, query kept
])
def test_unclean_paths_redirect_without_writing(api: ClientApi, method: str, target: str,
                                                location: bytes) -> None:
    r = reply(call(api, method, target, b"value=1"))
    assert (r.status, r.body, hdr(r, b"Location")) == (301, b"", location)
    assert api.view.store.index == 0


def test_get_redirect_has_go_html_body(api: ClientApi) -> None:
    r = reply(call(api, "GET", "/v2/keys//a&b"))
    assert (r.status, hdr(r, b"Location")) == (301, b"/v2/keys/a&b")
    assert hdr(r, b"Content-Type") == b"text/html; charset=utf-8"
    assert r.body == b'<a href="/v2/keys/a&amp;b">Moved Permanently</a>.\n\n'


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PATCH", "/v2/keys/foo", b"HEAD,GET,PUT,POST,DELETE"),
    ("OPTIONSX", "/v2/keys", b"HEAD,GET,PUT,POST,DELETE"),
    ("PATCH", "/v2/members", b"GET,POST,DELETE,PUT"),
    ("POST", "/v2/machines", b"GET,HEAD"),
    ("HEAD", "/version", b"GET"),
    ("HEAD", "/health", b"GET"),
    ("PUT", "/v2/stats/store", b"GET"),
])
def test_method_not_allowed(api: ClientApi, method: str, path: str, allow: bytes) -> None:
    r = reply(call(api, method, path))
    assert (r.status, r.body, hdr(r, b"Allow")) == (405, b"Method Not Allowed\n", allow)
    assert hdr(r, b"Content-Type") == b"text/plain; charset=utf-8"
    assert hdr(r, b"X-Etcd-Cluster-Id") is None


@pytest.mark.parametrize("path", ["/v2/keys/foo", "/nonexistent", "/v2/keys//x", "/version"])
def test_options_anywhere_is_200_cors_only(api: ClientApi, path: str) -> None:
    r = reply(call(api, "OPTIONS", path))
    assert (r.status, r.body, r.headers) == (200, b"", list(CORS))


def test_bad_escape_in_path_is_bad_request(api: ClientApi) -> None:
    r = reply(call(api, "GET", "/v2/keys/%ZZ"))
    assert (r.status, r.body, r.close) == (400, b"400 Bad Request", True)
    assert (b"Access-Control-Allow-Origin", b"*") not in r.headers


def test_simple_endpoints(api: ClientApi) -> None:
    r = reply(call(api, "GET", "/version"))
    assert r.body == b'{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}'
    r = reply(call(api, "GET", "/health"))
    assert (r.body, hdr(r, b"Content-Type")) == (b'{"health":"true"}', b"text/plain; charset=utf-8")
    r = reply(call(api, "HEAD", "/v2/machines"))
    assert (r.status, r.body, r.head) == (200, b"http://127.0.0.1:12379", True)
    r = reply(call(api, "GET", "/v2/members"))
    assert json.loads(r.body)["members"][0]["id"] == "ddd67b312462fd7b"
    assert hdr(r, b"X-Etcd-Cluster-Id") == CID
    r = reply(call(api, "GET", "/v2/stats/store"))
    assert json.loads(r.body)["watchers"] == 0 and not r.body.endswith(b"\n")


# ---- /v2/keys responses --------------------------------------------------------------------------

def test_get_key_reply(api: ClientApi) -> None:
    assert run(api, "PUT", "/v2/keys/message", b"value=Hello+world").status == 201
    r = run(api, "GET", "/v2/keys/message")
    assert r.status == 200
    assert r.body == (b'{"action":"get","node":{"key":"/message","value":"Hello world","modifiedIndex":1,'
                      b'"createdIndex":1}}\n')
    assert r.headers == [*CORS, (b"Content-Type", b"application/json"), (b"X-Etcd-Cluster-Id", CID),
                         (b"X-Etcd-Index", b"1"), (b"X-Raft-Index", b"42"), (b"X-Raft-Term", b"2")]


def test_get_missing_key_error_reply(api: ClientApi) -> None:
    run(api, "PUT", "/v2/keys/a", b"value=1")
    r = run(api, "GET", "/v2/keys/nope")
    assert r.status == 404
    assert r.body == b'{"errorCode":100,"message":"Key not found","cause":"/nope","index":1}\n'
    assert hdr(r, b"X-Etcd-Index") == b"1" and hdr(r, b"X-Raft-Index") is None
    assert hdr(r, b"X-Etcd-Cluster-Id") == CID


def test_head_is_get_without_body(api: ClientApi) -> None:
    run(api, "PUT", "/v2/keys/a", b"value=1")
    get, head = run(api, "GET", "/v2/keys/a"), run(api, "HEAD", "/v2/keys/a")
    assert (head.head, head.status, head.body, head.headers) == (True, get.status, get.body, get.headers)
    missing, got = run(api, "HEAD", "/v2/keys/nope"), run(api, "GET", "/v2/keys/nope")
    assert (missing.status, missing.head, missing.body) == (404, True, got.body)  # body kept for the length


@pytest.mark.parametrize("target", ["/v2/keys", "/v2/keys/"])
def test_keys_root(api: ClientApi, target: str) -> None:
    r = run(api, "GET", target)
    assert r.body == b'{"action":"get","node":{"dir":true}}\n'
    r = run(api, "PUT", target, b"value=x")
    assert body_json(r) == {"errorCode": 107, "message": "Root is read only", "cause": "/", "index": 0}


@pytest.mark.parametrize(("target", "key"), [
    ("/v2/keys/norm/c/", "/norm/c"), ("/v2/keys/pct%2Fslash", "/pct/slash"), ("/v2/keys/sp%20ace", "/sp ace"),
    ("/v2/keys/unicode%C3%A9", "/unicodeé"), ("/v2/keys/a+b", "/a+b"),
])
def test_key_path_decoding(api: ClientApi, target: str, key: str) -> None:
    assert propose(call(api, "PUT", target, b"value=v")).request.path == key


def test_raw_utf8_in_path_and_form(api: ClientApi) -> None:
    out = propose(call(api, "PUT", "/v2/keys/é".encode(), "value=héllo".encode()))
    assert (out.request.path, out.request.value) == ("/é", "héllo")


def test_status_and_no_value_on_success(api: ClientApi) -> None:
    r = run(api, "PUT", "/v2/keys/wi/new1", b"value=x&noValueOnSuccess=true")
    assert (r.status, r.body) == (201, b'{"action":"set"}\n')
    r = run(api, "POST", "/v2/keys/wi/q", b"value=y&noValueOnSuccess=true")
    assert (r.status, r.body) == (201, b'{"action":"create"}\n')
    r = run(api, "PUT", "/v2/keys/wi/new1", b"value=z&noValueOnSuccess=true")
    assert (r.status, r.body) == (200, b'{"action":"set"}\n')
    r = run(api, "DELETE", "/v2/keys/wi/new1?noValueOnSuccess=true")
    assert r.status == 200 and b"prevNode" in r.body
    r = run(api, "PUT", "/v2/keys/wi/new1", b"value=z&prevExist=true&noValueOnSuccess=true")
    assert r.status == 404 and b'"errorCode":100' in r.body


# ---- how requests are built ----------------------------------------------------------------------

def test_put_request_fields(api: ClientApi) -> None:
    body = b"value=v&dir=false&prevValue=p&prevIndex=5&prevExist=true&ttl=20"
    req = propose(call(api, "PUT", "/v2/keys/k", body)).request
    assert req == Request(PUT, "/k", value="v", prev_value="p", prev_index=5, prev_exist=True,
                          expire_at_ns=T0 + 20 * S, time_ns=T0)


def test_ttl_empty_means_none_and_zero_means_now(api: ClientApi) -> None:
    assert propose(call(api, "PUT", "/v2/keys/k", b"value=v&ttl=")).request.expire_at_ns == 0
    assert propose(call(api, "PUT", "/v2/keys/k", b"value=v&ttl=0")).request.expire_at_ns == T0


def test_delete_uses_query_only(api: ClientApi) -> None:
    req = propose(call(api, "DELETE", "/v2/keys/cad3", b"prevValue=y")).request
    assert req == Request(DELETE, "/cad3", time_ns=T0)
    req = propose(call(api, "DELETE", "/v2/keys/d?dir=true&recursive=true&prevIndex=3")).request
    assert (req.dir, req.recursive, req.prev_index) == (True, True, 3)


def test_get_ignores_body_and_post_is_in_order(api: ClientApi) -> None:
    r = reply(call(api, "GET", "/v2/keys/x", b"wait=maybe"))
    assert r.status == 404
    assert propose(call(api, "POST", "/v2/keys/queue", b"value=Job1")).request.kind == POST


def test_form_body_wins_over_query(api: ClientApi) -> None:
    req = propose(call(api, "PUT", "/v2/keys/q2?value=fromquery&ttl=5", b"value=fromform")).request
    assert (req.value, req.expire_at_ns) == ("fromform", T0 + 5 * S)
    assert propose(call(api, "PUT", "/v2/keys/q1?value=fromquery")).request.value == "fromquery"


def test_non_form_body_is_ignored(api: ClientApi) -> None:
    out = call(api, "PUT", "/v2/keys/jsonbody", b'{"value":"x"}', [(b"Content-Type", b"application/json")])
    assert propose(out).request.value == ""
    out = call(api, "PUT", "/v2/keys/nobody", b"value=x", [])
    assert propose(out).request.value == ""
    ctype = [(b"content-type", b"Application/X-WWW-Form-Urlencoded; charset=utf-8")]
    assert propose(call(api, "PUT", "/v2/keys/k", b"value=x", ctype)).request.value == "x"


def test_repeated_and_unknown_parameters(api: ClientApi) -> None:
    assert propose(call(api, "PUT", "/v2/keys/k?value=a&value=b")).request.value == "a"
    assert reply(call(api, "GET", "/v2/keys/?foo=bar")).status == 200


def test_quorum_and_wait(api: ClientApi) -> None:
    # quorum=true wins over wait=true (etcd turns the GET into a linearised read first)
    assert call(api, "GET", "/v2/keys/d?quorum=true&recursive=true&sorted=true&wait=true") == \
        QuorumRead("/d", True, True)
    assert isinstance(call(api, "HEAD", "/v2/keys/?quorum=true"), Reply)
    w = call(api, "GET", "/v2/keys/w?wait=true&recursive=true&stream=true&waitIndex=7")
    assert w == StartWatch("/w", True, True, 7, False)


def test_form_too_large(api: ClientApi) -> None:
    big = b"value=" + b"a" * (10 * 1024 * 1024 - 6)
    assert propose(call(api, "PUT", "/v2/keys/big", big)).request.value.startswith("aaa")
    r = reply(call(api, "PUT", "/v2/keys/big", big + b"a"))
    assert (r.status, r.body) == (400, b'{"errorCode":210,"message":"Invalid POST form",'
                                       b'"cause":"http: POST too large","index":0}\n')


# ---- parameter validation ------------------------------------------------------------------------

BAD_PARAMS = [
    ("GET", "recursive=yes", 209, 'invalid value for "recursive"'),
    ("GET", "recursive=", 209, 'invalid value for "recursive"'),
    ("GET", "sorted=maybe", 209, 'invalid value for "sorted"'),
    ("GET", "wait=2", 209, 'invalid value for "wait"'),
    ("PUT", "dir=on", 209, 'invalid value for "dir"'),
    ("GET", "quorum=TrUe", 209, 'invalid value for "quorum"'),
    ("GET", "stream=x", 209, 'invalid value for "stream"'),
    ("PUT", "noValueOnSuccess=y", 209, 'invalid value for "noValueOnSuccess"'),
    ("PUT", "prevExist=yes", 209, "invalid value for prevExist"),
    ("PUT", "prevExist=", 209, "invalid value for prevExist"),
    ("PUT", "refresh=yes&ttl=5", 209, "invalid value for refresh"),
    ("PUT", "prevIndex=abc", 203, 'invalid value for "prevIndex"'),
    ("PUT", "prevIndex=", 203, 'invalid value for "prevIndex"'),
    ("DELETE", "prevIndex=-1", 203, 'invalid value for "prevIndex"'),
    ("GET", "waitIndex=1.5", 203, 'invalid value for "waitIndex"'),
    ("GET", "waitIndex=18446744073709551616", 203, 'invalid value for "waitIndex"'),
    ("PUT", "ttl=abc", 202, 'invalid value for "ttl"'),
    ("PUT", "ttl=-1", 202, 'invalid value for "ttl"'),
    ("PUT", "ttl=1.5", 202, 'invalid value for "ttl"'),
    ("PUT", "ttl=%2B5", 202, 'invalid value for "ttl"'),
    ("PUT", "ttl=+5", 202, 'invalid value for "ttl"'),  # '+' is a space
    ("PUT", "prevValue=", 201, '"prevValue" cannot be empty'),
    ("PUT", "wait=true", 209, '"wait" can only be used with GET requests'),
    ("HEAD", "wait=true", 209, '"wait" can only be used with GET requests'),
    ("PUT", "refresh=true&ttl=5&value=x", 211, "A value was provided on a refresh"),
    ("PUT", "refresh=true", 212, "No TTL value set"),
    ("PUT", "refresh=true&ttl=", 212, "No TTL value set"),
    ("PUT", "value=%ZZ", 210, 'invalid URL escape "%ZZ"'),
    ("PUT", "value=%5", 210, 'invalid URL escape "%5"'),
    ("GET", "a=1;b=2", 210, "invalid semicolon separator in query"),
]
MESSAGES = {201: "PrevValue is Required in POST form", 202: "The given TTL in POST form is not a number",
            203: "The given index in POST form is not a number", 209: "Invalid field",
            210: "Invalid POST form", 211: "Value provided on refresh",
            212: "A TTL must be provided on refresh"}


@pytest.mark.parametrize(("method", "query", "code", "cause"), BAD_PARAMS)
def test_bad_parameters_exact_error(api: ClientApi, method: str, query: str, code: int, cause: str) -> None:
    run(api, "PUT", "/v2/keys/k", b"value=1")
    r = reply(call(api, method, f"/v2/keys/k?{query}"))
    assert r.status == 400
    expected = {"errorCode": code, "message": MESSAGES[code], "cause": cause, "index": 0}
    assert r.body == json.dumps(expected, separators=(",", ":")).encode() + b"\n"
    assert hdr(r, b"X-Etcd-Index") == b"0" and hdr(r, b"X-Raft-Index") is None
    assert hdr(r, b"Content-Type") == b"application/json" and hdr(r, b"X-Etcd-Cluster-Id") == CID
    assert api.view.store.index == 1


@pytest.mark.parametrize(("query", "code", "cause"), [
    ("recursive=x&prevIndex=x&value=%ZZ", 210, 'invalid URL escape "%ZZ"'),
    ("recursive=x&waitIndex=x&prevIndex=x", 203, 'invalid value for "prevIndex"'),
    ("ttl=x&recursive=x&waitIndex=x", 203, 'invalid value for "waitIndex"'),
    ("stream=x&dir=x&sorted=x&recursive=x", 209, 'invalid value for "recursive"'),
    ("stream=x&quorum=x&dir=x&wait=x&sorted=x", 209, 'invalid value for "sorted"'),
    ("stream=x&quorum=x&dir=x&wait=x", 209, 'invalid value for "wait"'),
    ("stream=x&quorum=x&dir=x", 209, 'invalid value for "dir"'),
    ("stream=x&quorum=x", 209, 'invalid value for "quorum"'),
    ("prevValue=&wait=true&stream=x", 209, 'invalid value for "stream"'),
    ("prevValue=&wait=true", 209, '"wait" can only be used with GET requests'),
    ("noValueOnSuccess=x&prevValue=", 201, '"prevValue" cannot be empty'),
    ("ttl=x&noValueOnSuccess=x", 209, 'invalid value for "noValueOnSuccess"'),
    ("prevExist=x&ttl=x", 202, 'invalid value for "ttl"'),
    ("refresh=x&prevExist=x", 209, "invalid value for prevExist"),
    ("refresh=true&value=v", 211, "A value was provided on a refresh"),
])
def test_validation_order(api: ClientApi, query: str, code: int, cause: str) -> None:
    e = body_json(reply(call(api, "PUT", f"/v2/keys/k?{query}")))
    assert (e["errorCode"], e["cause"]) == (code, cause)


def test_body_parse_error_wins_over_query_error(api: ClientApi) -> None:
    e = body_json(reply(call(api, "PUT", "/v2/keys/k?value=%QQ", b"value=%ZZ")))
    assert (e["errorCode"], e["cause"]) == (210, 'invalid URL escape "%ZZ"')


@pytest.mark.parametrize("spelling", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_true_spellings(api: ClientApi, spelling: str) -> None:
    req = propose(call(api, "PUT", f"/v2/keys/k?dir={spelling}&prevExist={spelling}")).request
    assert (req.dir, req.prev_exist) == (True, True)


@pytest.mark.parametrize("spelling", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_false_spellings(api: ClientApi, spelling: str) -> None:
    req = propose(call(api, "PUT", f"/v2/keys/k?dir={spelling}&prevExist={spelling}")).request
    assert (req.dir, req.prev_exist) == (False, False)


def test_refresh_with_empty_value_is_allowed(api: ClientApi) -> None:
    req = propose(call(api, "PUT", "/v2/keys/k?refresh=true&ttl=20&value=")).request
    assert (req.refresh, req.expire_at_ns) == (True, T0 + 20 * S)


def test_prev_index_zero_is_absent(api: ClientApi) -> None:
    run(api, "PUT", "/v2/keys/foo", b"value=four")
    r = run(api, "PUT", "/v2/keys/foo", b"value=five&prevIndex=0")
    assert body_json(r)["action"] == "set"


def test_escape_error_cause_is_go_quoted(api: ClientApi) -> None:
    e = body_json(reply(call(api, "PUT", '/v2/keys/k?value=%"x')))
    assert e["cause"] == 'invalid URL escape "%\\"x"'
