"""DNS SRV bootstrap (`--discovery-srv DOMAIN`, spec discovery.md §5): the initial cluster from SRV records.

`_etcd-server-ssl._tcp.DOMAIN` gives https peer URLs and `_etcd-server._tcp.DOMAIN` http ones (with
`--discovery-srv-name X` the services are `_etcd-server-ssl-X` and `_etcd-server-X`); etcd 3.5 merges both,
and either lookup may fail alone. A record whose target resolves to one of this member's advertised peer
addresses (same port) is this member and takes its `--name`; the others are named 0, 1, ... in order.

DNS goes through dnspython (an optional dependency, python3-dnspython in Debian): SRV parsing and
resolution by hand would be more code than this whole module. `PYETCD_DNS_NAMESERVER=host:port` points it
at a particular server (an air-gapped fleet's, or a test's).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit


class SrvError(Exception):
    pass


@dataclass(frozen=True)
class SrvTarget:
    host: str  # without the trailing dot
    port: int


class Resolver(Protocol):
    def srv(self, qname: str) -> list[SrvTarget]: ...  # ordered by priority, then weight; [] if none
    def addresses(self, host: str) -> list[str]: ...


class DnsResolver:
    """dnspython, against the system's resolvers or `nameserver` ("host:port")."""

    def __init__(self, nameserver: str = "") -> None:
        try:
            import dns.resolver
        except ImportError as e:
            raise SrvError("--discovery-srv needs dnspython (Debian: python3-dnspython)") from e
        self._dns = dns
        if nameserver:
            host, _, port = nameserver.rpartition(":")
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [host or "127.0.0.1"]
            self.resolver.port = int(port)
        else:
            self.resolver = dns.resolver.Resolver()
        self.resolver.lifetime = 5.0

    def srv(self, qname: str) -> list[SrvTarget]:
        try:
            answer = self.resolver.resolve(qname, "SRV")
        except (self._dns.resolver.NXDOMAIN, self._dns.resolver.NoAnswer):
            return []
        except self._dns.exception.DNSException as e:
            raise SrvError(f"cannot look up {qname}: {e}") from e
        records = sorted(answer, key=lambda r: (r.priority, -r.weight))
        return [SrvTarget(str(r.target).rstrip("."), int(r.port)) for r in records]

    def addresses(self, host: str) -> list[str]:
        out: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                out += [r.to_text() for r in self.resolver.resolve(host, rdtype)]
            except self._dns.exception.DNSException:
                continue
        if not out:  # e.g. /etc/hosts names: the system resolver knows them
            try:
                out = sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
            except OSError:
                pass
        return out


def srv_initial_cluster(domain: str, service_name: str, name: str, advertised: Sequence[str],
                        resolver: Resolver) -> str:
    """The `--initial-cluster` string the SRV records of `domain` describe, as etcd builds it."""
    suffix = f"-{service_name}" if service_name else ""
    mine: set[tuple[str, int]] = set()
    my_schemes = set()
    for url in advertised:
        parts = urlsplit(url)
        my_schemes.add(parts.scheme)
        host = parts.hostname or ""
        for addr in resolver.addresses(host) if not _is_ip(host) else [host]:
            mine.add((addr, parts.port or 2380))
    entries: list[str] = []
    others = 0
    found_self = False
    for scheme, service in (("https", f"_etcd-server-ssl{suffix}"), ("http", f"_etcd-server{suffix}")):
        for target in resolver.srv(f"{service}._tcp.{domain}"):
            addrs = [target.host] if _is_ip(target.host) else resolver.addresses(target.host)
            url = f"{scheme}://{_bracket(target.host)}:{target.port}"
            if any((a, target.port) in mine for a in addrs):
                if scheme not in my_schemes:
                    raise SrvError(f"bootstrap at {url} from DNS for {service}._tcp.{domain} has scheme mismatch "
                                   f"with the advertised peer URLs {','.join(advertised)}")
                entries.append(f"{name}={url}")
                found_self = True
            else:
                entries.append(f"{others}={url}")
                others += 1
    if not entries:
        raise SrvError(f"no SRV records for _etcd-server(-ssl){suffix}._tcp.{domain}")
    if not found_self:
        raise SrvError(f'cannot find local etcd member "{name}" in SRV records')
    return ",".join(entries)


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
