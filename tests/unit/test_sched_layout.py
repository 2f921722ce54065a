"""pyetcd-sched records: JSON round trips, validation, key names."""

from __future__ import annotations

import pytest
from pyetcd.sched.layout import Assignment, Layout, MachineInfo, Status, UnitSpec, check_name


def test_records_round_trip() -> None:
    spec = UnitSpec(("sh", "-c", "echo hi"), "on-failure", "web1")
    assert UnitSpec.from_json(spec.to_json()) == spec
    a = Assignment("web1.0a1b2c3d", 42, spec, stop=True)
    assert Assignment.from_json(a.to_json()) == a
    m = MachineInfo("web1", "host", 7)
    assert MachineInfo.from_json(m.to_json()) == m
    s = Status("web1.0a1b2c3d", "web1", "exited", None, -9, None, 12.5)
    assert Status.from_json(s.to_json()) == s


@pytest.mark.parametrize("text", ['[1]', 'nope', '{"command": "ls"}', '{"command": []}',
                                  '{"command": ["ls"], "restart": "sometimes"}',
                                  '{"command": ["ls"], "machine": "../x"}'])
def test_bad_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        UnitSpec.from_json(text)


@pytest.mark.parametrize("name", ["", "_hidden", ".", "..", "a/b", "a b", "x" * 101, "-x", "a@b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        check_name(name)


def test_layout_keys() -> None:
    lay = Layout("sched/")
    assert lay.desired("u1") == "/sched/desired/u1"
    assert lay.assign("u1") == "/sched/assign/u1"
    assert lay.machine("m.1") == "/sched/machines/m.1"
    assert lay.status("u1") == "/sched/status/u1"
    assert lay.leader == "/sched/leader"
    assert Layout.child("/sched/assign/u1", "/sched/assign") == "u1"
    assert Layout.child("/sched/assign/u1/x", "/sched/assign") is None
    assert Layout.child("/sched/assignx", "/sched/assign") is None
    assert lay.children({"/sched/assign/a": 1, "/sched/desired/b": 2}, lay.assign_dir) == {"a": 1}
    with pytest.raises(ValueError):
        Layout("/")
