"""The failed-authentication limit (pure): per address, per window, bounded memory."""

from __future__ import annotations

from spinekv.security.ratelimit import FailureLimiter


def test_an_address_waits_once_it_fails_limit_times_within_the_window():
    limiter = FailureLimiter(3, 60.0)
    for t in (0.0, 10.0, 20.0):
        assert limiter.retry_after("a", t) == 0.0
        limiter.failed("a", t)
    assert limiter.retry_after("a", 30.0) == 30.0  # until the first failure is 60 s old
    assert limiter.retry_after("b", 30.0) == 0.0  # other addresses are not held up
    assert limiter.retry_after("a", 60.0) == 0.0  # the first failure left the window
    limiter.failed("a", 61.0)
    assert limiter.retry_after("a", 62.0) == 8.0


def test_memory_stays_bounded_however_many_addresses_fail():
    limiter = FailureLimiter(2, 60.0, max_addresses=100)
    for i in range(10_000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}", 0.0)
        limiter.failed(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(limiter._failures) == 100
    assert limiter.retry_after("10.0.39.15", 1.0) == 59.0  # the latest are kept
    assert limiter.retry_after("10.0.0.0", 1.0) == 0.0
