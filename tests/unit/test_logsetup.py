"""ops/logsetup.py, the one logging setup of every pyetcd program: formats, outputs, journald fields, and
the daemon's slow-disk and slow-apply warnings."""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyetcd.ops import logsetup
from pyetcd.ops.logsetup import LogSetupError


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test installs handlers on the root (or "pyetcd") logger: put back what was there."""
    saved = {name: (lg.handlers[:], lg.level, lg.propagate)
             for name in ("", "pyetcd") for lg in [logging.getLogger(name or None)]}
    yield
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name or None)
        for h in lg.handlers[:]:
            if h not in handlers:
                lg.removeHandler(h)
                h.close()
        lg.setLevel(level)
        lg.propagate = propagate


def _journal_fields(datagram: bytes) -> dict[str, str]:
    """Decode journald's native protocol (KEY=value lines, or KEY\\n<u64 length><data>\\n)."""
    out: dict[str, str] = {}
    rest = datagram
    while rest:
        line, _, after = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            out[key.decode()] = value.decode()
            rest = after
        else:
            (n,) = struct.unpack("<Q", after[:8])
            out[line.decode()] = after[8:8 + n].decode()
            rest = after[8 + n + 1:]
    return out


def test_text_format_is_time_level_component_message(tmp_path: Path) -> None:
    out = tmp_path / "log"
    logsetup.setup("pyetcd", "info", "capnslog", str(out), environ={})
    logging.getLogger("pyetcd.raft").info("%x became leader at term %d", 0x8E9E05C52164694D, 2)
    logging.getLogger("pyetcd.raft").debug("not shown at info")
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    stamp, level, rest = lines[0].split(" ", 2)
    time.strptime(stamp.split(".")[0], "%Y-%m-%dT%H:%M:%S")
    assert level == "INFO" and rest == "raft: 8e9e05c52164694d became leader at term 2"


def test_zap_writes_json_lines_with_the_records_fields(tmp_path: Path) -> None:
    out = tmp_path / "log"

    class Member(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.PYETCD_MEMBER_ID = "8e9e05c52164694d"
            record.PYETCD_TERM = 7
            return True

    logsetup.setup("pyetcd", "debug", "zap", [str(out)], environ={}, filters=[Member()])
    logging.getLogger("pyetcd.wal").warning("slow fdatasync: %s", "x\ny", extra={"fields": {"took": "1.2s"}})
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("pyetcd.loop").exception("failed")
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert docs[0]["level"] == "warn" and docs[0]["logger"] == "wal" and docs[0]["msg"] == "slow fdatasync: x\ny"
    assert docs[0]["member-id"] == "8e9e05c52164694d" and docs[0]["term"] == 7 and docs[0]["took"] == "1.2s"
    assert docs[0]["caller"].startswith("test_logsetup.py:")
    assert "ts" in docs[0] and docs[1]["level"] == "error" and "ValueError: boom" in docs[1]["error"]


def test_journal_output_sends_structured_fields(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(path)
        sink.settimeout(5)

        class Member(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                record.PYETCD_MEMBER = "infra1"
                return True

        logsetup.setup("locksmithd", "info", "capnslog", "journal", environ={}, filters=[Member()],
                       journal_socket=path)
        logging.getLogger("pyetcd.etcdserver").info("saved snapshot at index %d", 42)
        logging.getLogger("pyetcd.peers").warning("two\nlines")
        first, second = _journal_fields(sink.recv(65536)), _journal_fields(sink.recv(65536))
    assert first["MESSAGE"] == "etcdserver: saved snapshot at index 42"  # journald stamps time and level
    assert first["PRIORITY"] == "6" and first["SYSLOG_IDENTIFIER"] == "locksmithd"
    assert first["LOGGER"] == "etcdserver" and first["PYETCD_MEMBER"] == "infra1"
    assert first["CODE_FILE"].endswith("test_logsetup.py") and first["CODE_LINE"].isdigit()
    assert second["MESSAGE"] == "peers: two\nlines" and second["PRIORITY"] == "4"


def test_default_is_the_journal_only_when_stderr_is_the_journal(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(path)
        st = os.fstat(2)
        mine = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        [h] = logsetup.handlers("pyetcd", "capnslog", ["default"], mine, journal_socket=path)
        assert isinstance(h, logsetup.JournalHandler)
        h.close()
        # Inherited from a unit but stderr redirected (a test's log file): stderr, as etcd does.
        [h] = logsetup.handlers("pyetcd", "capnslog", ["default"], {"JOURNAL_STREAM": "1:2"}, journal_socket=path)
        assert isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)


def test_several_outputs_and_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    env = {"PYETCD_LOGGER": "zap", "PYETCD_LOG_OUTPUTS": f"{a},{b},stdout"}
    logsetup.setup("pyetcd-sched", "info", environ=env)
    logging.getLogger("pyetcd.sched").info("leading as %s", "m1")
    for text in (a.read_text(), b.read_text(), capsys.readouterr().out):
        assert json.loads(text)["msg"] == "leading as m1"


@pytest.mark.parametrize(("logger", "outputs", "message"), [
    ("glog", "default", "--logger 'glog': expected capnslog or zap"),
    ("zap", "default,stderr", "'default' cannot be combined"),
    ("zap", "/nonexistent-dir/x.log", "--log-outputs '/nonexistent-dir/x.log'"),
    ("capnslog", "journal", "no journald socket"),
])
def test_bad_settings_are_refused(logger: str, outputs: str, message: str) -> None:
    with pytest.raises(LogSetupError, match=message):
        logsetup.setup("pyetcd", "info", logger, outputs, environ={}, journal_socket="/nonexistent/socket")
    with pytest.raises(LogSetupError, match="--log-level 'loud'"):
        logsetup.parse_level("loud")


def test_a_second_setup_replaces_its_own_handlers_only(tmp_path: Path) -> None:
    keep = logging.NullHandler()
    logging.getLogger().addHandler(keep)  # e.g. a test runner's capture
    logsetup.setup("pyetcd", "info", "capnslog", str(tmp_path / "a"), environ={})
    logsetup.setup("pyetcd", "info", "capnslog", str(tmp_path / "b"), environ={})
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_pyetcd_logsetup", False)]
    assert len(ours) == 1 and keep in logging.getLogger().handlers


def test_daemon_logs_version_and_effective_settings_at_start(tmp_path: Path) -> None:
    from pyetcd import __version__
    from pyetcd.ops.settings import load
    from pyetcd.runtime.supervision import setup_logging

    out = tmp_path / "daemon.log"
    cfg = load(["--name", "infra1", "--logger", "zap", "--log-outputs", str(out), "--snapshot-count", "50"],
               environ={})
    fields = setup_logging(cfg.log_level, {}, settings=cfg)
    fields.name = "infra1"
    logging.getLogger("pyetcd").warning("after")
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    msgs = [d["msg"] for d in docs]
    assert msgs[0] == f"pyetcd Version: {__version__}" and msgs[1].startswith("etcd API Version: 3.4")
    assert "snapshot-count = 50 (flag --snapshot-count)" in msgs
    assert "name = infra1 (flag --name)" in msgs and "logger = zap (flag --logger)" in msgs
    assert docs[-1]["member"] == "infra1"
    with pytest.raises(SystemExit) as e:
        setup_logging("info", {}, settings=load(["--logger", "glog"], environ={}))
    assert e.value.code == 1


def test_nothing_is_formatted_below_the_level(tmp_path: Path) -> None:
    logsetup.setup("pyetcd", "warn", "capnslog", str(tmp_path / "log"), environ={})

    class Loud:
        def __str__(self) -> str:
            raise AssertionError("formatted")

    logging.getLogger("pyetcd.raft").info("%s", Loud())  # the hot path pays a level check only
    assert (tmp_path / "log").read_text() == ""


# ---- the daemon's slow-disk and slow-apply warnings (runtime/loop.py) -------------------------------


def test_slow_fdatasync_and_slow_apply_are_warned(caplog: pytest.LogCaptureFixture) -> None:
    from pyetcd.runtime import loop
    from pyetcd.server.driver import Output, Persist, Turn

    turns = [Turn(persist=Persist(None, [], None, True))]
    driver = SimpleNamespace(disk_full=False, next_turn=lambda mono, wall: turns.pop() if turns else None)

    def persisted(turn: Turn) -> Output:
        time.sleep(loop.SLOW_APPLY_S + 0.02)
        return Output(applied=[object(), object()])  # type: ignore[list-item]

    driver.persisted = persisted
    storage = SimpleNamespace(write=lambda *a: None, sync=lambda: time.sleep(loop.SLOW_FDATASYNC_S + 0.05))
    handled: list[Output] = []
    shell = SimpleNamespace(driver=driver, storage=storage, front=SimpleNamespace(answer=lambda a: None),
                            _handle=handled.append, _disk_full_logged=False)
    with caplog.at_level(logging.WARNING, logger="pyetcd"):
        loop.EventLoop._run_driver(shell, time.monotonic())  # type: ignore[arg-type]
    assert len(handled) == 1
    msgs = [(r.name, r.getMessage()) for r in caplog.records]
    assert any(n == "pyetcd.wal" and m.startswith("slow fdatasync: sync duration of 1.") and
               m.endswith("expected less than 1s") for n, m in msgs), msgs
    assert any(n == "pyetcd.loop" and m.startswith("apply request took too long: 0.1") and
               "for 2 entries, expected less than 100ms" in m for n, m in msgs), msgs
