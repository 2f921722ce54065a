"""The keyspace of pyetcd-sched and the JSON records stored in it.

Under a prefix (default /sched):

    <prefix>/desired/<unit>    UnitSpec {"command": [...], "restart": "always", "machine": "web1"|null}
                               written by `submit` (create; `--replace` overwrites), deleted by `rm`.
                               Its modifiedIndex is the unit's *generation*.
    <prefix>/assign/<unit>     Assignment {"machine": "<machine id>", "generation": N, "spec": {...},
                               "stop": false}: which live machine runs the unit. Only a scheduler creates
                               it (prevExist=false) or moves it (CAS on prevIndex); the agent that holds it
                               deletes it (CAS on prevIndex) after stopping the unit on a "stop": true mark.
    <prefix>/machines/<id>     MachineInfo {"name", "hostname", "pid"}, TTL: one agent *incarnation*.
                               <id> is "<name>.<random>", fresh each time an agent registers, so a key
                               that is gone never comes back (see the package docstring: safety).
    <prefix>/status/<unit>     Status {"machine", "name", "state", "pid", "code", "error", "time"}, TTL:
                               written by the agent running the unit; vanishes when that agent dies.
    <prefix>/leader            the leading scheduler's id, TTL (a lock refreshed by CAS on its value).

An assignment carries a copy of the spec, so an agent needs nothing but its assignments to run a unit,
and a spec replaced in desired/ reaches the machine only through the stop-and-reassign handshake.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_PREFIX = "/sched"
RESTART_POLICIES = ("always", "on-failure", "no")
STATES = ("starting", "running", "exited", "failed")

# Letters, digits, "_", "." and "-", not starting with "_" (etcd hides such keys) nor "." ("." and ".."
# are path tricks); these names are also valid in systemd unit names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_name(name: str, what: str = "unit") -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"bad {what} name {name!r}: use letters, digits, '_', '.', '-' (at most 100, "
                         "starting with a letter or digit)")
    return name


def _obj(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{what}: not JSON: {text[:80]!r}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{what}: not a JSON object: {text[:80]!r}")
    return data


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """Desired work: a command line, what to do when it exits, and optionally the machine name it needs."""

    command: tuple[str, ...]
    restart: str = "always"
    machine: str | None = None

    def __post_init__(self) -> None:
        if not self.command or not all(isinstance(a, str) for a in self.command):
            raise ValueError("a unit needs a command (a list of strings)")
        if self.restart not in RESTART_POLICIES:
            raise ValueError(f"restart must be one of {', '.join(RESTART_POLICIES)}, not {self.restart!r}")
        if self.machine is not None:
            check_name(self.machine, "machine")

    def to_obj(self) -> dict[str, Any]:
        return {"command": list(self.command), "restart": self.restart, "machine": self.machine}

    def to_json(self) -> str:
        return _dump(self.to_obj())

    @staticmethod
    def from_obj(data: dict[str, Any]) -> UnitSpec:
        command = data.get("command")
        if not isinstance(command, list):
            raise ValueError("unit spec: command must be a list")
        return UnitSpec(tuple(command), str(data.get("restart", "always")), data.get("machine"))

    @staticmethod
    def from_json(text: str) -> UnitSpec:
        return UnitSpec.from_obj(_obj(text, "unit spec"))


@dataclass(frozen=True, slots=True)
class Assignment:
    machine: str  # a machine id (one agent incarnation), not a name
    generation: int  # modifiedIndex of the desired key the spec was copied from
    spec: UnitSpec
    stop: bool = False  # the scheduler asks the holder to stop the unit and then delete this key

    def to_json(self) -> str:
        return _dump({"machine": self.machine, "generation": self.generation, "spec": self.spec.to_obj(),
                      "stop": self.stop})

    @staticmethod
    def from_json(text: str) -> Assignment:
        data = _obj(text, "assignment")
        spec = data.get("spec")
        if not isinstance(spec, dict):
            raise ValueError("assignment: spec must be an object")
        return Assignment(str(data["machine"]), int(data.get("generation", 0)), UnitSpec.from_obj(spec),
                          bool(data.get("stop", False)))


@dataclass(frozen=True, slots=True)
class MachineInfo:
    name: str
    hostname: str = ""
    pid: int = 0

    def to_json(self) -> str:
        return _dump({"name": self.name, "hostname": self.hostname, "pid": self.pid})

    @staticmethod
    def from_json(text: str) -> MachineInfo:
        data = _obj(text, "machine")
        return MachineInfo(str(data["name"]), str(data.get("hostname", "")), int(data.get("pid", 0)))


@dataclass(frozen=True, slots=True)
class Status:
    machine: str  # machine id
    name: str  # machine name
    state: str  # one of STATES
    pid: int | None = None
    code: int | None = None  # exit status; negative: killed by that signal
    error: str | None = None  # why a start failed
    time: float = 0.0  # wall clock of the change

    def to_json(self) -> str:
        return _dump({"machine": self.machine, "name": self.name, "state": self.state, "pid": self.pid,
                      "code": self.code, "error": self.error, "time": round(self.time, 3)})

    @staticmethod
    def from_json(text: str) -> Status:
        data = _obj(text, "status")
        return Status(str(data["machine"]), str(data.get("name", "")), str(data["state"]), data.get("pid"),
                      data.get("code"), data.get("error"), float(data.get("time", 0.0)))


class Layout:
    """Key names under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.root = "/" + prefix.strip("/")
        if self.root == "/":
            raise ValueError("the prefix must not be the root")
        self.desired_dir = self.root + "/desired"
        self.assign_dir = self.root + "/assign"
        self.machines_dir = self.root + "/machines"
        self.status_dir = self.root + "/status"
        self.leader = self.root + "/leader"

    def desired(self, unit: str) -> str:
        return f"{self.desired_dir}/{unit}"

    def assign(self, unit: str) -> str:
        return f"{self.assign_dir}/{unit}"

    def machine(self, machine_id: str) -> str:
        return f"{self.machines_dir}/{machine_id}"

    def status(self, unit: str) -> str:
        return f"{self.status_dir}/{unit}"

    @staticmethod
    def child(key: str, dir_key: str) -> str | None:
        """The name of `key` if it sits directly under `dir_key`, else None."""
        head = dir_key + "/"
        if not key.startswith(head):
            return None
        name = key[len(head):]
        return name if name and "/" not in name else None

    def children(self, entries: dict[str, Any], dir_key: str) -> dict[str, Any]:
        """{name: entry} of the entries directly under dir_key."""
        out = {}
        for key, entry in entries.items():
            name = self.child(key, dir_key)
            if name is not None:
                out[name] = entry
        return out
