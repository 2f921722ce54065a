"""`pyetcdctl import --from URL`: copy a running etcd v2 cluster's keyspace into the cluster of --endpoints
(moving from etcd to pyetcd; any v2 server works as either side).

Theory of operation:
* Read. One quorum read of the source's whole tree (GET /v2/keys/?recursive=true&sorted=true&quorum=true)
  gives every directory (empty ones too), value and remaining `ttl`. etcd leaves hidden nodes (a name
  starting with "_") out of every listing, so they are found two more ways: (1) the source's event history
  (etcd keeps the last 1000 changes): a recursive watch on "/" walked from the oldest kept index to the
  current one names each key changed there, hidden ones included; (2) `--hidden KEY`, repeatable, for
  older ones (e.g. /_coreos.com). Each hidden node found so is read recursively on its own (its visible
  descendants come with it; hidden ones below it must be found the same way). What was not seen cannot be
  copied: the summary says how many hidden subtrees were found and how.
  etcd's internal namespaces (members under /0, auth under /2) are not under /v2/keys and are not copied;
  v2 auth users and roles are not copied either.
* Write, parents before children (sorted by path components), one request per node, to the same name:
  directories with `dir=true` (so empty ones survive, and a directory's own TTL is kept), keys with their
  value. In-order keys (POSTed, 20-digit names) are written with PUT at the same name, so their order
  stays. A TTL is written as what was left of it at the read, less the time since (rounded up): a node
  reaches its end in the target within about a second of its end in the source. A node whose TTL ran out
  during the copy is skipped (with what is below it) and counted as expired.
  createdIndex/modifiedIndex are not kept (the target numbers its own writes), and neither are the
  source's event history nor its watchers.
* No clobbering. Unless --force, the target must hold no visible key, and every write is a create
  (prevExist=false), so nothing already there, hidden keys included, is overwritten: such a key fails.
  With --force the copy is merged into what the target holds: keys of the same name are overwritten (value
  and TTL), existing directories get the source directory's TTL (none: permanent), everything else in the
  target stays. A key where the other side has a directory (or the reverse) fails either way.
* Result. A summary on stdout (keys, bytes of values, directories, hidden, in-order, TTLs, expired). Each
  failed node is named on stderr and the copy goes on; a lost target (no endpoint answers) stops it.
  In-order keys with names above the target's index are reported: keys POSTed into those directories in the
  target sort before the copied ones until the target's index passes them.
* Exit status: 0 everything copied; 1 bad arguments, an unreadable source, a non-empty target without
  --force, or any node not copied. Reaching the target at all follows the other commands (2 when no
  endpoint can be reached while syncing, unless --no-sync).
* --timeout bounds each request (the source's full read: at least 30 s); --total-timeout bounds each
  write, not the whole import.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from ..client.connection import ConnectionOptions, connect
from ..client.v2 import ClientError, EtcdError, KeysClient, RequestTimeout
from .ctl_conn import Conn, Exit, PasswordError
from .ctl_flags import BOOL, SLICE, STRING, Flag
from .ctl_keys import Ctx
from .ctl_output import CtlClusterError, DeadlineExceeded, error_text

HISTORY_SIZE = 1000  # etcd v2's event history keeps the last 1000 events
SOURCE_READ_TIMEOUT_S = 30.0
HISTORY_STEP_TIMEOUT_S = 1.0  # a watch step with nothing left to return (only non-key events remain) ends the scan
IN_ORDER = re.compile(r"\d{20}")  # etcd's in-order names: the index, "%020d"
KEY_NOT_FOUND, NODE_EXIST, EVENT_INDEX_CLEARED = 100, 105, 401

FLAGS = (
    Flag(("from",), STRING, "the source cluster: a comma-delimited list of its client URLs"),
    Flag(("from-username",), STRING, "username[:password] for the source (prompt if password is not supplied)"),
    Flag(("from-ca-file",), STRING, "verify the source's certificates using this CA bundle"),
    Flag(("from-cert-file",), STRING, "identify to the source using this SSL certificate file"),
    Flag(("from-key-file",), STRING, "identify to the source using this SSL key file"),
    Flag(("hidden",), SLICE, "also copy this hidden key or directory (repeatable; hidden nodes are not listed)"),
    Flag(("force",), BOOL, "write into a target that already holds keys, overwriting keys of the same name"),
    Flag(("dry-run",), BOOL, "read the source and print what would be copied, write nothing"),
)


@dataclass
class Entry:
    key: str
    dir: bool
    value: str
    ttl: int  # seconds left at the read; 0: permanent
    read_at: float  # time.monotonic() when the read was sent
    parts: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.parts = tuple(p for p in self.key.split("/") if p)

    @property
    def hidden(self) -> bool:
        return any(p.startswith("_") for p in self.parts)

    @property
    def in_order(self) -> bool:
        return not self.dir and bool(self.parts) and IN_ORDER.fullmatch(self.parts[-1]) is not None


@dataclass
class Tally:
    keys: int = 0
    dirs: int = 0
    empty_dirs: int = 0
    hidden: int = 0
    in_order: int = 0
    key_ttls: int = 0
    dir_ttls: int = 0
    value_bytes: int = 0
    expired: int = 0
    max_in_order: int = 0

    def add(self, e: Entry, empty: bool) -> None:
        if e.dir:
            self.dirs += 1
            self.empty_dirs += empty
            self.dir_ttls += e.ttl > 0
        else:
            self.keys += 1
            self.key_ttls += e.ttl > 0
            self.value_bytes += len(e.value.encode("utf-8", "surrogatepass"))
            if e.in_order:
                self.in_order += 1
                self.max_in_order = max(self.max_in_order, int(e.parts[-1]))
        self.hidden += e.hidden


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


class Conflict(Exception):
    """The target holds a key where the source has a directory."""


class _Fail(Exception):
    """Stop the import with this message (exit 1)."""


# ---- the source --------------------------------------------------------------------------------


def _source_client(ctx: Ctx, v: dict[str, Any]) -> tuple[KeysClient, list[str]]:
    text = v["from"]
    if not text:
        raise _Fail("--from URL required (the source cluster's client URL)")
    urls = []
    for url in text.split(","):
        url = url.strip()
        parts = urlsplit(url)
        try:
            _ = parts.port
        except ValueError:
            raise _Fail(f'--from "{url}": bad port') from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Fail(f'--from "{url}": want http://host:port or https://host:port')
        urls.append(url)
    options = ConnectionOptions(endpoints=tuple(urls), ca_file=v["from-ca-file"], cert_file=v["from-cert-file"],
                                key_file=v["from-key-file"],
                                request_timeout_s=max(SOURCE_READ_TIMEOUT_S, ctx.opts.timeout_s))
    if bool(options.cert_file) != bool(options.key_file):
        raise _Fail("--from-cert-file and --from-key-file must both be given")
    user = v["from-username"]
    if user:
        name, sep, password = user.partition(":")
        if not sep:
            try:
                password = ctx.ask("Source password: ")
            except PasswordError as e:
                raise _Fail(str(e)) from None
        options = replace(options, username=name, password=password)
    try:
        return connect(options), urls
    except (ValueError, OSError) as e:  # ssl.SSLError is an OSError
        raise _Fail(f"--from: {e}") from None


def _entries(node: dict[str, Any], read_at: float, out: dict[str, Entry]) -> None:
    key = node.get("key")
    if isinstance(key, str) and key not in ("", "/"):
        ttl = node.get("ttl")
        value = node.get("value")
        out[key] = Entry(key, node.get("dir") is True, value if isinstance(value, str) else "",
                         ttl if isinstance(ttl, int) and ttl > 0 else 0, read_at)
    for child in node.get("nodes") or ():
        if isinstance(child, dict):
            _entries(child, read_at, out)


def _hidden_prefixes(key: str) -> list[str]:
    parts = [p for p in key.split("/") if p]
    return ["/" + "/".join(parts[:i + 1]) for i, p in enumerate(parts) if p.startswith("_")]


def _history_hidden(client: KeysClient, etcd_index: int) -> set[str]:
    """The hidden nodes (and hidden ancestors) of every key changed in the source's kept event history."""
    found: set[str] = set()
    index = max(1, etcd_index - HISTORY_SIZE + 1)
    while index <= etcd_index:
        try:
            resp = client.get("/", wait=True, recursive=True, wait_index=index, timeout=HISTORY_STEP_TIMEOUT_S)
        except EtcdError as e:
            m = re.search(r"\[(\d+)/\d+\]", f"{e.cause} {e.message}")
            if e.error_code == EVENT_INDEX_CLEARED and m and int(m.group(1)) > index:
                index = int(m.group(1))  # etcd's "the requested history has been cleared [start/asked]"
                continue
            break
        except RequestTimeout:
            break  # nothing the watch can return up to now: the rest are non-key events
        node = resp.node
        key, at = node.get("key"), node.get("modifiedIndex")
        if isinstance(key, str):
            found.update(_hidden_prefixes(key))
        if not isinstance(at, int) or at < index:
            break
        index = at + 1
    return found


@dataclass
class SourceTree:
    entries: dict[str, Entry]
    etcd_index: int
    from_history: int  # hidden subtrees found in the event history and still there
    from_flag: int  # --hidden nodes found
    missing: list[str]  # --hidden nodes not in the source
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # hidden nodes the source refused to show

    def empty(self) -> set[str]:
        """Directories nothing was read below."""
        parents = {e.parts[:-1] for e in self.entries.values()}
        return {e.key for e in self.entries.values() if e.dir and e.parts not in parents}


def read_source(client: KeysClient, extra_hidden: list[str]) -> SourceTree:
    """Raises ClientError (the root read) as it comes."""
    entries: dict[str, Entry] = {}
    sent = time.monotonic()
    resp = client.get("/", recursive=True, sorted=True, quorum=True)
    _entries(resp.node, sent, entries)
    etcd_index = resp.etcd_index or 0
    try:
        history = _history_hidden(client, etcd_index)
    except ClientError:
        history = set()  # best effort: the listing is what was asked for
    named = {("/" + "/".join(p for p in k.split("/") if p)) for k in extra_hidden if k.strip("/")}
    tree = SourceTree(entries, etcd_index, 0, 0, [])
    for key in sorted(history | named, key=lambda k: k.count("/")):
        sent = time.monotonic()
        try:
            got = client.get(key, recursive=True, sorted=True, quorum=True)
        except EtcdError as e:
            if e.error_code != KEY_NOT_FOUND:
                tree.unreadable.append((key, str(e)))  # e.g. a permission: the rest can still be copied
            elif key in named:
                tree.missing.append(key)
            continue
        _entries(got.node, sent, entries)
        tree.from_history += key in history
        tree.from_flag += key in named and key not in history
    return tree


# ---- the target --------------------------------------------------------------------------------


def _write(conn: Conn, e: Entry, ttl: int | None, force: bool) -> None:
    """One node; EtcdError for a refused write, the connection's errors as they come."""
    def do(op: Any) -> None:
        conn.do(op, conn.deadline())

    if not e.dir:
        if force:
            do(lambda c, t: c.set(e.key, e.value, ttl=ttl, timeout=t))
        else:
            do(lambda c, t: c.create(e.key, e.value, ttl=ttl, timeout=t))
        return
    try:
        do(lambda c, t: c.create(e.key, dir=True, ttl=ttl, timeout=t))
    except EtcdError as err:
        if not (force and err.error_code == NODE_EXIST):
            raise
        # An update with prevExist=true does not look at dir=true: on a key it would set its value to "".
        there = conn.do(lambda c, t: c.get(e.key, timeout=t), conn.deadline())
        if there.node.get("dir") is not True:
            raise Conflict("a key in the target, a directory in the source") from None
        do(lambda c, t: c.set(e.key, dir=True, prev_exist=True, ttl=ttl, timeout=t))


def _target_keys(conn: Conn) -> tuple[list[str], int]:
    resp = conn.do(lambda c, t: c.get("/", sorted=True, quorum=True, timeout=t), conn.deadline())
    names = [str(n.get("key", "")) for n in resp.node.get("nodes") or () if isinstance(n, dict)]
    return names, resp.etcd_index or 0


def cmd_import(ctx: Ctx, v: dict[str, Any], args: list[str]) -> int:
    def say(text: str) -> None:
        ctx.out.write(f"import: {text}\n")

    def fail(text: str) -> Exit:
        ctx.err.write(f"import: {text}\n")
        return Exit(1)

    if args:
        raise fail(f"no arguments accepted (got {' '.join(args)!r}); give the source with --from")
    try:
        client, urls = _source_client(ctx, v)
    except _Fail as e:
        raise fail(str(e)) from None
    source = ",".join(urls)
    force, dry = v["force"], v["dry-run"]
    if not dry:  # the target first: a refusal costs no read of the source
        conn = ctx.connect()
        target = ",".join(conn.endpoints)
        try:
            present, _ = _target_keys(conn)
        except (ClientError, CtlClusterError, DeadlineExceeded) as e:
            raise fail(f"cannot read the target {target}: {error_text(e).rstrip()}") from None
        if present and not force:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise fail(f"the target {target} already holds keys ({shown}); nothing copied. "
                       "Give --force to merge into it, overwriting keys of the same name")
    try:
        tree = read_source(client, v["hidden"])
    except ClientError as e:
        raise fail(f"cannot read the source {source}: {error_text(e).rstrip()}") from None
    for key in tree.missing:
        ctx.err.write(f"import: --hidden {key}: not in the source\n")
    for key, why in tree.unreadable:
        ctx.err.write(f"import: {key}: cannot read it from the source: {why}\n")
    order = sorted(tree.entries.values(), key=lambda e: e.parts)
    empty = tree.empty()
    found = []
    if tree.from_history:
        found.append(f"{_plural(tree.from_history, 'hidden subtree')} found in its event history")
    if tree.from_flag:
        found.append(f"{tree.from_flag} named with --hidden")
    say(f"read {_plural(len(order), 'node')} from {source} (etcd index {tree.etcd_index}"
        + "".join(f"; {f}" for f in found) + ")")

    if dry:
        tally = Tally()
        for e in order:
            tally.add(e, e.key in empty)
            ttl = f" (ttl {e.ttl})" if e.ttl else ""
            size = "" if e.dir else f" ({_plural(len(e.value.encode('utf-8', 'surrogatepass')), 'byte')})"
            ctx.out.write(f"{e.key}{'/' if e.dir else ''}{size}{ttl}\n")
        _summary(say, tally, "would copy", "")
        return 1 if tree.unreadable else 0

    tally = Tally()
    failed = [key for key, _ in tree.unreadable]
    gone: dict[tuple[str, ...], bool] = {}  # directories expired (True) or failed: what is below is skipped
    for e in order:
        below = next((expired for g, expired in gone.items() if e.parts[:len(g)] == g), None)
        if below is not None:
            if below:
                tally.expired += 1
            else:
                failed.append(e.key)
                ctx.err.write(f"import: {e.key}: not copied: its directory was not\n")
            continue
        ttl: int | None = None
        if e.ttl:
            left = e.ttl - (time.monotonic() - e.read_at)
            if left <= 0:
                tally.expired += 1
                if e.dir:
                    gone[e.parts] = True
                continue
            ttl = math.ceil(left)
        try:
            _write(conn, e, ttl, force)
        except (EtcdError, Conflict) as err:
            failed.append(e.key)
            ctx.err.write(f"import: {e.key}: {err}\n")
            if e.dir:
                gone[e.parts] = False
            continue
        except (ClientError, CtlClusterError, DeadlineExceeded) as err:
            ctx.err.write(f"import: {e.key}: {error_text(err).rstrip()}\n")
            _summary(say, tally, "copied", f" to {target} before the target was lost")
            raise Exit(1) from None
        tally.add(e, e.key in empty)
    try:
        _, index = _target_keys(conn)
    except (ClientError, CtlClusterError, DeadlineExceeded):
        index = 0
    _summary(say, tally, "copied", f" to {target}")
    if tally.in_order and index and tally.max_in_order >= index:
        say(f"note: in-order key names go up to {tally.max_in_order:020d} and the target's index is {index}: "
            "keys POSTed there sort before the copied ones until its index passes that")
    if failed:
        ctx.err.write(f"import: {_plural(len(failed), 'node')} not copied: {', '.join(failed)}\n")
        return 1
    return 0


def _summary(say: Any, t: Tally, verb: str, where: str) -> None:
    say(f"{verb} {_plural(t.keys, 'key')} ({_plural(t.value_bytes, 'byte')} of values) and "
        f"{_plural(t.dirs, 'directory', 'directories')} ({t.empty_dirs} empty){where}")
    say(f"{t.hidden} hidden, {t.in_order} in-order; with a TTL: {_plural(t.key_ttls, 'key')}, "
        f"{_plural(t.dir_ttls, 'directory', 'directories')}; {t.expired} expired before they could be copied")
