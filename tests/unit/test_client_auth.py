"""pyetcd.client's credentials and v2 auth API: basic auth on every request, the bodies Go's client sends,
and answers judged and decoded as Go's client does (against a scripted server)."""

from __future__ import annotations

import json

import pytest
from pyetcd.client import ConnectionOptions, KeysClient, connect
from pyetcd.client.auth import AuthClient, AuthError, GoJsonError, Role, User, go_unmarshal
from pyetcd.client.members import MembersClient, UnexpectedStatus

from tests.support.scripted_http import Reply, ScriptedHttp, Seen, json_reply

BASIC_ROOT = "Basic cm9vdDpyb290cHc="  # root:rootpw


def jr(status: int, body: object) -> Reply:
    return json_reply(status, json.dumps(body).encode())


def ok(seen: Seen) -> Reply:
    if seen.target.startswith("/v2/members"):
        return jr(200, {"members": []})
    return jr(200, {"action": "get", "node": {"key": "/a", "value": "v"}})


def test_username_and_password_go_with_every_request() -> None:
    with ScriptedHttp(ok) as srv:
        keys = KeysClient([f"http://other:creds@127.0.0.1:{srv.port}"], username="root", password="rootpw")
        keys.get("/a")
        keys.set("/a", "v")
        keys.delete("/a")
        keys.request("GET", "/v2/members")
        MembersClient(keys).list()
    assert [s.headers.get("authorization") for s in srv.seen] == [BASIC_ROOT] * 5


def test_connect_sends_the_options_credentials_and_none_without() -> None:
    with ScriptedHttp(ok) as srv:
        connect(ConnectionOptions((srv.url,), username="ü:1", password="p:w")).get("/a")
        connect(ConnectionOptions((srv.url,))).get("/a")
        KeysClient([srv.url], username="solo").get("/a")
    assert srv.seen[0].headers["authorization"] == "Basic w7w6MTpwOnc="  # UTF-8 "ü:1:p:w"
    assert "authorization" not in srv.seen[1].headers
    assert srv.seen[2].headers["authorization"] == "Basic c29sbzo="  # "solo:"


def recorder(answer: Reply) -> ScriptedHttp:
    return ScriptedHttp(lambda seen: answer)


@pytest.mark.parametrize("call,method,target,body", [
    (lambda a: a.enable(), "PUT", "/v2/auth/enable", None),
    (lambda a: a.disable(), "DELETE", "/v2/auth/enable", None),
    (lambda a: a.add_user("bob", "pw"), "PUT", "/v2/auth/users/bob", '{"user":"bob","password":"pw","roles":null}'),
    (lambda a: a.add_user("bob", ""), "PUT", "/v2/auth/users/bob", '{"user":"bob","roles":null}'),
    (lambda a: a.grant_user("bob", ["r1", "r<2>"]), "PUT", "/v2/auth/users/bob",
     '{"user":"bob","roles":null,"grant":["r1","r\\u003c2\\u003e"]}'),
    (lambda a: a.revoke_user("bob", ["r1"]), "PUT", "/v2/auth/users/bob", '{"user":"bob","roles":null,"revoke":["r1"]}'),
    (lambda a: a.change_password("bob", "n"), "PUT", "/v2/auth/users/bob", '{"user":"bob","password":"n","roles":null}'),
    (lambda a: a.remove_user("bob"), "DELETE", "/v2/auth/users/bob", None),
    (lambda a: a.add_role("r"), "PUT", "/v2/auth/roles/r", '{"role":"r","permissions":{"kv":{"read":null,"write":null}}}'),
    (lambda a: a.grant_role("r", ["/a/*"], "readwrite"), "PUT", "/v2/auth/roles/r",
     '{"role":"r","permissions":{"kv":{"read":null,"write":null}},"grant":{"kv":{"read":["/a/*"],"write":["/a/*"]}}}'),
    (lambda a: a.revoke_role("r", ["/a"], "write"), "PUT", "/v2/auth/roles/r",
     '{"role":"r","permissions":{"kv":{"read":null,"write":null}},"revoke":{"kv":{"read":null,"write":["/a"]}}}'),
    (lambda a: a.remove_role("r"), "DELETE", "/v2/auth/roles/r", None),
])
def test_requests_are_gos(call, method: str, target: str, body: str | None) -> None:  # type: ignore[no-untyped-def]
    with recorder(jr(200, {"user": "bob", "role": "r"})) as srv:
        call(AuthClient(KeysClient([srv.url])))
    seen = srv.seen[0]
    assert (seen.method, seen.target) == (method, target)
    assert seen.body == (body or "").encode()
    assert seen.headers.get("content-type") == ("application/json" if body else None)


def test_user_roles_decode_as_gos_two_passes() -> None:
    """etcd 3.4 answers role objects; Go's first pass leaves one "" per object, the second appends names."""
    objects = {"user": "u", "roles": [{"role": "a", "permissions": {}}, {"role": "b"}]}
    assert User.from_json(objects) == User("u", ["", "", "a", "b"])
    assert User.from_json({"user": "u", "roles": ["a", "b"]}) == User("u", ["a", "b"])
    assert User.from_json({"user": "u"}) == User("u", None)
    with pytest.raises(GoJsonError, match="cannot unmarshal number into Go struct field User.roles"):
        User.from_json({"user": "u", "roles": [1]})


def test_role_equality_tells_nil_from_empty_as_deep_equal() -> None:
    a = Role.from_json({"role": "r", "permissions": {"kv": {"read": [], "write": None}}})
    b = Role.from_json({"role": "r", "permissions": {"kv": {"read": None}}})
    assert a != b
    assert b == Role.from_json({"role": "r", "permissions": {"kv": {}}})


@pytest.mark.parametrize("status,body,call,error", [
    (404, b'{"message":"auth: User x does not exist."}', lambda a: a.get_user("x"), "auth: User x does not exist."),
    (401, b'{"message":"Insufficient credentials"}', lambda a: a.list_users(), "Insufficient credentials"),
    (401, b'{"message":"Insufficient credentials"}', lambda a: a.list_roles(), "unexpected status code 401"),
    (201, b'{"user":"x","roles":[]}', lambda a: a.change_password("x", "p"), ""),  # only 200 will do
    (409, b"", lambda a: a.add_role("r"), "unexpected end of JSON input"),
    (400, b"<html>", lambda a: a.enable(), "invalid character '<' looking for beginning of value"),
])
def test_refusals_read_as_gos(status: int, body: bytes, call, error: str) -> None:  # type: ignore[no-untyped-def]
    with recorder((status, {"Content-Type": "application/json"}, body)) as srv:
        with pytest.raises((AuthError, GoJsonError, UnexpectedStatus)) as e:
            call(AuthClient(KeysClient([srv.url])))
    assert str(e.value) == error


def test_lists_are_names() -> None:
    users = {"users": [{"user": "a", "roles": [{"role": "x"}]}, {"user": "b"}]}
    roles = {"roles": [{"role": "guest", "permissions": {}}, {"role": "root"}]}
    with ScriptedHttp(lambda s: jr(200, users if "users" in s.target else roles)) as srv:
        auth = AuthClient(KeysClient([srv.url]))
        assert (auth.list_users(), auth.list_roles()) == (["a", "b"], ["guest", "root"])


def test_go_unmarshal_words() -> None:
    assert go_unmarshal(b'{"a":1}') == {"a": 1}
    with pytest.raises(GoJsonError, match="after top-level value"):
        go_unmarshal(b'{"a":1}x')
    assert json.loads(b"null") is None and go_unmarshal(b"null") is None
