"""The advertised addresses, followed in the loop: runtime/addrwatch.py's netlink socket sits in the loop's
selector; a change is logged (warning when an address leaves the host, info when it is back) and, while
one is missing, systemd's STATUS= says so. Only IP literals are followed (a name may resolve to anything);
where netlink cannot be opened the member or proxy runs on without this, and says so once."""

from __future__ import annotations

import logging
import selectors
from collections.abc import Iterable

from .addrwatch import AddressWatch
from .supervision import Supervisor

log = logging.getLogger("pyetcd.addresses")


class AdvertisedAddresses:
    def __init__(self, sel: selectors.BaseSelector, urls: Iterable[str], supervisor: Supervisor) -> None:
        self.sel, self.supervisor = sel, supervisor
        self.watch: AddressWatch | None = None
        hosts = AddressWatch.advertised_hosts(urls)
        if not hosts:
            return
        try:
            self.watch = AddressWatch(hosts)
        except OSError as e:
            log.warning("cannot follow changes of the advertised addresses (netlink: %s)", e)
            return
        sel.register(self.watch.fileno(), selectors.EVENT_READ, self)
        for address in sorted(self.watch.missing):
            log.warning("advertised address %s is not on any interface of this host", address)
        supervisor.set_notice(self.watch.status())

    def on_readable(self) -> None:
        watch = self.watch
        if watch is None:
            return
        try:
            lines = watch.on_readable()
        except OSError as e:
            log.warning("stopped following the advertised addresses (netlink: %s)", e)
            self.close()
            return
        for line in lines:
            log.log(logging.INFO if " is back" in line else logging.WARNING, "%s", line)
        self.supervisor.set_notice(watch.status())

    def close(self) -> None:
        if self.watch is not None:
            self.sel.unregister(self.watch.fileno())
            self.watch.close()
            self.watch = None
