"""Snapshots that do not stop the world: a forked child encodes the store and writes the snapshot file.

The driver hands out a SnapshotJob whose `build()` encodes the state as of the job's index. Encoding 1M
keys takes seconds of the loop's CPU, so the loop forks at once: the child sees the store as it was at
the fork (copy-on-write pages), runs `build()`, writes and fsyncs the file (Storage.write_snapshot_file)
and exits 0 (saved), 2 (disk full) or 1 (any other error), its reason on a pipe. The parent watches the
pipe in its selector and meanwhile goes on serving; when the pipe ends it reaps the child and reports
through `on_done(job, outcome, detail)`, where the loop does the rest in the member's process (release
the WAL, then driver.snapshot_saved / snapshot_failed). One child at a time: the driver asks for no other
snapshot until it heard of this one.

In the child: SIGTERM/SIGINT back to their defaults (they are blocked across the fork, so no Python
handler runs in between), no wake-up fd, no logging, no finalizers (os._exit always), the cyclic GC off
(a collection would touch every object and copy every page), and every inherited descriptor closed except
the pipe: a connection or peer link the parent closes must not stay open in the child (the other side
would wait for a FIN until the child exits). Closing a descriptor in the child leaves the parent's alone.
PR_SET_PDEATHSIG kills the child if the member dies first. In the parent, gc.freeze() before the fork
keeps collections from touching (and so copying) the old objects while the child runs; they are unfrozen
when it is done.

If fork itself fails (no memory for the page tables, a process limit), the job runs inline, as before.
A member stopping kills the child and removes its temp file (SnapDir.load_newest would at the next start).
"""

from __future__ import annotations

import ctypes
import enum
import gc
import logging
import os
import resource
import selectors
import signal
import time
from collections.abc import Callable

from ..server.driver import SnapshotJob
from ..server.durable import Storage
from ..storage.errors import DiskFull

log = logging.getLogger("pyetcd.snapshot")
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
EXIT_SAVED, EXIT_ERROR, EXIT_DISK_FULL = 0, 1, 2
# The loop first, but the writer must still finish when both share one busy core (a 1-vCPU VM, or a
# pinned member): at nice 19 (CFS weight 15 vs 1024) a 1M-key writer under PUT@64 took 11.8 s and the
# log behind it grew; at nice 10 (weight 110) 7.3 s, with PUT p99 during/without a snapshot 1.11
# (nice 19: 0.94) and restart after kill -9 1.8 s (nice 19: 2.4-4.0 s). bench.fleet, one core.
CHILD_NICE = 10


class Outcome(enum.Enum):
    SAVED = "saved"  # the file is durable
    DISK_FULL = "disk full"  # no new file; retry later
    ERROR = "error"  # the write failed otherwise (EIO...): the member must stop, as for the WAL
    DIED = "died"  # the child was killed (e.g. by the OOM killer): no new file; retry later


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


class Snapshotter:
    def __init__(self, sel: selectors.BaseSelector, storage: Storage,
                 on_done: Callable[[SnapshotJob, Outcome, str], None]) -> None:
        self.sel = sel
        self.storage = storage
        self.on_done = on_done
        self.job: SnapshotJob | None = None
        self.pid = 0
        self._fd = -1
        self._reply = bytearray()
        self._started = 0.0
        self.fork_s = 0.0  # how long the last fork took in the parent (the only stall left)
        self._libc = _libc()  # loaded now: not in the child

    @property
    def busy(self) -> bool:
        return self.job is not None

    def fileno(self) -> int:
        return self._fd

    def start(self, job: SnapshotJob) -> bool:
        """Fork a child to build and write the job's snapshot. Returns False (nothing started) when fork
        fails: the caller then saves inline."""
        assert self.job is None, "one snapshot child at a time"
        r, w = os.pipe()
        started = time.perf_counter()
        gc.freeze()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
        except OSError as e:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            gc.unfreeze()
            os.close(r)
            os.close(w)
            log.warning("cannot fork a snapshot writer (%s): saving the snapshot on the loop", e)
            return False
        if pid == 0:  # the child: never returns
            self._child(job, w, old_mask)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(w)
        os.set_blocking(r, False)
        self.job, self.pid, self._fd = job, pid, r
        self.sel.register(r, selectors.EVENT_READ, self)
        self._reply.clear()
        self._started = started
        self.fork_s = time.perf_counter() - started
        log.info("snapshot at index %d: writer %d forked in %.1f ms", job.meta.index, pid, self.fork_s * 1000)
        return True

    def _child(self, job: SnapshotJob, w: int, old_mask: object) -> None:
        code, reply = EXIT_ERROR, b"the snapshot writer did not finish"
        try:
            gc.disable()
            signal.set_wakeup_fd(-1)
            for sig in _STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # type: ignore[arg-type]
            if self._libc is not None:
                self._libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            os.nice(CHILD_NICE)  # the member's loop (and its clients) first
            os.closerange(3, w)
            os.closerange(w + 1, max(w + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
            data = job.build()
            self.storage.write_snapshot_file(job.meta, data)
            code, reply = EXIT_SAVED, b"%d bytes" % len(data)
        except DiskFull as e:
            code, reply = EXIT_DISK_FULL, str(e).encode(errors="replace")
        except BaseException as e:  # noqa: BLE001 - whatever it was, the parent hears of it
            code, reply = EXIT_ERROR, f"{type(e).__name__}: {e}".encode(errors="replace")
        finally:
            try:
                os.write(w, reply[:4000])
            finally:
                os._exit(code)

    def on_readable(self) -> None:
        """The child wrote its reply or exited (its end of the pipe closed)."""
        try:
            chunk = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        if chunk:
            self._reply += chunk
            return
        job = self.job
        assert job is not None
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        detail = self._reply.decode(errors="replace")
        took = time.perf_counter() - self._started
        self._finish()
        if code == EXIT_SAVED:
            outcome = Outcome.SAVED
            log.info("snapshot at index %d written by its writer in %.2fs (%s)", job.meta.index, took, detail)
        elif code == EXIT_DISK_FULL:
            outcome = Outcome.DISK_FULL
        elif code == EXIT_ERROR:
            outcome = Outcome.ERROR
        else:
            outcome = Outcome.DIED
            detail = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            self._remove_temp(job)
        self.on_done(job, outcome, detail)

    def _finish(self) -> None:
        self.sel.unregister(self._fd)
        os.close(self._fd)
        self._fd = -1
        self.job, self.pid = None, 0
        gc.unfreeze()

    def _remove_temp(self, job: SnapshotJob) -> None:
        try:
            self.storage.unfinished_snapshot(job.meta).unlink(missing_ok=True)
        except OSError as e:
            log.warning("could not remove the unfinished snapshot of index %d: %s", job.meta.index, e)

    def stop(self) -> None:
        """The member is stopping: kill a running child, reap it, remove its temp file. The snapshot is
        simply not taken (the WAL still holds everything it would have covered)."""
        job = self.job
        if job is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        self._finish()
        self._remove_temp(job)
        log.info("stopped the writer of the snapshot at index %d (not taken)", job.meta.index)
