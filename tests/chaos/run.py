"""Long chaos run on demand: `python -m tests.chaos.run --duration 300 --seed N`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .harness import ChaosReport, ChaosRun, running_cluster
from .nemesis import KINDS, SHAPES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos.run",
        description="Five real nodes on 127.0.0.11-15, the set workload, and a seeded nemesis "
        "(SIGKILL, SIGSTOP, nftables cuts); then heal, wait for quiet and check the set.",
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load + faults")
    parser.add_argument("--seed", type=int, default=None, help="replay a run's choices")
    parser.add_argument("--workers", type=int, default=6, help="concurrent clients")
    parser.add_argument("--keys", type=int, default=3, help="keys holding sets")
    parser.add_argument(
        "--gap", type=float, nargs=2, default=(1.0, 4.0), help="seconds between fault starts"
    )
    parser.add_argument(
        "--length", type=float, nargs=2, default=(2.0, 10.0), help="seconds a fault lasts"
    )
    parser.add_argument("--folder", type=Path, default=None, help="where the cluster lives")
    parser.add_argument("--keep", action="store_true", help="keep the folder after a valid run")
    return parser.parse_args(argv)


# ------------------------------------------------------------------ live display


def _render(run: ChaosRun) -> Group:
    elapsed = run.elapsed()
    stats = run.workload.stats
    nemesis = run.nemesis
    top = Table.grid(padding=(0, 2))
    top.add_column(style="bold")
    top.add_column()
    top.add_row("seed", str(run.seed))
    top.add_row("phase", run.phase)
    bar = ProgressBar(total=run.duration, completed=min(elapsed, run.duration), width=40)
    top.add_row("time", Group(Text(f"{elapsed:6.1f}s of {run.duration:.0f}s"), bar))
    rate = stats.ops / elapsed if elapsed > 0 else 0.0
    top.add_row(
        "adds",
        Text.assemble(
            (f"{stats.ok} ok", "green"),
            "  ",
            (f"{stats.info} info", "yellow"),
            "  ",
            (f"{stats.fail} fail", "red"),
            f"  ({rate:.0f}/s; {stats.sibling_reads} reads saw siblings)",
        ),
    )
    if stats.bad_values:
        top.add_row("BAD VALUES", Text(str(len(stats.bad_values)), style="bold red"))
    top.add_row("now", Text(nemesis.current, style="magenta" if nemesis.current != "calm" else ""))
    top.add_row(
        "injected",
        "  ".join(f"{k} {nemesis.injected[k]}" for k in KINDS)
        + "   (cuts: "
        + ", ".join(f"{s} {nemesis.shapes[s]}" for s in SHAPES)
        + ")",
    )
    recent = Table(box=None, show_header=False, padding=(0, 1))
    for e in nemesis.events[-6:]:
        recent.add_row(f"{e.at:7.1f}s", e.action, e.detail, f"{e.took:.1f}s" if e.took else "")
    errors = ", ".join(f"{k}: {v}" for k, v in stats.errors.most_common(4)) or "-"
    return Group(
        Panel(top, title="spinekv chaos", border_style="blue"),
        Panel(recent, title="nemesis"),
        Text(f"errors: {errors}", style="dim"),
        Text(""),
    )


async def _execute_with_display(run: ChaosRun, console: Console) -> ChaosReport:
    with Live(_render(run), console=console, auto_refresh=False, transient=False) as live:

        async def refresh() -> None:
            while True:
                live.update(_render(run), refresh=True)
                await asyncio.sleep(0.5)  # display refresh rate

        ticker = asyncio.ensure_future(refresh())
        try:
            return await run.execute()
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            live.update(_render(run), refresh=True)


# ------------------------------------------------------------------ summary


def summary_table(report: ChaosReport) -> Table:
    result, stats = report.result, report.stats
    verdict = Text("valid", style="bold green") if result.valid else Text("INVALID", "bold red")
    table = Table(title=f"chaos run, seed {report.seed}: ", show_header=False)
    table.title = Text.assemble(f"chaos run, seed {report.seed}: ", verdict)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("operations", str(stats.ops))
    table.add_row("acknowledged", str(result.acknowledged))
    table.add_row("indeterminate (info)", str(stats.info))
    table.add_row("failed (nothing written)", str(stats.fail))
    table.add_row("reads that saw siblings", str(stats.sibling_reads))
    table.add_row("elements in final read", str(result.read))
    table.add_row("lost", Text(str(len(result.lost)), "red" if result.lost else "green"))
    unexpected = Text(str(len(result.unexpected)), "red" if result.unexpected else "green")
    table.add_row("unexpected", unexpected)
    table.add_row("indeterminate adds present", str(result.recovered))
    for kind in KINDS:
        table.add_row(f"faults: {kind}", str(report.injected[kind]))
    for shape in SHAPES:
        table.add_row(f"  cuts: {shape}", str(report.shapes[shape]))
    table.add_row("quiet after heal", f"{report.quiet_after:.1f}s")
    table.add_row("wall time", f"{report.wall:.1f}s")
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="spinekv-chaos-"))
    console = Console()

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    console.print(f"seed {seed}; cluster in {folder}")
    history_path = folder / "history.jsonl"
    report: ChaosReport | None = None
    run: ChaosRun | None = None
    try:
        with running_cluster(folder / "cluster") as (cluster, firewall):
            run = ChaosRun(
                cluster,
                firewall,
                seed,
                args.duration,
                workers=args.workers,
                keys=args.keys,
                gap=tuple(args.gap),
                length=tuple(args.length),
                quiet_timeout=180.0,
            )
            started = time.monotonic()
            try:
                report = asyncio.run(_execute_with_display(run, console))
            except Exception as exc:
                console.print(f"[bold red]run could not be judged:[/] {exc}")
                console.print(cluster.logs())
            finally:
                run.history.dump(history_path)
            console.print(f"load to verdict: {time.monotonic() - started:.1f}s")
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; every node stopped, firewall table deleted[/]")
        return 130
    if report is None:
        console.print(f"seed {seed}; history and node logs kept in {folder}")
        return 1
    console.print(summary_table(report))
    console.print(report.result.summary())
    if report.stats.bad_values:
        console.print(f"[red]bad values read:[/] {report.stats.bad_values[:5]}")
    valid = report.result.valid and not report.stats.bad_values
    if valid and not args.keep and args.folder is None:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        console.print(f"history and node logs in {folder}")
    if not valid:
        console.print(f"[bold red]INVALID[/]: seed {seed}")
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
