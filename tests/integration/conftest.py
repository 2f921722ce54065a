"""Fixtures: real pyetcd processes on free loopback ports, each stopped (by PID) at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.servers import Server, pyetcd_server

MakeServer = Callable[..., Server]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[MakeServer]:
    """Build (not start) pyetcd servers; every one built here is stopped at teardown."""
    made: list[Server] = []

    def make(name: str = "default", extra: list[str] | None = None) -> Server:
        srv = pyetcd_server(tmp_path, name=name, extra=extra)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture
def server(make_server: MakeServer) -> Server:
    """A started pyetcd with a fresh data dir."""
    return make_server().start()
