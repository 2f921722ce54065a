"""The discovering member's pure parts (IDs, cluster strings), its retry schedule against a real closed
port, and its watch loop against a scripted registry for the paths a healthy etcd cannot be made to take
on demand (outdated waitIndex, hidden and deleted keys in the event history)."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pyetcd.discovery.join import (
    DiscoveryError,
    Kind,
    cluster_string,
    discovery_member_id,
    explain,
    get_cluster,
    join_cluster,
    parse_cluster,
    self_config,
)
from pyetcd.server.members import member_id

from tests.support.scripted_http import Reply, ScriptedHttp, Seen, json_reply

VECTOR_DURL = "http://127.0.0.1:23790/v2/keys/_etcd/registry/0123456789abcdef0123456789abcdef"


def closed_port() -> int:
    """A loopback port nobody listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- member IDs and registration values -------------------------------------------------------------

def test_member_id_matches_the_etcd_vector() -> None:
    peers = ["http://127.0.0.1:24002"]
    mid = discovery_member_id(peers, VECTOR_DURL)
    assert format(mid, "x") == "ffb6d4f9df137b21"
    assert mid == member_id(peers, VECTOR_DURL)
    assert mid == int.from_bytes(hashlib.sha1(b"http://127.0.0.1:24002" + VECTOR_DURL.encode()).digest()[:8], "big")


def test_member_id_sorts_peer_urls() -> None:
    a, b = "http://10.0.1.10:2380", "http://10.0.2.10:2380"
    assert discovery_member_id([b, a], VECTOR_DURL) == discovery_member_id([a, b], VECTOR_DURL)


def test_self_config_sorts_the_pairs() -> None:
    assert self_config("infra0", ["http://10.0.2.10:2380", "http://10.0.1.10:2380"]) == \
        "infra0=http://10.0.1.10:2380,infra0=http://10.0.2.10:2380"
    assert self_config("infra0", ["http://10.0.1.10:2380"]) == "infra0=http://10.0.1.10:2380"


# -- cluster strings --------------------------------------------------------------------------------

def test_cluster_string_keeps_registration_order() -> None:
    values = ["n2=http://10.0.0.3:2380", "n0=http://10.0.0.1:2380,n0=http://10.0.1.1:2380", "n1=https://[::1]:2380"]
    assert cluster_string(values, 3) == ",".join(values)
    assert parse_cluster(",".join(values)) == {"n2": ["http://10.0.0.3:2380"],
                                               "n0": ["http://10.0.0.1:2380", "http://10.0.1.1:2380"],
                                               "n1": ["https://[::1]:2380"]}


def test_two_members_with_one_name_is_a_duplicate_name() -> None:
    with pytest.raises(DiscoveryError) as ei:
        cluster_string(["n0=http://10.0.0.1:2380", "n0=http://10.0.0.2:2380", "n2=http://10.0.0.3:2380"], 3)
    assert ei.value.kind is Kind.DUPLICATE_NAME
    assert str(ei.value) == "discovery: found duplicate name"


def test_one_url_under_two_names_is_refused() -> None:
    with pytest.raises(DiscoveryError) as ei:
        cluster_string(["n1=http://10.0.0.1:2380", "n0=http://10.0.0.1:2380"], 2)
    assert ei.value.kind is Kind.DUPLICATE_URL
    assert str(ei.value) == "discovery cluster n0=http://10.0.0.1:2380,n1=http://10.0.0.1:2380 has duplicate url"


@pytest.mark.parametrize("value", ["n0=10.0.0.1:2380", "n0=ftp://10.0.0.1:2380", "n0=http://10.0.0.1",
                                   "n0=http://10.0.0.1:2380/path", "n0", "n0=http://::1:2380",
                                   "n0=http://10.0.0.1:port", "n0=http://[::1:2380"])
def test_unusable_peer_urls_are_invalid(value: str) -> None:
    with pytest.raises(DiscoveryError) as ei:
        cluster_string([value, "n1=http://10.0.0.2:2380"], 2)
    assert ei.value.kind is Kind.INVALID_URL
    assert str(ei.value) == "discovery: invalid URL"


@pytest.mark.parametrize("url", ["http://h:", "unix://sock:0", "https://[fe80::1]:2380", " http://h:1 "])
def test_urls_etcd_accepts(url: str) -> None:
    assert cluster_string([f"n0={url}"], 1) == f"n0={url}"


@pytest.mark.parametrize("durl", ["ftp://127.0.0.1:1/t", "127.0.0.1:2379/t", "http://127.0.0.1:notaport/t", "http:///t"])
def test_bad_discovery_urls_fail_before_any_request(durl: str) -> None:
    with pytest.raises(DiscoveryError) as ei:
        join_cluster(durl, 1, "n=http://h:1", sleep=pytest.fail)
    assert ei.value.kind is Kind.INVALID_URL


def test_explanations_follow_etcd() -> None:
    kw = {"durl": "http://d/t", "name": "m1", "data_dir": "/tmp/m1"}
    dup_id = explain(DiscoveryError(Kind.DUPLICATE_ID), **kw)
    assert dup_id[0] == (logging.ERROR, "member 'm1' has previously registered with discovery service token (http://d/t).")
    assert [line for _, line in dup_id][1:] == [
        "But etcd could not find valid cluster configuration in the given data dir (/tmp/m1).",
        "Please check the given data dir path if the previous bootstrap succeeded",
        "or use a new discovery token if the previous bootstrap failed."]
    assert "duplicated name" in explain(DiscoveryError(Kind.DUPLICATE_NAME), **kw)[0][1]
    assert [line for _, line in explain(DiscoveryError(Kind.FULL_CLUSTER), **kw)] == [
        "failed to join discovery cluster (discovery: cluster is full)",
        "discovery token http://d/t was used, but failed to bootstrap the cluster.",
        "please generate a new discovery token and try to bootstrap again."]


# -- retries: a real closed port, an injected sleep --------------------------------------------------

def test_backoff_doubles_up_to_the_cap_then_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    port = closed_port()
    sleeps: list[float] = []
    with caplog.at_level(logging.INFO, logger="pyetcd.discovery"), pytest.raises(DiscoveryError) as ei:
        join_cluster(f"http://127.0.0.1:{port}/v2/keys/_etcd/registry/t", 1, "n=http://h:1",
                     sleep=sleeps.append, retry_cap_exp=3, max_retries=6)
    assert ei.value.kind is Kind.TOO_MANY_RETRIES
    assert str(ei.value) == "discovery: too many retries"
    assert sleeps == [2, 4, 8, 8, 8, 8]
    lines = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert lines[0] == f"cluster status check: error connecting to http://127.0.0.1:{port}, retrying in 2s"
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["2s", "4s", "8s", "8s", "8s", "8s"]


def test_default_cap_is_256_seconds(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    with caplog.at_level(logging.INFO, logger="pyetcd.discovery"), pytest.raises(DiscoveryError):
        get_cluster(f"http://127.0.0.1:{closed_port()}/t", sleep=sleeps.append, max_retries=10)
    assert sleeps == [2, 4, 8, 16, 32, 64, 128, 256, 256, 256]
    assert caplog.records[-1].getMessage().endswith("retrying in 4m16s")


# -- the watch loop against a scripted registry -------------------------------------------------------

class Registry:
    """Answers discovery's requests for one token like etcd, from a list of registrations the test edits."""

    def __init__(self, size: str = "2") -> None:
        self.size = size
        self.nodes: list[dict[str, Any]] = []
        self.index = 10
        self.watch_replies: list[Reply] = []  # answers to recursive watches on the token, in order
        self.prefix = "/v2/keys/_etcd/registry/t"

    def add(self, name: str, url: str, key: str) -> dict[str, Any]:
        self.index += 1
        node = {"key": f"/_etcd/registry/t/{key}", "value": f"{name}={url}", "modifiedIndex": self.index,
                "createdIndex": self.index}
        self.nodes.append(node)
        return node

    def __call__(self, seen: Seen) -> Reply:
        parts = urlsplit(seen.target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path.removeprefix(self.prefix)
        if path == "/_config/size":
            node = {"key": "/_etcd/registry/t/_config/size", "value": self.size, "modifiedIndex": 10, "createdIndex": 10}
            return json_reply(200, json.dumps({"action": "get", "node": node}).encode(), self.index)
        if path == "" and query.get("wait") == "true":
            return self.watch_replies.pop(0)
        if path == "":
            node = {"key": "/_etcd/registry/t", "dir": True, "nodes": self.nodes, "modifiedIndex": 10, "createdIndex": 10}
            return json_reply(200, json.dumps({"action": "get", "node": node}).encode(), self.index)
        if seen.method == "PUT":
            value = parse_qs(seen.body.decode())["value"][0]
            name, url = value.split("=", 1)
            node = self.add(name, url, path.lstrip("/"))
            return json_reply(201, json.dumps({"action": "create", "node": node}).encode(), self.index)
        node = next(n for n in self.nodes if n["key"].endswith(path))
        return json_reply(200, json.dumps({"action": "create", "node": node}).encode(), self.index)


def event(action: str, key: str, index: int, value: str | None = None) -> Reply:
    node: dict[str, Any] = {"key": f"/_etcd/registry/t/{key}", "modifiedIndex": index, "createdIndex": index}
    if value is not None:
        node["value"] = value
    return json_reply(200, json.dumps({"action": action, "node": node}).encode(), index)


def test_wait_skips_hidden_deleted_and_known_keys_and_recovers_from_an_outdated_index(
        caplog: pytest.LogCaptureFixture) -> None:
    reg = Registry(size="3")
    outdated = b'{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"x","index":2000}'
    reg.watch_replies = [
        event("set", "_config/size", 12, "3"),  # hidden: the event history does return it
        event("delete", "0123", 13),
        json_reply(400, outdated, 2000),
        event("create", "b", 1201, "b=http://10.0.0.2:1"),
    ]

    def watched(target: str) -> bool:
        return "wait=true" in target and "recursive=true" in target

    def script(seen: Seen) -> Reply:
        if watched(seen.target) and len(reg.watch_replies) == 2:
            # The 401 comes next: pretend 1190 events went by, one of them another registration.
            reg.add("c", "http://10.0.0.3:1", "c")
            reg.index = 1200
        return reg(seen)

    with ScriptedHttp(script) as srv:
        sleeps: list[float] = []
        with caplog.at_level(logging.INFO, logger="pyetcd.discovery"):
            result = join_cluster(f"{srv.url}/v2/keys/_etcd/registry/t", 0xFF, "a=http://10.0.0.1:1",
                                  sleep=sleeps.append)
        targets = [s.target for s in srv.seen]
    assert result == "a=http://10.0.0.1:1,c=http://10.0.0.3:1,b=http://10.0.0.2:1"
    assert sleeps == []
    p = "/v2/keys/_etcd/registry/t"
    assert f"{p}/_config/size?quorum=false&recursive=false&sorted=false" in targets
    assert f"{p}/ff?prevExist=false" in targets  # lowercase hex, no zero padding
    assert f"{p}/ff?recursive=false&wait=true&waitIndex=11" in targets
    watches = [t for t in targets if watched(t)]
    assert watches == [f"{p}?recursive=true&wait=true&waitIndex={i}" for i in (12, 13, 14, 1201)]
    messages = [r.getMessage() for r in caplog.records]
    assert "found self ff in the cluster" in messages
    assert "found 1 peer(s), waiting for 2 more" in messages
    assert "found peer b in the cluster" in messages
    assert messages[-1] == "found 3 needed peer(s)"
    assert any("outdated" in m for m in messages)


def test_a_full_token_refuses_before_registering() -> None:
    reg = Registry(size="2")
    reg.add("x", "http://10.0.0.8:1", "x")
    reg.add("y", "http://10.0.0.9:1", "y")
    with ScriptedHttp(reg) as srv:
        with pytest.raises(DiscoveryError) as ei:
            join_cluster(f"{srv.url}/v2/keys/_etcd/registry/t", 1, "a=http://10.0.0.1:1", sleep=pytest.fail)
        assert ei.value.kind is Kind.FULL_CLUSTER
        assert not [s for s in srv.seen if s.method == "PUT"]
        assert get_cluster(f"{srv.url}/v2/keys/_etcd/registry/t", sleep=pytest.fail) == \
            "x=http://10.0.0.8:1,y=http://10.0.0.9:1"


@pytest.mark.parametrize("size", ["abc", "-1", " 3", "3.0", "", "0", "18446744073709551616", "٣"])
def test_bad_sizes(size: str) -> None:
    with ScriptedHttp(Registry(size=size)) as srv:
        with pytest.raises(DiscoveryError) as ei:
            join_cluster(f"{srv.url}/v2/keys/_etcd/registry/t", 1, "a=http://10.0.0.1:1", sleep=pytest.fail)
        assert ei.value.kind is Kind.BAD_SIZE
        assert str(ei.value) == "discovery: size key is bad"
        assert not [s for s in srv.seen if s.method == "PUT"]


def test_a_server_answering_every_watch_with_401_is_given_up_on() -> None:
    reg = Registry(size="2")
    outdated = json_reply(400, b'{"errorCode":401,"message":"The event in requested index is outdated and cleared",'
                               b'"cause":"x","index":1}', 1)

    def script(seen: Seen) -> Reply:
        return outdated if "recursive=true" in seen.target else reg(seen)

    with ScriptedHttp(script) as srv:
        with pytest.raises(DiscoveryError) as ei:
            join_cluster(f"{srv.url}/v2/keys/_etcd/registry/t", 1, "a=http://10.0.0.1:1", sleep=pytest.fail)
    assert ei.value.kind is Kind.REQUEST_FAILED
    assert str(ei.value).startswith("401: The event in requested index is outdated and cleared")
