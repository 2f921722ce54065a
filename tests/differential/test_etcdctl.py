"""pyetcdctl against etcdctl: one script of v2 commands run three ways, outputs compared.

* reference: Debian's etcdctl (ETCDCTL_API=2) against Debian's etcd 3.4;
* pyetcdctl against pyetcd;
* etcdctl against pyetcd (pyetcd's server answers are what etcdctl expects).
Every run starts from a fresh server, so the script's indexes are the same relative to the index the
server had before the script (its "base"). What legitimately differs is normalised: indexes (to
<+n> past the base), member IDs, URLs and ports, TTL countdowns and expiry times, the program name.

The auth commands and --username against a server with v2 auth: test_etcdctl_auth.py.

Also here: watch --forever, exec-watch and cluster-health --forever (stopped with SIGINT, exit 0 as
etcdctl, even when started with SIGINT ignored), and backup: a pyetcd data dir copied offline starts as a
new one-member cluster holding the same keys.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyetcd.client import KeysClient

from tests.support import kit
from tests.support.servers import PYETCD_BIN, Server, etcd_available, etcd_server, free_port, pyetcd_server

pytestmark = pytest.mark.skipif(not (etcd_available() and shutil.which("etcdctl") and PYETCD_BIN.exists()),
                                reason="needs Debian's etcd and etcdctl, and pyetcd installed in the venv")

PYETCDCTL = [sys.executable, "-m", "pyetcd.cli.ctl"]
ETCDCTL = [shutil.which("etcdctl") or "etcdctl"]
DEAD = free_port()  # nothing listens here
HOLE = socket.create_server(("127.0.0.1", 0), backlog=64)  # accepts connections (kernel backlog), never answers
HOLE_URL = f"http://127.0.0.1:{HOLE.getsockname()[1]}"


@dataclass(frozen=True)
class Step:
    args: tuple[str, ...]
    stdin: str = ""
    endpoints: str | None = None  # None: the server under test
    endpoints_flag: str = "--endpoints"


def s(*args: str, stdin: str = "", endpoints: str | None = None, flag: str = "--endpoints") -> Step:
    return Step(args, stdin, endpoints, flag)


SCRIPT = [
    s("set", "/k", "v1"),
    s("get", "/k"),
    s("mk", "/k", "v2"),
    s("update", "/k", "v3"),
    s("-o", "json", "get", "/k"),
    s("-o", "extended", "get", "/k"),
    s("-o", "json", "set", "/k", "v4"),
    s("-o", "extended", "update", "/k", "v5"),
    s("update", "/missing", "x"),
    s("get", "/missing"),
    s("-o", "json", "get", "/missing"),
    s("mkdir", "/dir"),
    s("mkdir", "/dir"),
    s("set", "/dir/a", "1"),
    s("mkdir", "/dir/sub"),
    s("set", "/dir/sub/b", "2"),
    s("ls", "--sort", "-r", "-p", "/dir"),
    s("ls", "--sort", "/dir"),
    s("ls", "/dir/a"),
    s("-o", "json", "ls", "--sort", "-r", "/dir"),
    s("-o", "extended", "ls", "/dir/sub"),
    s("get", "/dir"),
    s("rm", "/dir"),
    s("rmdir", "/dir"),
    s("rmdir", "/dir/a"),
    s("rm", "--recursive", "/dir"),
    s("get", "/dir/sub/b"),
    s("mkdir", "/empty"),
    s("-o", "json", "rmdir", "/empty"),
    s("mk", "--ttl", "100", "/ttl", "v"),
    s("-o", "json", "get", "/ttl"),
    s("-o", "extended", "get", "/ttl"),
    s("update", "--ttl", "0", "/ttl", "w"),
    s("setdir", "/sd"),
    s("setdir", "/sd"),
    s("updatedir", "--ttl", "50", "/sd"),
    s("-o", "json", "updatedir", "/sd"),
    s("updatedir", "/nosuchdir"),
    s("-o", "json", "mkdir", "/sd2"),
    s("mk", "--in-order", "/queue", "first"),
    s("-o", "json", "mk", "--in-order", "/queue", "second"),
    s("ls", "--sort", "/queue"),
    s("set", "--swap-with-value", "v5", "/k", "v6"),
    s("set", "--swap-with-value", "nope", "/k", "v7"),
    s("set", "--swap-with-index", "1", "/k", "v7"),
    s("rm", "--with-value", "v6", "/k"),
    s("rm", "/k"),
    s("set", "/k2", "val"),
    s("-o", "extended", "rm", "/k2"),
    s("set", "/html", "<a&b> é \t\x01"),
    s("-o", "json", "get", "/html"),
    s("set", "--", "/dash", "-x"),
    s("get", "/dash", "--sort"),
    s("set", "/piped", stdin="piped value\n"),
    s("get", "/piped"),
    s("watch", "--after-index", "{base}", "/k"),
    s("watch", "-r", "--after-index", "{base}", "/"),
    s("-o", "json", "watch", "--after-index", "{base+1}", "/k"),
    s("-o", "extended", "watch", "--after-index", "{base+1}", "/k"),
    s("watch", "-r", "--after-index", "{base+4}", "/dir"),  # the mkdir event is skipped
    s("watch", "--after-index", "1", "/k"),
    s("get", "/"),
    s("ls", "--sort", "-p"),
    s("member", "list"),
    s("cluster-health"),
    s("get"),
    s("set", "/only-key"),
    s("exec-watch", "/k"),
    s("get", "--bogus", "/k"),
    s("watch", "--after-index", "x", "/k"),
    s("bogus-command"),
    # the auth commands' help and the checks they make before connecting (the rest: test_etcdctl_auth.py)
    s("user"),
    s("role", "grant", "-h"),
    s("help", "user", "grant"),
    s("auth", "enable", "extra"),
    s("user", "grant", "bob"),
    s("role", "revoke", "--path", "x", "r"),
    s("role", "grant", "--path", "/x", "--read", "--rw", "r"),
    s("user", "revoke", "--bogus", "bob"),
    s("member", "list", "extra"),
    s("member", "remove", "0"),
    s("member", "add", "n2", "not-a-url"),
    s("-o", "bogus", "get", "/ttl"),
    s("--no-sync", "get", "/ttl", endpoints=f"http://127.0.0.1:{DEAD}"),
    s("get", "/ttl", endpoints=f"http://127.0.0.1:{DEAD}"),
    s("cluster-health", endpoints=f"http://127.0.0.1:{DEAD}"),
    s("--no-sync", "mk", "/new", "v", endpoints=f"http://127.0.0.1:{DEAD}"),
    s("get", "/ttl", endpoints="127.0.0.1:2379"),
    s("--no-sync", "--timeout", "300ms", "get", "/ttl", endpoints=HOLE_URL),
    s("--no-sync", "--timeout", "2s", "--total-timeout", "300ms", "get", "/ttl", endpoints=HOLE_URL),
    s("--debug", "get", "/dash"),
    s("--debug", "--no-sync", "-o", "json", "set", "/debug", 'a "b"&c'),
    s("--output", "extended", "get", "/debug", flag="-C"),
    s("get", "/debug", flag="--peers"),
    s("get", "/debug", flag="--endpoint"),
]


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str


class Target:
    """A fresh server with what normalising its outputs needs to know."""

    def __init__(self, server: Server) -> None:
        self.server = server
        with urllib.request.urlopen(f"{server.url}/v2/members", timeout=5) as r:
            self.members = json.load(r)["members"]
        with urllib.request.urlopen(f"{server.url}/v2/keys/", timeout=5) as r:
            self.base = int(r.headers["X-Etcd-Index"])

    def normalise(self, text: str) -> str:
        def idx(m: re.Match[str]) -> str:
            n = int(m.group(2))
            return m.group(1) + (f"<+{n - self.base}>" if n > self.base else str(n))

        text = text.replace("pyetcdctl", "etcdctl")
        text = text.replace(self.server.url, "<client-url>")
        for m in self.members:
            text = text.replace(m["id"], "<member-id>")
        text = re.sub(r"peerURLs=\S+", "peerURLs=<peer-urls>", text)
        text = re.sub(r'("(?:createdIndex|modifiedIndex)":)(\d+)', idx, text)
        text = re.sub(r"(?m)^((?:Created-|Modified-)?Index: )(\d+)$", idx, text)
        text = re.sub(r"(?m)(\[)(\d+)(?=\]$)", idx, text)
        text = re.sub(r"(/queue/)(\d{20})", idx, text)
        text = re.sub(r"(Compare failed \(\[\S+ != )(\d+)", idx, text)
        text = re.sub(r"(ETCD_WATCH_MODIFIED_INDEX=)(\d+)", idx, text)
        text = re.sub(r'"expiration":"[^"]*"', '"expiration":"<time>"', text)
        text = re.sub(r'("ttl":|TTL: )([1-9]\d*)', r"\1<ttl>", text)
        return text.replace(f"http://127.0.0.1:{DEAD}", "<dead>").replace(HOLE_URL, "<hole>")


def run(tool: list[str], target: Target, step: Step, env: dict[str, str]) -> Outcome:
    args = [re.sub(r"\{base(?:\+(\d+))?\}", lambda m: str(target.base + int(m.group(1) or 0)), a)
            for a in step.args]
    cmd = [*tool, step.endpoints_flag, step.endpoints or target.server.url, *args]
    p = subprocess.run(cmd, input=step.stdin.encode(), capture_output=True, env=env, timeout=30)
    return Outcome(p.returncode, target.normalise(p.stdout.decode("utf-8", "replace")),
                   target.normalise(p.stderr.decode("utf-8", "replace")))


def clean_env() -> dict[str, str]:
    return kit.clean_env("ETCDCTL_", "ETCD_", add={"ETCDCTL_API": "2"})


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Outcome]]]:
    """The script run three ways, each on its own fresh server (started together to save time)."""
    servers = [etcd_server(tmp_path_factory.mktemp("ref"), name="node"),
               pyetcd_server(tmp_path_factory.mktemp("py1"), name="node"),
               pyetcd_server(tmp_path_factory.mktemp("py2"), name="node")]
    try:
        for srv in servers:
            srv.start()
        env = clean_env()
        runs = {"etcdctl/etcd": (ETCDCTL, servers[0]), "pyetcdctl/pyetcd": (PYETCDCTL, servers[1]),
                "etcdctl/pyetcd": (ETCDCTL, servers[2])}
        results: dict[str, list[Outcome]] = {}

        def play(name: str) -> None:
            tool, srv = runs[name]
            target = Target(srv)
            results[name] = [run(tool, target, step, env) for step in SCRIPT]

        threads = [threading.Thread(target=play, args=(name,)) for name in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(results) == set(runs), "a run failed; see the thread's traceback above"
        yield results
    finally:
        for srv in servers:
            srv.stop()


@pytest.mark.parametrize("who", ["pyetcdctl/pyetcd", "etcdctl/pyetcd"])
@pytest.mark.parametrize("i", range(len(SCRIPT)), ids=[" ".join(st.args)[:40] for st in SCRIPT])
def test_script_step_matches_etcdctl_against_etcd(outcomes: dict[str, list[Outcome]], who: str, i: int) -> None:
    want, got = outcomes["etcdctl/etcd"][i], outcomes[who][i]
    assert (got.rc, got.stdout, got.stderr) == (want.rc, want.stdout, want.stderr), SCRIPT[i]


# ---- long-running commands, stopped with SIGINT ------------------------------------------------


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def watch_until(cmd: list[str], lines_wanted: int, env: dict[str, str], timeout_s: float = 10.0,
                sigint_ignored: bool = False, stop_within_s: float = 10.0) -> Outcome:
    """Run a never-ending command until it printed `lines_wanted` lines, then Ctrl+C it. With
    `sigint_ignored` it starts with SIGINT ignored, as a background job of a non-interactive shell does
    (`cmd &` in `sh -c`): like etcdctl it must turn SIGINT back on for the commands that stop on it."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                            preexec_fn=_ignore_sigint if sigint_ignored else None)
    try:
        lines: list[bytes] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        deadline = time.monotonic() + timeout_s
        while len(lines) < lines_wanted and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.2)  # anything printed past the expected lines shows up in the comparison
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(stop_within_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{cmd[:4]} still running {stop_within_s}s after SIGINT; printed {lines}") from None
        reader.join(5)
        err = proc.stderr.read() if proc.stderr else b""
        return Outcome(rc, b"".join(lines).decode(), err.decode())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def seed_watch_keys(tool: list[str], target: Target, env: dict[str, str]) -> None:
    for args in (("set", "/w/a", "1"), ("mkdir", "/w/d"), ("set", "/w/d/x", "2"), ("rm", "/w/a"),
                 ("rm", "-r", "/w/d"), ("set", "/w/b", "3")):
        run(tool, target, Step(args), env)


@pytest.fixture
def fresh_pair(tmp_path: Path) -> Iterator[tuple[Target, Target]]:
    ref = etcd_server(tmp_path / "ref", name="node")
    py = pyetcd_server(tmp_path / "py", name="node")
    for srv in (ref, py):
        srv.data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        ref.start()
        py.start()
        yield Target(ref), Target(py)
    finally:
        py.stop()
        ref.stop()


def test_watch_forever_and_exec_watch_match_etcdctl(fresh_pair: tuple[Target, Target]) -> None:
    env = clean_env()
    ref, py = fresh_pair
    got: dict[str, tuple[Outcome, Outcome]] = {}
    for name, tool, target in (("ref", ETCDCTL, ref), ("py", PYETCDCTL, py)):
        seed_watch_keys(tool, target, env)
        url = target.server.url
        watch = watch_until([*tool, "--endpoints", url, "watch", "--forever", "-r", "--after-index",
                             str(target.base), "/w"], 8, env)
        show = 'echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY [$ETCD_WATCH_VALUE] ETCD_WATCH_MODIFIED_INDEX=' \
               '$ETCD_WATCH_MODIFIED_INDEX"'
        # etcdctl 3.4 takes the key from the last word; the command comes first.
        execw = watch_until([*tool, "--endpoints", url, "exec-watch", "-r", "--after-index", str(target.base),
                             "sh", "-c", show, "/w"], 4, env)
        got[name] = (Outcome(watch.rc, target.normalise(watch.stdout), target.normalise(watch.stderr)),
                     Outcome(execw.rc, "".join(sorted(target.normalise(execw.stdout).splitlines(True))),
                             target.normalise(execw.stderr)))
    (ref_watch, ref_exec), (py_watch, py_exec) = got["ref"], got["py"]
    assert ref_watch.stdout.count("\n") == 8 and ref_watch.rc == 0  # the reference behaves as assumed
    assert (py_watch.rc, py_watch.stdout, py_watch.stderr) == (ref_watch.rc, ref_watch.stdout, ref_watch.stderr)
    assert "Ignored dir /w/d change" in ref_exec.stderr
    assert (py_exec.rc, py_exec.stdout, py_exec.stderr) == (ref_exec.rc, ref_exec.stdout, ref_exec.stderr)


@pytest.mark.parametrize("command", ["watch", "exec-watch", "cluster-health"])
def test_sigint_stops_the_endless_commands_even_when_inherited_ignored(fresh_pair: tuple[Target, Target],
                                                                       command: str) -> None:
    """etcdctl's watch, exec-watch and cluster-health --forever call signal.Notify(os.Interrupt), which turns
    SIGINT back on even if the process started with it ignored, and exit 0 on it; pyetcdctl must too."""
    env = clean_env()
    got: dict[str, Outcome] = {}
    for name, tool, target in (("ref", ETCDCTL, fresh_pair[0]), ("py", PYETCDCTL, fresh_pair[1])):
        run(tool, target, Step(("set", "/sig/k", "x")), env)
        words = {"watch": ["watch", "--forever", "--after-index", str(target.base), "/sig/k"],
                 "exec-watch": ["exec-watch", "--after-index", str(target.base), "sh", "-c",
                                "echo ran $ETCD_WATCH_VALUE", "/sig/k"],
                 "cluster-health": ["cluster-health", "--forever"]}[command]
        # One line printed: the command is past its Notify (etcdctl) / into its loop (pyetcdctl).
        out = watch_until([*tool, "--endpoints", target.server.url, *words], 1, env, sigint_ignored=True,
                          stop_within_s=5.0)
        got[name] = Outcome(out.rc, target.normalise(out.stdout), target.normalise(out.stderr))
    ref, py = got["ref"], got["py"]
    first = {"watch": "x\n", "exec-watch": "ran x\n", "cluster-health": "member <member-id> is healthy"}[command]
    assert ref.rc == 0 and ref.stdout.startswith(first), ref  # the reference behaves as assumed
    assert py.rc == 0 and py.stdout.startswith(first), py
    if command != "cluster-health":  # its lines name the server's URL and ID, which differ
        assert (py.rc, py.stdout, py.stderr) == (ref.rc, ref.stdout, ref.stderr)


# ---- backup ------------------------------------------------------------------------------------


def ctl(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*PYETCDCTL, "--endpoints", server.url, *args], capture_output=True, text=True,
                       env=clean_env(), timeout=30, stdin=subprocess.DEVNULL)
    assert not check or p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    return p


def cluster_id(server: Server) -> str:
    with urllib.request.urlopen(f"{server.url}/v2/keys/", timeout=5) as r:
        return str(r.headers["X-Etcd-Cluster-Id"])


def test_backup_starts_as_a_new_one_member_cluster_with_the_same_keys(tmp_path: Path) -> None:
    # A small snapshot count: the backup must read a snapshot and the WAL after it.
    src = pyetcd_server(tmp_path, name="orig", extra=["--snapshot-count", "20"]).start()
    try:
        keys = KeysClient([src.url])
        for i in range(30):
            keys.set(f"/bk/k{i:02d}", f"v{i}")
        keys.set("/bk/dir", dir=True)
        keys.set("/bk/ttl", "t", ttl=3600)
        old_members = ctl(src, "member", "list").stdout
        old_cluster = cluster_id(src)
        keys_before = ctl(src, "ls", "--sort", "-r", "/bk").stdout
    finally:
        src.stop()
    assert list((src.data_dir / "member" / "snap").glob("*.snap")), "no snapshot was taken: the test is weak"

    dest = tmp_path / "restored.pyetcd"
    p = subprocess.run([*PYETCDCTL, "backup", "--data-dir", str(src.data_dir), "--backup-dir", str(dest)],
                       capture_output=True, text=True, env=clean_env(), timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""

    restored = pyetcd_server(tmp_path, name="restored", port=free_port())
    assert restored.data_dir == dest
    restored.start()
    try:
        assert ctl(restored, "ls", "--sort", "-r", "/bk").stdout == keys_before
        assert ctl(restored, "get", "/bk/k29").stdout == "v29\n"
        assert "TTL: " in ctl(restored, "-o", "extended", "get", "/bk/ttl").stdout
        members = ctl(restored, "member", "list").stdout.splitlines()
        assert len(members) == 1 and members[0].endswith(f"clientURLs={restored.url} isLeader=true"), members
        assert members[0].split(":")[0] != old_members.split(":")[0]  # a new member ID
        assert cluster_id(restored) != old_cluster
        ctl(restored, "set", "/bk/after", "ok")  # it has a leader and takes writes
        assert ctl(restored, "cluster-health").stdout.endswith("cluster is healthy\n")
    finally:
        restored.stop()
    # The source is untouched and still starts as its old self.
    src.start()
    try:
        assert cluster_id(src) == old_cluster
        assert ctl(src, "get", "/bk/after", check=False).returncode == 4
    finally:
        src.stop()


def test_backup_refuses_a_used_backup_dir_and_a_missing_data_dir(tmp_path: Path) -> None:
    used = tmp_path / "used"
    (used / "member" / "snap").mkdir(parents=True)
    (used / "member" / "snap" / "x.snap").write_text("")
    src = tmp_path / "nothing-here"
    for data_dir, backup_dir, message in (
            (src, used, f'failed creating backup snapshot dir {used}/member/snap: expected "{used}/member/snap" '
                        'to be empty, got ["x.snap"]'),
            (src, tmp_path / "fresh", f"open {src}/member/snap: no such file or directory")):
        p = subprocess.run([*PYETCDCTL, "backup", "--data-dir", str(data_dir), "--backup-dir", str(backup_dir)],
                           capture_output=True, text=True, env=clean_env(), timeout=30)
        assert p.returncode == 1
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} I \| " + re.escape(message) + "\n", p.stderr), p.stderr



# ---- TLS ---------------------------------------------------------------------------------------


class TlsServer(Server):
    """A pyetcd serving clients over HTTPS only, with client certificates required."""

    ca_file: str = ""
    client: tuple[str, str] = ("", "")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.load_cert_chain(*self.client)
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1, context=ctx) as r:
                return r.status == 200
        except OSError:
            return False


def test_tls_flags_and_environment(tmp_path: Path) -> None:
    from pyetcd.ops.certs import create_ca, issue

    ca = create_ca(tmp_path / "pki")
    server_cert = issue(tmp_path / "pki", ca, "server", "server", ["127.0.0.1", "localhost"])
    client_cert = issue(tmp_path / "pki", ca, "client", "client", common_name="root")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    argv = [str(PYETCD_BIN), "--name", "tls", "--data-dir", str(tmp_path / "tls.pyetcd"),
            "--listen-client-urls", url, "--advertise-client-urls", url, "--cert-file", str(server_cert.cert),
            "--key-file", str(server_cert.key), "--trusted-ca-file", str(ca.cert), "--client-cert-auth"]
    srv = TlsServer("pyetcd", port, tmp_path / "tls.pyetcd", argv)
    srv.ca_file, srv.client = str(ca.cert), (str(client_cert.cert), str(client_cert.key))
    srv.start()
    tls_flags = ["--ca-file", str(ca.cert), "--cert-file", str(client_cert.cert), "--key-file", str(client_cert.key)]
    try:
        env = clean_env()
        results = []
        for tool in (ETCDCTL, PYETCDCTL):
            steps = [["set", "/tls", "yes"], ["get", "/tls"], ["member", "list"], ["cluster-health"]]
            results.append([subprocess.run([*tool, "--endpoints", url, *tls_flags, *step], capture_output=True,
                                           text=True, env=env, timeout=30) for step in steps])
        (ref, ours) = ([(p.returncode, p.stdout, p.stderr) for p in run_] for run_ in results)
        assert ref[1] == (0, "yes\n", "") and ref[3][0] == 0, ref
        assert ours == ref
        # The same files from ETCDCTL_CA_FILE, ETCDCTL_CERT_FILE, ETCDCTL_KEY_FILE.
        env_tls = {**env, "ETCDCTL_CA_FILE": str(ca.cert), "ETCDCTL_CERT_FILE": str(client_cert.cert),
                   "ETCDCTL_KEY_FILE": str(client_cert.key), "ETCDCTL_ENDPOINTS": url}
        p = subprocess.run([*PYETCDCTL, "get", "/tls"], capture_output=True, text=True, env=env_tls, timeout=30)
        assert (p.returncode, p.stdout) == (0, "yes\n"), p.stderr
        # Refusals read the same: no client certificate, an unknown CA, a certificate without its key.
        for flags in (tls_flags[:2], [], tls_flags[:4]):
            ref_p, our_p = (subprocess.run([*tool, "--endpoints", url, *flags, "get", "/tls"], capture_output=True,
                                           text=True, env=env, timeout=30) for tool in (ETCDCTL, PYETCDCTL))
            assert ref_p.returncode != 0
            assert (our_p.returncode, our_p.stdout, our_p.stderr) == (ref_p.returncode, ref_p.stdout, ref_p.stderr)
    finally:
        srv.stop()


# ---- membership changes ------------------------------------------------------------------------


def membership_run(tool: list[str], base: Path) -> list[Outcome]:
    """member update/list/add/list on one fresh pyetcd, then member remove (of itself) on another."""
    outcomes: list[Outcome] = []
    env = clean_env()
    base.mkdir()
    for phase in ("change", "remove"):
        srv = pyetcd_server(base, name=f"node-{phase}").start()
        try:
            target = Target(srv)
            me = target.members[0]["id"]
            steps = ([("member", "update", me, "http://127.0.0.1:1002,http://127.0.0.1:1001"), ("member", "list"),
                      ("member", "add", "n2", "http://127.0.0.1:1003"), ("member", "list")]
                     if phase == "change" else [("member", "remove", "node-remove"), ("member", "remove", me)])
            for args in steps:
                o = run(tool, target, Step(args), env)
                # Added members get new random-ish IDs, which also decide the listing order.
                out = re.sub(r"\b[0-9a-f]{12,16}\b", "<id>", o.stdout)
                out = re.sub(r'(?m)^(ETCD_INITIAL_CLUSTER=")([^"]*)"$',
                             lambda m: m.group(1) + ",".join(sorted(m.group(2).split(","))) + '"', out)
                outcomes.append(Outcome(o.rc, "".join(sorted(out.splitlines(True))) if args[1] == "list" else out,
                                        re.sub(r"\b[0-9a-f]{12,16}\b", "<id>", o.stderr)))
        finally:
            srv.stop()
    return outcomes


def test_member_update_add_remove_read_as_etcdctls(tmp_path: Path) -> None:
    ref = membership_run(ETCDCTL, tmp_path / "etcdctl")
    ours = membership_run(PYETCDCTL, tmp_path / "pyetcdctl")
    assert ref[0] == Outcome(0, "Updated member with ID <member-id> in cluster\n", "")
    assert ref[2].stdout.startswith("Added member named n2 with ID <id> to cluster\n\nETCD_NAME=\"n2\"\n")
    assert ref[-1] == Outcome(0, "Removed member <member-id> from cluster\n", "")
    for i, (want, got) in enumerate(zip(ref, ours, strict=True)):
        assert got == want, i
