"""The agent against pyetcd's pure store and a fake runner: running, reporting, fencing, handing back."""

from __future__ import annotations

import json

import pytest
from pyetcd.sched.agent import Agent, AgentConfig
from pyetcd.sched.layout import Assignment, Layout, UnitSpec
from pyetcd.store.errors import V2Error

from tests.unit.test_sched_fakes import FakeClock, FakeRunner, StoreKV

TTL = 4
LAY = Layout()


def make_agent(clock: FakeClock | None = None, **config: object) -> tuple[Agent, StoreKV, FakeRunner]:
    clock = clock or FakeClock(10.0)
    kv = StoreKV(clock)
    runner = FakeRunner(clock)
    agent = Agent(kv, LAY, AgentConfig("m1", ttl_s=TTL, restart_delay_s=1.0, **config),  # type: ignore[arg-type]
                  runner, clock=clock, sleep=clock.advance)
    assert agent.register()
    return agent, kv, runner


def assign(kv: StoreKV, agent: Agent, unit: str, restart: str = "always", stop: bool = False) -> int:
    a = Assignment(agent.machine_id, 1, UnitSpec(("sleep", "9"), restart), stop)
    return int(StoreKV(kv.clock, kv.store).set(LAY.assign(unit), a.to_json()).node["modifiedIndex"])


def steps(agent: Agent, n: int, dt: float = 0.1) -> None:
    for _ in range(n):
        agent.step()
        agent.clock.advance(dt)  # type: ignore[attr-defined]


def status(kv: StoreKV, unit: str) -> dict[str, object] | None:
    try:
        node = kv.store.get(LAY.status(unit), False, False, kv.now_ns()).node
    except V2Error:
        return None
    return json.loads(node.value or "{}")


def test_registers_runs_and_reports() -> None:
    agent, kv, runner = make_agent()
    assert agent.machine_id.startswith("m1.")
    node = kv.store.get(LAY.machine(agent.machine_id), False, False, kv.now_ns()).node
    assert node.ttl == TTL and json.loads(node.value or "")["name"] == "m1"
    assign(kv, agent, "u1")
    steps(agent, 3)
    assert runner.running() == {"u1"}
    st = status(kv, "u1")
    assert st is not None and st["state"] == "running" and st["machine"] == agent.machine_id
    steps(agent, 60)  # 6 s: keys stay alive through refreshes, no restart
    kv.expire()
    assert status(kv, "u1") is not None and runner.started == ["u1"]
    assert kv.store.get(LAY.machine(agent.machine_id), False, False, kv.now_ns()) is not None


def test_restart_policies() -> None:
    agent, kv, runner = make_agent()
    for unit, policy in (("always", "always"), ("onfail", "on-failure"), ("never", "no"), ("clean", "on-failure")):
        assign(kv, agent, unit, policy)
    steps(agent, 3)
    assert runner.running() == {"always", "onfail", "never", "clean"}
    for unit in ("always", "onfail", "never"):
        runner.exit(unit, 3)
    runner.exit("clean", 0)
    steps(agent, 2)
    st = status(kv, "never")
    assert st is not None and st["state"] == "failed" and st["code"] == 3
    steps(agent, 15)  # past the restart delay
    assert runner.running() == {"always", "onfail"}
    st = status(kv, "clean")
    assert st is not None and st["state"] == "exited" and st["code"] == 0


def test_fences_before_the_machine_key_can_expire_and_resumes() -> None:
    agent, kv, runner = make_agent()
    assign(kv, agent, "u1")
    steps(agent, 3)
    assert runner.running() == {"u1"}
    kv.down_until = kv.clock() + 100
    assert agent.lease is not None and agent.lease.last_ok is not None
    last_ok = agent.lease.last_ok
    while runner.kills == 0:
        agent.step()
        kv.clock.advance(0.01)
        assert kv.clock() < last_ok + TTL, "no fence before the key could expire"
    assert kv.clock() <= last_ok + 0.5 * TTL + 0.2  # fenced about at fence_after * ttl
    assert runner.running() == set()
    # No request may hang past the fence deadline while units run.
    for t, timeout in kv.timeouts:
        if timeout is not None and t < last_ok + 0.5 * TTL:
            assert t + timeout <= last_ok + 0.5 * TTL + 0.1 or timeout <= 0.1
    steps(agent, 5)
    assert runner.started == ["u1"]  # nothing starts while unsafe
    kv.down_until = -1  # back before the key expired: the same incarnation resumes
    mid = agent.machine_id
    steps(agent, 5)
    assert agent.machine_id == mid and runner.running() == {"u1"}


def test_a_lost_machine_key_means_a_new_incarnation() -> None:
    agent, kv, runner = make_agent()
    assign(kv, agent, "u1")
    steps(agent, 3)
    old = agent.machine_id
    StoreKV(kv.clock, kv.store).delete(LAY.machine(old))
    steps(agent, 10)
    assert runner.kills == 1 and runner.running() == set()
    assert agent.machine_id != old and agent.machine_id.startswith("m1.")
    assert agent.units == {}  # the old assignment names the old incarnation: not ours


def test_stop_mark_is_obeyed_then_handed_back() -> None:
    agent, kv, runner = make_agent()
    runner.stop_delay = 0.3
    assign(kv, agent, "u1")
    steps(agent, 3)
    assign(kv, agent, "u1", stop=True)
    steps(agent, 2)
    assert "u1" in runner.stopping
    assert kv.store.get(LAY.assign("u1"), False, False, kv.now_ns()) is not None  # not before it stopped
    steps(agent, 5)
    assert runner.running() == set()
    with pytest.raises(V2Error):
        kv.store.get(LAY.assign("u1"), False, False, kv.now_ns())
    assert status(kv, "u1") is None and agent.units == {}


def test_drain_stops_units_then_releases_the_machine() -> None:
    agent, kv, runner = make_agent()
    runner.stop_delay = 0.5
    assign(kv, agent, "u1")
    assign(kv, agent, "u2")
    steps(agent, 3)
    assert runner.running() == {"u1", "u2"}

    def stopping() -> bool:  # the fake watch does not block: move time here
        kv.clock.advance(0.05)
        return True

    agent.run(stopping)
    assert runner.running() == set()
    assert kv.store.get("/sched/machines", True, False, kv.now_ns()).node.nodes == ()
    assert kv.store.get("/sched/status", True, False, kv.now_ns()).node.nodes == ()


@pytest.mark.parametrize("bad", [{"ttl_s": 1}, {"fence_after": 0.9}, {"kill_grace_s": 2.0}])
def test_config_must_leave_a_margin(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AgentConfig("m", **{"ttl_s": 4, **bad}).validate()  # type: ignore[arg-type]
