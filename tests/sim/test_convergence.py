"""The replica-convergence checker: its verdict on hand-made replicas, and that a run fails it."""

from __future__ import annotations

from spinekv.ring import primaries
from spinekv.storage.keys import object_key

from .cluster import SimCluster
from .convergence import Key, KeyReplicas, diverged
from .workload import run_seed

KEY = ("sets", "b", "k")


def test_identical_replicas_have_converged():
    same = {"n1": b"v2", "n2": b"v2", "n3": b"v2"}
    assert diverged([KeyReplicas(KEY, same, acknowledged=True)]) == []


def test_a_primary_without_a_copy_is_reported():
    copies = {"n1": b"v2", "n2": None, "n3": b"v2"}
    assert diverged([KeyReplicas(KEY, copies, acknowledged=True)]) == [
        "sets/b/k: missing on n2 (held by ['n1', 'n3'])"
    ]


def test_a_primary_with_an_older_copy_is_reported():
    copies = {"n1": b"\x01old", "n2": b"\x02new", "n3": b"\x02new"}
    [problem] = diverged([KeyReplicas(KEY, copies)])
    assert problem == "sets/b/k: replicas differ: n1 at 016f6c64; n2,n3 at 026e6577"


def test_no_copy_anywhere_is_a_loss_only_if_acknowledged_and_not_maybe_deleted():
    gone = {"n1": None, "n2": None, "n3": None}
    assert diverged([KeyReplicas(KEY, gone)]) == []  # never acknowledged: it may never have landed
    assert diverged([KeyReplicas(KEY, gone, acknowledged=True, maybe_deleted=True)]) == []
    assert diverged([KeyReplicas(KEY, gone, acknowledged=True)]) == [
        "sets/b/k: acknowledged but on no primary"
    ]


def test_every_key_is_judged_on_its_own():
    good = KeyReplicas(("sets", "b", "good"), {"n1": b"v", "n2": b"v"}, acknowledged=True)
    bad = KeyReplicas(("sets", "b", "bad"), {"n1": b"v", "n2": None}, acknowledged=True)
    assert [p.split(":")[0] for p in diverged([good, bad, good])] == ["sets/b/bad"]


def test_the_check_reports_copies_deleted_from_a_primary_behind_the_cluster_s_back():
    """Exchanges off, one node's primary copies of the acknowledged keys are deleted from its
    backend before the check: the check names exactly those keys, missing on that node."""
    deleted: dict[Key, str] = {}

    def delete_copies(cluster: SimCluster, acknowledged: set[Key]) -> None:
        ring, n_val = cluster.nodes["n1"].membership.ring, cluster.config.n_val
        placed = {}
        for key in sorted(acknowledged):
            btype, bucket, name = (part.encode() for part in key)
            partition = ring.partition_of(btype, bucket, name)
            placed[key] = (object_key(btype, bucket, name), primaries(ring, partition, n_val))
        victim = max(
            cluster.names,
            key=lambda n: sum(n in {e.node for e in entries} for _, entries in placed.values()),
        )
        for key, (okey, entries) in placed.items():
            for entry in entries:
                if entry.node == victim:
                    cluster.nodes[victim].backend.delete(entry.partition, okey)
                    deleted[key] = victim

    result = run_seed(0, workload="set", exchanges=False, before_check=delete_copies)
    assert deleted, "the run acknowledged nothing on any node, so it proves nothing"
    reported = {tuple(p.split(":")[0].split("/")): p for p in result.unconverged}
    assert set(reported) == set(deleted), result.unconverged
    for key, victim in deleted.items():
        assert f"missing on {victim} " in reported[key]
