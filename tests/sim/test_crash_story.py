"""A crash loses exactly the writes that were not yet on disk.

The story, step by step:
1. one key is written at w=3 with dw=0: all three replicas hold it, none has synced;
2. the three replicas crash at once: the write is gone from every one;
3. healed, the key is written again at w=3 with dw=3;
4. the three replicas crash at once again: this time every replica still holds it.
"""

from __future__ import annotations

from spinekv.storage.keys import object_key

from .cluster import SimCluster


def test_a_crash_loses_exactly_the_writes_not_yet_on_disk():
    cluster = SimCluster(1)
    try:
        bkey = ("sets", "b", "k")
        okey = object_key(b"sets", b"b", b"k")
        membership = cluster.nodes["n1"].membership
        partition = membership.ring.partition_of(b"sets", b"b", b"k")
        prefs = membership.preflist(partition, 3)
        holders = [e.node for e in prefs]

        def held() -> list[str]:
            mem = {e.node: cluster.stores[e.node].mem for e in prefs}
            return [e.node for e in prefs if mem[e.node].get(e.partition, okey) is not None]

        ok = cluster.run_until(cluster.put(holders[0], *bkey, b"v", {}, w=3, dw=0))
        assert ok.type == "ok" and held() == holders
        for name in holders:  # at once: no fsync has run since the write
            cluster.crash(name)
        assert held() == [], "an unsynced write survived a crash"
        cluster.heal_all()
        ok = cluster.run_until(cluster.put(holders[0], *bkey, b"v2", {}, w=3, dw=3))
        assert ok.type == "ok"
        for name in holders:
            cluster.crash(name)
        assert held() == holders, "a write acknowledged as durable did not survive a crash"
    finally:
        cluster.close()
