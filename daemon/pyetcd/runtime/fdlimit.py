"""The process's file-descriptor limit, and the connection budget that follows it (issue 15).

At start the soft RLIMIT_NOFILE is raised to the hard limit, as every Go program (etcd included) does
since Go 1.19; systemd gives us 65536 (units/pyetcd.service), a login shell often 1024. The budget is
derived from the soft limit S, re-read every housekeeping second (`prlimit --pid` on a live member is
followed), and spent by connections.py (accepting) and the fronts (admitting watches):

  FILES_RESERVED = 64   fds that are never given to accepted connections: stdio (3), the selector (1), the
                        listeners (2 to 6), the WAL segment, the next one being preallocated and the
                        directory (3), a snapshot being written and its directory (2), the netlink socket
                        (1), the password worker's pipe (2), the signal wake-up pipe (2), the log (1), the
                        outbound peer links (one per other member), /proc reads for /metrics (1), TLS files
                        re-read on a handshake; about 30 for a 7-member cluster, so 64 leaves room to spare.
                        (Running out of these would stop the member: a WAL segment that cannot be opened
                        is a fatal disk error.)
  total = S - 64        accepted connections of any kind. Peer connections (on the peer listener) may use
                        all of it: a member keeps accepting its peers while any of it is left.
  PEERS_RESERVED = 32   the last 32 of `total` are the peers' alone: clients never take them. Each other
                        member holds one keep-alive connection to us (POST /raft), plus one briefly while
                        it reconnects; 32 covers a 7-member cluster several times over.
  clients = total - 32  client connections.
  reserve = max(64, 2% of clients)
                        client connections that watches may not take: they stay for requests that are not
                        watches (the PUT that wakes the watchers, GETs, /members, /health).
  watches = clients - reserve
                        connections holding a watch (long-poll or stream); a watch beyond that is refused
                        with a 503 (serving.py, proxying.py).

  S = 65536 (systemd):  total 65472, clients 65440, reserve 1308, watches 64132
  S = 1024 (a shell):   total 960,   clients 928,   reserve 64,   watches 864
  S = 300 (the tests):  total 236,   clients 204,   reserve 64,   watches 140

A proxy has no peer listener (no peer share) and holds two fds per relayed request (the client's and
the member's connection), so its `total` is (S - 64) / 2.

Tiny limits (S below ~200) still get a working split: the watch reserve is at most half the clients.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

log = logging.getLogger("pyetcd.loop")

FILES_RESERVED = 64
PEERS_RESERVED = 32
WATCH_RESERVE_MIN = 64
WATCH_RESERVE_FRACTION = 0.02


def soft_limit() -> int:
    """The current soft RLIMIT_NOFILE (RLIM_INFINITY, which Linux does not allow for NOFILE, as 1M)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_soft_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (Go's runtime does this for every program since
    1.19); returns (soft, hard) as they are afterwards. A refusal (e.g. a seccomp filter) keeps the soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError) as e:
            log.warning("could not raise the open files limit from %d to %d: %s", soft, hard, e)
    return soft, hard


@dataclass(frozen=True)
class ConnectionBudget:
    """How many accepted connections of each kind the loop admits (see the module docstring)."""

    limit: int  # the soft RLIMIT_NOFILE it was derived from
    total: int  # accepted connections, peers included
    clients: int  # client connections
    watches: int  # client connections holding a watch

    @classmethod
    def for_limit(cls, soft: int, peers: bool = True, fds_per_conn: int = 1) -> ConnectionBudget:
        total = max(1, max(soft - FILES_RESERVED, soft // 2) // fds_per_conn)
        peer_share = min(PEERS_RESERVED, total // 4) if peers else 0
        clients = max(1, total - peer_share)
        reserve = min(max(WATCH_RESERVE_MIN, int(clients * WATCH_RESERVE_FRACTION)), clients // 2)
        return cls(soft, total, clients, clients - reserve)

    def describe(self) -> str:
        return (f"open files limit {self.limit}: up to {self.total} connections, {self.clients} of them for "
                f"clients of which {self.watches} may hold watches ({self.clients - self.watches} kept for "
                f"other requests)")
