"""bcrypt off the loop's thread: checks of HTTP Basic credentials and hashes of new passwords.

etcd v2 stores each user's password as a bcrypt hash (Go's bcrypt.DefaultCost, 10) and checks requests'
credentials with bcrypt.CompareHashAndPassword. One check costs tens of ms (60 ms on the development VM),
far too long to run inside pyetcd's single-threaded selectors loop: every other client would wait. The
checks run on a worker thread; the loop sees one file descriptor, readable when results are ready, and
on_readable() runs the callbacks in the loop's thread. Callers should ask server/credentials.py's
CredentialCache first, so a client that repeats its credentials costs one check, not one per request.

Thread, not process: bcrypt releases the GIL while it hashes, measured (tests/integration/
test_passwords.py checks it still holds): a thread looping in bcrypt.checkpw (cost 10) beside a thread
counting loop iterations; the counter ran 3.95M iterations/s *inside* the bcrypt calls vs 4.33M/s overall
(bcrypt 5.0.0, pyo3's allow_threads; hashpw: 2.91M/s vs 3.01M/s), and with Debian bookworm's
python3-bcrypt 3.2.2 (cffi, which drops the GIL around C calls) 0.81M/s vs 0.89M/s (hashpw 0.76M/s vs
0.82M/s). Had bcrypt held the GIL, the counter would have stood still during each call. So a thread costs
the loop nothing while it hashes, and needs no child to fork from a process holding sockets and a WAL, no
pickling and no supervision.

Compatibility with Go's x/crypto/bcrypt, whatever the installed bcrypt's version:
- Only the first 72 bytes of a password count (Go's key schedule never reads further; bcrypt >= 5 would
  raise instead, older ones truncate): passwords are cut at 72 bytes before checking and hashing.
- Go accepts any minor version letter ($2$, $2a$, $2b$, $2y$, even $2x$) and computes them all alike; for
  passwords of at most 72 bytes so do $2a$/$2b$/$2y$ here: the stored hash's prefix is rewritten to $2b$.
- A password containing a NUL byte never verifies and cannot be hashed (bookworm's bcrypt 3.2 refuses it;
  Go would take it). Only pyetcd makes the hashes it checks, so this is consistent.
- hash() writes $2a$ hashes, the form etcd itself stores (Go's CompareHashAndPassword would accept $2b$
  too; only pyetcd verifies pyetcd's hashes, but the records then look like etcd's).
- A malformed stored hash, or a cost outside 4..max_cost, is False at once (logged, without the hash):
  a hand-made $2a$31$ hash would otherwise occupy the worker for days.

Bounded: past max_pending checks waiting, check() answers False at once (a warning, rate-limited), so a
flood of wrong passwords cannot grow memory or the delay without bound. Identical checks in flight (the
same stored hash and password, e.g. a client's pipelined requests) share one bcrypt computation.
Passwords are never logged.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

import bcrypt

log = logging.getLogger("pyetcd.passwords")

DEFAULT_COST = 10  # Go's bcrypt.DefaultCost, what etcd v2 stores
MAX_COST = 14  # ~16 times a cost-10 check; etcd only ever writes 10
MAX_PENDING = 256
MAX_PASSWORD_BYTES = 72
_WARN_EVERY_S = 10.0

_HASH_RE = re.compile(rb"\A\$2[a-z]?\$(\d\d)\$([./A-Za-z0-9]{53})\Z")

CheckDone = Callable[[bool], None]
HashDone = Callable[[str], None]


def _password_bytes(password: str | bytes) -> bytes:
    raw = password.encode("utf-8", "surrogatepass") if isinstance(password, str) else bytes(password)
    return raw[:MAX_PASSWORD_BYTES]


class PasswordWorker:
    """check()/hash() from the loop's thread; register fileno() for EVENT_READ and call on_readable()
    when it is readable; close() at shutdown (after unregistering fileno())."""

    def __init__(self, cost: int = DEFAULT_COST, max_cost: int = MAX_COST, max_pending: int = MAX_PENDING,
                 threads: int = 1) -> None:
        if not 4 <= cost <= 31:
            raise ValueError(f"bcrypt cost {cost} is outside 4..31")
        self.cost, self.max_cost, self.max_pending = cost, max(max_cost, cost), max_pending
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._jobs: queue.SimpleQueue[tuple[str, bytes, bytes] | None] = queue.SimpleQueue()
        self._results: deque[tuple[str, bytes, bytes, object]] = deque()  # appended by workers
        # (stored hash, password) -> callbacks waiting for that check; loop thread only
        self._checks: dict[tuple[bytes, bytes], list[CheckDone]] = {}
        self._hashes: dict[bytes, list[HashDone]] = {}  # a job's token -> its callback
        self._pending_checks = 0
        self._hash_seq = 0
        self._refused = 0
        self._next_warning: dict[str, float] = {}
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"pyetcd-bcrypt-{i}", daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    # ---- the loop's side -----------------------------------------------------------------------

    def fileno(self) -> int:
        return self._rsock.fileno()

    def pending(self) -> int:
        """Callbacks not yet run (checks and hashes)."""
        return self._pending_checks + len(self._hashes)

    def check(self, stored_hash: str | bytes, password: str | bytes, done: CheckDone) -> None:
        """done(True) if password matches stored_hash, else done(False); later, from on_readable(), or at
        once (inside this call) when the answer needs no bcrypt: a malformed hash, a full queue, closed."""
        if self._closed:
            done(False)
            return
        hashed = self._normalised(stored_hash)
        pw = _password_bytes(password)
        if hashed is None or b"\x00" in pw:
            done(False)
            return
        if self._pending_checks >= self.max_pending:
            self._refuse()
            done(False)
            return
        self._pending_checks += 1
        key = (hashed, pw)
        waiting = self._checks.get(key)
        if waiting is not None:
            waiting.append(done)
            return
        self._checks[key] = [done]
        self._jobs.put(("check", hashed, pw))

    def hash(self, password: str | bytes, done: HashDone) -> None:
        """done(the $2a$ bcrypt hash at self.cost), later from on_readable(); done("") if bcrypt failed
        (logged; never store it). Raises ValueError for a password bcrypt cannot take (a NUL byte)."""
        pw = _password_bytes(password)
        if b"\x00" in pw:
            raise ValueError("a password may not contain a NUL byte")
        if self._closed:
            done("")
            return
        self._hash_seq += 1
        token = self._hash_seq.to_bytes(8, "big")
        self._hashes[token] = [done]
        self._jobs.put(("hash", token, pw))

    def on_readable(self) -> None:
        """Run the callbacks of finished checks and hashes (in the loop's thread)."""
        try:
            while self._rsock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            if self._closed:
                return
            raise
        results = self._results
        while results:
            kind, a, b, value = results.popleft()
            if kind == "check":
                callbacks = self._checks.pop((a, b), [])
                self._pending_checks -= len(callbacks)
                for cb in callbacks:
                    self._run(cb, bool(value))
            else:
                for cb in self._hashes.pop(a, []):
                    self._run(cb, value)

    def close(self) -> None:
        """Stop the workers (a bcrypt already running finishes on its own: the threads are daemons) and
        drop what is pending without calling back."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout=0.05)
        self._checks.clear()
        self._hashes.clear()
        self._pending_checks = 0
        self._rsock.close()
        self._wsock.close()

    # ---- helpers -------------------------------------------------------------------------------

    def _normalised(self, stored_hash: str | bytes) -> bytes | None:
        raw = stored_hash.encode("ascii", "replace") if isinstance(stored_hash, str) else bytes(stored_hash)
        m = _HASH_RE.match(raw)
        if m is None:
            self._warn("a stored password hash is not a bcrypt hash: the check fails")
            return None
        cost = int(m.group(1))
        if not 4 <= cost <= self.max_cost:
            self._warn("a stored password hash has bcrypt cost %d, outside 4..%d: the check fails", cost,
                       self.max_cost)
            return None
        return b"$2b$%02d$%s" % (cost, m.group(2))

    def _refuse(self) -> None:
        self._refused += 1
        self._warn("%d password check(s) already waiting for bcrypt: refusing credentials at once "
                   "(%d refused so far)", self.pending(), self._refused)

    def _warn(self, msg: str, *args: object) -> None:
        """At most one warning of a kind per _WARN_EVERY_S: a flood must not flood the journal too."""
        now = time.monotonic()
        if now >= self._next_warning.get(msg, 0.0):
            self._next_warning[msg] = now + _WARN_EVERY_S
            log.warning(msg, *args)

    @staticmethod
    def _run(cb: Callable[[object], None], value: object) -> None:
        try:
            cb(value)
        except Exception:
            log.exception("a password callback failed")

    # ---- the workers' side ---------------------------------------------------------------------

    def _work(self) -> None:
        _yield_to_the_loop()
        jobs, results = self._jobs, self._results
        while True:
            job = jobs.get()
            if job is None:
                return
            kind, a, pw = job
            value: object
            if kind == "check":
                try:
                    value = bcrypt.checkpw(pw, a)
                except Exception as e:  # an invalid hash bcrypt still refuses; never the password
                    log.warning("bcrypt refused a stored hash (%s): the check fails", type(e).__name__)
                    value = False
            else:
                try:
                    value = bcrypt.hashpw(pw, bcrypt.gensalt(self.cost, b"2a")).decode("ascii")
                except Exception as e:
                    log.error("bcrypt could not hash a password (%s)", type(e).__name__)
                    value = ""
            results.append((kind, a, pw if kind == "check" else b"", value))
            del job, pw
            self._wake()

    def _wake(self) -> None:
        try:
            self._wsock.send(b"\x01")
        except (BlockingIOError, InterruptedError):
            pass  # the buffer is full of wake-ups already: the loop will come
        except OSError:
            pass  # closed under us at shutdown


def _yield_to_the_loop() -> None:
    """Run this worker thread at the lowest CPU priority (nice 19; Linux applies it per thread): bcrypt
    then only takes CPU time the event loop leaves, so a storm of wrong passwords on a busy member slows
    the checks down, not the loop (the queue bound refuses the excess). Best effort: where setpriority is
    not allowed the worker runs at the loop's priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (OSError, AttributeError) as e:
        log.debug("bcrypt worker keeps its priority: %s", e)
