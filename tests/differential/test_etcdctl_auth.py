"""pyetcdctl's v2 auth commands and --username against etcdctl's: one script, run four ways, compared.

* reference: etcdctl (ETCDCTL_API=2) against Debian's etcd 3.4 with v2 auth;
* pyetcdctl against etcd 3.4 (the client side alone: must match the reference exactly);
* pyetcdctl against pyetcd, and etcdctl against pyetcd (pyetcd's server side of /v2/auth and enforcement).

Every run starts from a fresh server, auth disabled, and goes through the whole life of v2 auth: users,
roles, grants, enabling, credentials (flag, ETCDCTL_USERNAME, asked for on a non-terminal stdin),
enforcement on keys, disabling. Outputs are normalised as in test_etcdctl (indexes, URLs, member IDs).
Password prompts on a terminal are compared separately, through a pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.differential.test_etcdctl import ETCDCTL, PYETCDCTL, Outcome, Target, clean_env
from tests.support.servers import PYETCD_BIN, etcd_available, etcd_server, pyetcd_server

pytestmark = pytest.mark.skipif(not (etcd_available() and ETCDCTL[0] != "etcdctl" and PYETCD_BIN.exists()),
                                reason="needs Debian's etcd and etcdctl, and pyetcd installed in the venv")

ROOT = ("-u", "root:rootpw")


@dataclass(frozen=True)
class Step:
    args: tuple[str, ...]
    stdin: str = ""
    env: dict[str, str] = field(default_factory=dict)


def s(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Step:
    return Step(args, stdin, env or {})


SCRIPT = [
    # auth disabled: users and roles can be managed without credentials
    s("auth", "enable"),  # no root user yet
    s("user", "list"),
    s("role", "list"),
    s("user", "get", "root"),
    s("user", "add", "root:rootpw"),
    s("user", "get", "root"),
    s("user", "add"),
    s("user", "add", "a", "b"),
    s("user", "list", "x"),
    s("role", "add", "r1"),
    s("role", "add", "r1"),
    s("role", "get", "r1"),
    s("role", "grant", "r1"),
    s("role", "grant", "--path", "/foo", "r1"),
    s("role", "grant", "--path", "foo", "--read", "r1"),
    s("role", "grant", "--path", "/a/../b/", "--rw", "r1"),
    s("role", "grant", "--path", "/foo", "--read", "--write", "r1"),
    s("role", "grant", "--path", "/foo/*", "--read", "r1"),
    s("role", "grant", "--path", "/foo/*", "--read", "r1"),
    s("role", "grant", "r1", "--path", "/bar", "--readwrite"),
    s("role", "get", "r1"),
    s("role", "revoke", "--path", "/bar", "--write", "r1"),
    s("role", "revoke", "--path", "/bar", "--write", "r1"),
    s("role", "get", "r1"),
    s("role", "grant", "--path", "/x", "--read", "nosuch"),
    s("role", "grant", "--path", "/x", "--read"),
    s("role", "get"),
    s("role", "get", "nosuch"),
    s("role", "list"),
    s("role", "list", "extra"),
    s("role", "grant", "--bogus", "r1"),
    s("user", "add", "alice:apw"),
    s("user", "grant", "alice"),
    s("user", "grant", "--roles", "r1", "alice"),
    s("user", "grant", "--roles", "r1", "alice"),
    s("user", "grant", "--roles", "r1", "nouser"),
    s("user", "grant", "--roles", "r1"),
    s("user", "get", "alice"),
    s("role", "add", "r3"),
    s("user", "grant", "--roles", "r3", "alice"),
    s("user", "get", "alice"),  # two role objects: "Roles:   r1 r3" from etcdctl
    s("user", "add", "eve:evepw"),
    s("user", "grant", "--roles", "r1,r3", "eve"),  # one role named "r1,r3": no comma splitting
    s("user", "get", "eve"),
    s("user", "add", "eve:other"),  # an existing user: etcd 3.4 changes the password, etcdctl says created
    s("user", "remove", "eve"),
    s("user", "revoke", "--roles", "r3", "alice"),
    s("user", "revoke", "--roles", "r1", "alice"),
    s("user", "revoke", "--roles", "r1", "alice"),
    s("user", "get", "alice"),
    s("user", "passwd", "alice", stdin="newpw\n"),
    s("user", "passwd"),
    s("user", "add", "bob", stdin="bobpw\r\nrest"),
    s("user", "add", "carol", stdin=""),
    s("user", "get", "carol"),
    s("user", "list"),
    s("set", "/k", "v"),
    # auth enabled
    s("auth", "enable"),
    s("auth", "enable"),
    s("user", "list"),
    s("role", "list"),
    s("role", "add", "r2"),
    s("user", "get", "alice"),
    s(*ROOT, "user", "list"),
    s(*ROOT, "role", "list"),
    s(*ROOT, "auth", "enable"),
    s("-u", "root:wrong", "user", "list"),
    s("-u", "nobody:x", "role", "get", "r1"),
    s("-u", "root", "user", "list", stdin="rootpw\n"),
    s("-u", "root", "user", "list", stdin="wrong"),
    s("-u", "root", "user", "add", "dave", stdin="rootpw\ndavepw\n"),
    s("user", "list", env={"ETCDCTL_USERNAME": "root:rootpw"}),
    s("user", "list", stdin="rootpw\n", env={"ETCDCTL_USERNAME": "root"}),
    s("-u", "root:wrong", "user", "list", env={"ETCDCTL_USERNAME": "root:rootpw"}),
    s("get", "/k"),  # the guest role reads and writes everything
    s(*ROOT, "role", "get", "guest"),
    s(*ROOT, "role", "revoke", "--path", "/*", "--readwrite", "guest"),
    s("get", "/k"),
    s("set", "/k", "x"),
    s("-u", "alice:newpw", "get", "/k"),
    s(*ROOT, "role", "grant", "--path", "/k", "--read", "r1"),
    s(*ROOT, "user", "grant", "--roles", "r1", "alice"),
    s("-u", "alice:newpw", "get", "/k"),
    s("-u", "alice:newpw", "-o", "json", "get", "/k"),
    s("-u", "alice:newpw", "set", "/k", "w"),
    s("-u", "alice:newpw", "user", "list"),
    s("-u", "alice:wrong", "get", "/k"),
    s(*ROOT, "set", "/k", "w"),
    s(*ROOT, "get", "/k"),
    s(*ROOT, "member", "list"),
    s("--debug", *ROOT, "user", "get", "alice"),
    s("--debug", *ROOT, "role", "grant", "--path", "/d/*", "--write", "r1"),
    s(*ROOT, "user", "remove", "root"),
    s(*ROOT, "user", "remove", "bob"),
    s(*ROOT, "user", "remove", "bob"),
    s(*ROOT, "role", "remove", "r2"),
    s(*ROOT, "role", "remove", "r2"),
    s(*ROOT, "role", "remove", "root"),
    s(*ROOT, "user", "get", "root"),
    s("auth", "disable"),
    s(*ROOT, "auth", "disable", "extra"),
    s(*ROOT, "auth", "disable"),
    s("auth", "disable"),
    s("get", "/k"),
    s("user", "list"),
]


def run(tool: list[str], target: Target, step: Step) -> Outcome:
    env = {**clean_env(), **step.env}
    p = subprocess.run([*tool, "--endpoints", target.server.url, *step.args], input=step.stdin.encode(),
                       capture_output=True, env=env, timeout=30)
    return Outcome(p.returncode, target.normalise(p.stdout.decode("utf-8", "replace")),
                   target.normalise(p.stderr.decode("utf-8", "replace")))


RUNS = {"etcdctl/etcd": "etcd", "pyetcdctl/etcd": "etcd", "pyetcdctl/pyetcd": "pyetcd", "etcdctl/pyetcd": "pyetcd"}


def play(names: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Outcome] | str]:
    """Each named run on its own fresh server, the runs in parallel. A server that does not start gives
    its run the error text instead of outcomes (failing only that run's tests)."""
    servers = {name: (etcd_server if RUNS[name] == "etcd" else pyetcd_server)(
        tmp_path_factory.mktemp(name.replace("/", "-")), name="node") for name in names}
    results: dict[str, list[Outcome] | str] = {}
    try:
        for name, srv in servers.items():
            try:
                srv.start()
            except RuntimeError as e:
                results[name] = f"the server did not start: {e}"

        def one(name: str) -> None:
            tool = PYETCDCTL if name.startswith("pyetcdctl") else ETCDCTL
            target = Target(servers[name])
            results[name] = [run(tool, target, step) for step in SCRIPT]

        threads = [threading.Thread(target=one, args=(name,)) for name in names if name not in results]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(results) == set(names), "a run failed; see the thread's traceback above"
        return results
    finally:
        for srv in servers.values():
            if srv.proc is not None and srv.alive:
                srv.stop()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Outcome] | str]]:
    """The etcd-backed runs now; the pyetcd-backed ones when a test first asks for them."""
    results = play(["etcdctl/etcd", "pyetcdctl/etcd"], tmp_path_factory)

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, name: str) -> list[Outcome] | str:
            self.update(play([n for n in RUNS if RUNS[n] == "pyetcd"], tmp_path_factory))
            return self[name]

    yield Lazy(results)


def test_reference_behaves_as_assumed(outcomes: dict[str, list[Outcome] | str]) -> None:
    ref = outcomes["etcdctl/etcd"]
    assert isinstance(ref, list), ref
    by_args = {SCRIPT[i].args: o for i, o in enumerate(ref)}
    assert by_args[("user", "get", "root")].stdout == "User: root\nRoles:  root\n"  # Go's decoding quirk
    assert by_args[(*ROOT, "user", "list")].stdout == "alice\nbob\nroot\n"  # carol: empty password
    assert by_args[("role", "list")].stderr == "unexpected status code 401\n"
    assert by_args[("-u", "alice:newpw", "set", "/k", "w")].rc == 4


@pytest.mark.parametrize("who", ["pyetcdctl/etcd", "pyetcdctl/pyetcd", "etcdctl/pyetcd"])
@pytest.mark.parametrize("i", range(len(SCRIPT)), ids=[" ".join(st.args)[:48] for st in SCRIPT])
def test_auth_step_matches_etcdctl_against_etcd(outcomes: dict[str, list[Outcome] | str], who: str, i: int) -> None:
    ref, run_ = outcomes["etcdctl/etcd"], outcomes[who]
    assert isinstance(ref, list), ref
    if isinstance(run_, str):
        pytest.fail(run_)
    want, got = ref[i], run_[i]
    assert (got.rc, got.stdout, got.stderr) == (want.rc, want.stdout, want.stderr), SCRIPT[i]


# ---- password prompts on a terminal ---------------------------------------------------------------


def on_terminal(cmd: list[str], answers: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `cmd` with a pseudo-terminal as stdin, stdout and stderr; type each answer once the output
    ends with a prompt ("password: "). Returns (exit status, the terminal's transcript)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
                            start_new_session=True)
    os.close(slave)
    transcript = b""
    pending = list(answers)
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the other side closed
                    break
                if not chunk:
                    break
                transcript += chunk
            if pending and transcript.lower().endswith(b"password: "):
                time.sleep(0.3)  # let the echo be turned off (stty) before typing, as a person would
                os.write(master, pending.pop(0).encode() + b"\n")
                transcript += b"<typed>"
            elif proc.poll() is not None and not ready:
                break
        rc = proc.wait(10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, transcript.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.fixture(scope="module", params=["etcd", "pyetcd"])
def auth_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    make = etcd_server if request.param == "etcd" else pyetcd_server
    srv = make(tmp_path_factory.mktemp(f"tty-{request.param}"), name="node").start()
    try:
        env = clean_env()
        for args in (("user", "add", "root:rootpw"), ("auth", "enable")):
            subprocess.run([*ETCDCTL, "--endpoints", srv.url, *args], check=True, env=env, capture_output=True)
        yield Target(srv)
    finally:
        srv.stop()


@pytest.mark.parametrize("args,answers", [
    (("-u", "root", "user", "list"), ["rootpw"]),
    (("-u", "root", "user", "list"), ["nope"]),
    (("-u", "root", "user", "add", "{name}"), ["rootpw", "secret"]),
    (("-u", "root:rootpw", "user", "passwd", "{name}"), ["other"]),
], ids=["right", "wrong", "two-prompts", "passwd"])
def test_password_prompt_on_a_terminal_matches_etcdctl(auth_server: Target, args: tuple[str, ...],
                                                        answers: list[str]) -> None:
    """pyetcdctl and etcdctl on a terminal, against one server (etcd 3.4, then pyetcd)."""
    got = {}
    for name, tool in (("ref", ETCDCTL), ("py", PYETCDCTL)):
        words = [a.replace("{name}", f"tty-{name}") for a in args]
        rc, text = on_terminal([*tool, "--endpoints", auth_server.server.url, *words], answers, clean_env())
        got[name] = (rc, re.sub(r"tty-(ref|py)", "tty-X", auth_server.normalise(text)))
    assert got["ref"][1].count("<typed>") == len(answers), got["ref"]  # the reference behaves as assumed
    for answer in answers:
        assert answer not in got["py"][1], "the password was echoed"
    assert got["py"] == got["ref"]
