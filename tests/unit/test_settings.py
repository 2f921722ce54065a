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
    with pytest.raises(SettingsError, match="not supported"):
        load(["--discovery-srv", "example.com"], environ={})


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
