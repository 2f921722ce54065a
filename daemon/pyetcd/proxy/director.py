"""Which members a proxy forwards to, as etcd's v2 proxy decides (its `director`).

The endpoint list is the members' client URLs, refreshed from the cluster every refresh interval (every
second while there are none, when the interval is the 30 s default or longer, so a proxy that started
before its cluster finds it quickly). A refresh shuffles the list so proxies do not all stick to one
member, and makes every endpoint available again. An endpoint that fails a request is held out for the
failure wait, then tried again. A request tries the available endpoints in list order.
Time is an input (`now`, monotonic seconds); the shuffle uses the caller's random.Random.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("pyetcd.proxy")

DEFAULT_REFRESH_S = 30.0
EMPTY_REFRESH_S = 1.0


@dataclass(slots=True)
class Endpoint:
    url: str
    scheme: str
    host: str
    port: int
    available: bool = True
    back_at: float = 0.0  # when a held-out endpoint is tried again

    @staticmethod
    def parse(url: str) -> Endpoint:
        """ValueError if `url` is not an http(s) URL with a host."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream URL {url!r} is not an http(s) URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return Endpoint(url, parts.scheme, parts.hostname, port)


class Director:
    def __init__(self, failure_wait_s: float, refresh_s: float, rng: random.Random) -> None:
        self.failure_wait_s = failure_wait_s
        self.refresh_s = refresh_s
        self.rng = rng
        self.endpoints: list[Endpoint] = []
        self._announced = False

    def set_urls(self, urls: list[str]) -> None:
        """A refresh's result: every endpoint available again, in a new random order."""
        fresh: list[Endpoint] = []
        for url in urls:
            try:
                fresh.append(Endpoint.parse(url))
            except ValueError as e:
                log.warning("%s", e)
        self.rng.shuffle(fresh)
        self.endpoints = fresh
        if fresh and not self._announced:
            self._announced = True
            log.info("proxy: endpoints found %s", [e.url for e in fresh])

    def available(self, now: float) -> list[Endpoint]:
        out = []
        for ep in self.endpoints:
            if not ep.available and now >= ep.back_at:
                ep.available = True
                log.info("proxy: marked endpoint %s available, to retest connectivity", ep.url)
            if ep.available:
                out.append(ep)
        return out

    def failed(self, ep: Endpoint, now: float) -> None:
        if ep.available:
            ep.available = False
            ep.back_at = now + self.failure_wait_s
            log.warning("proxy: marked endpoint %s unavailable", ep.url)

    def next_refresh_in(self, now: float) -> float:
        """Seconds until the next refresh should start (etcd's rule: 1 s while none is available)."""
        if self.refresh_s >= DEFAULT_REFRESH_S and not self.available(now):
            return EMPTY_REFRESH_S
        return self.refresh_s
