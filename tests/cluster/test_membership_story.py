"""Membership changes under write load, with real processes: join a sixth node, and leave.

Each story keeps a writer going through the whole change and then checks that
every acknowledged write is held by all of its key's primaries in the final ring.
"""

from __future__ import annotations

import threading

from tests.support import eventually_sync

from .conftest import ProcessCluster


class Writer:
    """Writes fresh keys through `via` in a thread; remembers what was acknowledged."""

    def __init__(self, cluster: ProcessCluster, via: list[str], bucket: str) -> None:
        self.cluster = cluster
        self.via = via
        self.bucket = bucket
        self.acked: dict[str, bytes] = {}
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            key, value = f"k{i}", b"value-%d" % i
            node = self.via[i % len(self.via)]
            try:
                r = self.cluster.request("PUT", node, f"/buckets/{self.bucket}/keys/{key}", value)
            except OSError as exc:
                self.failed.append(f"{key} via {node}: {exc}")
            else:
                if r.status == 204:
                    self.acked[key] = value
                else:
                    self.failed.append(f"{key} via {node}: {r.status} {r.body[:200]!r}")
            i += 1

    def wait_for_acks(self, count: int) -> None:
        target = len(self.acked) + count
        eventually_sync(
            lambda: len(self.acked) >= target, what=f"{count} more acknowledged writes", timeout=60
        )


def ring_settled(cluster: ProcessCluster, names: list[str]) -> bool:
    """All `names` agree on the ring, no move is pending and no node holds foreign data."""
    statuses = [cluster.request("GET", n, "/admin/status").json() for n in names]
    ring = cluster.request("GET", names[0], "/admin/ring").json()
    return (
        len({s["ring"]["digest"] for s in statuses}) == 1
        and not ring["pending"]
        and all(m["status"] == "valid" for m in ring["members"])
        and not any(s["handoff"]["pending"] or s["handoff"]["active"] for s in statuses)
    )


def assert_all_primaries_hold(cluster: ProcessCluster, via: str, writer: Writer) -> None:
    members = {m["node"] for m in cluster.request("GET", via, "/admin/ring").json()["members"]}
    for key, value in writer.acked.items():
        replicas = cluster.replicas(via, writer.bucket, key)
        assert [r["primary"] for r in replicas] == [True] * 3, (key, replicas)
        assert {r["node"] for r in replicas} <= members
        assert all(r["status"] == "found" for r in replicas), (key, replicas)
        r = cluster.request("GET", via, f"/buckets/{writer.bucket}/keys/{key}?pr=3")
        assert (r.status, r.body) == (200, value), key


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


def test_staging_refusals_are_clear(cluster_with_spare):
    cluster = cluster_with_spare
    refused = cluster.cli("admin", "join", "n6")  # not started yet
    assert refused.returncode != 0 and "not reachable" in refused.stderr, refused.stderr
    refused = cluster.cli("admin", "join", "n1")
    assert refused.returncode != 0 and "already a member" in refused.stderr
    refused = cluster.cli("admin", "plan")
    assert refused.returncode != 0 and "no changes staged" in refused.stderr
    refused = cluster.cli("admin", "leave", "n9")
    assert refused.returncode != 0 and f"not a node in {cluster.config.path}" in refused.stderr
    assert cluster.request("GET", "n1", "/admin/ring").json()["epoch"] == 0


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
