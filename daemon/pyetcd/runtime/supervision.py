"""Talking to the service manager: sd_notify readiness, status, watchdog and stopping; journald fields.

Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so the loop calls these unconditionally.
The notifications go through the `sdnotify` package when it is installed and otherwise straight to
the datagram socket (a few lines: the protocol is one `KEY=value` datagram), so Fedora-style installs
without sdnotify still work.

- READY=1 once the member has recovered its data and sees a leader (it can then serve).
- STATUS= whenever what the member is doing changes: recovering, discovering, waiting for a leader,
  leader or follower with the term, and whether its disk is full (writes refused until space is freed);
  plus a notice while an advertised address is missing from the host (runtime/addresses.py).
- WATCHDOG=1 from the event loop at half of WatchdogSec: a loop that stops turning (SIGSTOP, a hung
  disk) is killed and restarted by systemd. Start-up work that blocks before the loop runs (discovery
  waiting for peers) keeps the watchdog fed from `keepalive_during`, which stops once the loop runs.
- STOPPING=1 on SIGTERM, before a leader hands over leadership.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ..ops import logsetup

log = logging.getLogger("pyetcd.supervision")


class _Sender(Protocol):
    def notify(self, state: str) -> Any: ...


class _RawNotifier:
    def __init__(self, path: str) -> None:
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def notify(self, state: str) -> None:
        try:
            self.sock.sendto(state.encode(), self.address)
        except OSError as e:
            log.debug("sd_notify failed: %s", e)


def _sender(path: str) -> _Sender:
    try:
        import sdnotify  # type: ignore[import-untyped]
    except ImportError:
        return _RawNotifier(path)
    return sdnotify.SystemdNotifier()  # type: ignore[no-any-return]


class Supervisor:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.enabled = bool(path)
        self._sender: _Sender | None = _sender(path) if path else None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else 0.0
        self._next_ping = 0.0
        self.ready = False
        self._status = ""  # the STATUS= last sent
        self._base = ""  # ... without the notice
        self.notice = ""
        self._view: tuple[int, int, bool, int, bool] | None = None  # what the last STATUS described

    def _send(self, state: str) -> None:
        if self._sender is not None:
            self._sender.notify(state)

    def status(self, text: str) -> None:
        self._base = text
        text = f"{text}; {self.notice}" if self.notice else text
        if text != self._status:
            self._status = text
            self._send(f"STATUS={text}")

    def set_notice(self, notice: str) -> None:
        """Something the operator should see whatever the member is doing (a vanished advertised address)."""
        if notice != self.notice:
            self.notice = notice
            self.status(self._base)

    def mark_ready(self, status: str) -> None:
        if not self.ready:
            self.ready = True
            self._base = status
            self._status = f"{status}; {self.notice}" if self.notice else status
            self._send(f"READY=1\nSTATUS={self._status}")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")

    def ping(self, mono: float) -> None:
        """From the loop, every turn: WATCHDOG=1 at most every half watchdog interval."""
        if self.watchdog_interval_s and mono >= self._next_ping:
            self._next_ping = mono + self.watchdog_interval_s
            self._send("WATCHDOG=1")

    def on_turn(self, member: Any, mono: float) -> None:
        """Readiness and status from the member's Raft view; cheap enough for every loop turn."""
        self.ping(mono)
        if not self.enabled:
            return
        lead = member.leader_id
        view = (lead, member.term, member.is_leader, len(member.members.by_id), member.disk_full)
        if view == self._view:
            return  # nothing to say: the loop turns thousands of times a second under load
        self._view = view
        if member.is_leader:
            text = f"leader, term {member.term}, {len(member.members.by_id)} members"
        elif lead:
            text = f"follower of {lead:x}, term {member.term}"
        else:
            text = f"waiting for a leader (term {member.term})"
        if member.disk_full:
            text = f"disk full: writes refused until space is freed; {text}"
        if lead and not self.ready:
            self.mark_ready(text)
        else:
            self.status(text)

    @contextmanager
    def keepalive_during(self, what: str) -> Iterator[None]:
        """Feed the watchdog from a helper thread while blocking start-up work (`what`) runs."""
        self.status(what)
        if not self.watchdog_interval_s:
            yield
            return
        done = threading.Event()

        def feed() -> None:
            while not done.wait(self.watchdog_interval_s):
                self._send("WATCHDOG=1")

        thread = threading.Thread(target=feed, name="watchdog-during-startup", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


class MemberFields(logging.Filter):
    """Adds the member's identity and Raft view to every log record, as journald fields."""

    def __init__(self) -> None:
        super().__init__()
        self.member: Any = None
        self.name = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.PYETCD_MEMBER = self.name
        m = self.member
        if m is not None:
            record.PYETCD_MEMBER_ID = f"{m.self_id:x}"
            record.PYETCD_TERM = m.term
            record.PYETCD_ROLE = "leader" if m.is_leader else "follower" if m.leader_id else "candidate"
        return True


def setup_logging(level: str, environ: dict[str, str] | None = None, settings: Any = None) -> MemberFields:
    """The daemon's logging (ops/logsetup.py, the one setup every program uses): `settings`' logger and
    log-outputs (etcd's --logger/--log-outputs; default: journald with fields when stderr is the journal,
    else stderr); then the version and the effective settings. A bad value exits 1, as bad settings do."""
    env = os.environ if environ is None else environ
    fields = MemberFields()
    values = getattr(settings, "values", None) or {}
    try:
        logsetup.setup("pyetcd", level, values.get("logger", logsetup.DEFAULT_LOGGER),
                       values.get("log-outputs", logsetup.DEFAULT_OUTPUTS), env, filters=[fields])
    except logsetup.LogSetupError as e:
        print(f"pyetcd: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    if settings is not None:
        from .. import ETCD_SERVER_VERSION, __version__

        effective = {**values, "data-dir": str(getattr(settings, "data_dir", "") or values.get("data-dir", ""))}
        shown = [(k, v, settings.sources.get(k, "default")) for k, v in effective.items()
                 if k != "config-file" and (v != "" or settings.sources.get(k, "default") != "default")]
        logsetup.log_start("pyetcd", __version__, shown, {"etcd API Version": ETCD_SERVER_VERSION})
    return fields
