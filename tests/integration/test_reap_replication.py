"""Reaping waits for replication: a tombstone stays while a replication queue still holds its key.

First one in-process cluster that keeps the queue "dr" (bucket type "now" only) with no
sink pulling it: the test itself plays the sink, acknowledging through the source's
/repl/queues routes. Then two clusters as in test_repl_realtime.py, B pulling A's queue:
A's tombstone is reaped once B has it.
"""

from __future__ import annotations

import aiohttp
import msgpack
import pytest

from spinekv import object as riak_object
from spinekv.node import replsink
from spinekv.node.coordinator import BKey
from spinekv.reaping import Outcome, ReapOutcome
from spinekv.security.secrets import hash_secret
from tests.inproc import inproc_cluster
from tests.integration.test_reap import copies, reap, reap_lines, wait_seen
from tests.integration.test_repl_realtime import SINK_TOKEN, SOURCE, bearer, sink_toml
from tests.support import eventually

QUEUE = f"""
[bucket_types.now]
delete_mode = "immediate"
[bucket_types.kept]
delete_mode = "keep"

[[replication.source]]
name = "dr"
filter = "type:now"

[[replication.source]]
name = "keptq"
filter = "bucket:kept/held"

[[source]]
cidr = "0.0.0.0/0"
method = "token"

[[user]]
name = "sink"
token_hash = "{hash_secret(SINK_TOKEN)}"
grants = [{{ on = "any", permissions = ["repl"] }}]
"""
HELD = "still holds a change of the key (its sink has not applied it)"


@pytest.fixture
async def cluster(tmp_path):
    async with inproc_cluster(tmp_path, extra=QUEUE) as c:
        yield c


@pytest.fixture
async def sink():
    """A client on 127.0.0.2 (loopback's trusted `local` holds no repl): the sink's user."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=20), headers=bearer(SINK_TOKEN)
    ) as session:
        yield session


async def write_then_delete(c, http, node: str, btype: str, bucket: str, key: str) -> BKey:
    """A client's write and delete of the key through `node`'s HTTP API."""
    url = f"{c.url(node)}/types/{btype}/buckets/{bucket}/keys/{key}"
    async with http.put(url, data=b"v") as r:
        assert r.status == 204, await r.text()
    async with http.delete(url) as r:
        assert r.status == 204, await r.text()
    return BKey(btype.encode(), bucket.encode(), key.encode())


async def applied_by_sink(c, sink, node: str, queue: str) -> None:
    """Acknowledge everything `node`'s queue holds, as a sink does once it has applied it."""
    base = f"{c.url(node)}/repl/queues/{queue}"
    consumer = {"consumer": "test/sink"}
    async with sink.post(f"{base}/fetch", params={**consumer, "max": "1000"}) as r:
        assert r.status == 200, await r.text()
        entries = msgpack.unpackb(await r.read(), raw=True)[b"entries"]
    assert entries, f"{node}'s queue {queue} is empty"
    async with sink.post(f"{base}/ack", params={**consumer, "upto": str(entries[-1][0])}) as r:
        assert r.status == 200 and (await r.json())["depth"] == 0, await r.text()


def tombstones_everywhere(c, key: BKey) -> bool:
    held = copies(c, key).values()
    return all(raw is not None and riak_object.is_encoded_tombstone(raw) for raw in held)


def reaped(c, key: BKey) -> bool:
    return set(copies(c, key).values()) == {None}


async def test_an_unapplied_delete_holds_the_reap_back_until_acknowledged(cluster, http, sink):
    c = cluster
    key = await write_then_delete(c, http, "n2", "now", "b", "k")
    # delete_mode immediate tries to reap at once; nobody has applied n2's queue.
    await eventually(lambda: tombstones_everywhere(c, key), what="the tombstone everywhere")
    held = ReapOutcome(Outcome.DEFERRED, f"replication queue 'dr' on n2 {HELD}", replicating=True)
    assert await reap(c, "n4", key) == held
    assert tombstones_everywhere(c, key)

    await applied_by_sink(c, sink, "n2", "dr")
    # The deleting node tries again (1 s, 2 s, ... later) and now reaps it.
    await eventually(lambda: reaped(c, key), what="the retried reap", timeout=15.0)
    assert sum(node.vnodes.reaped for node in c.nodes.values()) == 3


async def test_keys_no_queue_carries_reap_at_once(cluster, http):
    c = cluster
    key = await write_then_delete(c, http, "n2", "kept", "free", "k")
    assert await reap(c, "n1", key) == ReapOutcome(Outcome.REAPED)


async def test_the_operator_reap_names_the_queue_that_holds_it(cluster, http, sink):
    c = cluster
    keys = [await write_then_delete(c, http, "n3", "kept", "held", f"k{i}") for i in range(4)]
    base = c.url("n1") + "/admin/reap?type=kept&bucket=held"
    final = (await reap_lines(http, base))[-1]
    assert (final["found"], final["reaped"], final["deferred"]) == (4, 0, 4)
    assert final["deferred_reasons"] == {f"replication queue 'keptq' on n3 {HELD}": 4}
    assert all(tombstones_everywhere(c, key) for key in keys)

    await applied_by_sink(c, sink, "n3", "keptq")
    final = (await reap_lines(http, base))[-1]
    assert (final["found"], final["reaped"], final["deferred"]) == (4, 4, 0)
    assert all(reaped(c, key) for key in keys)


async def test_a_member_that_cannot_be_asked_holds_the_reap_back(cluster, http, sink):
    c = cluster
    key = await write_then_delete(c, http, "n1", "kept", "held", "k")
    await applied_by_sink(c, sink, "n1", "keptq")
    primaries = {node for _, node in c.replicas(key.bucket_type, key.bucket, key.key)}
    down = next(n for n in sorted(c.nodes, reverse=True) if n not in primaries | {"n1"})
    await c.stop(down)
    await wait_seen(c, down, up=False)
    coordinator = next(iter(primaries))
    assert await reap(c, coordinator, key) == ReapOutcome(
        Outcome.DEFERRED, f"replication queues on {down} unknown: {down} is down", replicating=True
    )
    assert tombstones_everywhere(c, key)


# ------------------------------------------------------------------ with a real sink

NOW = '\n[bucket_types.now]\ndelete_mode = "{mode}"\n'


@pytest.fixture
async def clusters(tmp_path, monkeypatch):
    """A (delete_mode immediate) replicates to B, which keeps its tombstones to be seen."""
    monkeypatch.setattr(replsink, "BACKOFF_MOST_S", 0.4)
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    (tmp_path / "b" / "a.token").write_text(SINK_TOKEN + "\n")
    async with (
        inproc_cluster(tmp_path / "a", 3, extra=SOURCE + NOW.format(mode="immediate")) as a,
        inproc_cluster(tmp_path / "b", 3, extra=sink_toml(a) + NOW.format(mode="keep")) as b,
    ):
        yield a, b


async def test_a_tombstone_is_reaped_on_the_source_once_the_sink_has_it(clusters, http):
    a, b = clusters
    url = f"{a.url('n1')}/types/now/buckets/b/keys/k"
    async with http.put(url, data=b"live") as r:
        assert r.status == 204
    key = BKey(b"now", b"b", b"k")

    def live_on_b() -> bool:
        held = copies(b, key).values()
        return all(raw is not None and not riak_object.is_encoded_tombstone(raw) for raw in held)

    await eventually(live_on_b, what="the live value on B")
    async with http.delete(url) as r:
        assert r.status == 204
    await eventually(lambda: reaped(a, key), what="A's tombstone reaped", timeout=20.0)
    # Reaped on A only after B applied the delete: B holds the tombstone, not the value.
    assert tombstones_everywhere(b, key)
    async with http.get(f"{b.url('n2')}/types/now/buckets/b/keys/k") as r:
        assert r.status == 404
