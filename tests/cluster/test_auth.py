"""v2 auth across a real 3-member cluster, a proxy, restarts and a joining member: one AUTH entry per change,
replicated, in snapshots, enforced on every member and through a proxy (which forwards the credentials).
tests/differential/test_auth_differential.py compares the API itself with etcd 3.4, request by request."""

from __future__ import annotations

import base64
import json

from tests.cluster.conftest import Cluster, MakeCluster, StartProxy
from tests.integration._http import Resp, request
from tests.support.kit import wait_for


def basic(user: str, password: str) -> list[tuple[str, str]]:
    return [("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())]


ROOT = basic("root", "rootpw")
BOB = basic("bob", "bobpw")
JSON = [("Content-Type", "application/json")]


def call(port: int, method: str, target: str, creds: list[tuple[str, str]] | None = None,
         doc: object = None, form: dict[str, str] | None = None) -> Resp:
    body = None if doc is None else json.dumps(doc).encode()
    return request(port, method, target, form=form, body=body,
                   headers=[*(JSON if doc is not None else []), *(creds or [])], timeout=15.0)


def set_up_auth(port: int) -> None:
    assert call(port, "PUT", "/v2/auth/users/root", doc={"user": "root", "password": "rootpw"}).status == 201
    r = call(port, "PUT", "/v2/auth/roles/app", doc={"role": "app", "permissions": {
        "kv": {"read": ["/app/*"], "write": ["/app/w/*"]}}})
    assert r.status == 201, r.body
    r = call(port, "PUT", "/v2/auth/users/bob", doc={"user": "bob", "password": "bobpw", "roles": ["app"]})
    assert r.status == 200, r.body  # etcd answers 200 when roles are given (CreateUser, not CreateOrUpdate)
    assert call(port, "PUT", "/v2/auth/enable", ROOT).status == 200
    r = call(port, "PUT", "/v2/auth/roles/guest", ROOT, doc={"role": "guest", "revoke": {
        "kv": {"read": ["/*"], "write": ["/*"]}}})
    assert r.status == 200, r.body


def check_enforced(port: int, where: str) -> None:
    anon = call(port, "GET", "/v2/keys/app/x")
    assert anon.status == 401 and anon.json()["errorCode"] == 110, (where, anon.status, anon.body)
    assert call(port, "GET", "/v2/keys/app/x", BOB).status in (200, 404), where
    assert call(port, "PUT", "/v2/keys/app/x", BOB, form={"value": "no"}).status == 401, where
    assert call(port, "GET", "/v2/keys/app/x", basic("bob", "wrong")).status == 401, where
    assert call(port, "GET", "/v2/keys/app/x", basic("mallory", "x")).status == 401, where
    assert call(port, "GET", "/v2/auth/users", BOB).status == 401, where
    assert call(port, "GET", "/v2/auth/users", ROOT).status == 200, where
    assert call(port, "GET", "/v2/auth/enable").json() == {"enabled": True}, where


def test_auth_is_replicated_enforced_everywhere_and_durable(make_cluster: MakeCluster,
                                                            start_proxy: StartProxy) -> None:
    c = make_cluster(3, snapshot_count=20)
    set_up_auth(c.members[0].client_port)
    proxy = start_proxy(c)
    for m in c.members:
        assert wait_for(lambda m=m: call(m.client_port, "GET", "/v2/auth/enable").json() == {"enabled": True}, 10)
        check_enforced(m.client_port, m.name)
    check_enforced(proxy.port, "proxy")
    # A write through the proxy keeps its user: bob may write under /app/w/ there.
    w = call(proxy.port, "PUT", "/v2/keys/app/w/k", BOB, form={"value": "by-bob"})
    assert w.status == 201, w.body
    # Enough writes for snapshots, then every member restarts: auth comes back from snapshot + WAL.
    for i in range(40):
        assert call(c.members[i % 3].client_port, "PUT", f"/v2/keys/app/w/n{i}", BOB, form={"value": "v"}).status \
            in (200, 201)
    for m in c.members:
        m.stop()
    for m in c.members:
        c.launch(m)
    c.wait_leader()
    for m in c.members:
        assert wait_for(lambda m=m: c.healthy(m), 20), m.log_tail()
        check_enforced(m.client_port, f"{m.name} restarted")
    # A member joining now gets the auth state from the leader's snapshot and enforces it at once.
    joined = c.add_member("m4", c.members[0], headers=ROOT)
    assert wait_for(lambda: call(joined.client_port, "GET", "/v2/auth/enable").json() == {"enabled": True}, 20)
    check_enforced(joined.client_port, "joined")
    assert "rootpw" not in "".join(m.log() for m in c.members), "a password reached a log"


def test_member_changes_need_root_and_root_stays(make_cluster: MakeCluster) -> None:
    c: Cluster = make_cluster(3)
    port = c.members[1].client_port  # a follower (or not): any member answers
    set_up_auth(port)
    r = call(port, "POST", "/v2/members", BOB, doc={"peerURLs": ["http://127.0.0.1:1"]})
    assert (r.status, r.json()) == (401, {"message": "Insufficient credentials"})
    assert call(port, "GET", "/v2/members").status == 200  # reading needs nothing
    r = call(port, "DELETE", "/v2/auth/users/root", ROOT)
    assert (r.status, r.json()) == (403, {"message": "auth: Cannot delete root user while auth is enabled."})
    assert call(port, "DELETE", "/v2/auth/enable", BOB).status == 401
    assert call(port, "DELETE", "/v2/auth/enable", ROOT).status == 200
    assert call(port, "GET", "/v2/keys/app/x").status in (200, 404)  # auth off: anyone again
