"""Differential tests: every case in cases.py runs against Debian's etcd 3.4 and pyetcd and must agree.

``DIFF_AGAINST=etcd`` replaces pyetcd by a second etcd instance; that mode validates the harness
and its normalisation (every case must pass etcd-vs-etcd).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.differential.cases import CASES
from tests.differential.harness import Case, Target, compare_outcomes, exchange, run_both
from tests.support.servers import PYETCD_BIN, Server, etcd_available, etcd_server, pyetcd_server

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd (Debian etcd-server 3.4) is not on PATH")

AGAINST = os.environ.get("DIFF_AGAINST", "pyetcd")


def warm_up(server: Server) -> None:
    """One write so that the base index is never 0 (keeps 'index 0' distinguishable from 'base+0')."""
    exchange(server.port, "PUT", "/v2/keys/diff-warmup", b"value=w",
             [("Content-Type", "application/x-www-form-urlencoded")])


def start_other(base: Path, extra: list[str] | None = None) -> Server:
    if AGAINST == "etcd":
        return etcd_server(base, name="ref", extra=extra).start()
    if not PYETCD_BIN.exists():
        pytest.skip(f"pyetcd is not installed at {PYETCD_BIN}")
    return pyetcd_server(base, name="ref", extra=extra).start()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Target, Target]]:
    ref = etcd_server(tmp_path_factory.mktemp("ref")).start()
    try:
        other = start_other(tmp_path_factory.mktemp("other"))
    except BaseException:
        ref.stop()
        raise
    try:
        for s in (ref, other):
            warm_up(s)
        yield Target("etcd", ref.port), Target(AGAINST if AGAINST == "pyetcd" else "etcd#2", other.port)
    finally:
        other.stop()
        ref.stop()


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_case(c: Case, servers: tuple[Target, Target]) -> None:
    ref, other = servers
    ns = f"/{c.name}"
    got_ref, got_other = run_both(c, ns, ref, other)
    report = compare_outcomes(c, got_ref, got_other, (ref.name, other.name))
    if report:
        pytest.fail(report, pytrace=False)


def test_case_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 170
