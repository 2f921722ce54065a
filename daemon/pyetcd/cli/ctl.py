"""`pyetcdctl`: etcdctl's v2 commands (as Debian's etcd-client 3.4 runs them with ETCDCTL_API=2).

Commands: get, set, mk, mkdir, setdir, update, updatedir, rm, rmdir, ls, watch, exec-watch,
member list|add|remove|update, cluster-health, backup, user add|get|list|remove|grant|revoke|passwd,
role add|get|list|remove|grant|revoke, auth enable|disable, help; and import (pyetcd's own: copy a
running etcd v2 cluster's keys in, see ctl_import). Output, error wording and exit codes follow
etcdctl: 0 ok; 1 bad arguments or usage; 2 the cluster cannot be reached while syncing; 3 unknown
command; 4 a failed request; 5 cluster-health found an unhealthy member.

Layout: ctl_flags (parsing, help), ctl_conn (endpoints, failover, timeouts), ctl_output (formats,
errors), ctl_keys, ctl_cluster and ctl_auth (the commands); ops/backup.py does the backup itself.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from . import ctl_auth as au
from . import ctl_cluster as cl
from . import ctl_import as im
from . import ctl_keys as k
from .ctl_conn import EXIT_BAD_ARGS, Exit, GlobalOptions
from .ctl_flags import (
    BOOL,
    DURATION,
    INT,
    SLICE,
    STRING,
    Command,
    Flag,
    HelpRequested,
    UsageError,
    app_help,
    command_help,
    parse,
    reorder,
    subcommands_help,
)

PROG = "pyetcdctl"
USAGE = "A simple command line client for etcd."
EXIT_NO_SUCH_COMMAND = 3

GLOBAL_FLAGS = (
    Flag(("debug",), BOOL, "output cURL commands which can be used to reproduce the request"),
    Flag(("no-sync",), BOOL, "don't synchronize cluster information before sending request"),
    Flag(("output", "o"), STRING, "output response in the given format (`simple`, `extended` or `json`)", "simple"),
    Flag(("discovery-srv", "D"), STRING, "domain name to query for SRV records describing cluster endpoints"),
    Flag(("insecure-discovery",), BOOL, "accept insecure SRV records describing cluster endpoints"),
    Flag(("peers", "C"), STRING, 'DEPRECATED - "--endpoints" should be used instead'),
    Flag(("endpoint",), STRING, 'DEPRECATED - "--endpoints" should be used instead'),
    Flag(("endpoints",), STRING, "a comma-delimited list of machine addresses in the cluster (default: "
                                 '"http://127.0.0.1:2379,http://127.0.0.1:4001")'),
    Flag(("cert-file",), STRING, "identify HTTPS client using this SSL certificate file"),
    Flag(("key-file",), STRING, "identify HTTPS client using this SSL key file"),
    Flag(("ca-file",), STRING, "verify certificates of HTTPS-enabled servers using this CA bundle"),
    Flag(("username", "u"), STRING, "provide username[:password] and prompt if password is not supplied."),
    Flag(("timeout",), DURATION, "connection timeout per request", 2.0),
    Flag(("total-timeout",), DURATION, "timeout for the command execution (except watch)", 5.0),
    Flag(("help", "h"), BOOL, "show help"),
    Flag(("version", "v"), BOOL, "print the version"),
)

_TTL = Flag(("ttl",), INT, "key time-to-live in seconds")
_SORT = Flag(("sort",), BOOL, "returns result in sorted order")
_QUORUM = Flag(("quorum", "q"), BOOL, "require quorum for get request")
_AFTER = Flag(("after-index",), INT, "watch after the given index")
_ROLES = (Flag(("roles",), SLICE, "List of roles to grant or revoke"),)
_SET_DESCRIPTION = ("Set sets the value of a key.\n\n   When <value> begins with '-', <value> is interpreted as a "
                    "flag.\n   Insert '--' for workaround:\n\n   $ set -- <key> <value>")


def _backup(ctx: k.Ctx, v: dict[str, Any], args: list[str]) -> int:
    """etcdctl logs (capnslog style) and exits 1 on any failure."""
    from ..ops.backup import BackupError, backup  # the store and Raft code: loaded only for a backup

    def log(message: str) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
        ctx.err.write(f"{stamp} I | {message}\n")

    try:
        backup(Path(v["data-dir"]), Path(v["backup-dir"]), wal_dir=Path(v["wal-dir"]) if v["wal-dir"] else None,
               backup_wal_dir=Path(v["backup-wal-dir"]) if v["backup-wal-dir"] else None, log=log)
    except (BackupError, OSError) as e:
        log(str(e))
        return 1
    return 0


COMMANDS = (
    Command("backup", "backup an etcd directory", " ", flags=(
        Flag(("data-dir",), STRING, "Path to the etcd data dir"),
        Flag(("wal-dir",), STRING, "Path to the etcd wal dir"),
        Flag(("backup-dir",), STRING, "Path to the backup dir"),
        Flag(("backup-wal-dir",), STRING, "Path to the backup wal dir"),
        Flag(("with-v3",), BOOL, "Backup v3 backend data")), run=_backup),
    Command("cluster-health", "check the health of the etcd cluster", " ", flags=(
        Flag(("forever", "f"), BOOL, "forever check the health every 10 second until CTRL+C"),),
        run=cl.cmd_cluster_health),
    Command("mk", "make a new key with a given value", "<key> <value>", flags=(
        Flag(("in-order",), BOOL, "create in-order key under directory <key>"), _TTL), run=k.cmd_mk),
    Command("mkdir", "make a new directory", "<key>", flags=(_TTL,), run=k.cmd_mkdir),
    Command("rm", "remove a key or a directory", "<key>", flags=(
        Flag(("dir",), BOOL, "removes the key if it is an empty directory or a key-value pair"),
        Flag(("recursive", "r"), BOOL, "removes the key and all child keys(if it is a directory)"),
        Flag(("with-value",), STRING, "previous value"),
        Flag(("with-index",), INT, "previous index")), run=k.cmd_rm),
    Command("rmdir", "removes the key if it is an empty directory or a key-value pair", "<key>", run=k.cmd_rmdir),
    Command("get", "retrieve the value of a key", "<key>", flags=(_SORT, _QUORUM), run=k.cmd_get),
    Command("ls", "retrieve a directory", "[key]", flags=(
        _SORT, Flag(("recursive", "r"), BOOL, "returns all key names recursively for the given path"),
        Flag(("p",), BOOL, "append slash (/) to directories"), _QUORUM), run=k.cmd_ls),
    Command("set", "set the value of a key", "<key> <value>", _SET_DESCRIPTION, flags=(
        _TTL, Flag(("swap-with-value",), STRING, "previous value"),
        Flag(("swap-with-index",), INT, "previous index")), run=k.cmd_set),
    Command("setdir", "create a new directory or update an existing directory TTL", "<key>", flags=(_TTL,),
            run=k.cmd_setdir),
    Command("update", "update an existing key with a given value", "<key> <value>", flags=(_TTL,), run=k.cmd_update),
    Command("updatedir", "update an existing directory", "<key> <value>", flags=(_TTL,), run=k.cmd_updatedir),
    Command("watch", "watch a key for changes", "<key>", flags=(
        Flag(("forever", "f"), BOOL, "forever watch a key until CTRL+C"), _AFTER,
        Flag(("recursive", "r"), BOOL, "returns all values for key and child keys")), run=k.cmd_watch),
    Command("exec-watch", "watch a key for changes and exec an executable", "<key> <command> [args...]", flags=(
        _AFTER, Flag(("recursive", "r"), BOOL, "watch all values for key and child keys")), run=k.cmd_exec_watch),
    Command("member", "member add, remove and list subcommands", subcommands=(
        Command("list", "enumerate existing cluster members", " ", run=cl.cmd_member_list),
        Command("add", "add a new member to the etcd cluster", "<name> <peerURL>", run=cl.cmd_member_add),
        Command("remove", "remove an existing member from the etcd cluster", "<memberID>", run=cl.cmd_member_remove),
        Command("update", "update an existing member in the etcd cluster", "<memberID> <peerURLs>",
                run=cl.cmd_member_update))),
    Command("user", "user add, grant and revoke subcommands", subcommands=(
        Command("add", "add a new user for the etcd cluster", "<user>", run=au.cmd_user_add),
        Command("get", "get details for a user", "<user>", run=au.cmd_user_get),
        Command("list", "list all current users", "<user>", run=au.cmd_user_list),
        Command("remove", "remove a user for the etcd cluster", "<user>", run=au.cmd_user_remove),
        Command("grant", "grant roles to an etcd user", "<user>", flags=_ROLES, run=au.cmd_user_grant),
        Command("revoke", "revoke roles for an etcd user", "<user>", flags=_ROLES, run=au.cmd_user_revoke),
        Command("passwd", "change password for a user", "<user>", run=au.cmd_user_passwd))),
    Command("role", "role add, grant and revoke subcommands", subcommands=(
        Command("add", "add a new role for the etcd cluster", "<role> ", run=au.cmd_role_add),
        Command("get", "get details for a role", "<role>", run=au.cmd_role_get),
        Command("list", "list all roles", " ", run=au.cmd_role_list),
        Command("remove", "remove a role from the etcd cluster", "<role>", run=au.cmd_role_remove),
        Command("grant", "grant path matches to an etcd role", "<role>", flags=(
            Flag(("path",), STRING, "Path granted for the role to access"),
            Flag(("read",), BOOL, "Grant read-only access"),
            Flag(("write",), BOOL, "Grant write-only access"),
            Flag(("readwrite", "rw"), BOOL, "Grant read-write access")), run=au.cmd_role_grant),
        Command("revoke", "revoke path matches for an etcd role", "<role>", flags=(
            Flag(("path",), STRING, "Path revoked for the role to access"),
            Flag(("read",), BOOL, "Revoke read access"),
            Flag(("write",), BOOL, "Revoke write access"),
            Flag(("readwrite", "rw"), BOOL, "Revoke read-write access")), run=au.cmd_role_revoke))),
    Command("auth", "overall auth controls", subcommands=(
        Command("enable", "enable auth access controls", " ", run=au.cmd_auth_enable),
        Command("disable", "disable auth access controls", " ", run=au.cmd_auth_disable))),
    Command("import", "copy a running etcd v2 cluster's keys into this one", "--from <url>", flags=im.FLAGS,
            run=im.cmd_import),
)
HELP_FLAG = Flag(("help", "h"), BOOL, "show help")
HELP_COMMAND = Command("help", "Shows a list of commands or help for one command", "[command]", aliases=("h",))
APP = Command(PROG, USAGE, subcommands=(*COMMANDS, HELP_COMMAND))


def _app_help() -> str:
    return app_help(PROG, USAGE, __version__, APP.subcommands, GLOBAL_FLAGS)


def _options(v: dict[str, Any]) -> GlobalOptions:
    return GlobalOptions(endpoints=v["endpoints"], endpoint=v["endpoint"], peers=v["peers"], ca_file=v["ca-file"],
                         cert_file=v["cert-file"], key_file=v["key-file"], username=v["username"],
                         timeout_s=v["timeout"], total_timeout_s=v["total-timeout"], output=v["output"],
                         no_sync=v["no-sync"], debug=v["debug"])


def _no_topic(err: TextIO, name: str) -> int:
    err.write(f"No help topic for '{name}'\n")
    return EXIT_NO_SUCH_COMMAND


def _help(words: list[str], out: TextIO, err: TextIO) -> int:
    """`help`, `help <command>`. A command with subcommands shows its short form even when a subcommand is
    named (`help member list`, `help user grant`), as etcdctl 3.4 does."""
    if not words:
        out.write(_app_help())
        return 0
    cmd = APP.find(words[0])
    if cmd is None:
        return _no_topic(err, words[0])
    prog = f"{PROG} {cmd.name}"
    if cmd.subcommands:
        out.write(f"NAME:\n   {prog} - {cmd.usage}\n\nUSAGE:\n   {prog} [arguments...]\n")
    else:
        out.write(command_help(prog, cmd))
    return 0


def _run_command(cmd: Command, prog: str, words: list[str], ctx: k.Ctx) -> int:
    if cmd.subcommands:
        if not words or words[0] in ("-h", "--help"):
            ctx.out.write(subcommands_help(prog, cmd))
            return 0
        sub = cmd.find(words[0])
        if sub is None:
            return _no_topic(ctx.err, words[0])
        return _run_command(sub, f"{prog} {sub.name}", words[1:], ctx)
    flags = (*cmd.flags, HELP_FLAG)  # urfave adds --help, -h to every command (reordered like the rest)
    try:
        values, args = parse(flags, reorder(flags, words))
    except UsageError as e:
        ctx.out.write(f"Incorrect Usage: {e}\n\n{command_help(prog, cmd)}")
        ctx.err.write(f"{e}\n")
        return EXIT_BAD_ARGS
    if values.pop("help"):
        ctx.out.write(command_help(prog, cmd))
        return 0
    assert cmd.run is not None
    return cmd.run(ctx, values, args)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    out, err = stdout or sys.stdout, stderr or sys.stderr
    for stream in (out, err):
        if hasattr(stream, "reconfigure") and stream in (sys.stdout, sys.stderr):
            # etcd values are UTF-8 whatever the locale; line buffering keeps stdout and stderr in the order
            # Go (unbuffered) writes them when both go to one pipe.
            stream.reconfigure(encoding="utf-8", errors="replace", line_buffering=True)
    try:
        values, rest = parse(GLOBAL_FLAGS, words)
    except HelpRequested:
        values, rest = {"help": True}, []
    except UsageError as e:
        out.write(f"Incorrect Usage. {e}\n\n{_app_help()}")
        err.write(f"{e}\n")
        return EXIT_BAD_ARGS
    if values.get("version"):
        out.write(f"{PROG} version: {__version__}\nAPI version: 2\n")
        return 0
    if values.get("help") or not rest:
        out.write(_app_help())
        return 0
    if values["discovery-srv"]:
        err.write(f"{PROG}: --discovery-srv is not supported; give --endpoints\n")
        return EXIT_BAD_ARGS
    name, words = rest[0], rest[1:]
    if name in ("help", "h"):
        return _help(words, out, err)
    cmd = APP.find(name)
    if cmd is None:
        return _no_topic(err, name)
    ctx = k.Ctx(_options(values), out, err, stdin or sys.stdin)
    try:
        return _run_command(cmd, f"{PROG} {cmd.name}", words, ctx)
    except Exit as e:
        return e.code
    except KeyboardInterrupt:  # the watches exit 0 themselves; elsewhere Ctrl+C kills etcdctl (128 + SIGINT)
        return 130
    finally:
        for stream in (out, err):
            stream.flush()


if __name__ == "__main__":
    sys.exit(main())
