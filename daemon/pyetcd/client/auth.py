"""The v2 auth API (/v2/auth/enable, /users, /roles) over a KeysClient, as Go's client.AuthAPI,
AuthUserAPI and AuthRoleAPI (etcd 3.4) call and judge it.

Theory of operation: every call is one raw request through `KeysClient.request`, so endpoints, failover,
TLS, basic auth and timeouts are the keys client's. Request bodies are the JSON Go's encoder writes for
the client's User and Role types (a nil slice is `null`). Answers are judged as Go's client judges them:
* a status outside the call's expected set -> AuthError carrying etcd's {"message": ...} (an empty
  message if the body has none), except ListRoles, which says UnexpectedStatus ("unexpected status code
  401");
* a body that is not JSON -> GoJsonError with the words of Go's encoding/json.
User and role answers are decoded as Go's structs decode them, quirks included (see `User.from_json`).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

from .members import JSON_CONTENT_TYPE, UnexpectedStatus
from .v2 import DEFAULT, ClientError, KeysClient, Timeout

AUTH_PREFIX = "/v2/auth"
READ, WRITE, READWRITE = "read", "write", "readwrite"


class AuthError(ClientError):
    """etcd's {"message": ...} answer; str() is the message alone (may be empty), as Go's authError."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class GoJsonError(ClientError):
    """A body Go's json.Unmarshal refuses; str() is Go's error text."""


_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                             "\u2029": "\\u2029"})


def go_marshal(value: Any) -> bytes:
    """Compact JSON as Go's json.Marshal writes it (HTML-safe escapes)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_GO_ESCAPES).encode()


def _go_char(c: str) -> str:
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return "'" + json.dumps(c, ensure_ascii=False)[1:-1] + "'"


def go_unmarshal(data: bytes) -> Any:
    """json.Unmarshal's syntax checks, in its words for the usual cases."""
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise GoJsonError("invalid character in string literal") from None
    except json.JSONDecodeError as e:
        text = e.doc
        if not text.strip() or e.pos >= len(text):
            raise GoJsonError("unexpected end of JSON input") from None
        c = text[e.pos]
        if not text[:e.pos].strip():
            raise GoJsonError(f"invalid character {_go_char(c)} looking for beginning of value") from None
        if e.msg.startswith("Extra data"):
            raise GoJsonError(f"invalid character {_go_char(c)} after top-level value") from None
        raise GoJsonError(f"invalid character {_go_char(c)} in JSON") from None


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _auth_error(status: int, data: bytes) -> AuthError:
    body = go_unmarshal(data)
    if body is None:
        return AuthError(status, "")
    if not isinstance(body, dict):
        raise GoJsonError(f"json: cannot unmarshal {_type_name(body)} into Go value of type client.authError")
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise GoJsonError(f"json: cannot unmarshal {_type_name(message)} into Go struct field "
                          "authError.message of type string")
    return AuthError(status, message or "")


def _strings(value: Any) -> list[str] | None:
    """A Go []string field: None for null or absent (Go's nil slice), else the strings."""
    if not isinstance(value, list):
        return None
    return [v if isinstance(v, str) else "" for v in value]


@dataclass(frozen=True, slots=True)
class User:
    user: str
    roles: list[str] | None  # None: Go's nil slice

    @staticmethod
    def from_json(body: Any) -> User:
        """Go's modUser: decode into User{roles []string}; if that fails (etcd 3.4 answers role objects),
        decode again into UserRoles{roles []Role} and append their names to the roles the first pass
        left behind (one "" per role object: Go's decoder keeps the slot of a value it could not
        convert). `etcdctl user get` therefore prints "Roles:  root" against etcd 3.4."""
        if not isinstance(body, dict):
            raise GoJsonError(f"json: cannot unmarshal {_type_name(body)} into Go value of type client.User")
        raw = body.get("roles")
        roles = _strings(raw)
        name = body.get("user") if isinstance(body.get("user"), str) else ""
        if isinstance(raw, list) and any(not isinstance(r, str) for r in raw):
            if any(not isinstance(r, dict) and r is not None for r in raw):
                bad = next(r for r in raw if not isinstance(r, str))
                raise GoJsonError(f"json: cannot unmarshal {_type_name(bad)} into Go struct field "
                                  "User.roles of type string")
            roles = (roles or []) + [r.get("role") if isinstance(r, dict) and isinstance(r.get("role"), str)
                                     else "" for r in raw]
        return User(name, roles)


@dataclass(frozen=True, slots=True)
class Role:
    role: str
    read: list[str] | None  # permissions.kv.read; None: Go's nil slice
    write: list[str] | None
    grant: tuple[list[str] | None, list[str] | None] | None  # as sent back, if at all
    revoke: tuple[list[str] | None, list[str] | None] | None

    @staticmethod
    def from_json(body: Any) -> Role:
        if not isinstance(body, dict):
            raise GoJsonError(f"json: cannot unmarshal {_type_name(body)} into Go value of type client.Role")

        def kv(perms: Any) -> tuple[list[str] | None, list[str] | None]:
            inner = perms.get("kv") if isinstance(perms, dict) else None
            inner = inner if isinstance(inner, dict) else {}
            return _strings(inner.get("read")), _strings(inner.get("write"))

        read, write = kv(body.get("permissions"))
        grant = kv(body["grant"]) if isinstance(body.get("grant"), dict) else None
        revoke = kv(body["revoke"]) if isinstance(body.get("revoke"), dict) else None
        name = body.get("role") if isinstance(body.get("role"), str) else ""
        return Role(name, read, write, grant, revoke)


def _kv_body(prefixes: list[str], perm: str) -> dict[str, Any]:
    read = prefixes if perm in (READ, READWRITE) else None
    write = prefixes if perm in (WRITE, READWRITE) else None
    return {"kv": {"read": read, "write": write}}


class AuthClient:
    def __init__(self, client: KeysClient) -> None:
        self.client = client

    def _call(self, method: str, action: str, name: str = "", body: dict[str, Any] | None = None,
              timeout: Timeout = DEFAULT) -> tuple[int, bytes]:
        # Go's path.Join(base, "/v2/auth", action, name): cleaned, no trailing slash.
        path = posixpath.normpath(posixpath.join(AUTH_PREFIX, action, name.lstrip("/"))) if name else \
            f"{AUTH_PREFIX}/{action}"
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        payload = go_marshal(body) if body is not None else None
        status, _, data = self.client.request(method, path, body=payload,
                                              content_type=JSON_CONTENT_TYPE if payload is not None else None,
                                              timeout=timeout)
        return status, data

    # ---- enable / disable --------------------------------------------------------------------

    def enable(self, *, timeout: Timeout = DEFAULT) -> None:
        self._expect(*self._call("PUT", "enable", timeout=timeout), (200, 201))

    def disable(self, *, timeout: Timeout = DEFAULT) -> None:
        self._expect(*self._call("DELETE", "enable", timeout=timeout), (200, 201))

    @staticmethod
    def _expect(status: int, data: bytes, ok: tuple[int, ...]) -> bytes:
        if status not in ok:
            raise _auth_error(status, data)
        return data

    # ---- users -------------------------------------------------------------------------------

    def list_users(self, *, timeout: Timeout = DEFAULT) -> list[str]:
        body = go_unmarshal(self._expect(*self._call("GET", "users", timeout=timeout), (200,)))
        users = body.get("users") if isinstance(body, dict) else None
        return [u.get("user") if isinstance(u.get("user"), str) else "" for u in users or [] if isinstance(u, dict)]

    def add_user(self, user: str, password: str, *, timeout: Timeout = DEFAULT) -> None:
        body: dict[str, Any] = {"user": user, "password": password, "roles": None}
        if not password:
            del body["password"]  # omitempty
        self._expect(*self._call("PUT", "users", user, body, timeout=timeout), (200, 201))

    def remove_user(self, user: str, *, timeout: Timeout = DEFAULT) -> None:
        self._expect(*self._call("DELETE", "users", user, timeout=timeout), (200, 201))

    def _mod_user(self, method: str, user: str, body: dict[str, Any] | None, timeout: Timeout) -> User:
        return User.from_json(go_unmarshal(self._expect(*self._call(method, "users", user, body, timeout=timeout),
                                                        (200,))))

    def get_user(self, user: str, *, timeout: Timeout = DEFAULT) -> User:
        return self._mod_user("GET", user, None, timeout)

    def grant_user(self, user: str, roles: list[str], *, timeout: Timeout = DEFAULT) -> User:
        body = {"user": user, "roles": None, **({"grant": roles} if roles else {})}
        return self._mod_user("PUT", user, body, timeout)

    def revoke_user(self, user: str, roles: list[str], *, timeout: Timeout = DEFAULT) -> User:
        body = {"user": user, "roles": None, **({"revoke": roles} if roles else {})}
        return self._mod_user("PUT", user, body, timeout)

    def change_password(self, user: str, password: str, *, timeout: Timeout = DEFAULT) -> User:
        body: dict[str, Any] = {"user": user, "password": password, "roles": None}
        if not password:
            del body["password"]
        return self._mod_user("PUT", user, body, timeout)

    # ---- roles -------------------------------------------------------------------------------

    def list_roles(self, *, timeout: Timeout = DEFAULT) -> list[str]:
        status, data = self._call("GET", "roles", timeout=timeout)
        if status != 200:
            raise UnexpectedStatus(status)
        body = go_unmarshal(data)
        roles = body.get("roles") if isinstance(body, dict) else None
        out = []
        for r in roles or []:
            if isinstance(r, str):
                raise GoJsonError("json: cannot unmarshal string into Go struct field .roles of type client.Role")
            out.append(r.get("role") if isinstance(r, dict) and isinstance(r.get("role"), str) else "")
        return out

    def add_role(self, role: str, *, timeout: Timeout = DEFAULT) -> None:
        body = {"role": role, "permissions": {"kv": {"read": None, "write": None}}}
        self._expect(*self._call("PUT", "roles", role, body, timeout=timeout), (200, 201))

    def remove_role(self, role: str, *, timeout: Timeout = DEFAULT) -> None:
        self._expect(*self._call("DELETE", "roles", role, timeout=timeout), (200, 201))

    def _mod_role(self, method: str, role: str, body: dict[str, Any] | None, timeout: Timeout) -> Role:
        return Role.from_json(go_unmarshal(self._expect(*self._call(method, "roles", role, body, timeout=timeout),
                                                        (200,))))

    def get_role(self, role: str, *, timeout: Timeout = DEFAULT) -> Role:
        return self._mod_role("GET", role, None, timeout)

    def grant_role(self, role: str, prefixes: list[str], perm: str, *, timeout: Timeout = DEFAULT) -> Role:
        body = {"role": role, "permissions": {"kv": {"read": None, "write": None}}, "grant": _kv_body(prefixes, perm)}
        return self._mod_role("PUT", role, body, timeout)

    def revoke_role(self, role: str, prefixes: list[str], perm: str, *, timeout: Timeout = DEFAULT) -> Role:
        body = {"role": role, "permissions": {"kv": {"read": None, "write": None}},
                "revoke": _kv_body(prefixes, perm)}
        return self._mod_role("PUT", role, body, timeout)
