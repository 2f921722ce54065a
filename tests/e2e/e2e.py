#!/usr/bin/python3
"""End-to-end test of the pyetcd .deb under a real systemd (`make e2e`; root; standard library + pyroute2).

    /usr/bin/python3 tests/e2e/e2e.py [--deb dist/pyetcd_X_all.deb] [--nodes 3] [--user-data FILE] [--keep]

1. Host set-up: installs what is missing (systemd-container, debootstrap, curl, the Python modules the
   token store needs, python3-pyroute2 for the network), builds or reuses the container tree
   (tests/e2e/build-rootfs.sh) and takes the newest dist/pyetcd_*_all.deb (running `make deb` when there
   is none). A second .deb with a higher version is made from it for the upgrade check.
2. Network, built with pyroute2 (netlink; no `ip` commands): a hub namespace holding a bridge
   (10.235.0.254/24) and one namespace per member with a veth `eth0` (10.235.0.N/24, default route via
   the hub address, so $private_ipv4 resolves) on that bridge. Nothing is added to the host's namespace.
3. A discovery token store (pyetcd from the .deb, run by the host's python3) listens on the bridge in the
   hub namespace; the token is `_etcd/registry/<uuid>` with `_config/size` = the member count.
4. Each member is a systemd-nspawn container (systemd as PID 1, journald, cloud-init) booted from the
   shared tree with --volatile=overlay in its own namespace, seeded (NoCloud) with the fleet's one
   user-data (cloud-config/render.py --ca-dir: byte-identical for every host; only the meta-data's
   instance-id and local-hostname differ): TLS for clients and peers with certificates each host issues
   itself at first boot, the .deb from /mnt/dist (bind-mounted read-only).
5. Checks: cloud-init done and `systemctl is-active pyetcd` everywhere; a write on one member read on
   the others; `journalctl -u pyetcd -o json` carries PYETCD_MEMBER/_MEMBER_ID/_TERM/_ROLE; the leader's
   `systemctl stop pyetcd` leaves a cluster that takes writes (and the member catches up after a
   start); a SIGSTOPped member is restarted by the watchdog with its data; a rolling package upgrade
   keeps every member's data and identity.

Always cleans up (containers, token store, namespaces), also on failure or Ctrl-C; on failure the
diagnostics (journal, cloud-init log, unit status of each member) are kept in the work directory, with
each container's whole journal (journal-NAME/, `journalctl -D`), also of a container already gone.
The last line printed is the result: `e2e: PASS (...)` or `e2e: FAIL <check>: <why>`; exit 0 or 1.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RENDER = REPO / "cloud-config" / "render.py"
BUILD_ROOTFS = Path(__file__).resolve().with_name("build-rootfs.sh")
SUBNET = "10.235.0"
TOKEN_PORT = 2379
NS_PREFIX = "pyetcd-e2e"
JOURNAL_FIELDS = ("PYETCD_MEMBER", "PYETCD_MEMBER_ID", "PYETCD_TERM", "PYETCD_ROLE")
# Debian tools must not see the pyenv python3 that may be first on root's PATH.
SYS_ENV = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin", DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
T0 = time.monotonic()


class CheckFailed(Exception):
    def __init__(self, check: str, why: str) -> None:
        super().__init__(f"{check}: {why}")
        self.check = check
        self.why = why


def say(text: str) -> None:
    """A progress line: UTC wall-clock time (to compare with the containers' logs) and seconds since start."""
    now = time.time()
    wall = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
    print(f"  [{wall} {time.monotonic() - T0:6.1f}s] {text}", flush=True)


def run(cmd: list[str], *, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or SYS_ENV,
                              input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
    if check and proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


def wait_for(what: str, probe, timeout: float, interval: float = 0.5):
    """Poll probe() until it returns a true value; raise TimeoutError with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = probe()
        except (RuntimeError, OSError, ValueError) as e:
            last = e
            value = None
        else:
            value = last
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s (last: {str(last)[-300:]})")
        time.sleep(interval)


# --- host -------------------------------------------------------------------------------------------

def install_host_deps() -> None:
    need = []
    for tool, pkg in (("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap"), ("ip", "iproute2"),
                      ("curl", "curl"), ("nsenter", "util-linux"), ("dpkg-deb", "dpkg"), ("make", "make")):
        if shutil.which(tool, path=SYS_ENV["PATH"]) is None:
            need.append(pkg)
    # The token store and `pyetcd certs` run the packaged pyetcd on these; the harness builds the network
    # with pyroute2 (imported only after this).
    probe = run(["/usr/bin/python3", "-c", "import h11, yaml, cryptography, pyroute2"], check=False)
    if probe.returncode != 0:
        need += ["python3-h11", "python3-yaml", "python3-cryptography", "python3-pyroute2"]
    if need:
        say(f"installing host packages: {' '.join(need)}")
        run(["apt-get", "update", "-qq"], timeout=600)
        run(["apt-get", "install", "-y", "-qq", *need], timeout=900)
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        raise CheckFailed("setup", f"{sys.executable} has no pyroute2 (run the harness with /usr/bin/python3, "
                          "which gets Debian's python3-pyroute2, or with the repo's .venv/bin/python)") from None


def find_deb(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit).resolve()

    def newest() -> list[str]:
        return sorted(glob.glob(str(REPO / "dist" / "pyetcd_*_all.deb")), key=os.path.getmtime)

    if not newest():
        say("no dist/pyetcd_*_all.deb: running make deb")
        proc = run(["make", "-C", str(REPO), "deb"], check=False, timeout=900)
        if proc.returncode != 0 or not newest():
            raise CheckFailed("package", f"make deb failed: {(proc.stdout + proc.stderr)[-800:]}")
    return Path(newest()[-1])


def deb_field(deb: Path, field: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), field]).stdout.strip()


def make_upgrade_deb(deb: Path, out_dir: Path) -> tuple[Path, str]:
    """The same package with a higher version (VERSION+e2e1), to exercise the upgrade path."""
    tree = out_dir / "upgrade-tree"
    run(["dpkg-deb", "-R", str(deb), str(tree)])
    control = tree / "DEBIAN" / "control"
    version = deb_field(deb, "Version") + "+e2e1"
    control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", control.read_text()))
    out = out_dir / f"pyetcd_{version.split(':')[-1]}_all.deb"
    run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(out)])
    shutil.rmtree(tree)
    return out, version


# --- network namespaces (pyroute2: netlink, no `ip` commands) ------------------------------------------

class Net:
    """A hub namespace holding bridge br0 (SUBNET.254/24) and, per node, a namespace whose veth `eth0`
    (SUBNET.N/24, default route via the hub address, so $private_ipv4 resolves) is plugged into that
    bridge as `portN`; `lo` is up everywhere. Nothing is added to the host's own namespace."""

    def __init__(self, prefix: str, subnet: str, count: int) -> None:
        self.prefix = prefix
        self.subnet = subnet
        self.count = count
        self.hub = f"{prefix}-hub"
        self.hub_addr = f"{subnet}.254"

    def node(self, index: int) -> str:
        return f"{self.prefix}-n{index}"

    def addr(self, index: int) -> str:
        return f"{self.subnet}.{index}"

    def cleanup(self) -> None:
        """Remove every namespace of this prefix (also a stale set left by a killed run); their veths go too."""
        from pyroute2 import netns
        for name in netns.listnetns():
            if name.startswith(self.prefix + "-"):
                netns.remove(name)

    def setup(self) -> None:
        from pyroute2 import NetNS, netns
        netns.create(self.hub)
        for i in range(1, self.count + 1):
            netns.create(self.node(i))
        hub = NetNS(self.hub)
        try:
            hub.link("set", index=hub.link_lookup(ifname="lo")[0], state="up")
            hub.link("add", ifname="br0", kind="bridge")
            br = hub.link_lookup(ifname="br0")[0]
            hub.addr("add", index=br, address=self.hub_addr, prefixlen=24)
            hub.link("set", index=br, state="up")
            for i in range(1, self.count + 1):
                hub.link("add", ifname=f"port{i}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": self.node(i)})
                hub.link("set", index=hub.link_lookup(ifname=f"port{i}")[0], master=br, state="up")
                node = NetNS(self.node(i))
                try:
                    node.link("set", index=node.link_lookup(ifname="lo")[0], state="up")
                    eth0 = node.link_lookup(ifname="eth0")[0]
                    node.addr("add", index=eth0, address=self.addr(i), prefixlen=24)
                    node.link("set", index=eth0, state="up")
                    node.route("add", dst="0.0.0.0/0", gateway=self.hub_addr)
                finally:
                    node.close()
        finally:
            hub.close()

    def set_port(self, index: int, up: bool) -> None:
        """Plug node `index` into the bridge or pull it out (its bridge port up or down)."""
        from pyroute2 import NetNS
        hub = NetNS(self.hub)
        try:
            hub.link("set", index=hub.link_lookup(ifname=f"port{index}")[0], state="up" if up else "down")
        finally:
            hub.close()

    def in_hub(self, *cmd: str) -> list[str]:
        """A host command run in the hub namespace (it reaches every node on the bridge)."""
        return ["nsenter", f"--net=/run/netns/{self.hub}", *cmd]


# --- the cluster --------------------------------------------------------------------------------------

class Node:
    def __init__(self, index: int, work: Path, net: Net, prefix: str = "pyetcd") -> None:
        self.index = index
        self.name = f"{prefix}{index}"
        self.netns = net.node(index)
        self.addr = net.addr(index)
        self.url = f"https://{self.addr}:2379"
        self.seed = work / f"seed-{self.name}"
        self.console = work / f"{self.name}.console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1 = 0

    def sh(self, *cmd: str, check: bool = True, timeout: float = 60,
           input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(["nsenter", "-t", str(self.pid1), "-a", *cmd], check=check, timeout=timeout, input_text=input_text)

    def unit(self, prop: str, unit: str = "pyetcd.service") -> str:
        return self.sh("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def running(self) -> bool:
        return bool(self.pid1) and self.proc is not None and self.proc.poll() is None

    def write_file(self, path: str, text: str, mode: str = "0644") -> None:
        self.sh("sh", "-c", f'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod {mode} "$1"', "-", path,
                input_text=text)


class Cluster:
    node_prefix = "pyetcd"
    with_upgrade = True  # also make a higher-versioned .deb (check_upgrade)

    def __init__(self, args: argparse.Namespace, work: Path, net: Net) -> None:
        self.args = args
        self.work = work
        self.net = net
        self.nodes = [Node(i, work, net, self.node_prefix) for i in range(1, net.count + 1)]
        self.token_size = len(self.nodes)
        self.token_proc: subprocess.Popen[bytes] | None = None
        self.token_base = f"http://{net.hub_addr}:{TOKEN_PORT}"
        self.tls = work / "tls"
        self.ca = self.tls / "ca.crt"
        self.pkg_root = work / "pkg"
        self.dist = work / "dist"

    # -- helpers
    def pyetcd_host(self, *args: str) -> list[str]:
        """The packaged pyetcd, run by the host's python3 (for `certs` and the token store)."""
        return ["env", f"PYTHONPATH={self.pkg_root}/usr/lib/python3/dist-packages", "/usr/bin/python3",
                "-m", "pyetcd.cli.daemon", *args]

    def curl(self, method: str, url: str, data: dict[str, str] | None = None,
             timeout: float = 5) -> tuple[int, dict]:
        cmd = self.net.in_hub("curl", "-sS", "--max-time", str(timeout), "--cacert", str(self.ca), "-X", method,
                              "-o", "-", "-w", "\n%{http_code}")
        for k, v in (data or {}).items():
            cmd += ["--data-urlencode", f"{k}={v}"]
        return parse_curl(run(cmd + [url], check=False, timeout=timeout + 5), method, url)

    def request(self, node: Node, method: str, path: str, data: dict[str, str] | None = None,
                timeout: float = 5) -> tuple[int, dict]:
        """A client request to a node (here: its https URL on the bridge, from the hub)."""
        return self.curl(method, f"{node.url}{path}", data, timeout)

    def put(self, node: Node, key: str, value: str) -> dict:
        code, doc = self.request(node, "PUT", f"/v2/keys/{key}", {"value": value}, timeout=10)
        if code not in (200, 201):
            raise RuntimeError(f"PUT {key} on {node.name}: HTTP {code} {doc}")
        return doc

    def get(self, node: Node, key: str, quorum: bool = False) -> str | None:
        code, doc = self.request(node, "GET", f"/v2/keys/{key}" + ("?quorum=true" if quorum else ""))
        if code == 404:
            return None
        if code != 200:
            raise RuntimeError(f"GET {key} on {node.name}: HTTP {code} {doc}")
        return doc["node"]["value"]

    def leader(self, among: list[Node]) -> Node | None:
        for node in among:
            try:
                code, doc = self.request(node, "GET", "/v2/stats/self", timeout=3)
            except RuntimeError:
                continue
            if code == 200 and doc.get("state") == "StateLeader":
                return node
        return None

    # -- set-up
    def setup(self, deb: Path) -> None:
        """Everything before the boot: package, CA, network, token store, seeds."""
        self.prepare(deb)
        self.net.cleanup()
        self.net.setup()
        say(f"network: bridge {self.net.hub_addr}/24 in {self.net.hub}, {len(self.nodes)} namespaces (pyroute2)")
        discovery = self.start_token_store()
        say(f"discovery token {discovery} (size {self.token_size})")
        self.render_seeds(discovery)

    def prepare(self, deb: Path) -> None:
        run(["dpkg-deb", "-x", str(deb), str(self.pkg_root)])
        self.dist.mkdir()
        shutil.copy2(deb, self.dist / deb.name)
        self.deb_in_guest = f"/mnt/dist/{deb.name}"
        if self.with_upgrade:
            upgrade, self.upgrade_version = make_upgrade_deb(deb, self.dist)
            self.upgrade_in_guest = f"/mnt/dist/{upgrade.name}"
        # The fleet CA only (ca.crt, ca.key): each host issues its own certificates at first boot.
        # `pyetcd certs` from the package, on Debian's python3-cryptography: as an operator would run it.
        proc = run(self.pyetcd_host("certs", "ca", "--dir", str(self.tls)), check=False)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
            raise CheckFailed("certs", f"pyetcd certs ca (packaged, host python3) exited {proc.returncode}: "
                              f"{lines[-1]}")

    def start_token_store(self) -> str:
        log = open(self.work / "token-store.log", "ab")
        self.token_proc = subprocess.Popen(
            self.net.in_hub(*self.pyetcd_host(
                "--name", "tokens", "--data-dir", str(self.work / "tokens.etcd"),
                "--listen-client-urls", self.token_base, "--advertise-client-urls", self.token_base)),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=SYS_ENV)
        wait_for("token store up", lambda: self.curl("GET", f"{self.token_base}/version")[0] == 200, 20)
        token = uuid.uuid4().hex
        code, doc = self.curl("PUT", f"{self.token_base}/v2/keys/_etcd/registry/{token}/_config/size",
                              {"value": str(self.token_size)})
        if code not in (200, 201):
            raise RuntimeError(f"cannot create the discovery token: HTTP {code} {doc}")
        return f"{self.token_base}/v2/keys/_etcd/registry/{token}"

    def stop_token_store(self) -> None:
        if self.token_proc is not None and self.token_proc.poll() is None:
            self.token_proc.terminate()
            try:
                self.token_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.token_proc.kill()
                self.token_proc.wait(10)

    def render_seeds(self, discovery: str) -> None:
        """One user-data for every host (cloud-config/render.py, TLS from the fleet CA), or the file given
        with --user-data (@DISCOVERY@ and @DEB@ filled in); checked byte-identical across the seeds, whose
        meta-data differ only in instance-id and local-hostname."""
        user_data = getattr(self.args, "user_data", None)
        if user_data:
            text = user_data.read_text().replace("@DISCOVERY@", discovery).replace("@DEB@", self.deb_in_guest)
            for node in self.nodes:
                node.seed.mkdir(parents=True)
                (node.seed / "user-data").write_text(text)
                (node.seed / "meta-data").write_text(f"instance-id: {node.name}-{uuid.uuid4().hex[:12]}\n"
                                                     f"local-hostname: {node.name}\n")
        for node in [] if user_data else self.nodes:
            proc = run(["/usr/bin/python3", str(RENDER), "--discovery", discovery, "--deb", self.deb_in_guest,
                        "--ca-dir", str(self.tls), "--seed-dir", str(node.seed), "--hostname", node.name],
                       check=False)
            if proc.returncode != 0:
                raise CheckFailed("render", f"render.py --hostname {node.name}: "
                                  f"{(proc.stderr or proc.stdout).strip()[-300:]}")
        digests = {n.name: hashlib.sha256((n.seed / "user-data").read_bytes()).hexdigest() for n in self.nodes}
        if len(set(digests.values())) != 1:
            raise CheckFailed("render", f"the hosts' user-data differ: {digests}")
        metas = [(n.seed / "meta-data").read_text() for n in self.nodes]
        for node, meta in zip(self.nodes, metas, strict=True):
            if f"local-hostname: {node.name}" not in meta:
                raise CheckFailed("render", f"{node.name}: meta-data has no local-hostname {node.name}: {meta!r}")
        ids = {line for meta in metas for line in meta.splitlines() if line.startswith("instance-id:")}
        if len(ids) != len(self.nodes):
            raise CheckFailed("render", f"instance-ids not distinct: {sorted(ids)}")
        size = (self.nodes[0].seed / "user-data").stat().st_size
        say(f"seeds: one user-data for {len(self.nodes)} hosts ({size} bytes, sha256 "
            f"{next(iter(digests.values()))[:16]}); meta-data: instance-id and local-hostname")

    def boot(self) -> None:
        for node in self.nodes:
            # The journal lives in the work directory: readable after the container is gone
            # (`journalctl -D WORK/journal-NAME`), kept with the diagnostics.
            journal = self.work / f"journal-{node.name}"
            journal.mkdir()
            cmd = ["systemd-nspawn", "-b", "-D", self.args.rootfs, "--volatile=overlay", "--register=no",
                   "--keep-unit", f"--network-namespace-path=/run/netns/{node.netns}",
                   f"--machine={node.name}", f"--uuid={uuid.uuid4().hex}",
                   f"--bind-ro={node.seed}:/var/lib/cloud/seed/nocloud",
                   f"--bind-ro={self.dist}:/mnt/dist", f"--bind={journal}:/var/log/journal", "--console=pipe"]
            node.proc = subprocess.Popen(cmd, stdout=open(node.console, "wb"), stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=SYS_ENV)
        for node in self.nodes:
            def pid1(node: Node = node) -> int:
                if node.proc is not None and node.proc.poll() is not None:
                    raise CheckFailed("boot", f"{node.name}: systemd-nspawn exited {node.proc.returncode} "
                                      f"(see {node.console})")
                out = run(["pgrep", "-P", str(node.proc.pid), "-x", "systemd"], check=False).stdout.split()
                return int(out[0]) if out else 0
            node.pid1 = wait_for(f"{node.name} systemd", pid1, 30, 0.2)
        for node in self.nodes:
            def booted(node: Node = node) -> bool:
                state = node.sh("systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return True
                jobs = node.sh("systemctl", "list-jobs", "--no-legend", "--no-pager", check=False).stdout
                raise RuntimeError(f"{state}; jobs: " + "; ".join(" ".join(j.split()[1:3]) for j in jobs.splitlines()[:4]))
            try:
                wait_for(f"{node.name} boot (systemd, cloud-init, package install, cluster start)", booted, 150)
            except TimeoutError as e:
                raise CheckFailed("boot", str(e)) from None

    def poweroff(self, node: Node, abrupt: bool = False, timeout: float = 30) -> None:
        """`machinectl poweroff`: SIGTERM to systemd-nspawn, the container's systemd halts cleanly; or
        abrupt, `machinectl terminate` (a power cut): SIGKILL to its PID 1, which takes every process of
        the container with it."""
        if node.proc is None or node.proc.poll() is not None:
            return
        if abrupt:
            os.kill(node.pid1, signal.SIGKILL)
        else:
            node.proc.terminate()
        try:
            node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(10)

    def shutdown(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        deadline = time.monotonic() + 20
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(10)
        self.stop_token_store()

    DIAG_COMMANDS = (["systemctl", "status", "--no-pager", "-l", "pyetcd.service"],
                     ["systemctl", "--failed", "--no-pager"],
                     ["cloud-init", "status", "--long"],
                     ["journalctl", "-u", "pyetcd.service", "--no-pager", "-n", "200"],
                     ["tail", "-n", "80", "/var/log/cloud-init-output.log"],
                     ["sh", "-c", "grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log | tail -40"])

    def diagnostics(self) -> None:
        for node in self.nodes:
            if not node.running():
                continue
            parts = []
            for cmd in self.DIAG_COMMANDS:
                try:
                    proc = node.sh(*cmd, check=False, timeout=20)
                    parts.append(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
                except RuntimeError as e:
                    parts.append(f"$ {' '.join(cmd)}\n{e}")
            (self.work / f"diag-{node.name}.txt").write_text("\n".join(parts))


def parse_curl(proc: subprocess.CompletedProcess[str], method: str, url: str) -> tuple[int, dict]:
    """(HTTP status, JSON body) of a `curl -o - -w '\\n%{http_code}'` run; RuntimeError if curl failed."""
    if proc.returncode != 0:
        raise RuntimeError(f"curl {method} {url}: {(proc.stderr or proc.stdout).strip()[-300:]}")
    body, _, code = proc.stdout.rpartition("\n")
    try:
        doc = json.loads(body) if body.strip() else {}
    except json.JSONDecodeError:
        doc = {"raw": body}
    return int(code), doc


# --- the checks ---------------------------------------------------------------------------------------

def check_cloud_init(c: Cluster) -> None:
    for node in c.nodes:
        proc = node.sh("cloud-init", "status", "--wait", check=False, timeout=180)
        status = node.sh("cloud-init", "status", "--long", check=False).stdout
        if "status: done" not in status:
            raise CheckFailed("cloud-init", f"{node.name}: {' '.join(status.split())[:300]} "
                              f"(rc {proc.returncode})")
        # The host issued its own certificates (server.* and peer.* link to them) and deleted the CA key.
        modes = node.sh("stat", "-L", "-c", "%n %U:%G %a", "/etc/pyetcd/pyetcd.yaml", "/etc/pyetcd/tls/ca.crt",
                        "/etc/pyetcd/tls/server.key", "/etc/pyetcd/tls/peer.key", check=False).stdout.split("\n")
        want = ["/etc/pyetcd/pyetcd.yaml root:root 644", "/etc/pyetcd/tls/ca.crt root:root 644",
                "/etc/pyetcd/tls/server.key pyetcd:pyetcd 600", "/etc/pyetcd/tls/peer.key pyetcd:pyetcd 600"]
        if modes[:4] != want:
            raise CheckFailed("cloud-init", f"{node.name}: files placed as {modes[:4]}, expected {want}")
        target = node.sh("readlink", "/etc/pyetcd/tls/server.crt", check=False).stdout.strip()
        if target != f"{node.name}.crt":
            raise CheckFailed("cloud-init", f"{node.name}: /etc/pyetcd/tls/server.crt links to {target!r}")
        if node.sh("test", "-e", "/etc/pyetcd/tls/ca.key", check=False).returncode == 0:
            raise CheckFailed("cloud-init", f"{node.name}: the CA key is still in /etc/pyetcd/tls")
        # The containers' network is set up from outside: cloud-init must not have started a DHCP client.
        dhcp = node.sh("pgrep", "-a", "dhclient|dhcpcd|udhcpc", check=False).stdout.strip()
        if dhcp:
            raise CheckFailed("cloud-init", f"{node.name}: a DHCP client runs: {dhcp[:200]}")
    schema = c.nodes[0].sh("cloud-init", "schema", "--system", check=False)
    if schema.returncode != 0 or "Valid cloud-config" not in schema.stdout:
        raise CheckFailed("cloud-init", f"cloud-init schema --system: {(schema.stdout + schema.stderr).strip()[-300:]}")


def check_active(c: Cluster) -> None:
    def all_active() -> bool:
        states = {n.name: n.sh("systemctl", "is-active", "pyetcd.service", check=False).stdout.strip()
                  for n in c.nodes}
        bad = {k: v for k, v in states.items() if v != "active"}
        if bad:
            raise RuntimeError(f"not active: {bad}")
        return True
    try:
        wait_for("pyetcd active on every member", all_active, 120, 1)
    except TimeoutError as e:
        raise CheckFailed("is-active", str(e)) from None
    try:
        wait_for("a leader", lambda: c.leader(c.nodes), 30)
    except TimeoutError as e:
        raise CheckFailed("is-active", f"no leader: {e}") from None
    # Every unit the package ships, verified where it is installed (the binaries exist there): no output.
    node = c.nodes[0]
    units = node.sh("sh", "-c", "ls /lib/systemd/system/pyetcd*.service /lib/systemd/system/pyetcd*.timer "
                    "2>/dev/null", check=False).stdout.split()
    if not units:
        raise CheckFailed("is-active", "no pyetcd units installed")
    for unit in units:
        verify = node.sh("systemd-analyze", "verify", unit, check=False)
        if verify.returncode != 0 or (verify.stdout + verify.stderr).strip():
            raise CheckFailed("is-active", f"systemd-analyze verify {unit}: {(verify.stdout + verify.stderr)[-300:]}")


def check_replication(c: Cluster) -> None:
    first, others = c.nodes[0], c.nodes[1:]
    c.put(first, "e2e/hello", "world")
    for node in others:
        try:
            wait_for(f"read on {node.name}", lambda node=node: c.get(node, "e2e/hello") == "world", 10, 0.3)
        except TimeoutError as e:
            raise CheckFailed("replication", str(e)) from None
    # Loopback client URL inside a member (plain http, for local tools).
    local = others[-1].sh("curl", "-sS", "--max-time", "5", "http://127.0.0.1:2379/v2/keys/e2e/hello?quorum=true",
                          check=False).stdout
    if '"value":"world"' not in local:
        raise CheckFailed("replication", f"{others[-1].name} loopback read: {local[:200]}")


def check_journal(c: Cluster) -> None:
    for node in c.nodes:
        out = node.sh("journalctl", "-u", "pyetcd.service", "-o", "json", "--no-pager", timeout=30).stdout
        entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if not entries:
            raise CheckFailed("journal", f"{node.name}: no journal entries for pyetcd.service")
        seen = {f for e in entries for f in JOURNAL_FIELDS if f in e}
        missing = [f for f in JOURNAL_FIELDS if f not in seen]
        if missing:
            raise CheckFailed("journal", f"{node.name}: fields missing from every entry: {' '.join(missing)} "
                              f"({len(entries)} entries)")
        names = {e["PYETCD_MEMBER"] for e in entries if "PYETCD_MEMBER" in e}
        if names != {node.name}:
            raise CheckFailed("journal", f"{node.name}: PYETCD_MEMBER values {sorted(names)}")
        code, stats = c.curl("GET", f"{node.url}/v2/stats/self")
        ids = {e["PYETCD_MEMBER_ID"] for e in entries if "PYETCD_MEMBER_ID" in e}
        if ids != {stats.get("id")}:
            raise CheckFailed("journal", f"{node.name}: PYETCD_MEMBER_ID values {sorted(ids)}, "
                              f"member id {stats.get('id')}")
        roles = {e["PYETCD_ROLE"] for e in entries if "PYETCD_ROLE" in e}
        unknown = roles - {"leader", "follower", "candidate", "pre-candidate"}
        if unknown:
            raise CheckFailed("journal", f"{node.name}: unexpected PYETCD_ROLE values {sorted(unknown)}")
        terms = [e["PYETCD_TERM"] for e in entries if "PYETCD_TERM" in e]
        if not all(t.isdigit() for t in terms):
            raise CheckFailed("journal", f"{node.name}: PYETCD_TERM not a number: {terms[:5]}")


def check_leader_stop(c: Cluster) -> None:
    leader = wait_for("a leader", lambda: c.leader(c.nodes), 20)
    rest = [n for n in c.nodes if n is not leader]
    say(f"stopping pyetcd on the leader {leader.name}")
    leader.sh("systemctl", "stop", "pyetcd.service", timeout=60)
    state = leader.sh("systemctl", "is-active", "pyetcd.service", check=False).stdout.strip()
    if state != "inactive":
        raise CheckFailed("leader-stop", f"{leader.name} is {state!r} after systemctl stop")
    try:
        new = wait_for("a new leader", lambda: c.leader(rest), 20)
        wait_for("write without the old leader", lambda: c.put(rest[0], "e2e/after-stop", "still-here"), 20, 1)
        wait_for("read on the other member",
                 lambda: c.get(rest[-1], "e2e/after-stop", quorum=True) == "still-here", 10, 0.5)
    except TimeoutError as e:
        raise CheckFailed("leader-stop", str(e)) from None
    say(f"new leader {new.name}; starting {leader.name} again")
    leader.sh("systemctl", "start", "--no-block", "pyetcd.service")
    try:
        wait_for(f"{leader.name} active again", lambda: leader.sh(
            "systemctl", "is-active", "pyetcd.service", check=False).stdout.strip() == "active", 60)
        wait_for(f"{leader.name} caught up", lambda: c.get(leader, "e2e/after-stop") == "still-here", 20)
    except TimeoutError as e:
        raise CheckFailed("leader-stop", str(e)) from None


def timespan_s(text: str) -> float:
    """systemd's time span as `systemctl show` prints it ("20s", "1min 30s", "500ms", "0", or µs digits)."""
    text = text.strip()
    if text.isdigit():
        return int(text) / 1e6
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)\s*(us|ms|min|s|h)", text):
        total += float(number) * units[unit]
    return total


def check_watchdog(c: Cluster) -> None:
    leader = wait_for("a leader", lambda: c.leader(c.nodes), 20)
    victim = next(n for n in reversed(c.nodes) if n is not leader)
    others = [n for n in c.nodes if n is not victim]
    pid = victim.unit("MainPID")
    restarts = int(victim.unit("NRestarts") or 0)
    watchdog_s = timespan_s(victim.unit("WatchdogUSec"))
    if not watchdog_s:
        raise CheckFailed("watchdog", f"{victim.name}: pyetcd.service has no WatchdogSec")
    say(f"SIGSTOP pyetcd (pid {pid}) on {victim.name}; WatchdogSec={watchdog_s:g}s")
    victim.sh("kill", "-STOP", pid)
    stalled_at = time.monotonic()
    # The others keep serving while it is stalled.
    try:
        wait_for("write during the stall", lambda: c.put(others[0], "e2e/during-stall", "ok"), 20, 1)
    except TimeoutError as e:
        raise CheckFailed("watchdog", str(e)) from None

    def restarted() -> bool:
        return (int(victim.unit("NRestarts") or 0) > restarts and victim.unit("MainPID") not in ("0", pid)
                and victim.unit("ActiveState") == "active")
    try:
        wait_for(f"{victim.name} restarted by the watchdog", restarted, watchdog_s + 60, 1)
    except TimeoutError as e:
        raise CheckFailed("watchdog", str(e)) from None
    took = time.monotonic() - stalled_at
    result = victim.unit("Result")
    say(f"{victim.name} restarted {took:.0f} s after SIGSTOP (NRestarts {restarts} -> {victim.unit('NRestarts')})")
    log = victim.sh("journalctl", "-u", "pyetcd.service", "--no-pager", "-n", "200", check=False).stdout
    if "atchdog" not in log:
        raise CheckFailed("watchdog", f"{victim.name} restarted but the journal names no watchdog timeout "
                          f"(Result={result})")
    try:
        wait_for(f"{victim.name} has its data", lambda: c.get(victim, "e2e/hello") == "world"
                 and c.get(victim, "e2e/during-stall") == "ok", 20)
    except TimeoutError as e:
        raise CheckFailed("watchdog", str(e)) from None


def check_upgrade(c: Cluster) -> None:
    for node in c.nodes:
        code, before = c.curl("GET", f"{node.url}/v2/stats/self")
        pid = node.unit("MainPID")
        say(f"upgrading {node.name} to {c.upgrade_version}")
        proc = node.sh("/usr/local/sbin/pyetcd-install", c.upgrade_in_guest, check=False, timeout=180)
        if proc.returncode != 0:
            raise CheckFailed("upgrade", f"{node.name}: install failed: {(proc.stdout + proc.stderr)[-400:]}")
        version = node.sh("dpkg-query", "-W", "-f", "${Version}", "pyetcd").stdout.strip()
        if version != c.upgrade_version:
            raise CheckFailed("upgrade", f"{node.name}: dpkg says {version}, expected {c.upgrade_version}")
        try:
            wait_for(f"{node.name} active after the upgrade", lambda node=node: node.sh(
                "systemctl", "is-active", "pyetcd.service", check=False).stdout.strip() == "active", 60)
            wait_for(f"{node.name} reads its data", lambda node=node: c.get(node, "e2e/hello") == "world"
                     and c.get(node, "e2e/after-stop") == "still-here", 20)
        except TimeoutError as e:
            raise CheckFailed("upgrade", str(e)) from None
        if node.unit("MainPID") == pid:
            raise CheckFailed("upgrade", f"{node.name}: pyetcd was not restarted by the upgrade (pid {pid})")
        code, after = c.curl("GET", f"{node.url}/v2/stats/self")
        if after.get("id") != before.get("id"):
            raise CheckFailed("upgrade", f"{node.name}: member id changed {before.get('id')} -> {after.get('id')}")
        conf = node.sh("grep", "-c", "discovery:", "/etc/pyetcd/pyetcd.yaml", check=False).stdout.strip()
        if conf != "1":
            raise CheckFailed("upgrade", f"{node.name}: /etc/pyetcd/pyetcd.yaml was replaced by the package's")
    try:
        wait_for("write after the upgrade", lambda: c.put(c.nodes[-1], "e2e/after-upgrade", "yes"), 20, 1)
        for node in c.nodes:
            wait_for(f"read on {node.name}", lambda node=node: c.get(node, "e2e/after-upgrade") == "yes", 10)
    except TimeoutError as e:
        raise CheckFailed("upgrade", str(e)) from None


def check_sched(c: Cluster) -> None:
    """pyetcd-sched under real systemd: agents (transient services) run units as transient services bound
    to them; stopping an agent's service stops its units, and the scheduler moves them elsewhere."""
    ep = "--endpoints=http://127.0.0.1:2379"
    units = ["e2e-u1", "e2e-u2", "e2e-u3"]
    for node in c.nodes:
        node.sh("systemd-run", "--unit=sched-agent", "/usr/bin/pyetcd-sched", "agent", ep, "--runner", "systemd",
                "--name", node.name, "--ttl", "6")
    c.nodes[0].sh("systemd-run", "--unit=sched-scheduler", "/usr/bin/pyetcd-sched", "scheduler", ep, "--ttl", "6")
    for u in units:
        c.nodes[0].sh("/usr/bin/pyetcd-sched", "submit", u, ep, "--", "sleep", "100000")

    def placed() -> dict[str, str]:
        out = c.nodes[0].sh("/usr/bin/pyetcd-sched", "ls", ep, "--json").stdout
        snap = json.loads(out)
        if any(snap[u]["state"] != "running" for u in units):
            raise RuntimeError(f"not all running: { {u: snap[u]['state'] for u in units} }")
        return {u: snap[u]["machine_name"] for u in units}

    def active_where(where: dict[str, str]) -> dict[str, str]:
        for u, name in where.items():
            node = next(n for n in c.nodes if n.name == name)
            state = node.sh("systemctl", "is-active", f"pyetcd-sched-{u}.service", check=False).stdout.strip()
            if state != "active":
                raise RuntimeError(f"pyetcd-sched-{u}.service is {state} on {name}")
        return where

    try:
        where = wait_for("units running as transient services", lambda: active_where(placed()), 60, 1)
        victim_name = where[units[0]]
        victim = next(n for n in c.nodes if n.name == victim_name)
        moved = [u for u, name in where.items() if name == victim_name]
        victim.sh("systemctl", "stop", "sched-agent.service")
        for u in moved:
            state = victim.sh("systemctl", "is-active", f"pyetcd-sched-{u}.service", check=False).stdout.strip()
            if state == "active":
                raise CheckFailed("sched", f"{u} still active on {victim_name} after its agent stopped")
        after = wait_for("units moved off the stopped agent",
                         lambda: (w := active_where(placed())) and all(w[u] != victim_name for u in moved) and w,
                         60, 1)
        say(f"sched: {', '.join(moved)} moved from {victim_name} to {', '.join(after[u] for u in moved)}")
    except TimeoutError as e:
        raise CheckFailed("sched", str(e)) from None
    finally:
        for node in c.nodes:
            node.sh("systemctl", "stop", "sched-agent.service", "sched-scheduler.service", check=False)


CHECKS = [("cloud-init", check_cloud_init), ("is-active", check_active), ("replication", check_replication),
          ("journal", check_journal), ("leader-stop", check_leader_stop), ("watchdog", check_watchdog),
          ("upgrade", check_upgrade), ("sched", check_sched)]


def run_suite(label: str, args: argparse.Namespace, make_cluster, checks, summary) -> int:
    """The frame every e2e suite runs in: host set-up, the cluster's set-up and boot, the checks in order;
    always the clean-up, and the diagnostics on failure. Prints the result line last:
    `LABEL: PASS (summary(done), T s)` or `LABEL: FAIL <check>: <why>`; returns the exit status."""
    if os.geteuid() != 0:
        print(f"{label}: FAIL setup: must run as root (network namespaces, systemd-nspawn)")
        return 1
    # One run of a suite at a time on a machine: its namespaces and addresses are fixed, and a stale set
    # left by a killed run is removed at the start of the next one.
    lock_path = Path("/run/lock" if Path("/run/lock").is_dir() else "/tmp", f"pyetcd-{label}.lock")
    lock = open(lock_path, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"{label}: FAIL setup: another {label} run holds {lock_path}")
        return 1
    work = Path(tempfile.mkdtemp(prefix=f"pyetcd-{label}-"))
    os.chmod(work, 0o755)  # the containers read the seed and dist bind mounts
    cluster = make_cluster(work)
    # SIGTERM (e.g. a CI timeout) goes through the same clean-up as Ctrl-C; but only here: a process forked
    # from this one (pyroute2 0.9's NetNS runs its netlink socket in a child that it ends with SIGTERM)
    # must just end, not run the clean-up and print a result of its own.
    main_pid = os.getpid()

    def on_sigterm(*_: object) -> None:
        if os.getpid() != main_pid:
            os._exit(128 + signal.SIGTERM)
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_sigterm)
    done = 0
    result = ""
    ok = False
    stage = "setup"
    try:
        install_host_deps()
        say("container tree: tests/e2e/build-rootfs.sh")
        proc = run(["bash", str(BUILD_ROOTFS), args.rootfs], check=False, timeout=1200)
        if proc.returncode != 0:
            raise CheckFailed("rootfs", (proc.stdout + proc.stderr)[-600:])
        say(proc.stdout.strip().splitlines()[-1])
        deb = find_deb(args.deb)
        say(f"package {deb.name} (version {deb_field(deb, 'Version')})")
        cluster.setup(deb)
        stage = "boot"
        cluster.boot()
        say(f"{len(cluster.nodes)} containers booted")
        for name, check in checks:
            stage = name
            say(f"check {name}")
            check(cluster)
            done += 1
            say(f"ok {name}")
        ok = True
        result = f"{label}: PASS ({summary(done)}, {time.monotonic() - T0:.0f} s)"
    except CheckFailed as e:
        result = f"{label}: FAIL {e.check}: {' '.join(e.why.split())[:400]}"
    except TimeoutError as e:
        result = f"{label}: FAIL {stage}: {' '.join(str(e).split())[:400]}"
    except KeyboardInterrupt:
        result = f"{label}: FAIL {stage}: interrupted"
    except Exception as e:  # noqa: BLE001 - any error is a failed run, reported on the one line
        result = f"{label}: FAIL {stage}: {type(e).__name__}: {' '.join(str(e).split())[:400]}"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not ok:
            try:
                cluster.diagnostics()
            except Exception as e:  # noqa: BLE001
                say(f"diagnostics failed: {e}")
        cluster.shutdown()
        try:
            cluster.net.cleanup()
        except Exception as e:  # noqa: BLE001
            say(f"network clean-up failed: {e}")
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"logs and diagnostics kept in {work}")
    print(result, flush=True)
    return 0 if ok else 1


def common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--deb", help="the .deb to test (default: newest dist/pyetcd_*_all.deb, else make deb)")
    p.add_argument("--rootfs", default=os.environ.get("PYETCD_E2E_ROOTFS", "/var/cache/pyetcd-e2e/rootfs"))
    p.add_argument("--keep", action="store_true", help="keep the work directory even on success")
    p.add_argument("--user-data", type=Path, help="give every host this user-data (@DISCOVERY@ and @DEB@ filled "
                   "in) instead of rendering one with cloud-config/render.py")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(p)
    p.add_argument("--nodes", type=int, default=3, help="members (default 3; at most 9)")
    args = p.parse_args()
    if not 1 <= args.nodes <= 9:
        print("e2e: FAIL setup: --nodes must be 1..9")
        return 1
    return run_suite("e2e", args, lambda work: Cluster(args, work, Net(NS_PREFIX, SUBNET, args.nodes)), CHECKS,
                     lambda done: f"{args.nodes} members, {done} checks")


if __name__ == "__main__":
    sys.exit(main())
