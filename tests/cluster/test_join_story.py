"""Join a sixth node under write load: it takes its share and no acknowledged write is lost.

The story, step by step:
1. five members serve and a writer keeps writing fresh keys through them;
2. n6 (member = false) starts, owning nothing; `admin join n6`, `plan`, `commit`;
3. partitions move to n6 while the writes go on, until the ring settles;
4. n6 is valid with its share, and every acknowledged write is held by all of its
   key's primaries in the final ring;
5. the whole cluster stops; n6 alone restarts and still knows the ring and its place.
"""

from __future__ import annotations

from tests.support import eventually_sync

from .membership import Writer, assert_all_primaries_hold, ring_settled


def test_add_a_sixth_node_under_write_load(cluster_with_spare):
    cluster = cluster_with_spare
    members = ["n1", "n2", "n3", "n4", "n5"]
    with Writer(cluster, members, "join") as writer:
        writer.wait_for_acks(100)
        cluster.up("n6")  # member = false: serves, owns nothing
        assert cluster.request("GET", "n6", "/admin/ring").json()["epoch"] == 0
        result = cluster.cli("admin", "join", "n6")
        assert result.returncode == 0, result.stdout + result.stderr
        plan = cluster.cli("admin", "plan")
        assert plan.returncode == 0, plan.stderr
        assert "to n6" in plan.stdout and "from n6" not in plan.stdout
        commit = cluster.cli("admin", "commit")
        assert commit.returncode == 0, commit.stdout + commit.stderr
        writer.wait_for_acks(100)  # writes go on while partitions move
        eventually_sync(
            lambda: ring_settled(cluster, [*members, "n6"]), what="the join to finish", timeout=90
        )
        writer.wait_for_acks(50)
    assert writer.failed == [], writer.failed[:5]
    shares = cluster.request("GET", "n1", "/admin/status").json()["members"]
    assert shares["n6"]["status"] == "valid"
    assert 10 <= shares["n6"]["partitions"] <= 11
    assert_all_primaries_hold(cluster, "n6", writer)
    status = cluster.cli("admin", "member-status")
    assert "n6" in status.stdout and "valid: 6" in status.stdout, status.stdout
    table = cluster.cli("status").stdout
    assert "valid" in next(line for line in table.splitlines() if " n6 " in line), table

    # The ring survives a restart: n6 alone comes back knowing it is a member.
    epoch = cluster.request("GET", "n1", "/admin/ring").json()["epoch"]
    assert cluster.cli("down").returncode == 0
    cluster.up("n6")
    ring = cluster.request("GET", "n6", "/admin/ring").json()
    assert ring["epoch"] == epoch
    assert {m["node"]: m["status"] for m in ring["members"]}["n6"] == "valid"
    cluster.up()  # without names: the members and n6, which has run here before
    assert all(cluster.pid(n) for n in [*members, "n6"])
