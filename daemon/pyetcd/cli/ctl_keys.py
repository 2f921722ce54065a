"""pyetcdctl's key commands: get, set, mk, mkdir, setdir, update, updatedir, rm, rmdir, ls, watch,
exec-watch. Each does what the etcdctl v2 command of the same name does, in the same order: connect (and
sync) first, then check arguments, then one request, then print (see ctl_output for the formats).

Exit codes: 1 for bad arguments and for `get` on a directory, 4 for any failed request (an etcd error,
an unreachable cluster, a timeout), 0 otherwise.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..client.v2 import ClientError, KeysClient, Response
from .ctl_conn import EXIT_BAD_ARGS, EXIT_SERVER_ERROR, Conn, Exit, GlobalOptions, ask_password
from .ctl_output import CtlClusterError, DeadlineExceeded, endpoint_error, handle_error, print_response
from .sigint import sigint_raises

Op = Callable[[KeysClient, float | None], Response]


@dataclass
class Ctx:
    """What a command runs with: options, streams, environment."""

    opts: GlobalOptions
    out: TextIO
    err: TextIO
    stdin: TextIO
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def connect(self, sync: bool = True) -> Conn:
        conn = Conn(self.opts, self.err, self.env, ask=self.ask)
        conn.sync(skip=not sync)
        return conn

    def ask(self, prompt: str) -> str:
        """etcdctl's password prompt on this command's streams (ctl_conn.ask_password)."""
        return ask_password(prompt, self.out, self.stdin)

    def fail(self, e: BaseException, code: int = EXIT_SERVER_ERROR) -> Exit:
        handle_error(e, self.err)
        return Exit(code)

    def bad_args(self, message: str) -> Exit:
        self.err.write(f"Error:  {message}\n")
        return Exit(EXIT_BAD_ARGS)

    def call(self, conn: Conn, op: Op, *, one_shot: bool = False, watch: bool = False) -> Response:
        """One keys request; any failure ends the command with exit 4 (etcdctl's ExitServerError).
        one_shot: Go's client does not fail over for a create (prevExist=false); the first endpoint's
        own error is reported."""
        try:
            return conn.do(op, None if watch else conn.deadline(), one_shot=one_shot, header_timeout=not watch)
        except CtlClusterError as e:
            if one_shot and len(e.errors) == 1:
                self.err.write(f"Error:  {endpoint_error(*e.errors[0])}\n")
                raise Exit(EXIT_SERVER_ERROR) from None
            raise self.fail(e) from None
        except (ClientError, DeadlineExceeded) as e:
            raise self.fail(e) from None

    def show(self, resp: Response) -> None:
        print_response(resp, self.opts.output, self.out, self.err)


def _key(ctx: Ctx, args: list[str]) -> str:
    if not args:
        raise ctx.bad_args("key required")
    return args[0]


def _value(ctx: Ctx, args: list[str]) -> str:
    """etcdctl's argOrStdin: the second word, else all of stdin (nothing there is an error)."""
    if len(args) > 1:
        return args[1]
    try:  # bytes as they come (Go reads bytes), not decoded with the locale's codec
        raw = getattr(ctx.stdin, "buffer", None)
        data = raw.read().decode("utf-8", "replace") if raw is not None else ctx.stdin.read()
    except (OSError, ValueError):
        data = ""
    if not data:
        raise ctx.bad_args("value required")
    return data


def _ttl(v: dict[str, Any]) -> int | None:
    return v["ttl"] if v["ttl"] > 0 else None  # Go sends a ttl only when positive


# ---- commands ----------------------------------------------------------------------------------


def cmd_get(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn = ctx.connect()
    key = _key(ctx, args)
    resp = ctx.call(conn, lambda c, t: c.get(key, sorted=v["sort"], quorum=v["quorum"], timeout=t))
    if resp.node.get("dir") is True:
        ctx.err.write(f"{resp.node.get('key', '')}: is a directory\n")
        return 1
    ctx.show(resp)
    return 0


def cmd_set(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn = ctx.connect()
    key = _key(ctx, args)
    value = _value(ctx, args)
    resp = ctx.call(conn, lambda c, t: c.set(key, value, ttl=_ttl(v), prev_value=v["swap-with-value"] or None,
                                             prev_index=v["swap-with-index"] or None, timeout=t))
    ctx.show(resp)
    return 0


def cmd_mk(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn = ctx.connect()
    key = _key(ctx, args)
    value = _value(ctx, args)
    if v["in-order"]:
        resp = ctx.call(conn, lambda c, t: c.create_in_order(key, value, ttl=_ttl(v), timeout=t))
    else:
        resp = ctx.call(conn, lambda c, t: c.create(key, value, ttl=_ttl(v), timeout=t), one_shot=True)
    ctx.show(resp)
    return 0


def _dir_command(prev_exist: bool | None) -> Callable[[Ctx, dict[str, Any], list[str]], int]:
    """mkdir (prevExist=false), setdir (no condition), updatedir (prevExist=true): quiet on success
    unless -o asks for more."""

    def run(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
        conn = ctx.connect()
        key = _key(ctx, args)
        resp = ctx.call(conn, lambda c, t: c.set(key, "", dir=True, prev_exist=prev_exist, ttl=_ttl(v), timeout=t),
                        one_shot=prev_exist is False)
        if ctx.opts.output != "simple":
            ctx.show(resp)
        return 0

    return run


cmd_mkdir = _dir_command(False)
cmd_setdir = _dir_command(None)
cmd_updatedir = _dir_command(True)


def cmd_update(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn = ctx.connect()
    key = _key(ctx, args)
    value = _value(ctx, args)
    resp = ctx.call(conn, lambda c, t: c.set(key, value, prev_exist=True, ttl=_ttl(v), timeout=t))
    ctx.show(resp)
    return 0


def cmd_rm(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn = ctx.connect()
    key = _key(ctx, args)
    resp = ctx.call(conn, lambda c, t: c.delete(key, recursive=v["recursive"], dir=v["dir"],
                                                prev_value=v["with-value"] or None,
                                                prev_index=v["with-index"] or None, timeout=t))
    if resp.node.get("dir") is not True or ctx.opts.output != "simple":
        ctx.show(resp)
    return 0


def cmd_rmdir(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn = ctx.connect()
    key = _key(ctx, args)
    resp = ctx.call(conn, lambda c, t: c.delete(key, dir=True, timeout=t))
    if resp.node.get("dir") is not True or ctx.opts.output != "simple":
        ctx.show(resp)
    return 0


def cmd_ls(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn = ctx.connect()
    key = args[0] if args else "/"
    resp = ctx.call(conn, lambda c, t: c.get(key, sorted=v["sort"], recursive=v["recursive"], quorum=v["quorum"],
                                             timeout=t))
    if ctx.opts.output != "simple":
        ctx.show(resp)
        return 0
    lines: list[str] = []
    if resp.node.get("dir") is not True:
        lines.append(str(resp.node.get("key", "")))

    def walk(nodes: Any) -> None:
        for n in nodes if isinstance(nodes, list) else []:
            if not isinstance(n, dict):
                continue
            key_text = str(n.get("key", ""))
            lines.append(key_text + "/" if n.get("dir") is True and v["p"] else key_text)
            walk(n.get("nodes"))

    walk(resp.node.get("nodes"))
    ctx.out.write("".join(line + "\n" for line in lines))
    return 0


# ---- watches -----------------------------------------------------------------------------------


def _events(ctx: Ctx, conn: Conn, key: str, after_index: int, recursive: bool) -> Iterator[Response]:
    """Go's httpWatcher: each answer's modifiedIndex + 1 is the next waitIndex."""
    wait_index = after_index + 1 if after_index > 0 else 0
    while True:
        resp = ctx.call(conn, lambda c, t, i=wait_index: c.get(key, wait=True, wait_index=i, recursive=recursive,
                                                               timeout=None), watch=True)
        modified = resp.node.get("modifiedIndex")
        wait_index = (modified if isinstance(modified, int) else 0) + 1
        yield resp


def cmd_watch(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn = ctx.connect()
    key = _key(ctx, args)
    try:
        with sigint_raises():  # etcdctl's signal.Notify(os.Interrupt): even if SIGINT was inherited ignored
            for resp in _events(ctx, conn, key, v["after-index"], v["recursive"]):
                if resp.node.get("dir") is True:
                    continue
                if v["recursive"]:
                    ctx.out.write(f"[{resp.action or ''}] {resp.node.get('key', '')}\n")
                ctx.show(resp)
                ctx.out.flush()
                if not v["forever"]:
                    return 0
    except KeyboardInterrupt:
        return 0  # etcdctl exits 0 on Ctrl+C
    return 0


def _watch_env(resp: Response) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ETCD_WATCH_ACTION=str(resp.action or ""), ETCD_WATCH_MODIFIED_INDEX=str(resp.node.get("modifiedIndex", 0)),
               ETCD_WATCH_KEY=str(resp.node.get("key", "")), ETCD_WATCH_VALUE=str(resp.node.get("value", "")))
    return env


def _exec_error(name: str, e: OSError) -> str:
    """Go's exec error for a command that cannot start (printed without a newline, as etcdctl does)."""
    if isinstance(e, FileNotFoundError) and "/" not in name:
        return f'exec: "{name}": executable file not found in $PATH'
    return f"fork/exec {name}: {(e.strerror or str(e)).lower()}"


def cmd_exec_watch(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn = ctx.connect()
    if len(args) < 2:
        raise ctx.bad_args("key and command to exec required")
    # The parser already dropped a `--`, so (as in etcdctl 3.4) the key is the last word unless a
    # literal `--` is still there after it.
    if "--" in args[1:]:
        key, command = args[0], args[2:]
    else:
        key, command = args[-1], args[:-1]
    children: list[subprocess.Popen[bytes]] = []
    try:
        with sigint_raises():  # as etcdctl's signal.Notify; the children get SIGINT's default (exec resets it)
            for resp in _events(ctx, conn, key, v["after-index"], v["recursive"]):
                if resp.node.get("dir") is True:
                    ctx.err.write(f"Ignored dir {resp.node.get('key', '')} change\n")
                    ctx.err.flush()
                    continue
                ctx.out.flush()
                try:  # not waited for: like etcdctl, the next event may run while this one still does
                    children.append(subprocess.Popen(command, env=_watch_env(resp)))
                except OSError as e:
                    ctx.err.write(_exec_error(command[0], e))
                    return 1
                children = [c for c in children if c.poll() is None]
    except KeyboardInterrupt:
        return 0
    return 0
