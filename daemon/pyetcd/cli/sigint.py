"""Ctrl+C for pyetcdctl's endless commands, turned on explicitly as etcdctl's `signal.Notify` does.

CPython installs its KeyboardInterrupt handler at startup only if SIGINT is not ignored: a process started
with SIGINT ignored (a background job of a non-interactive shell, nohup, some supervisors) keeps ignoring
it. etcdctl's `watch`, `exec-watch` and `cluster-health --forever` call `signal.Notify(sigch, os.Interrupt)`
and exit 0 when it arrives; Notify installs Go's handler whatever the inherited disposition was, so they
stop on SIGINT even then. The other etcdctl commands never call Notify, and Go leaves an inherited ignored
SIGINT ignored: pyetcdctl does the same by installing nothing for them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sigint_raises() -> Iterator[None]:
    """Inside the block SIGINT raises KeyboardInterrupt, even if the process inherited it ignored; the
    previous handling comes back afterwards (for in-process callers). Only the main thread can change
    signal handling: elsewhere the block runs with what there is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler installed outside Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)
