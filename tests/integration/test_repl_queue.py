"""Replication queues on a source cluster: every acknowledged write is queued once, cluster-wide.

Five in-process nodes with two queues: "all" (filter any) and "narrow" (bucket default/b).
"""

from __future__ import annotations

from collections import Counter

import pytest

from spinekv import object as riak_object
from spinekv.node.coordinator import BKey, PutOk
from spinekv.object import Content
from spinekv.quorum import PutOptions
from tests.inproc import inproc_cluster
from tests.integration.test_records_common import create
from tests.records_support import USERS_TOML, RecordClient

QUEUES = """
[[replication.source]]
name = "all"
filter = "any"

[[replication.source]]
name = "narrow"
filter = "bucket:default/b"
"""


@pytest.fixture
async def cluster(tmp_path):
    async with inproc_cluster(tmp_path, extra=QUEUES + USERS_TOML) as c:
        yield c


def queued(cluster, queue: str) -> Counter:
    """How many times each (type, bucket, key) is queued on `queue`, over every node."""
    seen: Counter = Counter()
    for node in cluster.nodes.values():
        for _, entry in node.repl_queues.queues[queue].read(100_000):
            seen[entry.bucket_type, entry.bucket, entry.key] += 1
    return seen


async def test_each_acknowledged_write_is_queued_once_forwarded_or_not(cluster, http):
    names = sorted(cluster.nodes)
    forwarded = 0
    for i in range(20):
        node = names[i % len(names)]
        key = b"k%d" % i
        if node not in {n for _, n in cluster.replicas(b"default", b"b", key)}:
            forwarded += 1  # n is not a replica: it forwards the write to one that is
        async with http.put(f"{cluster.url(node)}/buckets/b/keys/k{i}", data=b"v") as r:
            assert r.status == 204
    assert forwarded > 0
    wanted = Counter({(b"default", b"b", b"k%d" % i): 1 for i in range(20)})
    assert queued(cluster, "all") == wanted
    assert queued(cluster, "narrow") == wanted
    assert sum(n.repl_queues.queues["all"].enqueued for n in cluster.nodes.values()) == 20


async def test_deletes_are_queued_and_filters_keep_other_buckets_out(cluster, http):
    url = f"{cluster.url('n2')}/buckets/other/keys/k"
    async with http.put(url, data=b"v") as r:
        assert r.status == 204
    async with http.delete(url) as r:
        assert r.status == 204
    assert queued(cluster, "all") == Counter({(b"default", b"other", b"k"): 2})
    assert queued(cluster, "narrow") == Counter()


async def test_record_api_writes_are_queued(cluster, http):
    answer = await create(RecordClient(http, cluster.url("n3")))
    number = answer.headers["Location"].rsplit("/", 1)[-1].encode()
    seen = queued(cluster, "all")
    assert seen[b"records", b"patients", number] >= 1
    assert queued(cluster, "narrow") == Counter()


async def test_writes_from_another_cluster_are_not_queued(cluster):
    node = cluster.nodes["n1"]
    props = node.props_of("default", "b")
    opts = PutOptions(w=2, dw=0, pw=0, node_confirms=0, timeout=5.0)
    bkey = BKey(b"default", b"b", b"from-elsewhere")
    foreign = riak_object.write(None, {}, Content(b"w"), "other-site", allow_mult=False)
    result = await node.coordinator.apply_replicated(bkey, props, foreign, opts)
    assert isinstance(result, PutOk)
    assert queued(cluster, "all") == Counter()


async def test_stats_report_each_queue_and_a_restart_keeps_it(cluster, http):
    for i in range(3):
        async with http.put(f"{cluster.url('n4')}/buckets/b/keys/s{i}", data=b"v") as r:
            assert r.status == 204
    node = cluster.nodes["n4"]
    held = node.repl_queues.queues["all"].read(100)
    assert len(held) == 3
    async with http.get(f"{cluster.url('n4')}/stats") as r:
        stats = await r.json()
    assert stats["repl_queue_all_depth"] == 3 and stats["repl_queue_all_enqueued"] == 3
    assert stats["repl_queue_narrow_depth"] == 3 and stats["repl_queue_all_dropped"] == 0

    await cluster.stop("n4")
    await cluster.restart("n4")
    queue = cluster.nodes["n4"].repl_queues.queues["all"]
    assert queue.read(100) == held
    async with http.put(f"{cluster.url('n4')}/buckets/b/keys/s3", data=b"v") as r:
        assert r.status == 204
    assert queue.read(100)[-1][0] == held[-1][0] + 1  # numbering goes on after the restart
