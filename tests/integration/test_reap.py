"""Reaping tombstones on an in-process cluster: the Reap message on a vnode, the coordinator's
reap across the primaries, and delete_mode's automatic reaps."""

from __future__ import annotations

import pytest

from spinekv import object as riak_object
from spinekv import tictac
from spinekv.node.coordinator import BKey, PutOk
from spinekv.node.messages import Reap
from spinekv.object import Content
from spinekv.quorum import PutOptions
from spinekv.reaping import Outcome, ReapOutcome
from tests.inproc import inproc_cluster

TYPES = """
[bucket_types.kept]
delete_mode = "keep"
[bucket_types.now]
delete_mode = "immediate"
"""
ALL = PutOptions(w=3, timeout=5.0)


@pytest.fixture
async def cluster(tmp_path):
    async with inproc_cluster(tmp_path, extra=TYPES) as c:
        yield c


def bkey(btype: str, key: str) -> BKey:
    return BKey(btype.encode(), b"b", key.encode())


async def write(c, node, key: BKey, content, context=None):
    props = c.config.bucket_type(key.bucket_type.decode())
    result = await c.nodes[node].coordinator.put(key, props, context or {}, content, ALL)
    assert isinstance(result, PutOk), result
    return result.obj


async def write_and_delete(c, key: BKey, node: str = "n1"):
    """Write `key`, then delete it as a client does (over what it read); the tombstone."""
    live = await write(c, node, key, Content(b"v"))
    props = c.config.bucket_type(key.bucket_type.decode())
    context = riak_object.context(live)
    result = await c.nodes[node].coordinator.delete(key, props, context, ALL)
    assert isinstance(result, PutOk), result
    return result.obj


def copies(c, key: BKey) -> dict[str, bytes | None]:
    """Each primary's stored copy, read from its backend."""
    replicas = c.replicas(key.bucket_type, key.bucket, key.key)
    return {node: c.backends[node].get(p, key.okey) for p, node in replicas}


async def reap(c, node, key: BKey) -> ReapOutcome:
    props = c.config.bucket_type(key.bucket_type.decode())
    return await c.nodes[node].coordinator.reap(key, props, 5.0)


async def test_the_reap_message_removes_only_the_tombstone_it_names(cluster):
    c = cluster
    key = bkey("kept", "k")
    live = await write(c, "n1", key, Content(b"v"))
    (partition, holder), *_ = c.replicas(key.bucket_type, key.bucket, key.key)
    sender = next(n for n in c.nodes if n != holder)
    transport = c.nodes[sender].transport
    message = Reap(partition, key.okey, tictac.version(live)).to_wire()
    assert await transport.request(holder, message, 5.0) is False  # a live value stays
    dead = await write(c, "n1", key, riak_object.tombstone(9), riak_object.context(live))
    assert await transport.request(holder, message, 5.0) is False  # another version stays
    assert copies(c, key)[holder] is not None
    message = Reap(partition, key.okey, tictac.version(dead)).to_wire()
    assert await transport.request(holder, message, 5.0) is True
    assert copies(c, key)[holder] is None and c.nodes[holder].vnodes.reaped == 1


async def test_a_tombstone_every_primary_holds_alike_is_reaped_from_all(cluster):
    c = cluster
    key = bkey("kept", "gone-soon")
    await write_and_delete(c, key)
    assert all(copies(c, key).values())
    assert await reap(c, "n4", key) == ReapOutcome(Outcome.REAPED)
    assert set(copies(c, key).values()) == {None}
    assert await reap(c, "n2", key) == ReapOutcome(Outcome.GONE)


async def test_a_live_value_or_differing_replicas_are_not_reaped(cluster):
    c = cluster
    live = bkey("kept", "live")
    await write(c, "n1", live, Content(b"v"))
    assert await reap(c, "n3", live) == ReapOutcome(Outcome.NOT_TOMBSTONE)
    assert all(copies(c, live).values())

    key = bkey("kept", "differ")
    dead = await write_and_delete(c, key)
    # One primary gets another delete of the same value (another actor's tombstone).
    partition, node = c.replicas(key.bucket_type, key.bucket, key.key)[0]
    other = riak_object.write(
        None, {}, riak_object.tombstone(3), "x", allow_mult=True, last_write_wins=False
    )
    c.nodes[node].vnodes.merge(partition, key.okey, other, allow_mult=True)
    before = copies(c, key)
    assert await reap(c, "n5", key) == ReapOutcome(Outcome.DEFERRED, "replicas differ")
    assert copies(c, key) == before and dead is not None
