"""A small blocking etcd v2 keys client on http.client, behaving like Go's etcd `client` (v2) package.

Theory of operation:
* An endpoint is `scheme://[user:pass@]host[:port][/base]`. The userinfo, or the client's own
  `username`/`password` (which win), become HTTP basic auth (etcd v2 auth) on every request to it. A key's URL path is
  `base + prefix + "/" + key`, cleaned like Go's CanonicalURLPath (path.Clean, a trailing "/" kept).
  `prefix` defaults to "/v2/keys" (an ordinary cluster endpoint such as http://127.0.0.1:2379).
  Discovery passes the whole token URL as the endpoint and prefix="", so keys land directly under the
  token path with no "/v2/keys" inserted (discovery spec §4.1).
* One connection per request (no keep-alive): callers are short-lived, and it keeps a client safe to
  share between threads.
* Failover as in Go's httpClusterClient: start at the endpoint that answered last; a transport failure,
  a 5xx answer or a redirect problem moves on to the next endpoint; when none is left -> ClusterError.
  A socket timeout ends the request at once (Go's context deadline does the same) -> RequestTimeout.
* Bodies: 200/201 with a JSON object -> Response. On a watch, a 200/201 with an empty body means "poll
  again" (what proxies and timed-out servers send). Any other status carrying etcd's JSON error ->
  EtcdError. Anything that is not a JSON object -> InvalidResponse (Go: "response is invalid json").
* Query parameters and form fields are those Go's client sends, so servers see the same requests.
"""

from __future__ import annotations

import base64
import enum
import http.client
import json
import posixpath
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
DEFAULT_TIMEOUT_S = 5.0  # Go's client.DefaultRequestTimeout
MAX_REDIRECTS = 10  # Go's DefaultCheckRedirect
_PATH_SAFE = "/$&+,:;=@"  # what Go's URL.EscapedPath leaves alone (besides letters, digits and -._~)


class _Default(enum.Enum):
    TIMEOUT = "default"


DEFAULT = _Default.TIMEOUT  # "no timeout given": the client's timeout, or none at all for a watch
Timeout = float | None | _Default


class ClientError(Exception):
    """Base of every error this client raises."""


class ClusterError(ClientError):
    """No endpoint answered usefully: connection failures, 5xx answers, redirect trouble (Go's ClusterError).

    `errors` holds (endpoint, error) for every endpoint tried, in order."""

    def __init__(self, errors: list[tuple[str, Exception]]) -> None:
        self.errors = errors
        detail = "".join(f"; error #{i}: {ep}: {err}" for i, (ep, err) in enumerate(errors))
        super().__init__("client: etcd cluster is unavailable or misconfigured" + detail)


class RequestTimeout(ClientError, TimeoutError):
    """The endpoint accepted the request but did not answer within the timeout."""


class InvalidResponse(ClientError):
    """The answer is not etcd's JSON (an HTML error page, say): Go's "client: response is invalid json"."""


class EtcdError(ClientError):
    """An etcd v2 error answer such as {"errorCode":100,"message":"Key not found","cause":"/a","index":7}."""

    def __init__(self, status: int, error_code: int, message: str, cause: str, index: int) -> None:
        self.status = status
        self.error_code = error_code
        self.message = message
        self.cause = cause
        self.index = index
        super().__init__(f"{error_code}: {message} ({cause}) [{index}]")  # Go's client.Error format

    @staticmethod
    def from_body(status: int, body: dict[str, Any]) -> EtcdError:
        def num(name: str) -> int:
            value = body.get(name)
            return value if isinstance(value, int) else 0

        return EtcdError(status, num("errorCode"), str(body.get("message", "")), str(body.get("cause", "")),
                         num("index"))


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]  # the parsed JSON answer
    etcd_index: int | None  # X-Etcd-Index, when the server sent one

    @property
    def action(self) -> str | None:
        return self.body.get("action")

    @property
    def node(self) -> dict[str, Any]:
        node = self.body.get("node")
        return node if isinstance(node, dict) else {}

    @property
    def prev_node(self) -> dict[str, Any] | None:
        node = self.body.get("prevNode")
        return node if isinstance(node, dict) else None


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str  # IPv6 literals without brackets
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


@dataclass(frozen=True, slots=True)
class _Endpoint:
    origin: _Origin
    base_path: str  # unescaped
    auth: str | None  # an Authorization header built from the URL's user:password


@dataclass(frozen=True, slots=True)
class _Proxy:
    origin: _Origin
    auth: str | None  # a Proxy-Authorization header


class _EndpointFailed(Exception):
    """This endpoint gave no usable answer; the cluster client moves on to the next one."""


def basic_auth(username: str, password: str) -> str:
    """An Authorization header value: HTTP basic auth, the credentials UTF-8 encoded."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _basic(username: str | None, password: str | None) -> str | None:
    """Basic auth from a URL's (percent-encoded) userinfo, if it has any."""
    if username is None:
        return None
    return basic_auth(unquote(username), unquote(password or ""))


def _origin(scheme: str, host: str | None, port: int | None, text: str) -> _Origin:
    if scheme not in ("http", "https"):
        raise ValueError(f"{text!r}: scheme must be http or https")
    if not host:
        raise ValueError(f"{text!r}: no host")
    return _Origin(scheme, host, port or (443 if scheme == "https" else 80))


def _parse_endpoint(text: str) -> _Endpoint:
    parts = urlsplit(text.strip())
    origin = _origin(parts.scheme, parts.hostname, parts.port, text)  # .port raises ValueError if bad
    return _Endpoint(origin, unquote(parts.path), _basic(parts.username, parts.password))


def parse_proxy(text: str) -> _Proxy:
    """Like etcd's --discovery-proxy: a missing scheme means http://. Only plain-http proxies are supported
    (https targets are tunnelled through them with CONNECT)."""
    text = text.strip()
    parts = urlsplit(text if "://" in text else "http://" + text)
    if parts.scheme != "http":
        raise ValueError(f"proxy {text!r}: only http:// proxies are supported")
    return _Proxy(_origin("http", parts.hostname, parts.port, text), _basic(parts.username, parts.password))


def canonical_path(path: str) -> str:
    """Go's pathutil.CanonicalURLPath: rooted, cleaned, and a trailing slash kept (etcd reads it)."""
    if not path:
        return "/"
    if path[0] != "/":
        path = "/" + path
    clean = posixpath.normpath(path)
    if clean.startswith("//"):  # POSIX keeps a leading "//"; Go's path.Clean does not
        clean = "/" + clean.lstrip("/")
    if path.endswith("/") and clean != "/":
        clean += "/"
    return clean


class KeysClient:
    """Blocking v2 keys API over one or more endpoints (see the module docstring for URL building).

    `timeout` (seconds) bounds every blocking socket step of non-watch requests; watches wait for ever
    unless a call passes its own timeout."""

    def __init__(self, endpoints: Sequence[str], *, prefix: str = "/v2/keys", ssl_context: ssl.SSLContext | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, proxy: str | None = None,
                 on_request: Callable[[str, str, bytes | None], None] | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        """`username` (with `password`, default empty): etcd v2 auth credentials, sent as HTTP basic auth
        with every request, in place of any user:password in the endpoint URLs."""
        if isinstance(endpoints, str):
            raise TypeError("endpoints must be a sequence of URLs, not one string")
        if not endpoints:
            raise ValueError("no endpoints given")
        self._endpoints = [_parse_endpoint(e) for e in endpoints]
        if username is not None:
            auth = basic_auth(username, password or "")
            self._endpoints = [_Endpoint(e.origin, e.base_path, auth) for e in self._endpoints]
        self._prefix = "/" + prefix if prefix and not prefix.startswith("/") else prefix
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._proxy = parse_proxy(proxy) if proxy else None
        self._pinned = 0  # the endpoint that answered last; tried first (Go pins it the same way)
        self._on_request = on_request  # (method, absolute URL, body) before each send: etcdctl's --debug

    @property
    def endpoints(self) -> list[str]:
        return [str(e.origin) + e.base_path for e in self._endpoints]

    # -- the keys API ------------------------------------------------------------------------------

    def get(self, key: str, *, recursive: bool = False, sorted: bool = False, quorum: bool = False,
            wait: bool = False, wait_index: int | None = None, timeout: Timeout = DEFAULT) -> Response:
        """A read, or with `wait=True` a watch that returns the first event at `wait_index` or later."""
        if not wait:
            query = {"quorum": _bool(quorum), "recursive": _bool(recursive), "sorted": _bool(sorted)}
            return self._call("GET", key, query, None, self._timeout if timeout is DEFAULT else timeout)
        query = {"wait": "true", "recursive": _bool(recursive)}
        if wait_index is not None:
            query["waitIndex"] = str(wait_index)
        while True:
            try:
                return self._call("GET", key, query, None, None if timeout is DEFAULT else timeout, watch=True)
            except _EmptyBody:
                continue  # Go's watcher polls again on an empty 200

    def set(self, key: str, value: str = "", *, prev_exist: bool | None = None, prev_value: str | None = None,
            prev_index: int | None = None, ttl: int | None = None, dir: bool = False, refresh: bool = False,
            timeout: Timeout = DEFAULT) -> Response:
        query: dict[str, str] = {}
        form: dict[str, str] = {}
        if dir:
            query["dir"] = "true"
        else:
            if prev_value is not None:
                query["prevValue"] = prev_value
            form["value"] = value
        if prev_index:
            query["prevIndex"] = str(prev_index)
        if prev_exist is not None:
            query["prevExist"] = _bool(prev_exist)
        if ttl is not None:
            form["ttl"] = str(ttl)
        if refresh:
            form["refresh"] = "true"
        return self._call("PUT", key, query, form, self._timeout if timeout is DEFAULT else timeout)

    def create(self, key: str, value: str = "", *, ttl: int | None = None, dir: bool = False,
               timeout: Timeout = DEFAULT) -> Response:
        """Set only if the key does not exist yet (etcd answers errorCode 105 otherwise)."""
        return self.set(key, value, prev_exist=False, ttl=ttl, dir=dir, timeout=timeout)

    def create_in_order(self, dir_key: str, value: str = "", *, ttl: int | None = None,
                        timeout: Timeout = DEFAULT) -> Response:
        """POST: a new key under `dir_key` named after the etcd index (etcd's in-order keys)."""
        form = {"value": value}
        if ttl is not None:
            form["ttl"] = str(ttl)
        return self._call("POST", dir_key, {}, form, self._timeout if timeout is DEFAULT else timeout)

    def delete(self, key: str, *, recursive: bool = False, dir: bool = False, prev_value: str | None = None,
               prev_index: int | None = None, timeout: Timeout = DEFAULT) -> Response:
        query: dict[str, str] = {}
        if prev_value is not None:
            query["prevValue"] = prev_value
        if prev_index:
            query["prevIndex"] = str(prev_index)
        if dir:
            query["dir"] = "true"
        if recursive:
            query["recursive"] = "true"
        return self._call("DELETE", key, query, None, self._timeout if timeout is DEFAULT else timeout)

    # -- other APIs (members, health) ------------------------------------------------------------

    def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None,
                timeout: Timeout = DEFAULT) -> tuple[int, dict[str, str], bytes]:
        """A raw request to `path` under each endpoint's base path (not under the keys prefix), with the
        same failover as keys requests; the answer (status, lower-case headers, body) is not interpreted."""
        errors: list[tuple[str, Exception]] = []
        count = len(self._endpoints)
        for k in range(self._pinned, self._pinned + count):
            ep = self._endpoints[k % count]
            target = quote(canonical_path(ep.base_path + path), safe=_PATH_SAFE)
            try:
                answer = self._exchange(ep, method, target, body, self._timeout if timeout is DEFAULT else timeout,
                                        content_type)
            except _EndpointFailed as e:
                errors.append((str(ep.origin), e.__cause__ if isinstance(e.__cause__, Exception) else e))
                continue
            self._pinned = k % count
            return answer
        raise ClusterError(errors)

    # -- transport ---------------------------------------------------------------------------------

    def _call(self, method: str, key: str, query: dict[str, str], form: dict[str, str] | None,
              timeout: float | None, watch: bool = False) -> Response:
        body = urlencode(form).encode() if form is not None else None
        errors: list[tuple[str, Exception]] = []
        count = len(self._endpoints)
        for k in range(self._pinned, self._pinned + count):
            ep = self._endpoints[k % count]
            target = self._target(ep, key, query)
            try:
                status, headers, data = self._exchange(ep, method, target, body, timeout)
            except _EndpointFailed as e:
                errors.append((str(ep.origin), e.__cause__ if isinstance(e.__cause__, Exception) else e))
                continue
            self._pinned = k % count
            return _decode(status, headers, data, watch)
        raise ClusterError(errors)

    def _target(self, ep: _Endpoint, key: str, query: dict[str, str]) -> str:
        if key and not key.startswith("/"):
            key = "/" + key
        target = quote(canonical_path(ep.base_path + self._prefix + key), safe=_PATH_SAFE)
        if query:
            target += "?" + urlencode(sorted(query.items()))  # sorted, as Go's url.Values.Encode
        return target

    def _exchange(self, ep: _Endpoint, method: str, target: str, body: bytes | None, timeout: float | None,
                  content_type: str | None = FORM_CONTENT_TYPE) -> tuple[int, dict[str, str], bytes]:
        """One endpoint: send, following redirects with the same method and body (Go's client does)."""
        origin = ep.origin
        for _ in range(MAX_REDIRECTS + 1):
            auth = ep.auth if origin == ep.origin else None  # credentials stay with their own host
            status, headers, data = self._send(origin, method, target, body, auth, timeout, content_type)
            if 300 <= status < 400:
                location = headers.get("location")
                if not location:
                    raise _EndpointFailed("redirect without a Location header")
                try:
                    nxt = urlsplit(urljoin(f"{origin}{target}", location))
                    origin = _origin(nxt.scheme, nxt.hostname, nxt.port, location)
                except ValueError as e:
                    raise _EndpointFailed(f"bad redirect Location {location!r}") from e
                target = (nxt.path or "/") + (f"?{nxt.query}" if nxt.query else "")
                continue
            if status >= 500:  # Go treats a 5xx as "this member cannot serve" and tries the next one
                raise _EndpointFailed(f"server error {status}") from _error_of(status, data)
            return status, headers, data
        raise _EndpointFailed("too many redirects")

    def _send(self, origin: _Origin, method: str, target: str, body: bytes | None, auth: str | None,
              timeout: float | None, content_type: str | None = FORM_CONTENT_TYPE) -> tuple[int, dict[str, str], bytes]:
        headers: dict[str, str] = {}
        if content_type and (body is not None or method == "DELETE"):
            headers["Content-Type"] = content_type  # Go's keys client sets it on DELETE too
        if self._on_request is not None:
            self._on_request(method, f"{origin}{target}", body)
        if auth:
            headers["Authorization"] = auth
        conn = self._connection(origin, timeout)
        if self._proxy is not None and origin.scheme == "http":
            target = f"{origin}{target}"  # a forward proxy wants the absolute URI
            if self._proxy.auth:
                headers["Proxy-Authorization"] = self._proxy.auth
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        except TimeoutError as e:
            raise RequestTimeout(f"{method} {origin}{target}: timed out after {timeout}s") from e
        except (OSError, http.client.HTTPException) as e:
            raise _EndpointFailed(str(e)) from e
        finally:
            conn.close()

    def _connection(self, origin: _Origin, timeout: float | None) -> http.client.HTTPConnection:
        proxy = self._proxy
        if origin.scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            if proxy is None:
                return http.client.HTTPSConnection(origin.host, origin.port, timeout=timeout,
                                                   context=self._ssl_context)
            conn = http.client.HTTPSConnection(proxy.origin.host, proxy.origin.port, timeout=timeout,
                                               context=self._ssl_context)
            tunnel_headers = {"Proxy-Authorization": proxy.auth} if proxy.auth else None
            conn.set_tunnel(origin.host, origin.port, headers=tunnel_headers)  # TLS runs inside CONNECT
            return conn
        if proxy is None:
            return http.client.HTTPConnection(origin.host, origin.port, timeout=timeout)
        return http.client.HTTPConnection(proxy.origin.host, proxy.origin.port, timeout=timeout)


class _EmptyBody(Exception):
    """A 200/201 with no body on a watch: poll again."""


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidResponse(f"client: response is invalid json: {data[:80]!r}") from e
    if not isinstance(body, dict):
        raise InvalidResponse(f"client: response is invalid json: {data[:80]!r}")
    return body


def _error_of(status: int, data: bytes) -> Exception:
    try:
        return EtcdError.from_body(status, _json_object(data))
    except InvalidResponse as e:
        return e


def _decode(status: int, headers: dict[str, str], data: bytes, watch: bool) -> Response:
    if status not in (200, 201):
        raise EtcdError.from_body(status, _json_object(data))
    if not data:
        if watch:
            raise _EmptyBody()
        raise InvalidResponse("client: response body is empty")
    body = _json_object(data)
    raw_index = headers.get("x-etcd-index")
    try:
        index = int(raw_index) if raw_index is not None else None
    except ValueError as e:
        raise InvalidResponse(f"client: bad X-Etcd-Index {raw_index!r}") from e
    return Response(status, headers, body, index)
