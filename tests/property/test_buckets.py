"""Bucket metadata gossip: states merge as a semilattice, so replicas that change props and
types concurrently, with skewed clocks, agree once they have exchanged what they hold."""

from __future__ import annotations

from functools import reduce
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from spinekv import buckets
from spinekv.buckets import BucketMeta, BucketTypeError
from spinekv.config import parse_config
from spinekv.props import PropsError

NODES = ["n1", "n2", "n3", "n4"]
TYPES = ["default", "records", "t", "u"]
BUCKETS = ["a", "b"]
SKEW = [0, 7, -5, 3]  # each replica's clock is off by this much

CONFIG = parse_config(
    {
        "bucket_types": {"records": {}},
        "node": [
            {"name": n, "http_port": 1000 + i, "peer_port": 2000 + i} for i, n in enumerate(NODES)
        ],
    },
    Path("/tmp/cluster.toml"),
)

# Mostly valid values, so that changes happen; now and then a bad one, which must change nothing.
prop_changes = st.fixed_dictionaries(
    {},
    optional={
        "n_val": st.sampled_from([1, 2, 3, 3, 0]),
        "allow_mult": st.booleans(),
        "r": st.sampled_from(["one", "all", 1, "x"]),
        "notfound_ok": st.booleans(),
        "dvv_enabled": st.just(False),
        "last_write_wins": st.booleans(),
    },
)

actions = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(TYPES), st.sampled_from(BUCKETS), prop_changes),
    st.tuples(st.just("reset"), st.sampled_from(TYPES), st.sampled_from(BUCKETS), st.none()),
    st.tuples(st.just("create"), st.sampled_from(TYPES[2:]), st.none(), prop_changes),
    st.tuples(st.just("activate"), st.sampled_from(TYPES[2:]), st.none(), st.none()),
    st.tuples(st.just("activate"), st.sampled_from(TYPES[2:]), st.none(), st.none()),
    st.tuples(st.just("update"), st.sampled_from(TYPES), st.none(), prop_changes),
)

gossip = st.tuples(st.just("gossip"), st.integers(0, 3), st.integers(0, 3))
# A few gossip rounds in a row: every replica exchanges with replica 0, there and back.
sweep = st.tuples(st.just("sweep"))
steps = st.lists(
    st.one_of(st.tuples(st.just("act"), st.integers(0, 3), actions), gossip, gossip, sweep),
    min_size=5,
    max_size=80,
)


def act(meta: BucketMeta, me: str, action: tuple, now: int) -> BucketMeta:
    """One local change, as the HTTP handlers make it; a refused one changes nothing."""
    kind, type_name, bucket, changes = action
    try:
        if kind == "set":
            return buckets.set_bucket_props(CONFIG, meta, type_name, bucket, changes, now, me)
        if kind == "reset":
            return buckets.reset_bucket_props(CONFIG, meta, type_name, bucket, now, me)
        if kind == "create":
            return buckets.create_type(CONFIG, meta, type_name, changes, now, me)
        if kind == "activate":
            return buckets.activate_type(CONFIG, meta, type_name, NODES, now, me)
        if kind == "update":
            return buckets.update_type(CONFIG, meta, type_name, changes, now, me)
    except (PropsError, BucketTypeError):
        return meta
    raise AssertionError(kind)


def exchange(replicas: list[BucketMeta], i: int, j: int, now: int) -> None:
    """Push-pull between replicas i and j, each acknowledging what it now holds (membership)."""
    merged = replicas[i].merge(replicas[j])
    replicas[i] = buckets.acknowledge(merged, NODES[i], now + SKEW[i])
    replicas[j] = buckets.acknowledge(merged, NODES[j], now + SKEW[j])


def start() -> list[BucketMeta]:
    """Every replica holds type u, created on n1 and seen by all: ready to be activated."""
    meta = buckets.create_type(CONFIG, BucketMeta(), "u", {"n_val": 2}, 0, "n1")
    for node in NODES:
        meta = buckets.acknowledge(meta, node, 0)
    return [meta for _ in NODES]


def run(schedule: list) -> list[BucketMeta]:
    replicas = start()
    for step_no, step in enumerate(schedule):
        now = 1000 + 10 * step_no
        if step[0] == "act":
            _, i, action = step
            replicas[i] = act(replicas[i], NODES[i], action, now + SKEW[i])
        elif step[0] == "gossip":
            exchange(replicas, step[1], step[2], now)
        else:
            for i in [*range(len(NODES)), *range(len(NODES))]:
                exchange(replicas, 0, i, now)
    return replicas


def converge(replicas: list[BucketMeta], now: int) -> None:
    """Sweep exchanges until nothing changes (acknowledgements are new entries too)."""
    for _ in range(10):
        before = list(replicas)
        for i in range(len(replicas)):
            exchange(replicas, 0, i, now)
        for i in range(len(replicas)):
            exchange(replicas, 0, i, now)
        if replicas == before:
            return
    raise AssertionError("gossip did not reach a fixpoint")


def resolved(meta: BucketMeta) -> dict:
    return {(t, b): buckets.effective_props(CONFIG, meta, t, b) for t in TYPES for b in BUCKETS}


@st.composite
def states(draw) -> BucketMeta:
    return draw(st.sampled_from(run(draw(steps))))


@given(states(), states(), states())
def test_merge_is_a_semilattice(a, b, c):
    assert a.merge(a) == a
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@given(steps, st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=20))
def test_gossip_converges_and_every_replica_resolves_alike(schedule, extra):
    replicas = run(schedule)
    everything = reduce(BucketMeta.merge, replicas)
    for i, j in extra:
        exchange(replicas, i, j, 10_000)
    converge(replicas, 20_000)
    assert len({r.digest for r in replicas}) == 1
    # Nothing anyone wrote is lost: the converged state holds (or supersedes) every entry.
    final = replicas[0]
    assert final.merge(everything) == final
    views = [resolved(r) for r in replicas]
    assert all(view == views[0] for view in views)


@given(steps, st.integers(0, 3), actions)
def test_a_local_change_wins_over_everything_the_node_knew(schedule, i, action):
    replicas = run(schedule)
    before = replicas[i]
    after = act(before, NODES[i], action, 0)  # a clock far behind every stamp so far
    for key, entry in after.entries.items():
        if before.get(*key) != entry:
            old = before.get(*key)
            assert entry.node == NODES[i]
            assert old is None or entry.newer_than(old)
    assert before.merge(after) == after


@given(steps)
def test_once_converged_created_types_are_ready_and_active_ones_resolve(schedule):
    replicas = run(schedule)
    converge(replicas, 20_000)
    meta = replicas[0]
    for type_name in TYPES:
        status = buckets.type_status(CONFIG, meta, type_name, NODES)
        # Every member has acknowledged, so nothing is left merely "created".
        assert status != buckets.CREATED
        active = status == buckets.ACTIVE
        assert (buckets.effective_props(CONFIG, meta, type_name, "a") is not None) == active


@given(steps)
def test_round_trips_through_the_codec(schedule):
    for meta in run(schedule):
        assert buckets.decode(buckets.encode(meta)) == meta
