"""Host facts for settings: `$private_ipv4`, `$public_ipv4`, `$hostname` (CoreOS cloud-config's names).

`resolve(text, facts)` substitutes them (also as `${private_ipv4}`). The addresses come from netlink
(pyroute2's IPRoute), read once and only when a value names one:

- private: the primary IPv4 address of the interface holding the IPv4 default route (the lowest
  metric one), or of the interface named by `--advertise-interface`;
- public: the first global-scope IPv4 address, in interface order, outside 10/8, 172.16/12,
  192.168/16, 100.64/10 (CGNAT) and 169.254/16;
- hostname: socket.gethostname().

When a fact cannot be found, HostFactsError says why and lists every interface with its addresses.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field

VARIABLES = ("private_ipv4", "public_ipv4", "hostname")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in
                    ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
                     "127.0.0.0/8"))
_RT_SCOPE_UNIVERSE = 0
_IFA_F_SECONDARY = 0x01
_RT_TABLE_MAIN = 254


class HostFactsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Address:
    address: str
    prefixlen: int
    scope: int
    secondary: bool

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True, slots=True)
class Interface:
    index: int
    name: str
    addresses: tuple[Address, ...]  # IPv4, in the kernel's order (primary before its secondaries)


@dataclass(frozen=True, slots=True)
class Netlink:
    """One read of the interfaces, their IPv4 addresses and the IPv4 default routes' interfaces."""
    interfaces: tuple[Interface, ...]
    default_route_ifindexes: tuple[int, ...]  # best (lowest metric) first

    def listing(self) -> str:
        parts = [f"{i.name} {' '.join(map(str, i.addresses))}" if i.addresses else f"{i.name} (no IPv4)"
                 for i in self.interfaces]
        return "interfaces: " + (", ".join(parts) if parts else "(none)")


def read_netlink() -> Netlink:
    from pyroute2 import IPRoute  # imported only when a setting names an address

    with IPRoute() as ipr:
        links = list(ipr.get_links())
        addrs = list(ipr.get_addr(family=socket.AF_INET))
        routes = list(ipr.get_routes(family=socket.AF_INET))
    by_index: dict[int, list[Address]] = {}
    for msg in addrs:
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if not addr:
            continue
        flags = msg.get_attr("IFA_FLAGS")
        flags = msg["flags"] if flags is None else flags
        by_index.setdefault(msg["index"], []).append(
            Address(addr, msg["prefixlen"], msg["scope"], bool(flags & _IFA_F_SECONDARY)))
    interfaces = tuple(sorted((Interface(m["index"], m.get_attr("IFLA_IFNAME") or f"if{m['index']}",
                                         tuple(by_index.get(m["index"], ()))) for m in links),
                              key=lambda i: i.index))
    defaults: list[tuple[int, int]] = []  # (metric, ifindex)
    for msg in routes:
        table = msg.get_attr("RTA_TABLE")
        table = msg["table"] if table is None else table
        if msg["dst_len"] != 0 or table != _RT_TABLE_MAIN or msg["type"] != 1:  # RTN_UNICAST
            continue
        metric = msg.get_attr("RTA_PRIORITY") or 0
        oif = msg.get_attr("RTA_OIF")
        if oif is not None:
            defaults.append((metric, oif))
        for hop in msg.get_attr("RTA_MULTIPATH") or ():
            defaults.append((metric, hop["oif"]))
    return Netlink(interfaces, tuple(ifindex for _, ifindex in sorted(defaults, key=lambda d: d[0])))


def _primary(interface: Interface) -> Address | None:
    for addr in interface.addresses:
        if not addr.secondary:
            return addr
    return interface.addresses[0] if interface.addresses else None


def private_ipv4(net: Netlink, interface: str = "") -> str:
    if interface:
        found = next((i for i in net.interfaces if i.name == interface), None)
        if found is None:
            raise HostFactsError(f"$private_ipv4: no interface named {interface!r} (--advertise-interface); "
                                 f"{net.listing()}")
        candidates = [found]
    else:
        by_index = {i.index: i for i in net.interfaces}
        candidates = [by_index[n] for n in net.default_route_ifindexes if n in by_index]
        if not candidates:
            raise HostFactsError(f"$private_ipv4: no IPv4 default route; {net.listing()}")
    for candidate in candidates:
        addr = _primary(candidate)
        if addr is not None:
            return addr.address
    raise HostFactsError(f"$private_ipv4: {candidates[0].name} has no IPv4 address; {net.listing()}")


def public_ipv4(net: Netlink) -> str:
    for interface in net.interfaces:
        for addr in interface.addresses:
            ip = ipaddress.IPv4Address(addr.address)
            if addr.scope == _RT_SCOPE_UNIVERSE and not any(ip in n for n in _NOT_PUBLIC):
                return addr.address
    raise HostFactsError(f"$public_ipv4: no global IPv4 address outside the private ranges "
                         f"(10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16); {net.listing()}")


@dataclass
class Facts:
    """The host's facts, each looked up on first use and then kept (one netlink read at most)."""
    interface: str = ""  # --advertise-interface
    _netlink: Netlink | None = field(default=None, repr=False)
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    def netlink(self) -> Netlink:
        if self._netlink is None:
            try:
                self._netlink = read_netlink()
            except OSError as e:
                raise HostFactsError(f"cannot read the interfaces over netlink: {e}") from e
        return self._netlink

    def get(self, name: str) -> str:
        if name not in self._cache:
            if name == "hostname":
                self._cache[name] = socket.gethostname()
            elif name == "private_ipv4":
                self._cache[name] = private_ipv4(self.netlink(), self.interface)
            elif name == "public_ipv4":
                self._cache[name] = public_ipv4(self.netlink())
            else:
                raise HostFactsError(f"unknown variable ${name} (known: "
                                     f"{', '.join('$' + v for v in VARIABLES)})")
        return self._cache[name]


def uses_variables(text: str) -> bool:
    return _VAR.search(text) is not None


def resolve(text: str, facts: Facts) -> str:
    """`text` with each `$name` / `${name}` replaced by the host fact; an unknown name is an error."""
    return _VAR.sub(lambda m: facts.get(m.group(1) or m.group(2)), text)
