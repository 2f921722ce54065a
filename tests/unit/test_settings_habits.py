"""etcd's habits as typed: Go-style flags, `--help` grouped as etcd's with the defaults, etcd 3.4's own sample
etcd.conf.yml, --wal-dir / --max-wals / --max-snapshots, and an empty --discovery refused."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from pyetcd.ops.settings import FLAGS, HELP_GROUPS, UNSUPPORTED, SettingsError, load
from pyetcd.storage import wal_codec
from pyetcd.storage.files import FileStorage
from pyetcd.storage.snap import SnapDir, Snapshot
from pyetcd.storage.wal import Wal

from tests.support.kit import clean_env
from tests.support.servers import PYETCD_BIN, Server, free_port

# -- Go's flag syntax --------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["-name", "n1"], ["--name", "n1"], ["-name=n1"], ["--name=n1"]])
def test_every_form_go_accepts(argv: list[str]) -> None:
    cfg = load([*argv, "-data-dir", "/tmp/d", "-snapshot-count=7", "--heartbeat-interval=50"], environ={})
    assert (cfg.name, str(cfg.data_dir), cfg.snapshot_count, cfg.heartbeat_interval_ms) == ("n1", "/tmp/d", 7, 50)
    assert cfg.sources["name"] == "flag --name"


def test_bool_flags_alone_or_with_equals(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("x\n")
    base = ["-cert-file", str(pem), "-key-file", str(pem), "-trusted-ca-file", str(pem)]
    assert load([*base, "-client-cert-auth"], environ={}).client_tls.client_cert_auth
    assert not load([*base, "-client-cert-auth=false"], environ={}).client_tls.client_cert_auth
    assert load(["-enable-pprof"], environ={}).warnings[0].startswith("enable-pprof=true (from flag --enable-pprof)")
    # As in Go, a bool flag takes no separate word: the word ends the flags, and etcd refuses it.
    with pytest.raises(SettingsError, match=r"^'true' is not a valid flag \(see 'pyetcd --help'\)$"):
        load(["-enable-pprof", "true"], environ={})


@pytest.mark.parametrize(("argv", "message"), [
    (["-nope"], "flag provided but not defined: -nope"),
    (["--name"], "flag needs an argument: -name"),
    (["---name", "x"], "bad flag syntax: ---name"),
    (["-name", "x", "extra"], "'extra' is not a valid flag"),
    (["-version=maybe"], 'invalid boolean value "maybe" for -version: parse error'),
])
def test_command_line_errors_in_gos_words(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(argv, environ={})
    assert str(info.value) == f"{message} (see 'pyetcd --help')"


def test_a_value_may_start_with_a_dash_and_the_last_one_wins() -> None:
    cfg = load(["-name", "-odd-", "--name", "n2", "-initial-cluster-token", "--x"], environ={"ETCD_NAME": "e"})
    assert cfg.name == "n2" and cfg.initial_cluster_token == "--x"
    assert load(["-name", "n3", "--"], environ={}).name == "n3"  # `--` ends the flags, as in Go
    with pytest.raises(SettingsError, match="^'-name' is not a valid flag"):  # and etcd takes no arguments
        load(["--", "-name", "n4"], environ={})


# -- --help --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["-h", "-help", "--help", "--h"])
def test_help_goes_to_stdout_and_exits_0(word: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        load(["-name", "x", word, "-nope"], environ={})
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage:\n")


def _help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        load(["--help"], environ={})
    return capsys.readouterr().out


def test_help_is_grouped_as_etcds_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(capsys)
    titles = re.findall(r"^(\S[^\n]*):$", out, re.M)
    assert titles == ["Usage", *(t for t, _ in HELP_GROUPS if f"\n{t}:\n" in out), *(["pyetcd"] if "\npyetcd:\n" in out
                                                                                    else [])]
    assert titles[1:4] == ["Member", "Clustering", "Security"]
    # every setting once (--config-file in the usage part), with its default when pyetcd implements it
    for flag in [*FLAGS, *UNSUPPORTED]:
        if flag == "config-file":
            continue
        assert len(re.findall(rf"^  --{re.escape(flag)}( |\n)", out, re.M)) == 1, flag
    for line in ("  --name 'default'\n", "  --data-dir '${name}.etcd'\n", "  --wal-dir ''\n",
                 "  --max-snapshots '5'\n", "  --max-wals '5'\n", "  --snapshot-count '10000'\n",
                 "  --initial-cluster-state 'new'\n", "  --client-cert-auth 'false'\n", "  --proxy 'off'\n"):
        assert line in out, line
    member = out.split("\nMember:\n", 1)[1].split("\n\n", 1)[0]
    assert member.index("--wal-dir") < member.index("--max-snapshots") < member.index("--max-wals")
    for flag in ("wal-dir", "max-wals", "max-snapshots"):
        assert flag not in UNSUPPORTED
    assert "  --quota-backend-bytes\n    Not implemented by pyetcd: ignored with a warning; " in out
    assert "  --auto-tls (bool)\n    Not implemented by pyetcd: refused unless 'false'; " in out


def test_what_help_says_of_the_config_file_is_what_it_does(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = " ".join(_help(capsys).split())
    assert ("Unlike etcd, which then ignores every other flag and ETCD_* variable, pyetcd reads both: a flag beats "
            "its ETCD_* variable, which beats the file's key, which beats the default.") in out
    assert "A key etcd does not know stops the start; one pyetcd does not implement is warned about" in out
    conf = tmp_path / "c.yml"
    conf.write_text("name: file\nsnapshot-count: 11\nheartbeat-interval: 20\nelection-timeout: 400\n")
    cfg = load(["-config-file", str(conf), "-name", "flag"], environ={"ETCD_NAME": "env", "ETCD_SNAPSHOT_COUNT": "12"})
    assert (cfg.name, cfg.snapshot_count, cfg.heartbeat_interval_ms, cfg.max_wals) == ("flag", 12, 20, 5)
    conf.write_text("name: file\nnot-an-etcd-key: 1\n")
    with pytest.raises(SettingsError, match="unknown key 'not-an-etcd-key'"):
        load(["-config-file", str(conf)], environ={})


# -- etcd 3.4's own sample configuration ----------------------------------------------------------------

# etcd-io/etcd release-3.4 etcd.conf.yml.sample, verbatim.
ETCD_34_SAMPLE = """\
# This is the configuration file for the etcd server.

# Human-readable name for this member.
name: 'default'

# Path to the data directory.
data-dir:

# Path to the dedicated wal directory.
wal-dir:

# Number of committed transactions to trigger a snapshot to disk.
snapshot-count: 10000

# Time (in milliseconds) of a heartbeat interval.
heartbeat-interval: 100

# Time (in milliseconds) for an election to timeout.
election-timeout: 1000

# Raise alarms when backend size exceeds the given quota. 0 means use the
# default quota.
quota-backend-bytes: 0

# List of comma separated URLs to listen on for peer traffic.
listen-peer-urls: http://localhost:2380

# List of comma separated URLs to listen on for client traffic.
listen-client-urls: http://localhost:2379

# Maximum number of snapshot files to retain (0 is unlimited).
max-snapshots: 5

# Maximum number of wal files to retain (0 is unlimited).
max-wals: 5

# Comma-separated white list of origins for CORS (cross-origin resource sharing).
cors:

# List of this member's peer URLs to advertise to the rest of the cluster.
# The URLs needed to be a comma-separated list.
initial-advertise-peer-urls: http://localhost:2380

# List of this member's client URLs to advertise to the public.
# The URLs needed to be a comma-separated list.
advertise-client-urls: http://localhost:2379

# Discovery URL used to bootstrap the cluster.
discovery:

# Valid values include 'exit', 'proxy'
discovery-fallback: 'proxy'

# HTTP proxy to use for traffic to discovery service.
discovery-proxy:

# DNS domain used to bootstrap initial cluster.
discovery-srv:

# Initial cluster configuration for bootstrapping.
initial-cluster:

# Initial cluster token for the etcd cluster during bootstrap.
initial-cluster-token: 'etcd-cluster'

# Initial cluster state ('new' or 'existing').
initial-cluster-state: 'new'

# Reject reconfiguration requests that would cause quorum loss.
strict-reconfig-check: false

# Accept etcd V2 client requests
enable-v2: true

# Enable runtime profiling data via HTTP server
enable-pprof: true

# Valid values include 'on', 'readonly', 'off'
proxy: 'off'

# Time (in milliseconds) an endpoint will be held in a failed state.
proxy-failure-wait: 5000

# Time (in milliseconds) of the endpoints refresh interval.
proxy-refresh-interval: 30000

# Time (in milliseconds) for a dial to timeout.
proxy-dial-timeout: 1000

# Time (in milliseconds) for a write to timeout.
proxy-write-timeout: 5000

# Time (in milliseconds) for a read to timeout.
proxy-read-timeout: 0

client-transport-security:
  # Path to the client server TLS cert file.
  cert-file:

  # Path to the client server TLS key file.
  key-file:

  # Enable client cert authentication.
  client-cert-auth: false

  # Path to the client server TLS trusted CA cert file.
  trusted-ca-file:

  # Client TLS using generated certificates
  auto-tls: false

peer-transport-security:
  # Path to the peer server TLS cert file.
  cert-file:

  # Path to the peer server TLS key file.
  key-file:

  # Enable peer client cert authentication.
  client-cert-auth: false

  # Path to the peer server TLS trusted CA cert file.
  trusted-ca-file:

  # Peer TLS using generated certificates.
  auto-tls: false

# Enable debug-level logging for etcd.
debug: false

logger: zap

# Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd.
log-outputs: [stderr]

# Force to create a new one member cluster.
force-new-cluster: false

auto-compaction-mode: periodic
auto-compaction-retention: "1"
"""


def _sample_keys() -> dict[str, str]:
    """The sample's top-level keys and values as pyetcd reads them (the TLS sections are all inert)."""
    out = {}
    for line in ETCD_34_SAMPLE.splitlines():
        if m := re.match(r"^([a-z0-9-]+):\s*(.*)$", line):
            out[m[1]] = m[2].strip("'\"")
    return out


def _expected_warnings(conf: Path) -> list[str]:
    """One per sample key pyetcd does not implement, unless its value asks for nothing pyetcd does not do."""
    out = []
    for key, value in _sample_keys().items():
        entry = UNSUPPORTED.get(key)
        if entry is None:
            continue
        shown = value.strip("[]")
        if shown.lower() in entry.inert:
            continue
        out.append(f"{key}={shown} (from file {conf}) is ignored: pyetcd does not implement it ({entry.what})")
    return out


def test_etcds_sample_config_loads_each_key_implemented_or_reported_once(tmp_path: Path) -> None:
    conf = tmp_path / "etcd.conf.yml"
    conf.write_text(ETCD_34_SAMPLE)
    cfg = load(["--config-file", str(conf)], environ={})
    for key in _sample_keys():
        assert key in FLAGS or key in UNSUPPORTED or key.endswith("-transport-security"), key
    assert list(cfg.warnings) == _expected_warnings(conf)
    assert {"quota-backend-bytes", "enable-pprof", "auto-compaction-mode", "auto-compaction-retention"} <= \
        {w.split("=")[0] for w in cfg.warnings}
    assert (cfg.name, cfg.data_dir, cfg.wal_dir, cfg.max_wals, cfg.max_snapshots) == \
        ("default", Path("default.etcd"), None, 5, 5)
    assert cfg.discovery == "" and cfg.initial_cluster == (("default", ("http://localhost:2380",)),)


def test_etcds_sample_config_starts_pyetcd(tmp_path: Path) -> None:
    client, peer = free_port(), free_port()
    conf = tmp_path / "etcd.conf.yml"
    conf.write_text(ETCD_34_SAMPLE.replace("localhost:2379", f"localhost:{client}")
                    .replace("localhost:2380", f"localhost:{peer}"))
    srv = Server("pyetcd", client, tmp_path / "default.etcd", [str(PYETCD_BIN), "--config-file", str(conf)])
    srv.log_path = tmp_path / "default.log"
    srv.proc = subprocess.Popen(srv.argv, cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL,
                                stdout=open(srv.log_path, "ab"), stderr=subprocess.STDOUT)
    try:
        srv.wait_ready(srv.healthy, "pyetcd", 20)
        log = srv.log()
        for warning in _expected_warnings(conf):
            assert log.count(warning) == 1, (warning, log)
        assert (tmp_path / "default.etcd" / "member" / "wal").is_dir()
    finally:
        assert srv.stop() == 0


# -- an empty --discovery -------------------------------------------------------------------------------


def test_an_empty_discovery_flag_is_refused_but_an_empty_key_or_variable_is_no_discovery(tmp_path: Path) -> None:
    for argv in (["--discovery", ""], ["-discovery="], ["--discovery", "  "]):
        with pytest.raises(SettingsError) as info:
            load(argv, environ={})
        assert str(info.value) == ("--discovery is empty: give the discovery token URL, or leave the flag out "
                                   "(from flag --discovery)")
    conf = tmp_path / "c.yml"
    conf.write_text("discovery:\n")
    assert load(["--config-file", str(conf)], environ={}).discovery == ""
    assert load([], environ={"ETCD_DISCOVERY": ""}).discovery == ""


# -- --wal-dir, --max-wals, --max-snapshots ---------------------------------------------------------------


def test_storage_settings_parse() -> None:
    cfg = load(["-wal-dir", "/tmp/w", "-max-wals", "0", "-max-snapshots=2"], environ={})
    assert (cfg.wal_dir, cfg.max_wals, cfg.max_snapshots) == (Path("/tmp/w"), 0, 2)
    cfg = load([], environ={"ETCD_WAL_DIR": "/tmp/e", "ETCD_MAX_WALS": "3"})
    assert (cfg.wal_dir, cfg.max_wals, cfg.max_snapshots, cfg.warnings) == (Path("/tmp/e"), 3, 5, ())
    with pytest.raises(SettingsError, match=r"--max-snapshots: 'many' is not an integer \(from flag"):
        load(["--max-snapshots", "many"], environ={})


def _segmented_wal(path: Path, n: int) -> Wal:
    wal, _ = Wal.open(path, 1)
    for i in range(1, n + 1):
        wal.append(wal_codec.encode_entry(1, i, b"x"))
        wal.cut(i + 1)
    wal.sync()
    return wal


@pytest.mark.parametrize(("keep", "left"), [(1, 1), (2, 2), (5, 5), (0, 9)])
def test_max_wals_keeps_the_newest_covered_segments(tmp_path: Path, keep: int, left: int) -> None:
    wal = _segmented_wal(tmp_path, 8)  # 9 segments: entry i in segment i-1, the last one empty
    assert wal.release_before(9, keep) == 9 - left
    assert len(list(tmp_path.glob("*.wal"))) == left
    wal.close()
    _, records = Wal.open(tmp_path, 1)  # what is left still opens: the newest entries, in order
    assert [r.entry()[1] for r in records] == list(range(9 - left + 1, 9))


def test_max_wals_never_deletes_what_no_snapshot_covers(tmp_path: Path) -> None:
    wal = _segmented_wal(tmp_path, 8)
    assert wal.release_before(4, 2) == 3  # segments 0-2 hold entries 1-3 only
    assert len(list(tmp_path.glob("*.wal"))) == 6
    wal.close()


@pytest.mark.parametrize(("keep", "left"), [(2, 2), (5, 5), (0, 7)])
def test_max_snapshots(tmp_path: Path, keep: int, left: int) -> None:
    snaps = SnapDir(tmp_path, keep=keep)
    for i in range(1, 8):
        snaps.save(Snapshot(1, i * 10, b"s%d" % i))
    assert len(list(tmp_path.glob("*.snap"))) == left
    assert snaps.load_newest() == Snapshot(1, 70, b"s7")


def test_wal_dir_holds_the_wal(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "data", wal_dir=tmp_path / "wal")
    storage.close()
    assert [p.parent.name for p in tmp_path.rglob("*.wal")] == ["wal"]
    assert not (tmp_path / "data" / "member" / "wal").exists()
    assert (tmp_path / "data" / "member" / "snap").is_dir()


def _put_many(port: int, n: int) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(n):
        conn.request("PUT", f"/v2/keys/k{i % 10}", body=f"value={i}",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status in (200, 201), resp.status
    conn.close()


def _get(port: int, key: str) -> bytes:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/v2/keys/{key}")
    body = conn.getresponse().read()
    conn.close()
    return body


@pytest.mark.parametrize(("limits", "most"), [(["--max-wals", "2", "--max-snapshots", "2"], 2),
                                              (["--max-wals", "0", "--max-snapshots", "0"], None)])
def test_the_daemon_keeps_its_wal_in_wal_dir_and_bounds_the_files(tmp_path: Path, limits: list[str],
                                                                   most: int | None) -> None:
    from tests.support.servers import pyetcd_server

    wal_dir = tmp_path / "wal"
    srv = pyetcd_server(tmp_path, extra=["--wal-dir", str(wal_dir), "--snapshot-count", "20", *limits])
    srv.start()
    try:
        _put_many(srv.port, 200)
        snap_dir = srv.data_dir / "member" / "snap"
        wals, snaps = list(wal_dir.glob("*.wal")), list(snap_dir.glob("*.snap"))
        assert not list((srv.data_dir / "member").rglob("*.wal"))
        if most is None:
            assert len(wals) > 5 and len(snaps) > 5, (wals, snaps)
        else:
            # The last PUT's answer may overtake the snapshot it triggers (a forked writer): the files are
            # purged once that snapshot is saved, so wait for it (deadline 10 s).
            deadline = time.monotonic() + 10
            while (len(wals) > most or len(snaps) > most) and time.monotonic() < deadline:
                time.sleep(0.05)
                wals, snaps = list(wal_dir.glob("*.wal")), list(snap_dir.glob("*.snap"))
            assert 1 <= len(wals) <= most and 1 <= len(snaps) <= most, (wals, snaps)
        assert srv.stop() == 0
        srv.start()
        assert b'"value":"199"' in _get(srv.port, "k9")
    finally:
        srv.stop()
