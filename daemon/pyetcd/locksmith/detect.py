"""Does this host need a reboot? Pluggable detectors, polled by the daemon.

A detector answers True (needed), False (not needed) or None (could not tell; logged, counts as "no").
`cheap` detectors (a stat) are polled often; the others (a command, a D-Bus call) every check interval.

Selected with `-reboot-detector` / LOCKSMITHD_REBOOT_DETECTOR:
  auto           update_engine where CoreOS/Flatcar's is present, else /run/reboot-required, plus
                 `needs-restarting -r` (RHEL family) or `zypper needs-rebooting` (SUSE) when installed
  file           the trigger file only
  debian         /run/reboot-required (or /var/run/...)
  rhel | suse    the distribution's command
  update-engine  CoreOS's update_engine GetStatus over the system bus (via busctl)
  command:<cmd>  a shell command; exit 0 means a reboot is needed, 1 not needed, anything else unknown
The trigger file (`-trigger-file`, touched by `send-need-reboot`) is always checked too.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("pyetcd.locksmithd")

DEFAULT_TRIGGER_FILE = "/run/pyetcd-locksmithd/reboot-needed"
DEBIAN_FILES = ("/run/reboot-required", "/var/run/reboot-required")
NEED_REBOOT = "UPDATE_STATUS_UPDATED_NEED_REBOOT"
UPDATE_ENGINE = ("com.coreos.update1", "/com/coreos/update1", "com.coreos.update1.Manager")
COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class FileDetector:
    paths: tuple[str, ...]
    name: str = "file"
    cheap: bool = True

    def reboot_needed(self) -> bool | None:
        return any(Path(p).exists() for p in self.paths)


@dataclass(frozen=True)
class CommandDetector:
    """A command whose exit status answers: `needed` codes mean yes, `not_needed` codes mean no."""

    argv: tuple[str, ...]
    needed: frozenset[int]
    not_needed: frozenset[int]
    name: str = "command"
    cheap: bool = False

    def reboot_needed(self) -> bool | None:
        try:
            done = subprocess.run(self.argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=COMMAND_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("reboot check %s failed: %s", self.name, e)
            return None
        if done.returncode in self.needed:
            return True
        if done.returncode in self.not_needed:
            return False
        log.warning("reboot check %s: unexpected exit status %d: %s", self.name, done.returncode,
                    done.stderr.decode(errors="replace").strip()[:200])
        return None


def shell_detector(command: str) -> CommandDetector:
    return CommandDetector(("/bin/sh", "-c", command), frozenset({0}), frozenset({1}), f"command {command!r}")


def parse_update_engine_status(text: str) -> str | None:
    """current_operation from busctl's `xdsst 0 0 "UPDATE_STATUS_IDLE" "" 0` answer to GetStatus."""
    try:
        parts = shlex.split(text)
    except ValueError:
        return None
    if len(parts) != 6 or parts[0] != "xdsst":
        return None
    return parts[3]


@dataclass(frozen=True)
class UpdateEngineDetector:
    name: str = "update-engine"
    cheap: bool = False

    def reboot_needed(self) -> bool | None:
        try:
            done = subprocess.run(["busctl", "--system", "call", *UPDATE_ENGINE, "GetStatus"],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT_S,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("update_engine GetStatus failed: %s", e)
            return None
        op = parse_update_engine_status(done.stdout.decode(errors="replace")) if done.returncode == 0 else None
        if op is None:
            log.warning("update_engine GetStatus failed: %s", done.stderr.decode(errors="replace").strip()[:200])
            return None
        return op == NEED_REBOOT


def _coreos() -> bool:
    return Path("/usr/share/coreos").is_dir() or Path("/usr/share/flatcar").is_dir()


def make_detectors(spec: str, trigger_file: str) -> list[FileDetector | CommandDetector | UpdateEngineDetector]:
    """The detectors for a LOCKSMITHD_REBOOT_DETECTOR value (see the module docstring)."""
    trigger = FileDetector((trigger_file,), "trigger file") if trigger_file else None
    out: list[FileDetector | CommandDetector | UpdateEngineDetector] = [trigger] if trigger else []
    spec = spec.strip() or "auto"
    if spec.startswith("command:"):
        command = spec[len("command:"):].strip()
        if not command:
            raise ValueError("reboot detector command: needs a command")
        return out + [shell_detector(command)]
    rhel = CommandDetector(("needs-restarting", "-r"), frozenset({1}), frozenset({0}), "needs-restarting -r")
    suse = CommandDetector(("zypper", "needs-rebooting"), frozenset({102}), frozenset({0}), "zypper needs-rebooting")
    debian = FileDetector(DEBIAN_FILES, "reboot-required file")
    if spec == "file":
        return out
    if spec == "debian":
        return out + [debian]
    if spec == "rhel":
        return out + [rhel]
    if spec == "suse":
        return out + [suse]
    if spec == "update-engine":
        return out + [UpdateEngineDetector()]
    if spec != "auto":
        raise ValueError(f"unknown reboot detector {spec!r} (auto, file, debian, rhel, suse, update-engine, "
                         "command:<cmd>)")
    if _coreos():
        return out + [UpdateEngineDetector()]
    out.append(debian)  # a stat, harmless where the file never appears
    if shutil.which("needs-restarting"):
        out.append(rhel)
    elif shutil.which("zypper"):
        out.append(suse)
    return out
