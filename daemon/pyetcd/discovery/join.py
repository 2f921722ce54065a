"""The discovering member (discovery spec §4): register under a token, wait until `size` members have
registered, and derive the initial cluster from the first `size` registrations in creation order.

Theory of operation (etcd 3.4's v2discovery, with its recursion turned into loops):
1. check: read `<token>/_config/size`, list `<token>`, sort the registrations by createdIndex. The first
   `size` of them form the cluster; if `size` others precede us, the token is full and we stop at once,
   without registering.
2. register `<token>/<member-id>` with prevExist=false (errorCode 105 -> duplicate id), then watch that key
   at its createdIndex, which proves the server that answered can see the write.
3. check again (a member that lost the race for the last slot stops here), then watch the token directory
   recursively from X-Etcd-Index+1, adding each new registration, until `size` are known.
4. join the registrations' `name=url` values with "," -> the --initial-cluster string.
Only connection-level failures (ClusterError) are retried: one counter per run, sleeping
2**min(retries, retry_cap_exp) seconds; a retry re-runs the check (and then waits again from its index).
Every other failure is final, as in etcd: registering twice under one token would corrupt the cluster.

It runs before the event loop, so it blocks; `sleep` is injectable so tests need not wait.
"""

from __future__ import annotations

import enum
import logging
import posixpath
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pyetcd.client.v2 import ClientError, ClusterError, EtcdError, InvalidResponse, KeysClient
from pyetcd.gocompat.duration import format_duration
from pyetcd.server.members import member_id as _member_id

LOG = logging.getLogger("pyetcd.discovery")
MAX_RETRIES = 2**32 - 1  # etcd's nRetries: in practice unlimited
RETRY_CAP_EXP = 8  # etcd's maxExpoentialRetries: the sleep stops growing at 2**8 = 256 s

_KEY_NOT_FOUND = 100
_NODE_EXIST = 105
_EVENT_INDEX_CLEARED = 401
_MAX_CLEARED = 100  # outdated-watch recoveries per wait before giving up
_GONE_ACTIONS = frozenset({"delete", "expire", "compareAndDelete"})


class Kind(enum.Enum):
    """What went wrong; the value is etcd's message (str(DiscoveryError) for every kind but DUPLICATE_URL
    and REQUEST_FAILED, which carry their own text)."""

    FULL_CLUSTER = "discovery: cluster is full"
    DUPLICATE_ID = "discovery: found duplicate id"
    DUPLICATE_NAME = "discovery: found duplicate name"
    SIZE_NOT_FOUND = "discovery: size key not found"
    BAD_SIZE = "discovery: size key is bad"
    BAD_ENDPOINT = "discovery: bad discovery endpoint"
    INVALID_URL = "discovery: invalid URL"
    TOO_MANY_RETRIES = "discovery: too many retries"
    DUPLICATE_URL = "discovery: duplicate url"  # etcd: "discovery cluster <map> has duplicate url"
    REQUEST_FAILED = "discovery: request failed"  # any other etcd/transport error, passed through as etcd does


class DiscoveryError(Exception):
    """`kind` says what happened; `detail` keeps the underlying error text (e.g. the raw etcd error)."""

    def __init__(self, kind: Kind, detail: str = "", message: str | None = None) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(message or kind.value)


def explain(err: DiscoveryError, *, durl: str, name: str, data_dir: str, op: str = "join") -> list[tuple[int, str]]:
    """etcd's (log level, line) explanation printed before exiting 1 (spec §4.5, §4.7)."""
    if err.kind is Kind.DUPLICATE_ID:
        return [(logging.ERROR, f"member {name!r} has previously registered with discovery service token ({durl})."),
                (logging.ERROR, f"But etcd could not find valid cluster configuration in the given data dir ({data_dir})."),
                (logging.INFO, "Please check the given data dir path if the previous bootstrap succeeded"),
                (logging.INFO, "or use a new discovery token if the previous bootstrap failed.")]
    if err.kind is Kind.DUPLICATE_NAME:
        return [(logging.ERROR, f"member with duplicated name has registered with discovery service token({durl})."),
                (logging.ERROR, "please check (cURL) the discovery token for more information."),
                (logging.ERROR, "please do not reuse the discovery token and generate a new one to bootstrap the cluster.")]
    return [(logging.ERROR, f"failed to {op} discovery cluster ({err})"),
            (logging.INFO, f"discovery token {durl} was used, but failed to bootstrap the cluster."),
            (logging.INFO, "please generate a new discovery token and try to bootstrap again.")]


def self_config(name: str, peer_urls: Sequence[str]) -> str:
    """This member's registration value: `name=url` pairs sorted as strings (Go's URLsMap.String)."""
    return ",".join(sorted(f"{name}={url}" for url in peer_urls))


def discovery_member_id(peer_urls: Sequence[str], durl: str) -> int:
    """With discovery the cluster token is the discovery URL exactly as given (spec §1)."""
    return _member_id(list(peer_urls), durl)


def join_cluster(durl: str, member_id: int, self_config: str, *, ssl_context: ssl.SSLContext | None = None,
                 proxy: str | None = None, sleep: Callable[[float], None] = time.sleep, retry_cap_exp: int = RETRY_CAP_EXP,
                 max_retries: int = MAX_RETRIES, log: logging.Logger = LOG) -> str:
    """Register `member_id` with value `self_config` under the token at `durl`, wait for the others, and
    return the initial-cluster string "n0=url,n1=url,n2=url" (creation order). Raises DiscoveryError."""
    run = _Discovery(durl, member_id, ssl_context, proxy, sleep, retry_cap_exp, max_retries, log)
    return run.join(self_config)


def get_cluster(durl: str, *, ssl_context: ssl.SSLContext | None = None, proxy: str | None = None,
                sleep: Callable[[float], None] = time.sleep, retry_cap_exp: int = RETRY_CAP_EXP,
                max_retries: int = MAX_RETRIES, log: logging.Logger = LOG) -> str:
    """The cluster string without registering (etcd's GetCluster, for the proxy fallback): the first
    `size` registrations if the token is full, else wait until it is."""
    return _Discovery(durl, 0, ssl_context, proxy, sleep, retry_cap_exp, max_retries, log).get_cluster()


# -- cluster strings --------------------------------------------------------------------------------

def parse_cluster(text: str) -> dict[str, list[str]]:
    """`name=url,...` -> {name: [urls]} with etcd's URL rules (types.NewURLsMap); DiscoveryError(INVALID_URL)."""
    urls: dict[str, list[str]] = {}
    for item in text.split(","):
        if not item:
            continue
        name, _, url = item.partition("=")
        urls.setdefault(name, []).append(url)
    for name, values in urls.items():
        for url in values:
            problem = _url_problem(url.strip())
            if problem:
                raise DiscoveryError(Kind.INVALID_URL, f"{name}={url}: {problem}")
    return urls


_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:\[\]]*):([0-9]*)")  # Go's net.SplitHostPort + url's port rule


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError as e:
        return str(e)
    if parts.scheme not in ("http", "https", "unix", "unixs"):
        return "URL scheme must be http, https, unix, or unixs"
    if not _HOST_PORT.fullmatch(parts.netloc.rpartition("@")[2]):
        return 'URL address does not have the form "host:port"'
    if parts.path:
        return "URL must not contain a path"
    return None


def cluster_string(values: Sequence[str], size: int) -> str:
    """etcd's nodesToCluster plus the duplicate-URL check etcd's server runs on the result."""
    text = ",".join(values)
    urls = parse_cluster(text)
    if len(urls) != size:
        raise DiscoveryError(Kind.DUPLICATE_NAME, text)
    seen: set[str] = set()
    for url in (u.strip() for values_ in urls.values() for u in values_):
        if url in seen:
            pairs = ",".join(sorted(f"{n}={u.strip()}" for n, us in urls.items() for u in us))
            raise DiscoveryError(Kind.DUPLICATE_URL, url, f"discovery cluster {pairs} has duplicate url")
        seen.add(url)
    return text


# -- the algorithm ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Node:
    key: str
    value: str
    created_index: int
    modified_index: int

    @property
    def base(self) -> str:
        return posixpath.basename(self.key)

    @staticmethod
    def parse(raw: Any) -> _Node:
        if not isinstance(raw, dict):
            raise DiscoveryError(Kind.BAD_ENDPOINT, f"not a node: {raw!r}")
        key, value = raw.get("key"), raw.get("value", "")
        created, modified = raw.get("createdIndex"), raw.get("modifiedIndex", raw.get("createdIndex"))
        if not isinstance(key, str) or not isinstance(value, str) or not isinstance(created, int) \
                or not isinstance(modified, int):
            raise DiscoveryError(Kind.BAD_ENDPOINT, f"malformed node: {raw!r}")
        return _Node(key, value, created, modified)


@dataclass(frozen=True, slots=True)
class _Listing:
    nodes: list[_Node]  # by createdIndex; only the first `size` when full
    size: int
    index: int  # X-Etcd-Index of the listing: the watch starts after it
    dir_key: str  # the token directory's key as the server names it
    full: bool


class _HistoryCleared(Exception):
    """The watch asked for an index older than the server's event history (errorCode 401)."""

    def __init__(self, index: int, error: EtcdError) -> None:
        super().__init__(index)
        self.index = index
        self.error = error


class _Discovery:
    def __init__(self, durl: str, member_id: int, ssl_context: ssl.SSLContext | None, proxy: str | None,
                 sleep: Callable[[float], None], retry_cap_exp: int, max_retries: int, log: logging.Logger) -> None:
        try:
            parts = urlsplit(durl)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            ok = False
        if not ok:
            raise DiscoveryError(Kind.INVALID_URL, f"discovery URL {durl!r}")
        # The scheme://host[:port] is the only endpoint; the URL path is the token prefix (spec §4.1).
        self.endpoint = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self.self_base = format(member_id, "x")
        try:
            self.client = KeysClient([durl], prefix="", ssl_context=ssl_context, proxy=proxy)
        except ValueError as e:
            raise DiscoveryError(Kind.INVALID_URL, str(e)) from e
        self.sleep = sleep
        self.retry_cap_exp = retry_cap_exp
        self.max_retries = max_retries
        self.retries = 0
        self.log = log

    # -- the two entry points

    def join(self, config: str) -> str:
        if self.check().full:
            raise DiscoveryError(Kind.FULL_CLUSTER)
        self.register(config)
        listing = self.check()
        if listing.full:
            raise DiscoveryError(Kind.FULL_CLUSTER)
        nodes, size = self.wait(listing, full_ok=False)
        return cluster_string([n.value for n in nodes], size)

    def get_cluster(self) -> str:
        listing = self.check()
        nodes, size = (listing.nodes, listing.size) if listing.full else self.wait(listing, full_ok=True)
        return cluster_string([n.value for n in nodes], size)

    # -- steps

    def backoff(self, step: str, err: ClusterError) -> None:
        if self.retries >= self.max_retries:
            raise DiscoveryError(Kind.TOO_MANY_RETRIES, str(err)) from err
        self.retries += 1
        delay = 2 ** min(self.retries, self.retry_cap_exp)
        self.log.warning("%s: error connecting to %s, retrying in %s", step, self.endpoint, format_duration(delay))
        self.log.debug("discovery: %s", err)
        self.sleep(delay)

    def check(self) -> _Listing:
        while True:
            try:
                return self._check_once()
            except ClusterError as e:
                self.backoff("cluster status check", e)

    def _check_once(self) -> _Listing:
        try:
            resp = self.client.get("_config/size")
        except EtcdError as e:
            if e.error_code == _KEY_NOT_FOUND:
                raise DiscoveryError(Kind.SIZE_NOT_FOUND, str(e)) from e
            raise _final(e) from e
        except ClusterError:
            raise
        except ClientError as e:
            raise _final(e) from e
        value = resp.node.get("value")
        # Go's ParseUint(value, 10, 0): ASCII digits only, no sign or spaces, below 2**64.
        if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or int(value) >= 2**64:
            raise DiscoveryError(Kind.BAD_SIZE, repr(value))
        size = int(value)
        if size == 0:  # etcd would register and then build an empty cluster; refuse before registering
            raise DiscoveryError(Kind.BAD_SIZE, "size 0")
        try:
            resp = self.client.get("")
        except ClusterError:
            raise
        except ClientError as e:
            raise _final(e) from e
        children = resp.node.get("nodes") or []
        if not isinstance(children, list):
            raise DiscoveryError(Kind.BAD_ENDPOINT, f"nodes is not a list: {children!r}")
        nodes = sorted((n for n in map(_Node.parse, children) if n.base != "_config"),
                       key=lambda n: n.created_index)
        index = resp.etcd_index
        if index is None:  # no X-Etcd-Index (an odd proxy): the newest index we saw is the next best start
            index = max([n.modified_index for n in nodes] + [_int(resp.node.get("modifiedIndex"))])
        dir_key = resp.node.get("key")
        dir_key = dir_key if isinstance(dir_key, str) else ""
        for i, node in enumerate(nodes):
            if node.base == self.self_base:
                break
            if i >= size - 1:  # `size` others came first: no slot left for us
                return _Listing(nodes[:size], size, index, dir_key, True)
        return _Listing(nodes, size, index, dir_key, False)

    def register(self, config: str) -> None:
        """Not retried, whatever fails: etcd gives up here too rather than risk a second registration."""
        try:
            resp = self.client.create(self.self_base, config)
        except EtcdError as e:
            if e.error_code == _NODE_EXIST:
                raise DiscoveryError(Kind.DUPLICATE_ID, str(e)) from e
            raise _final(e) from e
        except ClientError as e:
            raise _final(e) from e
        created = resp.node.get("createdIndex")
        if not isinstance(created, int):
            raise DiscoveryError(Kind.BAD_ENDPOINT, f"create answered {resp.body!r}")
        try:  # returns at once from the event history: the answering server sees our write
            self.client.get(self.self_base, wait=True, wait_index=created)
        except EtcdError as e:
            if e.error_code != _EVENT_INDEX_CLEARED:  # cleared history: the server is even further along
                raise _final(e) from e
        except ClientError as e:
            raise _final(e) from e

    def wait(self, listing: _Listing, *, full_ok: bool) -> tuple[list[_Node], int]:
        cleared = 0
        while True:
            try:
                return self._wait_once(listing)
            except ClusterError as e:
                self.backoff("waiting for other nodes", e)
            except _HistoryCleared as e:
                # etcd gives up here; a fresh listing says all the watch missed, so carry on from it.
                cleared += 1
                if cleared > _MAX_CLEARED:  # a server that answers 401 to every fresh index is broken
                    raise _final(e.error) from e.error
                self.log.warning("discovery: watch index %d is outdated, listing the token again", e.index)
            listing = self.check()
            if listing.full:
                if full_ok:
                    return listing.nodes, listing.size
                raise DiscoveryError(Kind.FULL_CLUSTER)

    def _wait_once(self, listing: _Listing) -> tuple[list[_Node], int]:
        size = listing.size
        found = listing.nodes[:size]
        for node in found:
            if node.base == self.self_base:
                self.log.info("found self %s in the cluster", node.base)
            else:
                self.log.info("found peer %s in the cluster", node.base)
        known = {n.key for n in found}
        next_index = listing.index + 1
        while len(found) < size:
            self.log.info("found %d peer(s), waiting for %d more", len(found), size - len(found))
            try:
                resp = self.client.get("", wait=True, wait_index=next_index, recursive=True)
            except EtcdError as e:
                if e.error_code == _EVENT_INDEX_CLEARED:
                    raise _HistoryCleared(next_index, e) from e
                raise _final(e) from e
            except ClusterError:
                raise
            except ClientError as e:
                raise _final(e) from e
            node = _Node.parse(resp.node)
            next_index = node.modified_index + 1
            if self._is_new_registration(resp.action, resp.node, node, known, listing.dir_key):
                self.log.info("found peer %s in the cluster", node.base)
                found.append(node)
                known.add(node.key)
        self.log.info("found %d needed peer(s)", len(found))
        return found, size

    @staticmethod
    def _is_new_registration(action: str | None, raw: dict[str, Any], node: _Node, known: set[str],
                             dir_key: str) -> bool:
        """etcd appends every event it sees; we skip the ones that cannot be a registration (hidden keys,
        deletions, updates of a known key, deeper keys), which only differ from etcd on a misused token."""
        if action in _GONE_ACTIONS or raw.get("dir") or node.key in known or node.base.startswith("_"):
            return False
        return not dir_key or posixpath.dirname(node.key) == dir_key


def _final(err: ClientError) -> DiscoveryError:
    if isinstance(err, InvalidResponse):
        return DiscoveryError(Kind.BAD_ENDPOINT, str(err))
    return DiscoveryError(Kind.REQUEST_FAILED, str(err), str(err))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0

