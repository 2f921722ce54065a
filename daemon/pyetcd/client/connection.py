"""How a command-line tool reaches the cluster: one record of endpoints, TLS files, basic-auth credentials
and request timeout, and the keys client it makes. Each tool maps its own flags into a ConnectionOptions
(and checks them in its own words); `connect` does the rest."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from .tls import client_context
from .v2 import DEFAULT_TIMEOUT_S, KeysClient


@dataclass(frozen=True)
class ConnectionOptions:
    endpoints: tuple[str, ...] = ()
    ca_file: str = ""  # verify servers against this CA bundle (else the system's)
    cert_file: str = ""  # present this client certificate...
    key_file: str = ""  # ...with this key (none: the key is in the certificate's PEM)
    username: str = ""  # v2 basic auth; empty: none
    password: str = ""
    request_timeout_s: float = DEFAULT_TIMEOUT_S  # the keys client's per-request timeout

    def ssl_context(self) -> ssl.SSLContext | None:
        """None unless a TLS file is given (https endpoints then verify against the system's CAs)."""
        if not (self.ca_file or self.cert_file or self.key_file):
            return None
        return client_context(self.ca_file, self.cert_file, self.key_file)

    def urls(self) -> list[str]:
        """The endpoints with the credentials as their userinfo (replacing any there): the form for tools
        that take URLs only."""
        if not self.username:
            return list(self.endpoints)
        cred = quote(self.username, safe="") + ":" + quote(self.password, safe="")
        out = []
        for ep in self.endpoints:
            parts = urlsplit(ep)
            host = parts.netloc.rpartition("@")[2]
            out.append(urlunsplit(parts._replace(netloc=f"{cred}@{host}")))
        return out


def connect(options: ConnectionOptions, *, ssl_context: ssl.SSLContext | None = None,
            on_request: Callable[[str, str, bytes | None], None] | None = None) -> KeysClient:
    """A keys client over `options`. `ssl_context`: one already built from these options, to share it
    between clients (default: build it). `on_request` sees every request before it is sent (pyetcdctl's
    --debug)."""
    return KeysClient(options.endpoints, ssl_context=ssl_context or options.ssl_context(),
                      timeout=options.request_timeout_s, on_request=on_request,
                      username=options.username or None, password=options.password)
