"""Reaping tombstones on an in-process cluster: the Reap message on a vnode, the coordinator's
reap across the primaries, and delete_mode's automatic reaps."""

from __future__ import annotations

import asyncio
import json

import pytest

from spinekv import object as riak_object
from spinekv import tictac
from spinekv.node.coordinator import BKey, PutOk
from spinekv.node.messages import Reap
from spinekv.object import Content
from spinekv.quorum import GetOptions, NotFound, PutOptions
from spinekv.reaping import Outcome, ReapOutcome
from tests.inproc import inproc_cluster
from tests.support import eventually

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


async def drain(c) -> None:
    """Wait for every coordinator's background work (read repairs, scheduled reaps)."""
    for node in c.nodes.values():
        await asyncio.gather(*node.coordinator._background, return_exceptions=True)


async def wait_seen(c, name: str, *, up: bool) -> None:
    async def seen() -> bool:
        others = [n for n in c.nodes.values() if n.name != name]
        await asyncio.gather(*(n.membership.probe(name) for n in others))
        return all(n.membership.is_up(name) == up for n in others)

    await eventually(seen, what=f"every node to see {name} {'up' if up else 'down'}")


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


# ------------------------------------------------------------------ delete_mode


async def test_immediate_reaps_a_deleted_key_from_every_primary(cluster):
    c = cluster
    key = bkey("now", "k")
    await write_and_delete(c, key, "n2")
    await eventually(
        lambda: set(copies(c, key).values()) == {None}, what="the tombstone to be reaped"
    )
    assert sum(node.vnodes.reaped for node in c.nodes.values()) == 3


async def test_keep_leaves_the_tombstone_even_after_a_get(cluster):
    c = cluster
    key = bkey("kept", "k")
    await write_and_delete(c, key)
    props = c.config.bucket_type("kept")
    found = await c.nodes["n3"].coordinator.get(key, props, GetOptions(r=3, timeout=5.0))
    assert isinstance(found, NotFound) and found.obj is not None
    await drain(c)
    assert all(copies(c, key).values())


async def test_a_delay_reaps_after_a_get_finds_the_same_tombstone_everywhere(tmp_path):
    # A 50 ms delay: the delete's own reap runs while one primary is down and is deferred;
    # once it is back, a GET sees the tombstone on every primary and reaps it.
    extra = '[bucket_types.soon]\ndelete_mode = "50"\n'
    async with inproc_cluster(tmp_path, extra=extra) as c:
        key = bkey("soon", "k")
        await write(c, "n1", key, Content(b"v"))
        replicas = c.replicas(key.bucket_type, key.bucket, key.key)
        down = replicas[2][1]
        coordinator = next(n for n in c.nodes if n not in {node for _, node in replicas})
        props = c.config.bucket_type("soon")
        live = await c.nodes[coordinator].coordinator.get(key, props, GetOptions(r=3))
        await c.stop(down)
        await wait_seen(c, down, up=False)
        result = await c.nodes[coordinator].coordinator.delete(
            key, props, riak_object.context(live.obj), PutOptions(w=2, timeout=5.0)
        )
        assert isinstance(result, PutOk), result
        await drain(c)
        assert all(copies(c, key)[n] for _, n in replicas[:2])  # deferred: a primary is down
        await c.restart(down)
        await wait_seen(c, down, up=True)
        await eventually(
            lambda: all(
                raw is not None and riak_object.is_encoded_tombstone(raw)
                for raw in copies(c, key).values()
            ),
            what="the tombstone handed off to the primary that was down",
        )
        await c.nodes[coordinator].coordinator.get(key, props, GetOptions(r=3))
        await eventually(lambda: set(copies(c, key).values()) == {None}, what="the reap")


async def test_a_primary_down_defers_the_reap(cluster):
    c = cluster
    key = bkey("now", "k")
    replicas = c.replicas(key.bucket_type, key.bucket, key.key)
    down = replicas[1][1]
    coordinator = replicas[0][1]
    await write(c, coordinator, key, Content(b"v"))
    await c.stop(down)
    await wait_seen(c, down, up=False)
    props = c.config.bucket_type("now")
    live = await c.nodes[coordinator].coordinator.get(key, props, GetOptions(r=2))
    result = await c.nodes[coordinator].coordinator.delete(
        key, props, riak_object.context(live.obj), PutOptions(w=2, timeout=5.0)
    )
    assert isinstance(result, PutOk)
    await drain(c)
    assert await reap(c, coordinator, key) == ReapOutcome(Outcome.DEFERRED, f"primary {down} down")
    up = [n for _, n in replicas if n != down]
    assert all(copies(c, key)[n] for n in up)


async def test_a_write_after_the_delete_is_never_reaped(cluster):
    c = cluster
    key = bkey("now", "again")
    await write_and_delete(c, key)
    # The immediate reap is under way (or done): the write over it must stay whatever.
    await write(c, "n3", key, Content(b"back"))
    await drain(c)
    assert await reap(c, "n3", key) == ReapOutcome(Outcome.NOT_TOMBSTONE)
    stored = [riak_object.decode(raw) for raw in copies(c, key).values() if raw is not None]
    assert len(stored) == 3 and not any(riak_object.is_tombstone(obj) for obj in stored)


# ------------------------------------------------------------------ POST /admin/reap


async def reap_lines(http, url: str) -> list[dict]:
    async with http.post(url) as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "application/x-ndjson"
        return [json.loads(line) async for line in r.content]


async def test_the_operator_reap_streams_progress_and_reaps_what_the_fold_found(cluster, http):
    c = cluster
    keys = [bkey("kept", f"k{i:02d}") for i in range(30)]
    for key in keys:
        await write_and_delete(c, key, f"n{len(key.key) % 5 + 1}")
    await write(c, "n1", bkey("kept", "live"), Content(b"v"))
    await write_and_delete(c, bkey("now", "elsewhere"))  # another type: out of scope
    base = c.url("n2") + "/admin/reap?type=kept"

    dry = await reap_lines(http, base + "&dry_run=true")
    assert dry[0] == {"found": 30} and dry[-1]["done"] == 0
    assert all(copies(c, key)[n] for key in keys[:3] for n in copies(c, key))
    young = await reap_lines(http, base + "&older_than=3600")
    assert young[0] == {"found": 0}  # every tombstone here is seconds old

    lines = await reap_lines(http, base + "&rate=50")  # 0.6 s: a progress line on the way
    assert lines[0] == {"found": 30} and len(lines) >= 3
    final = lines[-1]
    assert (final["done"], final["reaped"], final["deferred"]) == (30, 30, 0)
    assert final["deferred_reasons"] == {}
    assert all(line["done"] <= 30 for line in lines[1:])
    for key in keys:
        assert set(copies(c, key).values()) == {None}
    assert all(copies(c, bkey("kept", "live")).values())


async def test_the_operator_reap_defers_the_tombstones_of_a_down_primary(cluster, http):
    c = cluster
    keys = [bkey("kept", f"k{i:02d}") for i in range(30)]
    for key in keys:
        await write_and_delete(c, key)
    await c.stop("n5")
    await wait_seen(c, "n5", up=False)
    on_n5 = {k for k in keys if "n5" in {n for _, n in c.replicas(k.bucket_type, k.bucket, k.key)}}
    assert 0 < len(on_n5) < len(keys)

    final = (await reap_lines(http, c.url("n1") + "/admin/reap?type=kept"))[-1]
    assert (final["found"], final["reaped"], final["deferred"]) == (
        30,
        30 - len(on_n5),
        len(on_n5),
    )
    assert final["deferred_reasons"] == {"primary n5 down": len(on_n5)}
    for key in keys:
        held = [raw for node, raw in copies(c, key).items() if node != "n5"]
        assert all(held) if key in on_n5 else not any(held)


async def test_the_operator_reap_refuses_bad_parameters(cluster, http):
    kept = bkey("kept", "refused")
    await write_and_delete(cluster, kept)
    before = copies(cluster, kept)
    base = cluster.url("n1") + "/admin/reap"
    for query, status in (
        ("?rate=0", 400),
        ("?older_than=soon", 400),
        ("?type=nosuch", 400),
        ("?type=records", 403),
        ("?type=kept&rate=0", 400),
    ):
        async with http.post(base + query) as r:
            assert r.status == status, query
            assert "error" in await r.json()
    # A refused reap removed nothing.
    assert copies(cluster, kept) == before and all(before.values())
