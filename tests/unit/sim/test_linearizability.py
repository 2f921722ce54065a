"""The WGL checker on histories whose verdict is known."""

from __future__ import annotations

from pyetcd.testing.sim.linearizability import (
    KEY_NOT_FOUND,
    NODE_EXIST,
    OK,
    TEST_FAILED,
    Kind,
    Op,
    check,
    check_key,
)

W, R, C, CR, D = Kind.WRITE, Kind.READ, Kind.CAS, Kind.CREATE, Kind.DELETE


def op(i: int, kind: Kind, inv: float, comp: float | None, value: str | None = None,
       expected: str | None = None, ok: bool | None = None, key: str = "k", code: int | None = None) -> Op:
    """`ok` False means the v2 "compare failed" (101) unless `code` names another error."""
    outcome = code if code is not None else (None if comp is None else OK if ok in (True, None) else TEST_FAILED)
    return Op(i, key, kind, inv, comp, value, expected, outcome)


def test_empty_history_is_linearizable() -> None:
    assert check([]).ok


def test_sequential_write_then_read_is_linearizable() -> None:
    assert check_key([op(1, W, 0, 1, "a"), op(2, R, 2, 3, "a")]).ok


def test_read_of_an_overwritten_value_after_the_overwrite_completed_is_not() -> None:
    h = [op(1, W, 0, 1, "a"), op(2, W, 2, 3, "b"), op(3, R, 4, 5, "a")]
    assert not check_key(h).ok


def test_concurrent_read_may_see_either_value() -> None:
    for seen in ("a", "b"):
        h = [op(1, W, 0, 1, "a"), op(2, W, 2, 6, "b"), op(3, R, 3, 5, seen)]
        assert check_key(h).ok


def test_read_of_a_value_never_written_is_not_linearizable() -> None:
    assert not check_key([op(1, W, 0, 1, "a"), op(2, R, 2, 3, "zzz")]).ok


def test_reading_absent_before_any_write_is_fine_and_after_one_is_not() -> None:
    assert check_key([op(1, R, 0, 1, None), op(2, W, 2, 3, "a")]).ok
    assert not check_key([op(1, W, 0, 1, "a"), op(2, R, 2, 3, None)]).ok


def test_stale_read_after_newer_read_is_not_linearizable() -> None:
    # Both writes are concurrent with both reads, but once a read saw "b" a later read cannot see "a".
    h = [op(1, W, 0, 10, "a"), op(2, W, 0, 10, "b"), op(3, R, 1, 2, "b"), op(4, R, 3, 4, "a"),
         op(5, R, 5, 6, "b")]
    assert not check_key(h).ok
    assert check_key(h[:4]).ok  # "b" then "a": write b, read, write a, read


def test_cas_success_and_failure_must_match_the_state() -> None:
    assert check_key([op(1, W, 0, 1, "a"), op(2, C, 2, 3, "b", expected="a", ok=True),
                      op(3, R, 4, 5, "b")]).ok
    assert not check_key([op(1, W, 0, 1, "a"), op(2, C, 2, 3, "b", expected="a", ok=False)]).ok
    assert not check_key([op(1, W, 0, 1, "a"), op(2, C, 2, 3, "b", expected="x", ok=True)]).ok
    assert check_key([op(1, W, 0, 1, "a"), op(2, C, 2, 3, "b", expected="x", ok=False),
                      op(3, R, 4, 5, "a")]).ok


def test_two_successful_cas_from_the_same_value_cannot_both_win() -> None:
    h = [op(1, W, 0, 1, "a"), op(2, C, 2, 5, "b", expected="a", ok=True),
         op(3, C, 2, 5, "c", expected="a", ok=True)]
    assert not check_key(h).ok


def test_an_indeterminate_write_may_have_happened() -> None:
    h = [op(1, W, 0, 1, "a"), op(2, W, 2, None, "b"), op(3, R, 10, 11, "b")]
    assert check_key(h).ok


def test_an_indeterminate_write_may_not_have_happened() -> None:
    h = [op(1, W, 0, 1, "a"), op(2, W, 2, None, "b"), op(3, R, 10, 11, "a")]
    assert check_key(h).ok


def test_an_indeterminate_write_cannot_take_effect_before_it_was_invoked() -> None:
    h = [op(1, W, 0, 1, "a"), op(2, R, 2, 3, "b"), op(3, W, 4, None, "b")]
    assert not check_key(h).ok


def test_an_indeterminate_write_takes_effect_at_most_once() -> None:
    h = [op(1, W, 0, None, "a"), op(2, R, 1, 2, "a"), op(3, W, 3, 4, "b"), op(4, R, 5, 6, "a")]
    assert not check_key(h).ok


def test_an_indeterminate_cas_only_counts_where_it_succeeds() -> None:
    h = [op(1, W, 0, 1, "a"), op(2, C, 2, None, "b", expected="a"), op(3, R, 5, 6, "b")]
    assert check_key(h).ok
    h = [op(1, W, 0, 1, "a"), op(2, C, 2, None, "b", expected="x"), op(3, R, 5, 6, "b")]
    assert not check_key(h).ok


def test_keys_are_checked_independently() -> None:
    h = [op(1, W, 0, 1, "a", key="x"), op(2, W, 0, 1, "b", key="y"), op(3, R, 2, 3, "a", key="x"),
         op(4, R, 2, 3, "b", key="y")]
    assert check(h).ok
    bad = h + [op(5, R, 4, 5, "b", key="x")]
    r = check(bad)
    assert not r.ok and r.key == "x"


def test_many_concurrent_clients_stay_tractable() -> None:
    # 5 clients, 40 rounds of overlapping writes and reads of the value just written: linearizable.
    h: list[Op] = []
    n = 0
    for rnd in range(40):
        base = rnd * 10
        for c in range(5):
            n += 1
            h.append(op(n, W, base + c, base + 8, f"v{rnd}.{c}"))
        n += 1
        h.append(op(n, R, base + 9, base + 9.5, f"v{rnd}.4"))
    r = check_key(h)
    assert r.ok, r.message


def test_v2_error_codes_must_match_the_state() -> None:
    # CAS on an absent key answers 100, not 101.
    assert check_key([op(1, C, 0, 1, "b", expected="a", code=KEY_NOT_FOUND)]).ok
    assert not check_key([op(1, C, 0, 1, "b", expected="a", code=TEST_FAILED)]).ok
    # create (prevExist=false) succeeds only on an absent key, else 105.
    assert check_key([op(1, CR, 0, 1, "a"), op(2, CR, 2, 3, "b", code=NODE_EXIST), op(3, R, 4, 5, "a")]).ok
    assert not check_key([op(1, W, 0, 1, "a"), op(2, CR, 2, 3, "b")]).ok
    # delete makes the key absent; deleting an absent key answers 100.
    assert check_key([op(1, W, 0, 1, "a"), op(2, D, 2, 3), op(3, R, 4, 5, None), op(4, D, 6, 7, code=KEY_NOT_FOUND)]).ok
    assert not check_key([op(1, W, 0, 1, "a"), op(2, D, 2, 3, code=KEY_NOT_FOUND)]).ok


def test_an_unexpected_error_code_is_never_linearizable() -> None:
    assert not check_key([op(1, W, 0, 1, "a", code=102)]).ok
