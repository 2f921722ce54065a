"""The peer API's `GET /members` in etcd's wire form, and a joining member reading it in either form.

etcd 3.4 (seen on a real member):
[{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"a","clientURLs":["http://127.0.0.1:23791"]},
 {"id":14532487304791454299,"peerURLs":["http://127.0.0.1:23802"]}]   (the second added, not started)
pyetcd before this form wrote ids as hex strings (as /v2/members does); a joining member still reads that.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from pyetcd.cli.daemon import _ask_peers
from pyetcd.http.peer_api import PeerApi
from pyetcd.server.members import Member, MemberRegistry
from pyetcd.server.recovery import ClusterSpec

A = Member(13668033151171901709, "a", ["http://127.0.0.1:23801"], ["http://127.0.0.1:23791"])
B = Member(14532487304791454299, "", ["http://127.0.0.1:23802"], [])  # added, not started
ETCD_BODY = (b'[{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"a",'
             b'"clientURLs":["http://127.0.0.1:23791"]},{"id":14532487304791454299,"peerURLs":["http://127.0.0.1:23802"]}]\n')
OLD_PYETCD_BODY = (b'[{"id":"bdae9bbc11dd390d","name":"a","peerURLs":["http://127.0.0.1:23801"],'
                   b'"clientURLs":["http://127.0.0.1:23791"]},'
                   b'{"id":"c9adc43510f7f25b","name":"","peerURLs":["http://127.0.0.1:23802"],"clientURLs":[]}]\n')


class View:
    members = MemberRegistry.of([B, A])
    cluster_id_bytes = b"d1cfaf999eb97a2a"
    self_id = A.id


def test_peer_members_body_is_etcds() -> None:
    reply, msgs = PeerApi(View()).handle("GET", b"/members", [], b"")  # type: ignore[arg-type]
    assert (reply.status, reply.body, msgs) == (200, ETCD_BODY, [])
    assert reply.headers == [(b"Content-Type", b"application/json"), (b"X-Etcd-Cluster-Id", b"d1cfaf999eb97a2a")]


def test_peer_members_other_methods_405() -> None:
    reply, _ = PeerApi(View()).handle("POST", b"/members", [], b"")  # type: ignore[arg-type]
    assert (reply.status, reply.body, dict(reply.headers)[b"Allow"]) == (405, b"Method Not Allowed\n", b"GET")


def test_client_api_members_keep_hex_ids() -> None:
    assert A.to_json_obj()["id"] == "bdae9bbc11dd390d"


@pytest.mark.parametrize("body", [ETCD_BODY, OLD_PYETCD_BODY], ids=["etcd", "older-pyetcd"])
def test_from_peer_json_reads_both_forms(body: bytes) -> None:
    assert [Member.from_peer_json_obj(d) for d in json.loads(body)] == [A, B]


@pytest.mark.parametrize("bad", [[], "x", {"peerURLs": []}, {"id": True, "peerURLs": []}, {"id": 1.5},
                                 {"id": "zz"}, {"id": 0}, {"id": 1 << 64}, {"id": 1, "peerURLs": "u"},
                                 {"id": 1, "peerURLs": [], "name": 3}])
def test_from_peer_json_rejects_what_is_not_a_member(bad: object) -> None:
    with pytest.raises(ValueError):
        Member.from_peer_json_obj(bad)


@pytest.fixture
def peer_serving() -> Iterator[tuple[list[bytes], int]]:
    """A peer endpoint answering GET /members with the body in the returned list."""
    bodies: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = bodies[0]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Etcd-Cluster-Id", "d1cfaf999eb97a2a")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield bodies, srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


@pytest.mark.parametrize("body", [ETCD_BODY, OLD_PYETCD_BODY], ids=["etcd", "older-pyetcd"])
def test_joining_member_reads_both_forms(peer_serving: tuple[list[bytes], int], body: bytes) -> None:
    bodies, port = peer_serving
    bodies.append(body)
    existing = Member(A.id, "a", [f"http://127.0.0.1:{port}"], [])
    spec = ClusterSpec("b", B.id, [existing, Member(B.id, "b", B.peer_urls, [])], False, [], 10, 1)
    cid, members = _ask_peers(spec, None, 2.0, timeout_s=5.0)
    assert (cid, members) == (0xD1CFAF999EB97A2A, [A, B])
