"""The proxy's pure parts: the director's endpoint rules, the request/answer rewriting, the kept cluster file."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from pyetcd.proxy import forwarding
from pyetcd.proxy.director import EMPTY_REFRESH_S, Director
from pyetcd.storage.proxy_cluster import read_peer_urls, write_peer_urls

URLS = ["http://10.0.0.1:2379", "http://10.0.0.2:2379", "https://10.0.0.3:2379"]


def test_failed_endpoint_is_held_out_for_the_failure_wait() -> None:
    d = Director(5.0, 30.0, random.Random(1))
    d.set_urls(URLS)
    first = d.available(0.0)[0]
    d.failed(first, 10.0)
    assert first not in d.available(14.9) and len(d.available(14.9)) == 2
    assert first in d.available(15.0)


def test_refresh_shuffles_and_makes_everyone_available() -> None:
    orders = set()
    for seed in range(20):
        d = Director(5.0, 30.0, random.Random(seed))
        d.set_urls(URLS)
        d.failed(d.endpoints[0], 0.0)
        d.set_urls(URLS)
        assert len(d.available(0.0)) == 3
        orders.add(tuple(e.url for e in d.endpoints))
    assert len(orders) > 1


def test_refresh_every_second_while_none_is_available() -> None:
    d = Director(5.0, 30.0, random.Random(0))
    assert d.next_refresh_in(0.0) == EMPTY_REFRESH_S
    d.set_urls(URLS)
    assert d.next_refresh_in(0.0) == 30.0
    assert Director(5.0, 2.0, random.Random(0)).next_refresh_in(0.0) == 2.0  # shorter intervals are kept


def test_bad_urls_are_skipped() -> None:
    d = Director(5.0, 30.0, random.Random(0))
    d.set_urls(["ftp://x", "http://10.0.0.1:2379", "nonsense"])
    assert [e.url for e in d.endpoints] == ["http://10.0.0.1:2379"]
    assert (d.endpoints[0].host, d.endpoints[0].port, d.endpoints[0].scheme) == ("10.0.0.1", 2379, "http")


def test_request_headers_drop_hop_by_hop_and_chain_forwarded_for() -> None:
    headers = [(b"Host", b"proxy:2379"), (b"Connection", b"close"), (b"TE", b"trailers"),
               (b"X-Forwarded-For", b"1.2.3.4"), (b"Content-Length", b"7"), (b"Accept", b"*/*")]
    out = forwarding.upstream_headers(headers, b"value=1", "PUT", "10.9.8.7", b"m:2379")
    assert out == [(b"Host", b"proxy:2379"), (b"Accept", b"*/*"), (b"X-Forwarded-For", b"1.2.3.4, 10.9.8.7"),
                   (b"Content-Length", b"7")]


def test_request_without_host_or_body() -> None:
    out = forwarding.upstream_headers([], b"", "GET", "", b"m:2379")
    assert out == [(b"Host", b"m:2379")]
    put = forwarding.upstream_headers([(b"Host", b"h")], b"", "PUT", "", b"m")
    assert (b"Content-Length", b"0") in put


def test_answer_headers_drop_hop_by_hop_only() -> None:
    headers = [(b"Content-Type", b"application/json"), (b"Transfer-Encoding", b"chunked"),
               (b"X-Etcd-Index", b"7"), (b"Connection", b"keep-alive"), (b"Date", b"x")]
    assert forwarding.downstream_headers(headers) == [(b"Content-Type", b"application/json"),
                                                      (b"X-Etcd-Index", b"7"), (b"Date", b"x")]


def test_own_answers_in_etcds_words() -> None:
    assert forwarding.zero_endpoints().body == b'{"message":"httpproxy: zero endpoints currently available"}'
    assert forwarding.no_response(3).status == 502
    assert json.loads(forwarding.no_response(3).body) == {
        "message": "httpproxy: unable to get response from 3 endpoint(s)"}
    r = forwarding.config("GET", URLS[:1])
    assert r.body == b'{"endpoints":["http://10.0.0.1:2379"]}\n'
    assert forwarding.config("PUT", []).status == 405


def test_cluster_urls_from_the_peer_members_answer() -> None:
    body = json.dumps([{"id": 1, "peerURLs": ["http://b:2380"], "name": "b", "clientURLs": ["http://b:2379"]},
                       {"id": 2, "peerURLs": ["http://a:2380"]}]).encode()  # not started: no client URLs
    assert forwarding.cluster_urls(body) == (["http://b:2379"], ["http://a:2380", "http://b:2380"])
    with pytest.raises(ValueError):
        forwarding.cluster_urls(b'{"not": "a list"}')


def test_cluster_file_round_trip_in_etcds_format(tmp_path: Path) -> None:
    assert read_peer_urls(tmp_path) is None
    write_peer_urls(tmp_path, URLS)
    assert json.loads((tmp_path / "proxy" / "cluster").read_text()) == {"PeerURLs": URLS}
    assert read_peer_urls(tmp_path) == URLS
    assert (tmp_path / "proxy" / "cluster").stat().st_mode & 0o777 == 0o600
    (tmp_path / "proxy" / "cluster").write_text("{broken")
    with pytest.raises(ValueError, match="proxy/cluster"):
        read_peer_urls(tmp_path)
