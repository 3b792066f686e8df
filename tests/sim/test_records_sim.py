"""Concurrent patient updates under a partition, run through the simulation on the real nodes:
both acknowledged updates survive the merge, and a collision keeps its loser in the history."""

from __future__ import annotations

from typing import Any

import pytest

from spinekv.records import patient as rules
from tests.records_support import patient

from .cluster import SimCluster


def _call(sim: SimCluster, node: str, fn: Any) -> Any:
    """Run `fn(demographics)` on `node` as its request handler would; raise on failure."""
    demographics = sim.nodes[node].records.demographics
    status, result = sim.run_until(sim._on(node, lambda _coordinator: fn(demographics)))
    assert status == "ok", f"{node}: {status} {result}"
    return result


def _patch(sim: SimCluster, node: str, number: str, version: int, ops: list, rid: str) -> dict:
    return _call(
        sim,
        node,
        lambda d: d.patch(number, version, ops, request_id=rid, by=f"user-on-{node}"),
    )


def _partitioned_updates(seed: int, left_ops: list, right_ops: list) -> tuple[SimCluster, str]:
    sim = SimCluster(seed)
    sim.settle()
    created = _call(
        sim,
        "n1",
        lambda d: d.create(patient(), request_id="00000000-0000-4000-8000-000000000001", by="x"),
    )
    number = created["id"]
    sim.partition(["n1", "n2"], ["n3", "n4", "n5"])
    sim.run(10.0)  # both sides notice the other is gone, so each can reach w with fallbacks
    left = _patch(sim, "n1", number, 1, left_ops, "00000000-0000-4000-8000-00000000000a")
    right = _patch(sim, "n4", number, 1, right_ops, "00000000-0000-4000-8000-00000000000b")
    # Both sides acknowledged version 2 of their own update.
    assert left["meta"]["versionId"] == right["meta"]["versionId"] == "2"
    sim.heal()
    sim.settle()
    return sim, number


@pytest.mark.parametrize("seed", range(5))
def test_updates_of_different_fields_on_both_sides_of_a_partition_are_both_kept(seed):
    phone = {"op": "replace", "path": "/telecom/0/value", "value": "0113 000 1111"}
    move = {"op": "replace", "path": "/address/0/postalCode", "value": "M14 5RB"}
    sim, number = _partitioned_updates(seed, [phone], [move])
    try:
        seen = [_call(sim, node, lambda d: d.read(number)) for node in sim.names]
        assert all(s == seen[0] for s in seen), "nodes disagree on the merged patient"
        merged = seen[0]
        assert merged["telecom"][0]["value"] == "0113 000 1111"
        assert merged["address"][0]["postalCode"] == "M14 5RB"
        assert merged["meta"]["versionId"] == "3"  # create + two updates
        history = _call(sim, "n2", lambda d: d.history(number))
        assert [e["kind"] for e in history].count("conflict") == 0
        # The merged record is the base of the next update: If-Match 3 succeeds everywhere.
        after = _patch(
            sim, "n5", number, 3, [{"op": "replace", "path": "/gender", "value": "other"}], "c"
        )
        assert after["meta"]["versionId"] == "4"
        assert after["address"][0]["postalCode"] == "M14 5RB"
        # And the 2i entries follow the merged value: the new postcode, not the old.
        found = _call(sim, "n3", lambda d: d.store.query("patients", "postcode_bin", "M145RB"))
        assert [k for _, k in found] == [number]
        stale = _call(sim, "n3", lambda d: d.store.query("patients", "postcode_bin", "LS14HR"))
        assert stale == []
    finally:
        sim.close()


@pytest.mark.parametrize("seed", range(5))
def test_a_collision_keeps_the_newer_update_and_records_the_other(seed):
    left = [{"op": "replace", "path": "/name/0/family", "value": "Left"}]
    right = [{"op": "replace", "path": "/name/0/family", "value": "Right"}]
    sim, number = _partitioned_updates(seed, left, right)
    try:
        seen = [_call(sim, node, lambda d: d.read(number)) for node in sim.names]
        assert all(s == seen[0] for s in seen)
        merged = seen[0]
        # n4's update was made later in virtual time, so its stamp is newer: it wins.
        assert merged["name"][0]["family"] == "Right"
        assert merged["meta"]["versionId"] == "3"
        history = _call(sim, "n1", lambda d: d.history(number))
        conflicts = [e for e in history if e["kind"] == "conflict"]
        assert len(conflicts) == 1
        lost = conflicts[0]
        assert lost["field"] == "name"
        assert lost["lost"] == "00000000-0000-4000-8000-00000000000a"
        assert lost["kept"] == "00000000-0000-4000-8000-00000000000b"
        assert lost["value"][0]["family"] == "Left"
        # Search by either name: the index holds the winner only.
        hits = _call(sim, "n2", lambda d: d.candidates("Right", "1980-02-29"))
        assert [p["id"] for p in hits] == [number]
        assert _call(sim, "n2", lambda d: d.candidates("Left", "1980-02-29")) == []
    finally:
        sim.close()


def test_the_merge_rule_is_what_the_nodes_apply():
    """The siblings really reach the record layer: without the merge, a read sees one side."""
    left = [{"op": "replace", "path": "/gender", "value": "male"}]
    right = [{"op": "replace", "path": "/birthDate", "value": "1981-03-01"}]
    sim, number = _partitioned_updates(11, left, right)
    try:
        fetched = _call(sim, "n1", lambda d: d.store.get("patients", number))
        assert len(fetched.values) == 2, "the partition should have left two siblings"
        merged = rules.merge([rules.decode(v) for v in fetched.values])
        assert merged["resource"]["gender"] == "male"
        assert merged["resource"]["birthDate"] == "1981-03-01"
    finally:
        sim.close()
