"""The fault schedule: partitions (symmetric, leader isolation, one-way), crashes with restart (also
in the middle of an fsync, keeping a random prefix of what it wrote), pauses (SIGSTOP/SIGCONT), a full
disk for a while (writes refused with DiskFull, then space freed), an fsync failing with EIO (the member
stops and is restarted), membership changes (one at a time, between 3 and 5 voters) and leadership
transfers.
Every choice comes from the nemesis' own generator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...raft.types import ConfChange, ConfChangeType
from .node import member_record

if TYPE_CHECKING:
    from .runner import Cluster

NODES_MAX = 9  # members ever created, bounds growth when proposed adds keep failing


class Nemesis:
    def __init__(self, cluster: Cluster, interval_ms_max: int = 600) -> None:
        self.cluster = cluster
        self.world = cluster.world
        self.rng = self.world.rng("nemesis")
        self.interval_ms_max = interval_ms_max
        self.running = False
        self.faults = 0

    def start(self) -> None:
        self.running = True
        self.world.after(self.rng.randint(200, self.interval_ms_max), self._act)

    def stop(self) -> None:
        self.running = False

    def _act(self) -> None:
        if not self.running:
            return
        self.world.after(self.rng.randint(50, self.interval_ms_max), self._act)
        c = self.cluster
        live = [n for n in c.nodes.values() if n.alive]
        leader = c.leader()
        actions = ["partition", "isolate_leader", "one_way", "heal", "heal", "crash", "crash_leader",
                   "crash_in_fsync", "crash_in_fsync", "pause", "membership", "membership", "transfer",
                   "disk_full", "disk_full", "fsync_eio"]
        action = self.rng.choice(actions)
        self.faults += 1
        ids = sorted(n.id for n in c.nodes.values() if not n.removed)
        if action == "partition" and len(ids) >= 2:
            shuffled = ids[:]
            self.rng.shuffle(shuffled)
            cut = self.rng.randint(1, len(shuffled) - 1)
            c.net.partition(shuffled[:cut], shuffled[cut:])
            self.world.trace(f"nemesis: partition {sorted(shuffled[:cut])} | {sorted(shuffled[cut:])}")
        elif action == "isolate_leader" and leader is not None:
            c.net.partition([leader.id], [i for i in ids if i != leader.id])
            self.world.trace(f"nemesis: isolate leader n{leader.id}")
        elif action == "one_way" and len(ids) >= 2:
            a, b = self.rng.sample(ids, 2)
            c.net.block_one_way(a, b)
            self.world.trace(f"nemesis: block n{a} -> n{b}")
        elif action == "heal":
            c.net.heal()
            self.world.trace("nemesis: heal network")
        elif action in ("crash", "crash_leader") and live:
            victim = leader if action == "crash_leader" and leader is not None else self.rng.choice(live)
            victim.crash()
            self.world.after(self.rng.randint(20, 1500), self._restart, victim.id)
        elif action == "crash_in_fsync" and live:
            victim = leader if leader is not None and self.rng.random() < 0.6 else self.rng.choice(live)
            self.world.trace(f"nemesis: n{victim.id} will crash during its next fsync")
            victim.crash_in_next_fsync = True
        elif action == "pause" and live:
            victim = leader if leader is not None and self.rng.random() < 0.5 else self.rng.choice(live)
            victim.pause()
            self.world.after(self.rng.randint(50, 1000), victim.resume)
        elif action == "disk_full" and live:
            victim = leader if leader is not None and self.rng.random() < 0.5 else self.rng.choice(live)
            self.world.trace(f"nemesis: n{victim.id}'s disk is full")
            victim.disk.full = True
            self.world.after(self.rng.randint(50, 2000), self._free_disk, victim.id)
        elif action == "fsync_eio" and live:
            victim = leader if leader is not None and self.rng.random() < 0.5 else self.rng.choice(live)
            self.world.trace(f"nemesis: n{victim.id}'s next fsync fails with EIO")
            victim.disk.fail_next_sync = True
        elif action == "membership" and leader is not None:
            self._membership(leader.id)
        elif action == "transfer" and leader is not None:
            others = [v for v in leader.voters if v != leader.id]
            if others:
                to = self.rng.choice(others)
                self.world.trace(f"nemesis: transfer leadership n{leader.id} -> n{to}")
                leader.transfer_leadership(to)

    def _free_disk(self, node_id: int) -> None:
        n = self.cluster.nodes[node_id]
        if n.disk.full:
            self.world.trace(f"nemesis: n{node_id}'s disk has room again")
            n.disk.full = False

    def _restart(self, node_id: int) -> None:
        n = self.cluster.nodes[node_id]
        if not n.alive and not n.removed:
            n.start()

    def _membership(self, leader_id: int) -> None:
        c = self.cluster
        leader = c.nodes[leader_id]
        voters = leader.voters
        grow = len(voters) < 5 and (len(voters) <= 3 or self.rng.random() < 0.5)
        if grow and len(c.nodes) < NODES_MAX:
            new_id = max(c.nodes) + 1
            self.world.trace(f"nemesis: add n{new_id}")
            leader.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, new_id, member_record(new_id).encode()))
            # Like `--initial-cluster-state existing` with the members GET /v2/members listed plus itself:
            # an empty log, then everything from the leader (entries or a snapshot).
            initial = [*leader.server.members.ordered(), member_record(new_id)]
            c.add_node(new_id, initial=initial).start()
        elif len(voters) > 3:
            victim = self.rng.choice(voters)
            self.world.trace(f"nemesis: remove n{victim}")
            leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, victim))
