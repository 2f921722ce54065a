"""Who is asking, while auth is enabled: HTTP Basic credentials verified without stalling the loop.

A bcrypt check costs tens of milliseconds and the loop serves everyone, so a check never runs on it:
credentials seen before are answered from a cache (server/credentials.py: keyed digests of outcomes,
emptied whenever users or roles change), and new ones go to the password worker (runtime/passwords.py);
the request waits, like a proposal, and is routed again once the verdict is in. A flood of wrong
passwords therefore costs the worker, not the clients whose credentials are known, and the worker's
queue is bounded (past it, a check fails at once).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from ..http.auth_api import NOBODY, Identity, authorization, basic_credentials
from ..server.auth import AuthState
from ..server.credentials import CredentialCache
from .passwords import PasswordWorker

log = logging.getLogger("pyetcd.auth")

_MALFORMED = Identity(True, None)


class AuthGate:
    def __init__(self, auth: Callable[[], AuthState], worker: PasswordWorker) -> None:
        self._auth = auth  # the live state (replaced when a snapshot is restored)
        self.worker = worker
        self.cache = CredentialCache(secrets.token_bytes(32))
        self._generation = -1
        self._state: AuthState | None = None

    def identify(self, headers: list[tuple[bytes, bytes]], retry: Callable[[], None], conn: Any) -> Identity | None:
        """The request's identity, or None when its password is being checked (then `retry` is called
        from the loop once the verdict is cached: route the request again). `conn.auth_memo` remembers the
        connection's last verified Authorization value: a keep-alive client repeating it costs one compare
        (the value is in that connection's buffers anyway; it goes with the connection)."""
        state = self._auth()
        if state is not self._state or state.generation != self._generation:  # changed, or restored
            self._state, self._generation = state, state.generation
            self.cache.clear()
        raw = authorization(headers)
        if raw is None and conn.tls is not None and conn.tls.peer_cn:
            # A verified client certificate (there is one only with --client-cert-auth) names the user by
            # its CommonName, as in etcd 3.4; a CN that is no user leaves the request to the guest role.
            return Identity(False, state.user(conn.tls.peer_cn))
        memo = conn.auth_memo
        if memo is not None and memo[0] == raw and memo[1] is state and memo[2] == state.generation:
            return memo[3]  # type: ignore[no-any-return]
        found = self._identify(state, raw, retry)
        if found is not None and found.user is not None:
            conn.auth_memo = (raw, state, state.generation, found)
        return found

    def _identify(self, state: AuthState, raw: bytes | None, retry: Callable[[], None]) -> Identity | None:
        creds = basic_credentials(raw)
        if creds is None:
            return NOBODY
        if creds is False:
            log.warning("auth: malformed basic auth encoding")
            return _MALFORMED
        name, password = creds
        user = state.user(name)
        if user is None:
            log.warning("auth: no such user: %s.", name)
            return _MALFORMED
        known = self.cache.lookup(name, password, user.password_hash)
        if known is True:
            return Identity(True, user)
        if known is False:
            log.warning("auth: incorrect password for user: %s.", name)
            return _MALFORMED
        stored, epoch = user.password_hash, self.cache.epoch

        def done(ok: bool) -> None:  # may run at once (a refused check), else from the loop later
            self.cache.remember(name, password, stored, ok, epoch=epoch)  # dropped if cleared meanwhile
            retry()

        self.worker.check(stored, password, done)
        return None
