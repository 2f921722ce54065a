"""pyetcdctl's view of the cluster: endpoints, TLS, --debug, sync, and Go-style failover with timeouts.

Theory of operation (etcdctl v2 over Go's client package):
* Endpoints come from --endpoints, ETCDCTL_ENDPOINTS, --endpoint, ETCDCTL_ENDPOINT, --peers/-C,
  ETCDCTL_PEERS, else http://127.0.0.1:2379,http://127.0.0.1:4001. A missing scheme becomes http;
  "host:port" is Go's parse error; a scheme other than http(s) fails each request, not the start.
* --username user[:password] (else ETCDCTL_USERNAME) sends HTTP basic auth with every request; without
  ":password" the password is asked for first, as etcdctl's speakeasy asks: the prompt on stdout, echo
  turned off with `stty -echo` on stdin (so a non-terminal stdin gets stty's own complaint on stderr, as
  with etcdctl), one line read from stdin byte by byte (a trailing CR dropped; EOF ends it), echo back
  on, a newline on stdout.
* Unless --no-sync, the client first syncs: GET /v2/members and use the members' client URLs as
  endpoints. A sync failing to connect at all ends the command (exit 2); other sync failures are
  ignored and the given endpoints stay.
* Each request tries endpoints in turn from the one that answered last. A refused connection, a 5xx or
  no answer within --timeout (the per-request header timeout) moves on to the next endpoint; all failing
  is a cluster error. --total-timeout bounds a whole command (not watches); running out of it ends the
  request at once with "context deadline exceeded".
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

from ..client.connection import ConnectionOptions, connect
from ..client.members import Member, MembersClient
from ..client.v2 import ClusterError, KeysClient, RequestTimeout
from ..gocompat.strconv import quote as go_quote
from .ctl_output import (
    BadEndpoint,
    CtlClusterError,
    DeadlineExceeded,
    HeaderTimeout,
    handle_error,
    is_connection_error,
)

T = TypeVar("T")
DEFAULT_ENDPOINTS = "http://127.0.0.1:2379,http://127.0.0.1:4001"
DIAL_TIMEOUT_S = 30.0  # etcdctl's dial timeout, lowered to --total-timeout when that is shorter
EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_SERVER_ERROR, EXIT_CLUSTER_NOT_HEALTHY = 1, 2, 4, 5


class Exit(Exception):
    """Stop the command with this exit code (etcdctl calls os.Exit at the same points)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class GlobalOptions:
    endpoints: str = ""
    endpoint: str = ""
    peers: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    timeout_s: float = 2.0
    total_timeout_s: float = 5.0
    output: str = "simple"
    no_sync: bool = False
    debug: bool = False


def endpoint_list(opts: GlobalOptions, env: dict[str, str]) -> list[str]:
    """etcdctl's getPeersFlagValue + getEndpoints. Raises ValueError with Go's url.Parse message."""
    for text in (opts.endpoints, env.get("ETCDCTL_ENDPOINTS", ""), opts.endpoint, env.get("ETCDCTL_ENDPOINT", ""),
                 opts.peers, env.get("ETCDCTL_PEERS", ""), DEFAULT_ENDPOINTS):
        if text:
            break
    out = []
    for ep in text.split(","):
        head = ep.split("/", 1)[0]
        has_scheme = ":" in head and head[0].isalpha() and all(c.isalnum() or c in "+-." for c in head.split(":")[0])
        if not has_scheme and ":" in head:
            raise ValueError(f'parse "{ep}": first path segment in URL cannot contain colon')
        if not has_scheme:
            ep = "http:" + ep if ep.startswith("//") else "http://" + ep
        try:
            _ = urlsplit(ep).port  # raises on a bad port, as Go's url.Parse
        except ValueError:
            port = urlsplit(ep).netloc.rpartition(":")[2]
            raise ValueError(f'parse "{ep}": invalid port ":{port}" after host') from None
        out.append(ep)
    return out


class PasswordError(Exception):
    """The password could not be read (etcdctl: the error of the read)."""


def _stty(fd: int | None, setting: str) -> None:
    """speakeasy's echoOff/echoOn: run stty on our stdin, with our stdout and stderr."""
    stty = "/bin/stty" if os.path.exists("/bin/stty") else shutil.which("stty")
    if fd is None:
        return
    if stty is None:  # no stty binary: do its job on a terminal ourselves
        if os.isatty(fd):
            import termios

            attrs = termios.tcgetattr(fd)
            attrs[3] = attrs[3] & ~termios.ECHO if setting == "-echo" else attrs[3] | termios.ECHO
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        return
    subprocess.run(["stty", setting], executable=stty, stdin=fd, check=False)  # argv[0] "stty", as speakeasy


def _fileno(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def ask_password(prompt: str, out: TextIO, stdin: TextIO) -> str:
    """speakeasy.Ask: see the module docstring. Raises PasswordError if stdin cannot be read."""
    if prompt:
        out.write(prompt)
    out.flush()
    sys.stderr.flush()  # stty writes to our stderr itself
    fd = _fileno(stdin)
    _stty(fd, "-echo")
    try:
        data = bytearray()
        while True:
            try:
                b = os.read(fd, 1) if fd is not None else stdin.read(1).encode()
            except OSError as e:
                raise PasswordError(f"read /dev/stdin: {(e.strerror or str(e)).lower()}") from None
            if not b or b == b"\n":
                break
            data += b
    finally:
        _stty(fd, "echo")
        out.write("\n")
        out.flush()
    return data.decode("utf-8", "replace").removesuffix("\r")


def connection_options(opts: GlobalOptions, env: dict[str, str],
                       ask: Callable[[str], str] | None = None) -> ConnectionOptions:
    """The global flags (else their ETCDCTL_* variables) as connection options, checked as etcdctl does.
    Raises ValueError with etcdctl's message. A --username without ":password" asks for the password
    with `ask(prompt)` (default: on this process's terminal streams)."""
    options = ConnectionOptions(endpoints=tuple(endpoint_list(opts, env)),
                                ca_file=opts.ca_file or env.get("ETCDCTL_CA_FILE", ""),
                                cert_file=opts.cert_file or env.get("ETCDCTL_CERT_FILE", ""),
                                key_file=opts.key_file or env.get("ETCDCTL_KEY_FILE", ""))
    if bool(options.cert_file) != bool(options.key_file):
        raise ValueError(f"KeyFile and CertFile must both be present[key: {options.key_file}, "
                         f"cert: {options.cert_file}]")
    for path in (options.cert_file, options.key_file, options.ca_file):
        if path and not os.path.exists(path):
            raise ValueError(f"open {path}: no such file or directory")
    user = opts.username or env.get("ETCDCTL_USERNAME", "")
    if not user:
        return options
    name, sep, password = user.partition(":")
    if not sep:
        password = (ask or (lambda p: ask_password(p, sys.stdout, sys.stdin)))("Password: ")
    return replace(options, username=name, password=password)


class Conn:
    """The cluster as one command sees it."""

    def __init__(self, opts: GlobalOptions, err: TextIO, env: dict[str, str] | None = None,
                 ask: Callable[[str], str] | None = None) -> None:
        self.opts = opts
        self.err = err
        env = dict(os.environ) if env is None else env
        try:
            self.options = connection_options(opts, env, ask)
            self.ssl_context = self.options.ssl_context()  # none without TLS files: https uses the system's CAs
        except (ValueError, ssl.SSLError, OSError, PasswordError) as e:
            err.write(f"{e}\n")
            raise Exit(1) from None
        self.endpoints = list(self.options.endpoints)  # a sync replaces them
        self._pinned = 0
        self._clients: dict[str, KeysClient] = {}

    # ---- requests with failover ----------------------------------------------------------------

    def _client(self, endpoint: str) -> KeysClient:
        client = self._clients.get(endpoint)
        if client is None:
            hook = self._print_curl if self.opts.debug else None
            client = connect(replace(self.options, endpoints=(endpoint,)), ssl_context=self.ssl_context,
                             on_request=hook)
            self._clients[endpoint] = client
        return client

    def _print_curl(self, method: str, url: str, body: bytes | None) -> None:
        line = f"curl -X {method} {url}"
        if body is not None:
            line += f" -d {go_quote(body.decode('utf-8', 'replace'))}"
        self.err.write(f"cURL Command: {line}\n")

    def deadline(self) -> float:
        """The end of a command's --total-timeout (etcdctl's contextWithTotalTimeout)."""
        return time.monotonic() + self.opts.total_timeout_s

    def do(self, op: Callable[[KeysClient, float | None], T], deadline: float | None, *, one_shot: bool = False,
           header_timeout: bool = True) -> T:
        """Run `op(client, timeout_s)` against the endpoints in turn (Go's httpClusterClient.Do).
        deadline: the end of --total-timeout, or None. header_timeout: apply --timeout to each endpoint
        (Go does, except for watches). one_shot: stop at the first failing endpoint (Go does for creates,
        which must not be sent twice)."""
        errors: list[tuple[str, Exception]] = []
        count = len(self.endpoints)
        for k in range(self._pinned, self._pinned + count):
            ep = self.endpoints[k % count]
            if urlsplit(ep).scheme not in ("http", "https"):
                errors.append((ep, BadEndpoint(f'unsupported protocol scheme "{urlsplit(ep).scheme}"')))
                self._failed(errors, one_shot)
                continue
            limits = [self.opts.timeout_s] if header_timeout and self.opts.timeout_s > 0 else []
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded()
                limits.append(left)
            timeout = min(limits) if limits else None
            try:
                client = self._client(ep)
            except ValueError:  # KeysClient refuses it: no host
                errors.append((ep, BadEndpoint("http: no Host in request URL")))
                self._failed(errors, one_shot)
                continue
            try:
                result = op(client, timeout)
            except ClusterError as e:
                errors.extend((ep, cause) for _, cause in e.errors)
                self._failed(errors, one_shot)
                continue
            except RequestTimeout:
                if deadline is not None and time.monotonic() >= deadline - 0.001:
                    raise DeadlineExceeded() from None
                errors.append((ep, HeaderTimeout(ep)))
                self._failed(errors, one_shot)
                continue
            self._pinned = k % count
            return result
        raise CtlClusterError(errors)

    def _failed(self, errors: list[tuple[str, Exception]], one_shot: bool) -> None:
        if one_shot:
            raise CtlClusterError(errors)

    # ---- sync ----------------------------------------------------------------------------------

    def members(self, deadline: float | None) -> list[Member]:
        return self.do(lambda c, t: MembersClient(c).list(timeout=t), deadline)

    def sync(self, skip: bool = False) -> None:
        """etcdctl's mustNewClient: adopt the members' client URLs unless --no-sync (or `skip`: its
        mustNewClientNoSync)."""
        debug = self.opts.debug
        if not (self.opts.no_sync or skip):
            if debug:
                self.err.write(f"start to sync cluster using endpoints({','.join(self.endpoints)})\n")
            try:
                found = self.members(self.deadline())
            except Exception as e:  # noqa: BLE001 - etcdctl ignores every sync failure but these two
                if is_connection_error(e):
                    handle_error(e, self.err)
                    raise Exit(EXIT_BAD_CONNECTION) from None
            else:
                urls = [u for m in found for u in m.client_urls]
                if not urls:
                    self.err.write("etcd cluster has no published client endpoints.\n")
                    self.err.write("Try '--no-sync' if you want to access non-published client "
                                   f"endpoints({','.join(self.endpoints)}).\n")
                    self.err.write("Error:  client: no endpoints available\n")
                    raise Exit(EXIT_SERVER_ERROR)
                if urls != self.endpoints:
                    self.endpoints, self._pinned = urls, 0
            if debug:
                self.err.write(f"got endpoints({','.join(self.endpoints)}) after sync\n")
        if debug:
            self.err.write(f"Cluster-Endpoints: {', '.join(self.endpoints)}\n")

    def health_timeout(self) -> float:
        """cluster-health's plain HTTP client has only the dial timeout."""
        total = self.opts.total_timeout_s
        return min(DIAL_TIMEOUT_S, total) if total > 0 else DIAL_TIMEOUT_S
