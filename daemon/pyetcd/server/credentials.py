"""What bcrypt already said about a user's credentials, so a request does not pay for a check again.

etcd v2 keeps each user's password as a bcrypt hash (cost 10: tens of ms per check) and checks HTTP Basic
credentials on every request. pyetcd runs the checks off the loop (runtime/passwords.py) and remembers their
outcomes here, so a client that keeps sending the same credentials costs one check, not one per request.

Nothing secret is kept in clear: an entry is an HMAC-SHA256, under a per-process random secret that the
caller passes in, over the user name, the password and the stored hash, each length-prefixed so that
fields cannot run into each other ("ab"+"c" is not "a"+"bc"). The stored hash is part of the digest, so an
outcome is only ever reused against the very hash it was computed for; on top of that the caller calls
clear() on any change to users, passwords or roles, and an outcome computed before a clear() can be
dropped on arrival (pass the epoch read before the check to remember()).

Positive outcomes: one slot per (user, stored hash), holding the digest of the password that verified;
it is compared with hmac.compare_digest. Negative outcomes: a set of digests (a stream of wrong passwords
for one user is many entries); membership is a dict lookup on an HMAC under a secret the client does not
know, so its timing tells nothing about any stored secret. Both are bounded (least recently used out).

Pure: no clock, no randomness, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict

MAX_POSITIVE = 10_000
MAX_NEGATIVE = 10_000
MIN_SECRET_BYTES = 16

_SLOT = b"pyetcd-credentials-slot\x00"
_CRED = b"pyetcd-credentials-cred\x00"


def _field(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
    return len(raw).to_bytes(4, "big") + raw


class CredentialCache:
    def __init__(self, secret: bytes, max_positive: int = MAX_POSITIVE, max_negative: int = MAX_NEGATIVE) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the cache's secret must be at least {MIN_SECRET_BYTES} random bytes")
        if max_positive < 1 or max_negative < 1:
            raise ValueError("the cache's bounds must be positive")
        self._secret = bytes(secret)
        self.max_positive, self.max_negative = max_positive, max_negative
        self._positive: OrderedDict[bytes, bytes] = OrderedDict()  # slot(user, hash) -> cred digest
        self._negative: OrderedDict[bytes, None] = OrderedDict()  # cred digest
        self.epoch = 0  # bumped by clear()

    def _mac(self, *parts: bytes) -> bytes:
        return hmac.new(self._secret, b"".join(parts), hashlib.sha256).digest()

    def _keys(self, user: str, password: str | bytes, stored_hash: str | bytes) -> tuple[bytes, bytes]:
        u, h = _field(user), _field(stored_hash)
        return self._mac(_SLOT, u, h), self._mac(_CRED, u, _field(password), h)

    def lookup(self, user: str, password: str | bytes, stored_hash: str | bytes) -> bool | None:
        """True/False if bcrypt already said so for exactly these three; None: ask bcrypt."""
        slot, cred = self._keys(user, password, stored_hash)
        known = self._positive.get(slot)
        if known is not None and hmac.compare_digest(known, cred):
            self._positive.move_to_end(slot)
            return True
        if cred in self._negative:
            self._negative.move_to_end(cred)
            return False
        return None

    def remember(self, user: str, password: str | bytes, stored_hash: str | bytes, ok: bool,
                 epoch: int | None = None) -> None:
        """Record bcrypt's verdict. With `epoch` (read before the check was started), a verdict that
        straddled a clear() is dropped: it was computed against an auth state that no longer holds."""
        if epoch is not None and epoch != self.epoch:
            return
        slot, cred = self._keys(user, password, stored_hash)
        if ok:
            self._negative.pop(cred, None)
            self._positive[slot] = cred
            self._positive.move_to_end(slot)
            while len(self._positive) > self.max_positive:
                self._positive.popitem(last=False)
        else:
            known = self._positive.get(slot)
            if known is not None and hmac.compare_digest(known, cred):
                del self._positive[slot]  # cannot happen for one hash; never keep both verdicts
            self._negative[cred] = None
            self._negative.move_to_end(cred)
            while len(self._negative) > self.max_negative:
                self._negative.popitem(last=False)

    def clear(self) -> None:
        """Forget everything: call on any change to users, passwords, roles or auth being enabled."""
        self._positive.clear()
        self._negative.clear()
        self.epoch += 1

    def __len__(self) -> int:
        return len(self._positive) + len(self._negative)

    def sizes(self) -> tuple[int, int]:
        return len(self._positive), len(self._negative)
