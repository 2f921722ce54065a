"""pyetcd-sched's credentials: --user USER[:PASSWORD], --password, PYETCD_SCHED_USER/PASSWORD."""

from __future__ import annotations

import argparse

import pytest
from pyetcd.sched.cli import connection_options


@pytest.fixture(autouse=True)
def no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYETCD_SCHED_USER", raising=False)
    monkeypatch.delenv("PYETCD_SCHED_PASSWORD", raising=False)


def ns(user: str = "", password: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(endpoints="http://a:1", cacert="", cert="", key="", timeout=5.0, user=user,
                              password=password)


@pytest.mark.parametrize("user,password,want", [
    ("", None, ("", "")),
    ("bob", None, ("bob", "")),
    ("bob:p:w", None, ("bob", "p:w")),
    ("bob:old", "new", ("bob", "new")),
    ("bob", "", ("bob", "")),
])
def test_user_and_password(user: str, password: str | None, want: tuple[str, str]) -> None:
    opts = connection_options(ns(user, password))
    assert (opts.username, opts.password) == want


def test_a_password_needs_a_user() -> None:
    with pytest.raises(ValueError, match="--password needs --user"):
        connection_options(ns("", "pw"))


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyetcd.sched import cli

    monkeypatch.setenv("PYETCD_SCHED_USER", "envuser")
    monkeypatch.setenv("PYETCD_SCHED_PASSWORD", "envpw")
    args = cli._parser().parse_args(["ls"])
    assert (connection_options(args).username, connection_options(args).password) == ("envuser", "envpw")
    args = cli._parser().parse_args(["ls", "--user", "flag:fpw"])
    assert (connection_options(args).username, connection_options(args).password) == ("flag", "fpw")
    args = cli._parser().parse_args(["ls", "--user", "flag:fpw", "--password", "p"])
    assert connection_options(args).password == "p"
