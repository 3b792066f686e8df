"""Simulation speed: real seconds per simulated minute of a five-node cluster, idle and loaded."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sim.cluster import SimCluster
from tests.sim.workload import run_seed


def idle_minute(seed: int) -> tuple[float, int]:
    """Real seconds for 60 virtual seconds of gossip, probes and handoff checks; messages."""
    cluster = SimCluster(seed)
    try:
        started = time.perf_counter()
        cluster.run(60.0)
        return time.perf_counter() - started, cluster.network.sent
    finally:
        cluster.close()


def loaded_run(seed: int) -> tuple[float, float, int]:
    """(real s, virtual s, ops) of one seeded set run: 5 clients, nemesis, heal, settle."""
    started = time.perf_counter()
    result = run_seed(seed, workload="set", duration=60.0)
    return time.perf_counter() - started, result.virtual_seconds, result.ops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    idle = [idle_minute(seed) for seed in range(args.repeats)]
    loaded = [loaded_run(seed) for seed in range(args.repeats)]
    idle_s = statistics.median(s for s, _ in idle)
    per_minute = statistics.median(real / virt * 60 for real, virt, _ in loaded)
    table = Table(title=f"simulated five-node cluster, median of {args.repeats}")
    table.add_column("run")
    table.add_column("real s per virtual minute", justify="right")
    table.add_column("virtual / real", justify="right")
    table.add_column("detail")
    table.add_row(
        "idle (gossip, probes)",
        f"{idle_s:.3f}",
        f"{60 / idle_s:,.0f}x",
        f"{statistics.median(n for _, n in idle):,.0f} messages",
    )
    table.add_row(
        "set workload + nemesis",
        f"{per_minute:.3f}",
        f"{60 / per_minute:,.0f}x",
        f"{statistics.median(ops for *_, ops in loaded):,.0f} ops per run",
    )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
