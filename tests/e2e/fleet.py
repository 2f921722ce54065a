#!/usr/bin/python3
"""A fleet of pyetcd hosts under real systemd, all seeded with the same user-data (`make e2e-fleet`; root).

    /usr/bin/python3 tests/e2e/fleet.py [--hosts 5] [--token-size 3] [--deb dist/pyetcd_X_all.deb]
                                        [--user-data FILE] [--keep]

Runs with a Python that has pyroute2 (Debian's python3-pyroute2 for /usr/bin/python3, installed by the
host set-up, or the repo's .venv/bin/python). The frame is tests/e2e/e2e.py's (host set-up, container
tree, token store, boot, clean-up, diagnostics); what differs:

* Network: built with pyroute2 (netlink): a bridge in a hub namespace (10.236.0.254/24) and one namespace
  per host with a veth `eth0` (10.236.0.N/24, default route via the hub, so $private_ipv4 resolves).
* Seeds: ONE user-data for every host (cloud-config/render.py --ca-dir: each host issues its own
  certificates at first boot), checked byte-identical; only meta-data differs (instance-id and
  local-hostname). The discovery token's size is 3: the first 3 hosts become members, the others proxies.
* Checks, in order (each line timestamped, UTC and seconds since start):
  formation    cloud-init done, `systemctl is-active pyetcd` everywhere, `GET /v2/members` through every
               host's 127.0.0.1:2379 lists the same 3 members, each other host is a proxy that keeps
               DATA_DIR/proxy/cluster
  replication  a write through each host's 127.0.0.1:2379 is read through every host's
  reboots      pyetcd-locksmithd (etcd-lock, 1 holder) everywhere, a reboot needed on all hosts at once;
               the reboot is replaced by a recorded restart (a -reboot-command written by the harness:
               restart pyetcd, then the agent, which frees its slot as after a boot); every host
               "reboots", and the agents' timestamped logs show no two at once
  leader-off   the leader's container powered off abruptly (terminate: SIGKILL to its PID 1, and its bridge
               port pulled): writes and reads through the proxies resume after the election
  proxy-alone  the token store stopped, a proxy restarted: it comes back from its kept cluster list (its
               journal says so) and serves
Last line: `e2e-fleet: PASS (5 hosts, 5 checks, T s)` or `e2e-fleet: FAIL <check>: <why>`.
"""

from __future__ import annotations

import argparse
import calendar
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402  (the shared harness, beside this file)
from e2e import CheckFailed, Cluster, Net, Node, parse_curl, run, say, wait_for  # noqa: E402

LABEL = "e2e-fleet"
NS_PREFIX = "pyetcd-fleet"
SUBNET = "10.236.0"
TOKEN_SIZE = 3
LOCAL = "127.0.0.1:2379"
SEMAPHORE_KEY = "coreos.com/updateengine/rebootlock/semaphore"
REBOOT_LOG = "/run/pyetcd-locksmithd/e2e-reboots.log"
TRIGGER = "/run/pyetcd-locksmithd/reboot-needed"
# Test scaffolding (not user-data): the agent's reboot becomes a recorded restart of pyetcd and of the agent
# itself. The agent then frees the slot it took as it does after a real boot. /run/pyetcd-locksmithd is the
# agent's runtime directory (kept across its restarts), writable under its ProtectSystem=strict.
FAKE_REBOOT = f"""#!/bin/sh
# e2e-fleet: stands in for the reboot (pyetcd-locksmithd -reboot-command).
set -e
echo "$(date +%s.%N) down" >> {REBOOT_LOG}
rm -f {TRIGGER}
systemctl restart pyetcd.service
echo "$(date +%s.%N) pyetcd-restarted" >> {REBOOT_LOG}
systemctl --no-block restart pyetcd-locksmithd.service
"""
AGENT_DROPIN = """[Service]
# e2e-fleet: a reboot is a recorded restart; quick retries so the test takes seconds.
Environment=LOCKSMITHD_REBOOT_COMMAND=/usr/local/sbin/e2e-fake-reboot
Environment=LOCKSMITHD_REBOOT_DETECTOR=file
Environment=LOCKSMITHD_UNLOCK_DELAY=1s
Environment=LOCKSMITHD_UNLOCK_BACKOFF_MAX=2s
Environment=LOCKSMITHD_LOCK_BACKOFF=500ms
Environment=LOCKSMITHD_LOCK_BACKOFF_MAX=2s
Environment=LOCKSMITHD_BROADCAST=false
# The agent stamps its own lines (milliseconds, UTC) when not logging to the journal: "Acquired" is logged
# after the lock's compare-and-swap and "Releasing" before it, so those stamps bound each holding exactly
# (journald's receive times may lag).
UnsetEnvironment=JOURNAL_STREAM
Environment=TZ=UTC
"""


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}"


class Fleet(Cluster):
    node_prefix = "fleet"
    with_upgrade = False
    DIAG_COMMANDS = Cluster.DIAG_COMMANDS + (
        ["systemctl", "status", "--no-pager", "-l", "pyetcd-locksmithd.service"],
        ["journalctl", "-u", "pyetcd-locksmithd.service", "--no-pager", "-n", "100"],
        ["cat", REBOOT_LOG],
        ["cat", "/etc/pyetcd/pyetcd.yaml"],
        ["sh", "-c", "ls -lR /var/lib/pyetcd/ | head -40"])

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(args, work, Net(NS_PREFIX, SUBNET, args.hosts))
        self.token_size = args.token_size
        self.members: list[Node] = []
        self.proxies: list[Node] = []
        self.data_dirs: dict[str, str] = {}

    def request(self, node: Node, method: str, path: str, data: dict[str, str] | None = None,
                timeout: float = 5) -> tuple[int, dict]:
        """Through the host's own loopback client URL (what local tools and the reboot agent use)."""
        cmd = ["curl", "-sS", "--max-time", str(timeout), "-X", method, "-o", "-", "-w", "\n%{http_code}"]
        for k, v in (data or {}).items():
            cmd += ["--data-urlencode", f"{k}={v}"]
        url = f"http://{LOCAL}{path}"
        return parse_curl(node.sh(*cmd, url, check=False, timeout=timeout + 10), method, f"{node.name} {url}")

    def member_names(self, node: Node) -> list[str]:
        code, doc = self.request(node, "GET", "/v2/members")
        if code != 200:
            raise RuntimeError(f"GET /v2/members through {node.name}: HTTP {code} {doc}")
        return sorted(m.get("name", "") for m in doc.get("members", []))

    def data_dir(self, node: Node) -> str:
        if node.name not in self.data_dirs:
            out = node.sh("pyetcd", "--config-file", "/etc/pyetcd/pyetcd.yaml", "--print-config").stdout
            line = next((ln for ln in out.splitlines() if ln.startswith("data-dir:")), "")
            value = line.split("#", 1)[0].split(":", 1)[-1].strip().strip("'\"")
            if not value.startswith("/"):
                raise RuntimeError(f"{node.name}: no data-dir in pyetcd --print-config: {line!r}")
            self.data_dirs[node.name] = value
        return self.data_dirs[node.name]

    def active(self, nodes: list[Node], unit: str = "pyetcd.service") -> bool:
        states = {n.name: n.sh("systemctl", "is-active", unit, check=False).stdout.strip() for n in nodes}
        bad = {k: v for k, v in states.items() if v != "active"}
        if bad:
            raise RuntimeError(f"{unit} not active: {bad}")
        return True


def timed(check: str, what: str, probe, timeout: float, interval: float = 0.3):
    """wait_for, failing the check with the reason; returns (value, seconds waited)."""
    start = time.monotonic()
    try:
        value = wait_for(what, probe, timeout, interval)
    except TimeoutError as e:
        raise CheckFailed(check, str(e)) from None
    return value, time.monotonic() - start


# --- the checks ---------------------------------------------------------------------------------------

def check_formation(f: Fleet) -> None:
    for node in f.nodes:
        node.sh("cloud-init", "status", "--wait", check=False, timeout=180)
        status = node.sh("cloud-init", "status", "--long", check=False).stdout
        if "status: done" not in status:
            raise CheckFailed("formation", f"{node.name}: cloud-init {' '.join(status.split())[:300]}")
    _, took = timed("formation", "pyetcd active on every host", lambda: f.active(f.nodes), 120, 1)
    say(f"pyetcd.service active on all {len(f.nodes)} hosts (+{took:.1f} s)")

    def listed(node: Node) -> list[str]:
        names = f.member_names(node)
        if len(names) != f.token_size:
            raise RuntimeError(f"{node.name} lists {names}")
        return names
    seen = {}
    for node in f.nodes:
        seen[node.name], _ = timed("formation", f"{f.token_size} members listed through {node.name}'s {LOCAL}",
                                   lambda node=node: listed(node), 30)
    if len({tuple(v) for v in seen.values()}) != 1:
        raise CheckFailed("formation", f"the hosts list different members: {seen}")
    names = next(iter(seen.values()))
    by_name = {n.name: n for n in f.nodes}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise CheckFailed("formation", f"members {unknown} are not host names of this fleet ({sorted(by_name)})")
    f.members = [by_name[n] for n in names]
    f.proxies = [n for n in f.nodes if n.name not in names]
    say(f"members {', '.join(names)} (listed alike through all {len(f.nodes)} hosts); "
        f"proxies {', '.join(n.name for n in f.proxies)}")
    for node in f.proxies:
        path = f"{f.data_dir(node)}/proxy/cluster"
        proc = node.sh("cat", path, check=False)
        try:
            kept = json.loads(proc.stdout)["PeerURLs"]
        except (ValueError, KeyError, TypeError):
            raise CheckFailed("formation", f"{node.name} (proxy) keeps no cluster list in {path}: "
                              f"{(proc.stdout + proc.stderr).strip()[:200]}") from None
        if len(kept) != f.token_size:
            raise CheckFailed("formation", f"{node.name}: {path} holds {kept}, expected the {f.token_size} members'")
        say(f"{node.name} keeps {path}: {' '.join(kept)}")
    for node in f.members:
        if node.sh("test", "-e", f"{f.data_dir(node)}/proxy/cluster", check=False).returncode == 0:
            raise CheckFailed("formation", f"{node.name} is a member but has a proxy/cluster file")


def check_replication(f: Fleet) -> None:
    for writer in f.nodes:
        key, value = f"fleet/from-{writer.name}", uuid.uuid4().hex[:12]
        try:
            f.put(writer, key, value)
        except RuntimeError as e:
            raise CheckFailed("replication", str(e)) from None
        for reader in f.nodes:
            timed("replication", f"{key} read through {reader.name}",
                  lambda reader=reader, key=key, value=value: f.get(reader, key) == value, 10, 0.2)
    say(f"{len(f.nodes)} writes, each read through all {len(f.nodes)} hosts")


# "2026-12-06T14:23:09.947979 INFO locksmithd: message" (the one log setup: time, level, component)
AGENT_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})\d* [A-Z]+ (?:[\w.-]+: )?(.*)$")
COMPONENT = re.compile(r"^[\w.-]+: ")  # in the journal the message is "locksmithd: message"


def journal(node: Node, unit: str, since: float) -> list[tuple[float, str]]:
    """(time, MESSAGE) of a unit's journal entries from `since` on; the time is the process's own stamp at
    the start of the line ("2026-12-06T12:06:44.455 INFO ...", UTC), stripped from the message, else
    journald's receive time."""
    out = node.sh("journalctl", "-u", unit, "-o", "json", "--no-pager", "--output-fields=MESSAGE",
                  check=False, timeout=30).stdout
    entries = []
    for line in out.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        t = int(e.get("__REALTIME_TIMESTAMP", 0)) / 1e6
        msg = e.get("MESSAGE")
        if not isinstance(msg, str):
            continue
        stamp = AGENT_STAMP.match(msg)
        if stamp:
            t = calendar.timegm(time.strptime(stamp.group(1), "%Y-%m-%dT%H:%M:%S")) + int(stamp.group(2)) / 1000
            msg = stamp.group(3)
        else:
            msg = COMPONENT.sub("", msg, count=1)
        if t >= since:
            entries.append((t, msg))
    return entries


def check_reboots(f: Fleet) -> None:
    ids = {}
    started = time.time()
    for node in f.nodes:
        node.write_file("/usr/local/sbin/e2e-fake-reboot", FAKE_REBOOT, "0755")
        node.write_file("/etc/systemd/system/pyetcd-locksmithd.service.d/e2e-fleet.conf", AGENT_DROPIN)
        node.sh("rm", "-f", REBOOT_LOG, TRIGGER)
        node.sh("systemctl", "daemon-reload")
        node.sh("systemctl", "restart", "pyetcd-locksmithd.service")
        ids[node.sh("cat", "/etc/machine-id").stdout.strip()] = node
    if len(ids) != len(f.nodes):
        raise CheckFailed("reboots", "the hosts do not have distinct machine-ids")
    timed("reboots", "pyetcd-locksmithd active everywhere",
          lambda: f.active(f.nodes, "pyetcd-locksmithd.service"), 30, 0.5)

    def waiting(node: Node) -> bool:
        lines = [m for _, m in journal(node, "pyetcd-locksmithd.service", started - 1)]
        strategy = [m for m in lines if m.startswith("pyetcd-locksmithd ") and ": strategy " in m]
        if strategy and ": strategy etcd-lock," not in strategy[-1]:
            raise CheckFailed("reboots", f"{node.name}: the agent does not use the lock: {strategy[-1]}")
        return bool(strategy) and any(m.startswith("Waiting for a reboot to be needed") for m in lines)
    for node in f.nodes:
        timed("reboots", f"{node.name}'s agent waiting for a reboot to be needed", lambda node=node: waiting(node),
              30, 0.5)
    code, doc = f.request(f.nodes[0], "GET", f"/v2/keys/{SEMAPHORE_KEY}")
    if code == 200:
        sem = json.loads(doc["node"]["value"])
        if sem.get("max") != 1 or sem.get("holders"):
            raise CheckFailed("reboots", f"the reboot lock before the test: {sem} (want max 1, no holders)")
    # A reboot needed everywhere at once.
    procs = [subprocess.Popen(["nsenter", "-t", str(n.pid1), "-a", "touch", TRIGGER], env=e2e.SYS_ENV)
             for n in f.nodes]
    for p in procs:
        p.wait(30)
    triggered = time.time()
    say(f"reboot needed on all {len(f.nodes)} hosts at {clock(triggered)}")

    def timeline() -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for node in f.nodes:
            holder = next(k for k, v in ids.items() if v is node)
            marks: dict[str, float] = {}
            for t, msg in journal(node, "pyetcd-locksmithd.service", triggered - 1):
                if msg.startswith("Acquired the reboot lock") and "acquired" not in marks:
                    marks["acquired"] = t
                elif msg.startswith(f"Releasing the reboot lock of {holder} (the host is back)"):
                    marks["released"] = t
            for line in node.sh("cat", REBOOT_LOG, check=False).stdout.splitlines():
                stamp, _, what = line.partition(" ")
                if what in ("down", "pyetcd-restarted"):
                    marks.setdefault(what, float(stamp))
            out[node.name] = marks
        return out

    def all_back() -> dict[str, dict[str, float]]:
        tl = timeline()
        pending = [n for n, m in tl.items() if not {"acquired", "down", "released"} <= m.keys()]
        if pending:
            raise RuntimeError(f"not yet rebooted and back: {pending}; so far "
                               + "; ".join(f"{n} {sorted(m)}" for n, m in tl.items()))
        return tl
    tl, took = timed("reboots", "every host rebooted (recorded restart) and freed its slot", all_back,
                     60 + 30 * len(f.nodes), 1)
    order = sorted(tl.items(), key=lambda kv: kv[1]["acquired"])
    for name, m in order:
        if not m["acquired"] <= m["down"] <= m["released"]:
            raise CheckFailed("reboots", f"{name}: out of order: lock {clock(m['acquired'])}, reboot "
                              f"{clock(m['down'])}, back {clock(m['released'])}")
        say(f"  {name}: lock {clock(m['acquired'])}, reboot {clock(m['down'])}, pyetcd back "
            f"{clock(m.get('pyetcd-restarted', 0))}, slot freed {clock(m['released'])} "
            f"({m['released'] - m['acquired']:.1f} s)")
    for (a, ma), (b, mb) in zip(order, order[1:], strict=False):
        if mb["acquired"] < ma["released"]:
            raise CheckFailed("reboots", f"{a} and {b} rebooted at once: {a} held the lock "
                              f"{clock(ma['acquired'])}-{clock(ma['released'])}, {b} took it at {clock(mb['acquired'])}")
    say(f"{len(f.nodes)} reboots one at a time in {took:.1f} s")

    def freed() -> dict:
        code, doc = f.request(f.nodes[0], "GET", f"/v2/keys/{SEMAPHORE_KEY}")
        sem = json.loads(doc["node"]["value"]) if code == 200 else {}
        if sem.get("holders"):
            raise RuntimeError(f"semaphore {sem}")
        return sem
    sem, _ = timed("reboots", "the reboot lock free again", freed, 10)
    if sem.get("max") != 1:
        raise CheckFailed("reboots", f"semaphore max is {sem.get('max')}, want 1")
    timed("reboots", "pyetcd and the agent active everywhere after the reboots",
          lambda: f.active(f.nodes) and f.active(f.nodes, "pyetcd-locksmithd.service"), 30, 0.5)


def check_leader_off(f: Fleet) -> None:
    leader, _ = timed("leader-off", "a leader", lambda: f.leader(f.members), 20)
    rest = [n for n in f.members if n is not leader]
    # Through the proxies (without any: the other members, when trying the harness with --token-size).
    p1, p2 = (f.proxies or rest)[0], (f.proxies or rest)[-1]
    say(f"powering off the leader {leader.name}'s container (terminate: SIGKILL to its PID 1)")
    off = time.monotonic()
    f.poweroff(leader, abrupt=True)
    # A host that is gone answers nothing (its namespace would still refuse connections): pull its port.
    f.net.set_port(leader.index, up=False)
    say(f"{leader.name} is off ({time.monotonic() - off:.1f} s) and off the bridge")
    value = uuid.uuid4().hex[:12]
    failures: list[str] = []

    def write() -> dict:
        tried = time.monotonic()
        try:
            return f.put(p1, "fleet/after-leader-off", value)
        except RuntimeError as e:
            failures.append(f"+{tried - off:.1f}s ({time.monotonic() - tried:.1f} s): {' '.join(str(e).split())[-120:]}")
            raise
    timed("leader-off", f"a write through {p1.name} (proxy)", write, 60, 0.3)
    wrote = time.monotonic() - off
    for line in failures:
        say(f"  meanwhile a write through {p1.name} failed at {line}")
    timed("leader-off", f"the read through {p2.name} (proxy)",
          lambda: f.get(p2, "fleet/after-leader-off") == value, 20, 0.3)
    read = time.monotonic() - off
    new, _ = timed("leader-off", "a new leader", lambda: f.leader(rest), 20)
    say(f"new leader {new.name}; write through {p1.name} {wrote:.1f} s and read through {p2.name} "
        f"{read:.1f} s after the poweroff")
    for node in [*rest, *f.proxies]:
        timed("leader-off", f"read through {node.name}",
              lambda node=node: f.get(node, "fleet/after-leader-off") == value, 10, 0.3)


def check_proxy_alone(f: Fleet) -> None:
    if not f.proxies:
        raise CheckFailed("proxy-alone", "no proxy in this fleet")
    f.stop_token_store()
    proc = run(f.net.in_hub("curl", "-sS", "--max-time", "2", f"{f.token_base}/version"), check=False)
    if proc.returncode == 0:
        raise CheckFailed("proxy-alone", f"the token store still answers: {proc.stdout[:100]}")
    say("token store stopped")
    proxy = f.proxies[0]
    pid = proxy.unit("MainPID")
    restart = time.monotonic()
    restart_wall = time.time()
    proc = proxy.sh("systemctl", "restart", "pyetcd.service", check=False, timeout=120)
    if proc.returncode != 0:
        raise CheckFailed("proxy-alone", f"{proxy.name}: systemctl restart pyetcd: {proc.stderr.strip()[-300:]}")
    timed("proxy-alone", f"{proxy.name} active", lambda: f.active([proxy]), 60, 0.5)
    if proxy.unit("MainPID") == pid:
        raise CheckFailed("proxy-alone", f"{proxy.name}: pyetcd was not restarted (pid {pid})")
    said = [m for _, m in journal(proxy, "pyetcd.service", restart_wall - 1) if "from cluster file" in m]
    if not said:
        raise CheckFailed("proxy-alone", f"{proxy.name}: its journal since the restart does not say it took the "
                          "peer URLs from its cluster file")
    say(f"{proxy.name} restarted ({time.monotonic() - restart:.1f} s): {said[-1][:160]}")
    value = uuid.uuid4().hex[:12]
    timed("proxy-alone", f"a write through {proxy.name}", lambda: f.put(proxy, "fleet/proxy-alone", value), 30)
    for node in f.nodes:
        if node.running():
            timed("proxy-alone", f"read through {node.name}",
                  lambda node=node: f.get(node, "fleet/proxy-alone") == value, 10, 0.3)
    timed("proxy-alone", f"older data through {proxy.name}",
          lambda: f.get(proxy, "fleet/after-leader-off") is not None, 10)
    say(f"{proxy.name} serves without the token store ({time.monotonic() - restart:.1f} s after the restart)")


CHECKS = [("formation", check_formation), ("replication", check_replication), ("reboots", check_reboots),
          ("leader-off", check_leader_off), ("proxy-alone", check_proxy_alone)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    e2e.common_args(p)
    p.add_argument("--hosts", type=int, default=5, help=f"hosts (default 5; {TOKEN_SIZE} members, the rest "
                   "proxies; 5..9)")
    p.add_argument("--token-size", type=int, default=TOKEN_SIZE, help=f"discovery token size (default "
                   f"{TOKEN_SIZE}); the hosts past it become proxies")
    args = p.parse_args()
    if not 5 <= args.hosts <= 9 or not 1 <= args.token_size <= args.hosts:
        print(f"{LABEL}: FAIL setup: --hosts must be 5..9 and --token-size 1..hosts")
        return 1
    return e2e.run_suite(LABEL, args, lambda work: Fleet(args, work), CHECKS,
                         lambda done: f"{args.hosts} hosts, {done} checks")


if __name__ == "__main__":
    sys.exit(main())
