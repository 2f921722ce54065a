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
