"""A node added to cluster.toml while the cluster runs joins without restarting the others.

The story, as an operator lives it:
1. three nodes serve, with data written at w=all;
2. the operator appends an n4 table to cluster.toml and runs `spinekv up n4`; the
   running nodes were started from the old file and have never heard of n4;
3. n4 dials them, and its hello (protocol version, cluster name, peer address)
   teaches them where it listens; they probe it from then on;
4. `admin join n4`, `plan`, `commit`: partitions move to n4 and the ring settles;
5. every acknowledged write is held by all its primaries in the new ring, n4
   among them, and nobody shows n4 as unreachable.
"""

from __future__ import annotations

from tests.support import eventually_sync, free_ports, write_cluster_toml

from .conftest import ProcessCluster, running_cluster
from .membership import ring_settled


def test_a_node_added_to_the_file_while_running_is_joined_without_restarts(tmp_path, request):
    path = write_cluster_toml(tmp_path, 3)
    with running_cluster(path, request) as cluster:
        acked = {}
        for i in range(40):
            r = cluster.request("PUT", f"n{i % 3 + 1}", f"/buckets/b/keys/k{i}?w=all", b"v%d" % i)
            assert r.status == 204, r.body
            acked[f"k{i}"] = b"v%d" % i
        started = {n: cluster.pid(n) for n in ("n1", "n2", "n3")}

        http_port, peer_port = free_ports(2)
        with path.open("a") as fh:
            fh.write(
                f'\n[[node]]\nname = "n4"\nhost = "127.0.0.1"\nhttp_port = {http_port}\n'
                f"peer_port = {peer_port}\nmember = false\n"
            )
        grown = ProcessCluster(path)  # the operator's view of the edited file
        try:
            grown.up("n4")
            # n4's probes reach the others; they learn it from its hello.
            eventually_sync(
                lambda: grown.request("GET", "n1", "/admin/ring").json()["unreachable"] == [],
                what="n1 to learn of n4 and find it up",
                timeout=30,
            )
            result = grown.cli("admin", "join", "n4")
            assert result.returncode == 0, result.stdout + result.stderr
            plan = grown.cli("admin", "plan")
            assert plan.returncode == 0 and "to n4" in plan.stdout, plan.stdout + plan.stderr
            commit = grown.cli("admin", "commit")
            assert commit.returncode == 0, commit.stdout + commit.stderr
            names = ["n1", "n2", "n3", "n4"]
            eventually_sync(
                lambda: ring_settled(grown, names), what="the join of n4 to finish", timeout=90
            )

            # Nobody was restarted to learn of n4.
            assert {n: grown.pid(n) for n in ("n1", "n2", "n3")} == started
            ring = grown.request("GET", "n1", "/admin/ring").json()
            assert {m["node"]: m["status"] for m in ring["members"]}["n4"] == "valid"
            assert ring["unreachable"] == []
            owned = grown.request("GET", "n2", "/admin/status").json()["members"]["n4"]
            assert owned["partitions"] >= 15
            for key, value in acked.items():
                replicas = grown.replicas("n3", "b", key)
                assert [r["primary"] for r in replicas] == [True] * 3, (key, replicas)
                assert all(r["status"] == "found" for r in replicas), (key, replicas)
                r = grown.request("GET", "n4", f"/buckets/b/keys/{key}?pr=3")
                assert (r.status, r.body) == (200, value), key
        finally:
            grown.cli("down", "n4", timeout=60)
            grown.kill_all()
