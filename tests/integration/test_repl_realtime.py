"""Real-time replication between two in-process clusters: sink B pulls source A's queue.

A keeps the queue "dr" (filter any) and has a user `sink` holding `repl`; B lists A's
nodes as the peers of its [[replication.sink]] table, with that user's token in a file.
B keeps a queue of its own too, which must stay empty: what B applies is never queued
again (no echo).
"""

from __future__ import annotations

import aiohttp
import pytest

from spinekv import object as riak_object
from spinekv import tictac
from spinekv.config import ConfigError, load_config
from spinekv.node import replsink
from spinekv.security.secrets import hash_secret
from spinekv.storage.keys import object_key
from spinekv.storage.memory import MemoryBackend
from tests.inproc import inproc_cluster, make_node
from tests.support import eventually, write_cluster_toml

SINK_TOKEN = "t-sink"
READER_TOKEN = "t-reader"
SOURCE = f"""
[bucket_types.aonly]

[[replication.source]]
name = "dr"
filter = "any"

[[source]]
cidr = "0.0.0.0/0"
method = "token"

[[user]]
name = "sink"
token_hash = "{hash_secret(SINK_TOKEN)}"
grants = [{{ on = "any", permissions = ["repl"] }}]

[[user]]
name = "reader"
token_hash = "{hash_secret(READER_TOKEN)}"
grants = [{{ on = "any", permissions = ["get", "put", "delete", "list", "admin"] }}]
"""


def sink_toml(source) -> str:
    peers = ", ".join(f'"{spec.host}:{spec.http_port}"' for spec in source.config.nodes)
    return f"""
[[replication.source]]
name = "dr"
filter = "any"

[[replication.sink]]
name = "froma"
peers = [{peers}]
queue = "dr"
workers = 4
token_file = "a.token"
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def stranger():
    """A client on 127.0.0.2, which no source trusts: it must send credentials."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=20)
    ) as session:
        yield session


@pytest.fixture
async def clusters(tmp_path, monkeypatch):
    monkeypatch.setattr(replsink, "BACKOFF_MOST_S", 0.4)
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    (tmp_path / "b" / "a.token").write_text(SINK_TOKEN + "\n")
    async with (
        inproc_cluster(tmp_path / "a", 3, extra=SOURCE) as a,
        inproc_cluster(tmp_path / "b", 3, extra=sink_toml(a)) as b,
    ):
        yield a, b


def versions(cluster, bucket_type: bytes, bucket: bytes, key: bytes) -> list[bytes | None]:
    """tictac.version of the object each primary replica of the key holds (None: nothing)."""
    okey = object_key(bucket_type, bucket, key)
    held = [
        cluster.nodes[node].vnodes.get(p, okey)
        for p, node in cluster.replicas(bucket_type, bucket, key)
    ]
    return [None if obj is None else tictac.version(obj) for obj in held]


def depth(cluster) -> int:
    return sum(node.repl_queues.queues["dr"].depth for node in cluster.nodes.values())


def sink_total(cluster, counter: str) -> int:
    return sum(node.counters()[f"repl_sink_froma_{counter}"] for node in cluster.nodes.values())


async def test_writes_and_deletes_on_a_reach_b_as_they_are_and_nothing_echoes(clusters, http):
    a, b = clusters
    for c in (a, b):  # tombstones stay, so the test sees the delete arrive
        await c.set_props(http, "default", "people", {"delete_mode": "keep"})
    names = sorted(a.nodes)
    keys = [b"p%02d" % i for i in range(50)]
    for i, key in enumerate(keys):
        url = f"{a.url(names[i % 3])}/buckets/people/keys/{key.decode()}"
        async with http.put(url, data=b"v" + key, headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 204, await r.text()

    def same_everywhere(key: bytes) -> bool:
        ours = versions(a, b"default", b"people", key)
        return None not in ours and set(versions(b, b"default", b"people", key)) == {ours[0]}

    await eventually(lambda: all(map(same_everywhere, keys)), what="A's 50 writes on B")
    await eventually(lambda: depth(a) == 0, what="A's queues to drain")

    async with http.delete(f"{a.url('n2')}/buckets/people/keys/p07") as r:
        assert r.status == 204

    def tombstone_on_b() -> bool:
        okey = object_key(b"default", b"people", b"p07")
        held = [
            b.nodes[n].vnodes.get(p, okey) for p, n in b.replicas(b"default", b"people", b"p07")
        ]
        return all(o is not None and riak_object.is_tombstone(o) for o in held)

    await eventually(tombstone_on_b, what="the delete on B as a tombstone")
    await eventually(lambda: same_everywhere(b"p07"), what="B's tombstone to be A's")
    async with http.get(f"{b.url('n3')}/buckets/people/keys/p07") as r:
        assert r.status == 404

    # A key of a type B lacks is skipped, and acknowledged all the same.
    async with http.put(f"{a.url('n1')}/types/aonly/buckets/x/keys/k", data=b"v") as r:
        assert r.status == 204
    await eventually(lambda: sink_total(b, "skipped") == 1, what="the unknown type skipped")
    await eventually(lambda: depth(a) == 0, what="A's queues to drain past the skipped key")

    assert sink_total(b, "applied") == 51 and sink_total(b, "fetched") >= 52
    assert sum(n.repl_queues.queues["dr"].enqueued for n in b.nodes.values()) == 0  # no echo
    assert depth(b) == 0
    async with http.get(f"{b.url('n1')}/stats") as r:
        stats = await r.json()
    assert "repl_sink_froma_lag_ms" in stats and "repl_sink_froma_errors" in stats


async def test_one_consumer_at_a_time_and_only_with_the_repl_permission(clusters, http, stranger):
    a, _ = clusters
    fetch = f"{a.url('n1')}/repl/queues/dr/fetch"
    # Once n1's queue has drained, one of B's pullers holds its lease, renewed by each fetch.
    async with http.put(f"{a.url('n1')}/buckets/people/keys/k", data=b"v") as r:
        assert r.status == 204
    await eventually(lambda: depth(a) == 0, what="n1's queue to drain")
    params = {"consumer": "probe/x"}
    async with http.post(fetch, params=params, headers=bearer(SINK_TOKEN)) as r:
        assert r.status == 409
        assert "is leased to 'test/n" in (await r.json())["error"]
    ack = f"{a.url('n1')}/repl/queues/dr/ack"
    async with http.post(
        ack, params={"upto": "5", "consumer": "probe/x"}, headers=bearer(SINK_TOKEN)
    ) as r:
        assert r.status == 409  # not the holder: it may not drop the holder's entries

    async with stranger.post(fetch, params=params, headers=bearer(READER_TOKEN)) as r:
        assert r.status == 403 and "no repl permission" in await r.text()
    async with stranger.post(fetch, params=params) as r:
        assert r.status == 401
    async with http.post(fetch, params=params) as r:  # loopback's `local` holds no repl
        assert r.status == 403
    async with stranger.post(
        f"{a.url('n1')}/repl/queues/nosuch/fetch", params=params, headers=bearer(SINK_TOKEN)
    ) as r:
        assert r.status == 404
    for bad in (
        {"consumer": ""},
        {"consumer": "x y"},
        {"consumer": "c", "max": "0"},
        {"consumer": "c", "max": "1001"},
        {"consumer": "c", "max": "x"},
    ):
        async with stranger.post(fetch, params=bad, headers=bearer(SINK_TOKEN)) as r:
            assert r.status == 400, bad


async def test_a_sink_without_its_token_file_refuses_to_start(tmp_path):
    sink = '[[replication.sink]]\nname = "s"\npeers = ["127.0.0.1:1"]\nqueue = "dr"\n'
    for table, reason in [(sink, "token_file is required"), (sink + 'token_file = "gone"', "gone")]:
        config = load_config(write_cluster_toml(tmp_path, 1, extra=table))
        node = make_node(config, config.nodes[0], MemoryBackend())
        with pytest.raises(ConfigError, match=reason):
            await node.start()
