"""A minute of kills, pauses and link cuts under the set workload: no acknowledged add is lost."""

from __future__ import annotations

import asyncio
import os
import random
import time

from .harness import ChaosReport, ChaosRun
from .nemesis import CUT, KILL, KINDS, STOP, plan_faults

SHORT_DURATION = 55.0


def chaos_seed() -> int:
    """SPINEKV_CHAOS_SEED replays a run's choices; otherwise a fresh seed, printed."""
    raw = os.environ.get("SPINEKV_CHAOS_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


def describe(report: ChaosReport) -> str:
    stats = report.stats
    return "\n".join(
        [
            report.result.summary(),
            f"ops {stats.ops}: ok {stats.ok}, info {stats.info}, fail {stats.fail};"
            f" {stats.sibling_reads} reads saw siblings;"
            f" errors {dict(stats.errors)}",
            f"faults {dict(report.injected)}, cut shapes {dict(report.shapes)};"
            f" quiet {report.quiet_after:.1f}s after heal; wall {report.wall:.1f}s",
        ]
    )


def test_plan_respects_its_limits():
    """Any seed: required kinds first, at most 2 nodes damaged and 1 cut at once, over in time."""
    names = [f"n{i}" for i in range(1, 6)]
    for seed in range(300):
        duration = 20 + seed % 300
        plan = plan_faults(random.Random(seed), names, duration)
        assert {f.kind for f in plan[:3]} == set(KINDS), seed
        for f in plan:
            assert f.start < f.end <= duration - 3.0
            at = [g for g in plan if g.start <= f.start < g.end]
            assert len({g.nodes[0] for g in at if g.kind in (KILL, STOP)}) <= 2, seed
            assert sum(g.kind == CUT for g in at) <= 1, seed
            if f.kind == CUT:
                assert f.links and all(a != b for a, b in f.links)


def test_set_survives_kills_pauses_and_cuts(chaos_cluster, tmp_path):
    cluster, firewall = chaos_cluster
    seed = chaos_seed()
    print(f"chaos seed {seed} (replay the choices with SPINEKV_CHAOS_SEED={seed})")
    run = ChaosRun(cluster, firewall, seed, SHORT_DURATION)
    started = time.monotonic()
    try:
        report = asyncio.run(run.execute())
        print(describe(report))
        print(f"short chaos test: {time.monotonic() - started:.1f}s from load to verdict")
        assert report.result.valid, report.result.summary()
        assert not report.result.lost and not report.result.unexpected
        assert not report.stats.bad_values, report.stats.bad_values[:5]
        # Not vacuous: every kind of fault happened and was undone, cuts dropped packets,
        # and the store acknowledged plenty of adds and read them all back.
        actions = [e.action for e in report.events]
        for kind, undo in ((KILL, "restart"), (STOP, "resume"), (CUT, "heal")):
            assert report.injected[kind] >= 1, f"no {kind} fault: {actions}"
            assert undo in actions, f"no {undo}: {actions}"
        assert all(dropped > 0 for dropped in run.nemesis.cut_drops), run.nemesis.cut_drops
        assert report.result.acknowledged > 100, describe(report)
        assert report.result.read >= report.result.acknowledged
    except BaseException:
        path = tmp_path / "history.jsonl"
        run.history.dump(path)
        print(f"CHAOS RUN FAILED: seed {seed}; history ({len(run.history.ops)} ops) in {path}")
        for e in run.nemesis.events:
            print(f"  {e.at:7.2f}s {e.action:8} {e.detail} (took {e.took:.2f}s)")
        print(cluster.logs())
        raise
