"""Concrete examples of Jepsen-style histories and their set and register checkers."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.history import FAIL, INFO, INVOKE, OK, History, check_register, check_set


def new_history() -> History:
    ticks = itertools.count()
    return History(clock=lambda: float(next(ticks)))


# ---------------------------------------------------------------- set helpers


def add(h: History, element: str, outcome: str = OK, process: int = 0) -> None:
    inv = h.invoke(process, "add", element)
    if outcome == OK:
        h.ok(inv)
    elif outcome == FAIL:
        h.fail(inv, "refused")
    elif outcome == INFO:
        h.info(inv, "timeout")
    # any other outcome: the add never completes


def read(h: History, elements, process: int = 99) -> None:
    h.ok(h.invoke(process, "read"), set(elements))


# ---------------------------------------------------------------- register helpers


def write(h: History, key: str, value: str, saw=(), outcome: str = OK, process: int = 0) -> None:
    inv = h.invoke(process, "write", {"key": key, "value": value, "saw": list(saw)})
    if outcome == OK:
        h.ok(inv)
    elif outcome == FAIL:
        h.fail(inv, "refused")
    elif outcome == INFO:
        h.info(inv, "timeout")


def final_read(h: History, key: str, values, process: int = 99) -> None:
    h.ok(h.invoke(process, "read", key), {"key": key, "values": list(values)})


# ---------------------------------------------------------------- check_set


def test_set_valid_when_every_acknowledged_add_is_read():
    h = new_history()
    for e in ("a", "b", "c"):
        add(h, e)
    read(h, {"a", "b", "c"})
    result = check_set(h)
    assert result.valid
    assert (result.attempted, result.acknowledged, result.read) == (3, 3, 3)
    assert result.lost == frozenset() and result.unexpected == frozenset()


def test_set_acknowledged_add_missing_from_final_read_is_lost():
    h = new_history()
    add(h, "a")
    add(h, "b")
    read(h, {"a"})
    result = check_set(h)
    assert not result.valid
    assert result.lost == frozenset({"b"})
    assert result.unexpected == frozenset()


def test_set_element_read_but_never_attempted_is_unexpected():
    h = new_history()
    add(h, "a")
    read(h, {"a", "ghost"})
    result = check_set(h)
    assert not result.valid
    assert result.unexpected == frozenset({"ghost"})
    assert result.lost == frozenset()


def test_set_info_add_present_is_recovered_and_absent_is_not_lost():
    h = new_history()
    add(h, "a")
    add(h, "maybe-in", INFO, process=1)
    add(h, "maybe-out", INFO, process=2)
    add(h, "never-done", outcome="none", process=3)
    read(h, {"a", "maybe-in", "never-done"})
    result = check_set(h)
    assert result.valid
    assert result.lost == frozenset()
    assert result.recovered == 2  # the info add and the never-completed add that showed up
    assert (result.attempted, result.acknowledged) == (4, 1)


def test_set_failed_add_never_counts_as_lost():
    h = new_history()
    add(h, "a")
    add(h, "refused", FAIL, process=1)
    read(h, {"a"})
    result = check_set(h)
    assert result.valid
    assert result.lost == frozenset()
    assert result.recovered == 0


def test_set_without_successful_read_is_an_error():
    h = new_history()
    add(h, "a")
    h.fail(h.invoke(9, "read"), "partitioned")
    h.info(h.invoke(8, "read"), "timeout")
    with pytest.raises(ValueError, match="no successful final read"):
        check_set(h)


def test_set_last_ok_read_is_the_final_one():
    h = new_history()
    add(h, "a")
    read(h, set())  # an early read, before "a" became visible
    read(h, {"a"})
    h.fail(h.invoke(99, "read"), "partitioned")  # a later failed read is not a read
    result = check_set(h)
    assert result.valid
    assert result.read == 1

    h2 = new_history()
    add(h2, "a")
    read(h2, {"a"})
    read(h2, set())  # the last successful read is the one judged, even if worse
    assert check_set(h2).lost == frozenset({"a"})


# ---------------------------------------------------------------- check_register


def test_register_concurrent_acknowledged_writes_both_siblings_is_valid():
    h = new_history()
    write(h, "k", "v1", process=1)
    write(h, "k", "v2", process=2)
    final_read(h, "k", ["v1", "v2"])
    result = check_register(h)
    assert result.valid
    assert (result.acknowledged, result.keys) == (2, 1)


def test_register_acknowledged_write_overwritten_by_acknowledged_write_is_valid():
    h = new_history()
    write(h, "k", "v1")
    write(h, "k", "v2", saw=["v1"])
    final_read(h, "k", ["v2"])
    result = check_register(h)
    assert result.valid
    assert result.lost == frozenset()


def test_register_overwritten_by_info_write_that_is_final_is_valid():
    h = new_history()
    write(h, "k", "v1")
    write(h, "k", "v2", saw=["v1"], outcome=INFO)
    final_read(h, "k", ["v2"])
    result = check_register(h)
    assert result.valid
    assert result.acknowledged == 1


def test_register_overwritten_only_by_failed_write_is_lost():
    h = new_history()
    write(h, "k", "v1")
    write(h, "k", "v2", saw=["v1"], outcome=FAIL)
    final_read(h, "k", [])
    result = check_register(h)
    assert not result.valid
    assert result.lost == frozenset({("k", "v1")})


def test_register_chain_ending_in_final_value_accounts_for_all():
    h = new_history()
    write(h, "k", "w1")
    write(h, "k", "w2", saw=["w1"])
    write(h, "k", "w3", saw=["w2"])
    final_read(h, "k", ["w3"])
    result = check_register(h)
    assert result.valid
    assert result.acknowledged == 3
    assert result.lost == frozenset()


def test_register_acknowledged_write_missing_and_unseen_is_lost():
    h = new_history()
    write(h, "k", "v1", process=1)
    write(h, "k", "v2", process=2)  # concurrent: never saw v1
    final_read(h, "k", ["v2"])
    result = check_register(h)
    assert not result.valid
    assert result.lost == frozenset({("k", "v1")})
    assert result.unexpected == frozenset()


def test_register_final_value_never_written_is_unexpected():
    h = new_history()
    write(h, "k", "v1")
    final_read(h, "k", ["v1", "ghost"])
    result = check_register(h)
    assert not result.valid
    assert result.unexpected == frozenset({("k", "ghost")})
    assert result.lost == frozenset()


def test_register_acknowledged_key_without_final_read_is_an_error():
    h = new_history()
    write(h, "k", "v1")
    write(h, "other", "x")
    final_read(h, "other", ["x"])
    with pytest.raises(ValueError, match="no successful final read of keys"):
        check_register(h)


# ---------------------------------------------------------------- History


def sample_history(last_value: str = "b") -> History:
    h = new_history()
    add(h, "a")
    add(h, last_value, INFO, process=1)
    read(h, {"a"})
    return h


def test_digest_equal_for_identical_histories():
    assert sample_history().digest() == sample_history().digest()


def test_digest_differs_when_one_op_differs():
    assert sample_history("b").digest() != sample_history("c").digest()


def test_completions_pair_per_process_and_leave_unfinished_as_none():
    h = new_history()
    a = h.invoke(1, "add", "x")
    b = h.invoke(2, "add", "y")
    c = h.invoke(3, "add", "z")  # never completes
    h.invoke(4, "read")  # another f: not among add completions
    done_b = h.ok(b)
    done_a = h.fail(a, "refused")
    assert h.completions("add") == [(a, done_a), (b, done_b), (c, None)]


def test_dump_writes_one_json_line_per_op(tmp_path):
    h = sample_history()
    path = tmp_path / "history.jsonl"
    h.dump(path)
    lines = path.read_text().splitlines()
    assert len(lines) == len(h.ops)
    records = [json.loads(line) for line in lines]
    assert [r["index"] for r in records] == list(range(len(h.ops)))
    assert [r["type"] for r in records] == [INVOKE, OK, INVOKE, INFO, INVOKE, OK]
    assert records[3]["error"] == "timeout"
    assert "error" not in records[1]
    assert records[5]["value"] == ["a"]


# ---------------------------------------------------------------- property


@st.composite
def set_runs(draw):
    names = draw(st.lists(st.text("abcdefgh", min_size=1, max_size=6), unique=True, max_size=30))
    outcomes = draw(
        st.lists(st.sampled_from([OK, INFO, FAIL]), min_size=len(names), max_size=len(names))
    )
    acked = [n for n, o in zip(names, outcomes, strict=True) if o == OK]
    info = [n for n, o in zip(names, outcomes, strict=True) if o == INFO]
    present = draw(st.sets(st.sampled_from(info))) if info else set()
    return list(zip(names, outcomes, strict=True)), acked, present


@given(set_runs(), st.data())
def test_set_checker_finds_exactly_the_removed_acknowledged_add(run, data):
    adds, acked, present_info = run

    def build(final):
        h = new_history()
        for process, (element, outcome) in enumerate(adds):
            add(h, element, outcome, process=process)
        read(h, final, process=len(adds))
        return check_set(h)

    final = set(acked) | present_info
    result = build(final)
    assert result.valid
    assert result.recovered == len(present_info)
    assert result.acknowledged == len(acked)

    if acked:
        victim = data.draw(st.sampled_from(acked))
        result = build(final - {victim})
        assert result.lost == frozenset({victim})
        assert result.unexpected == frozenset()


def test_set_final_read_is_the_last_to_complete_not_the_last_invoked():
    h = new_history()
    add(h, "a")
    first, second = h.invoke(1, "read"), h.invoke(2, "read")
    h.ok(second, {"a"})
    h.ok(first, set())  # completes last: it is the final read
    assert check_set(h).lost == frozenset({"a"})


def test_register_value_of_a_failed_write_in_the_final_read_is_unexpected():
    h = new_history()
    write(h, "k", "v1", saw=[])
    write(h, "k", "v2", saw=["v1"], outcome=FAIL)
    final_read(h, "k", ["v2"])
    result = check_register(h)
    assert result.unexpected == frozenset({("k", "v2")})
    assert result.lost == frozenset({("k", "v1")})  # a failed write supersedes nothing


def test_dump_of_an_empty_history_is_an_empty_file(tmp_path):
    path = tmp_path / "h.jsonl"
    new_history().dump(path)
    assert path.read_text() == ""


def test_register_values_a_delete_saw_are_accounted_for_even_though_tombstones_are_unseen():
    h = new_history()
    write(h, "k", "v1", saw=[])
    write(h, "k", "v2", saw=[])
    inv = h.invoke(1, "write", {"key": "k", "value": "d1", "saw": ["v1"], "delete": True})
    h.info(inv, "timeout")
    final_read(h, "k", [])
    assert check_register(h).lost == frozenset({("k", "v2")})  # the delete never saw v2
