"""pyetcdctl's auth commands: auth enable|disable, user add|get|list|remove|grant|revoke|passwd,
role add|get|list|remove|grant|revoke, worded as etcdctl v2 (etcd 3.4) words them.

Each checks what it can without the cluster first (flags, then the name), then connects (and syncs, and
asks for the --username password if none was given), then asks for a new password where one is needed
("New password: ", the same prompt as --username's), then makes its requests under one --total-timeout.
Any failure prints the bare error text (etcd's own "message" for a refused change) and exits 1.
Against etcd 3.4, `user add` of an existing user changes its password and says "created"; `role add`
first looks the role up and refuses an existing one ("Role r already exists").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..client.auth import READ, READWRITE, WRITE, AuthClient, Role
from ..client.v2 import ClientError, KeysClient, canonical_path
from .ctl_conn import Conn, Exit, PasswordError
from .ctl_keys import Ctx
from .ctl_output import CtlClusterError, DeadlineExceeded, error_text

T = TypeVar("T")
_Failure = (ClientError, CtlClusterError, DeadlineExceeded)


def _die(ctx: Ctx, text: str) -> Exit:
    ctx.err.write(text + "\n")
    return Exit(1)


def _connect(ctx: Ctx) -> Conn:
    """etcdctl's mustNewAuth*API: mustNewClient, then (with --debug) the endpoints once more."""
    conn = ctx.connect()
    if ctx.opts.debug:
        ctx.err.write(f"Cluster-Endpoints: {', '.join(conn.endpoints)}\n")
    return conn


def _named(ctx: Ctx, args: list[str], what: str) -> tuple[Conn, str]:
    """etcdctl's mustUserAPIAndName / mustRoleAPIAndName: exactly one argument, then connect."""
    if len(args) != 1:
        raise _die(ctx, f"Please provide a {what}")
    return _connect(ctx), args[0]


def _no_args(ctx: Ctx, args: list[str]) -> Conn:
    if args:
        raise _die(ctx, "No arguments accepted")
    return _connect(ctx)


class _Session:
    """The requests of one command: one --total-timeout for all of them (etcdctl's deferred cancel)."""

    def __init__(self, ctx: Ctx, conn: Conn) -> None:
        self.ctx = ctx
        self.conn = conn
        self.deadline = conn.deadline()

    def call(self, op: Callable[[AuthClient, float | None], T]) -> T:
        def run(client: KeysClient, timeout: float | None) -> T:
            return op(AuthClient(client), timeout)

        try:
            return self.conn.do(run, self.deadline)
        except _Failure as e:
            raise _die(self.ctx, error_text(e)) from None


def _new_password(ctx: Ctx) -> str:
    try:
        return ctx.ask("New password: ")
    except PasswordError as e:
        raise _die(ctx, f"Error reading password: {e}") from None


# ---- auth ----------------------------------------------------------------------------------------


def _enable_disable(ctx: Ctx, args: list[str], enable: bool) -> int:
    s = _Session(ctx, _no_args(ctx, args))
    if enable:
        s.call(lambda a, t: a.enable(timeout=t))
    else:
        s.call(lambda a, t: a.disable(timeout=t))
    ctx.out.write("Authentication Enabled\n" if enable else "Authentication Disabled\n")
    return 0


def cmd_auth_enable(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    return _enable_disable(ctx, args, True)


def cmd_auth_disable(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    return _enable_disable(ctx, args, False)


# ---- users ---------------------------------------------------------------------------------------


def cmd_user_list(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    users = _Session(ctx, _no_args(ctx, args)).call(lambda a, t: a.list_users(timeout=t))
    ctx.out.write("".join(f"{u}\n" for u in users))
    return 0


def cmd_user_add(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn, arg = _named(ctx, args, "username")
    s = _Session(ctx, conn)
    user, colon, password = arg.partition(":")
    if not colon:
        password = _new_password(ctx)
    s.call(lambda a, t: a.add_user(user, password, timeout=t))
    ctx.out.write(f"User {user} created\n")
    return 0


def cmd_user_remove(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn, user = _named(ctx, args, "username")
    _Session(ctx, conn).call(lambda a, t: a.remove_user(user, timeout=t))
    ctx.out.write(f"User {user} removed\n")
    return 0


def cmd_user_passwd(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn, user = _named(ctx, args, "username")
    s = _Session(ctx, conn)
    password = _new_password(ctx)
    s.call(lambda a, t: a.change_password(user, password, timeout=t))
    ctx.out.write("Password updated\n")
    return 0


def _user_grant_revoke(ctx: Ctx, v: dict[str, Any], args: list[str], grant: bool) -> int:
    roles: list[str] = v["roles"]
    if not roles:
        raise _die(ctx, "No roles specified; please use `--roles`")
    conn, user = _named(ctx, args, "username")
    if grant:
        _Session(ctx, conn).call(lambda a, t: a.grant_user(user, roles, timeout=t))
    else:
        _Session(ctx, conn).call(lambda a, t: a.revoke_user(user, roles, timeout=t))
    ctx.out.write(f"User {user} updated\n")
    return 0


def cmd_user_grant(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    return _user_grant_revoke(ctx, v, args, True)


def cmd_user_revoke(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    return _user_grant_revoke(ctx, v, args, False)


def cmd_user_get(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn, name = _named(ctx, args, "username")
    user = _Session(ctx, conn).call(lambda a, t: a.get_user(name, timeout=t))
    ctx.out.write(f"User: {user.user}\nRoles: {' '.join(user.roles or [])}\n")
    return 0


# ---- roles ---------------------------------------------------------------------------------------


def cmd_role_list(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    roles = _Session(ctx, _no_args(ctx, args)).call(lambda a, t: a.list_roles(timeout=t))
    ctx.out.write("".join(f"{r}\n" for r in roles))
    return 0


def cmd_role_add(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn, role = _named(ctx, args, "role name")
    s = _Session(ctx, conn)
    try:  # any failure of the look-up is ignored, as etcdctl ignores it
        current: Role | None = s.conn.do(lambda c, t: AuthClient(c).get_role(role, timeout=t), s.deadline)
    except _Failure:
        current = None
    if current is not None:
        raise _die(ctx, f"Role {role} already exists")
    s.call(lambda a, t: a.add_role(role, timeout=t))
    ctx.out.write(f"Role {role} created\n")
    return 0


def cmd_role_remove(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn, role = _named(ctx, args, "role name")
    _Session(ctx, conn).call(lambda a, t: a.remove_role(role, timeout=t))
    ctx.out.write(f"Role {role} removed\n")
    return 0


def _role_grant_revoke(ctx: Ctx, v: dict[str, Any], args: list[str], grant: bool) -> int:
    path: str = v["path"]
    if not path:
        raise _die(ctx, "No path specified; please use `--path`")
    if canonical_path(path) != path:
        raise _die(ctx, f"Not canonical path; please use `--path={canonical_path(path)}`")
    chosen = [p for p, on in ((READ, v["read"]), (WRITE, v["write"]), (READWRITE, v["readwrite"])) if on]
    if len(chosen) != 1:
        raise _die(ctx, "Please specify exactly one of --read, --write or --readwrite")
    perm = chosen[0]
    conn, role = _named(ctx, args, "role name")
    s = _Session(ctx, conn)
    current = s.call(lambda a, t: a.get_role(role, timeout=t))
    if grant:
        new = s.call(lambda a, t: a.grant_role(role, [path], perm, timeout=t))
    else:
        new = s.call(lambda a, t: a.revoke_role(role, [path], perm, timeout=t))
    if new == current:  # Go's reflect.DeepEqual (a nil list is not an empty one); no newline, as etcdctl
        ctx.out.write("Role unchanged; already granted" if grant else "Role unchanged; already revoked")
    ctx.out.write(f"Role {role} updated\n")
    return 0


def cmd_role_grant(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    return _role_grant_revoke(ctx, v, args, True)


def cmd_role_revoke(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    return _role_grant_revoke(ctx, v, args, False)


def cmd_role_get(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    conn, name = _named(ctx, args, "role name")
    role = _Session(ctx, conn).call(lambda a, t: a.get_role(name, timeout=t))
    ctx.out.write(f"Role: {role.role}\nKV Read:\n" + "".join(f"\t{p}\n" for p in role.read or [])
                  + "KV Write:\n" + "".join(f"\t{p}\n" for p in role.write or []))
    return 0
