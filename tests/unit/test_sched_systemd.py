"""SystemdRunner's command lines and its reading of `systemctl show`, with a fake subprocess.run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyetcd.sched.runner import RunnerError
from pyetcd.sched.systemd import SystemdRunner, detect_own_unit, parse_show

from tests.unit.test_sched_fakes import FakeClock


class FakeSystemd:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.show: dict[str, dict[str, str]] = {}
        self.fail_run = False

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        if argv[0] == "systemd-run" and self.fail_run:
            return subprocess.CompletedProcess(argv, 1, "", "Unit already exists")
        if argv[:2] == ["systemctl", "show"] or argv[:3] == ["systemctl", "--user", "show"]:
            names = [a for a in argv if a.endswith(".service")]
            text = "\n\n".join("\n".join(f"{k}={v}" for k, v in {"Id": n, **self.show.get(n, {})}.items())
                               for n in names)
            return subprocess.CompletedProcess(argv, 0, text + "\n", "")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_start_builds_a_bound_transient_service() -> None:
    fake = FakeSystemd()
    fake.show["pyetcd-sched-web.service"] = {"LoadState": "loaded", "ActiveState": "active", "MainPID": "77"}
    r = SystemdRunner(bind_to="pyetcd-sched-agent.service", run=fake)
    assert r.start("web", ["/bin/web", "--port", "80"], {"SCHED_UNIT": "web"}) == 77
    run = next(c for c in fake.calls if c[0] == "systemd-run")
    assert run == ["systemd-run", "--unit=pyetcd-sched-web.service", "--quiet",
                   "--property=KillMode=control-group", "--property=BindsTo=pyetcd-sched-agent.service",
                   "--property=After=pyetcd-sched-agent.service", "--setenv=SCHED_UNIT=web", "--",
                   "/bin/web", "--port", "80"]
    assert r.running() == {"web"}


def test_user_mode_and_start_failure() -> None:
    fake = FakeSystemd()
    fake.fail_run = True
    r = SystemdRunner(user=True, run=fake)
    with pytest.raises(RunnerError, match="already exists"):
        r.start("x", ["true"], {})
    assert all(c[1] == "--user" for c in fake.calls)
    assert r.running() == set()


def test_poll_reports_exits_and_escalates_stops() -> None:
    clock = FakeClock()
    fake = FakeSystemd()
    r = SystemdRunner(run=fake, clock=clock)
    for u in ("a", "b", "c"):
        fake.show[f"pyetcd-sched-{u}.service"] = {"LoadState": "loaded", "ActiveState": "active"}
        r.start(u, ["x"], {})
    fake.show["pyetcd-sched-a.service"] = {"LoadState": "not-found", "ActiveState": "inactive"}
    fake.show["pyetcd-sched-b.service"] = {"LoadState": "loaded", "ActiveState": "failed",
                                           "ExecMainCode": "killed", "ExecMainStatus": "9"}
    assert sorted(r.poll()) == [("a", 0), ("b", -9)]
    assert ["systemctl", "reset-failed", "pyetcd-sched-b.service"] in fake.calls
    r.stop("c", 2.0)
    assert fake.calls[-1] == ["systemctl", "kill", "--signal=SIGTERM", "pyetcd-sched-c.service"]
    r.poll()
    assert fake.calls[-1][:2] == ["systemctl", "show"]  # not yet
    clock.advance(2.0)
    r.poll()
    assert fake.calls[-1] == ["systemctl", "kill", "--signal=SIGKILL", "pyetcd-sched-c.service"]


def test_prepare_stops_leftovers() -> None:
    fake = FakeSystemd()
    SystemdRunner(run=fake).prepare()
    assert fake.calls[0] == ["systemctl", "stop", "pyetcd-sched-*.service"]


def test_parse_show_and_detect_own_unit(tmp_path: Path) -> None:
    assert parse_show("Id=a.service\nActiveState=active\n\nId=b.service\nExecMainStatus=3\n") == {
        "a.service": {"Id": "a.service", "ActiveState": "active"},
        "b.service": {"Id": "b.service", "ExecMainStatus": "3"}}
    cg = tmp_path / "cgroup"
    cg.write_text("0::/system.slice/pyetcd-sched-agent.service\n")
    assert detect_own_unit(str(cg)) == "pyetcd-sched-agent.service"
    cg.write_text("0::/user.slice/user-1000.slice/session-2.scope\n")
    assert detect_own_unit(str(cg)) is None
    assert detect_own_unit(str(tmp_path / "missing")) is None
