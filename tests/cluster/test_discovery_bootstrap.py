"""Three pyetcd members bootstrap from a discovery token, with nothing but `--discovery URL`.

The token lives on a real backing v2 store: another pyetcd, or Debian's etcd 3.4. A fourth member on the
full token stops with etcd's message (--discovery-fallback exit); a fifth becomes a v2 proxy (the default). The TLS variant runs the backing store on HTTPS with client
certificates and the members with mutual TLS on their peer and client URLs.
"""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyetcd.ops.certs import CertFiles, create_ca, issue

from tests.support.kit import wait_for
from tests.support.nodes import Node
from tests.support.servers import PYETCD_BIN, Server, etcd_available, etcd_server, free_port, pyetcd_server


@dataclass
class Tls:
    ca: CertFiles
    member: CertFiles  # server + client certificate for the members and the backing store

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.cert))
        ctx.load_cert_chain(str(self.member.cert), str(self.member.key))
        return ctx

    def flags(self) -> list[str]:
        c, k, ca = str(self.member.cert), str(self.member.key), str(self.ca.cert)
        return ["--cert-file", c, "--key-file", k, "--trusted-ca-file", ca, "--client-cert-auth",
                "--peer-cert-file", c, "--peer-key-file", k, "--peer-trusted-ca-file", ca, "--peer-client-cert-auth"]


def call(scheme: str, port: int, method: str, path: str, body: str | None = None, ctx: ssl.SSLContext | None = None,
         timeout: float = 3.0) -> tuple[int, dict]:  # type: ignore[type-arg]
    if scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data.startswith((b"{", b"[")) else {}
    finally:
        conn.close()


class Fleet:
    """pyetcd members started with --discovery; all killed by PID at teardown."""

    def __init__(self, base: Path, durl: str, tls: Tls | None) -> None:
        self.base, self.durl, self.tls = base, durl, tls
        self.scheme = "https" if tls else "http"
        self.nodes: list[Node] = []

    def launch(self, name: str, extra: list[str] | None = None) -> Node:
        node = Node(name, free_port(), free_port(), self.base / f"{name}.etcd")
        self.nodes.append(node)
        self.start(node, extra)
        return node

    def start(self, node: Node, extra: list[str] | None = None) -> None:
        c, p = f"{self.scheme}://127.0.0.1:{node.client_port}", f"{self.scheme}://127.0.0.1:{node.peer_port}"
        argv = [str(PYETCD_BIN), "--name", node.name, "--data-dir", str(node.data_dir), "--discovery", self.durl,
                "--listen-client-urls", c, "--advertise-client-urls", c,
                "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                "--heartbeat-interval", "50", "--election-timeout", "500",
                *(self.tls.flags() if self.tls else []), *(extra or [])]
        node.launch(argv)

    def get(self, node: Node, path: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        return call(self.scheme, node.client_port, "GET", path, ctx=self.tls.context() if self.tls else None)

    def put(self, node: Node, path: str, body: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        return call(self.scheme, node.client_port, "PUT", path, body, ctx=self.tls.context() if self.tls else None)

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.log()[-2500:]}" for n in self.nodes)

    def kill_all(self) -> None:
        for n in self.nodes:
            n.kill9()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    d = tmp_path_factory.mktemp("pki")
    ca = create_ca(d)
    return Tls(ca, issue(d, ca, "member", "peer", ["127.0.0.1", "localhost"]))


@pytest.fixture(params=["pyetcd", "etcd", "pyetcd-tls"])
def backing(request: pytest.FixtureRequest, tmp_path: Path, tls: Tls) -> Iterator[tuple[str, Tls | None]]:
    """(base URL of a backing v2 store, TLS material when the fleet runs with TLS)."""
    kind = request.param
    if kind == "etcd" and not etcd_available():
        pytest.skip("Debian's etcd-server is not installed")
    server: Server
    if kind == "etcd":
        server = etcd_server(tmp_path).start()
        base, fleet_tls = server.url, None
    elif kind == "pyetcd":
        server = pyetcd_server(tmp_path).start()
        base, fleet_tls = server.url, None
    else:
        port = free_port()
        url = f"https://127.0.0.1:{port}"
        server = pyetcd_server(tmp_path, port=port, extra=[
            "--listen-client-urls", url, "--advertise-client-urls", url, "--cert-file", str(tls.member.cert),
            "--key-file", str(tls.member.key), "--trusted-ca-file", str(tls.ca.cert), "--client-cert-auth"])
        # The later --listen/--advertise flags win; Server.start() only knows plain HTTP health checks.
        server.proc = subprocess.Popen(server.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: call("https", port, "GET", "/health", ctx=tls.context())[0] == 200, 15)
        base, fleet_tls = url, tls
    try:
        yield base, fleet_tls
    finally:
        server.stop()


def make_token(base: str, size: int, tls: Tls | None) -> str:
    token = uuid.uuid4().hex
    scheme, _, hostport = base.partition("://")
    port = int(hostport.rsplit(":", 1)[1])
    status, body = call(scheme, port, "PUT", f"/v2/keys/_etcd/registry/{token}/_config/size?prevExist=false",
                        f"value={size}", ctx=tls.context() if tls else None)
    assert status == 201, body
    return f"{base}/v2/keys/_etcd/registry/{token}"


def test_three_members_bootstrap_from_a_token(backing: tuple[str, Tls | None], tmp_path: Path) -> None:
    base, tls = backing
    fleet = Fleet(tmp_path, make_token(base, 3, tls), tls)
    try:
        nodes = [fleet.launch(f"d{i}") for i in range(1, 4)]
        assert wait_for(lambda: all(fleet.get(n, "/health")[0] == 200 for n in nodes), 40), fleet.logs()
        views: list[list[tuple[str, str, tuple[str, ...]]]] = []

        def agreed() -> bool:
            # Names appear once each member has published its attributes through Raft (as in etcd).
            views[:] = [sorted((m["id"], m["name"], tuple(m["peerURLs"])) for m in fleet.get(n, "/v2/members")[1]
                               ["members"]) for n in nodes]
            return views[0] == views[1] == views[2] and all(name for _, name, _ in views[0])

        assert wait_for(agreed, 10), views
        assert len(views[0]) == 3
        assert {name for _, name, _ in views[0]} == {"d1", "d2", "d3"}
        status, _ = fleet.put(nodes[0], "/v2/keys/boot", "value=by-token")
        assert status in (200, 201)
        assert wait_for(lambda: fleet.get(nodes[2], "/v2/keys/boot?quorum=true")[1]["node"]["value"] == "by-token", 10)
        for n in nodes:
            assert "found 3 needed peer(s)" in n.log(), n.log()

        # A fourth member on the full token stops with etcd's message (exit: nothing else to do).
        late = fleet.launch("d4", ["--discovery-fallback", "exit"])
        assert late.proc is not None and late.proc.wait(30) == 1
        assert "discovery: cluster is full" in late.log(), late.log()
        assert "please generate a new discovery token" in late.log()
        # The default fallback: a latecomer becomes a v2 proxy for the cluster registered at the token, on
        # its client URL (TLS alike: it dials the members with its client certificate).
        proxy = fleet.launch("d5")
        assert wait_for(lambda: fleet.get(proxy, "/v2/keys/boot")[1].get("node", {}).get("value") == "by-token",
                        20), proxy.log()
        assert "falling back to proxy" in proxy.log()
        assert fleet.put(proxy, "/v2/keys/via-proxy", "value=1")[0] == 201
        assert fleet.get(nodes[2], "/v2/keys/via-proxy?quorum=true")[1]["node"]["value"] == "1"
        assert (proxy.data_dir / "proxy" / "cluster").is_file() and not (proxy.data_dir / "member").exists()
        # It stays a proxy across restarts, from its kept cluster list: the token is not asked again.
        assert proxy.proc is not None
        proxy.proc.send_signal(signal.SIGTERM)
        assert proxy.proc.wait(15) == 0
        fleet.start(proxy, ["--discovery", "http://127.0.0.1:9/v2/keys/_etcd/registry/unreachable"])
        assert wait_for(lambda: fleet.get(proxy, "/v2/keys/via-proxy")[1].get("node", {}).get("value") == "1", 20), \
            proxy.log()
        assert "discovery token ignored since the proxy has already been initialized" in proxy.log()

        # A restarted member keeps its data and ignores the (now full) token.
        assert nodes[1].proc is not None
        nodes[1].proc.send_signal(signal.SIGTERM)
        nodes[1].proc.wait(15)
        fleet.start(nodes[1])
        assert wait_for(lambda: fleet.get(nodes[1], "/v2/keys/boot")[1]["node"]["value"] == "by-token", 20), \
            nodes[1].log()
        assert "discovery token ignored since a cluster has already been initialized" in nodes[1].log()
    finally:
        fleet.kill_all()
