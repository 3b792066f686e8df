"""Run simulated seeds from the command line: replay one exactly, or sweep thousands.

python -m tests.sim.run --seed 17                  # replay seed 17, print its verdict
python -m tests.sim.run --seeds 0-4999 --workload register
python -m tests.sim.run --seed 17 --history /tmp/h.jsonl --log
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .workload import run_seed


def _seed_range(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="one seed, replayed exactly")
    which.add_argument("--seeds", type=_seed_range, help="a range such as 0-999")
    parser.add_argument("--workload", choices=["set", "register"], default="set")
    parser.add_argument("--duration", type=float, default=20.0, help="virtual seconds of load")
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--history", type=Path, help="write the history here (one seed)")
    parser.add_argument("--log", action="store_true", help="print the faults injected")
    parser.add_argument("--digest", action="store_true", help="print only the history digest")
    args = parser.parse_args(argv)
    console = Console()

    if args.seed is not None:
        result = run_seed(
            args.seed,
            workload=args.workload,
            duration=args.duration,
            clients=args.clients,
            keep_history=True,
        )
        ok = result.valid and not result.unconverged
        if args.digest:
            print(result.digest)
            return 0 if ok else 1
        assert result.history is not None
        if args.history:
            result.history.dump(args.history)
        if args.log:
            for when, event in result.fault_log:
                console.print(f"{when:9.3f}s  {event}")
        console.print(f"seed {args.seed}: {result.summary}")
        for problem in result.unconverged:
            console.print(f"[red]not converged: {problem}[/]")
        console.print(
            f"{result.ops} ops, {result.acknowledged} acknowledged, faults {dict(result.faults)},"
            f" {result.virtual_seconds:.1f} virtual s, history {result.digest}"
        )
        return 0 if ok else 1

    failed: list[int] = []
    started = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{args.workload} seeds", total=len(args.seeds))
        for seed in args.seeds:
            result = run_seed(
                seed, workload=args.workload, duration=args.duration, clients=args.clients
            )
            if not result.valid or result.unconverged:
                failed.append(seed)
                verdict = "; ".join([result.summary, *result.unconverged])
                progress.console.print(f"[red]seed {seed}: {verdict}[/]  {result.replay()}")
            progress.advance(task)
    elapsed = time.perf_counter() - started
    console.print(f"{len(args.seeds)} seeds, {len(failed)} failed {failed[:20]} in {elapsed:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
