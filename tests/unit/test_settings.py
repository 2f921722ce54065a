"""Settings: etcd's TLS and discovery flags, their environment variables and YAML sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyetcd.ops.settings import SettingsError, load, with_initial_cluster


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, str]:
    files = {}
    for name in ("cert", "key", "ca"):
        path = tmp_path / f"{name}.pem"
        path.write_text("not checked here: the loop loads it\n")
        files[name] = str(path)
    return files


def test_https_client_url_needs_a_certificate() -> None:
    with pytest.raises(SettingsError, match="needs --cert-file and --key-file"):
        load(["--listen-client-urls", "https://127.0.0.1:2379"], environ={})


def test_https_peer_url_needs_a_peer_certificate(pem: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="needs --peer-cert-file"):
        load(["--listen-peer-urls", "https://127.0.0.1:2380", "--cert-file", pem["cert"], "--key-file", pem["key"]],
             environ={})


def test_client_cert_auth_needs_a_trusted_ca(pem: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="--client-cert-auth needs --trusted-ca-file"):
        load(["--cert-file", pem["cert"], "--key-file", pem["key"], "--client-cert-auth"], environ={})


def test_cert_without_key_is_refused(pem: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="go together"):
        load(["--peer-cert-file", pem["cert"]], environ={})


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(SettingsError, match="nope.pem"):
        load(["--cert-file", missing, "--key-file", missing], environ={})


def test_bool_flags_alone_or_with_values_and_from_environment(pem: dict[str, str]) -> None:
    base = ["--peer-cert-file", pem["cert"], "--peer-key-file", pem["key"], "--peer-trusted-ca-file", pem["ca"]]
    assert load([*base, "--peer-client-cert-auth"], environ={}).peer_tls.client_cert_auth
    assert not load([*base, "--peer-client-cert-auth=false"], environ={}).peer_tls.client_cert_auth
    cfg = load(base, environ={"ETCD_PEER_CLIENT_CERT_AUTH": "true", "ETCD_PEER_CERT_ALLOWED_CN": "member"})
    assert cfg.peer_tls.client_cert_auth and cfg.peer_tls.allowed_cn == "member"
    with pytest.raises(SettingsError, match="not a boolean"):
        load([*base, "--peer-client-cert-auth=maybe"], environ={})


def test_yaml_transport_security_sections(tmp_path: Path, pem: dict[str, str]) -> None:
    conf = tmp_path / "etcd.yaml"
    conf.write_text(f"""
name: n1
listen-client-urls: https://127.0.0.1:2379
client-transport-security:
  cert-file: {pem['cert']}
  key-file: {pem['key']}
  trusted-ca-file: {pem['ca']}
  client-cert-auth: true
peer-transport-security:
  cert-file: {pem['cert']}
  key-file: {pem['key']}
  trusted-ca-file: {pem['ca']}
  client-cert-auth: true
  allowed-cn: member
""")
    cfg = load(["--config-file", str(conf)], environ={})
    assert cfg.client_tls.cert_file == pem["cert"] and cfg.client_tls.client_cert_auth
    assert cfg.peer_tls.trusted_ca_file == pem["ca"] and cfg.peer_tls.allowed_cn == "member"
    assert cfg.listen_client_urls[0].scheme == "https"


def test_discovery_and_initial_cluster_exclude_each_other() -> None:
    durl = "http://127.0.0.1:2379/v2/keys/_etcd/registry/abc"
    cfg = load(["--discovery", durl], environ={})
    assert cfg.discovery == durl and cfg.discovery_fallback == "proxy"
    with pytest.raises(SettingsError, match="cannot both be set"):
        load(["--discovery", durl, "--initial-cluster", "default=http://localhost:2380"], environ={})
    with pytest.raises(SettingsError, match="cannot both be set"):
        load(["--discovery", durl], environ={"ETCD_INITIAL_CLUSTER": "default=http://localhost:2380"})
    with pytest.raises(SettingsError, match="'exit' or 'proxy'"):
        load(["--discovery", durl, "--discovery-fallback", "maybe"], environ={})
    assert load(["--discovery-srv", "example.com.", "--discovery-srv-name", "x"], environ={}).discovery_srv == \
        "example.com"
    with pytest.raises(SettingsError, match="cannot be combined"):
        load(["--discovery-srv", "example.com", "--discovery", durl], environ={})


def test_discovered_cluster_is_checked_like_a_given_one() -> None:
    durl = "http://127.0.0.1:2379/v2/keys/_etcd/registry/abc"
    cfg = load(["--name", "a", "--initial-advertise-peer-urls", "http://10.0.0.1:2380", "--discovery", durl],
               environ={})
    found = with_initial_cluster(cfg, "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380", durl)
    assert found.initial_cluster_token == durl and [n for n, _ in found.initial_cluster] == ["a", "b"]
    with pytest.raises(SettingsError, match="duplicate url"):
        with_initial_cluster(cfg, "a=http://10.0.0.1:2380,b=http://10.0.0.1:2380", durl)
    with pytest.raises(SettingsError, match="does not list a"):
        with_initial_cluster(cfg, "b=http://10.0.0.2:2380,c=http://10.0.0.3:2380", durl)


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    conf = tmp_path / "pyetcd.yaml"
    conf.write_text("name: from-file\nsnapshot-count: 500\nheartbeat-interval: 50\nelection-timeout: 600\n")
    env = {"ETCD_SNAPSHOT_COUNT": "700", "ETCD_HEARTBEAT_INTERVAL": "60"}
    cfg = load(["--config-file", str(conf), "--heartbeat-interval", "70"], environ=env)
    assert cfg.name == "from-file" and cfg.sources["name"] == f"file {conf}"
    assert cfg.snapshot_count == 700 and cfg.sources["snapshot-count"] == "env ETCD_SNAPSHOT_COUNT"
    assert cfg.heartbeat_interval_ms == 70 and cfg.sources["heartbeat-interval"] == "flag --heartbeat-interval"
    assert cfg.election_timeout_ms == 600
    assert cfg.initial_cluster_state == "new" and cfg.sources["initial-cluster-state"] == "default"
    # The file may also come from the environment, as etcd's ETCD_CONFIG_FILE.
    assert load([], environ={"ETCD_CONFIG_FILE": str(conf)}).name == "from-file"


def test_unknown_key_and_bad_value_name_the_key_and_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "pyetcd.yaml"
    conf.write_text("name: n1\nlisten-client-url: http://127.0.0.1:2379\n")
    with pytest.raises(SettingsError, match=rf"config file {conf}: unknown key 'listen-client-url'"):
        load(["--config-file", str(conf)], environ={})
    conf.write_text("name: n1\nheartbeat-interval: fast\n")
    with pytest.raises(SettingsError, match=rf"--heartbeat-interval: 'fast' is not an integer \(from file {conf}\)"):
        load(["--config-file", str(conf)], environ={})
    conf.write_text("peer-transport-security:\n  cert-fil: x\n")
    with pytest.raises(SettingsError, match="unknown key peer-transport-security.cert-fil"):
        load(["--config-file", str(conf)], environ={})
    conf.write_text("- a list\n")
    with pytest.raises(SettingsError, match="expected a mapping"):
        load(["--config-file", str(conf)], environ={})
    with pytest.raises(SettingsError, match=r"\(from env ETCD_ELECTION_TIMEOUT\)"):
        load([], environ={"ETCD_ELECTION_TIMEOUT": "soon"})


def test_print_config_shows_values_and_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "pyetcd.yaml"
    conf.write_text("name: n1\nlisten-client-urls: [http://127.0.0.1:2379, http://10.0.0.1:2379]\n")
    with pytest.raises(SystemExit) as stop:
        load(["--config-file", str(conf), "--print-config", "--snapshot-count", "42"], environ={})
    assert stop.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert f"name: n1  # file {conf}" in out
    assert f"listen-client-urls: 'http://127.0.0.1:2379,http://10.0.0.1:2379'  # file {conf}" in out
    assert "snapshot-count: '42'  # flag --snapshot-count" in out
    assert "initial-cluster-state: new  # default" in out


def test_daemon_refuses_a_bad_file_with_status_1(tmp_path: Path) -> None:
    import subprocess

    from tests.support.servers import PYETCD_BIN

    conf = tmp_path / "pyetcd.yaml"
    conf.write_text("name: n1\nbogus: true\n")
    done = subprocess.run([str(PYETCD_BIN), "--config-file", str(conf)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stderr == f"pyetcd: config file {conf}: unknown key 'bogus'\n"


def test_proxy_flags_as_etcd_names_them(tmp_path: Path) -> None:
    cfg = load(["--proxy", "readonly", "--proxy-failure-wait", "250", "--initial-cluster", "m1=http://10.0.0.1:2380"],
               environ={"ETCD_PROXY_READ_TIMEOUT": "1500"})
    assert (cfg.proxy, cfg.proxy_failure_wait_ms, cfg.proxy_read_timeout_ms) == ("readonly", 250, 1500)
    assert (cfg.proxy_refresh_interval_ms, cfg.proxy_dial_timeout_ms, cfg.proxy_write_timeout_ms) == (30000, 1000, 5000)
    conf = tmp_path / "p.yaml"
    conf.write_text("proxy: on\nproxy-dial-timeout: 300\ninitial-cluster: m1=http://10.0.0.1:2380\n")
    cfg = load(["--config-file", str(conf)], environ={})
    assert (cfg.proxy, cfg.proxy_dial_timeout_ms) == ("on", 300)


def test_proxy_mode_must_be_known() -> None:
    with pytest.raises(SettingsError, match="--proxy 'maybe'"):
        load(["--proxy", "maybe"], environ={})
    with pytest.raises(SettingsError, match="has no member named"):  # a member must be in its cluster; a proxy not
        load(["--initial-cluster", "m1=http://10.0.0.1:2380"], environ={})


# -- settings pyetcd does not implement: warned about or refused, never dropped silently ------------------

REPO = Path(__file__).resolve().parents[2]


def test_logger_and_log_outputs_are_settings_naming_the_source(tmp_path: Path) -> None:
    conf = tmp_path / "etcd.conf.yml"
    conf.write_text("log-outputs: [stdout, /var/log/etcd.log]\n")
    cfg = load(["--logger", "zap", "--config-file", str(conf)], environ={})
    assert cfg.warnings == ()
    assert cfg.values["logger"] == "zap" and cfg.sources["logger"] == "flag --logger"
    assert cfg.values["log-outputs"] == "stdout,/var/log/etcd.log" and cfg.sources["log-outputs"] == f"file {conf}"
    assert load([], environ={}).values["logger"] == "capnslog"
    # A flag beats its variable and the file, for these as for the rest; etcd's default needs no word.
    cfg = load(["--log-outputs", "stderr"], environ={"ETCD_LOG_OUTPUTS": "stdout"})
    assert cfg.warnings == ("environment variable ETCD_LOG_OUTPUTS is ignored: flag --log-outputs is given too "
                            "(etcd refuses to start with both)",)
    assert load([], environ={"ETCD_QUOTA_BACKEND_BYTES": "8589934592"}).warnings == (
        "quota-backend-bytes=8589934592 (from env ETCD_QUOTA_BACKEND_BYTES) is ignored: pyetcd does not "
        "implement it (no space quota and no NOSPACE alarm)",)


@pytest.mark.parametrize(("argv", "env", "yaml_text", "message"), [
    (["--auto-tls"], {}, "", r"auto-tls=true \(from flag --auto-tls\): pyetcd does not implement it and must "
                            r"not ignore it: no self-signed certificates"),
    ([], {"ETCD_PEER_AUTO_TLS": "true"}, "", r"peer-auto-tls=true \(from env ETCD_PEER_AUTO_TLS\)"),
    ([], {}, "client-transport-security:\n  auto-tls: true\n", r"auto-tls=true \(from file .*\)"),
    ([], {}, "peer-transport-security:\n  allowed-hostname: m1.example\n", r"peer-cert-allowed-hostname=m1"),
    (["--client-crl-file", "/etc/crl.pem"], {}, "", "certificate revocation lists are not checked"),
    ([], {}, "cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n", "Python's defaults"),
    ([], {}, "cors: https://ui.example\n", r"cors=https://ui.example \(from file"),
    ([], {"ETCD_HOST_WHITELIST": "etcd.example"}, "", "the Host header of client requests is not checked"),
    (["--enable-v2=false"], {}, "", r"enable-v2=false .*serves only the v2 API"),
    ([], {}, "enable-v2: false\n", "enable-v2=false"),
    (["--force-new-cluster"], {}, "", "cannot restart a member as a new one-member cluster"),
    (["--debug=maybe"], {}, "", r"--debug: 'maybe' is not a boolean \(from flag --debug\)"),
])
def test_unsafe_settings_are_refused(tmp_path: Path, argv: list[str], env: dict[str, str], yaml_text: str,
                                     message: str) -> None:
    if yaml_text:
        conf = tmp_path / "etcd.conf.yml"
        conf.write_text(yaml_text)
        argv = [*argv, "--config-file", str(conf)]
    with pytest.raises(SettingsError, match=message):
        load(argv, environ=env)


def test_values_asking_for_nothing_pyetcd_does_not_do_pass_silently(tmp_path: Path) -> None:
    conf = tmp_path / "etcd.conf.yml"
    conf.write_text("enable-v2: true\nforce-new-cluster: false\ncors: '*'\nhost-whitelist: '*'\ndebug: false\n"
                    "log-outputs: [default]\npre-vote: true\nwal-dir:\nmetrics:\n"
                    "client-transport-security:\n  auto-tls: false\n")
    assert load(["--config-file", str(conf), "--auto-tls=false", "--enable-v2", "--log-outputs", "stderr"],
                environ={"ETCD_UNSAFE_NO_FSYNC": "false", "ETCD_CLIENT_CRL_FILE": ""}).warnings == ()


def test_unknown_etcd_variables_are_warned_about_as_etcd_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyetcd.ops import settings

    env = {"ETCD_FOO": "secret-value", "ETCDCTL_API": "2", "ETCD_NAME": "n1", "PYETCD_X": "1", "ETCD_DEBUG": "1"}
    cfg = load([], environ=env)
    assert cfg.name == "n1"
    assert cfg.warnings == ("debug=1 (from env ETCD_DEBUG) is ignored: pyetcd does not implement it "
                            "(use --log-level debug)",
                            "unrecognized environment variable ETCD_FOO (ignored)")
    assert not [w for w in cfg.warnings if "secret-value" in w]  # etcd prints the value; it may be a secret
    # ETCD_UNSUPPORTED_ARCH: etcd 3.4 reads it only where it does not support the architecture (there it
    # needs the machine's Go name, and says nothing more); on amd64 and ppc64le it is unrecognized.
    monkeypatch.setattr(settings.platform, "machine", lambda: "aarch64")
    assert load([], environ={"ETCD_UNSUPPORTED_ARCH": "arm64"}).warnings == ()
    assert load([], environ={"ETCD_UNSUPPORTED_ARCH": "amd64"}).warnings == (
        "unrecognized environment variable ETCD_UNSUPPORTED_ARCH (ignored)",)
    monkeypatch.setattr(settings.platform, "machine", lambda: "x86_64")
    assert load([], environ={"ETCD_UNSUPPORTED_ARCH": "amd64"}).warnings == (
        "unrecognized environment variable ETCD_UNSUPPORTED_ARCH (ignored)",)


def test_a_variable_shadowed_by_its_flag_is_warned_about() -> None:
    cfg = load(["--snapshot-count", "5"], environ={"ETCD_SNAPSHOT_COUNT": "7"})
    assert cfg.snapshot_count == 5
    assert cfg.warnings == ("environment variable ETCD_SNAPSHOT_COUNT is ignored: flag --snapshot-count is given "
                            "too (etcd refuses to start with both)",)


# An etcd 3.4 member's etcd.conf.yml (the keys of etcd.conf.yml.sample and embed/config.go at v3.4), for a
# three-member cluster over plain http.
ETCD_CONF = """\
name: 'infra1'
data-dir: /var/lib/etcd/infra1.etcd
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 8589934592
listen-peer-urls: http://10.0.0.1:2380
listen-client-urls: http://10.0.0.1:2379,http://127.0.0.1:2379
max-snapshots: 5
max-wals: 5
cors:
initial-advertise-peer-urls: http://10.0.0.1:2380
advertise-client-urls: http://10.0.0.1:2379
discovery:
discovery-fallback: 'proxy'
discovery-proxy:
discovery-srv:
initial-cluster: infra1=http://10.0.0.1:2380,infra2=http://10.0.0.2:2380,infra3=http://10.0.0.3:2380
initial-cluster-token: 'etcd-cluster-1'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: true
enable-pprof: true
proxy: 'off'
proxy-failure-wait: 5000
proxy-refresh-interval: 30000
proxy-dial-timeout: 1000
proxy-write-timeout: 5000
proxy-read-timeout: 0
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
debug: false
logger: zap
log-level: info
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
max-request-bytes: 1572864
grpc-keepalive-min-time: 5s
grpc-keepalive-interval: 2h
grpc-keepalive-timeout: 20s
pre-vote: true
metrics: basic
auth-token: simple
"""


def test_an_etcd_34_config_file_loads_with_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "etcd.conf.yml"
    conf.write_text(ETCD_CONF)
    cfg = load(["--config-file", str(conf)], environ={})
    assert cfg.name == "infra1" and [n for n, _ in cfg.initial_cluster] == ["infra1", "infra2", "infra3"]
    assert str(cfg.data_dir) == "/var/lib/etcd/infra1.etcd" and cfg.initial_cluster_token == "etcd-cluster-1"
    ignored = [w.split("=")[0] for w in cfg.warnings]
    assert ignored == ["quota-backend-bytes", "enable-pprof",
                       "auto-compaction-mode", "auto-compaction-retention", "max-request-bytes",
                       "grpc-keepalive-min-time", "grpc-keepalive-interval", "grpc-keepalive-timeout", "metrics",
                       "auth-token"]
    assert all(f"(from file {conf}) is ignored: pyetcd does not implement it (" in w for w in cfg.warnings)
    # --print-config shows them too.
    with pytest.raises(SystemExit):
        load(["--config-file", str(conf), "--print-config"], environ={})
    out = capsys.readouterr().out
    assert f"# warning: enable-pprof=true (from file {conf}) is ignored" in out
    # An unsafe key still stops the start; a key etcd does not know either (a typo) too.
    conf.write_text(ETCD_CONF.replace("  auto-tls: false\npeer", "  auto-tls: true\npeer"))
    with pytest.raises(SettingsError, match=rf"auto-tls=true \(from file {conf}\)"):
        load(["--config-file", str(conf)], environ={})
    conf.write_text(ETCD_CONF + "listen-client-url: http://10.0.0.1:2379\n")
    with pytest.raises(SettingsError, match="unknown key 'listen-client-url'"):
        load(["--config-file", str(conf)], environ={})


def test_help_lists_every_setting_pyetcd_does_not_implement(capsys: pytest.CaptureFixture[str]) -> None:
    from pyetcd.ops.settings import UNSUPPORTED

    with pytest.raises(SystemExit):
        load(["--help"], environ={})
    out = capsys.readouterr().out
    for flag in UNSUPPORTED:
        assert f"--{flag}" in out
    assert "accepted for compatibility" not in out


def test_readme_table_is_the_unsupported_table() -> None:
    from pyetcd.ops.settings import UNSUPPORTED

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Settings pyetcd does not implement", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines()  # one setting's rows: "| `name` | ... |"
            if line.startswith("| `") and line.split("|")[1].strip().strip("`") in UNSUPPORTED]
    expected = []
    for flag, entry in UNSUPPORTED.items():
        silent = sorted(v for v in entry.inert if v)
        when = f" unless `{'`/`'.join(silent)}`" if silent else ""
        expected.append(f"| `{flag}` | {'**refused**' if entry.refuse else 'ignored with a warning'}{when}: "
                        f"{entry.what} |")
    assert rows == expected


def test_the_daemon_logs_the_warnings_at_start(tmp_path: Path) -> None:
    import subprocess

    from tests.support.servers import PYETCD_BIN

    # A bad test-fault variable stops the daemon right after the warnings are logged (exit status 1).
    done = subprocess.run([str(PYETCD_BIN), "--data-dir", str(tmp_path / "d"), "--enable-pprof"],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "PYETCD_FAULT_FSYNC_EIO_AFTER": "x", "ETCD_FOO": "1"})
    assert done.returncode == 1, done.stderr
    assert "WARNING pyetcd: enable-pprof=true (from flag --enable-pprof) is ignored" in done.stderr
    assert "WARNING pyetcd: unrecognized environment variable ETCD_FOO (ignored)" in done.stderr
