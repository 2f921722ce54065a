"""The tools with etcd v2 auth credentials, against a server with auth enabled and the guest role's access
revoked (so nothing works anonymously): pyetcd.client, pyetcd-locksmithctl and pyetcd-locksmithd
(-etcd-username/-etcd-password, LOCKSMITHCTL_*/LOCKSMITHD_* variables), pyetcd-sched (--user/--password,
PYETCD_SCHED_USER/PASSWORD), the discovery token service's backing store (--etcd-username/--etcd-password,
DISC_ETCD_*), and python-etcd's username/password.

Each runs against Debian's etcd 3.4 and against pyetcd. The server is set up with etcdctl: user root, role `tools` (read-write on the tools' prefixes),
user `tool` with that role, auth enabled, guest stripped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyetcd.client import ConnectionOptions, EtcdError, KeysClient, connect

from tests.integration.test_discovery_service import OURS, Disco, call
from tests.support import kit
from tests.support.servers import PYETCD_BIN, Server, etcd_available, etcd_server, free_port, pyetcd_server

ETCDCTL = shutil.which("etcdctl")
pytestmark = pytest.mark.skipif(not (etcd_available() and ETCDCTL and PYETCD_BIN.exists()),
                                reason="needs Debian's etcd and etcdctl, and pyetcd installed in the venv")

CTL = [sys.executable, "-m", "pyetcd.locksmith.ctl"]
AGENT = [sys.executable, "-m", "pyetcd.locksmith.agent"]
SCHED = [sys.executable, "-m", "pyetcd.sched.cli"]
USER, PASSWORD = "tool", "t00l pw:x"  # a space and a colon: basic auth carries them as they are
PREFIXES = ("/coreos.com*", "/sched*", "/_etcd*", "/pe*")


def env(**extra: str) -> dict[str, str]:
    return kit.clean_env("ETCD", "LOCKSMITH", "REBOOT_", "PYETCD_SCHED", "DISC_", add={"ETCDCTL_API": "2", **extra})


def etcdctl(url: str, *args: str) -> None:
    p = subprocess.run([str(ETCDCTL), "--endpoints", url, *args], capture_output=True, text=True, env=env(),
                       timeout=30)
    assert p.returncode == 0, (args, p.stdout, p.stderr)


def secure(url: str) -> None:
    etcdctl(url, "user", "add", "root:rootpw")
    etcdctl(url, "role", "add", "tools")
    for prefix in PREFIXES:
        etcdctl(url, "role", "grant", "--readwrite", "--path", prefix, "tools")
    etcdctl(url, "user", "add", f"{USER}:{PASSWORD}")
    etcdctl(url, "user", "grant", "--roles", "tools", USER)
    etcdctl(url, "auth", "enable")
    etcdctl(url, "-u", "root:rootpw", "role", "revoke", "--readwrite", "--path", "/*", "guest")


@pytest.fixture(scope="module", params=["etcd", "pyetcd"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp(f"auth-{request.param}")
    srv = (etcd_server if request.param == "etcd" else pyetcd_server)(base, name="node")
    srv.start()
    try:
        secure(srv.url)
        yield srv
    finally:
        srv.stop()


def refused(e: BaseException) -> bool:
    return isinstance(e, EtcdError) and e.error_code == 110


# ---- pyetcd.client ---------------------------------------------------------------------------------


def test_client_credentials(server: Server) -> None:
    with pytest.raises(EtcdError) as e:
        KeysClient([server.url]).set("/pe/a", "x")
    assert refused(e.value), e.value
    keys = connect(ConnectionOptions((server.url,), username=USER, password=PASSWORD))
    keys.set("/pe/a", "1")
    assert KeysClient([server.url], username=USER, password=PASSWORD).get("/pe/a").node["value"] == "1"
    with pytest.raises(EtcdError) as e:  # the role covers the prefixes only
        keys.set("/elsewhere", "x")
    assert refused(e.value)
    with pytest.raises(EtcdError) as e:
        KeysClient([server.url], username=USER, password="wrong").get("/pe/a")
    assert refused(e.value)


# ---- locksmith -------------------------------------------------------------------------------------


def locksmithctl(url: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CTL, "-endpoint", url, *args], capture_output=True, text=True, timeout=60,
                          env=env(**extra), stdin=subprocess.DEVNULL)


def test_locksmithctl_flags_and_environment(server: Server) -> None:
    r = locksmithctl(server.url, "status")
    assert r.returncode == 1 and "110" in r.stderr, r  # no credentials: refused
    r = locksmithctl(server.url, "-etcd-username", USER, "-etcd-password", PASSWORD, "lock", "m1")
    assert r.returncode == 0, r
    r = locksmithctl(server.url, "status", LOCKSMITHCTL_ETCD_USERNAME=USER, LOCKSMITHCTL_ETCD_PASSWORD=PASSWORD)
    assert r.returncode == 0 and "m1" in r.stdout, r
    r = locksmithctl(server.url, "--etcd-password=wrong", "unlock", "m1", LOCKSMITHCTL_ETCD_USERNAME=USER,
                     LOCKSMITHCTL_ETCD_PASSWORD=PASSWORD)
    assert r.returncode == 1 and "110" in r.stderr, r  # the flag beats the variable
    r = locksmithctl(server.url, "unlock", "m1", LOCKSMITHCTL_ETCD_USERNAME=USER, LOCKSMITHCTL_ETCD_PASSWORD=PASSWORD)
    assert r.returncode == 0, r


@dataclass
class Agent(kit.LoggedProcess):
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None


def test_locksmithd_takes_the_lock_with_credentials_from_its_environment(server: Server, tmp_path: Path) -> None:
    hid = uuid.uuid4().hex
    (tmp_path / "reboot-needed").touch()
    argv = [*AGENT, "-endpoint", server.url, "-id", hid, "-group", "auth", "-state-file", str(tmp_path / "state"),
            "-reboot-strategy", "etcd-lock", "-reboot-detector", "file",
            "-trigger-file", str(tmp_path / "reboot-needed"), "-reboot-command", f": > {tmp_path}/rebooting",
            "-trigger-interval", "20ms", "-check-interval", "50ms", "-lock-backoff", "50ms",
            "-lock-backoff-max", "400ms", "-broadcast=false", "-login-delay", "0", "-config-file="]
    agent = Agent(tmp_path / "agent.log")
    agent.launch(argv, env(LOCKSMITHD_ETCD_USERNAME=USER, LOCKSMITHD_ETCD_PASSWORD=PASSWORD))
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "rebooting").exists():
            assert agent.proc is not None and agent.proc.poll() is None, agent.log()
            assert time.monotonic() < deadline, agent.log()
            time.sleep(0.05)
    finally:
        agent.stop()
    keys = KeysClient([server.url], username=USER, password=PASSWORD)
    sem = json.loads(keys.get("/coreos.com/updateengine/rebootlock/groups/auth/semaphore").node["value"])
    assert sem["holders"] == [hid]


# ---- pyetcd-sched ----------------------------------------------------------------------------------


def sched(url: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCHED, args[0], "--endpoints", url, *args[1:]], capture_output=True, text=True,
                          timeout=60, env=env(**extra), stdin=subprocess.DEVNULL)


def test_sched_flags_and_environment(server: Server) -> None:
    r = sched(server.url, "submit", "web", "--", "sleep", "1")
    assert r.returncode == 1 and "110" in r.stderr, r
    r = sched(server.url, "submit", "web", "--user", f"{USER}:{PASSWORD}", "--", "sleep", "1")
    assert r.returncode == 0, r
    r = sched(server.url, "ls", "--json", PYETCD_SCHED_USER=USER, PYETCD_SCHED_PASSWORD=PASSWORD)
    assert r.returncode == 0 and "web" in r.stdout, r
    r = sched(server.url, "rm", "web", "--user", USER, "--password", PASSWORD, PYETCD_SCHED_PASSWORD="wrong")
    assert r.returncode == 0, r  # the flag beats the variable
    r = sched(server.url, "ls", "--password", "x")
    assert r.returncode == 1 and "--password needs --user" in r.stderr, r


# ---- the discovery token service's backing store ----------------------------------------------------


def token_service(tmp_path: Path, backing: str, extra: list[str], **variables: str) -> Disco:
    port = free_port()
    argv = [*OURS, "--etcd", backing, "--host", f"http://127.0.0.1:{port}", "--addr", f"127.0.0.1:{port}", *extra]
    disco = Disco(argv, port, tmp_path / f"disco-{port}.log")
    disco.launch(argv, env(**variables))
    disco.wait_ready(disco._answers, "discovery-service", 15)
    return disco


@pytest.mark.parametrize("how", ["flags", "environment"])
def test_discovery_service_backing_credentials(server: Server, tmp_path: Path, how: str) -> None:
    anonymous = token_service(tmp_path, server.url, [])
    try:
        assert anonymous.call("GET", "/new?size=3").status >= 400  # the backing refuses it
    finally:
        anonymous.stop()
    if how == "flags":
        disco = token_service(tmp_path, server.url, ["--etcd-username", USER, "--etcd-password", PASSWORD])
    else:
        disco = token_service(tmp_path, server.url, [], DISC_ETCD_USERNAME=USER, DISC_ETCD_PASSWORD=PASSWORD)
    try:
        token = disco.new(3)
        path = f"/{token}/abcd"
        # A client's own Authorization is replaced by the service's credentials.
        r = call(disco.port, "PUT", path, {"value": "m1=http://10.0.0.1:2380"},
                 headers={"Authorization": "Basic bm9ib2R5Og=="})
        assert r.status == 201, (r, disco.log())
        r = disco.call("GET", f"/{token}")
        assert r.status == 200 and "m1=http://10.0.0.1:2380" in r.body.decode(), r
        keys = KeysClient([server.url], username=USER, password=PASSWORD)
        assert keys.get(f"/_etcd/registry/{token}/_config/size").node["value"] == "3"
    finally:
        disco.stop()


def test_discovery_service_password_needs_a_user() -> None:
    r = subprocess.run([*OURS, "--etcd-password", "x"], capture_output=True, text=True, env=env(), timeout=30)
    assert r.returncode == 2 and "--etcd-password needs --etcd-username" in r.stderr, r


# ---- python-etcd -----------------------------------------------------------------------------------


def test_python_etcd_username_and_password(server: Server) -> None:
    etcd = pytest.importorskip("etcd")
    port = server.port
    client = etcd.Client(host="127.0.0.1", port=port, username=USER, password=PASSWORD, allow_reconnect=False)
    client.write("/pe/py", "hello")
    assert client.read("/pe/py").value == "hello"
    client.delete("/pe/py")
    with pytest.raises(etcd.EtcdInsufficientPermissions):
        etcd.Client(host="127.0.0.1", port=port, username=USER, password="wrong").read("/pe")
    with pytest.raises(etcd.EtcdInsufficientPermissions):
        etcd.Client(host="127.0.0.1", port=port).write("/pe/anon", "x")
