"""The simulated world: virtual time, one event heap, one seeded tree of random generators.

Theory of operation: nothing here reads a clock or the OS. Time is an int of milliseconds that only moves
when the next event is popped; events are ordered by (time, seq), seq being the order they were scheduled
in, so two events at the same millisecond always run in the same order. Every component takes its own
`random.Random` forked from the run's seed by name, so adding draws in one component does not change the
choices of another (and a seed replays bit for bit).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any


class World:
    def __init__(self, seed: int, trace: bool = False, trace_sink: Callable[[str], None] | None = None) -> None:
        self.seed = seed
        self.now_ms = 0
        self._seq = 0
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self.trace_enabled = trace or trace_sink is not None
        self.trace_sink: Callable[[str], None] = print if trace_sink is None else trace_sink  # each line goes here
        self.trace_lines: list[str] = []
        self.events_run = 0
        self.history_clock = 0  # strictly increasing stamp for client history events (no ties)

    def rng(self, name: str) -> random.Random:
        """A generator of its own for one component, derived from the seed and the component name."""
        return random.Random(f"{self.seed}/{name}")

    def after(self, delay_ms: int, fn: Callable[..., None], *args: Any) -> None:
        assert delay_ms >= 0
        self._seq += 1
        heapq.heappush(self._heap, (self.now_ms + delay_ms, self._seq, fn, args))

    def step(self) -> bool:
        """Run the next event; False when there is none."""
        if not self._heap:
            return False
        t, _, fn, args = heapq.heappop(self._heap)
        self.now_ms = t
        self.events_run += 1
        fn(*args)
        return True

    def stamp(self) -> int:
        self.history_clock += 1
        return self.history_clock

    def trace(self, text: str) -> None:
        if self.trace_enabled:
            line = f"{self.now_ms:>8} ms  {text}"
            self.trace_lines.append(line)
            self.trace_sink(line)
