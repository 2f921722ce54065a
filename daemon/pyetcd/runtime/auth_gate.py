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

from ..http.auth_api import NOBODY, Identity, basic_credentials
from ..server.auth import AuthState

try:  # TEMPORARY while the bcrypt worker lands (runtime/passwords.py, server/credentials.py)
    from ..server.credentials import CredentialCache
    from .passwords import PasswordWorker
except ImportError:  # pragma: no cover
    CredentialCache = PasswordWorker = None  # type: ignore[assignment,misc]

log = logging.getLogger("pyetcd.auth")

_MALFORMED = Identity(True, None)


class AuthGate:
    def __init__(self, auth: Callable[[], AuthState], worker: Any) -> None:
        self._auth = auth  # the live state (replaced when a snapshot is restored)
        self.worker = worker
        self.cache = CredentialCache(secrets.token_bytes(32))
        self._generation = -1

    def identify(self, headers: list[tuple[bytes, bytes]], retry: Callable[[], None]) -> Identity | None:
        """The request's identity, or None when its password is being checked (then `retry` is called
        from the loop once the verdict is cached: route the request again)."""
        state = self._auth()
        if state.generation != self._generation:
            self._generation = state.generation
            self.cache.clear()
        creds = basic_credentials(headers)
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
        stored = user.password_hash

        def done(ok: bool) -> None:
            self.cache.remember(name, password, stored, ok)
            retry()

        self.worker.check(stored, password, done)
        return None
