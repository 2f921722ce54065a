"""`pyetcd-locksmithd`: reboot this host when it needs it, at most `max` hosts of a group at a time.

Flow (locksmithd's, with the deviations the spec asks for):
  off -> exit 0. Otherwise parse the window, take /run/pyetcd-locksmithd/state (flock), and, with the
  etcd-lock strategy, start the post-boot unlock task: after `-unlock-delay`, release the slot this host
  took before its last reboot (backing off up to `-unlock-backoff-max`), until it succeeds or a reboot is
  needed again. Then: wait until a detector says a reboot is needed -> wait for the reboot window -> take
  a slot (etcd-lock) -> re-check the window (missed: release, wait for the next) -> warn logged-in users
  -> reboot. A refused reboot releases the slot and tries again later.
SIGTERM/SIGINT exit at once without releasing anything: a reboot is what usually sends them, and the
slot must stay taken until the host is back.

Settings come from flags, then LOCKSMITHD_* variables (REBOOT_STRATEGY and REBOOT_WINDOW_* unprefixed
too), then `KEY=value` files (default /etc/pyetcd/locksmith.conf and /etc/coreos/update.conf).
The strategy's default is locksmith's, `reboot` (no lock); the packages ship /etc/pyetcd/locksmith.conf
with REBOOT_STRATEGY=etcd-lock (packaging/locksmith.conf), and so does the fleet's cloud-config.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from ..client.v2 import ClientError
from ..gocompat.duration import format_duration
from .common import MachineIdError, connection, global_flags, read_machine_id, setup_logging, version
from .detect import DEFAULT_TRIGGER_FILE, CommandDetector, FileDetector, UpdateEngineDetector, make_detectors
from .flags import Flag, FlagSet, UsageError, read_env_file
from .lockclient import Connection, LockClient, is_compare_failed
from .reboot import CommandRebooter, LogindRebooter, Rebooter, RebootError, broadcast
from .semaphore import BadValue, SemaphoreError
from .window import Window, describe

PROG = "pyetcd-locksmithd"
STRATEGIES = ("etcd-lock", "reboot", "off")
DEFAULT_STRATEGY = "reboot"  # locksmith's meaning of an unset or empty REBOOT_STRATEGY (since v0.6.0)
SHIPPED_CONFIG = "/etc/pyetcd/locksmith.conf"  # the packages' copy says REBOOT_STRATEGY=etcd-lock
DEFAULT_CONFIG_FILES = [SHIPPED_CONFIG, "/etc/coreos/update.conf"]
DEFAULT_STATE_FILE = "/run/pyetcd-locksmithd/state"
LOCK_ERRORS = (ClientError, SemaphoreError, BadValue, ValueError, OSError)

log = logging.getLogger("pyetcd.locksmithd")

Detector = FileDetector | CommandDetector | UpdateEngineDetector


def agent_flags() -> FlagSet:
    own = [
        Flag("id", "str", "", "holder ID of this host (default: /etc/machine-id)"),
        Flag("reboot-strategy", "str", DEFAULT_STRATEGY, f"etcd-lock, reboot or off; empty: {DEFAULT_STRATEGY}, "
             f"as locksmith's (the packages' {SHIPPED_CONFIG} says etcd-lock)", env=("REBOOT_STRATEGY",)),
        Flag("reboot-window-start", "str", "", "start of the reboot window, \"[Day ]HH:MM\" local time",
             env=("LOCKSMITHD_REBOOT_WINDOW_START", "REBOOT_WINDOW_START")),
        Flag("reboot-window-length", "str", "", "length of the reboot window, a Go duration (1h30m)",
             env=("LOCKSMITHD_REBOOT_WINDOW_LENGTH", "REBOOT_WINDOW_LENGTH")),
        Flag("reboot-detector", "str", "auto", "auto, file, debian, rhel, suse, update-engine or command:<cmd>"),
        Flag("reboot-needed-command", "str", "", "shell command answering \"reboot needed?\" (exit 0 = yes, "
             "1 = no); same as -reboot-detector command:<cmd>"),
        Flag("trigger-file", "str", DEFAULT_TRIGGER_FILE, "a reboot is needed while this file exists"),
        Flag("reboot-command", "str", "", "shell command that reboots the host (default: logind's Reboot)"),
        Flag("state-file", "str", DEFAULT_STATE_FILE, "where the daemon's state is written (and flock'ed)"),
        Flag("config-file", "list", list(DEFAULT_CONFIG_FILES), "KEY=value files read below the environment"),
        Flag("check-interval", "duration", 300.0, "how often the reboot detectors run"),
        Flag("trigger-interval", "duration", 1.0, "how often the trigger and reboot-required files are checked"),
        Flag("unlock-delay", "duration", 5.0, "first post-boot unlock attempt after this"),
        Flag("unlock-backoff-max", "duration", 300.0, "the post-boot unlock retry interval doubles up to this"),
        Flag("lock-backoff", "duration", 5.0, "lock retries back off from twice this..."),
        Flag("lock-backoff-max", "duration", 300.0, "...doubling up to this"),
        Flag("cas-retries", "int", 5, "immediate retries after a lost compare-and-swap, before backing off"),
        Flag("watch", "bool", True, "watch the semaphore to retry as soon as it changes (the backoff still bounds)"),
        Flag("recheck-window", "bool", True, "after taking the lock, release it if the window has passed"),
        Flag("broadcast", "bool", True, "warn logged-in users (wall-style) before rebooting"),
        Flag("login-delay", "duration", 300.0, "with users logged in, reboot this long after the warning"),
        Flag("reboot-timeout", "duration", 7 * 86400.0, "still alive this long after the reboot call: exit 1"),
    ]
    head = (f"Usage: {PROG} [flags]\n\nReboot this host when it needs it; with the etcd-lock strategy, holding a "
            "slot of the cluster reboot lock meanwhile.")
    return FlagSet(PROG, "LOCKSMITHD", global_flags() + own, head)


@dataclass
class Settings:
    strategy: str
    holder: str
    conn: Connection
    group: str
    window: Window | None
    detectors: list[Detector]
    rebooter: Rebooter
    state_file: Path
    check_interval: float
    trigger_interval: float
    unlock_delay: float
    unlock_backoff_max: float
    lock_backoff: float
    lock_backoff_max: float
    cas_retries: int
    watch: bool
    recheck_window: bool
    broadcast: bool
    login_delay: float
    reboot_timeout: float


class Clock(Protocol):
    """Where the agent's waits read the time and sleep: the system's, or a fake one in unit tests."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (the reboot window is local wall-clock time)."""

    def monotonic(self) -> float:
        """Elapsed seconds (intervals and backoffs)."""

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Fatal(Exception):
    """Logged as is; the daemon exits 1 (systemd restarts it)."""


class StateFile:
    """locksmith's coordinator.conf, pyetcd's path: NAME/STRATEGY/STATE lines under an exclusive flock
    (held for the daemon's life, so two daemons on one host refuse to run)."""

    def __init__(self, path: Path, strategy: str) -> None:
        self.strategy = strategy
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self.fd)
            raise Fatal(f"another {PROG} is running (it holds {path})") from e

    def set(self, state: str) -> None:
        data = f"NAME={PROG}\nSTRATEGY={self.strategy}\nSTATE={state}\n".encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)


def human(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute" + ("s" if minutes != 1 else "")
    return format_duration(seconds)


class Agent:
    def __init__(self, s: Settings, clock: Clock | None = None) -> None:
        self.s = s
        self.clock: Clock = clock or SystemClock()
        self.state: StateFile | None = None
        self._stop_unlock = threading.Event()
        self._unlock_thread: threading.Thread | None = None

    # -- the main flow -------------------------------------------------------------------------------

    def run(self) -> int:
        s = self.s
        if s.strategy == "off":
            log.info('Reboot strategy is "off" - locksmithd is exiting.')
            return 0
        log.info("%s %s: strategy %s, holder ID %s, group %r, endpoints %s", PROG, version(), s.strategy,
                 s.holder, s.group, ",".join(s.conn.endpoints))
        if s.window is None:
            log.info("No configured reboot window")
        else:
            now = self.clock.time()
            start = s.window.previous_start(now) if s.window.contains(now) else s.window.next_start(now)
            log.info("Reboot window: %s; next window from %s to %s", s.window, describe(start),
                     describe(start + s.window.length))
        self.state = StateFile(s.state_file, s.strategy)
        self.state.set("starting")
        self.state.set("running")
        if s.strategy == "etcd-lock":
            self._unlock_thread = threading.Thread(target=self._post_boot_unlock, name="unlock", daemon=True)
            self._unlock_thread.start()
        backoff = s.lock_backoff
        while True:
            self._wait_reboot_needed()
            self._stop_unlock_task()
            self._wait_window()
            self.state.set("reboot-planned")
            client = None
            if s.strategy == "etcd-lock":
                client = self._connect()
                self._acquire(client)
                if s.recheck_window and s.window is not None and not s.window.contains(self.clock.time()):
                    log.info("The reboot window passed while waiting for the lock; releasing it until the next one.")
                    self._release_or_log(client, "the window was missed")
                    continue
            try:
                self._reboot()
            except RebootError as e:
                backoff = min(backoff * 2, s.lock_backoff_max)
                log.error("Reboot failed: %s. Retrying in %s.", e, format_duration(backoff))
                if client is not None:
                    self._release_or_log(client, "the reboot failed")
                self.state.set("running")
                self.clock.sleep(backoff)
                continue
            self.state.set("rebooting")
            self.clock.sleep(s.reboot_timeout)
            log.error("Tried to reboot but did not!")
            return 1

    def _connect(self) -> LockClient:
        try:
            return LockClient.connect(self.s.conn, self.s.group)
        except LOCK_ERRORS as e:
            raise Fatal(f"Failed to set up lock: {e}") from e

    # -- reboot needed? -------------------------------------------------------------------------------

    def _wait_reboot_needed(self) -> None:
        s = self.s
        log.info("Waiting for a reboot to be needed (checking %s)", ", ".join(d.name for d in s.detectors))
        last_full = float("-inf")
        while True:
            full = self.clock.monotonic() - last_full >= s.check_interval
            if full:
                last_full = self.clock.monotonic()
            for d in s.detectors:
                if (d.cheap or full) and d.reboot_needed():
                    log.info("Reboot needed (%s)", d.name)
                    return
            self.clock.sleep(s.trigger_interval)

    def _wait_window(self) -> None:
        window = self.s.window
        while window is not None:
            now = self.clock.time()
            wait = window.wait(now)
            if wait <= 0:
                return
            log.info("Waiting for the reboot window: it opens at %s (in %s)", describe(now + wait),
                     format_duration(round(wait)))
            self.clock.sleep(min(wait, 60.0))  # re-evaluated every minute: the wall clock may be stepped

    # -- the lock -------------------------------------------------------------------------------------

    def _acquire(self, client: LockClient) -> None:
        """Take a slot, retrying for ever. A slot this host already holds (a crash after locking) is kept
        rather than released and queued for again as locksmith does."""
        s = self.s
        backoff = s.lock_backoff
        quick = 0
        while True:
            watch_from: int | None = None
            try:
                sem, index = client.get()
                watch_from = max(index, client.last_etcd_index or 0)
                if s.holder in (sem.holders or ()):
                    log.info("This host already holds a slot of the reboot lock")
                    return
                client.cas(sem.lock(s.holder), index)
                log.info("Acquired the reboot lock")
                return
            except LOCK_ERRORS as e:
                if is_compare_failed(e) and quick < s.cas_retries:
                    quick += 1  # another host won this round: try again at once with the new value
                    log.debug("Lost a compare-and-swap on the semaphore; retrying")
                    continue
                err = e
            quick = 0
            backoff = min(backoff * 2, s.lock_backoff_max)
            log.info("Failed to acquire lock: %s. Retrying in %s.", err, format_duration(backoff))
            self._pause(client, watch_from, backoff)

    def _pause(self, client: LockClient, watch_from: int | None, seconds: float) -> None:
        """Sleep `seconds`, or less if the semaphore changes (when watching)."""
        deadline = self.clock.monotonic() + seconds
        if self.s.watch and watch_from is not None:
            try:
                if client.wait_change(watch_from, seconds):
                    return
            except LOCK_ERRORS as e:
                log.debug("watch failed: %s", e)
        self.clock.sleep(max(0.0, deadline - self.clock.monotonic()))

    def _release(self, client: LockClient, why: str) -> bool:
        """Release this host's slot if it holds one: True if it did. A lost CAS is retried at once (up to
        -cas-retries times); any other error is raised."""
        s = self.s
        for attempt in range(s.cas_retries + 1):
            sem, index = client.get()
            if s.holder not in (sem.holders or ()):
                return False
            # Logged before the write, so a test's "end of reboot" time is never after the release.
            log.info("Releasing the reboot lock of %s (%s)", s.holder, why)
            try:
                client.cas(sem.unlock(s.holder), index)
            except ClientError as e:
                if is_compare_failed(e) and attempt < s.cas_retries:
                    continue
                raise
            log.info("Released the reboot lock")
            return True
        return False

    def _release_or_log(self, client: LockClient, why: str) -> None:
        try:
            self._release(client, why)
        except LOCK_ERRORS as e:
            log.error("Releasing the reboot lock failed: %s", e)

    def _post_boot_unlock(self) -> None:
        """The background task that frees the slot taken before the last reboot."""
        s = self.s
        interval = s.unlock_delay
        while not self._stop_unlock.wait(interval):
            try:
                if not self._release(LockClient.connect(s.conn, s.group), "the host is back"):
                    log.info("No reboot lock held by this host")
                return
            except LOCK_ERRORS as e:
                interval = min(interval * 2, s.unlock_backoff_max)
                log.error("Unlocking old locks failed: %s. Retrying in %s.", e, format_duration(interval))

    def _stop_unlock_task(self) -> None:
        self._stop_unlock.set()
        if self._unlock_thread is not None:
            self._unlock_thread.join()
            self._unlock_thread = None

    # -- the reboot -----------------------------------------------------------------------------------

    def _reboot(self) -> None:
        s = self.s
        if s.broadcast:
            when = f"in {human(s.login_delay)}" if s.login_delay > 0 else "now"
            if broadcast(f"System reboot {when}!") and s.login_delay > 0:
                log.info("Logins detected, delaying reboot for %s.", human(s.login_delay))
                self.clock.sleep(s.login_delay)
        log.info("Rebooting")
        s.rebooter.reboot()


# -- settings -------------------------------------------------------------------------------------------


def _environment(values: dict[str, Any], explicit_files: bool) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in values["config-file"]:
        path = Path(name)
        if not path.exists() and not explicit_files:
            continue
        try:
            env.update(read_env_file(path))
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read config file {name}: {e}") from e
    env.update(os.environ)
    return env


def settings(values: dict[str, Any]) -> Settings:
    """Validate the parsed flags; Fatal with locksmith's message on a bad one."""
    strategy = values["reboot-strategy"] or DEFAULT_STRATEGY
    if strategy not in STRATEGIES:
        raise Fatal(f"unknown strategy: {strategy}")
    start, length = values["reboot-window-start"], values["reboot-window-length"]
    if bool(start) != bool(length):
        raise Fatal("Either both or neither $REBOOT_WINDOW_START and $REBOOT_WINDOW_LENGTH must be set")
    try:
        window = Window.parse(start, length) if start else None
    except ValueError as e:
        raise Fatal(f"Error parsing reboot window: {e}") from e
    try:
        holder = values["id"] or read_machine_id()
    except MachineIdError as e:
        raise Fatal(str(e)) from e
    detector = f"command:{values['reboot-needed-command']}" if values["reboot-needed-command"] else \
        values["reboot-detector"]
    try:
        detectors = make_detectors(detector, values["trigger-file"])
    except ValueError as e:
        raise Fatal(str(e)) from e
    rebooter: Rebooter = CommandRebooter(values["reboot-command"]) if values["reboot-command"] else LogindRebooter()
    conn = connection(values)
    try:
        conn.ssl_context()
    except (ValueError, OSError) as e:
        raise Fatal(f"Failed to set up TLS: {e}") from e
    return Settings(
        strategy=strategy, holder=holder, conn=conn, group=values["group"], window=window, detectors=detectors,
        rebooter=rebooter, state_file=Path(values["state-file"]), check_interval=values["check-interval"],
        trigger_interval=values["trigger-interval"], unlock_delay=values["unlock-delay"],
        unlock_backoff_max=values["unlock-backoff-max"], lock_backoff=values["lock-backoff"],
        lock_backoff_max=values["lock-backoff-max"], cas_retries=values["cas-retries"], watch=values["watch"],
        recheck_window=values["recheck-window"], broadcast=values["broadcast"], login_delay=values["login-delay"],
        reboot_timeout=values["reboot-timeout"])


def _exit_now(signum: int, _frame: FrameType | None) -> None:
    log.info("Received %s, exiting.", signal.Signals(signum).name)
    logging.shutdown()
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    flags = agent_flags()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        first, _ = flags.parse(args, os.environ)  # only to learn the config files
        values, rest = flags.parse(args, _environment(first, first["config-file"] != DEFAULT_CONFIG_FILES))
        if rest:
            raise UsageError(f"unexpected arguments: {' '.join(rest)}")
    except UsageError as e:
        sys.stderr.write(f"{e}\nRun '{PROG} -h' for usage.\n")
        return 2
    if values["version"]:
        sys.stdout.write(f"{PROG} version {version()}\n")
        return 0
    setup_logging(values["debug"])
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)
    try:
        return Agent(settings(values)).run()
    except Fatal as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
