"""spinekv.stats: Riak-style request counts and latency percentiles over a sliding minute."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spinekv.stats import Counter, Histogram, NodeStats, classify, nearest_rank


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


OBJECT = "/buckets/{bucket}/keys/{key}"
TYPED_OBJECT = "/types/{type}/buckets/{bucket}/keys/{key}"


@pytest.mark.parametrize(
    ("method", "route", "status", "kind"),
    [
        ("GET", OBJECT, 200, "get"),
        ("GET", TYPED_OBJECT, 300, "get"),
        ("GET", OBJECT, 404, "get"),  # a miss is a get that ran
        ("HEAD", OBJECT, 200, "get"),
        ("PUT", OBJECT, 204, "put"),
        ("POST", TYPED_OBJECT, 200, "put"),
        ("DELETE", OBJECT, 204, "put"),
        ("POST", "/buckets/{bucket}/keys", 201, "put"),
        ("POST", "/types/{t}/buckets/{b}/keys", 201, "put"),
        ("PUT", OBJECT, 503, "put"),  # ran and timed out
        ("PUT", OBJECT, 400, None),  # refused before running
        ("GET", OBJECT, 412, None),
        ("GET", "/buckets/{bucket}/keys", 200, None),  # key listing is not a get
        ("GET", "/buckets/{bucket}/keys/{key}/preflist", 200, None),
        ("GET", "/ping", 200, None),
        ("GET", None, 404, None),  # no route matched
    ],
)
def test_classify_counts_object_reads_and_writes_only(method, route, status, kind):
    assert classify(method, route, status) == kind


def test_histogram_summary_is_exact_while_under_the_cap():
    clock = FakeClock()
    hist = Histogram(clock)
    for value in range(1, 101):  # 1..100 microseconds
        hist.record(float(value))
    assert hist.count() == 100
    assert hist.summary() == {"mean": 50, "median": 50, "95": 95, "99": 99, "100": 100}


def test_histogram_forgets_values_older_than_the_window_but_keeps_the_total():
    clock = FakeClock(1000.0)
    hist = Histogram(clock, window=60)
    hist.record(5000.0)
    clock.now = 1030.0
    hist.record(10.0)
    assert hist.count() == 2
    assert hist.summary()["100"] == 5000
    clock.now = 1060.0  # the first value's second (1000) is now 60 s old
    assert hist.count() == 1
    assert hist.summary() == {"mean": 10, "median": 10, "95": 10, "99": 10, "100": 10}
    clock.now = 1090.5
    assert hist.count() == 0
    assert hist.summary() == {"mean": 0, "median": 0, "95": 0, "99": 0, "100": 0}
    assert hist.total == 2


def test_histogram_over_the_cap_keeps_exact_count_mean_and_max():
    clock = FakeClock()
    hist = Histogram(clock, cap=200, rng=random.Random(7))
    for value in range(1, 1001):
        hist.record(float(value))
    assert hist.count() == 1000
    summary = hist.summary()
    assert summary["mean"] == 500  # 500.5 rounds to even
    assert summary["100"] == 1000
    # A uniform sample of 200 from 1..1000 puts the median near 500 (keeping only the
    # first 200 values would put it near 100).
    assert 400 <= summary["median"] <= 600
    assert summary["95"] >= 850


def test_busy_second_weighs_more_than_a_quiet_one_in_percentiles():
    """One slow request in a quiet second must not count like a thousand fast ones."""
    clock = FakeClock(1000.0)
    hist = Histogram(clock, cap=10, rng=random.Random(1))
    hist.record(9000.0)
    clock.now = 1001.0
    for _ in range(1000):
        hist.record(100.0)
    summary = hist.summary()
    assert summary["median"] == 100
    assert summary["99"] == 100  # 1 of 1001 is above the 99th percentile
    assert summary["100"] == 9000


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=200))
def test_nearest_rank_matches_the_textbook_definition_for_unit_weights(values):
    ordered = sorted(values)
    weighted = [(float(v), 1.0) for v in ordered]
    for q in ("0.5", "0.95", "0.99", "1"):
        rank = max(1, math.ceil(Fraction(q) * len(ordered)))
        assert nearest_rank(weighted, float(q)) == ordered[rank - 1]


def test_counter_counts_the_last_minute_and_since_start():
    clock = FakeClock(0.0)
    counter = Counter(clock)
    counter.add()
    counter.add()
    clock.now = 59.9
    counter.add()
    assert counter.count() == 3
    clock.now = 60.0
    assert counter.count() == 1
    assert counter.total == 3


def test_node_stats_snapshot_has_riak_names():
    clock = FakeClock()
    stats = NodeStats(clock)
    stats.observe("GET", OBJECT, 200, 1500.0)
    stats.observe("GET", OBJECT, 404, 500.0)
    stats.observe("PUT", OBJECT, 204, 3000.0)
    stats.observe("PUT", OBJECT, 400, 10.0)
    stats.observe("GET", "/ping", 200, 10.0)
    stats.observe("GET", OBJECT, 503, 2000.0)
    snap = stats.snapshot()
    assert snap["node_gets"] == snap["node_gets_total"] == 3
    assert snap["node_puts"] == snap["node_puts_total"] == 1
    assert snap["node_get_fsm_time_mean"] == round((1500 + 500 + 2000) / 3)
    assert snap["node_get_fsm_time_median"] == 1500
    assert snap["node_get_fsm_time_100"] == 2000
    assert snap["node_put_fsm_time_95"] == 3000
    assert snap["http_4xx"] == snap["http_4xx_total"] == 2  # the 404 and the 400
    assert snap["http_5xx"] == snap["http_5xx_total"] == 1
    clock.now += 120
    later = stats.snapshot()
    assert later["node_gets"] == 0 and later["node_gets_total"] == 3
    assert later["node_get_fsm_time_99"] == 0
    assert later["http_4xx"] == 0 and later["http_4xx_total"] == 2
