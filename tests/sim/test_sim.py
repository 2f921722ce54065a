"""Seeded simulations of whole clusters (see pyetcd/testing/sim). CI runs SIM_SEEDS seeds (default 500)
split over a few tests; a failure names the seed and the command that replays it."""

from __future__ import annotations

import os

import pytest
from pyetcd.testing.sim import run
from pyetcd.testing.sim.runner import DEFAULT_STEPS

SEEDS = int(os.environ.get("SIM_SEEDS", "500"))
CHUNKS = 5


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seeds(chunk: int) -> None:
    failures = []
    for seed in range(chunk, SEEDS, CHUNKS):
        report = run(seed, DEFAULT_STEPS)
        if not report.ok:
            failures.append(report.summary())
    assert not failures, "\n".join(failures)


def test_a_seed_replays_identically() -> None:
    a, b = run(7, 1500), run(7, 1500)
    assert a.ok and a.stats == b.stats


def test_runs_exercise_faults_and_membership() -> None:
    stats = [run(s, DEFAULT_STEPS).stats for s in range(1000, 1010)]
    assert sum(s["elections"] for s in stats) > 10
    assert sum(s["acked"] for s in stats) > 100
    assert any(s["nodes"] > s["size"] for s in stats), "no membership change was exercised"
    assert sum(s["expired"] for s in stats) > 0, "no TTL key expired through a SYNC entry"
