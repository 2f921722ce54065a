"""Follow the advertised addresses over netlink: say when one leaves the host and when it comes back.

Theory of operation. One NETLINK_ROUTE socket, subscribed to the IPv4 and IPv6 ifaddr groups and
non-blocking; the loop polls `fileno()` and calls `on_readable()`, which reads at most a bounded
number of datagrams and never waits. pyroute2 only encodes and parses the messages: its 0.9 socket
classes drive an asyncio loop of their own, and its select-friendly IPRSocket documents ENOBUFS as fatal.

The state is `present`: advertised address -> {ifindex: interface name}. It is (re)built by an
RTM_GETADDR dump on the same socket, at start and after the receive buffer overflowed (ENOBUFS: events
were lost); while a dump runs, `missing` still answers from the previous state. Dump replies and events share one queue in the kernel's order, so applying both, in that
order, to the state being built gives the host's state when the dump ends; losses or an interrupted
dump (NLM_F_DUMP_INTR) during a dump only mean one more dump once it ends.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import itertools
import select
import socket
import time
from collections.abc import Iterable
from types import SimpleNamespace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

_READS_PER_CALL = 64  # bound one call's work; level-triggered polling brings us back for the rest
_RCVBUF = 1 << 20  # capped by net.core.rmem_max; overflows are handled anyway
_START_TIMEOUT_S = 5.0

Present = dict[str, dict[int, str]]


@functools.cache
def _netlink() -> SimpleNamespace:
    """pyroute2's names, imported when the first watch starts: the package imports all of itself (0.15-0.2 s
    here), and a process that advertises only loopback or names (the tests, a laptop) never needs it."""
    from pyroute2.netlink import NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, rtnl
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.marshal import MarshalRtnl
    return SimpleNamespace(NLM_F_DUMP=NLM_F_DUMP, NLM_F_DUMP_INTR=NLM_F_DUMP_INTR, NLM_F_REQUEST=NLM_F_REQUEST,
                           NLMSG_DONE=NLMSG_DONE, NLMSG_ERROR=NLMSG_ERROR, rtnl=rtnl, ifaddrmsg=ifaddrmsg,
                           MarshalRtnl=MarshalRtnl)


def _literal(host: str) -> str | None:
    """The normalized address if `host` is an IP literal worth watching (not loopback/unspecified)."""
    try:
        ip = ipaddress.ip_address(host.strip().strip("[]").split("%")[0])
    except ValueError:
        return None
    return None if ip.is_loopback or ip.is_unspecified else ip.compressed


def _hostname(url: str) -> str:
    try:
        return urlsplit(url.strip()).hostname or ""
    except ValueError:  # e.g. an unclosed "[": not something to watch
        return ""


class AddressWatch:
    def __init__(self, advertised: Iterable[str]) -> None:
        self.advertised = tuple(dict.fromkeys(a for a in map(_literal, advertised) if a))
        self.overflows = 0  # ENOBUFS seen (each one costs a dump)
        self._nl = nl = _netlink()
        self._marshal = nl.MarshalRtnl()
        self._seq = itertools.count(1)
        self._present: Present = {}
        self._building: Present | None = None  # the state a running dump builds
        self._dump_seq = 0
        self._dump_again = False
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            self._sock.bind((0, nl.rtnl.RTMGRP_IPV4_IFADDR | nl.rtnl.RTMGRP_IPV6_IFADDR))  # subscribe before dumping
            self._sock.setblocking(False)
            self._portid = self._sock.getsockname()[0]
            self._start_dump()
            deadline = time.monotonic() + _START_TIMEOUT_S
            while self._building is not None:  # the only wait: inside the constructor
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OSError(errno.ETIMEDOUT, "netlink address dump did not finish")
                select.select([self._sock], [], [], left)
                self.on_readable()
        except BaseException:
            self._sock.close()
            raise

    @staticmethod
    def advertised_hosts(urls: Iterable[str]) -> list[str]:
        """IP-literal hosts of URLs (each string may hold several, comma-separated), in order, once."""
        hosts = (_hostname(u) for s in urls for u in s.split(",") if u.strip())
        return list(dict.fromkeys(a for a in map(_literal, hosts) if a))

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def missing(self) -> frozenset[str]:
        return frozenset(a for a in self.advertised if not self._present.get(a))

    def status(self) -> str:
        gone = [a for a in self.advertised if not self._present.get(a)]
        if not gone:
            return ""
        if len(gone) == 1:
            return f"advertised address {gone[0]} is missing"
        return f"advertised addresses {', '.join(gone)} are missing"

    def close(self) -> None:
        self._sock.close()  # idempotent

    def on_readable(self) -> list[str]:
        lines: list[str] = []
        for _ in range(_READS_PER_CALL):
            try:
                data, (sender, _) = self._sock.recvfrom(1 << 16)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.overflows += 1  # events were dropped: only a dump tells the truth again
                if self._building is None:
                    self._start_dump()
                else:
                    self._dump_again = True
                continue
            if sender == 0:  # only the kernel speaks for the kernel
                for msg in self._marshal.parse(data):
                    lines.extend(self._handle(msg))
        return lines

    def _start_dump(self) -> None:
        self._dump_seq = next(self._seq)
        self._building, self._dump_again = {}, False
        nl = self._nl
        req = nl.ifaddrmsg()  # family AF_UNSPEC: IPv4 and IPv6
        req["header"] = {"type": nl.rtnl.RTM_GETADDR, "flags": nl.NLM_F_REQUEST | nl.NLM_F_DUMP,
                         "sequence_number": self._dump_seq, "pid": self._portid}
        req.encode()
        self._sock.send(req.data)

    def _handle(self, msg: ifaddrmsg) -> list[str]:
        nl = self._nl
        header = msg["header"]
        reply = (self._building is not None and header["pid"] == self._portid
                 and header["sequence_number"] == self._dump_seq)
        if reply and header["flags"] & nl.NLM_F_DUMP_INTR:
            self._dump_again = True
        if reply and header["type"] == nl.NLMSG_ERROR:
            raise OSError(getattr(header["error"], "code", errno.EIO), f"address dump failed: {header['error']}")
        if reply and header["type"] == nl.NLMSG_DONE:
            return self._finish_dump()
        if header["type"] not in (nl.rtnl.RTM_NEWADDR, nl.rtnl.RTM_DELADDR):
            return []
        addr = _literal(msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS") or "")
        if addr is None or addr not in self.advertised:
            return []
        index, added = msg["index"], header["type"] == nl.rtnl.RTM_NEWADDR
        if self._building is not None:  # during a dump, events and replies both go to the new state
            _apply(self._building, addr, index, added, msg)
            return []
        before = dict(self._present.get(addr, {}))
        _apply(self._present, addr, index, added, msg)
        return _change(addr, before, self._present.get(addr, {}))

    def _finish_dump(self) -> list[str]:
        assert self._building is not None
        old, self._present, self._building = self._present, self._building, None
        if self._dump_again:
            self._start_dump()  # the state may miss changes; it still beats the older one
        return [line for a in self.advertised for line in _change(a, old.get(a, {}), self._present.get(a, {}))]


def _apply(present: Present, addr: str, index: int, added: bool, msg: ifaddrmsg) -> None:
    on = present.setdefault(addr, {})
    if added:
        on[index] = _ifname(index, msg)
    else:
        on.pop(index, None)


def _ifname(index: int, msg: ifaddrmsg) -> str:
    try:
        return socket.if_indextoname(index)  # an ioctl: IPv6 messages carry no IFA_LABEL
    except OSError:
        return (msg.get_attr("IFA_LABEL") or f"if{index}").split(":")[0]


def _change(addr: str, before: dict[int, str], after: dict[int, str]) -> list[str]:
    if before and not after:
        return [f"advertised address {addr} was removed from {', '.join(sorted(before.values()))}"]
    if after and not before:
        return [f"advertised address {addr} is back (on {', '.join(sorted(after.values()))})"]
    return []
