"""The v2 auth script (issue 13, items 1 and 6): one ordered sequence of requests, run unchanged on a fresh
etcd 3.4 and a fresh pyetcd and compared answer by answer (test_auth_differential.py).

The script is cut into phases only so that a mismatch is reported where it happens: each phase is a
harness Case, its indexes are relative to the store index read when it starts (harness.read_base, an
anonymous ``GET /v2/keys/``), so every phase starts in a state where anonymous reads of ``/`` are allowed
(auth disabled, or the guest role reading ``/*``). The phases depend on each other and must run in order.

What etcd 3.4 does, and the script checks (etcdserver/api/v2http/client_auth.go, api/v2auth/auth.go):
- every auth write and every auth-enabled check goes through the v2 store (``/2/...``), so auth changes
  consume store indexes: ``mark()`` writes one key right after them and compares its index;
- ``PUT /v2/auth/users/<name>`` answers 201 only when it creates a user from a password alone; a user
  created with roles, and any update, answers 200;
- root: the root role always exists, cannot be created, changed or deleted (403); the root user always
  has it; it cannot be deleted while auth is enabled (403); enabling auth without it is 409;
- guest: enabling auth creates a guest role reading and writing ``/*`` unless one exists; requests
  without an Authorization header get exactly the guest role's (non-recursive) key access;
- patterns: a trailing ``*`` is a prefix match, anything else is an exact key; a recursive request
  (GET/DELETE with recursive=true) needs a ``*`` pattern whose prefix starts the key;
- credentials: an Authorization header that is not valid Basic, an unknown user or a wrong password is
  refused even where the guest role would allow the request; an empty header counts as none;
- refusals: keys 401 with error 110 (index 0), members/auth 401 ``{"message":"Insufficient credentials"}``,
  auth errors ``{"message":"auth: ..."}`` with 400/403/404/409, 405 with Allow before any auth check,
  key-parameter errors (400) before any auth check.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.differential.harness import JSON_CT, Case, Send, WatchEnd, WatchStart, case, req

# ---- step builders ---------------------------------------------------------------------------------

Creds = tuple[str, str] | str | None


def authorization(creds: Creds) -> tuple[tuple[str, str], ...]:
    """(user, password) -> Basic credentials; a str is sent verbatim as the Authorization value."""
    if creds is None:
        return ()
    if isinstance(creds, str):
        return (("Authorization", creds),)
    token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode("ascii")
    return (("Authorization", f"Basic {token}"),)


def call(method: str, target: str, creds: Creds = None, js: Any = None, raw: str | None = None,
         form: dict[str, str] | None = None) -> Send:
    """One compared request: ``js`` is sent as compact JSON, ``raw`` verbatim (both application/json)."""
    body = json.dumps(js, separators=(",", ":")) if js is not None else raw
    ctype = JSON_CT if body is not None and form is None else None
    return Send(req(method, target, form=form, body=body, content_type=ctype, headers=authorization(creds)))


def kv(method: str, key: str, creds: Creds = None, query: str = "", **form: str) -> Send:
    target = "/v2/keys" + key + (f"?{query}" if query else "")
    return call(method, target, creds, form=form or None)


def user(name: str, creds: Creds = None, method: str = "PUT", **fields: Any) -> Send:
    return call(method, f"/v2/auth/users/{name}", creds, js={"user": name, **fields} if fields or method == "PUT"
                else None)


def role(name: str, creds: Creds = None, method: str = "PUT", **fields: Any) -> Send:
    return call(method, f"/v2/auth/roles/{name}", creds, js={"role": name, **fields} if fields or method == "PUT"
                else None)


def perms(read: list[str] | None = None, write: list[str] | None = None) -> dict[str, Any]:
    return {"kv": {"read": read or [], "write": write or []}}


def mark(creds: Creds = None) -> Send:
    """A key write right after auth changes: its modifiedIndex and X-Etcd-Index show how many store
    indexes the auth changes consumed."""
    return kv("PUT", "/idx/mark", creds, value="m")


ROOT = ("root", "rootpw")
ALICE = ("alice", "alicepw")
ALICE2 = ("alice", "alice-new")
BOB = ("bob", "bobpw")
DAVE = ("dave", "davepw")
CAROL = ("carol", "pa:ss:word")  # colons after the first belong to the password
ADMIN = ("admin", "adminpw")

ALL_ACCESS = perms(["/*"], ["/*"])

# ---- the script ------------------------------------------------------------------------------------


def disabled_setup() -> Case:
    """Auth disabled: everything open; users and roles created; root-role and name/JSON refusals."""
    return case(
        "disabled_setup",
        call("GET", "/v2/auth/enable"),
        call("HEAD", "/v2/auth/enable"),
        call("POST", "/v2/auth/enable"),
        call("GET", "/v2/auth/users"),
        call("GET", "/v2/auth/users/"),
        call("GET", "/v2/auth/roles"),
        call("GET", "/v2/auth/roles/root"),
        call("GET", "/v2/auth/roles/guest"),
        call("GET", "/v2/auth/users/root"),
        call("POST", "/v2/auth/users"),
        call("DELETE", "/v2/auth/roles"),
        call("GET", "/v2/auth/users/root/extra"),
        call("GET", "/v2/auth/roles/root/extra"),
        call("GET", "/v2/auth/nothing"),
        call("GET", "/v2/auth"),
        call("GET", "/v2/auth/enable/"),
        call("GET", "/v2/auth/users/root/"),
        call("GET", "/v2/auth/users/a%2Fb"),
        call("PUT", "/v2/auth/enable"),  # no root user: 409
        call("DELETE", "/v2/auth/enable"),  # already disabled: 409
        mark(),
        call("PUT", "/v2/auth/users/root", raw="{not json"),
        call("PUT", "/v2/auth/users/root", js={"user": "toor", "password": "x"}),
        user("root"),  # no password: 400
        user("root", password="rootpw", roles="root"),  # roles not a list: 400
        user("root", password="rootpw"),  # created from a password: 201
        mark(),
        call("GET", "/v2/auth/users/root"),
        call("GET", "/v2/auth/users"),
        user("root", password="rootpw"),  # update: 200
        mark(),
        role("root", permissions=perms(["/x"])),
        role("reader", permissions=perms(["/app/*"])),
        mark(),
        role("reader", permissions=perms(["/app/*"])),  # exists: 409
        call("PUT", "/v2/auth/roles/reader", js={"role": "writer", "permissions": perms(["/a"])}),
        call("PUT", "/v2/auth/roles/reader", raw="[1,2"),
        role("reader", permissions=perms(["/x"]), grant=perms(["/y"])),  # both: 400
        role("reader", grant=perms(["/app/*"])),  # duplicate read: 409
        role("reader", grant=perms([], ["/app/*", "/app/*"])),  # duplicate within the request
        role("reader", grant=perms(["/cfg"])),
        role("reader", revoke=perms([], ["/nope"])),  # nothing changes: 400
        role("reader", revoke=perms(["/nope"]), grant=perms(["/pub*"])),
        role("missing", grant=perms(["/a"])),  # 404
        role("writer", permissions=perms(["/app/*"], ["/app/*"])),
        role("mid", permissions=perms(["/a/*/b"])),
        role("empty"),  # no permissions at all
        role("partial", permissions={"kv": {"read": ["/x"]}}),  # write stays null
        role("partial", grant=perms()),  # an empty grant is a create: 409
        role("partial", grant={"kv": {"write": ["/x"]}}),
        mark(),
        call("GET", "/v2/auth/roles"),
        call("GET", "/v2/auth/roles/reader"),
        call("GET", "/v2/auth/roles/empty"),
        user("alice", password="alicepw", roles=["reader"]),  # created with roles: 200
        user("bob", password="bobpw"),
        user("dave", password="davepw", roles=["mid"]),
        user("carol", password="pa:ss:word", roles=["reader"]),
        user("norole", password="noropw"),
        mark(),
        user("alice", password="x", roles=["reader"]),  # exists: 409
        user("bob", grant=["writer"]),
        user("bob", grant=["writer"]),  # duplicate: 409
        user("bob", revoke=["reader"]),  # ungranted: 409
        user("bob", roles=["reader"], grant=["writer"]),  # both: 400
        user("nobody", grant=["reader"]),  # 404
        user("bob"),  # nothing to change: 400
        user("ghost", password="g", roles=["nosuchrole"]),
        call("GET", "/v2/auth/users/ghost"),  # its role is missing
        call("GET", "/v2/auth/users"),
        user("ghost", method="DELETE"),
        user("ghost", method="DELETE"),  # 404
        role("nosuch", method="DELETE"),  # 404
        role("root", method="DELETE"),  # 403
        call("GET", "/v2/auth/users/alice"),
        call("GET", "/v2/auth/users/nobody"),
        mark(),
    )


def enable_guest_default() -> Case:
    """Enable (allowed without credentials while disabled); the default guest role; root-only auth API."""
    return case(
        "enable_guest_default",
        call("PUT", "/v2/auth/enable"),
        mark(),
        call("GET", "/v2/auth/enable"),
        call("PUT", "/v2/auth/enable"),  # 401 now
        call("PUT", "/v2/auth/enable", ROOT),  # already enabled: 409
        call("POST", "/v2/auth/enable"),  # 405 before the credential check
        call("GET", "/v2/auth/roles/guest", ROOT),
        call("GET", "/v2/auth/roles"),
        call("GET", "/v2/auth/roles", ALICE),
        call("GET", "/v2/auth/users"),
        call("GET", "/v2/auth/users", ("root", "wrong")),
        call("GET", "/v2/auth/users", ROOT),
        call("GET", "/v2/auth/roles", ROOT),
        call("GET", "/v2/auth/users/root", ROOT),
        call("GET", "/v2/auth/users/alice"),
        call("GET", "/v2/auth/users/nobody", ALICE),
        user("eve", password="evepw"),  # 401
        user("eve", ALICE, password="evepw"),  # 401
        role("guest", ROOT, permissions=ALL_ACCESS),  # exists: 409
        kv("GET", "/idx/mark"),
        kv("PUT", "/guest/k", value="g"),
        kv("GET", "/guest/k"),
        kv("GET", "/", query="recursive=true"),
        call("GET", "/v2/keys"),
        kv("DELETE", "/guest/k"),
        kv("POST", "/guest/q", value="g"),
        kv("DELETE", "/guest", query="recursive=true"),
        mark(),
    )


def credentials() -> Case:
    """Credentials as Go's Request.BasicAuth reads them; a bad header is refused where the guest is not."""
    token = base64.b64encode(b"root:rootpw").decode("ascii")
    return case(
        "credentials",
        kv("GET", "/idx/mark", ROOT),
        kv("GET", "/idx/mark", ("root", "wrong")),
        kv("GET", "/idx/mark", ("nobody", "x")),
        kv("GET", "/idx/mark", ("root", "")),
        kv("GET", "/idx/mark", "Basic !!!not-base64"),
        kv("GET", "/idx/mark", "Basic " + base64.b64encode(b"no-colon").decode("ascii")),
        kv("GET", "/idx/mark", "Bearer abc"),
        kv("GET", "/idx/mark", "Basic"),
        kv("GET", "/idx/mark", ""),  # empty header: as if absent (guest)
        kv("GET", "/idx/mark", "basic " + token),  # scheme is case-insensitive in Go
        kv("GET", "/idx/mark", "BASIC " + token),
        kv("GET", "/idx/mark", "Basic  " + token),  # two spaces
        kv("GET", "/idx/mark", "Basic " + token.rstrip("=")),  # unpadded
        kv("GET", "/idx/mark", CAROL),
        kv("GET", "/idx/mark", ("norole", "noropw")),  # a user does not get the guest's access
        kv("PUT", "/idx/mark", ("root", "wrong"), value="x"),
        call("GET", "/v2/auth/users", "Basic !!!"),
        call("GET", "/v2/auth/enable", ("root", "wrong")),
        call("GET", "/v2/members", ("root", "wrong")),
        call("GET", "/v2/stats/self", ("root", "wrong")),
        call("GET", "/version", ("root", "wrong")),
        mark(ROOT),
    )


def guest_revoked() -> Case:
    """Guest revoked: 401 error 110 without credentials; read-only, writer, exact and literal-star patterns;
    members writes need root; stats, version, health, machines need nothing."""
    return case(
        "guest_revoked",
        role("guest", ROOT, revoke=ALL_ACCESS),
        mark(ROOT),
        call("GET", "/v2/auth/roles/guest", ROOT),
        kv("GET", "/idx/mark"),
        kv("HEAD", "/idx/mark"),
        kv("PUT", "/idx/mark", value="x"),
        kv("GET", "/"),
        kv("GET", "/idx/mark", query="wait=true"),  # refused at once, not a watch
        kv("PUT", "/idx/mark", query="ttl=abc", value="x"),  # parameter error first: 400
        kv("PATCH", "/idx/mark"),  # 405 first
        kv("PUT", "/app/x", ROOT, value="1"),
        kv("PUT", "/app/sub/y", ROOT, value="2"),
        kv("PUT", "/cfg", ROOT, value="c"),
        kv("PUT", "/public", ROOT, value="p"),
        kv("PUT", "/a/*/b", ROOT, value="star"),
        kv("PUT", "/a/x/b", ROOT, value="x"),
        # alice: reader = read /app/*, /cfg, /pub*
        kv("GET", "/app/x", ALICE),
        kv("HEAD", "/app/x", ALICE),
        kv("GET", "/app/missing", ALICE),
        kv("PUT", "/app/x", ALICE, value="no"),
        kv("DELETE", "/app/x", ALICE),
        kv("POST", "/app", ALICE, value="no"),
        kv("GET", "/app", ALICE),
        kv("GET", "/app", ALICE, query="recursive=true"),
        kv("GET", "/app/", ALICE, query="recursive=true"),
        kv("GET", "/app/sub", ALICE, query="recursive=true"),
        kv("GET", "/app/sub", ALICE),
        kv("GET", "/app/x", ALICE, query="wait=true&waitIndex=1"),
        kv("GET", "/cfg", ALICE),
        kv("GET", "/cfg", ALICE, query="recursive=true"),
        kv("GET", "/cfg/child", ALICE),
        kv("GET", "/cfgx", ALICE),
        kv("GET", "/public", ALICE),
        kv("GET", "/pub", ALICE),
        kv("GET", "/pub", ALICE, query="recursive=true"),
        kv("GET", "/", ALICE),
        kv("GET", "/other", ALICE),
        kv("GET", "/other", ALICE, query="wait=true"),
        WatchStart("alice", req("GET", "/v2/keys/app/x?wait=true", headers=authorization(ALICE))),
        kv("PUT", "/app/x", ROOT, value="watched"),
        WatchEnd("alice"),
        kv("GET", "/app/x", CAROL),
        # dave: mid = read "/a/*/b", a literal key
        kv("GET", "/a/*/b", DAVE),
        kv("GET", "/a/%2A/b", DAVE),
        kv("GET", "/a/x/b", DAVE),
        # bob: writer = read+write /app/*
        kv("PUT", "/app/y", BOB, value="b"),
        kv("POST", "/app/", BOB, value="q"),
        kv("PUT", "/app/dir", BOB, dir="true"),
        kv("PUT", "/other", BOB, value="no"),
        kv("PUT", "/app", BOB, value="no"),
        kv("DELETE", "/app", BOB, query="recursive=true"),
        kv("DELETE", "/app/sub", BOB, query="recursive=true"),
        kv("DELETE", "/app/dir", BOB, query="dir=true"),
        kv("GET", "/app/", BOB, query="recursive=true&sorted=true"),
        # root: everything
        kv("GET", "/", ROOT, query="recursive=true&sorted=true"),
        kv("DELETE", "/a", ROOT, query="recursive=true"),
        # members: reads open, writes need root (refused before the body is looked at)
        call("GET", "/v2/members"),
        call("GET", "/v2/members/leader"),
        call("POST", "/v2/members", raw="{bad"),
        call("POST", "/v2/members", ALICE, raw="{bad"),
        call("POST", "/v2/members", ROOT, raw="{bad"),
        call("DELETE", "/v2/members/abcdef0123456789"),
        call("DELETE", "/v2/members/abcdef0123456789", BOB),
        call("DELETE", "/v2/members/abcdef0123456789", ROOT),
        call("PUT", "/v2/members/abcdef0123456789", raw='{"peerURLs":["http://127.0.0.1:1"]}'),
        call("PUT", "/v2/members/abcdef0123456789", ROOT, raw='{"peerURLs":["http://127.0.0.1:1"]}'),
        call("PATCH", "/v2/members"),
        # stats, version, health, machines: no credentials needed
        call("GET", "/v2/stats/self"),
        call("GET", "/v2/stats/store"),
        call("GET", "/v2/stats/leader"),
        call("GET", "/version"),
        call("GET", "/health"),
        call("GET", "/v2/machines"),
        call("GET", "/v2/auth/enable"),
        role("guest", ROOT, grant=ALL_ACCESS),
        mark(),
    )


def password_and_roles() -> Case:
    """Password change; granting and revoking roles takes effect at once; a role deleted under a user."""
    return case(
        "password_and_roles",
        role("guest", ROOT, revoke=ALL_ACCESS),
        user("alice", ROOT, password="alice-new"),  # update: 200
        mark(ROOT),
        kv("GET", "/app/x", ALICE),  # old password: 401
        kv("GET", "/app/x", ALICE2),
        call("GET", "/v2/auth/users/alice", ALICE2),  # not root: 401
        user("alice", ROOT, grant=["writer"]),
        mark(ROOT),
        kv("PUT", "/app/x", ALICE2, value="alice"),
        user("alice", ROOT, revoke=["writer"]),
        kv("PUT", "/app/x", ALICE2, value="again"),
        user("alice", ROOT, grant=["writer", "mid"], revoke=["reader"]),
        call("GET", "/v2/auth/users/alice", ROOT),
        user("alice", ROOT, grant=["reader"], revoke=["writer", "mid"]),
        role("reader", ROOT, method="DELETE"),
        mark(ROOT),
        kv("GET", "/app/x", ALICE2),  # its only role is gone
        call("GET", "/v2/auth/users/alice", ROOT),
        call("GET", "/v2/auth/users", ROOT),
        call("GET", "/v2/auth/roles", ROOT),
        user("alice", ROOT, method="DELETE"),
        user("carol", ROOT, password="carol2", grant=["mid"]),  # password and grant at once
        user("carol", ROOT, password="carol3", roles=[]),  # empty roles: a password update
        kv("GET", "/a/*/b", ("carol", "carol2")),
        kv("GET", "/a/*/b", ("carol", "carol3")),
        mark(ROOT),
        kv("GET", "/app/x", ALICE2),  # unknown user now
        user("admin", ROOT, password="adminpw", roles=["root"]),
        call("GET", "/v2/auth/users", ADMIN),  # the root role makes a user root
        kv("PUT", "/anything", ADMIN, value="a"),
        call("DELETE", "/v2/members/abcdef0123456789", ADMIN),
        role("guest", ROOT, grant=ALL_ACCESS),
        mark(),
    )


def root_immutability() -> Case:
    """The root role and user cannot be changed away while auth is enabled."""
    return case(
        "root_immutability",
        role("root", ROOT, grant=perms(["/x"])),
        role("root", ROOT, revoke=perms(["/*"])),
        role("root", ROOT, permissions=perms(["/*"], ["/*"])),
        role("root", ROOT, method="DELETE"),
        call("GET", "/v2/auth/roles/root", ROOT),
        user("root", ROOT, grant=["root"]),  # the root user always has it: duplicate
        user("root", ROOT, method="DELETE"),  # 403 while enabled
        user("root", method="DELETE"),  # 401 first
        user("root", ROOT, revoke=["root"]),
        call("GET", "/v2/auth/users/root", ROOT),
        call("GET", "/v2/auth/users", ROOT),
        user("root", ROOT, grant=["writer"]),
        call("GET", "/v2/auth/users/root", ROOT),
        mark(ROOT),
    )


def guest_recreated() -> Case:
    """Deleting the guest role shuts anonymous access; a custom guest role; then disable."""
    return case(
        "guest_recreated",
        role("guest", ROOT, method="DELETE"),
        mark(ROOT),
        kv("GET", "/public"),
        call("GET", "/v2/auth/roles", ROOT),
        role("guest", ROOT, permissions=perms(["/pub*"])),
        mark(ROOT),
        kv("GET", "/public"),
        kv("PUT", "/public", value="no"),
        kv("GET", "/idx/mark"),
        kv("GET", "/public", query="recursive=true"),  # the guest check is never recursive
        call("DELETE", "/v2/auth/enable"),  # 401
        call("DELETE", "/v2/auth/enable", BOB),  # 401
        call("DELETE", "/v2/auth/enable", ROOT),
        mark(),
    )


def disabled_again() -> Case:
    """Disabled: everything open again; root can be deleted; re-enabling keeps a custom guest role."""
    return case(
        "disabled_again",
        call("GET", "/v2/auth/enable"),
        call("DELETE", "/v2/auth/enable"),  # already disabled: 409
        kv("PUT", "/public", value="open"),
        call("GET", "/v2/auth/users"),
        call("GET", "/v2/auth/users", ("root", "wrong")),  # credentials are not checked at all
        kv("GET", "/idx/mark", "Basic !!!"),
        user("root", method="DELETE"),
        mark(),
        call("PUT", "/v2/auth/enable"),  # no root user: 409
        user("root", password="rootpw2", roles=["writer"]),  # the root role is appended: ["writer","root"]
        call("GET", "/v2/auth/users/root"),
        call("PUT", "/v2/auth/enable"),
        mark(("root", "rootpw2")),
        call("GET", "/v2/auth/roles/guest", ("root", "rootpw2")),
        kv("GET", "/idx/mark"),
        kv("GET", "/public"),
        call("DELETE", "/v2/auth/enable", ("root", "rootpw2")),
        mark(),
        call("GET", "/v2/auth/enable"),
    )


def stats() -> Send:
    """A /v2/stats/store snapshot; the test compares each snapshot's counters as the change since the one
    before it (etcd's auth bookkeeping goes through the v2 store and shows in its counters)."""
    return call("GET", "/v2/stats/store")


ROOT2 = ("root", "rootpw2")
ROOT3 = ("root", "rootpw3")
Q_PASSWORD = ">>>?"  # "q:>>>?" encodes with both '+' and '/'
Q_STD = "Basic " + base64.b64encode(f"q:{Q_PASSWORD}".encode()).decode("ascii")


def json_and_names() -> Case:
    """Auth disabled: request bodies as Go's json.Decoder reads them, odd names, Go's ServeMux on unclean
    paths, permissions stored as given until a grant/revoke sorts them, store counters of auth changes."""
    return case(
        "json_and_names",
        call("PUT", "/v2/auth/users/trail", raw='{"user":"trail","password":"p"}garbage'),
        call("PUT", "/v2/auth/users/trail2", raw='{"user":"trail2","password":"p"} {"user":"x"}'),
        call("PUT", "/v2/auth/users/caseu", raw='{"User":"caseu","PASSWORD":"p"}'),
        call("PUT", "/v2/auth/users/nulls", raw='{"user":"nulls","password":"p","roles":null,"grant":null}'),
        call("PUT", "/v2/auth/users/emptybody", raw=""),
        call("PUT", "/v2/auth/users/nullbody", raw="null"),
        call("PUT", "/v2/auth/users/num", raw='{"user":"num","password":5}'),
        call("PUT", "/v2/auth/users/dupkey", raw='{"user":"dupkey","password":"a","password":"b"}'),
        call("PUT", "/v2/auth/users/ws", raw=' \n {"user":"ws","password":"w"}\n'),
        Send(req("PUT", "/v2/auth/users/ctext", body='{"user":"ctext","password":"p"}', content_type="text/plain")),
        Send(req("PUT", "/v2/auth/users/cnone", body='{"user":"cnone","password":"p"}')),
        call("PUT", "/v2/auth/users/cform", form={"user": "cform", "password": "p"}),
        Send(req("PUT", "/v2/auth/users/bom", body=b'\xef\xbb\xbf{"user":"bom","password":"p"}',
                 content_type=JSON_CT)),  # Go refuses a BOM
        call("PUT", "/v2/auth/users/deep", raw='{"user":"deep","password":"p","x":{"y":[1,{"z":null}]}}'),
        call("PUT", "/v2/auth/users/bob", js={"user": "bob", "password": ""}),  # empty password: no change
        call("PUT", "/v2/auth/roles/r%20%C3%B6", js={"role": "r ö", "permissions": perms(["/rö/*"])}),
        call("PUT", "/v2/auth/users/j%C3%B6hn", js={"user": "jöhn", "password": "pässword"}),
        call("PUT", "/v2/auth/users/Zed", js={"user": "Zed", "password": "z"}),
        call("PUT", "/v2/auth/users/a:b", js={"user": "a:b", "password": "x"}),
        call("PUT", "/v2/auth/users/q", js={"user": "q", "password": Q_PASSWORD, "roles": ["star"]}),
        call("PUT", "/v2/auth/users/", js={"user": "", "password": "x"}),
        call("PUT", "/v2/auth/roles/", js={"role": ""}),
        call("GET", "/v2/auth/users/./root"),
        call("GET", "/v2/auth//users"),
        call("PUT", "/v2/auth/roles/a%2Fb", js={"role": "a/b"}),
        call("PUT", "/v2/auth/roles/casr", raw='{"Role":"casr","Permissions":{"KV":{"Read":["/c"]}}}'),
        role("dup", permissions=perms(["/z", "/a", "/z"])),
        call("GET", "/v2/auth/roles/dup"),
        role("dup", grant={"kv": {"write": ["/w"]}}),
        call("PUT", "/v2/auth/roles/nullp", raw='{"role":"nullp","permissions":null}'),
        role("star", permissions=perms(["*"])),
        role("cfgw", permissions=perms([], ["/cfg"])),
        role("reader2", permissions=perms(["/app/*", "/cfg"])),
        user("multi", password="m", roles=["writer", "mid", "writer"]),
        call("GET", "/v2/auth/users/multi"),
        user("multi", grant=["star"]),
        user("dave", grant=["cfgw"]),
        user("rita", password="ritapw", roles=["reader2"]),
        user("stary", password="starypw", roles=["star"]),
        user("Zed", grant=["ghostrole"]),  # a role that does not exist can be granted
        call("GET", "/v2/auth/users/Zed"),
        user("Zed", revoke=["ghostrole"]),
        user("Zed"),  # no change asked, but null roles become []
        user("multi2", password="m", roles=["writer", "mid"]),
        user("multi2"),  # no change asked, but the roles get sorted
        role("unsorted", permissions=perms(["/b", "/a"])),
        role("unsorted", revoke=perms(["/nope"])),  # nothing revoked, but the lists get sorted
        role("unsorted", revoke=perms(["/nope"])),  # now nothing changes: 400
        role("empty", revoke=perms(["/x"])),  # null lists become []
        call("GET", "/v2/auth/users"),
        call("GET", "/v2/auth/roles"),
        stats(),
        user("statu", password="s"),
        stats(),
        user("statu", grant=["star"]),
        stats(),
        user("statu", method="DELETE"),
        stats(),
        user("statu", method="DELETE"),
        user("nobody2", grant=["star"]),
        role("nosuch", method="DELETE"),
        stats(),
        call("GET", "/v2/auth/users"),
        call("GET", "/v2/auth/roles/dup"),
        stats(),
        kv("GET", "/idx/mark"),
        stats(),
        mark(),
    )


def enabled_edges() -> Case:
    """Enabled again: store counters of credential checks, key paths as Go decodes them, recursive from a
    form body, the "*" pattern, credentials in odd shapes, verdicts forgotten when a password changes."""
    return case(
        "enabled_edges",
        call("PUT", "/v2/auth/enable"),
        mark(ROOT2),
        stats(),
        kv("GET", "/public"),
        stats(),
        kv("GET", "/idx/mark", ROOT2),
        stats(),
        kv("GET", "/idx/mark", ("rita", "ritapw")),
        stats(),
        call("GET", "/v2/auth/users", ROOT2),
        stats(),
        call("GET", "/v2/auth/enable"),
        stats(),
        kv("PUT", "/app/x", ROOT2, value="edge"),
        call("GET", "/v2/keys", ("stary", "starypw")),  # "*" matches even the empty key
        kv("GET", "/", ("stary", "starypw"), query="recursive=true&sorted=true"),
        kv("PUT", "/cfg", DAVE, value="d"),
        kv("PUT", "/cfg", DAVE, value="d", recursive="true"),  # recursive from the form body
        kv("PUT", "/cfg", DAVE, query="recursive=true", value="d"),
        kv("GET", "/cfg", ("rita", "ritapw"), query="recursive=1"),
        kv("GET", "/cfg", ("rita", "ritapw"), query="recursive=false"),
        kv("GET", "/cfg", ("rita", "ritapw"), query="recursive=TRUE"),
        kv("GET", "/cfg", ("rita", "ritapw"), query="recursive=yes"),  # parameter error first: 400
        call("GET", "/v2/keys/app%2Fx", ("rita", "ritapw")),
        call("GET", "/v2/keys/%61pp/x", ("rita", "ritapw")),
        call("GET", "/v2/keys/app/x/", ("rita", "ritapw")),
        call("GET", "/v2/keys//app/x"),  # ServeMux redirect before any check
        call("GET", "/v2/keys/app/./x", ("rita", "ritapw")),
        kv("GET", "/app", ("rita", "ritapw"), query="wait=true&recursive=true"),
        kv("POST", "/app", BOB, value="no"),
        kv("GET", "/app/", ("rita", "ritapw")),  # "/app/" matches "/app/*": the directory itself
        # credentials in odd shapes
        Send(req("GET", "/v2/auth/users", headers=(*authorization(ROOT2), ("Authorization", "Basic !!!")))),
        Send(req("GET", "/v2/auth/users", headers=(("Authorization", "Basic !!!"), *authorization(ROOT2)))),
        kv("GET", "/idx/mark", authorization(ROOT2)[0][1] + "  "),
        kv("GET", "/idx/mark", Q_STD),
        kv("GET", "/idx/mark", Q_STD.replace("+", "-").replace("/", "_")),
        call("PUT", "/v2/auth/users/j%C3%B6hn", ROOT2, js={"user": "jöhn", "grant": ["star"]}),
        kv("GET", "/idx/mark", "Basic " + base64.b64encode("jöhn:pässword".encode()).decode("ascii")),
        kv("GET", "/idx/mark", "Basic " + base64.b64encode("jöhn:pässword".encode("latin-1")).decode("ascii")),
        call("PUT", "/v2/auth/users/a:b", ROOT2, js={"user": "a:b", "grant": ["star"]}),
        kv("GET", "/idx/mark", ("a:b", "x")),
        kv("GET", "/idx/mark", ("caseu", "p")),
        call("PUT", "/v2/auth/users/caseu", ROOT2, js={"user": "caseu", "grant": ["star"]}),
        kv("GET", "/idx/mark", ("caseu", "p")),
        # a changed password or a re-created user: earlier verdicts no longer count
        call("GET", "/v2/auth/users", ROOT2),
        user("root", ROOT2, password="rootpw3"),
        call("GET", "/v2/auth/users", ROOT2),
        call("GET", "/v2/auth/users", ROOT3),
        kv("PUT", "/app/y", BOB, value="b1"),
        user("bob", ROOT3, method="DELETE"),
        user("bob", ROOT3, password="bobpw2", roles=["writer"]),
        kv("PUT", "/app/y", BOB, value="b2"),
        kv("PUT", "/app/y", ("bob", "bobpw2"), value="b3"),
        kv("DELETE", "/app/", ("bob", "bobpw2"), query="recursive=true"),  # "/app/" is covered by "/app/*"
        kv("GET", "/app", ROOT3),
        mark(ROOT3),
        stats(),
        call("DELETE", "/v2/auth/enable", ROOT3),
        stats(),
        mark(),
    )


def empty_pattern() -> Case:
    """An empty key pattern: etcd 3.4 indexes pattern[len-1] and the request's goroutine panics (the
    connection is closed without an answer); patterns before it in the list are still tried first."""
    return case(
        "empty_pattern",
        role("emptypat", permissions=perms(["/nomatch", ""])),
        role("emptylast", permissions=perms(["/public", ""])),
        user("emp", password="e", roles=["emptypat"]),
        user("empl", password="e", roles=["emptylast"]),
        call("PUT", "/v2/auth/enable"),
        kv("GET", "/public", ("empl", "e")),
        kv("GET", "/public", ("emp", "e")),
        call("GET", "/v2/auth/enable"),
        call("DELETE", "/v2/auth/enable", ROOT3),
        mark(),
    )


def guest_default_again() -> Case:
    """A guest role deleted while disabled is re-created with full access by the next enable; a watch opened
    before auth was enabled still gets its event; ends enabled, for the restart."""
    return case(
        "guest_default_again",
        WatchStart("early", req("GET", "/v2/keys/wa?wait=true")),
        role("guest", method="DELETE"),
        call("PUT", "/v2/auth/enable"),
        mark(ROOT3),
        call("GET", "/v2/auth/roles/guest", ROOT3),
        role("guest", ROOT3, revoke=ALL_ACCESS),
        kv("PUT", "/wa", ROOT3, value="after-enable"),
        WatchEnd("early"),
        kv("GET", "/wa"),
        user("persist", ROOT3, password="persistpw", roles=["writer"]),
        kv("PUT", "/app/p", ("persist", "persistpw"), value="p1"),
        role("guest", ROOT3, grant=ALL_ACCESS),
        mark(),
    )


def after_restart() -> Case:
    """Both servers restarted from their data directories (the test does it before this phase): auth stays
    enabled, users, roles and passwords persist, the guest still decides for anonymous requests."""
    return case(
        "after_restart",
        call("GET", "/v2/auth/enable"),
        stats(),
        kv("GET", "/idx/mark"),
        stats(),
        call("GET", "/v2/auth/users", ROOT3),
        call("GET", "/v2/auth/roles", ROOT3),
        kv("PUT", "/app/p", ("persist", "persistpw"), value="p2"),
        kv("PUT", "/app/p", ("persist", "wrong"), value="p3"),
        stats(),
        role("guest", ROOT3, revoke=ALL_ACCESS),
        stats(),
        mark(ROOT3),
        kv("GET", "/idx/mark"),
        call("OPTIONS", "/v2/keys/idx/mark"),
        call("OPTIONS", "/v2/auth/users"),
        call("GET", "/v2/members"),
        call("DELETE", "/v2/members/abcdef0123456789"),
        # answers past 2048 bytes: Go's ResponseWriter chunks them (nothing sets a Content-Length)
        role("big", ROOT3, permissions=perms([f"/big/{i:03d}/*" for i in range(120)])),
        call("GET", "/v2/auth/roles/big", ROOT3),
        call("GET", "/v2/auth/roles", ROOT3),
        user("persist", ROOT3, grant=["big"]),
        call("GET", "/v2/auth/users/persist", ROOT3),
        call("GET", "/v2/auth/users", ROOT3),
        user("persist", ROOT3, method="DELETE"),
        call("DELETE", "/v2/auth/enable", ROOT3),
        mark(),
        call("GET", "/v2/auth/enable"),
    )


def go_strings() -> Case:
    """Strings as Go's json.Decoder makes them: invalid UTF-8 and lone surrogates become U+FFFD, a null in a
    list of strings becomes "". (Kept last: a server refusing these shifts indexes only here. Not sent: GET
    of a user holding the role "" - etcd 3.4 dereferences a nil value and drops the connection.)"""
    utf8 = "Basic " + base64.b64encode("badutf:\ufffd\ufffd".encode()).decode("ascii")
    return case(
        "go_strings",
        Send(req("PUT", "/v2/auth/users/badutf", body=b'{"user":"badutf","password":"\xff\xfe"}',
                 content_type=JSON_CT)),
        call("PUT", "/v2/auth/users/surr", raw='{"user":"surr","password":"\\ud800"}'),
        call("PUT", "/v2/auth/users/nullrole", raw='{"user":"nullrole","password":"p","roles":["writer",null]}'),
        user("nullrole", revoke=[""]),
        call("GET", "/v2/auth/users/nullrole"),
        user("badutf", grant=["star"]),
        user("surr", grant=["star"]),
        mark(),
        call("PUT", "/v2/auth/enable"),
        kv("GET", "/idx/mark", utf8),
        kv("GET", "/idx/mark", "Basic " + base64.b64encode(b"badutf:\xff\xfe").decode("ascii")),
        kv("GET", "/idx/mark", "Basic " + base64.b64encode("surr:\ufffd".encode()).decode("ascii")),
        call("DELETE", "/v2/auth/enable", ROOT3),
        mark(),
    )


def password_bytes() -> Case:
    """Passwords as etcd 3.4.23's bcrypt takes them: only the first 72 bytes count (this x/crypto predates
    ErrPasswordTooLong: longer ones are accepted and cut)."""
    def basic(name: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode("ascii")
    return case(
        "password_bytes",
        user("long73", password="x" * 73),
        user("long73b", password="x" * 71 + "é"),  # 73 bytes, 72 characters
        user("long72", password="y" * 72, roles=["star"]),
        user("long72", password="y" * 80),  # an update past 72 bytes
        mark(),
        call("PUT", "/v2/auth/enable"),
        kv("GET", "/idx/mark", basic("long72", "y" * 72)),
        kv("GET", "/idx/mark", basic("long72", "y" * 72 + "zzz")),  # only 72 bytes count
        kv("GET", "/idx/mark", basic("long72", "y" * 71)),
        call("DELETE", "/v2/auth/enable", ROOT3),
        mark(),
    )


def nul_password() -> Case:
    """A NUL byte in a password is an ordinary byte to Go's bcrypt. (Its own phase, and the last: a server
    that dies on it loses only this phase's comparisons.)"""
    return case(
        "nul_password",
        user("nul", password="a\x00b", roles=["star"]),
        call("PUT", "/v2/auth/enable"),
        kv("GET", "/idx/mark", "Basic " + base64.b64encode(b"nul:a\x00b").decode("ascii")),
        kv("GET", "/idx/mark", "Basic " + base64.b64encode(b"nul:a").decode("ascii")),
        user("nul", ROOT3, password="c\x00d"),
        kv("GET", "/idx/mark", "Basic " + base64.b64encode(b"nul:c\x00d").decode("ascii")),
        call("DELETE", "/v2/auth/enable", ROOT3),
        mark(),
    )


RESTART_BEFORE = frozenset({"after_restart"})  # phases before which the test restarts both servers


def auth_script() -> list[Case]:
    return [disabled_setup(), enable_guest_default(), credentials(), guest_revoked(), password_and_roles(),
            root_immutability(), guest_recreated(), disabled_again(), json_and_names(), enabled_edges(),
            empty_pattern(), guest_default_again(), after_restart(), go_strings(),
            password_bytes(), nul_password()]


AUTH_SCRIPT: list[Case] = auth_script()


# ---- pipelining: answers in request order while passwords are being checked ---------------------------

PIPE_SETUP: Case = case(
    "pipeline_setup",
    user("root", password="rootpw"),
    role("preader", permissions=perms(["/p/*"])),
    *(user(f"u{i}", password=f"u{i}pw", roles=["preader"]) for i in (1, 2, 3)),
    kv("PUT", "/p/k", value="v"),
    call("PUT", "/v2/auth/enable"),
    role("guest", ROOT, revoke=ALL_ACCESS),
)

# Sent back to back on one keep-alive connection (nothing cached yet for u1..u3)
PIPELINE: list[Send] = [
    kv("GET", "/p/k", ("u1", "u1pw")),
    kv("GET", "/p/k"),
    kv("GET", "/p/k", ("u2", "u2pw")),
    kv("GET", "/p/k", ("u1", "bad")),
    kv("PUT", "/p/k", ("u3", "u3pw"), value="no"),
    kv("GET", "/p/k", ("u1", "u1pw")),
    call("GET", "/v2/auth/users", ROOT),
    kv("PUT", "/p/k", ROOT, value="w"),
    kv("GET", "/p/k", ("u3", "u3pw")),
    call("GET", "/v2/auth/enable"),
]



# ---- --client-cert-auth: a verified client certificate's CN names the user when no Authorization header comes

CERT_NAMES = ("root", "alice", "nobody")
CERT_SCRIPT: list[tuple[str, Send]] = [
    ("root", user("root", password="rootpw")),
    ("root", role("r", permissions=perms(["/c/*"]))),
    ("root", user("alice", password="alicepw", roles=["r"])),
    ("root", kv("PUT", "/c/x", value="1")),
    ("root", call("PUT", "/v2/auth/enable")),
    ("root", role("guest", ROOT, revoke=ALL_ACCESS)),
    ("alice", kv("GET", "/c/x")),
    ("nobody", kv("GET", "/c/x")),  # no such user: refused (the guest may do nothing)
    ("alice", kv("GET", "/c/x", ("alice", "wrong"))),  # a header wins over the certificate
    ("nobody", kv("GET", "/c/x", ("alice", "alicepw"))),
    ("alice", kv("PUT", "/c/x", value="2")),
    ("root", kv("GET", "/c/x")),  # the certificate with CN "root" is the root user
    ("root", call("GET", "/v2/auth/users")),
    ("alice", call("GET", "/v2/auth/users")),
    ("alice", call("GET", "/v2/auth/users", ROOT)),
    ("root", call("GET", "/v2/auth/users", ("root", "wrong"))),
    ("root", call("DELETE", "/v2/members/abcdef0123456789")),
    ("alice", call("DELETE", "/v2/members/abcdef0123456789")),
    ("alice", call("DELETE", "/v2/auth/enable")),
    ("nobody", call("GET", "/v2/auth/enable")),
    ("root", kv("PUT", "/c/y", value="3")),  # the only write by certificate, last: it moves the index
    ("root", call("DELETE", "/v2/auth/enable")),
]
