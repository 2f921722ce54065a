"""Deterministic whole-cluster simulator for the Raft core and the server glue: each simulated member is
a RawNode plus a ServerNode over the real v2 Store, driven as runtime/ drives them (see node.py; runner.py
for the phases, checkers.py for what is checked). `python -m pyetcd.testing.sim --seed N --trace` replays one seed."""

from .runner import Report, run

__all__ = ["Report", "run"]
