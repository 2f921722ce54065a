"""DNS SRV bootstrap over the real DNS protocol: a small authoritative server on a loopback UDP port
answers SRV and A queries (built and parsed with dnspython), and pyetcd members are pointed at it with
PYETCD_DNS_NAMESERVER."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from pyetcd.discovery.srv import DnsResolver, SrvError, srv_initial_cluster

from tests.integration._http import request
from tests.support.kit import clean_env, wait_for
from tests.support.nodes import Node
from tests.support.servers import PYETCD_BIN, free_port

DOMAIN = "example.test"


class DnsServer:
    """Answers from `records`: {(name, type): [rdata text]}; NXDOMAIN for anything else."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = records
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            q = query.question[0]
            name, rdtype = q.name.to_text().rstrip(".").lower(), dns.rdatatype.to_text(q.rdtype)
            self.queries.append(f"{name} {rdtype}")
            answers = self.records.get((name, rdtype))
            if answers:
                reply.answer.append(dns.rrset.from_text_list(q.name, 60, "IN", rdtype, answers))
            elif not any(n == name for n, _ in self.records):
                reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.flags |= dns.flags.AA
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def peer_ports() -> list[int]:
    return [free_port() for _ in range(3)]


@pytest.fixture
def dns_server(peer_ports: list[int]) -> Iterator[DnsServer]:
    server = DnsServer({
        (f"_etcd-server._tcp.{DOMAIN}", "SRV"): [f"0 {10 - i} {p} localhost." for i, p in enumerate(peer_ports)],
        ("localhost", "A"): ["127.0.0.1"],
    })
    yield server
    server.close()


def test_initial_cluster_from_srv_records(dns_server: DnsServer, peer_ports: list[int]) -> None:
    resolver = DnsResolver(f"127.0.0.1:{dns_server.port}")
    mine = f"http://127.0.0.1:{peer_ports[1]}"
    text = srv_initial_cluster(DOMAIN, "", "n2", [mine], resolver)
    assert text == (f"0=http://localhost:{peer_ports[0]},n2=http://localhost:{peer_ports[1]},"
                    f"1=http://localhost:{peer_ports[2]}")
    assert f"_etcd-server-ssl._tcp.{DOMAIN} SRV" in dns_server.queries  # https records are asked for first
    with pytest.raises(SrvError, match='cannot find local etcd member "n9" in SRV records'):
        srv_initial_cluster(DOMAIN, "", "n9", [f"http://127.0.0.1:{free_port()}"], resolver)
    with pytest.raises(SrvError, match="no SRV records for"):
        srv_initial_cluster(DOMAIN, "other", "n2", [mine], resolver)
    with pytest.raises(SrvError, match="scheme mismatch"):
        srv_initial_cluster(DOMAIN, "", "n2", [f"https://127.0.0.1:{peer_ports[1]}"], resolver)


def test_three_members_bootstrap_from_srv_records(dns_server: DnsServer, peer_ports: list[int],
                                                  tmp_path: Path) -> None:
    env = clean_env(add={"PYETCD_DNS_NAMESERVER": f"127.0.0.1:{dns_server.port}"})
    nodes = [Node(f"s{i + 1}", free_port(), port, tmp_path / f"s{i + 1}.etcd") for i, port in enumerate(peer_ports)]
    try:
        for n in nodes:
            c, p = f"http://127.0.0.1:{n.client_port}", f"http://127.0.0.1:{n.peer_port}"
            argv = [str(PYETCD_BIN), "--name", n.name, "--data-dir", str(n.data_dir), "--discovery-srv", DOMAIN,
                    "--listen-client-urls", c, "--advertise-client-urls", c, "--listen-peer-urls", p,
                    "--initial-advertise-peer-urls", p, "--heartbeat-interval", "50", "--election-timeout", "500"]
            n.launch(argv, env)
        assert wait_for(lambda: all(request(n.client_port, "GET", "/health", timeout=1).status == 200
                                    for n in nodes), 30), "\n".join(n.log()[-1500:] for n in nodes)
        members = request(nodes[0].client_port, "GET", "/v2/members").json()["members"]
        assert sorted(u for m in members for u in m["peerURLs"]) == sorted(f"http://localhost:{p}" for p in peer_ports)
        assert request(nodes[0].client_port, "PUT", "/v2/keys/srv", form={"value": "ok"}).status == 201
        assert request(nodes[2].client_port, "GET", "/v2/keys/srv?quorum=true").json()["node"]["value"] == "ok"
        assert "initial cluster from SRV records of example.test" in nodes[1].log()
    finally:
        for n in nodes:
            n.kill9()
