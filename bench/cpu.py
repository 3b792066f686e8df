"""CPU-µs per request: this checkout's cluster against another checkout's, side by side.

Throughput on a shared two-core box swings by a third from run to run; the CPU
the nodes spend per request moves far less, so a change to the hot path is
judged by it (PERFORMANCE.md's measure). Each round starts a fresh five-node
cluster from each checkout in turn (alternating which goes first), preloads it,
runs a GET phase and a PUT phase, and divides the nodes' user+system CPU time
over each phase by the requests served. Medians over rounds are printed, with
the ratio of this checkout to the baseline.

    git worktree add --detach /tmp/base <commit>
    python bench/cpu.py --baseline /tmp/base --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import LoadSpec, preload, run_phase
from run import Cluster

HERE = Path(__file__).resolve().parents[1]
console = Console()


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def measure_tree(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    """{op: CPU-µs per request} for one fresh cluster running the code in `tree`."""
    os.environ["PYTHONPATH"] = str(tree)  # the nodes `spinekv up` starts import this tree
    with tempfile.TemporaryDirectory(prefix="spinekv-cpu-") as folder:
        cluster = Cluster(Path(folder), tree=tree)
        try:
            cluster.start()
            preload(cluster.urls, args.keys, args.value_size, params={"w": "all"})
            pids = cluster.pids()
            out = {}
            for op, params in (("get", {"r": "2"}), ("put", {"w": "2"})):
                spec = LoadSpec(
                    urls=cluster.urls,
                    op=op,  # type: ignore[arg-type]
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=1.0,
                    keys=args.keys,
                    value_size=args.value_size,
                    get_params=params if op == "get" else {},
                    put_params=params if op == "put" else {},
                    processes=2,
                )
                before = _cpu_seconds(pids)
                result = run_phase(spec)
                spent = _cpu_seconds(pids) - before
                if result.errors:
                    raise RuntimeError(f"{tree}: {result.errors} {op} errors {result.error_kinds}")
                # Warm-up requests cost CPU too: count them in at the measured rate.
                served = result.ops * (1 + spec.warmup / spec.duration)  # type: ignore[operator]
                out[op] = spent / served * 1e6
            return out
        finally:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another spinekv checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--keys", type=int, default=5_000)
    parser.add_argument("--value-size", type=int, default=1024)
    args = parser.parse_args(argv)
    trees = {"this": HERE, "baseline": args.baseline.resolve()}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for rnd in range(args.rounds):
        order = list(trees) if rnd % 2 == 0 else list(trees)[::-1]
        for name in order:
            got = measure_tree(trees[name], args)
            runs[name].append(got)
            console.print(
                f"[dim]round {rnd + 1}/{args.rounds} {name:>8}: "
                f"GET {got['get']:.0f} µs, PUT {got['put']:.0f} µs[/dim]"
            )
    table = Table(title="CPU-µs per request, all five nodes (median over rounds)")
    table.add_column("checkout")
    table.add_column("GET", justify="right")
    table.add_column("PUT", justify="right")
    medians = {
        name: {op: statistics.median(r[op] for r in rs) for op in ("get", "put")}
        for name, rs in runs.items()
    }
    for name, m in medians.items():
        table.add_row(f"{name} ({trees[name]})", f"{m['get']:.0f}", f"{m['put']:.0f}")
    console.print(table)
    for op in ("get", "put"):
        ratio = medians["this"][op] / medians["baseline"][op]
        console.print(f"this/baseline {op.upper()} CPU per request: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
