"""Disk errors of the storage layer, and the one seam its writing OS calls go through.

`DiskFull` is raised by wal.py and snap.py when the disk (or a quota) is full, and only after they have
put the files back into a clean state: the caller may keep running, acknowledge nothing the failed call
covered, and retry later. Every other OSError (EIO, ...) propagates unchanged and means "stop".

`DiskIo` holds the OS calls that write (os.open that may create, os.write, os.fdatasync, os.fsync,
os.ftruncate, os.rename). `Wal` and `SnapDir` take one (`io=`), so a test can make the Nth fdatasync fail
without a failing device (`FaultIo`), and `io_from_environment()` lets a real daemon process arm such a
fault from an environment variable.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("pyetcd.storage")

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
FAULT_FSYNC_EIO_AFTER_ENV = "PYETCD_FAULT_FSYNC_EIO_AFTER"


class DiskFull(OSError):
    """No space left (ENOSPC, or EDQUOT: a quota counts as full). `errno` is always ENOSPC; the errno
    the OS actually returned is `os_errno`, and the OSError itself is the `__cause__`.

    When this is raised the on-disk state is as it was before the failed call (see Wal.sync, Wal.cut,
    SnapDir.save) and the object that raised it is still usable."""

    def __init__(self, filename: str | os.PathLike[str] | None, what: str, os_errno: int = errno.ENOSPC) -> None:
        super().__init__(errno.ENOSPC, f"{os.strerror(os_errno)} ({what})", None if filename is None else str(filename))
        self.os_errno = os_errno


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS


class DiskIo:
    """The storage layer's writing OS calls; the default is exactly the os functions.

    `open` is used for every open that may create a file (O_CREAT); opens that only read or append to an
    existing file call os.open directly."""

    def open(self, path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
        return os.open(path, flags, mode)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def rename(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        os.rename(src, dst)


DEFAULT_IO = DiskIo()
OPS = ("open", "write", "fdatasync", "fsync", "ftruncate", "rename")


@dataclass
class _Fault:
    err: int
    skip: int  # successful calls still to let through
    times: int | None  # failing calls left (None: every later call fails)


class FaultIo(DiskIo):
    """A DiskIo that raises OSError(err) from chosen calls: a test fault point (BUGGIFY-style), never for
    production. The calls themselves go to `base` (the real os functions by default).

        io = FaultIo()
        io.fail("fdatasync", errno.EIO, after=2)   # the next 2 fdatasyncs succeed, the 3rd raises EIO

    `calls[op]` counts every call of op, failed ones included."""

    def __init__(self, base: DiskIo | None = None) -> None:
        self.base = base or DEFAULT_IO
        self.calls = dict.fromkeys(OPS, 0)
        self._faults: dict[str, _Fault] = {}

    def fail(self, op: str, err: int, *, after: int = 0, times: int | None = 1) -> None:
        """Arm a fault on `op` (replacing any armed on it): `after` more calls succeed, then `times` calls
        in a row raise OSError(err) (times=None: every call from then on)."""
        if op not in OPS:
            raise ValueError(f"unknown disk op {op!r}; one of {', '.join(OPS)}")
        if after < 0 or (times is not None and times < 1):
            raise ValueError("after must be >= 0 and times >= 1 (or None)")
        self._faults[op] = _Fault(err, after, times)

    def clear(self, op: str | None = None) -> None:
        if op is None:
            self._faults.clear()
        else:
            self._faults.pop(op, None)

    def _check(self, op: str, path: str | os.PathLike[str] | None = None) -> None:
        self.calls[op] += 1
        fault = self._faults.get(op)
        if fault is None:
            return
        if fault.skip > 0:
            fault.skip -= 1
            return
        if fault.times is not None:
            fault.times -= 1
            if fault.times == 0:
                del self._faults[op]
        raise OSError(fault.err, f"{os.strerror(fault.err)} (injected fault on {op})",
                      None if path is None else str(path))

    def open(self, path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
        self._check("open", path)
        return self.base.open(path, flags, mode)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self._check("write")
        return self.base.write(fd, data)

    def fdatasync(self, fd: int) -> None:
        self._check("fdatasync")
        self.base.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        self._check("fsync")
        self.base.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        self._check("ftruncate")
        self.base.ftruncate(fd, length)

    def rename(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        self._check("rename", src)
        self.base.rename(src, dst)


def io_from_environment(environ: Mapping[str, str] | None = None) -> DiskIo:
    """The DiskIo a daemon process should use: call it once at start and give the same object to its
    Wal and SnapDir.

    Normally this is the plain os calls. `PYETCD_FAULT_FSYNC_EIO_AFTER=N` arms a TEST FAULT POINT
    (BUGGIFY-style, for real-process tests of the "fsync failed, stop" path): the first N fdatasyncs
    succeed and every later one raises EIO without touching the device. Never set it in production; a
    WARNING is logged whenever it is armed so it cannot go unnoticed. A value that is not an integer
    >= 0 raises ValueError."""
    env = os.environ if environ is None else environ
    raw = env.get(FAULT_FSYNC_EIO_AFTER_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_IO
    try:
        after = int(raw)
    except ValueError:
        after = -1
    if after < 0:
        raise ValueError(f"{FAULT_FSYNC_EIO_AFTER_ENV}={raw!r}: expected an integer >= 0")
    log.warning("TEST FAULT POINT ARMED: %s=%d: every fdatasync after the first %d will fail with EIO; "
                "never run production with this set", FAULT_FSYNC_EIO_AFTER_ENV, after, after)
    io = FaultIo()
    io.fail("fdatasync", errno.EIO, after=after, times=None)
    return io
