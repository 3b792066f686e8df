"""Hypothesis drives the simulated cluster step by step; healed, nothing acknowledged is lost."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from .cluster import SimCluster
from .steps import KEYS, NAMES, Steps


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
