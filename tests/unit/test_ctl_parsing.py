"""pyetcdctl's pure parts: Go/urfave argument parsing, help layout, Go's JSON, endpoint and URL checks.
(Whole-command behaviour is compared with the real etcdctl in tests/differential/test_etcdctl.py.)"""

from __future__ import annotations

import io

import pytest
from pyetcd.cli import ctl
from pyetcd.cli.ctl_conn import GlobalOptions, endpoint_list
from pyetcd.cli.ctl_flags import (
    BOOL,
    DURATION,
    INT,
    STRING,
    Flag,
    HelpRequested,
    UsageError,
    parse,
    reorder,
)
from pyetcd.cli.ctl_output import go_json, go_time
from pyetcd.client.members import BadPeerURL, check_peer_urls

FLAGS = (Flag(("ttl",), INT, "key time-to-live"), Flag(("recursive", "r"), BOOL, "recurse"),
         Flag(("with-value",), STRING, "previous value"))


def words(*w: str) -> tuple[dict[str, object], list[str]]:
    return parse(FLAGS, reorder(FLAGS, list(w)))


def test_flags_may_follow_positional_words_as_urfave_reorders_them() -> None:
    assert words("/k", "v", "--ttl", "5", "-r") == ({"ttl": 5, "recursive": True, "with-value": ""}, ["/k", "v"])
    assert words("--ttl=7", "/k")[0]["ttl"] == 7
    assert words("-recursive=false", "/k")[0]["recursive"] is False


def test_double_dash_ends_flags_and_disappears() -> None:
    assert words("--", "/k", "-x")[1] == ["/k", "-x"]
    assert words("/k", "--", "--ttl", "3")[1] == ["/k", "--ttl", "3"]
    assert words("/k", "-x")[1] == ["/k", "-x"]  # an unknown flag after the key is a value


@pytest.mark.parametrize(("argv", "message"), [
    (("-x", "/k"), "flag provided but not defined: -x"),
    (("--ttl",), "flag needs an argument: -ttl"),
    (("--ttl", "x", "/k"), 'invalid value "x" for flag -ttl: parse error'),
    (("-r=maybe",), 'invalid boolean value "maybe" for -r: parse error'),
    (("---ttl",), "bad flag syntax: ---ttl"),
])
def test_usage_errors_use_gos_words(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=f"^{message}$"):
        words(*argv)


def test_help_flags_work_anywhere_in_a_command() -> None:
    with pytest.raises(HelpRequested):
        words("--help", "/k")
    for argv, name in ((("get", "/k", "--help"), "get"), (("get", "-h"), "get"), (("member", "list", "-h"), "member list")):
        rc, out, err = run(*argv)
        assert (rc, err) == (0, "") and out.startswith(f"NAME:\n   pyetcdctl {name} - ")


def test_values_are_gos_flag_values() -> None:
    """Ints and durations parse as Go's flag package does (tables in test_gocompat.py)."""
    flags = (Flag(("n",), INT, ""), Flag(("d",), DURATION, ""))
    assert parse(flags, ["-n", "0x10", "-d", "1m30s"])[0] == {"n": 16, "d": 90.0}
    with pytest.raises(UsageError, match='^invalid value "1" for flag -d: parse error$'):
        parse(flags, ["-d", "1"])
    with pytest.raises(UsageError, match='^invalid value "9223372036854775808" for flag -n: value out of range$'):
        parse(flags, ["-n", "9223372036854775808"])


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = ctl.main(list(argv), stdout=out, stderr=err, stdin=io.StringIO())
    return rc, out.getvalue(), err.getvalue()


def test_command_help_is_urfaves_layout() -> None:
    rc, out, _ = run("rm", "--help")
    assert rc == 0
    assert out == (
        "NAME:\n   pyetcdctl rm - remove a key or a directory\n\nUSAGE:\n   pyetcdctl rm [command options] <key>\n\n"
        "OPTIONS:\n   --dir               removes the key if it is an empty directory or a key-value pair\n"
        "   --recursive, -r     removes the key and all child keys(if it is a directory)\n"
        "   --with-value value  previous value\n   --with-index value  previous index (default: 0)\n   \n")
    assert run("help", "rmdir")[1] == ("NAME:\n   pyetcdctl rmdir - removes the key if it is an empty directory or a "
                                       "key-value pair\n\nUSAGE:\n   pyetcdctl rmdir <key>\n")


def test_app_help_global_options_and_unknown_commands() -> None:
    rc, out, _ = run()
    assert rc == 0 and "   --output simple, -o simple       output response in the given format (simple, " \
                      '`extended` or `json`) (default: "simple")\n' in out
    assert "   --timeout value                  connection timeout per request (default: 2s)\n" in out
    assert run("nope") == (3, "", "No help topic for 'nope'\n")
    assert run("member", "nope") == (3, "", "No help topic for 'nope'\n")
    rc, out, err = run("--nope")
    assert rc == 1 and out.startswith("Incorrect Usage. flag provided but not defined: -nope\n\nNAME:")
    assert err == "flag provided but not defined: -nope\n"


def test_go_json_escapes_like_encoding_json() -> None:
    assert go_json({"v": "<a&b>\u2028é\t\n\x01\x7f\\\"", "n": None, "l": [1, True]}) == \
        '{"v":"\\u003ca\\u0026b\\u003e\\u2028é\\t\\n\\u0001\x7f\\\\\\"","n":null,"l":[1,true]}'
    assert go_time("2026-01-02T03:04:05.120000000Z") == "2026-01-02T03:04:05.12Z"
    assert go_time("2026-01-02T03:04:05.000Z") == "2026-01-02T03:04:05Z"


def test_endpoints_come_from_flags_then_environment() -> None:
    assert endpoint_list(GlobalOptions(), {}) == ["http://127.0.0.1:2379", "http://127.0.0.1:4001"]
    assert endpoint_list(GlobalOptions(peers="http://p:1"), {"ETCDCTL_ENDPOINTS": "http://e:1"}) == ["http://e:1"]
    assert endpoint_list(GlobalOptions(endpoints="//a:1,https://b:2"), {}) == ["http://a:1", "https://b:2"]
    with pytest.raises(ValueError, match="first path segment in URL cannot contain colon"):
        endpoint_list(GlobalOptions(endpoints="127.0.0.1:2379"), {})


def test_peer_urls_are_checked_and_sorted_as_go_does() -> None:
    assert check_peer_urls(["http://b:2", " http://a:1"]) == ["http://a:1", "http://b:2"]
    for bad, message in (("x", "URL scheme must be"), ("http://a", 'does not have the form "host:port"'),
                         ("http://a:1/p", "must not contain a path")):
        with pytest.raises(BadPeerURL, match=message):
            check_peer_urls([bad])
