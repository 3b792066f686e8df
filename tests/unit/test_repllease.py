"""The one-consumer-at-a-time lease on a source node's replication queue."""

from __future__ import annotations

from spinekv.repllease import LEASE_S, Held, Leases


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_second_consumer_is_refused_until_the_lease_lapses():
    clock = Clock()
    leases = Leases(clock)
    assert leases.take("dr", "b/n1") is None
    clock.now += 10
    assert leases.take("dr", "b/n2") == Held("b/n1", LEASE_S - 10)
    clock.now += LEASE_S - 10
    assert leases.take("dr", "b/n2") is None  # lapsed: taken over
    assert leases.holder("dr") == "b/n2"
    assert leases.take("dr", "b/n1") == Held("b/n2", LEASE_S)


def test_each_fetch_renews_the_holders_lease():
    clock = Clock()
    leases = Leases(clock)
    for _ in range(5):
        assert leases.take("dr", "b/n1") is None
        clock.now += LEASE_S - 1
    assert leases.take("dr", "b/n2") == Held("b/n1", 1.0)


def test_queues_are_leased_apart_and_an_unleased_queue_has_no_holder():
    leases = Leases(Clock())
    assert leases.holder("dr") is None
    assert leases.take("dr", "b/n1") is None
    assert leases.take("other", "b/n2") is None
    assert (leases.holder("dr"), leases.holder("other")) == ("b/n1", "b/n2")
