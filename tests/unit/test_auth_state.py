"""server/auth.py: etcd 3.4's v2 auth rules as an applied state machine (hashes are opaque strings here)."""

from __future__ import annotations

from pyetcd.server.auth import AuthError, AuthOp, AuthState, Outcome, User

H = "$2a$10$hash"


def ok(state: AuthState, op: AuthOp) -> tuple[Outcome, int]:
    out, writes = state.apply(op)
    assert isinstance(out, Outcome), out
    return out, writes


def refused(state: AuthState, op: AuthOp) -> tuple[int, str]:
    out, _ = state.apply(op)
    assert isinstance(out, AuthError), out
    return out.status, out.message


def with_root() -> AuthState:
    s = AuthState()
    ok(s, AuthOp("put_user", "root", H))
    return s


def test_first_change_makes_etcds_directories_then_one_write_each() -> None:
    s = AuthState()
    out, writes = ok(s, AuthOp("put_user", "root", H))
    assert (out.status, out.body, writes) == (201, {"user": "root", "roles": ["root"]}, 5)
    assert ok(s, AuthOp("put_user", "alice", H))[1] == 1
    assert s.user("root") == User("root", H, ["root"])


def test_enable_needs_root_and_creates_guest() -> None:
    s = AuthState()
    assert refused(s, AuthOp("enable")) == (409, "auth: No root user available, please create one")
    s = with_root()
    assert ok(s, AuthOp("enable"))[1] == 2  # the guest role, then "enabled"
    assert s.enabled and s.role("guest") is not None
    assert refused(s, AuthOp("enable")) == (409, "auth: already enabled")
    assert refused(s, AuthOp("delete_user", "root")) == (403, "auth: Cannot delete root user while auth is enabled.")
    assert ok(s, AuthOp("disable"))[1] == 1
    assert refused(s, AuthOp("disable")) == (409, "auth: already disabled")


def test_user_errors_in_etcds_words() -> None:
    s = with_root()
    assert refused(s, AuthOp("put_user", "bob", "")) == (400, "auth: Cannot create user bob with an empty password")
    assert refused(s, AuthOp("put_user", "root", H, roles=("x",))) == (409, "auth: User root already exists.")
    assert refused(s, AuthOp("put_user", "nobody", grant=("r",))) == (404, "auth: User nobody does not exist.")
    assert refused(s, AuthOp("delete_user", "nobody")) == (404, "auth: User nobody does not exist")
    ok(s, AuthOp("put_user", "bob", H, roles=("r1",)))
    assert refused(s, AuthOp("put_user", "bob", grant=("r1",))) == (409, "auth: Granting duplicate role r1 for user bob")
    assert refused(s, AuthOp("put_user", "bob", revoke=("r9",))) == (409, "auth: Revoking ungranted role r9 for user bob")
    assert refused(s, AuthOp("put_user", "bob")) == (
        400, "auth: User not updated. Use grant/revoke/password to update the user.")
    out, _ = ok(s, AuthOp("put_user", "bob", grant=("r0",)))
    assert out.body == {"user": "bob", "roles": ["r0", "r1"]}


def test_role_changes_and_root_role() -> None:
    s = with_root()
    assert refused(s, AuthOp("put_role", "root")) == (403, "auth: Cannot modify role root: is root role.")
    assert refused(s, AuthOp("delete_role", "root")) == (403, "auth: Cannot modify role root: is root role.")
    out, _ = ok(s, AuthOp("put_role", "app"))
    assert (out.status, out.body) == (201, {"role": "app", "permissions": {"kv": {"read": None, "write": None}}})
    assert refused(s, AuthOp("put_role", "app")) == (409, "auth: Role app already exists.")
    out, _ = ok(s, AuthOp("put_role", "app", grant_perms=(("/app/*", "/b"), None), update=True))
    assert out.body == {"role": "app", "permissions": {"kv": {"read": ["/app/*", "/b"], "write": []}}}
    assert refused(s, AuthOp("put_role", "app", grant_perms=(("/b",), None), update=True)) == (
        409, "auth: Granting duplicate read permission /b")
    out, _ = ok(s, AuthOp("put_role", "app", revoke_perms=(("/b", "/never"), None), update=True))
    assert out.body["permissions"] == {"kv": {"read": ["/app/*"], "write": []}}  # type: ignore[index]
    assert refused(s, AuthOp("put_role", "app", revoke_perms=(("/b",), None), update=True)) == (
        400, "auth: Role not updated. Use grant/revoke to update the role.")
    assert refused(s, AuthOp("put_role", "zzz", grant_perms=(("/x",), None), update=True)) == (
        404, "auth: Role zzz does not exist.")
    assert ok(s, AuthOp("delete_role", "app"))[0].status == 200
    assert refused(s, AuthOp("delete_role", "app")) == (404, "auth: Role app doesn't exist.")
    assert s.role_names() == ["root"]


def test_key_access_as_etcd_matches_patterns() -> None:
    s = with_root()
    ok(s, AuthOp("put_role", "app", permissions=(("/app/*", "/exact"), ("/app/w/*",))))
    ok(s, AuthOp("put_user", "bob", H, roles=("app",)))
    bob = s.user("bob")
    assert s.may(bob, "/app/x", False, False) and s.may(bob, "/app", False, False) is False
    assert s.may(bob, "/exact", False, False) and not s.may(bob, "/exact/child", False, False)
    assert not s.may(bob, "/exact", False, True)  # recursive needs a "*" pattern
    assert s.may(bob, "/app/w/k", True, False) and not s.may(bob, "/app/k", True, False)
    assert s.may(s.user("root"), "/anything", True, True)
    # The guest: everything once auth is enabled, until its role is changed.
    assert not s.may(None, "/k", False, False)
    ok(s, AuthOp("enable"))
    assert s.may(None, "/k", True, False)
    ok(s, AuthOp("put_role", "guest", revoke_perms=(("/*",), ("/*",)), update=True))
    assert not s.may(None, "/k", False, False)


def test_snapshot_and_op_round_trips() -> None:
    s = with_root()
    ok(s, AuthOp("put_role", "app", permissions=(("/a/*",), None)))
    ok(s, AuthOp("enable"))
    again = AuthState.decode(s.encode())
    assert (again.users, again.roles, again.enabled, again.made) == (s.users, s.roles, True, True)
    assert AuthState.decode(None) == AuthState()
    op = AuthOp("put_role", "x", grant_perms=(("/a",), None), revoke_perms=(None, ("/b",)), update=True)
    assert AuthOp.decode(op.encode()) == op
    op = AuthOp("put_user", "u", H, roles=None, grant=("a",), revoke=("b",))
    assert AuthOp.decode(op.encode()) == op
