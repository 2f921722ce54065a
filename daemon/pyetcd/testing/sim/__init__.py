"""Deterministic whole-cluster simulator for the Raft core (see runner.py for the phases, checkers.py
for what is checked). `python -m pyetcd.testing.sim --seed N --trace` replays one seed."""

from .runner import Report, run

__all__ = ["Report", "run"]
