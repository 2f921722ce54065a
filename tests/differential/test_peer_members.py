"""The peer API's `GET /members` against Debian's etcd 3.4: the same bytes once ids and URLs are normalised.

etcd writes this list as Go's membership.Member marshals it: ids as JSON numbers (not the hex strings of
the client API's /v2/members), fields in struct order (id, peerURLs, name, clientURLs), name and
clientURLs omitted for a member added but not started, members sorted by id, a trailing newline,
Content-Type application/json and the X-Etcd-Cluster-Id header. etcd's v2 proxy and joining members
decode it, so a difference breaks them (the proxy logs "could not unmarshal cluster response").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration._http import Resp, request
from tests.support.servers import PYETCD_BIN, Server, etcd_available, etcd_server, free_port, pyetcd_server

pytestmark = pytest.mark.skipif(not (etcd_available() and PYETCD_BIN.exists()),
                                reason="needs Debian's etcd 3.4 on PATH and pyetcd in .venv")


def peer_port(srv: Server) -> int:
    url = srv.argv[srv.argv.index("--listen-peer-urls") + 1]
    return int(url.rsplit(":", 1)[1])


def start_pair(base: Path) -> tuple[Server, Server]:
    ref = etcd_server(base / "ref", name="node")
    p = f"http://127.0.0.1:{free_port()}"
    py = pyetcd_server(base / "py", name="node", extra=["--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                                                        "--initial-cluster", f"node={p}"])
    for s in (ref, py):
        s.data_dir.parent.mkdir(parents=True, exist_ok=True)
    ref.start()
    try:
        py.start()
    except BaseException:
        ref.stop()
        raise
    return ref, py


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    ref, py = start_pair(tmp_path)
    try:
        yield ref, py
    finally:
        py.stop()
        ref.stop()


def normalise(srv: Server, resp: Resp) -> bytes:
    """The body with member ids (numbers) and URLs replaced by ID and URL, members put in the order of
    their normalised text. Checks first that the members come sorted by id, as etcd lists them, and that
    each id is the number whose hex /v2/members gives for the same member."""
    v2 = request(srv.port, "GET", "/v2/members").json()["members"]
    hex_by_peer = {tuple(m["peerURLs"]): m["id"] for m in v2}
    members = json.loads(resp.body)
    for m in members:
        assert isinstance(m["id"], int), f"{srv.kind}: id {m['id']!r} is not a JSON number"
        assert f"{m['id']:x}" == hex_by_peer[tuple(m["peerURLs"])], (srv.kind, m, v2)
    ids = [m["id"] for m in members]
    assert ids == sorted(ids), f"{srv.kind}: members not sorted by id: {ids}"
    frags = re.findall(rb"\{[^{}]*\}", resp.body)  # one per member (no nested objects)
    assert resp.body == b"[" + b",".join(frags) + b"]\n", resp.body
    norm = sorted(re.sub(rb"http://127\.0\.0\.1:\d+", b"URL", re.sub(rb'(?<="id":)\d+', b"ID", f)) for f in frags)
    return b"[" + b",".join(norm) + b"]\n"


def shape(srv: Server) -> tuple[int, str | None, bool, bytes]:
    resp = request(peer_port(srv), "GET", "/members")
    cid = resp.header("X-Etcd-Cluster-Id")
    v2_cid = request(srv.port, "GET", "/v2/members").header("X-Etcd-Cluster-Id")
    assert cid is not None and cid == v2_cid, (srv.kind, cid, v2_cid)
    return resp.status, resp.header("Content-Type"), resp.body.endswith(b"]\n"), normalise(srv, resp)


def test_peer_members_match_etcd(pair: tuple[Server, Server]) -> None:
    ref, py = pair
    got_ref, got_py = shape(ref), shape(py)
    assert got_ref == (200, "application/json", True,
                       b'[{"id":ID,"peerURLs":["URL"],"name":"node","clientURLs":["URL"]}]\n')
    assert got_py == got_ref


def test_peer_members_with_an_unstarted_member_match_etcd(pair: tuple[Server, Server]) -> None:
    """A member added but not started has no name or client URLs yet: etcd leaves both fields out."""
    ref, py = pair
    for srv in pair:
        body = json.dumps({"peerURLs": [f"http://127.0.0.1:{free_port()}"]}).encode()
        r = request(srv.port, "POST", "/v2/members", body=body, headers=[("Content-Type", "application/json")])
        assert r.status == 201, (srv.kind, r.status, r.body)
    got_ref, got_py = shape(ref), shape(py)
    assert got_ref == (200, "application/json", True, b'[{"id":ID,"peerURLs":["URL"],"name":"node",'
                       b'"clientURLs":["URL"]},{"id":ID,"peerURLs":["URL"]}]\n')
    assert got_py == got_ref


def test_peer_members_other_methods_match_etcd(pair: tuple[Server, Server]) -> None:
    got = []
    for srv in pair:
        r = request(peer_port(srv), "POST", "/members", body=b"")
        got.append((r.status, r.header("Allow"), r.body))
    assert got[0] == (405, "GET", b"Method Not Allowed\n")
    assert got[1] == got[0]
