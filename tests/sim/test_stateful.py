"""Hypothesis drives the simulated cluster step by step; healed, nothing acknowledged is lost."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from spinekv.node import vnode
from tests.history import History, check_register

from .cluster import Outcome, SimCluster

KEYS = ("a", "b", "c")
NAMES = ("n1", "n2", "n3", "n4", "n5")
TYPE, BUCKET = "sets", "model"


class Steps:
    """The operations, shared by the state machine and the regression tests it left."""

    def __init__(self, seed: int = 0) -> None:
        self.cluster = SimCluster(seed)
        self.history = History(clock=lambda: self.cluster.now)
        self._values = itertools.count()
        self.checked = 0

    def write(self, key: str, node: str, *, delete: bool = False, blind: bool = False) -> str:
        """Read, then write (or delete) under the read's context; blind: no read, no context."""
        cluster = self.cluster
        if blind:
            read = Outcome("ok", [], {})
        else:
            read = cluster.run_until(cluster.get(node, TYPE, BUCKET, key))
        if read.type != "ok":
            return "read failed"
        saw = sorted(v.decode() for v in read.value)
        value = f"{'d' if delete else 'v'}{next(self._values)}"
        op = self.history.invoke(
            0, "write", {"key": key, "value": value, "saw": saw, "delete": delete}
        )
        context = read.context or {}
        if delete:
            outcome = cluster.run_until(cluster.delete(node, TYPE, BUCKET, key, context))
        else:
            outcome = cluster.run_until(
                cluster.put(node, TYPE, BUCKET, key, value.encode(), context)
            )
        self.history.finish(op, outcome.type, outcome.error)
        return outcome.type

    def read(self, key: str, node: str) -> list[str] | None:
        read = self.cluster.run_until(self.cluster.get(node, TYPE, BUCKET, key))
        return sorted(v.decode() for v in read.value) if read.type == "ok" else None

    def heal_and_check(self) -> None:
        """Heal, restart, settle; then every acknowledged write must be readable."""
        cluster = self.cluster
        cluster.heal_all()
        cluster.network.faults.drop = 0.0
        cluster.settle()
        for key in KEYS:
            op = self.history.invoke(1, "read", key)
            read = cluster.run_until(cluster.get(NAMES[0], TYPE, BUCKET, key, r=3, pr=3))
            assert read.type == "ok", f"final read of {key} failed: {read.error}"
            self.history.ok(op, {"key": key, "values": sorted(v.decode() for v in read.value)})
        result = check_register(self.history)
        assert result.valid, result.summary() + "\nfaults: " + repr(cluster.log)
        self.checked += 1

    def close(self) -> None:
        self.cluster.close()


class ClusterMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.steps = Steps()

    @property
    def cluster(self) -> SimCluster:
        return self.steps.cluster

    @rule(key=st.sampled_from(KEYS), node=st.sampled_from(NAMES))
    def put(self, key: str, node: str) -> None:
        self.steps.write(key, node)

    @rule(key=st.sampled_from(KEYS), node=st.sampled_from(NAMES))
    def blind_put(self, key: str, node: str) -> None:
        """A write without a read first, as many Riak clients do: a sibling of all there is."""
        self.steps.write(key, node, blind=True)

    @rule(key=st.sampled_from(KEYS), node=st.sampled_from(NAMES))
    def delete(self, key: str, node: str) -> None:
        self.steps.write(key, node, delete=True)

    @rule(key=st.sampled_from(KEYS), node=st.sampled_from(NAMES))
    def get(self, key: str, node: str) -> None:
        values = self.steps.read(key, node)
        if values is not None:  # whatever a read returns was written by someone
            written = {
                op.value["value"]
                for op in self.steps.history.ops
                if op.f == "write" and op.type == "invoke" and not op.value["delete"]
            }
            assert set(values) <= written, f"read {values} that nobody wrote"

    @precondition(lambda self: len(self.cluster.nodes) > 3)
    @rule(node=st.sampled_from(NAMES))
    def crash(self, node: str) -> None:
        if node in self.cluster.nodes:
            self.cluster.crash(node)

    @rule(node=st.sampled_from(NAMES))
    def restart(self, node: str) -> None:
        if node not in self.cluster.nodes:
            self.cluster.restart(node)

    @rule(side=st.sets(st.sampled_from(NAMES), min_size=1, max_size=4))
    def partition(self, side: set[str]) -> None:
        self.cluster.partition(sorted(side), [n for n in NAMES if n not in side])

    @rule(a=st.sampled_from(NAMES), b=st.sampled_from(NAMES))
    def one_way_cut(self, a: str, b: str) -> None:
        if a != b:
            self.cluster.cut(a, b, both_ways=False)

    @rule()
    def heal(self) -> None:
        self.cluster.heal()

    @rule(seconds=st.floats(min_value=0.01, max_value=8.0))
    def advance_time(self, seconds: float) -> None:
        self.cluster.run(seconds)

    @rule()
    def heal_and_check(self) -> None:
        self.steps.heal_and_check()

    @invariant()
    def never_more_than_two_down(self) -> None:
        assert len(self.cluster.nodes) >= 3

    def teardown(self) -> None:
        steps = getattr(self, "steps", None)
        if steps is None:
            return
        try:
            steps.heal_and_check()
        finally:
            steps.close()


ClusterMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestClusterMachine = ClusterMachine.TestCase


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
