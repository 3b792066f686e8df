"""Riak's kv679: a fallback that reuses a dot after handoff loses a write; spinekv's do not.

The story, step by step (the simulation's first lost write, register seed 0):
1. a primary of key "a" crashes; a fallback coordinates a blind write of "a";
2. the primary returns; hinted handoff takes the fallback's copy home and deletes it;
3. the primary crashes again; the fallback coordinates a second blind write of "a";
4. healed, both writes must read back: the second must not reuse the first one's dot.
Then the bug comes back (one actor id per partition for a node's life): the same steps
must lose a write, and the seeded runs' checker must catch it too.
"""

from __future__ import annotations

import pytest

from spinekv.node import vnode

from .steps import BUCKET, TYPE, Steps
from .workload import run_seed


def kv679_steps() -> None:
    """The simulation's first lost write (register seed 0), as a plain sequence of steps.

    A fallback coordinates a blind write, hands the key to the returning primary and
    deletes its copy; the primary fails again and the fallback coordinates a second
    blind write on the same key. Reusing the first write's dot would lose one of them.
    """
    steps = Steps()
    cluster = steps.cluster
    try:
        membership = cluster.nodes["n1"].membership
        partition = membership.ring.partition_of(TYPE.encode(), BUCKET.encode(), b"a")
        primaries = [e.node for e in membership.preflist(partition, 3)]
        cluster.crash(primaries[2])
        cluster.run(3.0)
        prefs = cluster.nodes[primaries[0]].membership.preflist(partition, 3)
        fallback = next(e.node for e in prefs if not e.primary)
        assert steps.write("a", fallback, blind=True) == "ok"
        cluster.restart(primaries[2])
        cluster.run(10.0)  # hinted handoff: the fallback's copy goes home and is deleted
        assert partition not in cluster.stores[fallback].mem.partitions()
        cluster.crash(primaries[2])
        cluster.run(3.0)
        assert steps.write("a", fallback, blind=True) == "ok"
        steps.heal_and_check()
    finally:
        steps.close()


def test_regression_kv679_a_fallback_never_reuses_a_dot_after_handoff():
    kv679_steps()


def test_regression_kv679_fails_with_one_actor_per_partition_for_life(monkeypatch):
    actors: dict[tuple[str, int], str] = {}
    monkeypatch.setattr(
        vnode.Vnodes,
        "actor",
        lambda self, partition: actors.setdefault((self.node, partition), self.node),
    )
    with pytest.raises(AssertionError, match="1 lost"):
        kv679_steps()


def test_the_checker_catches_reused_dots(monkeypatch):
    """Bring back kv679 (one actor id per partition for the node's life): seeds must fail."""
    actors: dict[tuple[str, int], str] = {}

    def sticky_actor(self, partition):
        return actors.setdefault((self.node, partition), f"{self.node}-{partition}")

    monkeypatch.setattr(vnode.Vnodes, "actor", sticky_actor)
    results = [run_seed(seed, workload="register") for seed in range(6)]
    assert any(not r.valid for r in results), [r.summary for r in results]
