"""Several real nodes in one event loop: real TCP between them, HTTP in front, memory backends.

These exercise the coordinators and the HTTP API quickly; tests/cluster/ does the
same against separate OS processes over LevelDB.
"""

from __future__ import annotations

import re

import msgpack
import pytest

from spinekv import object as riak_object
from spinekv.node.coordinator import BKey
from tests.inproc import inproc_cluster
from tests.support import PausableTransport, eventually


async def test_write_on_one_node_read_on_every_other(cluster, http):
    async with http.put(
        f"{cluster.url('n1')}/buckets/b/keys/k",
        data=b"hello",
        headers={"Content-Type": "text/plain"},
    ) as r:
        assert r.status == 204
        assert r.headers["X-Riak-Vclock"]
    for name in ("n2", "n3", "n4", "n5"):
        async with http.get(f"{cluster.url(name)}/buckets/b/keys/k") as r:
            assert r.status == 200
            assert await r.read() == b"hello"
            assert r.headers["Content-Type"] == "text/plain"
            assert r.headers["ETag"]


async def test_missing_key_is_404_and_ping_works(cluster, http):
    async with http.get(f"{cluster.url('n1')}/buckets/b/keys/missing") as r:
        assert r.status == 404
    async with http.get(f"{cluster.url('n2')}/ping") as r:
        assert r.status == 200 and (await r.text()) == "OK"


async def test_update_with_context_replaces_and_without_collapses_on_default_type(cluster, http):
    base = f"{cluster.url('n1')}/buckets/b/keys/k"
    async with http.put(base, data=b"one") as r:
        vclock = r.headers["X-Riak-Vclock"]
    async with http.put(base, data=b"two", headers={"X-Riak-Vclock": vclock}) as r:
        assert r.status == 204
    async with http.get(f"{cluster.url('n3')}/buckets/b/keys/k") as r:
        assert await r.read() == b"two"


async def test_concurrent_writes_in_allow_mult_type_become_siblings(cluster, http):
    url = "/types/siblings/buckets/b/keys/k"
    async with http.put(cluster.url("n1") + url, data=b"first") as r:
        vclock = r.headers["X-Riak-Vclock"]
    # Two writers both saw "first" and write concurrently through different nodes.
    for name, value in (("n2", b"left"), ("n4", b"right")):
        async with http.put(
            cluster.url(name) + url, data=value, headers={"X-Riak-Vclock": vclock}
        ) as r:
            assert r.status == 204
    async with http.get(cluster.url("n5") + url + "?r=all") as r:
        assert r.status == 300
        text = await r.text()
        vtags = re.findall(r"^[a-z0-9]+$", text, re.M)
        assert len(vtags) == 2
        vclock = r.headers["X-Riak-Vclock"]
    async with http.get(
        cluster.url("n5") + url + "?r=all", headers={"Accept": "multipart/mixed"}
    ) as r:
        assert r.status == 300
        assert r.headers["Content-Type"].startswith("multipart/mixed")
        body = await r.read()
        assert b"left" in body and b"right" in body
    async with http.get(cluster.url("n1") + url + f"?vtag={vtags[0]}") as r:
        assert r.status == 200
        assert await r.read() in (b"left", b"right")
    # A write carrying the merged context resolves the siblings.
    async with http.put(
        cluster.url("n3") + url, data=b"resolved", headers={"X-Riak-Vclock": vclock}
    ) as r:
        assert r.status == 204
    async with http.get(cluster.url("n2") + url + "?r=all") as r:
        assert r.status == 200 and await r.read() == b"resolved"


async def test_delete_writes_tombstone_and_key_reads_404(cluster, http):
    # Kept, so the check of the replicas below is not a race with the reaper.
    await cluster.set_props(http, "default", "b", {"delete_mode": "keep"})
    url = cluster.url("n1") + "/buckets/b/keys/gone"
    async with http.put(url, data=b"x") as r:
        assert r.status == 204
    async with http.delete(cluster.url("n2") + "/buckets/b/keys/gone") as r:
        assert r.status == 204
    async with http.get(cluster.url("n3") + "/buckets/b/keys/gone") as r:
        assert r.status == 404
    # The tombstone is on the replicas, not a missing record.
    statuses = set()
    for partition, name in cluster.replicas(b"default", b"b", b"gone"):
        obj = cluster.nodes[name].vnodes.get(partition, b"\x00\x07default\x00\x01bgone")
        statuses.add(obj is not None and riak_object.is_tombstone(obj))
    assert statuses == {True}
    async with http.delete(cluster.url("n2") + "/buckets/b/keys/never") as r:
        assert r.status == 404


async def test_post_without_key_creates_one(cluster, http):
    async with http.post(cluster.url("n1") + "/types/siblings/buckets/b/keys", data=b"new") as r:
        assert r.status == 201
        location = r.headers["Location"]
    assert location.startswith("/types/siblings/buckets/b/keys/")
    async with http.get(cluster.url("n2") + location) as r:
        assert await r.read() == b"new"


async def test_returnbody(cluster, http):
    async with http.put(
        cluster.url("n1") + "/buckets/b/keys/rb?returnbody=true",
        data=b"body",
        headers={"Content-Type": "application/json"},
    ) as r:
        assert r.status == 200
        assert await r.read() == b"body"
        assert r.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "reason"),
    [
        ("GET", "/buckets/b/keys/k?r=7", {}, 400, "r=7 is out of range"),
        ("GET", "/buckets/b/keys/k?r=lots", {}, 400, "not a number"),
        ("PUT", "/buckets/b/keys/k?w=0", {}, 400, "w=0 is out of range"),
        ("PUT", "/buckets/b/keys/k?dw=x", {}, 400, "dw="),
        ("PUT", "/buckets/b/keys/k?returnbody=maybe", {}, 400, "returnbody"),
        ("PUT", "/buckets/b/keys/k?timeout=-5", {}, 400, "timeout"),
        ("PUT", "/buckets/b/keys/k", {"X-Riak-Vclock": "!!!"}, 400, "X-Riak-Vclock"),
        ("PUT", "/types/nosuch/buckets/b/keys/k", {}, 404, "Unknown bucket type: nosuch"),
        ("GET", "/types/nosuch/buckets/b/keys/k", {}, 404, "Unknown bucket type: nosuch"),
    ],
)
async def test_bad_input_is_4xx_with_reason_and_changes_nothing(
    cluster, http, method, path, headers, status, reason
):
    async with http.request(method, cluster.url("n1") + path, data=b"bad", headers=headers) as r:
        assert r.status == status
        assert reason in await r.text()
    async with http.get(cluster.url("n2") + "/buckets/b/keys/k") as r:
        assert r.status == 404


async def test_value_over_size_limit_is_refused(cluster, http):
    too_big = b"x" * (cluster.config.max_object_size + 1)
    async with http.put(cluster.url("n1") + "/buckets/b/keys/big", data=too_big) as r:
        assert r.status == 413
        assert "max_object_size" in await r.text()
    async with http.get(cluster.url("n2") + "/buckets/b/keys/big") as r:
        assert r.status == 404


async def wait_until_down(node, names):
    await eventually(
        lambda: not any(node.membership.is_up(n) for n in names),
        what=f"{node.name} to see {sorted(names)} down",
    )


async def test_quorums_with_a_node_down(cluster, http):
    key = b"downkey"
    replicas = cluster.replicas(b"default", b"b", key)
    down = replicas[0][1]
    coordinator = next(n for n in cluster.nodes if n != down)
    url = f"{cluster.url(coordinator)}/buckets/b/keys/{key.decode()}"
    async with http.put(url, data=b"v1") as r:
        assert r.status == 204
    await cluster.stop(down)
    # r=2 / w=2 still succeed with two primaries up.
    async with http.put(url + "?w=2", data=b"v2") as r:
        assert r.status == 204
    async with http.get(url + "?r=2") as r:
        assert r.status == 200 and await r.read() == b"v2"
    # pw=3 cannot be met: the 503 names the quorum.
    async with http.put(url + "?pw=3", data=b"v3") as r:
        assert r.status == 503
        assert "pw=3" in await r.text()
    async with http.get(url + "?pr=3") as r:
        assert r.status == 503
        assert "pr=3" in await r.text()
    # w=3 succeeds through a fallback (sloppy quorum) once the node is seen down.
    await wait_until_down(cluster.nodes[coordinator], {down})
    async with http.put(url + "?w=3", data=b"v4") as r:
        assert r.status == 204
    async with http.get(url + "?r=2") as r:
        assert await r.read() == b"v4"


async def test_unmeetable_quorum_is_503_not_a_hang(cluster, http):
    key = b"lonely"
    replicas = cluster.replicas(b"default", b"b", key)
    survivor = next(n for n in cluster.nodes if n not in {name for _, name in replicas})
    for name in list(cluster.nodes):
        if name != survivor:
            await cluster.stop(name)
    url = f"{cluster.url(survivor)}/buckets/b/keys/{key.decode()}"
    await wait_until_down(
        cluster.nodes[survivor], {n.name for n in cluster.config.nodes} - {survivor}
    )
    # Every primary is down: a quorum of primaries cannot be met, and the answer says so.
    async with http.put(url + "?pw=1&timeout=2000", data=b"v") as r:
        assert r.status == 503
        assert "pw=1 unsatisfied" in await r.text()
    async with http.get(url + "?pr=1&timeout=2000") as r:
        assert r.status == 503
        assert "pr=1 unsatisfied" in await r.text()
    # Sloppy quorum: fallback vnodes on the one live node accept w=3 (Riak does the same);
    # node_confirms, which counts physical nodes, is what refuses this.
    async with http.put(url + "?w=3&node_confirms=2", data=b"v") as r:
        assert r.status == 503
        assert "node_confirms=2 unsatisfied" in await r.text()
    async with http.put(url + "?w=3", data=b"v") as r:
        assert r.status == 204, await r.text()


async def test_read_repair_restores_a_removed_replica(cluster, http):
    key = b"repairme"
    url = f"{cluster.url('n1')}/buckets/b/keys/{key.decode()}"
    async with http.put(url + "?w=3", data=b"v") as r:
        assert r.status == 204
    partition, victim = cluster.replicas(b"default", b"b", key)[1]
    okey = b"\x00\x07default\x00\x01b" + key
    backend = cluster.nodes[victim].backend
    held = riak_object.decode(backend.get(partition, okey))
    assert [c.value for c in riak_object.contents(held)] == [b"v"]
    backend.delete(partition, okey)
    async with http.get(url + "?r=2") as r:
        assert r.status == 200
    repaired = await eventually(
        lambda: backend.get(partition, okey), what=f"read repair to restore {victim}'s replica"
    )
    restored = riak_object.decode(repaired)
    assert [c.value for c in riak_object.contents(restored)] == [b"v"]


async def test_a_silent_node_is_marked_down_then_up_again(tmp_path, http):
    """A node whose connections stay open but never answer (as under SIGSTOP) is suspected."""
    async with inproc_cluster(tmp_path, transport_class=PausableTransport) as cluster:
        victim = cluster.nodes["n3"]
        observer = cluster.nodes["n1"]
        victim.transport.pause()
        await wait_until_down(observer, {"n3"})
        # Keys with n3 as a primary still take w=3 writes, through a fallback.
        key = next(
            k
            for k in (f"k{i}" for i in range(200))
            if "n3" in {n for _, n in cluster.replicas(b"default", b"b", k.encode())}
        )
        async with http.put(f"{cluster.url('n1')}/buckets/b/keys/{key}?w=3", data=b"v") as r:
            assert r.status == 204, await r.text()
        victim.transport.resume()
        await eventually(lambda: observer.membership.is_up("n3"), what="n1 to see n3 up again")


async def test_hinted_handoff_brings_fallback_writes_home(cluster, http):
    """A primary is down while its keys are written at w=3; when it returns, it gets them."""
    keys = [
        k
        for k in (f"h{i}" for i in range(300))
        if "n3" in {n for _, n in cluster.replicas(b"default", b"b", k.encode())}
    ][:20]
    await cluster.stop("n3")
    await wait_until_down(cluster.nodes["n1"], {"n3"})
    for k in keys:
        async with http.put(f"{cluster.url('n1')}/buckets/b/keys/{k}?w=3", data=k.encode()) as r:
            assert r.status == 204, await r.text()
    held = {p for name, n in cluster.nodes.items() for p, _, _ in n.handoff.pending()}
    assert held, "fallbacks should hold n3's partitions while it is down"
    await cluster.restart("n3")
    await eventually(
        lambda: not any(n.handoff.pending() for n in cluster.nodes.values()),
        what="every hinted handoff to finish",
        timeout=15,
    )
    for k in keys:
        async with http.get(f"{cluster.url('n2')}/buckets/b/keys/{k}?pr=3") as r:
            assert (r.status, await r.read()) == (200, k.encode())
    # The data is on n3 itself, in its own partitions.
    n3 = cluster.nodes["n3"]
    for k in keys:
        partition = next(p for p, n in cluster.replicas(b"default", b"b", k.encode()) if n == "n3")
        obj = n3.vnodes.get(partition, BKey(b"default", b"b", k.encode()).okey)
        assert [c.value for c in riak_object.contents(obj)] == [k.encode()]


async def test_admin_staging_rejects_bad_input_and_changes_nothing(cluster, http):
    base = cluster.url("n1")
    bad = [
        ("/admin/stage?action=explode&node=n2", 400, "expected join, leave or remove"),
        ("/admin/stage?action=leave&node=n9", 400, "not a node in cluster.toml"),
        ("/admin/stage?action=join&node=n2", 409, "already a member"),
        ("/admin/commit", 409, "no changes staged"),
    ]
    for path, status, reason in bad:
        async with http.post(base + path) as r:
            assert r.status == status, path
            assert reason in (await r.json())["error"]
    async with http.get(base + "/admin/plan") as r:
        assert r.status == 409
    async with http.get(base + "/admin/ring") as r:
        ring = await r.json()
    assert ring["epoch"] == 0 and ring["staged"] == {} and ring["pending"] == []
    # A garbled ring frame from a peer is refused without touching this node's state.
    for garbage in (b"\x93garbage", msgpack.packb([1, "x", 2]), msgpack.packb([1] * 9)):
        with pytest.raises(ValueError, match="malformed ring state"):
            cluster.nodes["n1"].membership.receive(garbage)
    assert cluster.nodes["n1"].membership.state.epoch == 0
    async with http.get(base + "/ping") as r:
        assert r.status == 200
