"""The shared polling helper: what counts as passing, and how it fails at its deadline."""

from __future__ import annotations

import pytest

from tests.support import eventually, eventually_sync


def countdown(ready_after: int, value: object = "done"):
    """A check that fails its assertion `ready_after` times, then returns `value`."""
    calls = []

    def check():
        calls.append(1)
        assert len(calls) > ready_after, f"only {len(calls)} calls"
        return value

    return check, calls


async def test_eventually_returns_the_first_truthy_value_of_a_sync_or_async_check():
    check, calls = countdown(3)
    assert await eventually(check, what="three calls", interval=0) == "done"
    assert len(calls) == 4

    answers = iter([None, 0, [], {"ok": 1}])

    async def reply():
        return next(answers)

    assert await eventually(reply, what="a non-empty reply", interval=0) == {"ok": 1}


async def test_eventually_fails_at_the_deadline_naming_what_and_the_last_error():
    check, calls = countdown(10**9)
    with pytest.raises(AssertionError, match=r"waiting for the impossible; last: .*only \d+ calls"):
        await eventually(check, what="the impossible", timeout=0.05, interval=0.01)
    assert len(calls) >= 2

    with pytest.raises(AssertionError, match=r"waiting for a truthy value; last: 0") as err:
        await eventually(lambda: 0, what="a truthy value", timeout=0.01, interval=0)
    assert err.value.__cause__ is None


async def test_only_the_not_yet_errors_are_retried():
    def broken():
        raise KeyError("a bug, not a state to wait for")

    with pytest.raises(KeyError):
        await eventually(broken, what="never", timeout=5)

    tries = iter([ConnectionError("refused"), ConnectionError("refused"), None])

    def connect():
        error = next(tries)
        if error is not None:
            raise error
        return "connected"

    got = await eventually(connect, what="a connection", interval=0, not_yet=(ConnectionError,))
    assert got == "connected"


def test_the_blocking_twin_follows_the_same_rules():
    check, calls = countdown(2, value=[1])
    assert eventually_sync(check, what="two calls", interval=0) == [1]
    assert len(calls) == 3
    with pytest.raises(AssertionError, match="waiting for nothing; last: False") as err:
        eventually_sync(lambda: False, what="nothing", timeout=0.01, interval=0)
    assert err.value.__cause__ is None
    failing, _ = countdown(10**9)
    with pytest.raises(AssertionError, match="waiting for ever") as err:
        eventually_sync(failing, what="ever", timeout=0.01, interval=0)
    assert isinstance(err.value.__cause__, AssertionError)
