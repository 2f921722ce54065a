"""One logging setup for every pyetcd program: the daemon, locksmithd/locksmithctl, pyetcd-sched, the
discovery token service. Same format, same outputs, same journald fields.

Two formats, named as etcd 3.4's `--logger` names them:

- capnslog (the default): one text line per record, `2026-12-06T13:10:57.123456 INFO raft: 8e9e05c52164694d
  became leader at term 2` (local time, the level, the component: the logger's name without "pyetcd.").
  Written to the journal, MESSAGE is only `component: message` (journald stamps time and priority).
- zap: one JSON object per line, as etcd's zap logger writes them: {"level":"info","ts":"...","logger":
  "raft","caller":"driver.py:301","msg":"...", ...}; the member's identity (daemon) and any fields a
  record carries (`extra={"fields": {...}}`) are keys of the object.

Outputs (etcd's `--log-outputs`, comma-separated, any number): `default` (the journal when stderr is
connected to it, i.e. under systemd: JOURNAL_STREAM names stderr; else stderr), `stderr`, `stdout`,
`journal` (journald's native protocol, with structured fields), or a file path (appended to; reopened
when logrotate moves it).

Journal fields on every record: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER (the program), LOGGER (the
component), CODE_FILE, CODE_LINE, CODE_FUNC, THREAD_NAME, plus every upper-case attribute a filter puts on
the record (the daemon's PYETCD_MEMBER, PYETCD_MEMBER_ID, PYETCD_TERM, PYETCD_ROLE).

Programs without `--logger`/`--log-outputs` flags of their own read PYETCD_LOGGER and PYETCD_LOG_OUTPUTS.
Nothing here runs unless a record is enabled: callers log with %-style arguments.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import struct
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

LOGGERS = ("capnslog", "zap")
DEFAULT_LOGGER = "capnslog"
DEFAULT_OUTPUTS = "default"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
LOGGER_ENV = "PYETCD_LOGGER"
OUTPUTS_ENV = "PYETCD_LOG_OUTPUTS"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL, "dpanic": logging.CRITICAL,
           "panic": logging.CRITICAL, "fatal": logging.CRITICAL}
_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_ZAP_LEVEL = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
              logging.CRITICAL: "fatal"}
# journald field names are upper-case letters, digits and underscores, not starting with "_" or a digit.
_FIELD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class LogSetupError(ValueError):
    """A bad --logger, --log-outputs or --log-level value."""


def parse_level(text: str) -> int:
    level = _LEVELS.get((text or "info").strip().lower())
    if level is None:
        raise LogSetupError(f"--log-level {text!r}: expected debug, info, warn, error, panic or fatal")
    return level


def parse_outputs(text: str | Iterable[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    outputs = tuple(dict.fromkeys(o.strip() for o in items if o.strip())) or (DEFAULT_OUTPUTS,)
    if "default" in outputs and len(outputs) > 1:  # etcd: multi logoutput for "default" is not supported
        raise LogSetupError(f"--log-outputs {','.join(outputs)!r}: 'default' cannot be combined with other outputs")
    return outputs


def check(logger: str, outputs: str | Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """The logger and the outputs, checked (LogSetupError naming the setting)."""
    name = (logger or DEFAULT_LOGGER).strip().lower()
    if name not in LOGGERS:
        raise LogSetupError(f"--logger {logger!r}: expected capnslog or zap")
    return name, parse_outputs(outputs)


def component(name: str) -> str:
    return name[len("pyetcd."):] if name.startswith("pyetcd.") else name


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The upper-case attributes filters put on the record (journal fields) and `extra={"fields": ...}`."""
    out = {k: v for k, v in record.__dict__.items() if k[:1].isalpha() and k.isupper() and _FIELD_CHARS.issuperset(k)}
    fields = record.__dict__.get("fields")
    if isinstance(fields, Mapping):
        out.update(fields)
    return out


class TextFormatter(logging.Formatter):
    """capnslog: `<local time> <LEVEL> <component>: <message>`; `bare`: `<component>: <message>` (journal)."""

    def __init__(self, bare: bool = False) -> None:
        super().__init__()
        self.bare = bare

    def format(self, record: logging.LogRecord) -> str:
        text = f"{component(record.name)}: {record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        if self.bare:
            return text
        stamp = datetime.fromtimestamp(record.created).strftime("%Y-%m-%dT%H:%M:%S.%f")
        return f"{stamp} {record.levelname} {text}"


class JsonFormatter(logging.Formatter):
    """zap: one JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "level": _ZAP_LEVEL.get(record.levelno, record.levelname.lower()),
            "ts": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="microseconds"),
            "logger": component(record.name),
            "caller": f"{record.filename}:{record.lineno}",
            "msg": record.getMessage(),
        }
        for key, value in _extra_fields(record).items():
            name = key[len("PYETCD_"):].lower().replace("_", "-") if key.startswith("PYETCD_") else key
            if value != "" and value is not None:
                doc.setdefault(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["error"] = record.exc_text
        return json.dumps(doc, default=str, ensure_ascii=False)


def _journal_field(key: str, value: object) -> bytes:
    data = str(value).encode("utf-8", "replace")
    name = key.encode()
    if b"\n" in data:  # the binary form: name, newline, little-endian 64-bit length, data
        return name + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name + b"=" + data + b"\n"


class JournalHandler(logging.Handler):
    """journald's native protocol: one datagram of fields per record, on JOURNAL_SOCKET."""

    def __init__(self, identifier: str, path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.identifier = identifier
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        out: dict[str, object] = {
            "MESSAGE": self.format(record),
            "PRIORITY": _SYSLOG_PRIORITY.get(record.levelno, 6),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": component(record.name),
            "CODE_FILE": record.pathname,
            "CODE_LINE": record.lineno,
            "CODE_FUNC": record.funcName,
            "THREAD_NAME": record.threadName,
        }
        for key, value in _extra_fields(record).items():
            if key.isupper() and _FIELD_CHARS.issuperset(key) and value != "" and value is not None:
                out.setdefault(key, value)
        return out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            datagram = b"".join(_journal_field(k, v) for k, v in self.fields(record).items())
            self.sock.sendto(datagram, self.path)
        except Exception:  # noqa: BLE001 - a logging handler never raises into the program
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def stderr_is_journal(environ: Mapping[str, str]) -> bool:
    """systemd sets JOURNAL_STREAM to "dev:inode" of the stream it connected to stderr; a process whose
    stderr was redirected elsewhere (a test's log file) inherits the variable but must keep stderr."""
    try:
        dev, ino = (int(x) for x in environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(2)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def handlers(program: str, logger: str, outputs: Iterable[str], environ: Mapping[str, str],
             journal_socket: str = JOURNAL_SOCKET) -> list[logging.Handler]:
    """One handler per output, formatted by `logger`. LogSetupError for an output that cannot be opened."""
    made: list[logging.Handler] = []
    for output in outputs:
        target = output
        if output == "default":
            target = "journal" if stderr_is_journal(environ) and os.path.exists(journal_socket) else "stderr"
        handler: logging.Handler
        if target == "stderr":
            handler = logging.StreamHandler(sys.stderr)
        elif target == "stdout":
            handler = logging.StreamHandler(sys.stdout)
        elif target == "journal":
            if not os.path.exists(journal_socket):
                raise LogSetupError(f"--log-outputs journal: no journald socket at {journal_socket}")
            handler = JournalHandler(program, journal_socket)
        else:
            try:
                handler = logging.handlers.WatchedFileHandler(target, encoding="utf-8")
            except OSError as e:
                raise LogSetupError(f"--log-outputs {target!r}: {e}") from e
        bare = target == "journal"
        handler.setFormatter(JsonFormatter() if logger == "zap" else TextFormatter(bare=bare))
        made.append(handler)
    return made


def setup(program: str, level: str | int = "info", logger: str | None = None, outputs: str | Iterable[str] | None = None,
          environ: Mapping[str, str] | None = None, filters: Iterable[logging.Filter] = (),
          root: str = "", journal_socket: str = JOURNAL_SOCKET) -> list[logging.Handler]:
    """Install the handlers on the root logger (or `root`); LogSetupError on a bad setting.

    `logger`/`outputs` None: PYETCD_LOGGER / PYETCD_LOG_OUTPUTS, else capnslog on `default`."""
    env = os.environ if environ is None else environ
    name, outs = check(logger if logger is not None else env.get(LOGGER_ENV, ""),
                       outputs if outputs is not None else env.get(OUTPUTS_ENV, ""))
    lvl = level if isinstance(level, int) else parse_level(level)
    made = handlers(program, name, outs, env, journal_socket)
    for handler in made:
        for f in filters:
            handler.addFilter(f)
    target = logging.getLogger(root or None)
    for old in target.handlers[:]:  # ours from an earlier setup; others (a test runner's capture) stay
        if getattr(old, "_pyetcd_logsetup", False):
            target.removeHandler(old)
            old.close()
    for handler in made:
        handler._pyetcd_logsetup = True  # type: ignore[attr-defined]
        target.addHandler(handler)
    target.setLevel(lvl)
    if root:
        target.propagate = False
    return made


def log_start(program: str, version: str, settings: Iterable[tuple[str, str, str]] = (),
              versions: Mapping[str, str] | None = None, name: str = "pyetcd.main") -> None:
    """What operators look for first: the version, then each effective setting (name, value, source)."""
    log = logging.getLogger(name)
    if not log.isEnabledFor(logging.INFO):
        return
    log.info("%s Version: %s", program, version)
    for what, value in (versions or {}).items():
        log.info("%s: %s", what, value)
    log.info("Python Version: %s", sys.version.split()[0])
    for key, value, source in settings:
        log.info("%s = %s (%s)", key, value, source)
