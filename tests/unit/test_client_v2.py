"""The blocking v2 keys client: the requests it sends (Go's client sends the same), how it reads answers,
and endpoint failover, all over real loopback sockets (scripted servers, closed ports)."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path

import pytest
from pyetcd.client import ClusterError, EtcdError, InvalidResponse, KeysClient, RequestTimeout
from pyetcd.client.v2 import canonical_path, parse_proxy
from pyetcd.ops.certs import create_ca, issue

from tests.support.scripted_http import Reply, ScriptedHttp, Seen, TunnelProxy, json_reply

EVENT = b'{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":7,"createdIndex":7}}'
NOT_FOUND = b'{"errorCode":100,"message":"Key not found","cause":"/a","index":9}'
HTML = (200, {"Content-Type": "text/html"}, b"<html><body>hello</body></html>")


def ok(seen: Seen) -> Reply:
    return json_reply(200, EVENT, 7)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("raw", "clean"), [("", "/"), ("a", "/a"), ("/", "/"), ("/a//b/../c/", "/a/c/"),
                                            ("//x", "/x"), ("/v2/keys/./k", "/v2/keys/k"), ("/..", "/")])
def test_canonical_path_is_gos(raw: str, clean: str) -> None:
    assert canonical_path(raw) == clean


def test_requests_look_like_gos() -> None:
    with ScriptedHttp(ok) as srv:
        c = KeysClient([srv.url])
        c.get("/a")
        c.get("a/b/", recursive=True, sorted=True, quorum=True)
        c.set("/a", "x y&z=1", prev_exist=False, ttl=5)
        c.set("/d", "ignored", dir=True, prev_index=3)
        c.set("/a", "2", prev_value="1", prev_exist=True)
        c.delete("/d", dir=True, recursive=True, prev_index=4)
        c.get("/a", wait=True, wait_index=8, recursive=True)
        c.get("/sp ace/ü?#%")
        seen = srv.seen
    assert [(s.method, s.target) for s in seen] == [
        ("GET", "/v2/keys/a?quorum=false&recursive=false&sorted=false"),
        ("GET", "/v2/keys/a/b/?quorum=true&recursive=true&sorted=true"),
        ("PUT", "/v2/keys/a?prevExist=false"),
        ("PUT", "/v2/keys/d?dir=true&prevIndex=3"),
        ("PUT", "/v2/keys/a?prevExist=true&prevValue=1"),
        ("DELETE", "/v2/keys/d?dir=true&prevIndex=4&recursive=true"),
        ("GET", "/v2/keys/a?recursive=true&wait=true&waitIndex=8"),
        ("GET", "/v2/keys/sp%20ace/%C3%BC%3F%23%25?quorum=false&recursive=false&sorted=false"),
    ]
    assert seen[2].body == b"value=x+y%26z%3D1&ttl=5"
    assert seen[3].body == b""
    for s in seen[2:6]:
        assert s.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "content-type" not in seen[0].headers


def test_an_endpoint_path_and_an_empty_prefix_put_keys_right_under_it() -> None:
    with ScriptedHttp(ok) as srv:
        c = KeysClient([f"{srv.url}/v2/keys/_etcd/registry/tok"], prefix="")
        c.get("_config/size")
        c.get("")
        c.create("7e27652122e8b2ae", "infra0=http://10.0.1.10:2380")
        KeysClient([srv.url + "/base/"], prefix="custom").get("k")
        seen = srv.seen
    assert [s.target.split("?")[0] for s in seen] == ["/v2/keys/_etcd/registry/tok/_config/size",
                                                      "/v2/keys/_etcd/registry/tok",
                                                      "/v2/keys/_etcd/registry/tok/7e27652122e8b2ae",
                                                      "/base/custom/k"]
    assert seen[2].body == b"value=infra0%3Dhttp%3A%2F%2F10.0.1.10%3A2380"


def test_a_response_carries_status_headers_body_and_index() -> None:
    with ScriptedHttp(lambda s: json_reply(201, EVENT, 42)) as srv:
        r = KeysClient([srv.url]).get("/a")
    assert (r.status, r.etcd_index, r.action, r.node["value"]) == (201, 42, "get", "1")
    assert r.headers["x-etcd-index"] == "42" and r.headers["content-type"] == "application/json"
    assert r.prev_node is None


def test_etcd_errors_keep_their_fields() -> None:
    with ScriptedHttp(lambda s: json_reply(404, NOT_FOUND, 9)) as srv:
        with pytest.raises(EtcdError) as ei:
            KeysClient([srv.url]).get("/a")
    e = ei.value
    assert (e.status, e.error_code, e.message, e.cause, e.index) == (404, 100, "Key not found", "/a", 9)
    assert str(e) == "100: Key not found (/a) [9]"


@pytest.mark.parametrize("reply", [HTML, (404, {}, b"404 page not found\n"), (200, {}, b"[1, 2]"),
                                   (200, {}, b""), (200, {"X-Etcd-Index": "x"}, EVENT)])
def test_answers_that_are_not_etcd_json(reply: Reply) -> None:
    with ScriptedHttp(lambda s: reply) as srv:
        with pytest.raises(InvalidResponse):
            KeysClient([srv.url]).get("/a")


def test_a_watch_polls_again_after_an_empty_answer() -> None:
    replies = [(200, {}, b""), (200, {}, b""), json_reply(200, EVENT, 7)]
    with ScriptedHttp(lambda s: replies.pop(0)) as srv:
        r = KeysClient([srv.url]).get("/a", wait=True, wait_index=7)
        assert len(srv.seen) == 3
    assert r.node["modifiedIndex"] == 7


def test_failover_skips_dead_and_5xx_endpoints_and_pins_the_good_one() -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    with ScriptedHttp(lambda s: json_reply(500, b'{"errorCode":300,"message":"Raft Internal Error"}')) as bad, \
            ScriptedHttp(ok) as good:
        c = KeysClient([down, bad.url, good.url])
        c.get("/a")
        c.get("/b")
        assert len(bad.seen) == 1 and len(good.seen) == 2  # the second call went straight to the pinned one


def test_no_endpoint_answering_is_a_cluster_error() -> None:
    with ScriptedHttp(lambda s: None) as dropping, \
            ScriptedHttp(lambda s: json_reply(503, b'{"errorCode":300,"message":"Raft Internal Error"}')) as busy:
        down = f"http://127.0.0.1:{closed_port()}"
        with pytest.raises(ClusterError) as ei:
            KeysClient([down, dropping.url, busy.url]).get("/a")
    e = ei.value
    assert [ep for ep, _ in e.errors] == [down, dropping.url, busy.url]
    assert isinstance(e.errors[0][1], ConnectionRefusedError)
    assert isinstance(e.errors[2][1], EtcdError) and e.errors[2][1].error_code == 300
    assert str(e).startswith("client: etcd cluster is unavailable or misconfigured; error #0: ")


def test_a_timeout_ends_the_request_without_trying_other_endpoints() -> None:
    def slow(seen: Seen) -> Reply:
        time.sleep(1.0)
        return ok(seen)

    with ScriptedHttp(slow) as srv, ScriptedHttp(ok) as other:
        with pytest.raises(RequestTimeout):
            KeysClient([srv.url, other.url], timeout=0.2).get("/a")
        assert other.seen == []


def test_redirects_are_followed_with_method_and_body() -> None:
    with ScriptedHttp(ok) as leader:
        def redirect(seen: Seen) -> Reply:
            return 307, {"Location": f"{leader.url}/v2/keys/moved?prevExist=false"}, b""

        with ScriptedHttp(redirect) as follower:
            KeysClient([follower.url]).set("/a", "v", prev_exist=False)
        assert [(s.method, s.target, s.body) for s in leader.seen] == [("PUT", "/v2/keys/moved?prevExist=false",
                                                                       b"value=v")]


def test_credentials_in_the_endpoint_become_basic_auth() -> None:
    with ScriptedHttp(ok) as srv:
        KeysClient([f"http://u%40x:p%3Aw@127.0.0.1:{srv.port}"]).get("/a")
        assert srv.seen[0].headers["authorization"] == "Basic dUB4OnA6dw=="  # "u@x:p:w"


def test_plain_http_goes_through_a_forward_proxy() -> None:
    with ScriptedHttp(ok) as proxy:
        KeysClient(["http://etcd.invalid:2379"], proxy=f"user:pw@127.0.0.1:{proxy.port}").get("/a")
        seen = proxy.seen[0]
    assert seen.target == "http://etcd.invalid:2379/v2/keys/a?quorum=false&recursive=false&sorted=false"
    assert seen.headers["host"] == "etcd.invalid:2379"
    assert seen.headers["proxy-authorization"] == "Basic dXNlcjpwdw=="


def test_proxy_addresses() -> None:
    assert str(parse_proxy("127.0.0.1:3128").origin) == "http://127.0.0.1:3128"
    assert str(parse_proxy("proxy.local:3128").origin) == "http://proxy.local:3128"
    assert str(parse_proxy("http://proxy.local").origin) == "http://proxy.local:80"
    with pytest.raises(ValueError):
        parse_proxy("socks5://127.0.0.1:1080")


def test_bad_endpoints_are_refused_up_front() -> None:
    for bad in (["ftp://h:1"], ["http://"], ["http://h:port"], []):
        with pytest.raises(ValueError):
            KeysClient(bad)
    with pytest.raises(TypeError):
        KeysClient("http://h:1")  # type: ignore[arg-type]


def test_https_uses_the_given_context(tmp_path: Path) -> None:
    ca = create_ca(tmp_path)
    leaf = issue(tmp_path, ca, "server", "server", sans=["127.0.0.1"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(leaf.cert, leaf.key)
    with ScriptedHttp(ok, ssl_context=server_ctx) as srv:
        trusting = ssl.create_default_context(cafile=str(ca.cert))
        assert KeysClient([srv.url], ssl_context=trusting).get("/a").node["value"] == "1"
        with pytest.raises(ClusterError) as ei:  # the system roots do not know our CA
            KeysClient([srv.url]).get("/a")
    assert isinstance(ei.value.errors[0][1], ssl.SSLError)


def test_https_goes_through_a_proxy_with_connect(tmp_path: Path) -> None:
    ca = create_ca(tmp_path)
    leaf = issue(tmp_path, ca, "server", "server", sans=["127.0.0.1"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(leaf.cert, leaf.key)
    with ScriptedHttp(ok, ssl_context=server_ctx) as srv, TunnelProxy() as proxy:
        c = KeysClient([srv.url], ssl_context=ssl.create_default_context(cafile=str(ca.cert)),
                       proxy=f"http://user:pw@127.0.0.1:{proxy.port}")
        assert c.get("/a").node["value"] == "1"
        assert srv.seen[0].target == "/v2/keys/a?quorum=false&recursive=false&sorted=false"  # origin-form inside
    target, headers = proxy.connects[0]
    assert target == f"127.0.0.1:{srv.port}"
    assert headers["proxy-authorization"] == "Basic dXNlcjpwdw=="


def test_json_error_bodies_without_etcd_fields_still_raise_etcd_error() -> None:
    with ScriptedHttp(lambda s: json_reply(403, json.dumps({"message": "nope"}).encode())) as srv:
        with pytest.raises(EtcdError) as ei:
            KeysClient([srv.url]).get("/a")
    assert (ei.value.status, ei.value.error_code, ei.value.message) == (403, 0, "nope")
