"""Small real filesystems that fill up: a tmpfs mounted for one test (needs root), and a filler file.

    def test_x(mount_tmpfs: MountTmpfs) -> None:
        mnt = mount_tmpfs("2m")                  # a fresh tmpfs under tmp_path, unmounted at teardown
        data = mount_tmpfs("2m", at=some_dir)    # or mounted on a directory of the test's choosing
        filler = fill(mnt)                       # no byte left; filler.unlink() gives it all back

Import the fixture into a test module (`from tests.support.tmpfs import mount_tmpfs`) to use it there.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MountTmpfs = Callable[..., Path]


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[MountTmpfs]:
    """mount_tmpfs(size="1m", nr_inodes=None, at=None) -> a freshly mounted tmpfs (at `at`, created if
    missing, or a new directory under tmp_path); every one is unmounted after the test. Skips the test
    when not root or when mounting fails."""
    mounted: list[Path] = []

    def mount(size: str = "1m", nr_inodes: int | None = None, at: Path | None = None) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (these tests fill a real filesystem)")
        mnt = at if at is not None else tmp_path / f"tmpfs{len(mounted)}"
        mnt.mkdir(parents=True, exist_ok=True)
        opts = f"size={size},mode=0700" + (f",nr_inodes={nr_inodes}" if nr_inodes else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in reversed(mounted):
        # lazily if still busy (a failed test may leave a file open): it is detached either way
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            r = subprocess.run(["umount", "-l", str(mnt)], capture_output=True, text=True)
            assert r.returncode == 0, f"umount -l {mnt}: {r.stderr.strip()}"


def free_bytes(mnt: Path) -> int:
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def fill(mnt: Path, leave: int = 0, name: str = "filler") -> Path:
    """Write a filler file in `mnt` until ENOSPC, then give back `leave` bytes (a multiple of the page
    size). The filler's path; unlinking it frees the space."""
    filler = mnt / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        chunk = b"f" * (64 * 1024)
        size = 0
        while True:
            try:
                size += os.write(fd, chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
        assert free_bytes(mnt) == 0
        if leave:
            os.ftruncate(fd, size - leave)
    finally:
        os.close(fd)
    assert free_bytes(mnt) == leave
    return filler
