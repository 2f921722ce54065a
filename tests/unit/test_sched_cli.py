"""pyetcd-sched submit/rm/ls through main(), against pyetcd's pure store."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pyetcd.sched import cli
from pyetcd.sched.layout import Assignment, Layout, MachineInfo, Status, UnitSpec

from tests.unit.test_sched_fakes import FakeClock, StoreKV


@pytest.fixture
def kv(monkeypatch: pytest.MonkeyPatch) -> StoreKV:
    store_kv = StoreKV(FakeClock())
    monkeypatch.setattr(cli, "_kv", lambda args: store_kv)
    return store_kv


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_submit_ls_rm(kv: StoreKV, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "submit", "web", "--restart", "on-failure", "--machine", "m1", "--",
               "python3", "-m", "http.server", "--bind", "127.0.0.1")[0] == 0
    node = kv.store.get("/sched/desired/web", False, False, 0).node
    assert UnitSpec.from_json(node.value or "") == UnitSpec(("python3", "-m", "http.server", "--bind", "127.0.0.1"),
                                                            "on-failure", "m1")
    rc, _, err = run(capsys, "submit", "web", "--", "true")
    assert rc == 1 and "exists" in err
    assert run(capsys, "submit", "web", "--replace", "--", "true")[0] == 0

    lay = Layout()
    kv.set(lay.machine("m1.aa"), MachineInfo("m1", "host1").to_json())
    kv.set(lay.assign("web"), Assignment("m1.aa", 3, UnitSpec(("true",))).to_json())
    kv.set(lay.status("web"), Status("m1.aa", "m1", "running", 42).to_json())
    rc, out, _ = run(capsys, "ls")
    assert rc == 0 and "web" in out and "running" in out and "m1 (m1.aa)" in out and "42" in out
    rc, out, _ = run(capsys, "ls", "--json")
    units: dict[str, Any] = json.loads(out)
    assert units["web"]["state"] == "running" and units["web"]["command"] == ["true"]
    rc, out, _ = run(capsys, "ls", "-m")
    assert "m1.aa" in out and "host1" in out and "scheduler leader: -" in out

    assert run(capsys, "rm", "web")[0] == 0
    rc, _, err = run(capsys, "rm", "web")
    assert rc == 1 and "no unit web" in err


def test_pending_and_bad_usage(kv: StoreKV, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "submit", "job", "--", "sleep", "1")[0] == 0
    rc, out, _ = run(capsys, "ls", "--json")
    assert json.loads(out)["job"]["state"] == "pending"
    rc, _, err = run(capsys, "submit", "job2")
    assert rc == 1 and "no command" in err
    rc, _, err = run(capsys, "submit", "bad/name", "--", "x")
    assert rc == 1 and "bad unit name" in err
    assert run(capsys, "submit", "x", "--restart", "sometimes", "--", "x")[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    rc, _, err = run(capsys, "agent", "--ttl", "1")
    assert rc == 1 and "ttl" in err
    rc, _, err = run(capsys, "agent", "--death-signal", "NOPE")
    assert rc == 1 and "unknown signal" in err
