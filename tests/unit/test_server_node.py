"""ServerNode applying committed entries: what every replica must agree on."""

from __future__ import annotations

from pyetcd.raft.types import ConfChange, ConfChangeType, Entry, EntryType
from pyetcd.server.members import Member, MemberRegistry
from pyetcd.server.node import ServerNode
from pyetcd.server.requests import PUT, Request
from pyetcd.store.store import Store


def _log() -> list[Entry]:
    entries = [Entry(1, i, EntryType.CONF_CHANGE,
                     ConfChange(ConfChangeType.ADD_NODE, i, Member(i, "", [f"http://n{i}:2380"], []).encode()).encode())
               for i in (1, 2, 3)]
    entries.append(Entry(2, 4, EntryType.CONF_CHANGE,
                         ConfChange(ConfChangeType.ADD_NODE, 4, Member(4, "", ["http://n4:2380"], []).encode()).encode()))
    entries.append(Entry(2, 5, data=Request(PUT, "/a", value="x", origin=1, req_id=7).encode()))
    return entries


def test_a_joiner_seeded_with_its_initial_cluster_applies_the_log_like_a_founder() -> None:
    founder = ServerNode(Store(), MemberRegistry(), 1)
    # A member joining with --initial-cluster-state existing starts knowing the members (member.py).
    joiner = ServerNode(Store(), MemberRegistry.of([Member(i, "", [f"http://n{i}:2380"], []) for i in (1, 2, 3, 4)]), 4)
    for e in _log():
        a, b = founder.apply(e), joiner.apply(e)
        assert founder.store.index == joiner.store.index, e.index
        assert (a.result is None) == (b.result is None)
    assert sorted(joiner.members.by_id) == sorted(founder.members.by_id) == [1, 2, 3, 4]
    assert founder.store.get("/a", False, False, 0).node.modified_index == \
        joiner.store.get("/a", False, False, 0).node.modified_index
