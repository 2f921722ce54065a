"""`pyetcdctl import --from URL` copying a real etcd 3.4 (`--enable-v2`) into a fresh pyetcd member.

The source is filled once per module: nested and empty directories, hidden keys (under the root, under a
visible directory, a hidden directory, hidden inside hidden), in-order keys, keys and a directory with a
TTL, odd and non-ASCII names, an empty and a large value, and one hidden key (/_old) pushed out of etcd's
1000-event history, so that only --hidden can find it. Trees are compared node by node (name, dir flag,
value, TTL within a few seconds); hidden nodes, which no listing shows, are read by name on both sides.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyetcd.client.tls import client_context
from pyetcd.client.v2 import EtcdError, KeysClient
from pyetcd.ops.certs import create_ca, issue

from tests.integration.conftest import MakeServer
from tests.support import kit
from tests.support.servers import PYETCD_BIN, Server, etcd_available, etcd_server, free_port

TLS_SANS = ["127.0.0.1", "localhost"]

pytestmark = pytest.mark.skipif(not (etcd_available() and PYETCD_BIN.exists()),
                                reason="needs Debian's etcd and pyetcd installed in the venv")

HIDDEN = ["/_hidden", "/a/_secret", "/a/_secret/_deeper", "/_top", "/_top/_nested", "/vis/_h2", "/_old"]
ODD = ["/odd/ü ñ 名前", "/odd/with space", "/odd/per%cent", "/odd/q?mark", "/odd/hash#x", "/odd/amp&eq=1",
       "/odd/plus+sign", "/odd/semi;colon:", "/odd/trailing space ", "/odd/'quote\""]
LARGE = ("0123456789abcdef-é€" * 40_000)[:600_000]
TTL_KEY, TTL_DIR = 300, 200


def pyetcdctl(endpoint: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyetcd.cli.ctl", "--endpoints", endpoint, *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=kit.clean_env("ETCD", "PYETCD"))


def fill(url: str) -> list[str]:
    """The source's keyspace; the in-order keys' names, in order."""
    c = KeysClient([url], timeout=10)
    c.set("/_old", "pushed out of the history")
    with ThreadPoolExecutor(16) as pool:  # more than 1000 later changes: /_old leaves the event history
        list(pool.map(lambda i: c.set(f"/churn/{i % 10}", str(i)), range(1010)))
    c.set("/a/b/c", "deep")
    c.set("/a/x", "1")
    c.set("/empty", dir=True)
    c.set("/a/emptier", dir=True)
    c.set("/_hidden", "h")
    c.set("/a/_secret/inner", "s")
    c.set("/a/_secret/_deeper", "hidden in hidden")
    c.set("/_top/_nested", "n")
    c.set("/_top/visible", "under a hidden dir")
    c.set("/vis/_h2", "v")
    c.set("/vis/shown", "w")
    queue = [c.create_in_order("/queue", f"job {i}").node["key"] for i in range(3)]
    c.set("/ttl/key", "expiring", ttl=TTL_KEY)
    c.set("/ttldir", dir=True, ttl=TTL_DIR)
    c.set("/ttldir/k", "in a dir with a TTL")
    c.set("/emptyval", "")
    c.set("/multi", "line one\nline two\t\u2028 <&>")
    c.set("/large", LARGE)
    for i, key in enumerate(ODD):
        c.set(key, f"odd {i} ✓")
    return queue


def _flatten(node: dict[str, Any], out: dict[str, tuple[bool, str | None, int]]) -> None:
    key = node.get("key")
    if key:
        out[key] = (node.get("dir") is True, node.get("value"), int(node.get("ttl") or 0))
    for child in node.get("nodes") or ():
        _flatten(child, out)


def tree(url: str, hidden: list[str] = HIDDEN) -> dict[str, tuple[bool, str | None, int]]:
    """Every node of the listing, plus the named hidden nodes (and what is listed below them)."""
    c = KeysClient([url], timeout=10)
    out: dict[str, tuple[bool, str | None, int]] = {}
    _flatten(c.get("/", recursive=True, sorted=True).node, out)
    for key in hidden:
        try:
            _flatten(c.get(key, recursive=True, sorted=True).node, out)
        except EtcdError as e:
            assert e.error_code == 100, e
    return out


def same(src: dict[str, tuple[bool, str | None, int]], dst: dict[str, tuple[bool, str | None, int]]) -> None:
    assert sorted(src) == sorted(dst)
    for key, (is_dir, value, ttl) in src.items():
        d_dir, d_value, d_ttl = dst[key]
        assert (d_dir, d_value) == (is_dir, value), key
        assert (ttl == 0) == (d_ttl == 0) and abs(ttl - d_ttl) <= 3, (key, ttl, d_ttl)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[str]]]:
    srv = etcd_server(tmp_path_factory.mktemp("import-src"), name="src").start()
    try:
        yield srv, fill(srv.url)
    finally:
        srv.stop()


def test_etcd_lists_no_hidden_node_and_no_internal_namespace(source: tuple[Server, list[str]]) -> None:
    """What the design rests on, checked on etcd 3.4 itself."""
    srv, _ = source
    listed = tree(srv.url, hidden=[])
    assert not [k for k in listed if "/_" in k]
    assert "/a/b/c" in listed and "/0" not in listed and "/1" not in listed and "/2" not in listed
    assert KeysClient([srv.url]).get("/_hidden").node["value"] == "h"  # there all the same


def test_import_copies_the_keyspace(source: tuple[Server, list[str]], make_server: MakeServer) -> None:
    srv, queue = source
    dst = make_server().start()
    r = pyetcdctl(dst.url, "import", "--from", srv.url)
    assert r.returncode == 0, (r.stdout, r.stderr)
    src_tree, dst_tree = tree(srv.url), tree(dst.url)
    # /_old left the history and was not named: not copied. The other hidden nodes were found in it.
    assert "/_old" in src_tree and "/_old" not in dst_tree
    same({k: v for k, v in src_tree.items() if k != "/_old"}, dst_tree)
    assert dst_tree["/a/_secret/_deeper"] == (False, "hidden in hidden", 0)
    assert dst_tree["/empty"] == (True, None, 0) and dst_tree["/a/emptier"] == (True, None, 0)
    assert dst_tree["/large"][1] == LARGE and dst_tree["/emptyval"][1] == ""
    assert abs(dst_tree["/ttl/key"][2] - TTL_KEY) <= 5 and abs(dst_tree["/ttldir"][2] - TTL_DIR) <= 5
    listed = KeysClient([dst.url]).get("/queue", sorted=True).node["nodes"]
    assert [n["key"] for n in listed] == queue and [n["value"] for n in listed] == ["job 0", "job 1", "job 2"]
    # the summary
    out = r.stdout
    assert "; 6 hidden subtrees found in its event history)" in out, out
    keys = sum(1 for k, (d, _, _) in dst_tree.items() if not d)
    dirs = sum(1 for k, (d, _, _) in dst_tree.items() if d)
    assert f"copied {keys} keys (" in out and f"and {dirs} directories (2 empty) to " in out, out
    assert "8 hidden, 3 in-order; with a TTL: 1 key, 1 directory; 0 expired" in out, out
    assert "note: in-order key names go up to " in out, out  # the names are above the fresh target's index
    # a second import (dry) still reads everything; with --hidden the old hidden key is found
    r = pyetcdctl(dst.url, "import", "--dry-run", "--from", srv.url, "--hidden", "/_old", "--hidden", "/_nope")
    assert r.returncode == 0, r.stderr
    assert "/_old (25 bytes)\n" in r.stdout and "1 named with --hidden" in r.stdout
    assert "import: --hidden /_nope: not in the source\n" in r.stderr


def test_refuses_a_target_with_keys_unless_force(source: tuple[Server, list[str]], make_server: MakeServer) -> None:
    srv, _ = source
    dst = make_server().start()
    target = KeysClient([dst.url])
    target.set("/a/x", "mine")
    target.set("/only/here", "kept")
    r = pyetcdctl(dst.url, "import", "--from", srv.url)
    assert r.returncode == 1 and "already holds keys (/a, /only); nothing copied" in r.stderr, r.stderr
    assert not r.stdout  # refused before the source was read
    assert tree(dst.url, hidden=[]) == {"/a": (True, None, 0), "/a/x": (False, "mine", 0),
                                        "/only": (True, None, 0), "/only/here": (False, "kept", 0)}
    target.set("/_hidden", "target's own", ttl=1000)
    r = pyetcdctl(dst.url, "import", "--force", "--from", srv.url, "--hidden", "/_old")
    assert r.returncode == 0, (r.stdout, r.stderr)
    dst_tree = tree(dst.url)
    assert dst_tree.pop("/only") == (True, None, 0) and dst_tree.pop("/only/here") == (False, "kept", 0)
    same(tree(srv.url), dst_tree)  # /a/x and /_hidden overwritten, TTL included; /_old found by name


def test_conflicts_are_named_and_fail(source: tuple[Server, list[str]], make_server: MakeServer) -> None:
    srv, _ = source
    dst = make_server().start()
    KeysClient([dst.url]).set("/empty", "a key where the source has a directory")
    KeysClient([dst.url]).set("/large", dir=True)
    r = pyetcdctl(dst.url, "import", "--force", "--from", srv.url)
    assert r.returncode == 1, r.stdout
    assert "import: /empty: a key in the target, a directory in the source\n" in r.stderr, r.stderr
    assert "import: /large: 102: Not a file (/large)" in r.stderr, r.stderr
    assert "import: 2 nodes not copied: /empty, /large\n" in r.stderr, r.stderr
    assert KeysClient([dst.url]).get("/a/b/c").node["value"] == "deep"  # the rest went on


def test_bad_sources(make_server: MakeServer) -> None:
    dst = make_server().start()
    dead = f"http://127.0.0.1:{free_port()}"
    r = pyetcdctl(dst.url, "import", "--from", dead)
    assert r.returncode == 1 and r.stderr.startswith(f"import: cannot read the source {dead}: client: etcd "
                                                     "cluster is unavailable or misconfigured"), r.stderr
    assert "connection refused" in r.stderr
    for bad, why in (("ftp://127.0.0.1:1", "want http://host:port"), ("http://127.0.0.1:x", "bad port"),
                     ("", "--from URL required")):
        r = pyetcdctl(dst.url, "import", "--from", bad)
        assert r.returncode == 1 and why in r.stderr and not r.stdout, (bad, r.stderr)
    r = pyetcdctl(dst.url, "import", "--from", dst.url + "/not-etcd/")  # an answer that is not etcd's JSON
    assert r.returncode == 1 and "cannot read the source" in r.stderr, r.stderr
    assert KeysClient([dst.url]).get("/").node.get("nodes") in (None, [])


def test_source_credentials(tmp_path: Path, make_server: MakeServer) -> None:
    """--from-username against etcd with v2 auth on and the guest role stripped."""
    src = etcd_server(tmp_path, name="authsrc").start()
    try:
        c = KeysClient([src.url])
        c.set("/app/conf", "secret")
        root = KeysClient([src.url], username="root", password="rootpw")
        c.request("PUT", "/v2/auth/users/root", body=b'{"user":"root","password":"rootpw"}',
                  content_type="application/json")
        status, _, body = c.request("PUT", "/v2/auth/enable")
        assert status == 200, body
        status, _, body = root.request("PUT", "/v2/auth/roles/guest", content_type="application/json",
                                       body=b'{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}')
        assert status == 200, body
        dst = make_server().start()
        r = pyetcdctl(dst.url, "import", "--from", src.url)
        assert r.returncode == 1 and "cannot read the source" in r.stderr, r.stderr
        r = pyetcdctl(dst.url, "import", "--from", src.url, "--from-username", "root:rootpw")
        assert r.returncode == 0, r.stderr
        assert KeysClient([dst.url]).get("/app/conf").node["value"] == "secret"
    finally:
        src.stop()


@dataclass
class _TlsEtcd(Server):
    tls: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            KeysClient([self.url], ssl_context=self.tls, timeout=1).request("GET", "/health")
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False


def test_source_over_tls_with_a_client_certificate(tmp_path: Path, make_server: MakeServer) -> None:
    """--from-ca-file/--from-cert-file/--from-key-file against etcd serving https with --client-cert-auth."""
    ca = create_ca(tmp_path)
    server, client = issue(tmp_path, ca, "server", "server", TLS_SANS), issue(tmp_path, ca, "client", "client")
    port, peer = free_port(), free_port()
    url, p = f"https://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    argv = [shutil.which("etcd") or "etcd", "--name", "tls", "--data-dir", str(tmp_path / "tls.etcd"),
            "--enable-v2=true", "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", p, "--initial-advertise-peer-urls", p, "--initial-cluster", f"tls={p}",
            "--cert-file", str(server.cert), "--key-file", str(server.key), "--client-cert-auth",
            "--trusted-ca-file", str(ca.cert)]
    tls = client_context(str(ca.cert), str(client.cert), str(client.key))
    src = _TlsEtcd("etcd", port, tmp_path / "tls.etcd", argv, tls=tls)
    src.start()
    try:
        KeysClient([url], ssl_context=tls).set("/over/tls", "yes")
        dst = make_server().start()
        r = pyetcdctl(dst.url, "import", "--from", url, "--from-ca-file", str(ca.cert))  # no client certificate
        assert r.returncode == 1 and "cannot read the source" in r.stderr and "tls" in r.stderr, r.stderr
        r = pyetcdctl(dst.url, "import", "--from", url, "--from-cert-file", str(client.cert))
        assert r.returncode == 1 and "--from-cert-file and --from-key-file must both be given" in r.stderr
        r = pyetcdctl(dst.url, "import", "--from", url, "--from-ca-file", str(ca.cert),
                      "--from-cert-file", str(client.cert), "--from-key-file", str(client.key))
        assert r.returncode == 0, r.stderr
        assert KeysClient([dst.url]).get("/over/tls").node["value"] == "yes"
    finally:
        src.stop()
