"""Discovering members against a real backing keyspace: a pyetcd server and (parametrized) Debian's etcd 3.4
with --enable-v2. Members run as threads calling join_cluster, so races are real HTTP races."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyetcd.client import KeysClient
from pyetcd.discovery.join import (
    DiscoveryError,
    Kind,
    discovery_member_id,
    get_cluster,
    join_cluster,
    self_config,
)

from tests.support import kit
from tests.support.scripted_http import ScriptedHttp
from tests.support.servers import Server, etcd_available, etcd_server, free_port, pyetcd_server

JOIN_TIMEOUT_S = 20.0


@pytest.fixture(scope="module", params=["pyetcd", "etcd"])
def backing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One backing server per kind for the whole module; every test uses its own token."""
    if request.param == "etcd" and not etcd_available():
        pytest.skip("Debian's etcd is not installed")
    base = tmp_path_factory.mktemp(f"backing-{request.param}")
    make = pyetcd_server if request.param == "pyetcd" else etcd_server
    srv = make(base, name="backing").start()
    yield srv
    srv.stop()


def new_token(srv: Server, size: str | None) -> tuple[str, str]:
    """(token, discovery URL), with `_config/size` written as a self-hosted setup does."""
    token = uuid.uuid4().hex
    if size is not None:
        KeysClient([srv.url]).create(f"/_etcd/registry/{token}/_config/size", size)
    return token, f"{srv.url}/v2/keys/_etcd/registry/{token}"


def registrations(srv: Server, token: str) -> list[tuple[str, str]]:
    """(member-id key, value) under the token, in creation order."""
    nodes = KeysClient([srv.url]).get(f"/_etcd/registry/{token}").node.get("nodes", [])
    return [(n["key"].rsplit("/", 1)[1], n["value"]) for n in sorted(nodes, key=lambda n: n["createdIndex"])]


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"a live backing store should need no retry (asked to sleep {seconds}s)")


def member(durl: str, i: int, name: str | None = None, sleep: Callable[[float], None] = no_sleep) -> Callable[[], str]:
    peers = [f"http://127.0.0.1:{40000 + i}"]
    return lambda: join_cluster(durl, discovery_member_id(peers, durl), self_config(name or f"n{i}", peers),
                                sleep=sleep)


def run_together(calls: list[Callable[[], str]]) -> list[str | DiscoveryError]:
    """Start the calls at one barrier, each in its own thread; their results or DiscoveryErrors in order."""
    results: list[str | DiscoveryError | None] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except DiscoveryError as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
        assert not t.is_alive(), "a discovering member hung"
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def kind_of(result: str | DiscoveryError) -> Kind | None:
    return result.kind if isinstance(result, DiscoveryError) else None


def test_three_members_agree_in_creation_order_and_a_fourth_is_turned_away(backing: Server) -> None:
    token, durl = new_token(backing, "3")
    results = run_together([member(durl, i) for i in range(3)])
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    regs = registrations(backing, token)
    assert results[0] == ",".join(value for _, value in regs)
    assert sorted(value.split("=")[0] for _, value in regs) == ["n0", "n1", "n2"]
    assert {key for key, _ in regs} == {format(discovery_member_id([f"http://127.0.0.1:{40000 + i}"], durl), "x")
                                        for i in range(3)}

    with pytest.raises(DiscoveryError) as ei:
        member(durl, 3)()
    assert ei.value.kind is Kind.FULL_CLUSTER and str(ei.value) == "discovery: cluster is full"
    assert registrations(backing, token) == regs  # the fourth never registered
    assert get_cluster(durl, sleep=no_sleep) == results[0]


def test_five_racing_for_three_slots(backing: Server) -> None:
    token, durl = new_token(backing, "3")
    results = run_together([member(durl, i) for i in range(5)])
    won = [r for r in results if isinstance(r, str)]
    assert len(won) == 3 and len(set(won)) == 1
    assert [kind_of(r) for r in results].count(Kind.FULL_CLUSTER) == 2
    # Losers that passed the first check before the slots filled did register (etcd does the same);
    # the cluster is still the first three by creation order.
    regs = registrations(backing, token)
    assert 3 <= len(regs) <= 5
    assert won[0] == ",".join(value for _, value in regs[:3])


def test_a_member_that_registered_before_is_a_duplicate_id(backing: Server) -> None:
    token, durl = new_token(backing, "3")
    peers = ["http://127.0.0.1:40100"]
    mid = format(discovery_member_id(peers, durl), "x")
    KeysClient([backing.url]).create(f"/_etcd/registry/{token}/{mid}", self_config("m1", peers))
    with pytest.raises(DiscoveryError) as ei:
        join_cluster(durl, int(mid, 16), self_config("m1", peers), sleep=no_sleep)
    assert ei.value.kind is Kind.DUPLICATE_ID and str(ei.value) == "discovery: found duplicate id"
    assert ei.value.detail.startswith("105: Key already exists")


def test_two_members_sharing_a_name_both_fail(backing: Server) -> None:
    _, durl = new_token(backing, "2")
    results = run_together([member(durl, 0, name="same"), member(durl, 1, name="same")])
    assert [kind_of(r) for r in results] == [Kind.DUPLICATE_NAME, Kind.DUPLICATE_NAME]


def test_a_token_without_size_key(backing: Server) -> None:
    token, durl = new_token(backing, None)
    with pytest.raises(DiscoveryError) as ei:
        member(durl, 0)()
    assert ei.value.kind is Kind.SIZE_NOT_FOUND and str(ei.value) == "discovery: size key not found"
    assert ei.value.detail.startswith("100: Key not found (/_etcd/registry")


@pytest.mark.parametrize("size", ["abc", "-3"])
def test_a_bad_size_key(backing: Server, size: str) -> None:
    token, durl = new_token(backing, size)
    with pytest.raises(DiscoveryError) as ei:
        member(durl, 0)()
    assert ei.value.kind is Kind.BAD_SIZE and str(ei.value) == "discovery: size key is bad"
    assert registrations(backing, token) == []


def test_an_endpoint_that_is_not_etcd() -> None:
    page = (200, {"Content-Type": "text/html"}, b"<!doctype html><title>not etcd</title>")
    with ScriptedHttp(lambda seen: page) as srv:
        with pytest.raises(DiscoveryError) as ei:
            member(f"{srv.url}/v2/keys/_etcd/registry/{uuid.uuid4().hex}", 0)()
    assert ei.value.kind is Kind.BAD_ENDPOINT and str(ei.value) == "discovery: bad discovery endpoint"


def test_retries_until_the_backing_store_comes_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    srv = pyetcd_server(tmp_path, name="late", port=port)
    durl = f"{srv.url}/v2/keys/_etcd/registry/{uuid.uuid4().hex}"
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # instead of waiting, bring the store up
        sleeps.append(seconds)
        if srv.proc is None:
            srv.start()
            KeysClient([srv.url]).create(urlpath(durl) + "/_config/size", "1")

    try:
        with caplog.at_level(logging.INFO, logger="pyetcd.discovery"):
            assert member(durl, 0, sleep=sleep)() == "n0=http://127.0.0.1:40000"
    finally:
        srv.stop()
    assert sleeps == [2]
    assert f"cluster status check: error connecting to http://127.0.0.1:{port}, retrying in 2s" in caplog.messages


@pytest.mark.parametrize("kind", ["pyetcd", "etcd"])
def test_a_waiting_member_rides_out_a_backing_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      kind: str) -> None:
    if kind == "etcd" and not etcd_available():
        pytest.skip("Debian's etcd is not installed")
    srv = (pyetcd_server if kind == "pyetcd" else etcd_server)(tmp_path, name="restarting").start()
    sleeps: list[float] = []
    stopped, done = threading.Event(), threading.Event()
    lock = threading.Lock()  # start (member thread) and the final stop (test) never interleave

    def sleep(seconds: float) -> None:  # instead of waiting, restart the store (once the test stopped it)
        sleeps.append(seconds)
        assert stopped.wait(JOIN_TIMEOUT_S)
        with lock:
            if not done.is_set():
                srv.start()

    try:
        _, durl = new_token(srv, "2")
        with caplog.at_level(logging.INFO, logger="pyetcd.discovery"):
            first: list[str] = []
            waiter = threading.Thread(target=lambda: first.append(member(durl, 0, sleep=sleep)()), daemon=True)
            waiter.start()
            wait_for(lambda: "found 1 peer(s), waiting for 1 more" in caplog.messages)
            time.sleep(0.2)  # the watch request follows the log line
            srv.stop()
            stopped.set()
            wait_for(lambda: bool(sleeps) and srv.healthy())
            second = member(durl, 1)()
            waiter.join(JOIN_TIMEOUT_S)
    finally:
        with lock:
            done.set()
            srv.stop()
    assert first == [second] and second.startswith("n0=http://127.0.0.1:40000,n1=")
    assert sleeps == [2]
    assert f"waiting for other nodes: error connecting to http://127.0.0.1:{srv.port}, retrying in 2s" \
        in caplog.messages


def urlpath(url: str) -> str:
    return "/" + url.split("/", 3)[3].removeprefix("v2/keys/")


def wait_for(cond: Callable[[], bool], timeout_s: float = JOIN_TIMEOUT_S) -> None:
    assert kit.wait_for(cond, timeout_s, 0.02), "condition not reached"
