"""A member leaves under write load: it hands everything off, stops itself, loses nothing.

The story, step by step:
1. five members serve and a writer keeps writing fresh keys through the four that stay;
2. `admin leave n2`, `plan`, `commit`;
3. n2 hands off every partition while the writes go on, then stops its own process;
4. the ring settles without n2, and every acknowledged write is held by all of its
   key's primaries in the final ring.
"""

from __future__ import annotations

from tests.support import eventually_sync

from .membership import Writer, assert_all_primaries_hold, ring_settled


def test_a_node_leaves_under_write_load(cluster):
    leaver = "n2"
    stay = ["n1", "n3", "n4", "n5"]
    with Writer(cluster, stay, "leave") as writer:
        writer.wait_for_acks(100)
        result = cluster.cli("admin", "leave", leaver)
        assert result.returncode == 0, result.stdout + result.stderr
        plan = cluster.cli("admin", "plan")
        assert f"from {leaver}" in plan.stdout and f"to {leaver}" not in plan.stdout, plan.stdout
        assert cluster.cli("admin", "commit").returncode == 0
        writer.wait_for_acks(100)
        # It hands off everything, then stops its own process.
        eventually_sync(
            lambda: cluster.pid(leaver) is None, what=f"{leaver} to stop itself", timeout=90
        )
        eventually_sync(lambda: ring_settled(cluster, stay), what="the ring to settle", timeout=60)
        writer.wait_for_acks(50)
    assert writer.failed == [], writer.failed[:5]
    log = (cluster.config.node_dir(leaver) / "log").read_text()
    assert "left the cluster" in log
    ring = cluster.request("GET", "n1", "/admin/ring").json()
    assert leaver not in {m["node"] for m in ring["members"]}
    assert_all_primaries_hold(cluster, "n1", writer)
    assert "Unreachable nodes: none" in cluster.cli("admin", "ring-status").stdout
