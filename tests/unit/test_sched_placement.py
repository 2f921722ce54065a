"""The scheduler's plan: placement, moves off dead machines only, the stop handshake."""

from __future__ import annotations

import random

from pyetcd.sched.layout import Assignment, Layout, MachineInfo, UnitSpec
from pyetcd.sched.mirror import Entry
from pyetcd.sched.placement import Assign, Drop, MarkStop, Move, View, plan

SPEC = UnitSpec(("sleep", "1000"))


def view(desired: dict[str, tuple[UnitSpec, int]] | None = None,
         assigns: dict[str, tuple[Assignment | None, int]] | None = None,
         machines: dict[str, str] | None = None) -> View:
    return View(desired or {}, assigns or {}, {m: MachineInfo(name) for m, name in (machines or {}).items()})


def test_new_units_are_spread_over_live_machines() -> None:
    v = view({f"u{i}": (SPEC, 10 + i) for i in range(7)}, machines={"a.1": "a", "b.1": "b", "c.1": "c"})
    actions = plan(v)
    assert all(isinstance(a, Assign) for a in actions)
    per = {m: sum(1 for a in actions if isinstance(a, Assign) and a.assignment.machine == m) for m in v.machines}
    assert sorted(per.values()) == [2, 2, 3]
    a0 = actions[0]
    assert isinstance(a0, Assign) and a0.assignment.generation == 10 and a0.assignment.spec == SPEC


def test_existing_load_counts_and_constraints_hold() -> None:
    pinned = UnitSpec(("x",), machine="b")
    v = view({"p": (pinned, 5), "q": (SPEC, 6), "old": (SPEC, 1), "old2": (SPEC, 2)},
             {"old": (Assignment("a.1", 1, SPEC), 3), "old2": (Assignment("a.1", 2, SPEC), 4)},
             {"a.1": "a", "b.1": "b"})
    got = {a.unit: a.assignment.machine for a in plan(v) if isinstance(a, Assign)}
    assert got == {"p": "b.1", "q": "b.1"}  # b is less loaded, and p may only go to b


def test_nothing_fits_leaves_the_unit_pending() -> None:
    assert plan(view({"p": (UnitSpec(("x",), machine="zz"), 5)}, machines={"a.1": "a"})) == []


def test_units_of_a_gone_machine_move_or_drop() -> None:
    v = view({"u": (SPEC, 5), "pinned": (UnitSpec(("x",), machine="dead"), 6)},
             {"u": (Assignment("dead.1", 5, SPEC), 9), "pinned": (Assignment("dead.1", 6, SPEC), 10),
              "gone": (Assignment("dead.1", 2, SPEC), 11)},
             {"b.1": "b"})
    actions = {a.unit: a for a in plan(v)}
    assert actions["u"] == Move("u", 9, Assignment("b.1", 5, SPEC))
    assert actions["pinned"] == Drop("pinned", 10)  # nothing fits: pending until its machine returns
    assert actions["gone"] == Drop("gone", 11)  # no longer desired


def test_live_machines_only_get_stop_marks() -> None:
    a = Assignment("a.1", 5, SPEC)
    v = view({"replaced": (SPEC, 8), "ok": (SPEC, 5)},
             {"removed": (a, 20), "replaced": (a, 21), "ok": (a, 22),
              "stopping": (Assignment("a.1", 5, SPEC, stop=True), 23)}, {"a.1": "a"})
    actions = {x.unit: x for x in plan(v)}
    assert actions == {"removed": MarkStop("removed", 20, Assignment("a.1", 5, SPEC, stop=True)),
                       "replaced": MarkStop("replaced", 21, Assignment("a.1", 5, SPEC, stop=True))}


def test_unreadable_assignment_is_replaced() -> None:
    v = view({"u": (SPEC, 5)}, {"u": (None, 9)}, {"a.1": "a"})
    assert plan(v) == [Move("u", 9, Assignment("a.1", 5, SPEC))]


def test_view_from_mirror_entries() -> None:
    lay = Layout()
    e = {lay.desired("u"): Entry(SPEC.to_json(), 4, 4), lay.desired("bad"): Entry("{", 5, 5),
         lay.assign("u"): Entry(Assignment("a.1", 4, SPEC).to_json(), 7, 6),
         lay.machine("a.1"): Entry(MachineInfo("a").to_json(), 3, 3), lay.status("u"): Entry("{}", 8, 8)}
    v = View.from_entries(lay, e)
    assert v.desired == {"u": (SPEC, 4)}
    assert v.assigns == {"u": (Assignment("a.1", 4, SPEC), 7)}
    assert v.machines == {"a.1": MachineInfo("a")}


def test_random_views_never_take_a_unit_from_a_live_machine() -> None:
    rng = random.Random(7)
    for _ in range(300):
        machines = {f"m{i}.x": f"m{i}" for i in range(rng.randint(0, 4))}
        ids = [*machines, "dead1.x", "dead2.x"]
        desired = {f"u{i}": (SPEC, rng.randint(1, 3)) for i in range(8) if rng.random() < 0.7}
        assigns = {f"u{i}": (Assignment(rng.choice(ids), rng.randint(1, 3), SPEC, rng.random() < 0.2), 100 + i)
                   for i in range(8) if rng.random() < 0.6}
        for action in plan(view(desired, assigns, machines)):
            if isinstance(action, (Move, Drop)):
                holder = assigns[action.unit][0]
                assert holder is not None and holder.machine not in machines, action
            if isinstance(action, (Move, MarkStop, Drop)):
                assert action.prev_index == assigns[action.unit][1]
            if isinstance(action, Assign):
                assert action.unit not in assigns and action.assignment.machine in machines
            if isinstance(action, Move):
                assert action.assignment.machine in machines
