"""locksmithd's settings: reboot windows (local time, DST), Go-style flags with their environment
variables, environment files, reboot detectors, utmp, and the daemon's validation. (Go's durations and
numbers themselves: test_gocompat.py.)"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pyetcd.locksmith import agent
from pyetcd.locksmith.detect import (
    CommandDetector,
    FileDetector,
    make_detectors,
    parse_update_engine_status,
    shell_detector,
)
from pyetcd.locksmith.flags import Flag, FlagSet, UsageError, parse_bool, read_env_file
from pyetcd.locksmith.reboot import CommandRebooter, RebootError, logged_in_ttys
from pyetcd.locksmith.window import Window


@pytest.fixture
def tz() -> Iterator[object]:
    """Switch the process's local time zone for a test, and back."""
    saved = os.environ.get("TZ")

    def use(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def local(*args: int) -> float:
    return datetime(*args).timestamp()  # type: ignore[arg-type]


# -- windows ---------------------------------------------------------------------------------------


def test_daily_window(tz: object) -> None:
    tz("UTC")  # type: ignore[operator]
    w = Window.parse("14:00", "1h")
    assert w.contains(local(2024, 5, 6, 14, 0)) and w.contains(local(2024, 5, 6, 14, 59))
    assert w.contains(local(2024, 5, 6, 15, 0))  # the end is inclusive, as upstream
    assert not w.contains(local(2024, 5, 6, 15, 1)) and not w.contains(local(2024, 5, 6, 13, 59))
    assert w.wait(local(2024, 5, 6, 13, 0)) == 3600
    assert w.next_start(local(2024, 5, 6, 16, 0)) == local(2024, 5, 7, 14, 0)
    assert w.wait(local(2024, 5, 6, 14, 30)) == 0


def test_daily_window_across_midnight(tz: object) -> None:
    tz("UTC")  # type: ignore[operator]
    w = Window.parse("23:30", "1h")
    assert w.contains(local(2024, 5, 7, 0, 15))  # opened yesterday
    assert w.previous_start(local(2024, 5, 7, 0, 15)) == local(2024, 5, 6, 23, 30)
    assert not w.contains(local(2024, 5, 7, 0, 31))
    assert w.next_start(local(2024, 5, 7, 0, 31)) == local(2024, 5, 7, 23, 30)


def test_weekly_window(tz: object) -> None:
    tz("UTC")  # type: ignore[operator]
    w = Window.parse("thu 23:00", "1h30m")  # day names are case-insensitive
    assert str(w) == "Thu 23:00 for 1h30m0s"
    thu = (2024, 5, 9)  # a Thursday
    assert datetime(*thu).weekday() == 3
    assert w.contains(local(2024, 5, 10, 0, 15)) and not w.contains(local(2024, 5, 10, 0, 45))
    assert not w.contains(local(*thu, 22, 59))
    assert w.next_start(local(2024, 5, 10, 1, 0)) == local(2024, 5, 16, 23, 0)
    assert w.next_start(local(2024, 5, 6, 9, 0)) == local(*thu, 23, 0)  # Monday -> this Thursday
    assert w.wait(local(*thu, 22, 0)) == 3600


def test_window_start_is_local_wall_time_across_dst(tz: object) -> None:
    tz("America/New_York")  # type: ignore[operator]
    w = Window.parse("14:00", "1h")
    # 2024-03-10: clocks jump 02:00 EST -> 03:00 EDT; from 15:00 the day before, the next window is 23 h on.
    assert w.next_start(local(2024, 3, 9, 14, 0)) - local(2024, 3, 9, 14, 0) == 23 * 3600
    assert time.localtime(w.next_start(local(2024, 3, 9, 15, 0))).tm_hour == 14
    # 2024-11-03: 02:00 EDT -> 01:00 EST, a 25-hour day.
    assert w.next_start(local(2024, 11, 2, 14, 0)) - local(2024, 11, 2, 14, 0) == 25 * 3600


def test_window_in_a_dst_gap_or_overlap(tz: object) -> None:
    tz("America/New_York")  # type: ignore[operator]
    gap = Window.parse("02:30", "30m")  # 02:30 does not exist on 2024-03-10: read with EST, i.e. 03:30 EDT
    start = gap.previous_start(local(2024, 3, 10, 12, 0))
    assert time.gmtime(start)[:5] == (2024, 3, 10, 7, 30)
    overlap = Window.parse("01:30", "1h")  # 01:30 happens twice on 2024-11-03: the first (EDT) one
    start = overlap.previous_start(local(2024, 11, 3, 12, 0))
    assert time.gmtime(start)[:5] == (2024, 11, 3, 5, 30)
    assert overlap.contains(start + 3600) and not overlap.contains(start + 3601)


def test_weekly_window_over_dst_change(tz: object) -> None:
    tz("Europe/Berlin")  # type: ignore[operator]
    w = Window.parse("Sun 12:00", "2h")  # 2024-03-31 is the Sunday of the change
    start = w.next_start(local(2024, 3, 25, 0, 0))
    assert time.localtime(start)[:5] == (2024, 3, 31, 12, 0)
    assert start - w.previous_start(local(2024, 3, 25, 0, 0)) == 7 * 86400 - 3600


@pytest.mark.parametrize(("start", "length", "error"), [
    ("24:00", "1h", "invalid time"), ("12:60", "1h", "invalid time"), ("Xyz 10:00", "1h", "invalid day"),
    ("noon", "1h", "invalid window start"), ("10:00", "-1h", "negative"), ("10:00", "24h", "not shorter"),
    ("Mon 10:00", "168h", "not shorter"), ("10:00", "1y", "unknown unit"),
])
def test_bad_windows(start: str, length: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Window.parse(start, length)


def test_weekly_window_may_exceed_a_day() -> None:
    assert Window.parse("Sat 22:00", "30h").length == 30 * 3600


# -- flags -----------------------------------------------------------------------------------------


def flagset() -> FlagSet:
    return FlagSet("t", "LOCKSMITHCTL", [
        Flag("endpoint", "list", ["http://d:2379"], "", aliases=("endpoints",)),
        Flag("group", "str", "", ""), Flag("debug", "bool", False, ""), Flag("n", "int", 5, ""),
        Flag("every", "duration", 1.0, ""), Flag("strategy", "str", "", "", env=("REBOOT_STRATEGY",)),
    ])


def test_go_style_flags_and_command_boundary() -> None:
    values, rest = flagset().parse(["-group", "g1", "--debug", "-n=7", "--every=250ms", "lock", "-x"], {})
    assert values == {"endpoint": ["http://d:2379"], "group": "g1", "debug": True, "n": 7, "every": 0.25,
                      "strategy": ""}
    assert rest == ["lock", "-x"]  # parsing stops at the command
    assert flagset().parse(["--", "-group"], {})[1] == ["-group"]


def test_list_flags_repeat_and_split_on_commas() -> None:
    values, _ = flagset().parse(["-endpoint", "http://a:1,http://b:2", "--endpoints=http://c:3"], {})
    assert values["endpoint"] == ["http://a:1", "http://b:2", "http://c:3"]


def test_environment_fills_unset_flags_only() -> None:
    env = {"LOCKSMITHCTL_GROUP": "from-env", "LOCKSMITHCTL_ENDPOINT": "http://e:1,http://e:2",
           "LOCKSMITHCTL_DEBUG": "true", "REBOOT_STRATEGY": "off", "LOCKSMITHCTL_N": ""}
    values, _ = flagset().parse(["-group", "from-flag"], env)
    assert values["group"] == "from-flag"
    assert values["endpoint"] == ["http://e:1", "http://e:2"]
    assert values["debug"] is True and values["strategy"] == "off" and values["n"] == 5  # empty = unset
    assert flagset().parse(["-debug=false"], env)[0]["debug"] is False


@pytest.mark.parametrize(("argv", "error"), [
    (["-nope"], "not defined: -nope"), (["-group"], "needs an argument"), (["-n", "x"], "invalid value"),
    (["-debug=maybe"], "invalid value"), (["---group", "x"], "bad flag syntax"), (["-every", "5"], "invalid"),
])
def test_flag_errors(argv: list[str], error: str) -> None:
    with pytest.raises(UsageError, match=error):
        flagset().parse(argv, {})


def test_numbers_and_durations_may_carry_spaces() -> None:
    values, _ = flagset().parse(["-n", " 0x10 ", "-every", "1m30s "], {"LOCKSMITHCTL_GROUP": " g "})
    assert (values["n"], values["every"], values["group"]) == (16, 90.0, " g ")


def test_env_errors_name_the_variable() -> None:
    with pytest.raises(UsageError, match=r"\$LOCKSMITHCTL_N"):
        flagset().parse([], {"LOCKSMITHCTL_N": "many"})


def test_parse_bool_is_gos() -> None:
    assert all(parse_bool(t) for t in ("1", "t", "T", "true", "TRUE", "True"))
    assert not any(parse_bool(t) for t in ("0", "f", "F", "false", "FALSE", "False"))
    with pytest.raises(ValueError):
        parse_bool("yes")


def test_env_file(tmp_path: Path) -> None:
    f = tmp_path / "update.conf"
    f.write_text("# CoreOS style\nREBOOT_STRATEGY=etcd-lock\n\nexport LOCKSMITHD_GROUP = \"rack 1\"\n"
                 "REBOOT_WINDOW_START='Thu 04:00'\n; comment\nnot a setting\nEMPTY=\n")
    assert read_env_file(f) == {"REBOOT_STRATEGY": "etcd-lock", "LOCKSMITHD_GROUP": "rack 1",
                                "REBOOT_WINDOW_START": "Thu 04:00", "EMPTY": ""}


# -- the daemon's settings ---------------------------------------------------------------------------


def agent_values(*argv: str, env: dict[str, str] | None = None) -> dict[str, object]:
    return agent.agent_flags().parse(["-id", "h1", "-config-file=", *argv], env or {})[0]


def test_agent_defaults_follow_locksmith() -> None:
    s = agent.settings(agent_values())
    assert s.strategy == "reboot"  # empty REBOOT_STRATEGY means reboot since v0.6.0
    assert s.window is None
    assert list(s.conn.endpoints) == ["http://127.0.0.1:2379", "http://127.0.0.1:4001"]
    assert (s.unlock_delay, s.unlock_backoff_max, s.lock_backoff, s.lock_backoff_max) == (5, 300, 5, 300)
    assert (s.login_delay, s.reboot_timeout, s.cas_retries, s.watch, s.recheck_window) == (300, 604800, 5, True, True)


@pytest.mark.parametrize(("argv", "env", "message"), [
    ([], {"REBOOT_STRATEGY": "best-effort"}, "unknown strategy: best-effort"),
    (["-reboot-window-start", "10:00"], {}, "Either both or neither $REBOOT_WINDOW_START"),
    ([], {"REBOOT_WINDOW_LENGTH": "1h"}, "Either both or neither"),
    (["-reboot-window-start", "25:00", "-reboot-window-length", "1h"], {}, "Error parsing reboot window: "),
    (["-reboot-detector", "magic"], {}, "unknown reboot detector"),
    (["-etcd-certfile", "/x.crt"], {}, "Failed to set up TLS"),
])
def test_agent_fatal_settings(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(agent.Fatal) as err:
        agent.settings(agent_values(*argv, env=env))
    assert message in str(err.value)


def test_agent_window_prefers_prefixed_variables() -> None:
    env = {"LOCKSMITHD_REBOOT_WINDOW_START": "Mon 01:00", "REBOOT_WINDOW_START": "02:00",
           "REBOOT_WINDOW_LENGTH": "2h"}
    s = agent.settings(agent_values(env=env))
    assert s.window == Window(0, 1, 0, 7200.0)


# -- detectors, rebooters, utmp ---------------------------------------------------------------------


def test_file_and_command_detectors(tmp_path: Path) -> None:
    flag = tmp_path / "needed"
    det = make_detectors("file", str(flag))
    assert [d.name for d in det] == ["trigger file"]
    assert not det[0].reboot_needed()
    flag.touch()
    assert det[0].reboot_needed()
    assert shell_detector(f"test -e {flag}").reboot_needed() is True
    assert shell_detector("exit 1").reboot_needed() is False
    assert shell_detector("exit 3").reboot_needed() is None  # unknown: logged, not a reboot


def test_detector_specs() -> None:
    names = [d.name for d in make_detectors("debian", "/t")]
    assert names == ["trigger file", "reboot-required file"]
    rhel = make_detectors("rhel", "")[0]
    assert isinstance(rhel, CommandDetector) and rhel.needed == {1} and rhel.not_needed == {0}
    suse = make_detectors("suse", "")[0]
    assert isinstance(suse, CommandDetector) and suse.needed == {102}
    cmd = make_detectors("command: test -e /x", "/t")
    assert isinstance(cmd[0], FileDetector) and isinstance(cmd[1], CommandDetector)
    assert cmd[1].argv == ("/bin/sh", "-c", "test -e /x")
    auto = [d.name for d in make_detectors("auto", "/t")]
    assert auto[:2] == ["trigger file", "reboot-required file"] or "update-engine" in auto
    with pytest.raises(ValueError):
        make_detectors("command:", "/t")


def test_update_engine_status_parsing() -> None:
    out = 'xdsst 1712345678 0 "UPDATE_STATUS_UPDATED_NEED_REBOOT" "3815.2.0" 0\n'
    assert parse_update_engine_status(out) == "UPDATE_STATUS_UPDATED_NEED_REBOOT"
    assert parse_update_engine_status('xdsst 0 0 "UPDATE_STATUS_IDLE" "" 0') == "UPDATE_STATUS_IDLE"
    assert parse_update_engine_status("s \"x\"") is None


def test_command_rebooter_reports_failure() -> None:
    CommandRebooter("true").reboot()
    with pytest.raises(RebootError, match="status 3: inhibited"):
        CommandRebooter("echo inhibited >&2; exit 3").reboot()


def test_utmp_user_sessions() -> None:
    fmt = struct.Struct("=hxxi32s4s32s256shhi8x16s20s")
    assert fmt.size == 384

    def rec(kind: int, line: bytes) -> bytes:
        return fmt.pack(kind, 100, line, b"", b"root", b"", 0, 0, 0, b"", b"")

    data = rec(7, b"pts/0") + rec(8, b"pts/1") + rec(7, b"tty1") + rec(2, b"~") + rec(7, b"../etc/x") + b"\0" * 10
    assert logged_in_ttys(data) == ["pts/0", "tty1"]


# -- the shipped configuration: the agent takes the lock ----------------------------------------------

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "packaging" / "locksmith.conf"


def test_shipped_config_takes_the_lock_and_update_conf_still_wins(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REBOOT_STRATEGY", "LOCKSMITHD_REBOOT_STRATEGY"):
        monkeypatch.delenv(name, raising=False)
    flags = agent.agent_flags()
    first, _ = flags.parse(["-id", "h1", "-config-file", str(SHIPPED)], {})
    values, _ = flags.parse(["-id", "h1"], agent._environment(first, True))
    assert agent.settings(values).strategy == "etcd-lock"
    # /etc/coreos/update.conf is read after it (locksmith's own file keeps its word), the environment last.
    update = tmp_path / "update.conf"
    update.write_text("REBOOT_STRATEGY=reboot\n")
    first, _ = flags.parse(["-id", "h1", "-config-file", f"{SHIPPED},{update}"], {})
    values, _ = flags.parse(["-id", "h1"], agent._environment(first, True))
    assert agent.settings(values).strategy == "reboot"
    monkeypatch.setenv("REBOOT_STRATEGY", "off")
    values, _ = flags.parse(["-id", "h1"], agent._environment(first, True))
    assert agent.settings(values).strategy == "off"


def test_strategy_default_help_unit_packages_and_readme_agree() -> None:
    """Unset means reboot (locksmith's); what ships (both packages, the fleet's cloud-config) says etcd-lock,
    and --help, the unit and the README say both."""
    assert agent.DEFAULT_STRATEGY == "reboot" and agent.DEFAULT_CONFIG_FILES[0] == agent.SHIPPED_CONFIG
    assert agent.settings(agent_values("-reboot-strategy=")).strategy == "reboot"
    assert read_env_file(SHIPPED)["REBOOT_STRATEGY"] == "etcd-lock"
    usage = agent.agent_flags().usage()
    line = usage[usage.index("-reboot-strategy"):].split("[$REBOOT_STRATEGY]")[0]
    assert "(default reboot)" in line and f"{agent.SHIPPED_CONFIG} says etcd-lock" in line
    assert "packaging/locksmith.conf etc/pyetcd/" in (REPO / "packaging/debian/pyetcd.install").read_text()
    spec = (REPO / "packaging/rpm/pyetcd.spec").read_text()
    assert "packaging/locksmith.conf %{buildroot}/etc/pyetcd/locksmith.conf" in spec
    assert "%config(noreplace) /etc/pyetcd/locksmith.conf" in spec
    assert "REBOOT_STRATEGY=etcd-lock" in (REPO / "cloud-config/pyetcd-fleet.yaml").read_text()
    unit = (REPO / "units/pyetcd-locksmithd.service").read_text()
    assert "REBOOT_STRATEGY=etcd-lock" in unit and not re.search(r"^Environment", unit, re.M)
    assert "-reboot-strategy" not in unit.split("ExecStart=")[1].splitlines()[0]
    readme = (REPO / "README.md").read_text()
    assert "`REBOOT_STRATEGY` is `etcd-lock` as shipped" in readme and "unset or empty means `reboot`" in readme
