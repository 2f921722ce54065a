"""AddressWatch against real netlink, inside throwaway network namespaces.

Each scenario runs as one Python process inside the namespace (`ip netns exec`): it builds the watch,
changes addresses with `ip`, and after each step waits for the watch's lines with select() on its fd
(never a sleep), then prints what it saw as JSON. A step that must report nothing is followed by one
that reports something: netlink keeps order, so the later line proves the earlier events were read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyetcd.runtime.addrwatch import AddressWatch

from tests.support.servers import REPO

_DRIVER = r"""
import json, os, select, socket, subprocess, sys, time
from pyetcd.runtime.addrwatch import AddressWatch

spec = json.loads(sys.argv[1])
w = AddressWatch(spec["advertised"])
out = {"advertised": list(w.advertised), "blocking": os.get_blocking(w.fileno())}
out["start"] = {"missing": sorted(w.missing), "status": w.status(), "lines": w.on_readable()}
if spec.get("rcvbuf"):  # shrink the receive buffer so that a burst of events overflows it
    s = socket.socket(fileno=os.dup(w.fileno()))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, spec["rcvbuf"])
    s.close()
out["steps"] = []
for step in spec["steps"]:
    for args in step.get("ip", []):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)
    if "batch" in step:
        subprocess.run(["ip", "-batch", "-"], input=step["batch"], text=True, check=True, timeout=60)
    lines = []
    if step.get("until"):
        deadline = time.monotonic() + 10
        while not any(step["until"] in line for line in lines):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([w], [], [], left)[0]:
                lines.append("TIMEOUT")
                break
            lines += w.on_readable()
    out["steps"].append({"lines": lines, "missing": sorted(w.missing), "status": w.status()})
out["overflows"] = w.overflows
w.close()
w.close()  # twice is fine
out["closed_fileno"] = w.fileno()
print(json.dumps(out))
"""

Run = Callable[..., dict[str, Any]]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def run_in_netns() -> Iterator[Run]:
    """Runs the driver in a fresh namespace: d0 (10.0.0.5/24, fd00::5/64), d1 (192.168.7.9/24), veth."""
    made: list[str] = []

    def run(advertised: list[str], steps: list[dict[str, Any]], rcvbuf: int = 0) -> dict[str, Any]:
        ns = f"pyetcd-aw-{os.getpid()}-{len(made)}"
        created = _ip("netns", "add", ns)
        if created.returncode != 0:
            pytest.skip(f"cannot create a network namespace: {created.stderr.strip()}")
        made.append(ns)
        setup = [("link", "set", "lo", "up")]
        for dev, addrs in (("d0", ("10.0.0.5/24", "fd00::5/64")), ("d1", ("192.168.7.9/24",))):
            peer = "p" + dev[1:]  # veth pairs: the dummy module is not available everywhere
            setup += [("link", "add", dev, "type", "veth", "peer", "name", peer),
                      ("link", "set", peer, "up"), ("link", "set", dev, "up")]
            setup += [("addr", "add", a, "dev", dev, *(("nodad",) if ":" in a else ())) for a in addrs]
        for args in setup:
            done = _ip("-n", ns, *args)
            assert done.returncode == 0, (args, done.stderr)
        spec = {"advertised": advertised, "steps": steps, "rcvbuf": rcvbuf}
        proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _DRIVER, json.dumps(spec)],
                              capture_output=True, text=True, timeout=120, cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    yield run
    for ns in made:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def test_advertised_hosts_keeps_ip_literals_only() -> None:
    urls = ["http://10.0.0.5:2379,https://[FD00:0::5]:2379", "http://db.example.com:2379",
            "http://127.0.0.1:2379", "http://[::1]:2380", "http://0.0.0.0:2379", "http://10.0.0.5:2380", "",
            "http://[fd00::6:2379"]
    assert AddressWatch.advertised_hosts(urls) == ["10.0.0.5", "fd00::5"]


def test_removal_and_return_are_reported_and_shown_in_status(run_in_netns: Run) -> None:
    out = run_in_netns(["10.0.0.5", "fd00::5", "db.example.com", "127.0.0.1"], [
        {"ip": [["addr", "del", "10.0.0.5/24", "dev", "d0"]], "until": "was removed"},
        {"ip": [["addr", "add", "10.0.0.5/24", "dev", "d0"]], "until": "is back"},
        {"ip": [["addr", "del", "fd00::5/64", "dev", "d0"]], "until": "was removed"},
        {"ip": [["addr", "add", "fd00::5/64", "dev", "d0", "nodad"]], "until": "is back"},
    ])
    assert out["advertised"] == ["10.0.0.5", "fd00::5"]  # the name and loopback are not watched
    assert out["blocking"] is False
    assert out["start"] == {"missing": [], "status": "", "lines": []}
    removed4, back4, removed6, back6 = out["steps"]
    assert removed4 == {"lines": ["advertised address 10.0.0.5 was removed from d0"], "missing": ["10.0.0.5"],
                        "status": "advertised address 10.0.0.5 is missing"}
    assert back4 == {"lines": ["advertised address 10.0.0.5 is back (on d0)"], "missing": [], "status": ""}
    assert removed6 == {"lines": ["advertised address fd00::5 was removed from d0"], "missing": ["fd00::5"],
                        "status": "advertised address fd00::5 is missing"}
    assert back6 == {"lines": ["advertised address fd00::5 is back (on d0)"], "missing": [], "status": ""}
    assert out["overflows"] == 0
    assert out["closed_fileno"] == -1


def test_unrelated_changes_report_nothing(run_in_netns: Run) -> None:
    out = run_in_netns(["10.0.0.5"], [
        {"ip": [["addr", "add", "10.0.0.6/24", "dev", "d0"], ["addr", "add", "10.0.0.55/32", "dev", "d1"],
                ["addr", "add", "fd00::55/64", "dev", "d0", "nodad"], ["addr", "del", "10.0.0.6/24", "dev", "d0"],
                ["addr", "del", "192.168.7.9/24", "dev", "d1"], ["link", "set", "d1", "down"]]},
        # the marker: netlink is ordered, so every event above was read and ignored before this line
        {"ip": [["addr", "del", "10.0.0.5/24", "dev", "d0"]], "until": "was removed"},
    ])
    unrelated, marker = out["steps"]
    assert unrelated == {"lines": [], "missing": [], "status": ""}
    assert marker["lines"] == ["advertised address 10.0.0.5 was removed from d0"]


def test_absent_address_is_missing_at_once(run_in_netns: Run) -> None:
    out = run_in_netns(["10.0.0.5", "10.0.0.99", "fd00::99"], [
        {"ip": [["addr", "add", "10.0.0.99/24", "dev", "d1"]], "until": "is back"},
    ])
    assert out["start"]["missing"] == ["10.0.0.99", "fd00::99"]
    assert out["start"]["status"] == "advertised addresses 10.0.0.99, fd00::99 are missing"
    assert out["steps"] == [{"lines": ["advertised address 10.0.0.99 is back (on d1)"], "missing": ["fd00::99"],
                             "status": "advertised address fd00::99 is missing"}]


def test_missing_only_when_gone_from_every_interface(run_in_netns: Run) -> None:
    out = run_in_netns(["10.0.0.5"], [
        {"ip": [["addr", "add", "10.0.0.5/32", "dev", "d1"], ["addr", "del", "10.0.0.5/24", "dev", "d0"]]},
        {"ip": [["link", "del", "d1"]], "until": "was removed"},  # deleting the interface drops its addresses
    ])
    still_on_d1, gone = out["steps"]
    assert still_on_d1 == {"lines": [], "missing": [], "status": ""}
    assert gone["lines"] == ["advertised address 10.0.0.5 was removed from d1"]
    assert gone["missing"] == ["10.0.0.5"]


def test_overflowing_buffer_is_recovered_by_a_dump(run_in_netns: Run) -> None:
    def burst(verb: str) -> str:
        return "".join(f"address {verb} 10.1.{i // 250}.{i % 250 + 1}/32 dev d1\n" for i in range(400))

    out = run_in_netns(["10.0.0.5", "192.168.7.9"], [
        {"batch": burst("add") + "address del 10.0.0.5/24 dev d0\n", "until": "was removed"},
        {"batch": burst("del") + "address add 10.0.0.5/24 dev d0\n", "until": "is back"},
    ], rcvbuf=1)  # the kernel's minimum (a few KiB)
    removed, back = out["steps"]
    assert removed["lines"] == ["advertised address 10.0.0.5 was removed from d0"]
    assert removed["missing"] == ["10.0.0.5"]
    assert back == {"lines": ["advertised address 10.0.0.5 is back (on d0)"], "missing": [], "status": ""}
    assert out["overflows"] >= 2  # once per burst at least: the lines came from dumps
