"""The reboot window: `[Day ]HH:MM` plus a Go duration, repeating daily (no day) or weekly (with a day).

Start times are host-local wall-clock times, so across a DST change the window still opens at HH:MM
local; its length is elapsed time. A start that falls in a spring-forward gap (02:30 on the day clocks
jump 02:00 -> 03:00) is read with the pre-change offset, i.e. it opens at 03:30 (Python's and mktime's
rule for a naive local time).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..gocompat.duration import format_duration, parse_duration

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
_START = re.compile(r"^(?:([A-Za-z]{3})\s+)?(\d{1,2}):(\d{1,2})$")


@dataclass(frozen=True, slots=True)
class Window:
    weekday: int | None  # 0 = Monday; None = every day
    hour: int
    minute: int
    length: float  # seconds

    @staticmethod
    def parse(start: str, length: str) -> Window:
        m = _START.match(start.strip())
        if m is None:
            raise ValueError(f"invalid window start {start!r}: want \"[Day ]HH:MM\"")
        day, hh, mm = m.group(1), int(m.group(2)), int(m.group(3))
        weekday = None
        if day is not None:
            if day.lower() not in DAYS:
                raise ValueError(f"invalid day {day!r} in window start {start!r}")
            weekday = DAYS.index(day.lower())
        if not (0 <= hh <= 23 and 0 <= mm <= 59):
            raise ValueError(f"invalid time {hh}:{mm:02d} in window start {start!r}")
        secs = parse_duration(length.strip())  # like the start, the length may carry spaces
        if secs < 0:
            raise ValueError(f"window length {length!r} is negative")
        window = Window(weekday, hh, mm, secs)
        if secs >= window.period_days * 86400:
            raise ValueError(f"window length {length!r} is not shorter than its period "
                             f"({'a week' if weekday is not None else 'a day'})")
        return window

    @property
    def period_days(self) -> int:
        return 1 if self.weekday is None else 7

    def _start_on(self, day: date) -> float:
        return datetime(day.year, day.month, day.day, self.hour, self.minute).timestamp()  # naive = local

    def previous_start(self, now: float) -> float:
        """The latest window start at or before `now` (epoch seconds)."""
        day = datetime.fromtimestamp(now).date()
        if self.weekday is not None:
            day -= timedelta(days=(day.weekday() - self.weekday) % 7)
        start = self._start_on(day)
        if start > now:
            start = self._start_on(day - timedelta(days=self.period_days))
        return start

    def next_start(self, now: float) -> float:
        """The first window start after `now`."""
        prev = datetime.fromtimestamp(self.previous_start(now)).date()
        return self._start_on(prev + timedelta(days=self.period_days))

    def contains(self, now: float) -> bool:
        start = self.previous_start(now)
        return start <= now <= start + self.length

    def wait(self, now: float) -> float:
        """Seconds to sleep before a reboot may happen: 0 inside the window."""
        return 0.0 if self.contains(now) else max(0.0, self.next_start(now) - now)

    def __str__(self) -> str:
        day = f"{DAYS[self.weekday].capitalize()} " if self.weekday is not None else ""
        return f"{day}{self.hour:02d}:{self.minute:02d} for {format_duration(self.length)}"


def describe(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))
