"""Fast checks of the fleet cloud-config (cloud-config/pyetcd-fleet.yaml and render.py), no containers.

The real thing runs in `make e2e`; these catch a broken template in `make test`: it renders to one
user-data for every host, the result is YAML with the files and commands the e2e relies on, and the
pyetcd configuration it writes is accepted by pyetcd's own settings loader (host facts faked).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pyetcd.ops import hostfacts, settings

REPO = Path(__file__).resolve().parents[2]
RENDER = REPO / "cloud-config" / "render.py"
_spec = importlib.util.spec_from_file_location("cc_render", RENDER)
assert _spec is not None and _spec.loader is not None
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)

CA_CRT = "-----BEGIN CERTIFICATE-----\nAAAA\nBBBB\n-----END CERTIFICATE-----\n"
CA_KEY = "-----BEGIN PRIVATE KEY-----\nCCCC\nDDDD\n-----END PRIVATE KEY-----\n"
DISCOVERY = "http://10.0.0.1:2379/v2/keys/_etcd/registry/abc"
DEB = "/mnt/dist/pyetcd_1_all.deb"


@pytest.fixture()
def ca_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ca"
    d.mkdir()
    (d / "ca.crt").write_text(CA_CRT)
    (d / "ca.key").write_text(CA_KEY)
    return d


@pytest.fixture()
def host(monkeypatch: pytest.MonkeyPatch) -> None:
    """This 'host': named h1, eth0 10.0.0.11/24 holding the default route, eth1 192.168.56.11/24."""
    net = hostfacts.Netlink(
        interfaces=(hostfacts.Interface(1, "lo", (hostfacts.Address("127.0.0.1", 8, 254, False),)),
                    hostfacts.Interface(2, "eth0", (hostfacts.Address("10.0.0.11", 24, 0, False),)),
                    hostfacts.Interface(3, "eth1", (hostfacts.Address("192.168.56.11", 24, 0, False),))),
        default_route_ifindexes=(2,))
    monkeypatch.setattr(hostfacts, "read_netlink", lambda: net)
    monkeypatch.setattr(hostfacts.socket, "gethostname", lambda: "h1")


def _doc(text: str) -> dict:
    assert text.startswith("#cloud-config\n")
    assert not re.findall(r"@[A-Z_]+@", text), "a placeholder reached the rendered file"
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def _files(doc: dict) -> dict[str, dict]:
    return {f["path"]: f for f in doc["write_files"]}


def _config(tmp_path: Path, doc: dict) -> settings.Settings:
    # The TLS files it names are issued on the host at first boot: stand-ins under tmp_path.
    tls = tmp_path / "etc-tls"
    tls.mkdir(exist_ok=True)
    for name in ("ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"):
        (tls / name).write_text(CA_CRT)
    path = tmp_path / "pyetcd.yaml"
    path.write_text(_files(doc)["/etc/pyetcd/pyetcd.yaml"]["content"].replace("/etc/pyetcd/tls/", f"{tls}/"))
    return settings.load(["--config-file", str(path)], environ={})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # /usr/bin/python3 in real use: any python3 without the venv's packages will do (standard library only).
    return subprocess.run([sys.executable, "-I", str(RENDER), *args], capture_output=True, text=True, timeout=30)


def test_template_itself_is_yaml() -> None:
    doc = yaml.safe_load((REPO / "cloud-config" / "pyetcd-fleet.yaml").read_text())
    assert doc["runcmd"] and doc["write_files"]
    assert not (REPO / "cloud-config" / "pyetcd-member.yaml").exists()  # one template for the whole fleet


def test_template_placeholders_are_fleet_wide() -> None:
    text = (REPO / "cloud-config" / "pyetcd-fleet.yaml").read_text()
    assert set(re.findall(r"@[A-Z_]+@", text)) == {
        "@DISCOVERY@", "@DEB@", "@SCHEME@", "@ADVERTISE_INTERFACE@", "@CA_CRT@", "@CA_KEY@", "@KEEP_CA_KEY@"}


def test_tls_rendering(tmp_path: Path, ca_dir: Path, host: None) -> None:
    doc = _doc(render.render(DISCOVERY, DEB, ca_dir))
    files = _files(doc)
    assert "hostname" not in doc and "fqdn" not in doc  # the platform names the host
    assert (files["/etc/pyetcd/tls/ca.crt"]["owner"], files["/etc/pyetcd/tls/ca.crt"]["permissions"]) == (
        "root:root", "0644")
    assert (files["/etc/pyetcd/tls/ca.key"]["owner"], files["/etc/pyetcd/tls/ca.key"]["permissions"]) == (
        "root:root", "0600")
    assert files["/etc/pyetcd/tls/ca.crt"]["content"] == CA_CRT
    assert files["/etc/pyetcd/tls/ca.key"]["content"] == CA_KEY
    assert not files["/etc/pyetcd/pyetcd.yaml"].get("defer")  # present before the package is installed
    assert any(u.get("name") == "pyetcd" and u.get("system") for u in doc["users"] if isinstance(u, dict))
    # Install without starting, issue this host's certificates, then start pyetcd and the reboot agent.
    run = doc["runcmd"]
    assert run[0] == ["/usr/local/sbin/pyetcd-install", "--no-start", DEB]
    assert run[1] == ["/usr/local/sbin/pyetcd-tls"]
    assert ["systemctl", "enable", "pyetcd.service", "pyetcd-locksmithd.service"] in run
    assert run.index(["systemctl", "start", "--no-block", "pyetcd.service", "pyetcd-locksmithd.service"]) > 1
    script = files["/usr/local/sbin/pyetcd-tls"]["content"]
    assert "pyetcd certs member \"$@\"" in script and 'keep="false"' in script and 'iface=""' in script
    for link in ("server.crt", "server.key", "peer.crt", "peer.key"):
        assert f'"$d/{link}"' in script
    assert 'chown pyetcd:pyetcd "$d/$name.key" "$d/$name-peer.key"' in script
    assert 'chmod 0600 "$d/$name.key" "$d/$name-peer.key"' in script
    assert files["/etc/pyetcd/locksmith.conf"]["content"] == (
        "REBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_ENDPOINT=http://127.0.0.1:2379\n")
    # The scheduler agent's unit is there, not enabled.
    assert "pyetcd-sched agent" in files["/etc/systemd/system/pyetcd-sched-agent.service"]["content"]
    assert not any("pyetcd-sched-agent" in " ".join(map(str, c)) for c in run)
    cfg = _config(tmp_path, doc)
    assert cfg.name == "h1" and cfg.discovery == DISCOVERY and cfg.discovery_fallback == "proxy"
    assert cfg.advertise_client_urls == ("https://10.0.0.11:2379",)
    assert cfg.initial_advertise_peer_urls == ("https://10.0.0.11:2380",)
    assert [(u.scheme, u.host, u.port) for u in cfg.listen_client_urls] == [("https", "10.0.0.11", 2379),
                                                                           ("http", "127.0.0.1", 2379)]
    assert [(u.scheme, u.host, u.port) for u in cfg.listen_peer_urls] == [("https", "10.0.0.11", 2380)]
    assert cfg.peer_tls.enabled and cfg.client_tls.enabled
    assert str(cfg.data_dir) == "/var/lib/pyetcd/pyetcd.etcd"


def test_keep_ca_key_and_interface(tmp_path: Path, ca_dir: Path, host: None) -> None:
    doc = _doc(render.render(DISCOVERY, DEB, ca_dir, keep_ca_key=True, advertise_interface="eth1"))
    script = _files(doc)["/usr/local/sbin/pyetcd-tls"]["content"]
    assert 'keep="true"' in script and 'iface="eth1"' in script
    cfg = _config(tmp_path, doc)
    assert cfg.advertise_client_urls == ("https://192.168.56.11:2379",)
    assert cfg.initial_advertise_peer_urls == ("https://192.168.56.11:2380",)


def test_plain_rendering(tmp_path: Path, host: None) -> None:
    doc = _doc(render.render(DISCOVERY, "https://pkgs.example/pyetcd_1_all.deb", None))
    files = _files(doc)
    assert not any(p.startswith("/etc/pyetcd/tls/") or p == "/usr/local/sbin/pyetcd-tls" for p in files)
    assert doc["runcmd"][0] == ["/usr/local/sbin/pyetcd-install", "--no-start",
                                "https://pkgs.example/pyetcd_1_all.deb"]
    assert ["/usr/local/sbin/pyetcd-tls"] not in doc["runcmd"]
    cfg = _config(tmp_path, doc)
    assert cfg.name == "h1" and cfg.discovery_fallback == "proxy"
    assert cfg.initial_advertise_peer_urls == ("http://10.0.0.11:2380",)
    assert cfg.advertise_client_urls == ("http://10.0.0.11:2379",)
    assert not cfg.peer_tls.enabled and not cfg.client_tls.enabled


def test_seeds_share_one_user_data(tmp_path: Path, ca_dir: Path) -> None:
    common = ["--discovery", DISCOVERY, "--deb", DEB, "--ca-dir", str(ca_dir)]
    for name in ("pyetcd1", "pyetcd2"):
        proc = _cli(*common, "--seed-dir", str(tmp_path / name), "--hostname", name)
        assert proc.returncode == 0, proc.stderr
    a, b = ((tmp_path / n / "user-data").read_bytes() for n in ("pyetcd1", "pyetcd2"))
    assert a == b
    assert (tmp_path / "pyetcd1" / "user-data").stat().st_mode & 0o077 == 0  # it carries the CA key
    metas = [yaml.safe_load((tmp_path / n / "meta-data").read_text()) for n in ("pyetcd1", "pyetcd2")]
    assert [m["local-hostname"] for m in metas] == ["pyetcd1", "pyetcd2"]
    assert metas[0]["instance-id"] != metas[1]["instance-id"]
    out = tmp_path / "fleet.yaml"
    assert _cli(*common, "--out", str(out)).returncode == 0
    assert out.read_bytes() == a
    stdout = _cli(*common)
    assert stdout.returncode == 0 and stdout.stdout.encode() == a


def test_seed_instance_id_follows_user_data(tmp_path: Path) -> None:
    render.write_seed(tmp_path / "a", "n1", "#cloud-config\nlocale: C.UTF-8\n")
    render.write_seed(tmp_path / "b", "n1", "#cloud-config\nlocale: C\n")
    a, b = ((tmp_path / d / "meta-data").read_text() for d in "ab")
    assert "local-hostname: n1" in a and a != b


@pytest.mark.parametrize("kwargs, message", [
    ({"discovery": "tokens.example/abc"}, "--discovery"),
    ({"discovery": 'http://x/"; rm'}, "--discovery"),
    ({"deb": "x'; rm -rf /"}, "--deb"),
    ({"deb": "relative/pyetcd.deb"}, "--deb"),
    ({"advertise_interface": "eth 1"}, "--advertise-interface"),
    ({"keep_ca_key": True}, "--keep-ca-key"),
])
def test_bad_input_is_refused(kwargs: dict, message: str) -> None:
    args = {"discovery": DISCOVERY, "deb": "/x.deb", "ca_dir": None} | kwargs
    with pytest.raises(render.RenderError, match=message):
        render.render(**args)


def test_missing_ca_files(tmp_path: Path) -> None:
    with pytest.raises(render.RenderError, match="--ca-dir.*ca.crt"):
        render.render(DISCOVERY, "/x.deb", tmp_path)
    (tmp_path / "ca.crt").write_text(CA_CRT)
    with pytest.raises(render.RenderError, match="--ca-dir.*ca.key"):
        render.render(DISCOVERY, "/x.deb", tmp_path)
    (tmp_path / "ca.key").write_text(CA_CRT)  # a certificate is no key
    with pytest.raises(render.RenderError, match="ca.key is not a PEM private key"):
        render.render(DISCOVERY, "/x.deb", tmp_path)


@pytest.mark.parametrize("args, message", [
    ([], "--discovery"),
    (["--discovery", DISCOVERY, "--deb", DEB], "--ca-dir"),
    (["--discovery", DISCOVERY, "--deb", DEB, "--no-tls", "--seed-dir", "s"], "--hostname"),
    (["--discovery", DISCOVERY, "--deb", DEB, "--no-tls", "--hostname", "h1"], "--seed-dir"),
    (["--discovery", DISCOVERY, "--deb", DEB, "--no-tls", "--seed-dir", "s", "--hostname", "Bad_Name"],
     "--hostname"),
    (["--discovery", DISCOVERY, "--deb", DEB, "--ca-dir", "/nonexistent"], "--ca-dir"),
    (["--discovery", "nope", "--deb", DEB, "--no-tls"], "--discovery"),
])
def test_cli_errors_exit_1_naming_the_argument(tmp_path: Path, args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-I", str(RENDER), *args], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()
