"""TLS for the client side of a connection: the tools (pyetcdctl, locksmith, pyetcd-sched), a joining member
dialling its peers or a discovery token, the token service dialling its backing store."""

from __future__ import annotations

import ssl


def client_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """TLS 1.2 or newer; verify the server against `ca_file` (the system's CAs if none is given) and present
    `cert_file` if given, as etcd's client and peer transports do. No `key_file`: the key is in the
    certificate's PEM."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        ctx.load_verify_locations(ca_file)
    else:
        ctx.load_default_certs()
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file or None)
    return ctx
