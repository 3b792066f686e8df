"""Applying an object replicated from another cluster (Coordinator.apply_replicated) on an
in-process cluster: merged into every replica as it is, never a new event."""

from __future__ import annotations

import pytest

from spinekv import dvv
from spinekv import object as riak_object
from spinekv.node.coordinator import BKey, PutOk
from spinekv.object import Content
from spinekv.quorum import Failed, PutOptions, put_options
from tests.inproc import inproc_cluster
from tests.support import eventually


@pytest.fixture
async def cluster(tmp_path):
    async with inproc_cluster(tmp_path) as c:
        yield c


def foreign_write(stored, content: Content, actor: str, *, allow_mult: bool = True):
    """An object as the source cluster's vnode `actor` would have written it over `stored`."""
    context = riak_object.context(stored) if stored is not None else {}
    return riak_object.write(stored, context, content, actor, allow_mult=allow_mult)


def bucket_opts(c, btype: str) -> PutOptions:
    """The quorums a sink applies with: the bucket's, as for a client write there."""
    return put_options(c.config.bucket_type(btype), {}, 5.0)


async def apply(c, node: str, key: BKey, obj, opts: PutOptions | None = None):
    btype = key.bucket_type.decode()
    props = c.config.bucket_type(btype)
    return await c.nodes[node].coordinator.apply_replicated(
        key, props, obj, opts or PutOptions(w=3, dw=3, timeout=5.0)
    )


def stored(c, key: BKey) -> dict[str, object]:
    """Each primary's copy, decoded (None where it holds nothing)."""
    copies = {}
    for partition, node in c.replicas(key.bucket_type, key.bucket, key.key):
        raw = c.backends[node].get(partition, key.okey)
        copies[node] = None if raw is None else riak_object.decode(raw)
    return copies


def record_changes(c) -> list:
    changes: list = []
    for node in c.nodes.values():
        node.vnodes.listeners.append(changes.append)
    return changes


async def test_every_primary_holds_the_object_as_sent_with_no_new_dot(cluster):
    key = BKey(b"siblings", b"b", b"k")
    first = foreign_write(None, Content(b"v1", last_modified_us=1), "src-a")
    obj = foreign_write(first, Content(b"v2", last_modified_us=2), "src-b")
    holder = cluster.replicas(key.bucket_type, key.bucket, key.key)[1][1]
    changes = record_changes(cluster)
    result = await apply(cluster, holder, key, obj)
    assert isinstance(result, PutOk), result
    assert result.obj == obj
    copies = stored(cluster, key)
    assert list(copies.values()) == [obj, obj, obj]
    for copy in copies.values():
        assert [actor for actor, _, _ in copy.entries] == ["src-a", "src-b"]
    # Every replica merged it: nothing coordinated it as a client write.
    assert [ch.cause for ch in changes] == ["merge"] * 3


async def test_applying_the_same_object_twice_changes_nothing(cluster):
    key = BKey(b"default", b"b", b"twice")
    obj = foreign_write(None, Content(b"v", last_modified_us=5), "src-a", allow_mult=False)
    assert isinstance(await apply(cluster, "n2", key, obj), PutOk)
    before = stored(cluster, key)
    changes = record_changes(cluster)
    assert isinstance(await apply(cluster, "n4", key, obj), PutOk)
    assert stored(cluster, key) == before
    assert changes == []


async def test_a_node_without_a_replica_applies_it_and_answers_the_object(cluster):
    key = BKey(b"siblings", b"b", b"elsewhere")
    holders = {node for _, node in cluster.replicas(key.bucket_type, key.bucket, key.key)}
    outsider = next(n for n in cluster.nodes if n not in holders)
    obj = foreign_write(None, Content(b"v"), "src-a")
    result = await apply(cluster, outsider, key, obj, bucket_opts(cluster, "siblings"))
    assert isinstance(result, PutOk), result
    assert result.obj == obj

    def everywhere() -> bool:
        return all(copy == obj for copy in stored(cluster, key).values())

    # w=quorum answers after two acks; the third replica's merge may still be on its way.
    await eventually(everywhere, what="every primary to hold the applied object")


async def concurrent_pair(allow_mult: bool):
    base = foreign_write(None, Content(b"base", last_modified_us=1), "src-a", allow_mult=allow_mult)
    older = foreign_write(
        base, Content(b"older", last_modified_us=10), "src-b", allow_mult=allow_mult
    )
    newer = foreign_write(
        base, Content(b"newer", last_modified_us=20), "src-c", allow_mult=allow_mult
    )
    assert dvv.compare(older, newer) == "concurrent"
    return older, newer


async def test_concurrent_objects_become_siblings_where_the_type_allows(cluster):
    key = BKey(b"siblings", b"b", b"both")
    older, newer = await concurrent_pair(allow_mult=True)
    assert isinstance(await apply(cluster, "n1", key, newer), PutOk)
    result = await apply(cluster, "n3", key, older)
    assert isinstance(result, PutOk), result
    for copy in stored(cluster, key).values():
        assert sorted(c.value for c in riak_object.contents(copy)) == [b"newer", b"older"]
        assert dvv.compare(copy, older) == dvv.compare(copy, newer) == "local_ahead"
    assert sorted(c.value for c in riak_object.contents(result.obj)) == [b"newer", b"older"]


async def test_the_newest_wins_where_the_type_keeps_one_value(cluster):
    key = BKey(b"default", b"b", b"one")
    older, newer = await concurrent_pair(allow_mult=False)
    assert isinstance(await apply(cluster, "n2", key, newer), PutOk)
    assert isinstance(await apply(cluster, "n5", key, older), PutOk)
    expected = riak_object.merge(newer, older, allow_mult=False)
    assert [c.value for c in riak_object.contents(expected)] == [b"newer"]
    assert list(stored(cluster, key).values()) == [expected] * 3


async def test_a_tombstone_replicates_as_a_tombstone(cluster):
    key = BKey(b"siblings", b"b", b"gone")
    live = foreign_write(None, Content(b"v", last_modified_us=1), "src-a")
    dead = foreign_write(live, riak_object.tombstone(2), "src-a")
    assert isinstance(await apply(cluster, "n1", key, live), PutOk)
    result = await apply(cluster, "n1", key, dead)
    assert isinstance(result, PutOk), result
    for copy in stored(cluster, key).values():
        assert riak_object.is_tombstone(copy)
        assert copy == dead


async def test_too_few_primaries_fail_with_the_quorum_named(cluster):
    key = BKey(b"siblings", b"b", b"down")
    replicas = [node for _, node in cluster.replicas(key.bucket_type, key.bucket, key.key)]
    survivor, *down = replicas
    for name in down:
        await cluster.stop(name)
    node = cluster.nodes[survivor]
    await eventually(
        lambda: not any(node.membership.is_up(n) for n in down),
        what=f"{survivor} to see {down} down",
    )
    obj = foreign_write(None, Content(b"v"), "src-a")
    # Fallbacks stand in for the two down primaries, so w=quorum alone is met (sloppy
    # quorum, as for a client write); a quorum of primaries cannot be.
    quorum = PutOptions(w=2, pw=2, timeout=5.0)
    result = await apply(cluster, survivor, key, obj, quorum)
    assert isinstance(result, Failed)
    assert "pw=2 unsatisfied" in result.reason
    sloppy = await apply(cluster, survivor, key, obj, PutOptions(w=2, timeout=5.0))
    assert isinstance(sloppy, PutOk), sloppy
