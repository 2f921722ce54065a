"""Start-up errors of the real daemon: exit status 1, one line naming what and where (no traceback), and the
data dir exactly as it was (not even created): nothing is written before every listener is bound.

Each test starts `pyetcd` with a fresh loopback port; the messages checked are the ones the README lists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration._http import request
from tests.support.kit import clean_env
from tests.support.servers import PYETCD_BIN, etcd_available, etcd_server, free_port, pyetcd_server
from tests.support.tmpfs import MountTmpfs, mount_tmpfs  # noqa: F401 (a fixture)

TIMEOUT_S = 30


def _tree(path: Path) -> dict[str, str] | None:
    """Everything under `path` (relative name -> kind and content hash), None if it does not exist."""
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_file():
        return {".": "file " + hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = ("file " + hashlib.sha256(p.read_bytes()).hexdigest()) if p.is_file() else "dir"
    return out


def _start_fails(args: list[str], cwd: Path | None = None) -> tuple[str, float]:
    """Run pyetcd with `args`; it must exit with status 1 without a traceback. (stderr, seconds taken)"""
    started = time.monotonic()
    done = subprocess.run([str(PYETCD_BIN), *args], capture_output=True, text=True, timeout=TIMEOUT_S,
                          env=clean_env(), cwd=cwd, stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr, took


def _one_line(stderr: str, message: str) -> None:
    """`message` is on exactly one line of stderr, whole (the line may carry the log prefix)."""
    lines = [ln for ln in stderr.splitlines() if message in ln]
    assert len(lines) == 1, f"expected one line with {message!r} in:\n{stderr}"
    assert lines[0].endswith(message), lines[0]


def _member(data_dir: Path, port: int | None = None, *extra: str) -> list[str]:
    url = f"http://127.0.0.1:{port or free_port()}"
    return ["--name", "m1", "--data-dir", str(data_dir), "--listen-client-urls", url,
            "--advertise-client-urls", url, *extra]


def test_missing_data_dir_parent(tmp_path: Path) -> None:
    data = tmp_path / "nope" / "m1.etcd"
    stderr, _ = _start_fails(_member(data))
    _one_line(stderr, f"cannot create data dir {data}: {tmp_path / 'nope'} does not exist")
    assert _tree(tmp_path / "nope") is None


def test_unwritable_data_dir_parent(tmp_path: Path, mount_tmpfs: MountTmpfs) -> None:  # noqa: F811
    parent = mount_tmpfs("1m")
    subprocess.run(["mount", "-o", "remount,ro", str(parent)], check=True)
    data = parent / "m1.etcd"
    stderr, _ = _start_fails(_member(data))
    _one_line(stderr, f"cannot create data dir {data}: {parent} is not writable (read-only file system)")
    assert _tree(parent) == {}


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    data = tmp_path / "m1.etcd"
    data.write_text("not a directory\n")
    before = _tree(data)
    stderr, _ = _start_fails(_member(data))
    _one_line(stderr, f"data dir {data} is not a directory")
    assert _tree(data) == before


@pytest.fixture(scope="module")
def etcd_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir written by etcd 3.4 itself (a key put, then stopped)."""
    if not etcd_available():
        pytest.skip("etcd is not installed (make etcd)")
    base = tmp_path_factory.mktemp("etcd")
    srv = etcd_server(base, name="ref")
    srv.start()
    try:
        conn = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        conn.sendall(b"PUT /v2/keys/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 7\r\nConnection: close\r\n\r\nvalue=1")
        conn.recv(4096)
        conn.close()
    finally:
        srv.stop()  # etcd ends on SIGTERM by the signal
    assert (srv.data_dir / "member" / "snap" / "db").is_file()
    yield srv.data_dir


def test_data_dir_written_by_etcd(etcd_data_dir: Path) -> None:
    before = _tree(etcd_data_dir)
    stderr, _ = _start_fails(_member(etcd_data_dir))
    _one_line(stderr, f"{etcd_data_dir} is an etcd data dir, not pyetcd's ({etcd_data_dir}/member/snap/db is "
                      "etcd's bbolt database): pyetcd cannot read etcd's files; give pyetcd a data dir of its own")
    assert _tree(etcd_data_dir) == before


def test_etcd_wal_is_recognized_by_its_content(etcd_data_dir: Path, tmp_path: Path) -> None:
    """Without the database (an etcd 2 data dir, or etcd's --wal-dir), the WAL segments give etcd away: their
    names are pyetcd's, their frames are not."""
    data = tmp_path / "copy.etcd"
    shutil.copytree(etcd_data_dir, data)
    (data / "member" / "snap" / "db").unlink()
    seg = sorted((data / "member" / "wal").glob("*.wal"))[0]
    before = _tree(data)
    stderr, _ = _start_fails(_member(data))
    _one_line(stderr, f"{data} is an etcd data dir, not pyetcd's ({seg} is in etcd's WAL format): pyetcd cannot "
                      "read etcd's files; give pyetcd a data dir of its own")
    assert _tree(data) == before
    # etcd's WAL given as pyetcd's --wal-dir
    stderr, _ = _start_fails(_member(tmp_path / "fresh.etcd", None, "--wal-dir", str(data / "member" / "wal")))
    _one_line(stderr, f"{data / 'member' / 'wal'} is an etcd data dir, not pyetcd's ({seg} is in etcd's WAL "
                      "format): pyetcd cannot read etcd's files; give pyetcd a data dir of its own")
    assert _tree(tmp_path / "fresh.etcd") is None and _tree(data) == before


def test_client_port_in_use_then_a_corrected_rerun(tmp_path: Path) -> None:
    data = tmp_path / "m1.pyetcd"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        stderr, _ = _start_fails(_member(data, port))
        _one_line(stderr, f"cannot listen on http://127.0.0.1:{port} (--listen-client-urls): address already in use")
        assert _tree(data) is None
    # The same command with a free port starts as if the failed run never happened.
    srv = pyetcd_server(tmp_path, name="m1")
    assert srv.data_dir == data
    try:
        srv.start()
        assert sorted(p.name for p in (data / "member").iterdir()) == ["identity", "snap", "wal"]
    finally:
        srv.stop()


def test_peer_port_in_use(tmp_path: Path) -> None:
    data = tmp_path / "m1.etcd"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        peer = f"http://127.0.0.1:{busy.getsockname()[1]}"
        stderr, _ = _start_fails(_member(data, None, "--listen-peer-urls", peer, "--initial-advertise-peer-urls",
                                         peer, "--initial-cluster", f"m1={peer}"))
        _one_line(stderr, f"cannot listen on {peer} (--listen-peer-urls): address already in use")
    assert _tree(data) is None


class _NotAMember(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_existing_join_that_reaches_no_member(tmp_path: Path) -> None:
    """Each peer URL is tried once, as etcd 3.4 does, and the error names each with its reason: it fails in
    well under etcd's 10 s per request (before, pyetcd retried silently for 30 s)."""
    web = ThreadingHTTPServer(("127.0.0.1", 0), _NotAMember)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        refused, answers = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{web.server_address[1]}"
        mine = f"http://127.0.0.1:{free_port()}"
        data = tmp_path / "m3.etcd"
        stderr, took = _start_fails(_member(data, None, "--listen-peer-urls", mine, "--initial-advertise-peer-urls",
                                            mine, "--initial-cluster-state", "existing", "--initial-cluster",
                                            f"a={refused},b={answers},m1={mine}"))
    finally:
        web.shutdown()
        web.server_close()
    _one_line(stderr, f"cannot join the existing cluster: no member answered GET /members: {refused}: connection "
                      f"refused; {answers}: GET /members answered 404 without a cluster id")
    assert took < 10, took
    assert _tree(data) is None


def test_wal_files_left_behind_by_a_new_wal_dir(tmp_path: Path) -> None:
    srv = pyetcd_server(tmp_path, name="m1").start()
    assert srv.stop() == 0
    before = _tree(srv.data_dir)
    wal_dir = tmp_path / "wal"
    stderr, _ = _start_fails(srv.argv[1:] + ["--wal-dir", str(wal_dir)])
    _one_line(stderr, f"{srv.data_dir / 'member' / 'wal'} holds WAL files but --wal-dir is {wal_dir}: move them "
                      "there first (or start without --wal-dir)")
    assert _tree(srv.data_dir) == before and _tree(wal_dir) is None


@pytest.mark.parametrize(("args", "message"), [
    (["--discovery", ""], "pyetcd: --discovery is empty: give the discovery token URL, or leave the flag out "
                          "(from flag --discovery)"),
    (["-discovery="], "pyetcd: --discovery is empty: give the discovery token URL, or leave the flag out "
                      "(from flag --discovery)"),
    (["-nope"], "pyetcd: flag provided but not defined: -nope (see 'pyetcd --help')"),
    (["-client-cert-auth", "true"], "pyetcd: 'true' is not a valid flag (see 'pyetcd --help')"),
    (["--max-wals", "-1"], "pyetcd: --max-wals must be at least 0 (from flag --max-wals)"),
])
def test_bad_settings(tmp_path: Path, args: list[str], message: str) -> None:
    data = tmp_path / "m1.etcd"
    stderr, _ = _start_fails(_member(data, None, *args))
    assert stderr == message + "\n"
    assert _tree(data) is None


def test_nothing_is_written_when_the_join_fails_after_binding(tmp_path: Path) -> None:
    """The data dir already exists (empty): a failed join leaves it empty, as it was."""
    data = tmp_path / "m3.etcd"
    data.mkdir(mode=0o700)
    mine = f"http://127.0.0.1:{free_port()}"
    stderr, _ = _start_fails(_member(data, None, "--listen-peer-urls", mine, "--initial-advertise-peer-urls", mine,
                                     "--initial-cluster-state", "existing", "--initial-cluster", f"m1={mine}"))
    _one_line(stderr, "cannot join the existing cluster: --initial-cluster names no other member to ask")
    assert _tree(data) == {}
    assert os.stat(data).st_mode & 0o777 == 0o700


def test_a_second_member_on_a_data_dir_in_use_stops_and_a_kill_9_frees_it(tmp_path: Path) -> None:
    srv = pyetcd_server(tmp_path, name="m1")
    srv.start()
    try:
        assert request(srv.port, "PUT", "/v2/keys/k", form={"value": "before"}).status == 201
        wal_before = _tree(srv.data_dir / "member" / "wal")
        # Other ports, same data dir: it must not append to the running member's WAL.
        stderr, took = _start_fails(_member(srv.data_dir))
        _one_line(stderr, f"data dir {srv.data_dir} is in use by another process (pid {srv.pid}): one pyetcd per "
                          "data dir; stop it first, or give this one a data dir of its own")
        assert took < 10
        assert _tree(srv.data_dir / "member" / "wal") == wal_before
        assert request(srv.port, "PUT", "/v2/keys/k", form={"value": "after"}).status == 200  # never noticed
        srv.kill9()
        srv.start()  # at once: the hold died with the process
        assert b'"value":"after"' in request(srv.port, "GET", "/v2/keys/k").body
    finally:
        srv.stop()


def test_a_wal_dir_in_use_by_another_member_stops_the_second(tmp_path: Path) -> None:
    wal = tmp_path / "shared-wal"
    srv = pyetcd_server(tmp_path, name="m1", extra=["--wal-dir", str(wal)])
    srv.start()
    try:
        other = tmp_path / "m2.pyetcd"
        stderr, _ = _start_fails(_member(other, None, "--wal-dir", str(wal)))
        _one_line(stderr, f"--wal-dir {wal} is in use by another process (pid {srv.pid}): one pyetcd per data dir; "
                          "stop it first, or give this one a data dir of its own")
    finally:
        srv.stop()

