"""pyetcdctl's auth parts that need no server: the password prompt, --roles, and the checks made before
connecting (their words and exit codes as etcdctl's; the rest is in tests/differential/test_etcdctl_auth)."""

from __future__ import annotations

import io

import pytest
from pyetcd.cli.ctl import main
from pyetcd.cli.ctl_conn import GlobalOptions, ask_password, connection_options
from pyetcd.cli.ctl_flags import SLICE, Flag, parse, reorder


def test_prompt_reads_one_line_and_drops_a_cr() -> None:
    out, stdin = io.StringIO(), io.StringIO("secret\r\nnext line\n")
    assert ask_password("Password: ", out, stdin) == "secret"
    assert out.getvalue() == "Password: \n"
    assert stdin.read() == "next line\n"  # nothing past the line was taken
    assert ask_password("", io.StringIO(), io.StringIO("")) == ""  # EOF: an empty password


def test_username_without_password_asks_with_etcdctls_prompt() -> None:
    asked: list[str] = []
    opts = connection_options(GlobalOptions(endpoints="http://a:1", username="root"), {},
                              ask=lambda p: asked.append(p) or "pw")
    assert (opts.username, opts.password, asked) == ("root", "pw", ["Password: "])
    opts = connection_options(GlobalOptions(endpoints="http://a:1"), {"ETCDCTL_USERNAME": "u:p:q"})
    assert (opts.username, opts.password) == ("u", "p:q")


def test_roles_flag_repeats_without_splitting() -> None:
    flags = [Flag(("roles",), SLICE, "List of roles to grant or revoke")]
    values, args = parse(flags, reorder(flags, ["bob", "--roles", "a,b", "--roles=c"]))
    assert (values["roles"], args) == (["a,b", "c"], ["bob"])


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["--endpoints", "http://127.0.0.1:9", *argv], stdout=out, stderr=err, stdin=io.StringIO())
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv,message", [
    (("user", "grant", "bob"), "No roles specified; please use `--roles`"),
    (("role", "grant", "r"), "No path specified; please use `--path`"),
    (("role", "revoke", "--path", "a//b", "--read", "r"), "Not canonical path; please use `--path=/a/b`"),
    (("role", "grant", "--path", "/a", "r"), "Please specify exactly one of --read, --write or --readwrite"),
    (("role", "grant", "--path", "/a", "--rw", "--read", "r"), "Please specify exactly one of --read, --write or --readwrite"),
    (("user", "add"), "Please provide a username"),
    (("role", "get", "a", "b"), "Please provide a role name"),
    (("user", "list", "x"), "No arguments accepted"),
    (("auth", "enable", "x"), "No arguments accepted"),
])
def test_checks_before_connecting(argv: tuple[str, ...], message: str) -> None:
    assert run(*argv) == (1, "", message + "\n")


def test_help_for_a_subcommand_shows_its_parent_as_etcdctl() -> None:
    rc, out, _ = run("help", "user", "grant")
    assert rc == 0 and out == "NAME:\n   pyetcdctl user - user add, grant and revoke subcommands\n\nUSAGE:\n" \
                              "   pyetcdctl user [arguments...]\n"
    rc, out, _ = run("role", "grant", "-h")
    assert "   --readwrite, --rw  Grant read-write access\n" in out
