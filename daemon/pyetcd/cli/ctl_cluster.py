"""pyetcdctl's cluster commands: member list/add/remove/update and cluster-health, worded as etcdctl v2.

Member commands check their arguments first, then connect (and sync), and report any failure as the
bare error text with exit 1. cluster-health lists members without syncing, asks every client URL of
every member for /health, and exits 0 only when all members are healthy (5 otherwise, 4 when the
member list itself cannot be read).
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from ..client.members import BadPeerURL, Member, MembersClient
from ..client.v2 import ClientError
from .ctl_conn import EXIT_CLUSTER_NOT_HEALTHY, EXIT_SERVER_ERROR, Conn, Exit
from .ctl_keys import Ctx
from .ctl_output import CtlClusterError, DeadlineExceeded, dial_error, error_text, handle_error
from .sigint import sigint_raises

_Failure = (ClientError, CtlClusterError, DeadlineExceeded, BadPeerURL)


def _go_q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # Go's %q for the plain strings printed here


def _die(ctx: Ctx, text: str, newline: bool = True) -> Exit:
    ctx.err.write(text + ("\n" if newline else ""))
    return Exit(1)


def cmd_member_list(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    if args:
        raise _die(ctx, "No arguments accepted")
    conn = ctx.connect()
    deadline = conn.deadline()  # one total timeout for both requests, as etcdctl's deferred cancel
    try:
        members = conn.members(deadline)
    except _Failure as e:
        raise _die(ctx, error_text(e)) from None
    try:
        leader = conn.do(lambda c, t: MembersClient(c).leader(timeout=t), deadline)
    except _Failure as e:
        raise _die(ctx, f"Failed to get leader:  {error_text(e)}") from None
    for m in members:
        if not m.name:
            ctx.out.write(f"{m.id}[unstarted]: peerURLs={','.join(m.peer_urls)}\n")
        else:
            ctx.out.write(f"{m.id}: name={m.name} peerURLs={','.join(m.peer_urls)} "
                          f"clientURLs={','.join(m.client_urls)} isLeader={'true' if m.id == leader.id else 'false'}\n")
    return 0


def cmd_member_add(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    if len(args) != 2:
        raise _die(ctx, "Provide a name and a single member peerURL")
    conn = ctx.connect()
    name, url = args
    deadline = conn.deadline()
    try:
        added = conn.do(lambda c, t: MembersClient(c).add(url, timeout=t), deadline)
    except _Failure as e:
        raise _die(ctx, error_text(e)) from None
    ctx.out.write(f"Added member named {name} with ID {added.id} to cluster\n")
    try:
        members = conn.members(deadline)
    except _Failure as e:
        raise _die(ctx, error_text(e)) from None
    conf = [f"{name if m.id == added.id else m.name}={u}" for m in members for u in m.peer_urls]
    ctx.out.write(f"\nETCD_NAME={_go_q(name)}\nETCD_INITIAL_CLUSTER={_go_q(','.join(conf))}\n"
                  'ETCD_INITIAL_CLUSTER_STATE="existing"\n')
    return 0


def cmd_member_remove(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    if len(args) != 1:
        raise _die(ctx, "Provide a single member ID")
    target = args[0]
    conn = ctx.connect()
    deadline = conn.deadline()
    try:
        members = conn.members(deadline)
    except _Failure as e:
        raise _die(ctx, f"Error while verifying ID against known members: {error_text(e)}") from None
    found = False
    for m in members:
        found = found or m.id == target
        if m.name == target:
            ctx.err.write(f"Found a member named {m.name}; if this is correct, please use its ID, eg:\n"
                          f"\tetcdctl member remove {m.id}\n"
                          "For more details, read the documentation at https://github.com/etcd-io/etcd/blob/"
                          "master/Documentation/runtime-configuration.md#remove-a-member\n\n")
    if not found:
        raise _die(ctx, f"Couldn't find a member in the cluster with an ID of {target}.")
    try:
        conn.do(lambda c, t: MembersClient(c).remove(target, timeout=t), deadline)
    except _Failure as e:
        raise _die(ctx, f"Received an error trying to remove member {target}: {error_text(e)}", newline=False) from None
    ctx.out.write(f"Removed member {target} from cluster\n")
    return 0


def cmd_member_update(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    if len(args) != 2:
        raise _die(ctx, "Provide an ID and a list of comma separated peerURL (0xabcd http://example.com,"
                        "http://example1.com)")
    conn = ctx.connect()
    mid, urls = args
    try:
        conn.do(lambda c, t: MembersClient(c).update(mid, urls.split(","), timeout=t), conn.deadline())
    except _Failure as e:
        raise _die(ctx, error_text(e)) from None
    ctx.out.write(f"Updated member with ID {mid} in cluster\n")
    return 0


# ---- cluster-health ----------------------------------------------------------------------------


def _health(conn: Conn, url: str) -> tuple[bool | None, str]:
    """(healthy?, error text): None when the member could not be asked or did not answer JSON."""
    parts = urlsplit(url)
    target = url + "/health"
    try:
        host = parts.hostname or ""
        if parts.scheme == "https":
            ctx = conn.ssl_context or ssl.create_default_context()
            c: http.client.HTTPConnection = http.client.HTTPSConnection(host, parts.port or 443,
                                                                       timeout=conn.health_timeout(), context=ctx)
        elif parts.scheme == "http":
            c = http.client.HTTPConnection(host, parts.port or 80, timeout=conn.health_timeout())
        else:
            return None, f'Get "{target}": unsupported protocol scheme "{parts.scheme}"'
        try:
            c.request("GET", (parts.path or "") + "/health")
            data = c.getresponse().read()
        finally:
            c.close()
    except (OSError, http.client.HTTPException) as e:
        return None, f'Get "{target}": {dial_error(url, e)}'
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        first = data.strip()[:1].decode("latin-1") or "EOF"
        return None, (f"invalid character '{first}' looking for beginning of value" if first != "EOF"
                      else "unexpected end of JSON input")
    health = body.get("health") if isinstance(body, dict) else None
    return health == "true" or health is True, ""


def _check_once(ctx: Ctx, conn: Conn, members: list[Member]) -> bool:
    healthy = 0
    for m in members:
        if not m.client_urls:
            ctx.out.write(f"member {m.id} is unreachable: no available published client urls\n")
            continue
        checked = False
        for url in m.client_urls:
            ok, problem = _health(conn, url)
            if ok is None:
                ctx.out.write(f"failed to check the health of member {m.id} on {url}: {problem}\n")
                continue
            checked = True
            if ok:
                healthy += 1
                ctx.out.write(f"member {m.id} is healthy: got healthy result from {url}\n")
            else:
                ctx.out.write(f"member {m.id} is unhealthy: got unhealthy result from {url}\n")
            break
        if not checked:
            ctx.out.write(f"member {m.id} is unreachable: [{' '.join(m.client_urls)}] are all unreachable\n")
    if healthy == len(members):
        ctx.out.write("cluster is healthy\n")
    elif healthy == 0:
        ctx.out.write("cluster is unavailable\n")
    else:
        ctx.out.write("cluster is degraded\n")
    return healthy == len(members)


def cmd_cluster_health(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    if not v["forever"]:
        return _cluster_health(ctx, v)
    try:  # etcdctl's signal.Notify(os.Interrupt), exit 0 on it: even if SIGINT was inherited ignored
        with sigint_raises():
            return _cluster_health(ctx, v)
    except KeyboardInterrupt:
        return 0


def _cluster_health(ctx: Ctx, v: dict[str, Any]) -> int:
    conn = ctx.connect(sync=False)
    try:
        members = conn.members(None)  # etcdctl lists them with no total timeout (but the per-request one)
    except _Failure as e:
        ctx.out.write("cluster may be unhealthy: failed to list members\n")
        ctx.out.flush()
        handle_error(e, ctx.err)
        raise Exit(EXIT_SERVER_ERROR) from None
    try:
        while True:
            ok = _check_once(ctx, conn, members)
            if not v["forever"]:
                return 0 if ok else EXIT_CLUSTER_NOT_HEALTHY
            ctx.out.write("\nnext check after 10 second...\n\n")
            ctx.out.flush()
            time.sleep(10)
    except KeyboardInterrupt:
        return 0
