"""What the scheduler should write, computed from one consistent view of the keyspace (pure).

Per unit, with D its desired spec (generation g) and A its assignment:
  no A, D present                     -> Assign D to the least loaded live machine that fits (create)
  A's machine gone (key expired)      -> Move A to a live machine with D's spec (CAS), or Drop A (CAD)
                                         when the unit is no longer desired or nothing fits
  A's machine live, A is current      -> nothing
  A's machine live, D gone, replaced  -> MarkStop (CAS "stop": true); the holder stops the unit and
    (generation != g) or not fitting     deletes A itself, and the next pass assigns D afresh
  A's machine live, A marked stop     -> nothing: wait for the holder
A unit is never taken from a live machine by the scheduler alone: that is the safety argument's half
that lives here (see the package docstring). Every action names the assignment version it was computed
from (prevIndex), so a stale view only makes writes fail, never wrong.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from .layout import Assignment, Layout, MachineInfo, UnitSpec
from .mirror import Entry


@dataclass(frozen=True, slots=True)
class Assign:
    unit: str
    assignment: Assignment


@dataclass(frozen=True, slots=True)
class Move:
    unit: str
    prev_index: int
    assignment: Assignment


@dataclass(frozen=True, slots=True)
class MarkStop:
    unit: str
    prev_index: int
    assignment: Assignment


@dataclass(frozen=True, slots=True)
class Drop:
    unit: str
    prev_index: int


Action = Assign | Move | MarkStop | Drop


@dataclass(frozen=True, slots=True)
class View:
    desired: dict[str, tuple[UnitSpec, int]]  # unit -> (spec, generation)
    assigns: dict[str, tuple[Assignment | None, int]]  # unit -> (assignment or None if unreadable, index)
    machines: dict[str, MachineInfo]  # live machine id -> info

    @staticmethod
    def from_entries(layout: Layout, entries: dict[str, Entry]) -> View:
        desired: dict[str, tuple[UnitSpec, int]] = {}
        for unit, e in layout.children(entries, layout.desired_dir).items():
            try:
                desired[unit] = (UnitSpec.from_json(e.value), e.modified_index)
            except (ValueError, KeyError, TypeError):
                continue  # unreadable desired work is not work
        assigns: dict[str, tuple[Assignment | None, int]] = {}
        for unit, e in layout.children(entries, layout.assign_dir).items():
            try:
                assigns[unit] = (Assignment.from_json(e.value), e.modified_index)
            except (ValueError, KeyError, TypeError):
                assigns[unit] = (None, e.modified_index)
        machines: dict[str, MachineInfo] = {}
        for mid, e in layout.children(entries, layout.machines_dir).items():
            try:
                machines[mid] = MachineInfo.from_json(e.value)
            except (ValueError, KeyError, TypeError):
                machines[mid] = MachineInfo(mid)
        return View(desired, assigns, machines)


def fits(spec: UnitSpec, machine_id: str, info: MachineInfo) -> bool:
    return spec.machine is None or spec.machine in (info.name, machine_id)


def plan(view: View) -> list[Action]:
    load: Counter[str] = Counter()
    for a, _ in view.assigns.values():
        if a is not None and a.machine in view.machines:
            load[a.machine] += 1

    def choose(spec: UnitSpec) -> str | None:
        candidates = [m for m, info in view.machines.items() if fits(spec, m, info)]
        if not candidates:
            return None
        best = min(candidates, key=lambda m: (load[m], m))
        load[best] += 1
        return best

    actions: list[Action] = []
    for unit in sorted(set(view.desired) | set(view.assigns)):
        d = view.desired.get(unit)
        current = view.assigns.get(unit)
        if current is None:
            if d is not None and (m := choose(d[0])) is not None:
                actions.append(Assign(unit, Assignment(m, d[1], d[0])))
            continue
        a, index = current
        if a is None or a.machine not in view.machines:
            # Nobody runs it: an unreadable assignment, or its machine's key is gone (that agent has
            # fenced itself, and a gone key never comes back).
            target = choose(d[0]) if d is not None else None
            if d is not None and target is not None:
                actions.append(Move(unit, index, Assignment(target, d[1], d[0])))
            else:
                actions.append(Drop(unit, index))
            continue
        if a.stop:
            continue
        info = view.machines[a.machine]
        if d is None or d[1] != a.generation or not fits(d[0], a.machine, info):
            actions.append(MarkStop(unit, index, replace(a, stop=True)))
    return actions
