"""Hinted-handoff benchmark: objects/s handed to a returning node, and foreground load meanwhile."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from rich.console import Console
from rich.table import Table
from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import DEFAULT_BUCKET, _one, _session, key_name, preload
from run import Cluster

from spinekv.claim import claim
from spinekv.cli.processes import node_pid
from spinekv.config import ClusterConfig, load_config
from spinekv.ring import primaries

ROOT = Path(__file__).resolve().parents[1]
VICTIM = "n2"  # the node that dies and returns
HANDOFF_BUCKET = "handoff"
FG_KEYS = 10_000  # foreground key space, preloaded before the victim dies
POLL = 0.2  # seconds between /admin/status sweeps
WARMUP = 1.0  # unmeasured foreground seconds before a baseline window
SETTLE = 1.0  # seconds after handoff ends before the after-handoff baseline window
OBJ_TARGET, FG_TARGET = 5000.0, 0.70

console = Console()


# ---------------------------------------------------------------- cluster state


def fetch_status(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/admin/status", timeout=2.0) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Watch:
    """Polls every node's /admin/status; remembers each handoff transfer started since `since`."""

    nodes: dict[str, str]
    since: float
    transfers: dict[tuple, dict] = field(default_factory=dict)
    snap: dict[str, dict | None] = field(default_factory=dict)
    cpu: list[tuple[float, dict[tuple[int, str], float]]] = field(default_factory=list)
    all_up_at: float | None = None  # first sweep at which every node saw VICTIM up

    def sweep(self) -> None:
        self.snap = {name: fetch_status(url) for name, url in self.nodes.items()}
        pids = {st["pid"]: name for name, st in self.snap.items() if st is not None}
        self.cpu.append((time.monotonic(), {(pid, n): cpu_seconds(pid) for pid, n in pids.items()}))
        if self.all_up_at is None and self.victim_seen(True):
            self.all_up_at = time.monotonic()
        for name, st in self.snap.items():
            handoff = (st or {}).get("handoff", {})
            for t in handoff.get("active", []) + handoff.get("recent", []):
                if t["started"] >= self.since:
                    self.transfers[(name, t["partition"], t["started"])] = t | {"node": name}

    def cores(self, lo: float, hi: float) -> dict[str, float]:
        """CPU cores each node process used between the first and last sweep in [lo, hi]."""
        inside = [(t, c) for t, c in self.cpu if lo <= t <= hi]
        if len(inside) < 2:
            return {}
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return {n: round((c1[p, n] - c0[p, n]) / (t1 - t0), 3) for p, n in c0.keys() & c1.keys()}

    def victim_seen(self, up: bool) -> bool:
        others = [st for n, st in self.snap.items() if n != VICTIM]
        return all(st is not None and st["members"][VICTIM]["up"] == up for st in others)

    def handoff_idle(self) -> bool:
        """Every node answers, sees every member up, and has nothing pending or in flight."""
        ok = [st and all(m["up"] for m in st["members"].values()) for st in self.snap.values()]
        return all(ok) and not any(
            st["handoff"]["pending"] or st["handoff"]["active"] for st in self.snap.values() if st
        )

    def until(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        """Sweep every POLL seconds until `done()`; raise after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.sweep()
            if done():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(POLL)

    def through(self, end: float) -> None:
        """Sweep (the same polling as during handoff) until monotonic time `end`."""
        self.until("a window's end", lambda: time.monotonic() >= end, end - time.monotonic())


def handoff_keys(config: ClusterConfig, count: int) -> list[str]:
    """Keys with VICTIM among their primaries: each leaves exactly one object on a fallback."""
    ring = claim(config.members(), config.ring_size, config.n_val)
    n_val = config.n_val
    hit = {
        p for p in range(ring.ring_size) if VICTIM in {e.node for e in primaries(ring, p, n_val)}
    }
    keys, i = [], 0
    while len(keys) < count:
        name = f"h{i:08d}"
        if ring.partition_of(b"default", HANDOFF_BUCKET.encode(), name.encode()) in hit:
            keys.append(name)
        i += 1
    return keys


async def _bulk_put(urls: list[str], keys: list[str], value_size: int, concurrency: int) -> Counter:
    value, todo, errors = os.urandom(value_size), iter(enumerate(keys)), Counter()

    async def worker(session: aiohttp.ClientSession) -> None:
        for i, key in todo:
            base = urls[i % len(urls)]
            url = URL(f"{base}/buckets/{HANDOFF_BUCKET}/keys/{key}?w=2&dw=0", encoded=True)
            if (error := await _one(session, "put", url, value, value_size)) is not None:
                errors[error] += 1

    async with _session(concurrency, 30.0) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return errors


# ---------------------------------------------------------------- foreground load


async def _drive(spec: dict, stop: Any, out: Any) -> None:
    """Closed-loop GET r=2 / PUT w=2 workers until `stop` is set; counts completions per 10 ms."""
    rng, value, size = random.Random(), os.urandom(spec["value_size"]), spec["value_size"]
    bins: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    urls, hard_stop = spec["urls"], time.monotonic() + 3600

    async def worker() -> None:
        while not stopped:
            kind = "get" if rng.random() < spec["get_fraction"] else "put"
            base, key = rng.choice(urls), key_name(rng.randrange(FG_KEYS))
            query = "r=2" if kind == "get" else "w=2"
            url = URL(f"{base}/buckets/{DEFAULT_BUCKET}/keys/{key}?{query}", encoded=True)
            if (error := await _one(session, kind, url, value, size)) is not None:
                errors[error] += 1
            else:
                bins[int(time.monotonic() * 100)] += 1

    async with _session(spec["workers"], 10.0) as session:
        out.put("ready")
        stopped = False
        tasks = [asyncio.ensure_future(worker()) for _ in range(spec["workers"])]
        while not stop.is_set() and time.monotonic() < hard_stop:
            await asyncio.sleep(0.05)
        stopped = True
        await asyncio.gather(*tasks)
    out.put({"bins": dict(bins), "errors": dict(errors)})


def _fg_main(spec: dict, stop: Any, out: Any) -> None:
    uvloop.run(_drive(spec, stop, out))


@dataclass
class Foreground:
    """The foreground load in its own processes, from start() (once running) until stop()."""

    spec: dict
    processes: int
    procs: list = field(default_factory=list)

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop_event, self.out = ctx.Event(), ctx.Queue()
        for i in range(self.processes):
            workers = self.spec["concurrency"] // self.processes
            workers += i < self.spec["concurrency"] % self.processes
            args = (self.spec | {"workers": workers}, self.stop_event, self.out)
            self.procs.append(ctx.Process(target=_fg_main, args=args, daemon=True))
            self.procs[-1].start()
        for _ in self.procs:
            self.out.get(timeout=60)  # "ready"; queue.Empty if a process never got going

    def stop(self) -> tuple[Counter[int], Counter[str]]:
        self.stop_event.set()
        bins, errors = Counter[int](), Counter[str]()
        try:
            for got in (self.out.get(timeout=60) for _ in self.procs):
                bins.update(got["bins"])
                errors.update(got["errors"])
        finally:
            self.kill()
        return bins, errors

    def kill(self) -> None:
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.procs = []


def rate(bins: Counter[int], lo: float, hi: float) -> float:
    """Successful ops per second completed in the monotonic window [lo, hi)."""
    ops = sum(n for b, n in bins.items() if lo <= b / 100 < hi)
    return ops / (hi - lo) if hi > lo else float("nan")


# ---------------------------------------------------------------- the run


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    cluster = Cluster(folder, max_object_size=max(65536, 2 * args.value_size))
    fg: Foreground | None = None
    try:
        cluster.start()
        assert cluster.config is not None
        config = load_config(cluster.config)
        nodes = {name: config.http_url(name) for name in config.node_names()}
        spec = {k: getattr(args, k) for k in ("value_size", "concurrency", "get_fraction")}
        spec["urls"] = live = [url for name, url in nodes.items() if name != VICTIM]
        preload(list(nodes.values()), FG_KEYS, args.value_size, params={"w": "all"})

        # Baseline 1: the healthy cluster before VICTIM dies.
        fg = Foreground(spec, args.processes)
        fg.start()
        lo = time.monotonic() + WARMUP
        watch = Watch(nodes, lo)
        watch.through(lo + args.duration)
        before_cores = watch.cores(lo, lo + args.duration)
        before_bins, before_errors = fg.stop()

        pid = node_pid(config, VICTIM)
        if pid is None:
            raise RuntimeError(f"{VICTIM} is not running")
        os.kill(pid, signal.SIGKILL)
        watch = Watch(nodes, 0)
        watch.until(f"the others to see {VICTIM} down", lambda: watch.victim_seen(False), 30)
        keys = handoff_keys(config, args.objects)
        t0 = time.monotonic()
        errors = uvloop.run(_bulk_put(live, keys, args.value_size, args.concurrency))
        load_s = time.monotonic() - t0
        if errors:
            raise RuntimeError(f"{sum(errors.values())} of {len(keys)} PUTs failed: {errors}")
        console.print(f"wrote {len(keys):,} objects, {VICTIM} down: {len(keys) / load_s:,.0f}/s")

        # During handoff: the load runs from just before VICTIM restarts on through baseline 2.
        # Its writes (and read repairs) that land on fallbacks before the others see VICTIM up
        # are handed off too; the objects moved are counted from the transfers, not assumed.
        fg = Foreground(spec, args.processes)
        fg.start()
        t_restart = time.monotonic()
        done = cluster._cli("up", "--detach", VICTIM, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"restarting {VICTIM} failed: {done.stdout}{done.stderr}")
        t_serving = time.monotonic()
        watch = Watch(nodes, t_restart)
        watch.until("handoff to finish", watch.handoff_idle, max(120.0, args.objects / 100))
        t_idle = time.monotonic()
        moves = sorted(watch.transfers.values(), key=lambda t: t["started"])
        # Baseline 2: after handoff, with the same data, membership and load processes.
        base_lo, seen = t_idle + SETTLE, len(watch.transfers)
        watch.through(base_lo + args.duration)
        bins, fg_errors = fg.stop()
        fg = None
    finally:
        if fg is not None:
            fg.kill()
        cluster.stop()

    if not moves:
        raise RuntimeError("no handoff transfer was seen")
    first, last = moves[0]["started"], max(t["finished"] for t in moves)
    objects = sum(t["objects"] for t in moves)
    before = rate(before_bins, lo, lo + args.duration)
    during = rate(bins, first, last)
    after = rate(bins, base_lo, base_lo + args.duration)
    senders: dict[str, dict] = {}
    for t in moves:
        s = senders.setdefault(t["node"], {"transfers": 0, "objects": 0, "busy_s": 0.0})
        s["transfers"] += 1
        s["objects"] += t["objects"]
        s["busy_s"] += t["finished"] - t["started"]
    cores = {
        "before": before_cores,
        "during": watch.cores(first, last),
        "after": watch.cores(base_lo, base_lo + args.duration),
    }
    return {
        "objects_written": len(keys),
        "write_objects_per_s": len(keys) / load_s,
        "objects_moved": objects,
        "bytes_moved": sum(t["bytes"] for t in moves),
        "transfers": len(moves),
        "failed_transfers": sum(1 for t in moves if not t["done"]),
        "restart_s": t_serving - t_restart,
        "restart_to_first_transfer_s": first - t_restart,
        "restart_to_all_see_up_s": (watch.all_up_at or float("nan")) - t_restart,
        "transfer_span_s": last - first,
        "handoff_s": t_idle - t_restart,
        "objects_per_s": objects / (t_idle - t_restart),
        "objects_per_s_transfer_span": objects / (last - first),
        "senders": senders,
        "node_cores": {w: sum(c.values()) for w, c in cores.items()},
        "node_cores_by_node": {w: dict(sorted(c.items())) for w, c in cores.items()},
        "fg_before_ops_per_s": before,
        "fg_during_ops_per_s": during,
        "fg_after_ops_per_s": after,
        "fg_ratio": during / before,
        "fg_ratio_vs_after": during / after,
        "fg_errors": dict(before_errors + fg_errors),
        "transfers_in_baseline_2": len(watch.transfers) - seen,
        "transfer_log": [
            t | {"started": t["started"] - t_restart, "finished": t["finished"] - t_restart}
            for t in moves
        ],
        # foreground ops/s per half second, from VICTIM's restart
        "fg_series": [
            [round(x / 2, 1), rate(bins, t_restart + x / 2, t_restart + x / 2 + 0.5)]
            for x in range(int((base_lo + args.duration - t_restart) * 2))
        ],
    }


def print_table(r: dict[str, Any], title: str) -> None:
    def target(value: float, goal: float, text: str) -> str:
        return f"{text}: " + ("[green]met[/green]" if value >= goal else "[red]missed[/red]")

    table = Table("measure", "value", "target", title=title)
    objects_ok = target(r["objects_per_s"], OBJ_TARGET, f">= {OBJ_TARGET:,.0f}")
    fg_ok = target(r["fg_ratio"], FG_TARGET, f">= {FG_TARGET:.0%}")
    rows = [
        ("objects moved", f"{r['objects_moved']:,} ({r['objects_written']:,} written)"),
        ("transfers (failed)", f"{r['transfers']} ({r['failed_transfers']})"),
        (f"{VICTIM} restart until it serves, s", f"{r['restart_s']:.2f}"),
        ("restart until all see it up, s", f"{r['restart_to_all_see_up_s']:.2f}"),
        ("restart until first transfer, s", f"{r['restart_to_first_transfer_s']:.2f}"),
        ("first transfer until last ends, s", f"{r['transfer_span_s']:.2f}"),
        ("handoff s (restart until idle)", f"{r['handoff_s']:.2f}"),
        ("objects/s (restart until idle)", f"{r['objects_per_s']:,.0f}", objects_ok),
        ("objects/s (transfer span only)", f"{r['objects_per_s_transfer_span']:,.0f}"),
        ("foreground ops/s: before (healthy)", f"{r['fg_before_ops_per_s']:,.0f}"),
        ("foreground ops/s: during handoff", f"{r['fg_during_ops_per_s']:,.0f}"),
        ("foreground ops/s: after handoff", f"{r['fg_after_ops_per_s']:,.0f}"),
        ("foreground during / before", f"{r['fg_ratio']:.1%}", fg_ok),
        ("foreground during / after", f"{r['fg_ratio_vs_after']:.1%}"),
        ("foreground errors", str(sum(r["fg_errors"].values()))),
        (
            "node CPU cores: before / during / after",
            " / ".join(f"{r['node_cores'][w]:.2f}" for w in ("before", "during", "after")),
        ),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for node, s in sorted(r["senders"].items()):
        console.print(
            f"  sender {node}: {s['transfers']} transfers, {s['objects']:,} objects,"
            f" {s['busy_s']:.1f}s busy ({s['objects'] / max(s['busy_s'], 1e-9):,.0f} objects/s)"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=100_000, help="objects to hand off")
    parser.add_argument("--value-size", type=int, default=1024, help="value bytes")
    parser.add_argument("--concurrency", type=int, default=32, help="bulk load and foreground")
    parser.add_argument("--duration", type=float, default=10.0, help="baseline window seconds")
    parser.add_argument("--get-fraction", type=float, default=0.5, help="foreground GET share")
    parser.add_argument("--processes", type=int, default=1, help="foreground load processes")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (node logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The nodes run this checkout's spinekv, installed or not.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    started = datetime.now().astimezone()
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    console.print(f"spinekv handoff benchmark {started:%Y-%m-%d %H:%M %Z}: {params}")
    folder = Path(tempfile.mkdtemp(prefix="spinekv-handoff-"))
    try:
        result = measure(args, folder)
    finally:
        if args.keep:
            console.print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    title = (
        f"hinted handoff to a returning {VICTIM}: 5 nodes, ring 64, N=3, {args.value_size} B"
        f" values; foreground {args.get_fraction:.0%} GET r=2 / PUT w=2, concurrency"
        f" {args.concurrency}, {os.cpu_count()} cores shared"
    )
    print_table(result, title)
    if args.json is not None:
        report = {"date": started.isoformat(timespec="seconds"), "parameters": params} | result
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    met = result["objects_per_s"] >= OBJ_TARGET and result["fg_ratio"] >= FG_TARGET
    return 0 if met else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
