"""Side-by-side benchmark: the 5-node spinekv cluster against a bare aiohttp + LevelDB server."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import LoadSpec, PhaseResult, preload, run_phase

from tests.support import free_ports, write_cluster_toml

HOST = "127.0.0.1"
BARE_SERVER = Path(__file__).resolve().parent / "bare_server.py"
GET_TARGET = 0.25  # cluster GETs should reach this share of the bare server's throughput

console = Console()


# ---------------------------------------------------------------- targets


def _http_ports(cluster_toml: Path) -> list[int]:
    import tomllib

    with cluster_toml.open("rb") as fh:
        return [node["http_port"] for node in tomllib.load(fh)["node"]]


def _pinging(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=0.5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


@dataclass
class BareServer:
    """bench/bare_server.py in a child process."""

    folder: Path
    sync: bool = False
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def urls(self) -> list[str]:
        return [f"http://{HOST}:{self.port}"]

    def start(self, timeout: float = 30.0) -> None:
        self.port = free_ports(1)[0]
        log = (self.folder / "bare.log").open("ab")
        argv = [sys.executable, str(BARE_SERVER), "--port", str(self.port), "--data", "data"]
        self.proc = subprocess.Popen(
            [*argv, "--sync"] if self.sync else argv,
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _pinging(self.urls[0]):
            if self.proc.poll() is not None:
                raise RuntimeError(f"bare server exited ({self.proc.returncode}); see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare server did not answer within {timeout:.0f}s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _is_spinekv(pid: int) -> bool:
    """True if `pid` is alive and runs spinekv (a stale pid file may name a reused pid)."""
    try:
        return b"spinekv" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _spinekv() -> list[str]:
    exe = shutil.which("spinekv")
    return [exe] if exe else [sys.executable, "-m", "spinekv"]


@dataclass
class Cluster:
    """A throwaway local cluster, run with `spinekv up --detach` and `spinekv down`."""

    folder: Path
    nodes: int = 5
    n_val: int = 3
    max_object_size: int = 65536
    config: Path | None = None
    ports: list[int] = field(default_factory=list)
    # A checkout whose own tests/support.py writes the cluster.toml (None: this one's), so a
    # baseline from before a config change gets a file it can read.
    tree: Path | None = None
    extra: str = ""  # more cluster.toml, e.g. an [aae] table (this checkout's file only)

    @property
    def urls(self) -> list[str]:
        return [f"http://{HOST}:{p}" for p in self.ports]

    def _cli(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        assert self.config is not None
        return subprocess.run(
            [*_spinekv(), "--config", str(self.config), *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _write_config(self) -> Path:
        if self.tree is None:
            return write_cluster_toml(
                self.folder,
                self.nodes,
                n_val=self.n_val,
                max_object_size=self.max_object_size,
                extra=self.extra,
            )
        code = (
            "import sys; from pathlib import Path; from tests.support import write_cluster_toml; "
            f"print(write_cluster_toml(Path({str(self.folder)!r}), {self.nodes}, "
            f"n_val={self.n_val}, max_object_size={self.max_object_size}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=self.tree,
            env={**os.environ, "PYTHONPATH": str(self.tree)},
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(done.stdout.strip())

    def start(self) -> None:
        self.config = self._write_config()
        self.ports = _http_ports(self.config)
        done = self._cli("up", "--detach", timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"spinekv up failed ({done.returncode}): {done.stdout}{done.stderr}")

    def pids(self) -> list[int]:
        pids = []
        for pid_file in sorted((self.folder / "nodes").glob("*/node.pid")):
            with contextlib.suppress(ValueError, OSError):
                pids.append(int(pid_file.read_text().strip()))
        return pids

    def stop(self) -> None:
        """`spinekv down`; if that fails or leaves nodes behind, kill their pids."""
        if self.config is None:
            return
        try:
            done = self._cli("down", timeout=120)
            if done.returncode != 0:
                console.print(f"[red]spinekv down failed ({done.returncode})[/red] {done.stderr}")
        except (OSError, subprocess.SubprocessError) as exc:
            console.print(f"[red]spinekv down failed: {exc}[/red]")
        for pid in self.pids():
            if not _is_spinekv(pid):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                console.print(f"[yellow]killed leftover node pid {pid}[/yellow]")


# ---------------------------------------------------------------- the run


@dataclass
class Target:
    name: str
    urls: list[str]
    get_params: dict[str, str]
    put_params: dict[str, str]


def _spec(args: argparse.Namespace, target: Target, op: str) -> LoadSpec:
    return LoadSpec(
        urls=target.urls,
        op=op,  # type: ignore[arg-type]
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        keys=args.keys,
        value_size=args.value_size,
        get_params=target.get_params,
        put_params=target.put_params,
        timeout=args.timeout,
        processes=args.processes,
    )


def measure(args: argparse.Namespace, targets: list[Target]) -> dict[str, list[PhaseResult]]:
    """Every round runs each phase on each target, alternating which target goes first."""
    results: dict[str, list[PhaseResult]] = {}
    for rnd in range(args.rounds):
        order = targets if rnd % 2 == 0 else targets[::-1]
        for op in args.phases:
            for target in order:
                result = run_phase(_spec(args, target, op))
                results.setdefault(f"{target.name} {op}", []).append(result)
                style = "red" if result.errors else "dim"
                console.print(
                    f"[{style}]round {rnd + 1}/{args.rounds} {target.name:>7} {op.upper():<5}"
                    f" {result.ops_per_s:9,.0f} ops/s  p50 {result.p50_ms:6.2f} ms"
                    f"  p99 {result.p99_ms:6.2f} ms  errors {result.errors}"
                    f" {result.error_kinds or ''}[/{style}]"
                )
    return results


def summarise(results: dict[str, list[PhaseResult]]) -> dict[str, dict[str, Any]]:
    """Medians over rounds of ops/s, p50 and p99; errors summed."""
    out = {}
    for key, rounds in results.items():
        out[key] = {
            "ops_per_s": statistics.median(r.ops_per_s for r in rounds),
            "p50_ms": statistics.median(r.p50_ms for r in rounds),
            "p99_ms": statistics.median(r.p99_ms for r in rounds),
            "errors": sum(r.errors for r in rounds),
            "error_kinds": _sum_kinds(r.error_kinds for r in rounds),
            "rounds_ops_per_s": [r.ops_per_s for r in rounds],
        }
    return out


def _sum_kinds(kinds: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for k in kinds:
        for name, n in k.items():
            total[name] = total.get(name, 0) + n
    return total


def ratios(summary: dict[str, dict[str, Any]], phases: list[str]) -> dict[str, float]:
    return {
        op: summary[f"cluster {op}"]["ops_per_s"] / summary[f"bare {op}"]["ops_per_s"]
        for op in phases
        if summary[f"bare {op}"]["ops_per_s"] > 0
    }


def print_table(summary: dict[str, dict[str, Any]], ratio: dict[str, float], title: str) -> None:
    table = Table(title=title)
    table.add_column("target")
    table.add_column("phase")
    table.add_column("ops/s (median)", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("ops/s per round", justify="right")
    for key, s in summary.items():
        target, op = key.split()
        table.add_row(
            target,
            op.upper(),
            f"{s['ops_per_s']:,.0f}",
            f"{s['p50_ms']:.2f}",
            f"{s['p99_ms']:.2f}",
            f"[red]{s['errors']}[/red]" if s["errors"] else "0",
            " ".join(f"{x:,.0f}" for x in s["rounds_ops_per_s"]),
        )
    console.print(table)
    for op, value in ratio.items():
        line = f"cluster/bare {op.upper()} throughput: {value:.1%}"
        if op == "get":
            verdict = "[green]meets[/green]" if value >= GET_TARGET else "[red]misses[/red]"
            line += f"  ({verdict} the {GET_TARGET:.0%} target)"
        console.print(line)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent requests")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--keys", type=int, default=10_000, help="preloaded key space")
    parser.add_argument("--value-size", type=int, default=1024, help="value bytes")
    parser.add_argument(
        "--processes", type=int, default=2, help="load generator processes (both targets)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout (s)")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--n-val", type=int, default=3)
    parser.add_argument("--r", default="2", help="cluster GET quorum")
    parser.add_argument("--w", default="2", help="cluster PUT quorum")
    parser.add_argument(
        "--dw", help="cluster PUT durable quorum (default: the bucket's, quorum; dw > 0 fsyncs)"
    )
    parser.add_argument("--bare-sync", action="store_true", help="the bare server fsyncs every put")
    parser.add_argument(
        "--phases", default="get,put", help="comma-separated, in order: get, put, mixed"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now().astimezone()
    params = {k: v for k, v in vars(args).items() if k != "json"}
    params["load_generator"] = f"{args.processes} process(es), aiohttp client on uvloop"
    console.print(f"spinekv benchmark {started:%Y-%m-%d %H:%M %Z}: {params}")
    with tempfile.TemporaryDirectory(prefix="spinekv-bench-") as tmp:
        bare = BareServer(Path(tmp) / "bare", sync=args.bare_sync)
        cluster = Cluster(
            Path(tmp) / "cluster",
            nodes=args.nodes,
            n_val=args.n_val,
            max_object_size=max(65536, 2 * args.value_size),
        )
        bare.folder.mkdir()
        cluster.folder.mkdir()
        try:
            bare.start()
            cluster.start()
            console.print(f"bare server {bare.urls[0]}; cluster {', '.join(cluster.urls)}")
            t0 = time.monotonic()
            preload(bare.urls, args.keys, args.value_size, concurrency=args.concurrency)
            preload(
                cluster.urls,
                args.keys,
                args.value_size,
                concurrency=args.concurrency,
                params={"w": "all"},
            )
            console.print(f"preloaded {args.keys:,} keys on each in {time.monotonic() - t0:.1f}s")
            cluster_put = {"w": args.w} | ({"dw": args.dw} if args.dw is not None else {})
            targets = [
                Target("bare", bare.urls, {}, {}),
                Target("cluster", cluster.urls, {"r": args.r}, cluster_put),
            ]
            results = measure(args, targets)
        finally:
            bare.stop()
            cluster.stop()

    summary = summarise(results)
    ratio = ratios(summary, args.phases)
    cores = os.cpu_count()
    dw = f", DW={args.dw}" if args.dw is not None else ""
    fsync = " (fsync)" if args.bare_sync else ""
    title = (
        f"spinekv {args.nodes} nodes (N={args.n_val}, R={args.r}, W={args.w}{dw}) vs bare"
        f" aiohttp + LevelDB{fsync}; {args.value_size} B values, concurrency {args.concurrency},"
        f" {args.duration:g}s x {args.rounds} rounds, {cores} cores shared"
    )
    print_table(summary, ratio, title)
    if args.json is not None:
        report = {
            "date": started.isoformat(timespec="seconds"),
            "machine": {
                "cpus": cores,
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "parameters": params,
            "summary": summary,
            "ratios": ratio,
            "rounds": {k: [r.to_dict() for r in v] for k, v in results.items()},
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 1 if any(s["errors"] for s in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
