"""Fast checks of the fleet cloud-config (cloud-config/pyetcd-member.yaml and render.py), no containers.

The real thing runs in `make e2e`; these catch a broken template in `make test`: it renders, the result
is YAML with the files and commands the e2e relies on, and the pyetcd configuration it writes is
accepted by pyetcd's own settings loader.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from pyetcd.ops import settings

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("cc_render", REPO / "cloud-config" / "render.py")
assert _spec is not None and _spec.loader is not None
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)

PEM = "-----BEGIN CERTIFICATE-----\nAAAA\nBBBB\n-----END CERTIFICATE-----\n"
DISCOVERY = "http://10.0.0.1:2379/v2/keys/_etcd/registry/abc"


@pytest.fixture()
def tls_dir(tmp_path: Path) -> Path:
    for f in ("ca.crt", "n1.crt", "n1.key", "n1-peer.crt", "n1-peer.key"):
        (tmp_path / f).write_text(PEM.replace("AAAA", f.upper().replace(".", "")))
    return tmp_path


def _doc(text: str) -> dict:
    assert text.startswith("#cloud-config\n")
    assert "@" not in text.replace("@example", "")
    return yaml.safe_load(text)


def _files(doc: dict) -> dict[str, dict]:
    return {f["path"]: f for f in doc["write_files"]}


def _config(tmp_path: Path, doc: dict) -> settings.Settings:
    # The TLS files it names are the ones the same user-data writes: put them under tmp_path.
    tls = tmp_path / "etc-tls"
    tls.mkdir(exist_ok=True)
    for path, f in _files(doc).items():
        if path.startswith("/etc/pyetcd/tls/"):
            (tls / Path(path).name).write_text(f["content"])
    path = tmp_path / "pyetcd.yaml"
    path.write_text(_files(doc)["/etc/pyetcd/pyetcd.yaml"]["content"].replace("/etc/pyetcd/tls/", f"{tls}/"))
    return settings.load(["--config-file", str(path)], environ={})


def test_template_itself_is_yaml() -> None:
    doc = yaml.safe_load((REPO / "cloud-config" / "pyetcd-member.yaml").read_text())
    assert doc["runcmd"] and doc["write_files"]


def test_tls_rendering(tmp_path: Path, tls_dir: Path) -> None:
    doc = _doc(render.render("n1", "10.0.0.11", DISCOVERY, "/mnt/dist/pyetcd_1_all.deb", tls_dir))
    files = _files(doc)
    assert doc["hostname"] == "n1"
    for path, owner, mode in (("/etc/pyetcd/tls/server.key", "pyetcd:pyetcd", "0600"),
                              ("/etc/pyetcd/tls/peer.key", "pyetcd:pyetcd", "0600"),
                              ("/etc/pyetcd/tls/ca.crt", "root:root", "0644")):
        assert (files[path]["owner"], files[path]["permissions"], files[path]["defer"]) == (owner, mode, True)
    assert files["/etc/pyetcd/tls/peer.key"]["content"] == PEM.replace("AAAA", "N1-PEERKEY")
    assert not files["/etc/pyetcd/pyetcd.yaml"].get("defer")  # present before the package's first start
    assert any(u.get("name") == "pyetcd" and u.get("system") for u in doc["users"] if isinstance(u, dict))
    assert doc["runcmd"][0] == ["/usr/local/sbin/pyetcd-install", "/mnt/dist/pyetcd_1_all.deb"]
    cfg = _config(tmp_path, doc)
    assert cfg.name == "n1" and cfg.discovery == DISCOVERY
    assert cfg.advertise_client_urls == ("https://10.0.0.11:2379",)
    assert cfg.initial_advertise_peer_urls == ("https://10.0.0.11:2380",)
    assert [(u.scheme, u.host, u.port) for u in cfg.listen_client_urls] == [("https", "10.0.0.11", 2379),
                                                                           ("http", "127.0.0.1", 2379)]
    assert cfg.peer_tls.enabled and cfg.client_tls.enabled
    assert str(cfg.data_dir) == "/var/lib/pyetcd/n1.etcd"


def test_plain_rendering(tmp_path: Path) -> None:
    doc = _doc(render.render("n2", "10.0.0.12", DISCOVERY, "https://pkgs.example/pyetcd_1_all.deb", None))
    assert not any(p.startswith("/etc/pyetcd/tls/") for p in _files(doc))
    cfg = _config(tmp_path, doc)
    assert cfg.initial_advertise_peer_urls == ("http://10.0.0.12:2380",)
    assert not cfg.peer_tls.enabled and not cfg.client_tls.enabled


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "Bad_Name"}, "--name"),
    ({"address": "fe80::1"}, "IPv6"),
    ({"discovery": "tokens.example/abc"}, "--discovery"),
    ({"deb": "x'; rm -rf /"}, "--deb"),
])
def test_bad_input_is_refused(kwargs: dict[str, str], message: str) -> None:
    args = {"name": "n1", "address": "10.0.0.11", "discovery": DISCOVERY, "deb": "/x.deb"} | kwargs
    with pytest.raises(render.RenderError, match=message):
        render.render(args["name"], args["address"], args["discovery"], args["deb"], None)


def test_missing_tls_file(tmp_path: Path) -> None:
    with pytest.raises(render.RenderError, match="ca.crt"):
        render.render("n1", "10.0.0.11", DISCOVERY, "/x.deb", tmp_path)


def test_seed_instance_id_follows_user_data(tmp_path: Path) -> None:
    render.write_seed(tmp_path / "a", "n1", "#cloud-config\nhostname: n1\n")
    render.write_seed(tmp_path / "b", "n1", "#cloud-config\nhostname: n1\nlocale: C.UTF-8\n")
    a, b = ((tmp_path / d / "meta-data").read_text() for d in "ab")
    assert "local-hostname: n1" in a and a != b
