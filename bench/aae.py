"""Anti-entropy benchmark: wipe repair rate, and the foreground cost of exchanges and folds."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import LoadSpec, PhaseResult, key_name, preload, run_phase
from run import Cluster

from spinekv.aae_exchange import IN_SYNC
from spinekv.config import ClusterConfig, load_config
from spinekv.node.messages import AaeBranches, AaeKeys, AaeRoot, AaeSegments
from spinekv.transport.tcp import KIND_REPLY, KIND_REQUEST
from tests.inproc import inproc_cluster

ROOT = Path(__file__).resolve().parents[1]
VICTIM = "n3"  # the node whose data folder is wiped
WIPE_BUCKET = "wipe"
FG_KEYS = 10_000  # the foreground mix's key space (run.py's default)
POLL = 0.5  # seconds between looks at the victim's trees
REPAIR_TARGET, FG_TARGET, FOLD_TARGET = 2000.0, 0.90, 0.90
# The in-process exchanges are driven one by one here; no background tick may add any.
NO_TICK_MS = 30 * 86_400_000
AAE_TAGS = {AaeRoot.TAG, AaeBranches.TAG, AaeSegments.TAG, AaeKeys.TAG}
# A frame is a 4-byte length, then msgpack [kind, request id, body]; ids reach 3 bytes soon.
_HEADER, _RID = 4, 1000

console = Console(width=120)


# ---------------------------------------------------------------- cluster state


def get_json(url: str, path: str, timeout: float = 10.0) -> Any:
    try:
        with urllib.request.urlopen(url + path, timeout=timeout) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def tree_keys(url: str) -> dict[tuple[int, int], int] | None:
    """Keys in each of a node's trees (partition, n_val), or None if it does not answer."""
    got = get_json(url, "/admin/aae")
    if got is None:
        return None
    return {(t["partition"], t["n_val"]): t["keys"] for t in got["trees"]}


def wait_trees_built(urls: list[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        answers = [get_json(url, "/admin/aae") for url in urls]
        if all(
            a is not None and all(t["state"] != "rebuilding" for t in a["trees"]) for a in answers
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"trees not built within {timeout:.0f}s")
        time.sleep(POLL)


def primary_copies(url: str, key: str) -> int:
    """Primaries holding `key` of the wipe bucket, each read locally (no read repair)."""
    got = get_json(url, f"/admin/replicas/types/default/buckets/{WIPE_BUCKET}/keys/{key}")
    if got is None:
        return -1
    return sum(1 for r in got["replicas"] if r["primary"] and r.get("status") == "found")


# ---------------------------------------------------------------- in-sync exchange


async def insync_exchange(folder: Path, keys: int) -> dict[str, Any]:
    """Messages and bytes of each exchange of n1's trees on an in-sync cluster (in process,
    over real TCP), counted on n1's transport: every Aae* request and its reply."""
    extra = f"[aae]\ntick_ms = {NO_TICK_MS}\n"
    folder.mkdir()
    # The in-process nodes share this terminal: their start and stop chatter would bury the run.
    logging.getLogger("spinekv").setLevel(logging.ERROR)
    async with inproc_cluster(folder, ring_size=64, extra=extra) as cluster:
        urls = [cluster.url(name) for name in cluster.nodes]
        todo = iter(range(keys))
        async with aiohttp.ClientSession() as http:

            async def writer() -> None:
                for i in todo:
                    url = f"{urls[i % len(urls)]}/buckets/insync/keys/{key_name(i)}?w=all"
                    async with http.put(url, data=os.urandom(64)) as resp:
                        if resp.status != 204:
                            raise RuntimeError(f"in-sync load: PUT answered {resp.status}")

            await asyncio.gather(*(writer() for _ in range(16)))
        await asyncio.gather(*(node.aae.settled() for node in cluster.nodes.values()))
        node = cluster.nodes["n1"]
        transport = node.transport
        real = transport.request
        frames: list[tuple[int, int, int]] = []  # (tag, bytes sent, bytes received)

        async def counted(peer: str, message: Any, timeout: float) -> Any:
            answer = await real(peer, message, timeout)
            if message[0] in AAE_TAGS:
                sent = _HEADER + len(msgpack.packb([KIND_REQUEST, _RID, message]))
                got = _HEADER + len(msgpack.packb([KIND_REPLY, _RID, answer]))
                frames.append((message[0], sent, got))
            return answer

        transport.request = counted  # type: ignore[method-assign]
        per_tree = []
        try:
            for tid in sorted(node.aae.slots):
                frames.clear()
                result = await node.exchanges.exchange(tid)
                per_tree.append(
                    {
                        "tree": list(tid),
                        "outcome": None if result is None else result.outcome,
                        "messages": len(frames),
                        "roots": sum(1 for tag, _, _ in frames if tag == AaeRoot.TAG),
                        "bytes_sent": sum(s for _, s, _ in frames),
                        "bytes_received": sum(g for _, _, g in frames),
                    }
                )
        finally:
            del transport.request
    return {
        "keys": keys,
        "trees": len(per_tree),
        "in_sync": sum(1 for t in per_tree if t["outcome"] == IN_SYNC),
        "max_messages_each_way": max(t["messages"] for t in per_tree),
        "all_root_only": all(t["messages"] == t["roots"] == 1 for t in per_tree),
        "bytes_sent": statistics.median(t["bytes_sent"] for t in per_tree),
        "bytes_received": statistics.median(t["bytes_received"] for t in per_tree),
        "per_tree": per_tree,
    }


# ---------------------------------------------------------------- foreground


def mix(args: argparse.Namespace, urls: list[str]) -> LoadSpec:
    """run.py's GET r=2 / PUT w=2 load, as a 50/50 mix over its preloaded key space."""
    return LoadSpec(
        urls=urls,
        op="mixed",
        get_fraction=0.5,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        keys=FG_KEYS,
        value_size=args.value_size,
        get_params={"r": "2"},
        put_params={"w": "2"},
        processes=args.processes,
    )


def alternate(
    rounds: int, phases: dict[str, Callable[[], PhaseResult]]
) -> dict[str, list[PhaseResult]]:
    """Each round runs every phase, the order reversed every other round (drift hits all)."""
    results: dict[str, list[PhaseResult]] = {name: [] for name in phases}
    for rnd in range(rounds):
        order = list(phases) if rnd % 2 == 0 else list(phases)[::-1]
        for name in order:
            result = phases[name]()
            results[name].append(result)
            style = "red" if result.errors else "dim"
            console.print(
                f"[{style}]round {rnd + 1}/{rounds} {name}: {result.ops_per_s:,.0f} ops/s"
                f"  p99 {result.p99_ms:.1f} ms  errors {result.errors}[/{style}]"
            )
    return results


class FoldLoop:
    """GET /admin/fold/object-stats on n1 (what `spinekv admin fold object-stats` sends) again
    and again in a thread until stopped. Over HTTP rather than the CLI: a CLI process's
    start-up (half a second of CPU) is not a fold's cost, and with short folds it dominated."""

    def __init__(self, cluster: Cluster) -> None:
        self.url = cluster.urls[0] + "/admin/fold/object-stats"
        self.seconds: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=700) as resp:
                    json.load(resp)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.failures.append(str(exc))
            else:
                self.seconds.append(time.monotonic() - t0)

    def __enter__(self) -> FoldLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def medians(results: dict[str, list[PhaseResult]]) -> dict[str, float]:
    return {name: statistics.median(r.ops_per_s for r in rs) for name, rs in results.items()}


# ---------------------------------------------------------------- wipe repair


def wipe_repair(args: argparse.Namespace, cluster: Cluster, config: ClusterConfig) -> dict:
    """Stop VICTIM, delete its data folder, start it; time until its trees hold every key
    they held before (only exchanges put them back), then check a sample's replicas."""
    url = config.http_url(VICTIM)
    before = tree_keys(url)
    if not before:
        raise RuntimeError(f"{VICTIM} shows no trees")
    expected = sum(before.values())
    done = cluster._cli("down", VICTIM, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"stopping {VICTIM} failed: {done.stdout}{done.stderr}")
    shutil.rmtree(config.node_dir(VICTIM) / "data")
    t0 = time.monotonic()
    done = cluster._cli("up", "--detach", VICTIM, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"restarting {VICTIM} failed: {done.stdout}{done.stderr}")
    t_serving = time.monotonic()
    series: list[tuple[float, int]] = []
    first: float | None = None
    deadline = t0 + args.repair_timeout
    while True:
        got = tree_keys(url)
        now = time.monotonic()
        if got is not None:
            restored = sum(min(got.get(tid, 0), n) for tid, n in before.items())
            series.append((round(now - t0, 2), restored))
            if first is None and restored > 0:
                first = now
            if restored >= expected:
                break
        if now > deadline:
            raise RuntimeError(f"{VICTIM} has {series[-1][1]:,} of {expected:,} keys back")
        time.sleep(POLL)
    t_done = time.monotonic()
    assert first is not None
    sample = [key_name(i) for i in random.sample(range(args.keys), min(args.sample, args.keys))]
    others = [config.http_url(n) for n in config.node_names() if n != VICTIM]
    with ThreadPoolExecutor(8) as pool:
        asked = [others[i % len(others)] for i in range(len(sample))]
        copies = list(pool.map(primary_copies, asked, sample))
    return {
        "victim_keys": expected,
        "restart_s": t_serving - t0,
        "to_first_repair_s": first - t0,
        "to_all_back_s": t_done - t0,
        "keys_per_s": expected / (t_done - first),
        "keys_per_s_from_serving": expected / (t_done - t_serving),
        "sampled": len(sample),
        "sampled_short": sum(1 for c in copies if c != 3),
        "series": series,
    }


# ---------------------------------------------------------------- the run


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    t_start = time.monotonic()
    console.print("in-sync exchange: counting n1's messages in process...")
    insync = asyncio.run(insync_exchange(folder / "insync", args.insync_keys))

    aae_on = Cluster(folder / "aae", extra=f"[aae]\ntick_ms = {args.tick_ms}\n")
    aae_off = Cluster(folder / "off", extra="[aae]\nenabled = false\n")
    result: dict[str, Any] = {"insync": insync}
    try:
        for cluster in (aae_on, aae_off):
            cluster.folder.mkdir()
            cluster.start()
            preload(cluster.urls, FG_KEYS, args.value_size, params={"w": "all"})
        wait_trees_built(aae_on.urls)
        console.print(f"foreground: AAE at a {args.tick_ms} ms tick against AAE off...")
        fg = alternate(
            args.rounds,
            {
                "aae on": lambda: run_phase(mix(args, aae_on.urls)),
                "aae off": lambda: run_phase(mix(args, aae_off.urls)),
            },
        )
        aae_off.stop()
        result["fg"] = medians(fg)
        result["fg_errors"] = sum(r.errors for rs in fg.values() for r in rs)

        t0 = time.monotonic()
        preload(
            aae_on.urls,
            args.keys,
            args.value_size,
            concurrency=args.concurrency,
            params={"w": "all"},
            bucket=WIPE_BUCKET,
            timeout=30.0,
        )
        result["load_s"] = time.monotonic() - t0
        console.print(f"loaded {args.keys:,} objects in {result['load_s']:.0f}s")

        console.print("fold pacing: the mix with `admin fold object-stats` running, and without...")
        loops: list[FoldLoop] = []

        def with_fold() -> PhaseResult:
            with FoldLoop(aae_on) as loop:
                loops.append(loop)
                return run_phase(mix(args, aae_on.urls))

        fold = alternate(
            args.rounds, {"no fold": lambda: run_phase(mix(args, aae_on.urls)), "fold": with_fold}
        )
        result["fold"] = medians(fold)
        result["fold_errors"] = sum(r.errors for rs in fold.values() for r in rs)
        result["folds_done"] = sum(len(loop.seconds) for loop in loops)
        result["fold_failures"] = [f for loop in loops for f in loop.failures]
        result["fold_s"] = statistics.median(s for loop in loops for s in loop.seconds)

        console.print(f"wipe: {VICTIM} stopped, its data folder deleted, started again...")
        assert aae_on.config is not None
        result["wipe"] = wipe_repair(args, aae_on, load_config(aae_on.config))
    finally:
        aae_on.stop()
        aae_off.stop()
    result["run_s"] = time.monotonic() - t_start
    return result


def print_table(r: dict[str, Any], args: argparse.Namespace) -> bool:
    """The figures against their targets; whether every target was met."""

    def verdict(ok: bool, text: str) -> str:
        return f"{text}: " + ("[green]met[/green]" if ok else "[red]missed[/red]")

    ins, wipe = r["insync"], r["wipe"]
    fg_ratio = r["fg"]["aae on"] / r["fg"]["aae off"]
    fold_ratio = r["fold"]["fold"] / r["fold"]["no fold"]
    ok = {
        "insync": ins["all_root_only"] and ins["in_sync"] == ins["trees"],
        "fg": fg_ratio >= FG_TARGET,
        "fold": fold_ratio >= FOLD_TARGET,
        "repair": wipe["keys_per_s"] >= REPAIR_TARGET and wipe["sampled_short"] == 0,
    }
    table = Table(
        "measure",
        "value",
        "target",
        title=(
            f"anti-entropy: 5 nodes, ring 64, N=3, {args.value_size} B values; mix 50% GET r=2 /"
            f" PUT w=2, concurrency {args.concurrency}; {os.cpu_count()} cores shared"
        ),
    )
    rows = [
        (
            f"in-sync exchange: messages each way ({ins['trees']} trees of n1)",
            f"{ins['max_messages_each_way']} (roots only: {ins['all_root_only']};"
            f" in sync {ins['in_sync']}/{ins['trees']})",
            verdict(ok["insync"], "one root each way"),
        ),
        (
            "in-sync exchange: bytes sent / received",
            f"{ins['bytes_sent']:.0f} / {ins['bytes_received']:.0f}",
        ),
        (f"mix ops/s, AAE exchanging (tick {args.tick_ms} ms)", f"{r['fg']['aae on']:,.0f}"),
        ("mix ops/s, AAE off", f"{r['fg']['aae off']:,.0f}"),
        ("AAE on / off", f"{fg_ratio:.1%}", verdict(ok["fg"], f">= {FG_TARGET:.0%}")),
        (f"load {args.keys:,} objects (w=all), s", f"{r['load_s']:.0f}"),
        ("mix ops/s, no fold", f"{r['fold']['no fold']:,.0f}"),
        (
            "mix ops/s, object-stats folding",
            f"{r['fold']['fold']:,.0f} ({r['folds_done']} folds, {r['fold_s']:.1f} s each)",
        ),
        ("fold / no fold", f"{fold_ratio:.1%}", verdict(ok["fold"], f">= {FOLD_TARGET:.0%}")),
        (f"keys {VICTIM} held before the wipe", f"{wipe['victim_keys']:,}"),
        (f"{VICTIM} restart until it serves, s", f"{wipe['restart_s']:.1f}"),
        ("restart until the first key is back, s", f"{wipe['to_first_repair_s']:.1f}"),
        ("restart until every key is back, s", f"{wipe['to_all_back_s']:.1f}"),
        (
            "repairs/s (first key back until all)",
            f"{wipe['keys_per_s']:,.0f}",
            verdict(ok["repair"], f">= {REPAIR_TARGET:,.0f}"),
        ),
        ("repairs/s (serving until all)", f"{wipe['keys_per_s_from_serving']:,.0f}"),
        (
            "sampled keys below 3 replicas afterwards",
            f"{wipe['sampled_short']} of {wipe['sampled']}",
        ),
        ("foreground errors (mix, fold)", f"{r['fg_errors']}, {r['fold_errors']}"),
        ("whole run, s", f"{r['run_s']:.0f}"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for failure in r["fold_failures"][:3]:
        console.print(f"[red]fold failed:[/red] {failure}")
    return all(ok.values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=200_000, help="objects loaded before the wipe")
    parser.add_argument("--value-size", type=int, default=1024, help="value bytes")
    parser.add_argument(
        "--tick-ms", type=int, default=1000, help="[aae] tick_ms of the AAE cluster"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="load and foreground workers")
    parser.add_argument("--processes", type=int, default=2, help="foreground load processes")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each comparison")
    parser.add_argument("--sample", type=int, default=3000, help="keys whose replicas are checked")
    parser.add_argument("--insync-keys", type=int, default=5000, help="keys of the in-sync run")
    parser.add_argument("--repair-timeout", type=float, default=1800.0, help="seconds")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (node logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The nodes run this checkout's spinekv, installed or not.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    started = datetime.now().astimezone()
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    console.print(f"spinekv anti-entropy benchmark {started:%Y-%m-%d %H:%M %Z}: {params}")
    folder = Path(tempfile.mkdtemp(prefix="spinekv-aae-"))
    try:
        result = measure(args, folder)
    finally:
        if args.keep:
            console.print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    met = print_table(result, args)
    if args.json is not None:
        report = {"date": started.isoformat(timespec="seconds"), "parameters": params} | result
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        console.print(f"wrote {args.json}")
    return 0 if met else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
