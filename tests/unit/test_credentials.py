"""server/credentials.py: the cache of bcrypt's verdicts (no bcrypt here: verdicts are handed in)."""

from __future__ import annotations

import pickle

import pytest
from pyetcd.server.credentials import CredentialCache

SECRET = bytes(range(32))
H1 = "$2a$10$XajjQvNhvvRt5GSeFk1xFeyqRrsxkhBkUiQeg0dt.wU1qD4aFDcga"
H2 = "$2a$10$LK9XRuhNxHHCvjX3tdkRKei1QiCDUKrJRhZv7WWZPuQGRUM92rOUa"


def test_unknown_then_remembered_both_ways() -> None:
    c = CredentialCache(SECRET)
    assert c.lookup("root", "allmine", H1) is None
    c.remember("root", "allmine", H1, True)
    c.remember("root", "wrong", H1, False)
    assert c.lookup("root", "allmine", H1) is True
    assert c.lookup("root", "wrong", H1) is False
    assert c.lookup("root", "other", H1) is None
    assert c.sizes() == (1, 1)


def test_verdict_bound_to_user_password_and_stored_hash() -> None:
    c = CredentialCache(SECRET)
    c.remember("root", "allmine", H1, True)
    c.remember("root", "nope", H1, False)
    assert c.lookup("root", "allmine", H2) is None  # the password changed: a new hash
    assert c.lookup("alice", "allmine", H1) is None
    assert c.lookup("root", "allmine ", H1) is None
    assert c.lookup("root", "nope", H2) is None
    assert c.lookup("bob", "nope", H1) is None


def test_fields_cannot_run_together() -> None:
    c = CredentialCache(SECRET)
    c.remember("ab", "c", H1, True)
    c.remember("x", "yz", H1, False)
    assert c.lookup("a", "bc", H1) is None
    assert c.lookup("xy", "z", H1) is None
    c.remember("u", "p", "h1", True)
    assert c.lookup("u", "ph", "1") is None


def test_str_and_bytes_are_the_same_credentials() -> None:
    c = CredentialCache(SECRET)
    c.remember("root", "pässword", H1, True)
    assert c.lookup("root", "pässword".encode(), H1.encode()) is True


def test_clear_forgets_everything_and_bumps_the_epoch() -> None:
    c = CredentialCache(SECRET)
    c.remember("root", "allmine", H1, True)
    c.remember("root", "wrong", H1, False)
    epoch = c.epoch
    c.clear()
    assert c.epoch == epoch + 1
    assert len(c) == 0
    assert c.lookup("root", "allmine", H1) is None
    assert c.lookup("root", "wrong", H1) is None


def test_verdict_that_straddles_a_clear_is_dropped() -> None:
    c = CredentialCache(SECRET)
    epoch = c.epoch  # read when the check is submitted
    c.clear()  # e.g. the user's password changed while bcrypt ran
    c.remember("root", "allmine", H1, True, epoch=epoch)
    assert c.lookup("root", "allmine", H1) is None
    c.remember("root", "allmine", H1, True, epoch=c.epoch)
    assert c.lookup("root", "allmine", H1) is True


def test_a_later_verdict_replaces_the_other() -> None:
    c = CredentialCache(SECRET)
    c.remember("root", "allmine", H1, False)
    c.remember("root", "allmine", H1, True)
    assert c.lookup("root", "allmine", H1) is True
    c.remember("root", "allmine", H1, False)
    assert c.lookup("root", "allmine", H1) is False
    assert c.sizes() == (0, 1)


def test_one_positive_slot_per_user_and_hash() -> None:
    c = CredentialCache(SECRET)
    c.remember("root", "a" * 80, H1, True)
    c.remember("root", "a" * 72 + "b" * 8, H1, True)  # same first 72 bytes: bcrypt says yes to both
    assert c.sizes() == (1, 0)
    assert c.lookup("root", "a" * 72 + "b" * 8, H1) is True
    assert c.lookup("root", "a" * 80, H1) is None  # asked again, not wrongly refused


def test_bounded_least_recently_used_out() -> None:
    c = CredentialCache(SECRET, max_positive=3, max_negative=5)
    for i in range(4):
        c.remember(f"user{i}", "pw", H1, True)
    assert c.lookup("user0", "pw", H1) is None
    assert c.lookup("user1", "pw", H1) is True  # now the most recently used
    c.remember("user4", "pw", H1, True)
    assert c.lookup("user2", "pw", H1) is None
    assert c.lookup("user1", "pw", H1) is True
    for i in range(1000):
        c.remember("root", f"guess{i}", H1, False)
    assert c.sizes() == (3, 5)
    assert c.lookup("root", "guess999", H1) is False
    assert c.lookup("root", "guess0", H1) is None


def test_nothing_kept_in_clear() -> None:
    c = CredentialCache(SECRET)
    c.remember("root-user-name", "hunter2-password", H1, True)
    c.remember("root-user-name", "wrong-password-xyz", H1, False)
    blob = pickle.dumps((c._positive, c._negative))
    for secret in (b"hunter2-password", b"wrong-password-xyz", b"root-user-name", H1.encode(), b"XajjQvNhvv"):
        assert secret not in blob


def test_digests_depend_on_the_secret() -> None:
    a, b = CredentialCache(SECRET), CredentialCache(bytes(32))
    a.remember("root", "allmine", H1, True)
    b.remember("root", "allmine", H1, True)
    assert a._positive != b._positive


def test_secret_and_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        CredentialCache(b"short")
    with pytest.raises(ValueError):
        CredentialCache(SECRET, max_positive=0)
