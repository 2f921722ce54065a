"""etcd 3.4's v2 auth API (/v2/auth/enable, /users, /roles) and its credential checks, as pure functions.

Who asks: the runtime verifies the HTTP Basic credentials (bcrypt, off the loop, cached) before a request
is routed, and hands in an Identity: whether an Authorization header came, and the verified user (None
when the header was malformed, the user unknown or the password wrong). The checks are etcd's:
- keys: no Authorization header -> the guest role decides; a header that does not verify -> refused
  (401, etcd error 110); else any of the user's roles granting the key (recursive requests need a "*"
  pattern covering the prefix);
- members: writes need the root role (401 {"message": "Insufficient credentials"});
- auth: everything needs the root role, except reading /v2/auth/enable.
Reads answer from this member's replicated AuthState; changes become one AUTH proposal each
(ProposeAuth; a password is bcrypt-hashed by the runtime before proposing).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, replace

from ..server.auth import AuthError, AuthOp, AuthState, Outcome, Perms, User
from ..store.event import dump_json

Headers = list[tuple[bytes, bytes]]
_JSON_CT = (b"Content-Type", b"application/json")


@dataclass(frozen=True, slots=True)
class Identity:
    present: bool  # an Authorization header came
    user: User | None  # the verified user (None: no header, or it did not verify)


NOBODY = Identity(False, None)


def authorization(headers: Headers) -> bytes | None:
    """The Authorization header's value (the first one, as Go reads it), or None."""
    for k, v in headers:
        if k.lower() == b"authorization":
            return v
    return None


def basic_credentials(value: bytes | None) -> tuple[str, str] | None | bool:
    """(user, password) from an Authorization value as Go's Request.BasicAuth reads it; None when there
    is none; False when it is not usable Basic credentials."""
    if value is None or value == b"":
        return None
    if value[:6].lower() != b"basic ":
        return False
    try:
        decoded = base64.b64decode(value[6:], validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else False


@dataclass(frozen=True, slots=True)
class ProposeAuth:
    """A change for the log; `password` (if any) must be hashed into op.password_hash first."""

    op: AuthOp
    password: str = ""

    def with_hash(self, password_hash: str) -> ProposeAuth:
        return ProposeAuth(replace(self.op, password_hash=password_hash))


def _error(status: int, message: str, headers: Headers) -> tuple[int, Headers, bytes]:
    """httptypes.HTTPError: {"message": ...}, compact, no newline."""
    return status, [_JSON_CT, *headers], dump_json({"message": message})[:-1]  # Go sorts header names


NO_AUTH = _error(401, "Insufficient credentials", [])


class AuthApi:
    def __init__(self, cluster_id: bytes) -> None:
        self.cid = (b"X-Etcd-Cluster-Id", cluster_id)

    def handle(self, state: AuthState, method: str, path: str, body: bytes,
               who: Identity) -> tuple[int, Headers, bytes] | ProposeAuth:
        rest = path[len("/v2/auth"):]
        if rest == "/enable":
            return self._enable(state, method, who)
        kind = rest[1:6]
        if kind not in ("users", "roles") or rest[6:7] not in ("", "/"):
            return 404, [(b"Content-Type", b"text/plain; charset=utf-8"), (b"X-Content-Type-Options", b"nosniff")], \
                b"404 page not found\n"
        parts = [p for p in rest.split("/") if p]  # etcd splits path.Clean(rest): /users/ is the list
        if len(parts) == 1:
            if method != "GET":
                return 405, [(b"Allow", b"GET"), (b"Content-Type", b"text/plain; charset=utf-8"),
                             (b"X-Content-Type-Options", b"nosniff")], b"Method Not Allowed\n"
            if not self._root(state, who):
                return NO_AUTH
            return self._list_users(state) if kind == "users" else self._list_roles(state)
        if len(parts) != 2:
            return _error(400, "Invalid path", [])
        name = parts[1]
        if method not in ("GET", "PUT", "DELETE"):
            return 405, [(b"Allow", b"GET,PUT,DELETE"), (b"Content-Type", b"text/plain; charset=utf-8"),
                         (b"X-Content-Type-Options", b"nosniff")], b"Method Not Allowed\n"
        if not self._root(state, who):
            return NO_AUTH
        if kind == "users":
            return self._user(state, method, name, body)
        return self._role(state, method, name, body)

    def _root(self, state: AuthState, who: Identity) -> bool:
        return not state.enabled or state.is_root(who.user)

    # ---- /v2/auth/enable -----------------------------------------------------------------------

    def _enable(self, state: AuthState, method: str, who: Identity) -> tuple[int, Headers, bytes] | ProposeAuth:
        if method not in ("GET", "PUT", "DELETE"):
            return 405, [(b"Allow", b"GET,PUT,DELETE"), (b"Content-Type", b"text/plain; charset=utf-8"),
                         (b"X-Content-Type-Options", b"nosniff")], b"Method Not Allowed\n"
        if method != "GET" and not self._root(state, who):
            return NO_AUTH
        if method == "GET":
            return 200, [_JSON_CT, self.cid], dump_json({"enabled": state.enabled})
        return ProposeAuth(AuthOp("enable" if method == "PUT" else "disable"))

    # ---- users ---------------------------------------------------------------------------------

    def _list_users(self, state: AuthState) -> tuple[int, Headers, bytes]:
        users = [state.user_json(u, False) for u in (state.user(n) for n in state.user_names()) if u]
        return 200, [_JSON_CT, self.cid], dump_json({"users": users or None})

    def _user(self, state: AuthState, method: str, name: str, body: bytes) -> tuple[int, Headers, bytes] | ProposeAuth:
        headers = [self.cid]
        if method == "GET":
            u = state.user(name)
            if u is None:
                return _error(404, f"auth: User {name} does not exist.", headers)
            try:
                return 200, [_JSON_CT, *headers], dump_json(state.user_json(u, True))
            except AuthError as e:
                return _error(e.status, e.message, headers)
        if method == "DELETE":
            return ProposeAuth(AuthOp("delete_user", name))
        doc = _decode(body)
        fields = _user_fields(doc)
        if fields is None:
            return _error(400, "Invalid JSON in request body.", headers)
        user, password, roles, grant, revoke = fields
        if user != name:
            return _error(400, "User JSON name does not match the name in the URL", headers)
        if "\x00" in password:  # Go's bcrypt takes it; the bcrypt library pyetcd uses cannot (C strings)
            return _error(400, "auth: a password may not contain a NUL byte in pyetcd", headers)
        if (grant or revoke) and roles:
            return _error(400, "User JSON contains both roles and grant/revoke", headers)
        op = AuthOp("put_user", name, roles=None if roles is None else tuple(roles), grant=tuple(grant or ()),
                    revoke=tuple(revoke or ()))
        return ProposeAuth(op, password)

    # ---- roles ---------------------------------------------------------------------------------

    def _list_roles(self, state: AuthState) -> tuple[int, Headers, bytes]:
        roles = [r.to_json_obj() for r in (state.role(n) for n in state.role_names()) if r]
        return 200, [_JSON_CT, self.cid], dump_json({"roles": roles})

    def _role(self, state: AuthState, method: str, name: str, body: bytes) -> tuple[int, Headers, bytes] | ProposeAuth:
        headers = [self.cid]
        if method == "GET":
            r = state.role(name)
            if r is None:
                return _error(404, f"auth: Role {name} does not exist.", headers)
            return 200, [_JSON_CT, *headers], dump_json(r.to_json_obj())
        if method == "DELETE":
            return ProposeAuth(AuthOp("delete_role", name))
        fields = _role_fields(_decode(body))
        if fields is None:
            return _error(400, "Invalid JSON in request body.", headers)
        role, perms, grant, revoke = fields
        if role != name:
            return _error(400, "Role JSON name does not match the name in the URL", headers)
        if _empty(grant) and _empty(revoke):
            return ProposeAuth(AuthOp("put_role", name, permissions=perms))
        if not _empty(perms):
            return _error(400, "Role JSON contains both permissions and grant/revoke", headers)
        return ProposeAuth(AuthOp("put_role", name, grant_perms=grant, revoke_perms=revoke, update=True))

    # ---- answers to applied changes ------------------------------------------------------------

    def render(self, result: object) -> tuple[int, Headers, bytes]:
        headers = [self.cid]
        if isinstance(result, AuthError):
            return _error(result.status, result.message, headers)
        assert isinstance(result, Outcome)
        body = b"" if result.body is None else dump_json(result.body)
        return result.status, [_JSON_CT, *headers], body


# ---- Go's json.Decoder into etcd's structs ----------------------------------------------------------


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _decode(body: bytes) -> object:
    """The first JSON value of the body (Go's Decoder ignores what follows); _BAD if there is none.
    As Go decodes: JSON null into a struct is nothing at all (an empty object); invalid UTF-8 and lone
    surrogate escapes become U+FFFD."""
    try:
        text = body.decode("utf-8", "replace")
        value = json.JSONDecoder().raw_decode(text.lstrip(" \t\r\n"))[0]
    except ValueError:
        return _BAD
    return {} if value is None else _go_strings(value)


def _go_strings(value: object) -> object:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_go_strings(v) for v in value]
    if isinstance(value, dict):
        return {_go_strings(k): _go_strings(v) for k, v in value.items()}  # type: ignore[misc]
    return value


_BAD = object()


def _field(doc: dict[str, object], name: str) -> object:
    """Go matches JSON keys to struct fields case-insensitively (an exact match first)."""
    if name in doc:
        return doc[name]
    for k, v in doc.items():
        if k.lower() == name:
            return v
    return None


def _strings(value: object) -> list[str] | None | object:
    """A []string as Go decodes it: null is nil, a null element is ""."""
    if value is None:
        return None
    if isinstance(value, list) and all(x is None or isinstance(x, str) for x in value):
        return ["" if x is None else x for x in value]
    return _BAD


def _user_fields(doc: object) -> tuple[str, str, list[str] | None, list[str] | None, list[str] | None] | None:
    if not isinstance(doc, dict):
        return None
    user, password = _field(doc, "user"), _field(doc, "password")
    lists = [_strings(_field(doc, k)) for k in ("roles", "grant", "revoke")]
    if not isinstance(user or "", str) or not isinstance(password or "", str) or _BAD in lists:
        return None
    return (user or "", password or "", *lists)  # type: ignore[return-value]


def _perms(value: object) -> Perms | None | object:
    """A Permissions object {"kv": {"read": [...], "write": [...]}}; None when absent (a nil pointer)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return _BAD
    kv = _field(value, "kv")
    if kv is None:
        return (None, None)
    if not isinstance(kv, dict):
        return _BAD
    read, write = _strings(_field(kv, "read")), _strings(_field(kv, "write"))
    if read is _BAD or write is _BAD:
        return _BAD
    return (None if read is None else tuple(read), None if write is None else tuple(write))  # type: ignore[arg-type]


def _role_fields(doc: object) -> tuple[str, Perms | None, Perms | None, Perms | None] | None:
    if not isinstance(doc, dict):
        return None
    role = _field(doc, "role")
    perms, grant, revoke = (_perms(_field(doc, k)) for k in ("permissions", "grant", "revoke"))
    if not isinstance(role or "", str) or _BAD in (perms, grant, revoke):
        return None
    return role or "", perms or (None, None), grant, revoke  # type: ignore[return-value]


def _empty(p: Perms | None) -> bool:
    return p is None or (not p[0] and not p[1])
