"""The deterministic simulation: seeded runs of five real nodes under faults, judged by checkers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from spinekv.node import vnode
from spinekv.storage.keys import object_key

from .cluster import SimCluster
from .workload import run_seed

ROOT = Path(__file__).resolve().parents[2]
SEEDS = range(100)  # per workload: 200 seeds in the default run; tests.sim.run sweeps more


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("workload", ["set", "register"])
def test_no_acknowledged_write_is_lost(workload, seed):
    result = run_seed(seed, workload=workload)
    assert result.acknowledged > 0, "the run acknowledged nothing, so it proves nothing"
    assert result.valid, f"{result.summary}\nreplay: {result.replay()}"


def test_the_same_seed_gives_the_same_history():
    first, second = (run_seed(7, workload="register") for _ in range(2))
    assert first.digest == second.digest
    assert first.faults == second.faults
    assert run_seed(8, workload="register").digest != first.digest


def test_a_run_does_not_depend_on_the_string_hash_seed():
    def digest(hash_seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-m", "tests.sim.run", "--seed", "3", "--digest"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip()

    assert digest("1") == digest("2")


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


def test_the_nemesis_injects_every_kind_of_fault():
    faults: Counter = Counter()
    for seed in range(10):
        faults += run_seed(seed, workload="set").faults
    for kind in ("crash", "restart", "partition", "one-way", "isolate", "net", "heal"):
        assert faults[kind] > 0, f"no {kind} in 10 seeds: {faults}"


def test_the_checker_catches_reused_dots(monkeypatch):
    """Bring back kv679 (one actor id per partition for the node's life): seeds must fail."""
    actors: dict[tuple[str, int], str] = {}

    def sticky_actor(self, partition):
        return actors.setdefault((self.node, partition), f"{self.node}-{partition}")

    monkeypatch.setattr(vnode.Vnodes, "actor", sticky_actor)
    results = [run_seed(seed, workload="register") for seed in range(6)]
    assert any(not r.valid for r in results), [r.summary for r in results]
