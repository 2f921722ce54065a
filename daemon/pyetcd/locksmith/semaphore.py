"""locksmith's reboot semaphore: the key, the JSON value and the three mutations (pure, no I/O).

The value is the compact JSON that locksmith (Go's encoding/json) writes, fields in this order:
`{"semaphore":1,"max":1,"holders":null}`. `holders` is `null` until the first lock (a nil Go slice) and
`[]` once the last holder has left; both spellings are kept as they are so the stored bytes match
locksmith's. Fields locksmith does not know are kept through a read-modify-write (a pyetcd extension:
locksmith itself drops them).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote_plus

KEY_PREFIX = "coreos.com/updateengine/rebootlock"
DEFAULT_MAX = 1


class SemaphoreError(Exception):
    """A mutation that cannot be applied: nothing is written."""


class SemaphoreFull(SemaphoreError):
    def __init__(self, value: int) -> None:
        super().__init__(f"semaphore is at {value}")


class HolderExists(SemaphoreError):
    def __init__(self) -> None:
        super().__init__("holder exists")


class HolderNotExist(SemaphoreError):
    def __init__(self) -> None:
        super().__init__("holder does not exist")


class BadValue(ValueError):
    """The stored value is not a semaphore."""


def semaphore_key(group: str = "") -> str:
    """The v2 key (without a leading slash, as locksmith passes it) of a group's semaphore.

    Go's url.QueryEscape keeps letters, digits and `-_.~`, turns a space into `+` and %-escapes the rest;
    quote_plus with no extra safe characters does exactly that."""
    if not group:
        return f"{KEY_PREFIX}/semaphore"
    return f"{KEY_PREFIX}/groups/{quote_plus(group, safe='')}/semaphore"


@dataclass(frozen=True, slots=True)
class Semaphore:
    semaphore: int = DEFAULT_MAX
    max: int = DEFAULT_MAX
    holders: tuple[str, ...] | None = None  # None is JSON null (never locked), () is []
    extra: tuple[tuple[str, Any], ...] = field(default=(), compare=False)  # unknown fields, in order

    @property
    def holder_list(self) -> list[str]:
        return list(self.holders or ())

    # -- mutations (each returns a new value, or raises SemaphoreError) ------------------------------

    def lock(self, holder: str) -> Semaphore:
        if self.semaphore <= 0:
            raise SemaphoreFull(self.semaphore)
        holders = self.holder_list
        if holder in holders:
            raise HolderExists()
        bisect.insort(holders, holder)  # str order is code-point order, i.e. Go's UTF-8 byte order
        return replace(self, semaphore=self.semaphore - 1, holders=tuple(holders))

    def unlock(self, holder: str) -> Semaphore:
        holders = self.holder_list
        if holder not in holders:
            raise HolderNotExist()
        holders.remove(holder)
        return replace(self, semaphore=self.semaphore + 1, holders=tuple(holders))

    def set_max(self, new_max: int) -> Semaphore:
        """Apply the difference to the free count; holders are untouched, so it may go negative."""
        return replace(self, semaphore=self.semaphore - (self.max - new_max), max=new_max)

    # -- encoding ------------------------------------------------------------------------------------

    def dumps(self) -> str:
        fields: list[tuple[str, Any]] = [("semaphore", self.semaphore), ("max", self.max),
                                         ("holders", None if self.holders is None else list(self.holders))]
        fields += [(k, v) for k, v in self.extra if k not in ("semaphore", "max", "holders")]
        return "{" + ",".join(f"{go_json(k)}:{go_json(v)}" for k, v in fields) + "}"

    @staticmethod
    def loads(text: str) -> Semaphore:
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise BadValue(f"bad semaphore value {text[:80]!r}: {e}") from e
        if not isinstance(obj, dict):
            raise BadValue(f"bad semaphore value {text[:80]!r}: not a JSON object")
        # Go's Unmarshal leaves a missing field at its zero value.
        sem, mx, holders = obj.get("semaphore", 0), obj.get("max", 0), obj.get("holders")
        for name, value in (("semaphore", sem), ("max", mx)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadValue(f"bad semaphore value: {name} is {value!r}, not an integer")
        if holders is not None and (not isinstance(holders, list) or not all(isinstance(h, str) for h in holders)):
            raise BadValue(f"bad semaphore value: holders is {holders!r}, not a list of strings")
        extra = tuple((k, v) for k, v in obj.items() if k not in ("semaphore", "max", "holders"))
        return Semaphore(sem, mx, None if holders is None else tuple(holders), extra)


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Any) -> str:
    """Compact JSON as Go's json.Marshal writes it: UTF-8 kept, but <, >, & and U+2028/9 escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in _GO_ESCAPES.items():
        text = text.replace(ch, esc)
    return text
