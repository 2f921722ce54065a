"""The client HTTP API as pure functions: a parsed HTTP request in, an Outcome out.

Outcomes: Reply (answer now), Propose (a Request that must go through the log first; answer with
`render_result` once applied) and StartWatch (register a watcher; answer as events arrive). Routing,
method checks, parameter parsing and JSON shapes follow etcd 3.4's v2 API field by field; see
shared/spec/etcd-v2-api.md. Nothing here touches sockets, clocks or files: the runtime passes `now_ns`
and the Date header in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from .. import ETCD_CLUSTER_VERSION, ETCD_SERVER_VERSION
from ..raft.types import ConfChange, ConfChangeType
from ..server.members import Member, id_hex, member_id
from ..server.requests import DELETE, POST, PUT, Request
from ..store import errors
from ..store.errors import V2Error
from ..store.event import Event, dump_json
from ..store.store import clean_key
from . import forms
from .auth_api import NO_AUTH, NOBODY, AuthApi, Identity, ProposeAuth
from .status import ServerView

Headers = list[tuple[bytes, bytes]]

FORM_BYTES_MAX = 10 * 1024 * 1024  # Go's ParseForm limit: exactly 10 MiB is accepted
CORS: Headers = [
    (b"Access-Control-Allow-Headers", b"accept, content-type, authorization"),
    (b"Access-Control-Allow-Methods", b"POST, GET, OPTIONS, PUT, DELETE"),
    (b"Access-Control-Allow-Origin", b"*"),
]
JSON_CT = (b"Content-Type", b"application/json")
TEXT_CT = (b"Content-Type", b"text/plain; charset=utf-8")
HTML_CT = (b"Content-Type", b"text/html; charset=utf-8")
NOSNIFF = (b"X-Content-Type-Options", b"nosniff")
KEYS_ALLOW = b"HEAD,GET,PUT,POST,DELETE"


@dataclass(slots=True)
class Reply:
    status: int
    headers: Headers
    body: bytes
    head: bool = False  # HEAD: send headers (with the GET's Content-Length) but no body
    close: bool = False
    no_length: bool = False  # send no Content-Length (Go's HEAD redirect)


@dataclass(slots=True)
class Propose:
    request: Request
    no_value: bool = False


@dataclass(slots=True)
class QuorumRead:
    """GET ?quorum=true: served locally once a ReadIndex confirmed by a quorum has been applied."""

    key: str
    recursive: bool
    sorted: bool


@dataclass(slots=True)
class ProposeConf:
    """A membership change; answered when its entry is applied (201 with the member for an add)."""

    change: ConfChange
    member: Member | None = None


@dataclass(slots=True)
class StartWatch:
    path: str
    recursive: bool
    stream: bool
    since_index: int
    head: bool


Outcome = Reply | Propose | StartWatch | QuorumRead | ProposeConf | ProposeAuth


def plain_error(status: int, text: bytes, extra: Headers | None = None) -> Reply:
    return Reply(status, [*CORS, TEXT_CT, NOSNIFF, *(extra or [])], text)


NOT_FOUND = plain_error(404, b"404 page not found\n")


def method_not_allowed(allow: bytes) -> Reply:
    return plain_error(405, b"Method Not Allowed\n", [(b"Allow", allow)])


def bad_request_line() -> Reply:
    """What Go's server itself answers for an unparsable request: no handler, no CORS, then close."""
    return Reply(400, [(b"Content-Type", b"text/plain; charset=utf-8"), (b"Connection", b"close")],
                 b"400 Bad Request", close=True)


def find_header(headers: Headers, name: bytes) -> bytes | None:
    """First value of a header by lowercase name."""
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


class ClientApi:
    """Routes one request. `view` exposes the live state it reads (store, indexes, members, stats)."""

    def __init__(self, view: ServerView) -> None:
        self.view = view
        self.auth_api = AuthApi(view.cluster_id_bytes)
        self._who = NOBODY  # the identity of the request being routed (see http/auth_api.py)

    # ---- entry point ---------------------------------------------------------------------------

    def handle(self, method: str, target: bytes, headers: Headers, body: bytes, now_ns: int,
               who: Identity = NOBODY) -> Outcome:
        """`who` matters only while auth is enabled: the runtime verified its credentials."""
        self._who = who
        raw_path, _, raw_query = target.decode("utf-8", "surrogateescape").partition("?")
        try:
            path = forms.unescape(raw_path, query=False) if "%" in raw_path else raw_path
        except forms.FormError:
            return bad_request_line()
        if method == "OPTIONS":
            return Reply(200, list(CORS), b"")
        cleaned = forms.clean_path(path)
        if cleaned != path:
            return _redirect(method, cleaned, raw_query)
        if path == "/v2/keys" or path.startswith("/v2/keys/"):
            return self.keys(method, path[8:], raw_query, headers, body, now_ns)
        if path == "/v2/members" or path.startswith("/v2/members/"):
            return self.members(method, path[11:], headers, body, now_ns)
        if path == "/v2/machines":
            if method not in ("GET", "HEAD"):
                return method_not_allowed(b"GET,HEAD")
            urls = ", ".join(u for m in self.view.members.ordered() for u in m.client_urls)
            return Reply(200, [*CORS, TEXT_CT], urls.encode(), head=method == "HEAD")
        simple = _SIMPLE_GETS.get(path)
        if simple is not None:
            if method != "GET":
                return method_not_allowed(b"GET")
            return simple(self, now_ns)
        if path.startswith("/v2/auth/"):
            return self.auth(method, path, body)
        return NOT_FOUND

    # ---- /v2/keys ------------------------------------------------------------------------------

    def keys(self, method: str, raw_key: str, raw_query: str, headers: Headers, body: bytes,
             now_ns: int) -> Outcome:
        if method not in ("GET", "HEAD", "PUT", "POST", "DELETE"):
            return method_not_allowed(KEYS_ALLOW)
        try:
            return self._keys(method, raw_key, raw_query, headers, body, now_ns)
        except V2Error as e:
            return self.error_reply(e, head=method == "HEAD")

    def _keys(self, method: str, raw_key: str, raw_query: str, headers: Headers, body: bytes,
              now_ns: int) -> Outcome:
        form: dict[str, str] = {}
        if method in ("PUT", "POST") and body and forms.is_form_urlencoded(find_header(headers, b"content-type")):
            if len(body) > FORM_BYTES_MAX:
                raise V2Error(errors.INVALID_FORM, "http: POST too large")
            err = forms.parse_query(body.decode("utf-8", "surrogateescape"), form)
            if err is not None:
                raise V2Error(errors.INVALID_FORM, str(err))
        if raw_query:
            err = forms.parse_query(raw_query, form)
            if err is not None:
                raise V2Error(errors.INVALID_FORM, str(err))
        key = clean_key(raw_key)
        if not form:  # the hot path: a plain GET/PUT/DELETE without parameters
            if self.view.auth.enabled and not self._may(method, raw_key, False):
                return self.error_reply(UNAUTHORIZED)
            return self._plain(method, key, now_ns)
        if len(form) == 1 and "value" in form and method in ("PUT", "POST"):  # the other hot path
            if self.view.auth.enabled and not self._may(method, raw_key, False):
                return self.error_reply(UNAUTHORIZED)
            return Propose(Request(PUT if method == "PUT" else POST, key, value=form["value"], time_ns=now_ns))
        p = _KeyParams(form, method)
        if self.view.auth.enabled and not self._may(method, raw_key, p.recursive):  # checked after parsing, as etcd
            return self.error_reply(UNAUTHORIZED)
        if method in ("GET", "HEAD"):
            if p.quorum and method == "GET":
                return QuorumRead(key, p.recursive, p.sorted)
            if p.wait:
                return StartWatch(key, p.recursive, p.stream, p.wait_index, method == "HEAD")
            return self.get_reply(key, p.recursive, p.sorted, now_ns, method == "HEAD")
        expire_at_ns = now_ns + p.ttl_s * 1_000_000_000 if p.ttl_s is not None else 0
        if method == "DELETE":
            req = Request(DELETE, key, dir=p.dir, prev_value=p.prev_value, prev_index=p.prev_index,
                          recursive=p.recursive, time_ns=now_ns)
            return Propose(req)
        req = Request(PUT if method == "PUT" else POST, key, value=form.get("value", ""), dir=p.dir,
                      prev_value=p.prev_value, prev_index=p.prev_index, prev_exist=p.prev_exist,
                      expire_at_ns=expire_at_ns, refresh=p.refresh, time_ns=now_ns)
        return Propose(req, no_value=p.no_value)

    def _plain(self, method: str, key: str, now_ns: int) -> Outcome:
        if method == "GET" or method == "HEAD":
            return self.get_reply(key, False, False, now_ns, method == "HEAD")
        kind = {"PUT": PUT, "POST": POST, "DELETE": DELETE}[method]
        return Propose(Request(kind, key, time_ns=now_ns))

    def _may(self, method: str, raw_key: str, recursive: bool) -> bool:
        """etcd's hasKeyPrefixAccess: no credentials -> the guest role; bad ones -> no."""
        who = self._who
        if who.present and who.user is None:
            return False
        return self.view.auth.may(who.user, raw_key, method not in ("GET", "HEAD"), recursive)

    def get_reply(self, key: str, recursive: bool, sort_keys: bool, now_ns: int, head: bool) -> Reply:
        try:
            event = self.view.store.get(key, recursive, sort_keys, now_ns)
        except V2Error as e:
            return self.error_reply(e, head)
        return self.event_reply(event, False, head)

    def event_reply(self, event: Event, no_value: bool, head: bool = False) -> Reply:
        view = self.view
        headers = [*CORS, JSON_CT, (b"X-Etcd-Cluster-Id", view.cluster_id_bytes),
                   (b"X-Etcd-Index", b"%d" % event.etcd_index), (b"X-Raft-Index", b"%d" % view.commit_index),
                   (b"X-Raft-Term", b"%d" % view.term)]
        return Reply(201 if event.is_created() else 200, headers, event.to_json_bytes(no_value), head)

    def error_reply(self, e: V2Error, head: bool = False) -> Reply:
        headers = [*CORS, JSON_CT, (b"X-Etcd-Cluster-Id", self.view.cluster_id_bytes),
                   (b"X-Etcd-Index", b"%d" % e.index)]
        return Reply(e.http_status, headers, dump_json(e.as_dict()), head)

    def render_conf_result(self, prop: ProposeConf) -> Reply:
        cid = (b"X-Etcd-Cluster-Id", self.view.cluster_id_bytes)
        if prop.member is not None:
            return Reply(201, [*CORS, JSON_CT, cid], dump_json(prop.member.to_json_obj()))
        return Reply(204, [*CORS, cid], b"")

    def timeout_reply(self) -> Reply:
        """etcd's answer when a write or quorum read cannot complete (no leader, no quorum)."""
        return self.error_reply(V2Error(errors.RAFT_INTERNAL, "etcdserver: request timed out", 0))

    def render_result(self, prop: Propose, result: Event | V2Error | None) -> Reply:
        """The answer to a proposal once its entry was applied."""
        if isinstance(result, V2Error):
            return self.error_reply(result)
        assert result is not None
        action = result.action
        no_value = prop.no_value and action in ("set", "create", "update", "compareAndSwap")
        return self.event_reply(result, no_value)

    def watch_headers(self, etcd_index: int) -> Headers:
        view = self.view
        return [*CORS, JSON_CT, (b"X-Etcd-Cluster-Id", view.cluster_id_bytes),
                (b"X-Etcd-Index", b"%d" % etcd_index), (b"X-Raft-Index", b"%d" % view.commit_index),
                (b"X-Raft-Term", b"%d" % view.term)]

    # ---- /v2/members ---------------------------------------------------------------------------

    def members(self, method: str, rest: str, headers: Headers, body: bytes, now_ns: int) -> Outcome:
        if method not in ("GET", "POST", "DELETE", "PUT"):
            return method_not_allowed(b"GET,POST,DELETE,PUT")
        auth = self.view.auth
        if method != "GET" and auth.enabled and not auth.is_root(self._who.user):
            return Reply(NO_AUTH[0], [*CORS, *NO_AUTH[1]], NO_AUTH[2])
        cid = (b"X-Etcd-Cluster-Id", self.view.cluster_id_bytes)
        member_id = rest.lstrip("/")
        if method == "GET":
            if member_id == "":
                body_obj = {"members": [m.to_json_obj() for m in self.view.members.ordered()]}
                return Reply(200, [*CORS, JSON_CT, cid], dump_json(body_obj))
            if member_id == "leader":
                leader = self.view.members.by_id.get(self.view.leader_id)
                if leader is None:
                    return _members_error(503, "During election", cid)
                return Reply(200, [*CORS, JSON_CT, cid], dump_json(leader.to_json_obj()))
            return _members_error(404, "Not found", cid)
        if member_id == "" and method in ("DELETE", "PUT"):
            return plain_error(405, b"Method Not Allowed\n", [cid])
        if method in ("POST", "PUT"):
            urls_or_error = _parse_peer_urls(headers, body, cid)
            if isinstance(urls_or_error, Reply):
                return urls_or_error
            urls = urls_or_error
        mid = _parse_member_id(member_id)
        members = self.view.members
        if method == "POST":
            if member_id:
                return NOT_FOUND
            for url in urls:
                if members.peer_url_owner(url) is not None:
                    return _members_error(409, "membership: peerURL exists", cid)
            new_id = member_id_for(urls, self.view.cluster_token, now_ns)
            member = Member(new_id, "", list(urls), [])
            return ProposeConf(ConfChange(ConfChangeType.ADD_NODE, new_id, member.encode()), member)
        if mid is not None and mid in members.removed:
            return _members_error(410, f"Member permanently removed: {member_id}", cid)
        if mid is None or mid not in members.by_id:
            return _members_error(404, f"No such member: {member_id}", cid)
        if method == "DELETE":
            return ProposeConf(ConfChange(ConfChangeType.REMOVE_NODE, mid))
        for url in urls:
            owner = members.peer_url_owner(url)
            if owner is not None and owner.id != mid:
                return _members_error(409, "membership: peerURL exists", cid)
        return ProposeConf(ConfChange(ConfChangeType.UPDATE_NODE, mid, json.dumps(list(urls)).encode()))

    # ---- stats, version, health, auth ----------------------------------------------------------

    def stats_self(self, now_ns: int) -> Reply:
        return Reply(200, [*CORS, JSON_CT], _compact(self.view.self_stats(now_ns)))

    def stats_leader(self, now_ns: int) -> Reply:
        view = self.view
        if view.leader_id != view.self_id:
            return Reply(403, [*CORS, JSON_CT], dump_json({"message": "not current leader"}))
        return Reply(200, [*CORS, JSON_CT], _compact({"leader": id_hex(view.self_id),
                                                      "followers": view.follower_stats()}))

    def stats_store(self, now_ns: int) -> Reply:
        store = self.view.store
        return Reply(200, [*CORS, JSON_CT], _compact(store.stats.to_json_obj(store.hub.count)))

    def version(self, now_ns: int) -> Reply:
        body = {"etcdserver": ETCD_SERVER_VERSION, "etcdcluster": ETCD_CLUSTER_VERSION}
        return Reply(200, [*CORS, JSON_CT], _compact(body))

    def health(self, now_ns: int) -> Reply:
        ok = self.view.healthy
        return Reply(200 if ok else 503, [*CORS, TEXT_CT], _compact({"health": "true" if ok else "false"}))

    def auth(self, method: str, path: str, body: bytes) -> Reply | ProposeAuth:
        out = self.auth_api.handle(self.view.auth, method, path, body, self._who)
        if isinstance(out, ProposeAuth):
            return out
        status, headers, payload = out
        return Reply(status, [*CORS, *headers], payload)

    def render_auth_result(self, result: object) -> Reply:
        status, headers, payload = self.auth_api.render(result)
        return Reply(status, [*CORS, *headers], payload)


UNAUTHORIZED = V2Error(errors.UNAUTHORIZED, "Insufficient credentials", 0)

_SIMPLE_GETS = {
    "/v2/stats/self": ClientApi.stats_self,
    "/v2/stats/leader": ClientApi.stats_leader,
    "/v2/stats/store": ClientApi.stats_store,
    "/version": ClientApi.version,
    "/health": ClientApi.health,
}


def _compact(obj: object) -> bytes:
    """json.Marshal output: compact, no trailing newline (etcd writes these with w.Write)."""
    return dump_json(obj)[:-1]


def _redirect(method: str, cleaned: str, raw_query: str) -> Reply:
    """Go's ServeMux redirect to the clean path (query kept); GET gets Go's little HTML body."""
    location = quote(cleaned, safe="/:@!$&'()*+,;=-._~", errors="surrogateescape")
    if raw_query:
        location += "?" + raw_query
    loc = location.encode("utf-8", "surrogateescape")
    if method == "GET":
        body = b'<a href="' + _html_escape(loc) + b'">Moved Permanently</a>.\n\n'
        return Reply(301, [*CORS, (b"Location", loc), HTML_CT], body)
    if method == "HEAD":
        return Reply(301, [*CORS, (b"Location", loc), HTML_CT], b"", head=True, no_length=True)
    return Reply(301, [*CORS, (b"Location", loc)], b"")


def _html_escape(raw: bytes) -> bytes:
    return (raw.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
            .replace(b'"', b"&#34;").replace(b"'", b"&#39;"))


def member_id_for(urls: list[str], token: str, now_ns: int) -> int:
    return member_id(urls, token, now_ns // 1_000_000_000)


def _members_error(status: int, message: str, cid: tuple[bytes, bytes]) -> Reply:
    return Reply(status, [*CORS, JSON_CT, cid], _compact({"message": message}))


def _parse_member_id(text: str) -> int | None:
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value if 0 <= value < 2**64 else None


def _parse_peer_urls(headers: Headers, body: bytes, cid: tuple[bytes, bytes]) -> list[str] | Reply:
    ctype = find_header(headers, b"content-type") or b""
    if ctype.split(b";", 1)[0].strip().lower() != b"application/json":
        msg = f"Bad Content-Type {ctype.decode('latin-1')}, accept application/json"
        return _members_error(415, msg, cid)
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return _members_error(400, _go_json_error(body, e), cid)
    urls = doc.get("peerURLs") if isinstance(doc, dict) else None
    if not urls:
        return _members_error(400, "no valid URLs given", cid)
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        return _members_error(400, "json: cannot unmarshal peerURLs", cid)
    for url in urls:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("http", "https", "unix", "unixs"):
            return _members_error(400, f"URL scheme must be http, https, unix, or unixs: {url}", cid)
        if not rest or "/" in rest.strip("/"):
            return _members_error(400, f"URL must not contain a path: {url}", cid)
    return list(urls)


def _go_json_error(body: bytes, err: Exception) -> str:
    """Approximate Go's encoding/json syntax error text for the common cases."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return "unexpected end of JSON input"
    if text.startswith("{") and len(text) > 1:
        nxt = text[1:].lstrip()
        if nxt and nxt[0] not in '"}':
            return f"invalid character '{nxt[0]}' looking for beginning of object key string"
    if text[0] not in '{["-0123456789tfn':
        return f"invalid character '{text[0]}' looking for beginning of value"
    return "unexpected end of JSON input" if "Expecting" in str(err) else str(err)


class _KeyParams:
    """/v2/keys parameters validated in etcd's order; the first failure raises V2Error (index 0)."""

    __slots__ = ("prev_index", "wait_index", "recursive", "sorted", "wait", "dir", "quorum", "stream",
                 "prev_value", "no_value", "ttl_s", "prev_exist", "refresh")

    def __init__(self, form: dict[str, str], method: str) -> None:
        self.prev_index = _uint(form, "prevIndex")
        self.wait_index = _uint(form, "waitIndex")
        self.recursive = _bool(form, "recursive", '"recursive"')
        self.sorted = _bool(form, "sorted", '"sorted"')
        self.wait = _bool(form, "wait", '"wait"')
        self.dir = _bool(form, "dir", '"dir"')
        self.quorum = _bool(form, "quorum", '"quorum"')
        self.stream = _bool(form, "stream", '"stream"')
        if self.wait and method != "GET":
            raise V2Error(errors.INVALID_FIELD, '"wait" can only be used with GET requests')
        self.prev_value = form.get("prevValue", "")
        if "prevValue" in form and self.prev_value == "":
            raise V2Error(errors.PREV_VALUE_REQUIRED, '"prevValue" cannot be empty')
        self.no_value = _bool(form, "noValueOnSuccess", '"noValueOnSuccess"')
        self.ttl_s: int | None = None
        ttl_text = form.get("ttl", "")
        if ttl_text:
            ttl = forms.parse_uint64(ttl_text)
            if ttl is None:
                raise V2Error(errors.TTL_NAN, 'invalid value for "ttl"')
            self.ttl_s = ttl
        self.prev_exist: bool | None = None
        if "prevExist" in form:
            self.prev_exist = _bool(form, "prevExist", "prevExist")
        self.refresh = False
        if "refresh" in form:
            self.refresh = _bool(form, "refresh", "refresh")
            if self.refresh:
                if form.get("value", "") != "":
                    raise V2Error(errors.REFRESH_VALUE, "A value was provided on a refresh")
                if self.ttl_s is None:
                    raise V2Error(errors.REFRESH_TTL_REQUIRED, "No TTL value set")


def _uint(form: dict[str, str], name: str) -> int:
    text = form.get(name)
    if text is None:
        return 0
    value = forms.parse_uint64(text)
    if value is None:
        raise V2Error(errors.INDEX_NAN, f'invalid value for "{name}"')
    return value


def _bool(form: dict[str, str], name: str, shown: str) -> bool:
    text = form.get(name)
    if text is None:
        return False
    value = forms.parse_bool(text)
    if value is None:
        raise V2Error(errors.INVALID_FIELD, f"invalid value for {shown}")
    return value
