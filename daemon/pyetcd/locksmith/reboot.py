"""Issuing the reboot (logind, or a configured command) and the wall-style warning to logged-in users."""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger("pyetcd.locksmithd")

LOGIND = ("org.freedesktop.login1", "/org/freedesktop/login1", "org.freedesktop.login1.Manager")
COMMAND_TIMEOUT_S = 120.0


class RebootError(Exception):
    """The reboot was not accepted (no bus, a block inhibitor, a failing command...)."""


class Rebooter(Protocol):
    def reboot(self) -> None:
        """Ask for a reboot; return once it is accepted (the host goes down soon after), else raise."""


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RebootError(f"{what}: {e}") from e
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).decode(errors="replace").strip()[:300]
        raise RebootError(f"{what} exited with status {done.returncode}: {detail}")


@dataclass(frozen=True)
class LogindRebooter:
    """logind's Manager.Reboot(false) through busctl; `systemctl reboot` where busctl is missing.

    Unlike locksmith, the call's result is checked: a refusal (e.g. a block inhibitor) raises."""

    def reboot(self) -> None:
        if shutil.which("busctl"):
            _run(["busctl", "--system", "call", *LOGIND, "Reboot", "b", "false"], "logind Reboot")
        elif shutil.which("systemctl"):
            _run(["systemctl", "reboot"], "systemctl reboot")
        else:
            raise RebootError("neither busctl nor systemctl is installed")


@dataclass(frozen=True)
class CommandRebooter:
    """A shell command (`-reboot-command`): exit 0 means the reboot was accepted."""

    command: str

    def reboot(self) -> None:
        _run(["/bin/sh", "-c", self.command], f"reboot command {self.command!r}")


# -- the broadcast -------------------------------------------------------------------------------------

UTMP_PATHS = ("/run/utmp", "/var/run/utmp")
USER_PROCESS = 7
# glibc's struct utmp on Linux: type, pid, line[32], id[4], user[32], host[256], exit, session, tv, addr, pad.
_UTMP = struct.Struct("=hxxi32s4s32s256shhi8x16s20s")


def logged_in_ttys(utmp: bytes) -> list[str]:
    """The tty lines (e.g. `pts/0`) of the user sessions in a utmp file's contents."""
    ttys = []
    for off in range(0, len(utmp) - _UTMP.size + 1, _UTMP.size):
        ut_type, _pid, line, *_rest = _UTMP.unpack_from(utmp, off)
        name = line.split(b"\0", 1)[0].decode(errors="replace")
        if ut_type == USER_PROCESS and name and "/" not in name.replace("pts/", "", 1):
            ttys.append(name)
    return ttys


def broadcast(message: str, sender: str = "pyetcd-locksmithd", utmp_paths: tuple[str, ...] = UTMP_PATHS) -> int:
    """Write a wall-style message to every logged-in tty; how many ttys were written to."""
    data = b""
    for path in utmp_paths:
        try:
            data = Path(path).read_bytes()
            break
        except OSError:
            continue
    stamp = time.strftime("%a %b %d %H:%M:%S %Y")
    text = f"\r\nBroadcast message from {sender} at {stamp}:\r\n\r\n{message}\r\n\r\n".encode()
    sent = 0
    for tty in sorted(set(logged_in_ttys(data))):
        try:
            fd = os.open(f"/dev/{tty}", os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(fd, text)
            sent += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return sent
