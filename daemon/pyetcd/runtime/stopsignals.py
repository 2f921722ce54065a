"""SIGTERM and SIGINT stop a loop gracefully: the handler only logs and calls `on_stop`; a wake-up
socket registered in the selector (signal.set_wakeup_fd) makes a sleeping select() return at once."""

from __future__ import annotations

import logging
import selectors
import signal
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pyetcd.loop")


class StopSignals:
    def __init__(self, sel: selectors.BaseSelector, on_stop: Callable[[], None]) -> None:
        self._on_stop = on_stop
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        sel.register(self._r, selectors.EVENT_READ, self)
        signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        self._on_stop()

    def drain(self) -> None:
        """The selector saw the wake-up socket readable: empty it."""
        try:
            self._r.recv(4096)
        except BlockingIOError:
            pass
