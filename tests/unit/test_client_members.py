"""The members client and the keys client's additions for it (raw requests, in-order keys, a request hook):
the requests sent are Go's client's, and answers are judged as Go's client judges them."""

from __future__ import annotations

import json

import pytest
from pyetcd.client import ClusterError, KeysClient
from pyetcd.client.members import InvalidMembersJson, MembersClient, MembersError, UnexpectedStatus

from tests.support.scripted_http import Reply, ScriptedHttp, Seen

MEMBER = {"id": "8e9e05c52164694d", "name": "n1", "peerURLs": ["http://127.0.0.1:2380"],
          "clientURLs": ["http://127.0.0.1:2379"]}


def reply(status: int, body: object = None) -> Reply:
    data = b"" if body is None else json.dumps(body).encode()
    return status, {"Content-Type": "application/json"}, data


def test_requests_look_like_gos() -> None:
    def answer(seen: Seen) -> Reply:
        if seen.method == "GET":
            return reply(200, MEMBER if seen.target.endswith("/leader") else {"members": [MEMBER]})
        return {"POST": reply(201, MEMBER), "PUT": reply(204), "DELETE": reply(204)}[seen.method]

    with ScriptedHttp(answer) as srv:
        m = MembersClient(KeysClient([srv.url + "/base/"]))
        assert m.list()[0].client_urls == ["http://127.0.0.1:2379"]
        assert m.leader().name == "n1"
        assert m.add("http://10.0.0.2:2380").id == MEMBER["id"]
        m.update("abc", ["http://b:1", "http://a:1"])
        m.remove("abc")
        seen = srv.seen
    assert [(s.method, s.target, s.headers.get("content-type"), s.body) for s in seen] == [
        ("GET", "/base/v2/members", None, b""),
        ("GET", "/base/v2/members/leader", None, b""),
        ("POST", "/base/v2/members", "application/json", b'{"peerURLs":["http://10.0.0.2:2380"]}'),
        ("PUT", "/base/v2/members/abc", "application/json", b'{"peerURLs":["http://a:1","http://b:1"]}'),
        ("DELETE", "/base/v2/members/abc", None, b""),
    ]


def test_refusals_carry_etcds_message_and_other_statuses_are_unexpected() -> None:
    answers = [reply(409, {"message": "etcdserver: peerURL exists"}), reply(404, {"message": "Member not found"}),
               reply(400, {"message": "bad"}), reply(410), reply(200, [1])]
    with ScriptedHttp(lambda s: answers.pop(0)) as srv:
        m = MembersClient(KeysClient([srv.url]))
        with pytest.raises(MembersError, match="^etcdserver: peerURL exists$"):
            m.add("http://a:1")
        with pytest.raises(MembersError, match="^Member not found$"):
            m.update("x", ["http://a:1"])
        with pytest.raises(UnexpectedStatus, match="^unexpected status code 400$"):
            m.remove("x")
        m.remove("x")  # 410 Gone: removed already, fine
        with pytest.raises(InvalidMembersJson):
            m.leader()


def test_raw_requests_fail_over_like_keys_requests() -> None:
    with ScriptedHttp(lambda s: reply(503, {"message": "no leader"})) as busy, \
            ScriptedHttp(lambda s: reply(200, {"members": []})) as good:
        assert MembersClient(KeysClient([busy.url, good.url])).list() == []
        with pytest.raises(ClusterError):
            KeysClient([busy.url]).request("GET", "/v2/members")


def test_in_order_keys_post_and_the_request_hook_sees_every_send() -> None:
    calls: list[tuple[str, str, bytes | None]] = []
    event = {"action": "create", "node": {"key": "/q/00000000000000000007", "value": "x"}}
    with ScriptedHttp(lambda s: reply(201, event)) as srv:
        c = KeysClient([srv.url], on_request=lambda *a: calls.append(a))
        assert c.create_in_order("/q", "x", ttl=5).node["key"] == "/q/00000000000000000007"
        seen = srv.seen[0]
    assert (seen.method, seen.target, seen.body) == ("POST", "/v2/keys/q", b"value=x&ttl=5")
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert calls == [("POST", f"{srv.url}/v2/keys/q", b"value=x&ttl=5")]
