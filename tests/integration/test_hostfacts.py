"""$private_ipv4 / $public_ipv4 / $hostname from real netlink, inside a throwaway network namespace.

Each test gets its own namespace with veth interfaces, addresses and (unless asked not to) a default
route; nothing is sent anywhere: the addresses only exist inside the namespace. Needs root.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.support.servers import PYETCD_BIN, REPO, free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

_FACTS = """
import json, sys
from pyetcd.ops import hostfacts
facts = hostfacts.Facts(sys.argv[1])
out = {}
for name in hostfacts.VARIABLES:
    try:
        out[name] = facts.get(name)
    except hostfacts.HostFactsError as e:
        out[name] = "ERROR " + str(e)
print(json.dumps(out))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


MakeNs = Callable[..., str]
# How the errors list the namespace's interfaces (the kernel lists an interface's primaries first).
LISTING = ("interfaces: lo 127.0.0.1/8, p0 (no IPv4), d0 10.0.0.5/24 100.64.1.1/10 10.0.0.6/24, p1 (no IPv4), "
           "d1 198.51.100.7/24, p2 (no IPv4), d2 192.168.7.9/24")


@pytest.fixture
def make_netns() -> Iterator[MakeNs]:
    made: list[str] = []

    def make(default_route: bool = True) -> str:
        ns = f"pyetcd-hf-{os.getpid()}-{len(made)}"
        _ip("netns", "add", ns)
        made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        # Interfaces d0-d2, each paired with a bare veth peer p0-p2.
        # d0: the default route's interface (a primary, a secondary and a CGNAT address);
        # d1: a public-looking address; d2: another private one, for --advertise-interface.
        for dev, addrs in (("d0", ("10.0.0.5/24", "10.0.0.6/24", "100.64.1.1/10")),
                           ("d1", ("198.51.100.7/24",)), ("d2", ("192.168.7.9/24",))):
            peer = "p" + dev[1:]  # a veth pair, both ends in the namespace (no dummy module needed)
            _ip("-n", ns, "link", "add", dev, "type", "veth", "peer", "name", peer)
            _ip("-n", ns, "link", "set", peer, "up")
            _ip("-n", ns, "link", "set", dev, "up")
            for addr in addrs:
                _ip("-n", ns, "addr", "add", addr, "dev", dev)
        if default_route:
            _ip("-n", ns, "route", "add", "default", "via", "10.0.0.1", "dev", "d0")
        return ns

    yield make
    for ns in made:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60,
                          cwd=REPO)


def _facts(ns: str, interface: str = "") -> dict[str, str]:
    proc = _in_ns(ns, sys.executable, "-c", _FACTS, interface)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_private_public_and_hostname_found(make_netns: MakeNs) -> None:
    facts = _facts(make_netns())
    assert facts == {"private_ipv4": "10.0.0.5", "public_ipv4": "198.51.100.7",
                     "hostname": socket.gethostname()}


def test_advertise_interface_picks_that_interface(make_netns: MakeNs) -> None:
    assert _facts(make_netns(), "d2")["private_ipv4"] == "192.168.7.9"
    assert _facts(make_netns(default_route=False), "d1")["private_ipv4"] == "198.51.100.7"


def test_unknown_advertise_interface_lists_the_interfaces(make_netns: MakeNs) -> None:
    error = _facts(make_netns(), "eth9")["private_ipv4"]
    assert error.startswith("ERROR $private_ipv4: no interface named 'eth9'")
    assert error.endswith(LISTING)


def test_no_default_route_error_lists_every_interface(make_netns: MakeNs) -> None:
    facts = _facts(make_netns(default_route=False))
    assert facts["private_ipv4"] == f"ERROR $private_ipv4: no IPv4 default route; {LISTING}"
    assert facts["public_ipv4"] == "198.51.100.7"  # needs no route


def test_no_public_address_is_an_error(make_netns: MakeNs) -> None:
    ns = make_netns()
    _ip("-n", ns, "addr", "del", "198.51.100.7/24", "dev", "d1")
    error = _facts(ns)["public_ipv4"]
    assert error.startswith("ERROR $public_ipv4: no global IPv4 address outside the private ranges")
    assert "d1 (no IPv4)" in error


def test_pyetcd_print_config_shows_resolved_values(make_netns: MakeNs) -> None:
    port = free_port()
    proc = _in_ns(make_netns(), str(PYETCD_BIN), "--name", "$hostname",
                  "--advertise-client-urls", "http://$private_ipv4:2379,http://${public_ipv4}:2379",
                  "--initial-advertise-peer-urls", "http://$private_ipv4:2380",
                  "--listen-peer-urls", "http://$private_ipv4:2380",
                  "--listen-client-urls", f"http://127.0.0.1:{port}", "--print-config")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    host = socket.gethostname()
    assert f"name: {host}  # flag --name, from $hostname" in lines
    assert ("advertise-client-urls: 'http://10.0.0.5:2379,http://198.51.100.7:2379'  # flag "
            "--advertise-client-urls, from http://$private_ipv4:2379,http://${public_ipv4}:2379") in lines
    assert any(line.startswith("initial-advertise-peer-urls: 'http://10.0.0.5:2380'") for line in lines)
    assert any(line.startswith("listen-peer-urls: 'http://10.0.0.5:2380'") for line in lines)
    assert f"listen-client-urls: 'http://127.0.0.1:{port}'  # flag --listen-client-urls" in lines


def test_advertise_interface_from_env_and_yaml(make_netns: MakeNs, tmp_path) -> None:
    ns = make_netns()
    proc = _in_ns(ns, "env", "ETCD_ADVERTISE_INTERFACE=d2", str(PYETCD_BIN),
                  "--advertise-client-urls", "http://$private_ipv4:2379", "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert "advertise-client-urls: 'http://192.168.7.9:2379'" in proc.stdout
    assert "advertise-interface: d2  # env ETCD_ADVERTISE_INTERFACE" in proc.stdout
    conf = tmp_path / "pyetcd.yaml"
    conf.write_text("advertise-interface: d1\nadvertise-client-urls: http://$private_ipv4:2379\n")
    proc = _in_ns(ns, str(PYETCD_BIN), "--config-file", str(conf), "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert "advertise-client-urls: 'http://198.51.100.7:2379'" in proc.stdout


def test_pyetcd_without_default_route_exits_1_naming_the_setting(make_netns: MakeNs) -> None:
    proc = _in_ns(make_netns(default_route=False), str(PYETCD_BIN), "--name", "$hostname",
                  "--advertise-client-urls", "http://$private_ipv4:2379",
                  "--listen-client-urls", f"http://127.0.0.1:{free_port()}", "--print-config")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        "pyetcd: --advertise-client-urls 'http://$private_ipv4:2379': $private_ipv4: no IPv4 default route; "
        f"{LISTING} (from flag --advertise-client-urls)")


def test_unknown_variable_exits_1(make_netns: MakeNs) -> None:
    proc = _in_ns(make_netns(), str(PYETCD_BIN), "--name", "${host}", "--print-config")
    assert proc.returncode == 1
    assert "--name '${host}': unknown variable $host" in proc.stderr
    assert "(from flag --name)" in proc.stderr
