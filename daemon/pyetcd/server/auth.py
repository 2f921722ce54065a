"""etcd's v2 auth as a replicated state machine (sans-IO): users, roles, key permissions, on/off.

etcd keeps these records as JSON values in a hidden tree of its v2 store ("/2/users/NAME",
"/2/roles/NAME", "/2/enabled") and changes them with ordinary store writes, each through Raft, each
consuming an etcd index. pyetcd keeps them in this object instead, changed by one Raft entry per
operation (an AUTH Request carrying an AuthOp) and checked when the entry is applied, so concurrent
changes cannot interleave as etcd's read-modify-write can. `apply` returns how many store writes etcd
would have made, and the caller consumes that many indexes, so X-Etcd-Index stays as etcd's: the first
change ever also creates etcd's three directories and the "enabled" record (four writes).

Passwords arrive here already hashed (bcrypt, by the proposing member); this module never sees one in
clear. Semantics follow etcd 3.4's v2auth: the root role is implicit and grants everything, the user
"root" always holds it; enabling auth needs a user "root" and creates the role "guest" with read and
write on "/*" unless it exists; a pattern ending in "*" matches keys with that prefix, any other pattern
matches one key exactly; a recursive request needs a "*" pattern covering its prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

ROOT = "root"
GUEST = "guest"
_ALL = ["/*"]


class AuthError(Exception):
    """A refused auth operation: HTTP status and etcd's message ("auth: ..." for the store's errors)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Role:
    name: str
    read: list[str] | None = None  # None: Go's nil slice, written as null
    write: list[str] | None = None

    def to_json_obj(self) -> dict[str, object]:
        return {"role": self.name, "permissions": {"kv": {"read": self.read, "write": self.write}}}

    def allows(self, key: str, write: bool, recursive: bool) -> bool:
        if self.name == ROOT:
            return True
        for pattern in (self.write if write else self.read) or ():
            if not pattern:
                continue
            if pattern[-1] == "*":
                if key.startswith(pattern[:-1]):
                    return True
            elif not recursive and key == pattern:
                return True
        return False


ROOT_ROLE = Role(ROOT, list(_ALL), list(_ALL))


@dataclass(slots=True)
class User:
    name: str
    password_hash: str
    roles: list[str] | None = None

    def with_root(self) -> User:
        """etcd attaches the root role to the user "root" whenever it reads it."""
        if self.name == ROOT and ROOT not in (self.roles or []):
            return User(self.name, self.password_hash, [*(self.roles or []), ROOT])
        return self


@dataclass(frozen=True, slots=True)
class AuthOp:
    """One change, as proposed (decided only when applied). kind: put_user, delete_user, put_role,
    delete_role, enable, disable. For put_user, `password_hash` is "" when none was given; `create`
    means the request named roles (etcd then creates, never updates)."""

    kind: str
    name: str = ""
    password_hash: str = ""
    roles: tuple[str, ...] | None = None
    grant: tuple[str, ...] = ()
    revoke: tuple[str, ...] = ()
    # put_role: the permissions to create the role with, or (update) the grant and revoke objects as
    # given: None when absent, else (read patterns or None, write patterns or None) as Go decodes them.
    permissions: tuple[tuple[str, ...] | None, tuple[str, ...] | None] | None = None
    grant_perms: tuple[tuple[str, ...] | None, tuple[str, ...] | None] | None = None
    revoke_perms: tuple[tuple[str, ...] | None, tuple[str, ...] | None] | None = None
    update: bool = False  # put_role: grant/revoke (else create)

    def encode(self) -> str:
        return json.dumps([self.kind, self.name, self.password_hash, _list(self.roles), list(self.grant),
                           list(self.revoke), _perms_out(self.permissions), _perms_out(self.grant_perms),
                           _perms_out(self.revoke_perms), self.update], separators=(",", ":"))

    @staticmethod
    def decode(text: str) -> AuthOp:
        (kind, name, pw, roles, grant, revoke, perms, gperms, rperms, update) = json.loads(text)
        return AuthOp(kind, name, pw, _tuple(roles), tuple(grant), tuple(revoke), _perms_in(perms),
                      _perms_in(gperms), _perms_in(rperms), update)


Perms = tuple[tuple[str, ...] | None, tuple[str, ...] | None]


def _perms_out(p: Perms | None) -> list[list[str] | None] | None:
    return None if p is None else [_list(p[0]), _list(p[1])]


def _perms_in(p: list[list[str] | None] | None) -> Perms | None:
    return None if p is None else (_tuple(p[0]), _tuple(p[1]))


def _list(t: tuple[str, ...] | None) -> list[str] | None:
    return None if t is None else list(t)


def _tuple(v: list[str] | None) -> tuple[str, ...] | None:
    return None if v is None else tuple(v)


@dataclass(slots=True)
class Outcome:
    """What an applied AuthOp answers: status and body object (None: empty body)."""

    status: int
    body: object = None


@dataclass
class AuthState:
    users: dict[str, User] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    enabled: bool = False
    made: bool = False  # etcd's /2, /2/users/, /2/roles/ and /2/enabled exist
    generation: int = 0  # bumped by every change: credential caches keyed on it

    # ---- reading (local, as etcd reads its own store) ------------------------------------------

    def user(self, name: str) -> User | None:
        u = self.users.get(name)
        return None if u is None else u.with_root()

    def role(self, name: str) -> Role | None:
        return ROOT_ROLE if name == ROOT else self.roles.get(name)

    def role_names(self) -> list[str]:
        return sorted([ROOT, *self.roles])

    def user_names(self) -> list[str]:
        return sorted(self.users)

    def user_json(self, u: User, strict: bool) -> dict[str, object]:
        """{"user", "roles": [role objects]} as etcd lists users; `strict`: a missing role is an error
        (GET of one user) rather than skipped (the list)."""
        roles = []
        for name in u.roles or []:
            r = self.role(name)
            if r is None:
                if strict:
                    raise AuthError(404, f"auth: Role {name} does not exist.")
                continue
            roles.append(r.to_json_obj())
        out: dict[str, object] = {"user": u.name}
        if roles:
            out["roles"] = roles
        return out

    def may(self, user: User | None, key: str, write: bool, recursive: bool) -> bool:
        """Key access for a verified user, or for the guest (user None) on one key as etcd checks it."""
        if user is None:
            guest = self.roles.get(GUEST)
            return guest is not None and guest.allows(key, write, False)
        for name in user.roles or []:
            r = self.role(name)
            if r is not None and r.allows(key, write, recursive):
                return True
        return False

    @staticmethod
    def is_root(user: User | None) -> bool:
        return user is not None and ROOT in (user.roles or [])

    # ---- changing (one applied Raft entry each) ------------------------------------------------

    def apply(self, op: AuthOp) -> tuple[Outcome | AuthError, int]:
        """(the answer, how many store writes etcd would have made)."""
        self._writes = 0
        try:
            outcome = getattr(self, "_" + op.kind)(op)
        except AuthError as e:
            return e, self._writes
        self.generation += 1
        return outcome, self._writes

    def _resource(self) -> None:
        """etcd creates its auth directories before its first resource write."""
        if not self.made:
            self.made = True
            self._writes += 4

    def _put_user(self, op: AuthOp) -> Outcome:
        if op.grant or op.revoke:
            return Outcome(200, self._update_user(op))
        if op.roles:
            return Outcome(200, self._create_user(op))
        if op.name in self.users:
            return Outcome(200, self._update_user(op))
        return Outcome(201, self._create_user(op))

    def _create_user(self, op: AuthOp) -> dict[str, object]:
        roles = list(op.roles) if op.roles is not None else None
        if op.name == ROOT and ROOT not in (roles or []):
            roles = [*(roles or []), ROOT]
        if not op.password_hash:
            raise AuthError(400, f"auth: Cannot create user {op.name} with an empty password")
        self._resource()
        if op.name in self.users:
            raise AuthError(409, f"auth: User {op.name} already exists.")
        self.users[op.name] = User(op.name, op.password_hash, roles)
        self._writes += 1
        return {"user": op.name, "roles": roles}

    def _update_user(self, op: AuthOp) -> dict[str, object]:
        old = self.user(op.name)
        if old is None:
            raise AuthError(404, f"auth: User {op.name} does not exist.")  # getUser's own error
        current = list(dict.fromkeys(old.roles or []))  # Go merges into a set: repeated roles collapse
        for g in op.grant:
            if g in current:
                raise AuthError(409, f"auth: Granting duplicate role {g} for user {op.name}")
            current.append(g)
        for r in op.revoke:
            if r not in current:
                raise AuthError(409, f"auth: Revoking ungranted role {r} for user {op.name}")
            current.remove(r)
        roles = sorted(current)
        new = User(op.name, op.password_hash or old.password_hash, roles)
        if new.password_hash == old.password_hash and roles == old.roles:  # Go's reflect.DeepEqual
            raise AuthError(400, "auth: User not updated. Use grant/revoke/password to update the user.")
        self._resource()
        self.users[op.name] = new
        self._writes += 1
        return {"user": op.name, "roles": roles}

    def _delete_user(self, op: AuthOp) -> Outcome:
        if self.enabled and op.name == ROOT:
            raise AuthError(403, "auth: Cannot delete root user while auth is enabled.")
        self._resource()
        if self.users.pop(op.name, None) is None:
            raise AuthError(404, f"auth: User {op.name} does not exist")
        self._writes += 1
        return Outcome(200)

    def _put_role(self, op: AuthOp) -> Outcome:
        if op.name == ROOT:
            raise AuthError(403, f"auth: Cannot modify role {ROOT}: is root role.")
        if not op.update:
            self._resource()
            if op.name in self.roles:
                raise AuthError(409, f"auth: Role {op.name} already exists.")
            read, write = op.permissions or (None, None)
            role = Role(op.name, _list(read), _list(write))
            self.roles[op.name] = role
            self._writes += 1
            return Outcome(201, role.to_json_obj())
        old = self.roles.get(op.name)
        if old is None:
            raise AuthError(404, f"auth: Role {op.name} does not exist.")  # getRole's own error
        read, write = old.read, old.write
        if op.grant_perms is not None:  # Go's Grant: both lists rebuilt (sorted, never nil) when present
            read, write = _granted(read, op.grant_perms[0], "read"), _granted(write, op.grant_perms[1], "write")
        if op.revoke_perms is not None:  # revoking what was not granted is not an error
            gone_read, gone_write = op.revoke_perms
            read = sorted({p for p in read or () if p not in (gone_read or ())})
            write = sorted({p for p in write or () if p not in (gone_write or ())})
        new = Role(op.name, read, write)
        if new == old:
            raise AuthError(400, "auth: Role not updated. Use grant/revoke to update the role.")
        self._resource()
        self.roles[op.name] = new
        self._writes += 1
        return Outcome(200, new.to_json_obj())

    def _delete_role(self, op: AuthOp) -> Outcome:
        if op.name == ROOT:
            raise AuthError(403, f"auth: Cannot modify role {ROOT}: is root role.")
        self._resource()
        if self.roles.pop(op.name, None) is None:
            raise AuthError(404, f"auth: Role {op.name} doesn't exist.")
        self._writes += 1
        return Outcome(200)

    def _enable(self, op: AuthOp) -> Outcome:
        if self.enabled:
            raise AuthError(409, "auth: already enabled")
        if ROOT not in self.users:
            raise AuthError(409, "auth: No root user available, please create one")
        if GUEST not in self.roles:
            self._resource()
            self.roles[GUEST] = Role(GUEST, list(_ALL), list(_ALL))
            self._writes += 1
        self._resource()
        self.enabled = True
        self._writes += 1
        return Outcome(200)

    def _disable(self, op: AuthOp) -> Outcome:
        if not self.enabled:
            raise AuthError(409, "auth: already disabled")
        self._resource()
        self.enabled = False
        self._writes += 1
        return Outcome(200)

    # ---- snapshots -----------------------------------------------------------------------------

    def encode(self) -> dict[str, object]:
        return {"enabled": self.enabled, "made": self.made,
                "users": [[u.name, u.password_hash, u.roles] for u in self.users.values()],
                "roles": [[r.name, r.read, r.write] for r in self.roles.values()]}

    @staticmethod
    def decode(obj: dict[str, object] | None) -> AuthState:
        if not obj:
            return AuthState()
        state = AuthState(enabled=bool(obj["enabled"]), made=bool(obj["made"]))
        for name, pw, roles in obj["users"]:  # type: ignore[attr-defined]
            state.users[name] = User(name, pw, roles)
        for name, read, write in obj["roles"]:  # type: ignore[attr-defined]
            state.roles[name] = Role(name, read, write)
        return state


def _granted(current: list[str] | None, grant: tuple[str, ...] | None, what: str) -> list[str]:
    out = set(current or ())
    for p in grant or ():
        if p in out:
            raise AuthError(409, f"auth: Granting duplicate {what} permission {p}")
        out.add(p)
    return sorted(out)
