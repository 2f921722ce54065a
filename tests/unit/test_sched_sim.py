"""Seeded simulation of the whole scheme: agents and schedulers on pyetcd's pure store under a fake clock.

Faults: an agent or a scheduler cut off from the store for a while, an agent killed (its units die with
it, as with the death signal) and replaced by a new incarnation, units removed, replaced and submitted.
After every step of every actor the simulation checks the invariant: no unit runs on two machines.
At the end, with faults over, every desired unit runs exactly once.

Actors take turns, the clock moving a little between turns; a failing request "hangs" for at most
MAX_HANG while everyone else waits, which keeps every agent within the safety argument's assumption
(never frozen longer than its margin).
"""

from __future__ import annotations

import random

import pytest
from pyetcd.sched.agent import Agent, AgentConfig
from pyetcd.sched.layout import Layout, UnitSpec
from pyetcd.sched.scheduler import Scheduler, SchedulerConfig
from pyetcd.store.store import Store

from tests.unit.test_sched_fakes import FakeClock, FakeRunner, StoreKV

TTL = 3
MAX_HANG = 0.05
LAY = Layout()


class Sim:
    def __init__(self, seed: int, n_agents: int = 4, n_units: int = 12, force_both_lead: bool = False) -> None:
        self.rng = random.Random(seed)
        self.clock = FakeClock(100.0)
        self.store = Store()
        self.admin = StoreKV(self.clock, self.store)
        self.agents: dict[str, tuple[Agent, FakeRunner]] = {}
        self.dead_runners: list[FakeRunner] = []
        self.schedulers = [Scheduler(self._kv(), LAY, SchedulerConfig(ttl_s=TTL), ident=f"s{i}", clock=self.clock,
                                     sleep=self.clock.advance) for i in range(2)]
        if force_both_lead:  # the lock is only an optimisation: safety must hold without it
            for s in self.schedulers:
                s.leading = lambda now=None: True  # type: ignore[method-assign]
        self.desired: set[str] = set()
        for i in range(n_units):
            self.submit(f"u{i}")
        for i in range(n_agents):
            self.start_agent(f"a{i}")
        self.max_running = 0

    def _kv(self) -> StoreKV:
        return StoreKV(self.clock, self.store, random.Random(self.rng.random()), max_hang=MAX_HANG)

    def submit(self, unit: str, replace: bool = False) -> None:
        spec = UnitSpec(("run", unit), self.rng.choice(["always", "on-failure"]))
        self.admin.set(LAY.desired(unit), spec.to_json(), prev_exist=None if replace else False)
        self.desired.add(unit)

    def start_agent(self, name: str) -> None:
        runner = FakeRunner(self.clock, stop_delay=self.rng.uniform(0, 0.4))
        agent = Agent(self._kv(), LAY, AgentConfig(name, ttl_s=TTL, restart_delay_s=0.3), runner,
                      clock=self.clock, sleep=self.clock.advance)
        assert agent.register()
        self.agents[name] = (agent, runner)

    def runners(self) -> list[FakeRunner]:
        return [r for _, r in self.agents.values()] + self.dead_runners

    def check(self) -> None:
        seen: dict[str, int] = {}
        for r in self.runners():
            for unit in r.running_units:
                seen[unit] = seen.get(unit, 0) + 1
        twice = {u: n for u, n in seen.items() if n > 1}
        assert not twice, f"t={self.clock():.2f}: running on two machines at once: {twice}"
        self.max_running = max(self.max_running, len(seen))

    def fault(self) -> None:
        roll = self.rng.random()
        if roll < 0.3:  # cut an actor off for a while (longer than the TTL sometimes)
            actor = self.rng.choice([a for a, _ in self.agents.values()] + self.schedulers)
            actor.kv.down_until = self.clock() + self.rng.uniform(0.3, 2.5 * TTL)  # type: ignore[attr-defined]
        elif roll < 0.5 and len(self.agents) > 1:  # kill -9 an agent; a new incarnation comes up later
            name = self.rng.choice(sorted(self.agents))
            _, runner = self.agents.pop(name)
            runner.die()
            self.dead_runners.append(runner)
        elif roll < 0.6:
            for name in {f"a{i}" for i in range(4)} - set(self.agents):
                self.start_agent(name)
        elif roll < 0.75 and self.desired:
            unit = self.rng.choice(sorted(self.desired))
            self.admin.delete(LAY.desired(unit))
            self.desired.discard(unit)
        elif roll < 0.85 and self.desired:
            self.submit(self.rng.choice(sorted(self.desired)), replace=True)
        else:
            self.submit(f"n{self.rng.randint(0, 30)}", replace=True)

    def turn(self) -> None:
        actors: list[Agent | Scheduler] = [a for a, _ in self.agents.values()] + self.schedulers
        self.rng.shuffle(actors)
        for actor in actors:
            actor.step()
            self.admin.expire()  # the leader's SYNC
            self.check()
        self.clock.advance(self.rng.uniform(0.01, 0.06))

    def run(self, seconds: float, faults_per_second: float) -> None:
        end = self.clock() + seconds
        while self.clock() < end:
            if self.rng.random() < faults_per_second * 0.05:
                self.fault()
            self.turn()

    def heal(self) -> None:
        for a, _ in self.agents.values():
            a.kv.down_until = -1  # type: ignore[attr-defined]
        for s in self.schedulers:
            s.kv.down_until = -1  # type: ignore[attr-defined]
        for name in {f"a{i}" for i in range(4)} - set(self.agents):
            self.start_agent(name)

    def running_per_unit(self) -> dict[str, int]:
        seen: dict[str, int] = {}
        for r in self.runners():
            for unit in r.running_units:
                seen[unit] = seen.get(unit, 0) + 1
        return seen


@pytest.mark.parametrize("seed", range(6))
def test_no_unit_runs_twice_under_faults(seed: int) -> None:
    sim = Sim(seed)
    sim.run(5, faults_per_second=0)
    assert sim.running_per_unit() == {u: 1 for u in sim.desired}, "not all placed without faults"
    sim.run(60, faults_per_second=1.0)
    assert sum(r.kills for r in sim.runners()) > 0, "no agent ever fenced: the faults were too mild"
    sim.heal()
    sim.run(4 * TTL, faults_per_second=0)
    assert sim.running_per_unit() == {u: 1 for u in sim.desired}


@pytest.mark.parametrize("seed", range(3))
def test_two_schedulers_acting_at_once_are_still_safe(seed: int) -> None:
    sim = Sim(100 + seed, force_both_lead=True)
    sim.run(40, faults_per_second=1.0)
    sim.heal()
    sim.run(4 * TTL, faults_per_second=0)
    assert sim.running_per_unit() == {u: 1 for u in sim.desired}
    # Every assignment was created once per placement and only ever moved off a gone machine: check the
    # store's history has no two creates of one assign key without a removal between them.
    live: set[str] = set()
    for ev in sim.store.history.events:
        key = ev.node.key
        if not key.startswith(LAY.assign_dir + "/"):
            continue
        if ev.action == "create":
            assert key not in live, f"{key} created twice"
            live.add(key)
        elif ev.action in ("delete", "compareAndDelete", "expire"):
            live.discard(key)
