"""The tools' one connection record (pyetcd.client.ConnectionOptions), how each CLI fills it, and the
client-side TLS context (pyetcd.client.tls)."""

from __future__ import annotations

import argparse
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from pyetcd.cli.ctl_conn import GlobalOptions, connection_options
from pyetcd.client import ConnectionOptions, connect
from pyetcd.client.tls import client_context
from pyetcd.locksmith import common
from pyetcd.ops.certs import CertFiles, create_ca, issue
from pyetcd.sched import cli as sched_cli


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertFiles, CertFiles]:
    out = tmp_path_factory.mktemp("pki")
    ca = create_ca(out)
    return ca, issue(out, ca, "client", "client")


def test_credentials_become_the_endpoints_userinfo() -> None:
    opts = ConnectionOptions(("http://a:1", "https://old@b:2/base?x=1"), username="u@x", password="p:w")
    assert opts.urls() == ["http://u%40x:p%3Aw@a:1", "https://u%40x:p%3Aw@b:2/base?x=1"]
    assert ConnectionOptions(("http://a:1",), password="ignored").urls() == ["http://a:1"]


def test_connect_builds_a_keys_client(pki: tuple[CertFiles, CertFiles]) -> None:
    ca, _ = pki
    plain = connect(ConnectionOptions(("http://a:1", "http://b:2"), request_timeout_s=1.5))
    assert plain.endpoints == ["http://a:1", "http://b:2"] and plain._timeout == 1.5
    assert plain._ssl_context is None
    opts = ConnectionOptions(("https://a:1",), ca_file=str(ca.cert))
    assert isinstance(opts.ssl_context(), ssl.SSLContext)
    shared = opts.ssl_context()
    assert connect(opts, ssl_context=shared)._ssl_context is shared


def test_client_context_takes_a_key_inside_the_certificate_pem(pki: tuple[CertFiles, CertFiles],
                                                               tmp_path: Path) -> None:
    ca, client = pki
    both = tmp_path / "both.pem"
    both.write_bytes(client.cert.read_bytes() + client.key.read_bytes())
    ctx = client_context(str(ca.cert), str(both))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2 and ctx.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ssl.SSLError):
        client_context(str(ca.cert), str(client.cert))  # the key is nowhere


def test_each_cli_maps_its_flags(pki: tuple[CertFiles, CertFiles]) -> None:
    ca, client = pki
    ctl = connection_options(GlobalOptions(endpoints="//a:1", username="u:p",
                                           ca_file=str(ca.cert)), {"ETCDCTL_CERT_FILE": str(client.cert),
                                                                   "ETCDCTL_KEY_FILE": str(client.key)})
    assert ctl == ConnectionOptions(("http://a:1",), str(ca.cert), str(client.cert), str(client.key), "u", "p")
    values = {"endpoint": [], "etcd-cafile": "c", "etcd-certfile": "", "etcd-keyfile": "", "etcd-username": "",
              "etcd-password": ""}
    lock = common.connection(values)
    assert (lock.endpoints, lock.ca_file) == (("http://127.0.0.1:2379", "http://127.0.0.1:4001"), "c")
    args = argparse.Namespace(endpoints="http://a:1, ,http://b:2", cacert="", cert="", key="k", timeout=2.0)
    sched = sched_cli.connection_options(args)
    assert sched == ConnectionOptions(("http://a:1", "http://b:2"), request_timeout_s=2.0)  # a key alone: no TLS
    assert sched.ssl_context() is None


@pytest.mark.parametrize(("opts", "message"), [
    (GlobalOptions(cert_file="/x.crt"), r"^KeyFile and CertFile must both be present\[key: , cert: /x.crt\]$"),
    (GlobalOptions(ca_file="/nope/ca.crt"), "^open /nope/ca.crt: no such file or directory$"),
])
def test_pyetcdctl_checks_tls_files_in_etcdctls_words(opts: GlobalOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        connection_options(opts, {})


def test_locksmith_wants_certificate_and_key_together() -> None:
    values = {"endpoint": ["http://a:1"], "etcd-cafile": "", "etcd-certfile": "/x.crt", "etcd-keyfile": "",
              "etcd-username": "", "etcd-password": ""}
    with pytest.raises(ValueError, match="-etcd-certfile and -etcd-keyfile must be given together"):
        common.connection(values).ssl_context()


def test_the_tools_do_not_load_the_daemons_runtime() -> None:
    code = ("import sys, pyetcd.cli.ctl, pyetcd.locksmith.ctl, pyetcd.locksmith.agent, pyetcd.sched.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('pyetcd.runtime', 'pyetcd.http', 'pyetcd.raft'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
