"""run(seed, steps) -> Report: one whole simulated cluster, start to verdict.

Phase 1 (chaos, `steps` events): clients run while the nemesis injects faults; the safety checkers run
after every event. Phase 2 (heal): faults stop, the network heals, every crashed member restarts, clients
stop issuing; then a leader must appear, every member must catch up with its commit index, and a probe
(two writes arriving together, so batching runs in every seed) must be acknowledged, all within `HEAL_MS` of virtual time (liveness). Finally: no acknowledged
write is missing from any member's state machine (the entry it was answered from is, unchanged, at its
raft index in the applied log, and every member has applied past it), and the client history is
linearizable.

Everything derives from the seed: cluster size, network profile, Raft knobs, the fault schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...raft.types import ConfChange, Message
from ...server.members import Member
from ...server.node import Applied
from ...server.requests import PUT, Request
from ...store.event import Event
from . import linearizability
from .checkers import Checker, SafetyViolation
from .nemesis import Nemesis
from .net import NetProfile, SimNet
from .node import ClientOp, NodeParams, Result, SimNode
from .workload import Workload
from .world import World

HEAL_MS = 30_000
DEFAULT_STEPS = 3000


@dataclass
class Report:
    seed: int
    steps: int
    ok: bool
    failure: str = ""
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def replay(self) -> str:
        return f"python -m pyetcd.testing.sim --seed {self.seed} --steps {self.steps} --trace"

    def summary(self) -> str:
        s = " ".join(f"{k}={v}" for k, v in self.stats.items())
        if self.ok:
            return f"seed {self.seed}: ok ({s})"
        return f"seed {self.seed}: FAILED: {self.failure}\n  stats: {s}\n  replay: {self.replay}"


class Cluster:
    def __init__(self, world: World, params: NodeParams, profile: NetProfile) -> None:
        self.world = world
        self.params = params
        self.net = SimNet(world, profile)
        self.net.deliver = self._deliver
        self.net.snapshot_status = self._snapshot_status
        self.checker = Checker()
        self.nodes: dict[int, SimNode] = {}
        self.conf_changes_applied: set[int] = set()
        self.restart_rng = world.rng("restart")
        self.workload: Workload | None = None

    def add_node(self, node_id: int, founders: tuple[int, ...] = (), initial: list[Member] | None = None) -> SimNode:
        assert node_id not in self.nodes
        n = SimNode(self, node_id, self.params, founders, initial)
        self.nodes[node_id] = n
        return n

    def _deliver(self, m: Message) -> None:
        n = self.nodes.get(m.to)
        if n is not None:
            n.receive(m)

    def _snapshot_status(self, frm: int, to: int, ok: bool) -> None:
        n = self.nodes.get(frm)
        if n is not None:
            n.snapshot_status(to, ok)

    def on_answered(self, node: SimNode, op: ClientOp, applied: Applied) -> None:
        """The origin answered a client from an applied entry: remember where, for the durability check."""
        if self.workload is not None:
            rec = self.workload.history.get(op.op_id)
            if rec is not None and rec.complete is not None and rec.raft_index == 0:
                rec.raft_index = applied.index
                rec.request = applied.request

    def on_conf_applied(self, node: SimNode, index: int, cc: ConfChange, voters: tuple[int, ...]) -> None:
        if index not in self.conf_changes_applied:
            self.conf_changes_applied.add(index)
            self.world.trace(f"conf change at {index} applied: {cc.type.name} n{cc.node_id} -> {voters}")

    def restart_later(self, node_id: int) -> None:
        self.world.after(self.restart_rng.randint(10, 800), self._restart, node_id)

    def _restart(self, node_id: int) -> None:
        n = self.nodes[node_id]
        if not n.alive and not n.removed:
            n.start()

    def leader(self) -> SimNode | None:
        best: SimNode | None = None
        for n in self.nodes.values():
            if n.is_leader and not n.paused and (best is None or n.term > best.term):
                best = n
        return best

    def client_targets(self) -> list[int]:
        return sorted(i for i, n in self.nodes.items() if not n.removed)


def _choose(world: World) -> tuple[int, NodeParams, NetProfile, int]:
    rng = world.rng("setup")
    size = rng.choice((3, 3, 5))
    params = NodeParams(inflight_max=rng.randint(1, 8), entries_per_append_max=rng.randint(1, 16),
                        fsync_ms_max=rng.randint(0, 3), snapshot_every_entries=rng.randint(5, 40),
                        keep_entries=rng.randint(0, 10), pre_vote=rng.random() < 0.8,
                        check_quorum=rng.random() < 0.8)
    profile = NetProfile(delay_ms_max=rng.randint(2, 15), drop_prob=rng.choice((0.0, 0.01, 0.05, 0.1)),
                         dup_prob=rng.choice((0.0, 0.02, 0.05)), slow_prob=rng.choice((0.0, 0.02, 0.1)))
    clients = rng.randint(2, 5)
    return size, params, profile, clients


def run(seed: int, steps: int = DEFAULT_STEPS, trace: bool = False,
        trace_sink: Callable[[str], None] | None = None) -> Report:
    """One seeded run. `trace` prints every event; `trace_sink` gets every trace line instead."""
    world = World(seed, trace, trace_sink)
    size, params, profile, clients = _choose(world)
    cluster = Cluster(world, params, profile)
    founders = tuple(range(1, size + 1))
    for i in founders:
        cluster.add_node(i, founders)
    for i in founders:
        cluster.nodes[i].start()
    ttl = world.rng("setup/ttl").random() < 0.5
    workload = Workload(cluster, clients, keys=("/a", "/b"), ttl_keys=("/ttl/x", "/ttl/y") if ttl else ())
    cluster.workload = workload
    nemesis = Nemesis(cluster)
    stats: dict[str, int] = {"size": size, "pre_vote": int(params.pre_vote),
                             "check_quorum": int(params.check_quorum)}
    failure = ""
    try:
        workload.start()
        nemesis.start()
        nodes = list(cluster.nodes.values())
        for _ in range(steps):
            if not world.step():
                break
            if len(nodes) != len(cluster.nodes):
                nodes = list(cluster.nodes.values())
            cluster.checker.after_event(nodes)
        failure = _heal(world, cluster, workload, nemesis)
        if not failure:
            failure = _final_checks(cluster, workload)
    except SafetyViolation as e:
        failure = str(e)
    stats.update(time_ms=world.now_ms, events=world.events_run, elections=cluster.checker.elections,
                 ops=len(workload.history), acked=workload.completed, msgs=cluster.net.sent,
                 faults=nemesis.faults, nodes=len(cluster.nodes),
                 committed=max(cluster.checker.applied, default=0), ttl_writes=workload.ttl_writes,
                 syncs=len(cluster.checker.expired),
                 expired=sum(len(keys) for keys, _ in cluster.checker.expired.values()))
    for n in cluster.nodes.values():
        n.fold_counts()
        for k, v in n.counts.items():
            stats[k] = stats.get(k, 0) + v
    return Report(seed, steps, not failure, failure, stats)


def _run_until(world: World, cluster: Cluster, deadline_ms: int, done: object) -> bool:
    nodes = list(cluster.nodes.values())
    while world.now_ms < deadline_ms:
        if done():  # type: ignore[operator]
            return True
        if not world.step():
            return bool(done())  # type: ignore[operator]
        cluster.checker.after_event(nodes)
    return bool(done())  # type: ignore[operator]


def _members(cluster: Cluster) -> list[SimNode]:
    lead = cluster.leader()
    if lead is None:
        return []
    return [cluster.nodes[v] for v in lead.voters if v in cluster.nodes]


def _converged(cluster: Cluster) -> bool:
    lead = cluster.leader()
    if lead is None or lead.driver is None:
        return False
    st = lead.driver.status()
    if lead.driver.raft.log_term(st.commit) != st.term or lead.busy:
        return False
    return all(m.alive and m.applied == st.commit for m in _members(cluster))


def _heal(world: World, cluster: Cluster, workload: Workload, nemesis: Nemesis) -> str:
    nemesis.stop()
    workload.stop()
    cluster.net.heal()
    cluster.net.faults_enabled = False
    world.trace("=== heal: faults off, restarting crashed members ===")
    for n in cluster.nodes.values():
        n.disk.full = False
        n.disk.fail_next_sync = False
        if n.removed:
            continue
        if not n.alive:
            n.start()
        elif n.paused:
            n.resume()
    start = world.now_ms
    if not _run_until(world, cluster, start + HEAL_MS, lambda: workload.in_flight == 0 and _converged(cluster)):
        lead = cluster.leader()
        who = "none" if lead is None else f"n{lead.id}"
        return (f"liveness: no converged leader {HEAL_MS} ms after healing (leader {who}, "
                f"in-flight ops {workload.in_flight})")
    # Probe: a write through the leader must be acknowledged. Like a real client it retries (with a
    # new request) when an attempt gets no answer: the leader may still lose its uncommitted tail, e.g.
    # to a leadership transfer that was pending when the faults stopped.
    probe_done: list[Result] = []
    deadline = world.now_ms + HEAL_MS
    attempt = 0
    while not probe_done and world.now_ms < deadline:
        lead = cluster.leader()
        if lead is not None:
            # Two writes that arrive together (the leader is stopped while they queue), so every seed runs
            # the driver's batching: both go to Raft as one proposal.
            lead.pause()
            for _ in range(2):
                attempt -= 1  # negative ids never collide with the workload's
                req = Request(PUT, "/probe", value=f"probe{-attempt}", time_ns=lead.now_ns())
                lead.submit(ClientOp(attempt, "put", "/probe", req,
                                     on_done=lambda o, res: probe_done.append(res) if isinstance(res, Event) else None))
            lead.resume()
        _run_until(world, cluster, min(deadline, world.now_ms + 1000), lambda: bool(probe_done))
    if not probe_done or not _run_until(world, cluster, deadline, lambda: _converged(cluster)):
        return f"liveness: no write acknowledged within {HEAL_MS} ms after healing ({-attempt} attempts)"
    return ""


def _final_checks(cluster: Cluster, workload: Workload) -> str:
    members = _members(cluster)
    applied = cluster.checker.applied
    for rec in workload.acked_writes():
        e = applied.get(rec.raft_index)
        if rec.request is None or e is None or Request.decode(e.data) != rec.request:
            return (f"durability: acknowledged write #{rec.op_id} ({rec.kind} {rec.path}={rec.value}) was "
                    f"answered from raft index {rec.raft_index}, which the cluster applied as {e!r}")
        for m in members:
            if m.applied < rec.raft_index:
                return (f"durability: acknowledged write #{rec.op_id} ({rec.kind} {rec.path}={rec.value}) at "
                        f"raft index {rec.raft_index} is missing from n{m.id} (applied {m.applied})")
    result = linearizability.check(workload.ops())
    if not result.ok:
        return f"linearizability: {result.message}"
    return ""
