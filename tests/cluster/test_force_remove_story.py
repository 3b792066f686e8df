"""A machine is gone for good: force-remove it, and r=all reads rebuild its replicas.

The story, step by step:
1. five members serve; 60 keys are written with w=3 and dw=3;
2. n4 is killed with SIGKILL and never comes back;
3. a leave would wait for it to hand off forever: `admin clear`, then `force-remove n4`,
   whose plan warns that its data will not be handed off; `commit`;
4. the ring settles without n4; every key reads back with r=all, and those reads repair
   the new owners until every primary replica is found.
"""

from __future__ import annotations

from tests.support import eventually_sync

from .membership import ring_settled


def test_force_remove_a_dead_node_and_rebuild_its_replicas(cluster):
    """A machine is gone for good: force-remove it; r=all reads rebuild the new owners."""
    dead = "n4"
    stay = ["n1", "n2", "n3", "n5"]
    acked = {}
    for i in range(60):
        key, value = f"f{i}", b"kept-%d" % i
        r = cluster.request("PUT", stay[i % 4], f"/buckets/gone/keys/{key}?w=3&dw=3", value)
        assert r.status == 204, r.body
        acked[key] = value
    cluster.kill9(dead)
    # A leave would wait for the dead node to hand off, forever: clear it, force-remove.
    assert cluster.cli("admin", "leave", dead).returncode == 0
    assert cluster.cli("admin", "clear").returncode == 0
    result = cluster.cli("admin", "force-remove", dead)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = cluster.cli("admin", "plan")
    assert "will not be handed off" in plan.stdout, plan.stdout
    assert cluster.cli("admin", "commit").returncode == 0
    eventually_sync(
        lambda: ring_settled(cluster, stay), what="the ring to settle without n4", timeout=60
    )
    ring = cluster.request("GET", "n1", "/admin/ring").json()
    assert dead not in {m["node"] for m in ring["members"]}
    for key, value in acked.items():
        r = cluster.request("GET", "n2", f"/buckets/gone/keys/{key}?r=all")
        assert (r.status, r.body) == (200, value), key

    def rebuilt() -> bool:
        return all(
            r["status"] == "found" and r["primary"]
            for key in acked
            for r in cluster.replicas("n1", "gone", key)
        )

    eventually_sync(rebuilt, what="read repair to fill the new owners", timeout=30)
