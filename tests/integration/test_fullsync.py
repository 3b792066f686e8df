"""Full-sync's comparison between two in-process clusters of different ring sizes and sizes:
the same objects (copied with their clocks) give the same tree for a bucket, and the core,
fed over /admin/fullsync, finds exactly the keys changed on one side."""

from __future__ import annotations

import base64

from spinekv.fullsync import BRANCHES, KEYS, ROOT, Ask, FullSyncCore, KeyList
from spinekv.node.coordinator import BKey
from spinekv.node.folds import FULLSYNC_SHAPE
from spinekv.object import Content, merge_all
from spinekv.quorum import PutOptions
from spinekv.storage.keys import object_key
from spinekv.tictac import Tree
from tests.inproc import inproc_cluster

SCOPE = "type=default&bucket=people"


async def put(c, node, key, value):
    props = c.config.bucket_type("default")
    bkey = BKey(b"default", b"people", key)
    await c.nodes[node].coordinator.put(bkey, props, {}, Content(value), PutOptions(w=3))


def copy(source, sink, key):
    """Merge the object every primary of `source` holds into each primary of `sink`, clock
    and all, as replication applies it (never as a new write)."""
    okey = object_key(b"default", b"people", key)
    held = [
        source.nodes[node].vnodes.get(p, okey)
        for p, node in source.replicas(b"default", b"people", key)
    ]
    obj = merge_all([o for o in held if o is not None])
    for p, node in sink.replicas(b"default", b"people", key):
        sink.nodes[node].vnodes.merge(p, okey, obj, allow_mult=True)


async def get(http, url):
    async with http.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def tree(http, base, extra=""):
    return await get(http, f"{base}/admin/fullsync/tree?{SCOPE}{extra}")


async def key_list(http, base, positions):
    segments = ",".join(map(str, positions))
    answer = await get(http, f"{base}/admin/fullsync/keys?{SCOPE}&segments={segments}")
    versions = {
        (k["type"].encode(), k["bucket"].encode(), k["key"].encode()): bytes.fromhex(k["version"])
        for k in answer["keys"]
    }
    return KeyList(versions, answer["complete"])


async def full_sync(http, ours, theirs):
    """Run the core with our cluster's whole tree against the other's answers over HTTP."""
    raw = base64.b64decode((await tree(http, ours, "&tree=true"))["tree"])
    core = FullSyncCore(Tree.from_bytes(raw, FULLSYNC_SHAPE))
    step = core.start()
    while isinstance(step, Ask):
        if step.what == ROOT:
            step = core.feed((await tree(http, theirs))["root"])
        elif step.what == BRANCHES:
            step = core.feed((await tree(http, theirs))["branches"])
        elif step.what == KEYS:
            positions = step.positions or ()
            step = core.feed(
                await key_list(http, theirs, positions), await key_list(http, ours, positions)
            )
        else:  # the segments of the differing branches, asked for by branch
            shape = FULLSYNC_SHAPE
            branches = sorted({shape.branch_of(s) for s in step.positions or ()})
            listed = ",".join(map(str, branches))
            step = core.feed((await tree(http, theirs, f"&branches={listed}"))["segments"])
    return step


async def test_clusters_of_different_rings_compare_by_key_hash_and_find_the_changed_keys(
    tmp_path, http
):
    keys = [f"p{i:03d}".encode() for i in range(200)]
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    async with (
        inproc_cluster(tmp_path / "a", 3, ring_size=32) as a,
        inproc_cluster(tmp_path / "b", 5, ring_size=64) as b,
    ):
        for i, key in enumerate(keys):
            await put(a, f"n{i % 3 + 1}", key, b"v" + key)
            copy(a, b, key)
        url_a, url_b = a.url("n1"), b.url("n2")
        tree_a, tree_b = await tree(http, url_a), await tree(http, url_b)
        assert tree_a["root"] == tree_b["root"] != 0
        assert tree_a["branches"] == tree_b["branches"]
        assert (await full_sync(http, url_a, url_b)).complete

        changed = keys[7:200:40]
        for key in changed:
            await put(a, "n2", key, b"changed")  # a blind write: a sibling, a new clock
        assert (await tree(http, url_a))["root"] != tree_b["root"]
        found = await full_sync(http, url_b, url_a)
        assert found.complete
        assert found.differ == tuple((b"default", b"people", k) for k in changed)
        assert found.only_ours == found.only_theirs == ()

        only_on_a = (b"default", b"people", b"only-on-a")
        await put(a, "n3", only_on_a[2], b"x")
        found = await full_sync(http, url_a, url_b)
        assert found.only_ours == (only_on_a,) and len(found.differ) == 5


async def test_fullsync_routes_refuse_bad_input_with_the_reason(cluster, http):
    base = cluster.url("n1") + "/admin/fullsync"
    cases = [
        ("/tree", 400, "bucket type or a bucket"),
        ("/tree?type=default&branches=256", 400, "0 to 255"),
        ("/tree?type=default&branches=1,x", 400, "expected integers"),
        ("/tree?type=nosuch", 400, "no such bucket type"),
        ("/tree?type=records", 403, "record API"),
        ("/keys?type=default", 400, "segments is required"),
        ("/keys?type=default&segments=65536", 400, "0 to 65535"),
        ("/keys?type=default&segments=1&limit=0", 400, "limit"),
    ]
    for path, status, reason in cases:
        async with http.get(base + path) as r:
            assert (r.status, reason in await r.text()) == (status, True), path
    empty = await get(http, base + "/keys?type=default&segments=1,2,3")
    assert empty == {"complete": True, "keys": []}
    assert (await get(http, base + "/tree?type=default"))["root"] == 0
