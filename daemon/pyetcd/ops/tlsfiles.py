"""The TLS files a listener or a dialler is configured with (etcd's --cert-file, --key-file, --trusted-ca-file,
--client-cert-auth and their peer twins): settings read them, runtime/tls.py makes contexts from them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TlsFiles:
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    allowed_cn: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)
