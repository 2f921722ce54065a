"""`python -m pyetcd.testing.sim --seed N [--steps S] [--trace]` replays one seed;
`--seeds N [--first F]` runs a sweep and exits 1 on the first failure."""

from __future__ import annotations

import argparse
import sys

from .runner import DEFAULT_STEPS, run

COVERED = ("write_batches", "sent_before_fsync", "disk_full_turns", "eio_stops", "elections")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyetcd.testing.sim")
    ap.add_argument("--seed", type=int, help="run this one seed")
    ap.add_argument("--seeds", type=int, default=100, help="run this many seeds (from --first)")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--trace", action="store_true", help="print every event of the run")
    args = ap.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else list(range(args.first, args.first + args.seeds))
    seeds_with = dict.fromkeys(COVERED, 0)  # how many seeds ran each of these at least once
    events = 0
    for seed in seeds:
        report = run(seed, args.steps, trace=args.trace)
        if not report.ok or args.seed is not None:
            print(report.summary())
        if not report.ok:
            return 1
        events += report.stats["events"]
        for k in COVERED:
            seeds_with[k] += report.stats[k] > 0
    if args.seed is None:
        ran = ", ".join(f"{k} in {n}" for k, n in seeds_with.items())
        print(f"{len(seeds)} seeds ok ({args.steps} steps each, {events} events); seeds that ran: {ran}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
