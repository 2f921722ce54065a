"""Safety checkers, run as the simulation goes (after every event) and at the end.

- Election safety: at most one leader per term (checked after every event over all live nodes).
- Log matching: two logs with an entry of the same (index, term) hold the same entry and agree on the
  term before it, hence (by induction on index) on the whole prefix. Checked incrementally on each
  Ready's new entries against a global table, which covers every pair of nodes at once.
- Leader completeness: an entry committed in term t is in the log of every leader of a term > t. The
  commit term recorded is the term of the first node that applied it (>= the term of the leader that
  committed it, so the check never fires falsely); checked whenever a node becomes leader.
- State-machine safety: every node applies the same entry at each index.
The end-of-run checks (durability, linearizability) live in the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...raft.types import Entry, Ready

if TYPE_CHECKING:
    from .node import SimNode


class SafetyViolation(AssertionError):
    pass


class Checker:
    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # term -> leader id
        self.entries: dict[tuple[int, int], tuple[int, bytes, int]] = {}  # (index, term) -> (type, data, prev term)
        self.applied: dict[int, Entry] = {}  # index -> the entry every node must apply there
        self.commit_term: dict[int, int] = {}
        self.elections = 0

    def fail(self, msg: str) -> None:
        raise SafetyViolation(msg)

    def on_ready(self, node: SimNode, rd: Ready) -> None:
        assert node.rn is not None
        log = node.rn.raft.log
        for e in rd.entries:
            prev = log.term(e.index - 1)
            assert prev is not None
            key = (e.index, e.term)
            mine = (int(e.type), e.data, prev)
            seen = self.entries.setdefault(key, mine)
            if seen != mine:
                self.fail(f"log matching: n{node.id} has entry {key} = {mine!r}, another node has {seen!r}")

    def on_apply(self, node: SimNode, e: Entry) -> None:
        assert node.rn is not None
        seen = self.applied.setdefault(e.index, e)
        if seen != e:
            self.fail(f"state-machine safety: n{node.id} applies {e!r} at {e.index}, another node applied {seen!r}")
        self.commit_term.setdefault(e.index, node.rn.raft.term)

    def after_event(self, nodes: list[SimNode]) -> None:
        for n in nodes:
            if not n.is_leader:
                continue
            assert n.rn is not None
            r = n.rn.raft
            prev = self.leaders.get(r.term)
            if prev is None:
                self.leaders[r.term] = r.id
                self.elections += 1
                self._check_completeness(n)
            elif prev != r.id:
                self.fail(f"election safety: n{prev} and n{r.id} are both leaders of term {r.term}")

    def _check_completeness(self, n: SimNode) -> None:
        assert n.rn is not None
        r = n.rn.raft
        log = r.log
        for index, e in self.applied.items():
            if self.commit_term[index] >= r.term or index <= log.snap_index:
                continue
            t = log.term(index)
            if t != e.term:
                self.fail(f"leader completeness: n{r.id} leads term {r.term} but has term {t} at {index}, "
                          f"where entry of term {e.term} was committed by term {self.commit_term[index]}")
