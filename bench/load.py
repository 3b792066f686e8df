"""HTTP load generator: concurrent 1 KiB PUT/GET workers over one or more base URLs."""

from __future__ import annotations

import argparse
import array
import asyncio
import itertools
import json
import multiprocessing
import os
import queue
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import aiohttp
import uvloop
from yarl import URL

Op = Literal["get", "put", "mixed"]
DEFAULT_BUCKET = "bench"

# Seconds a load process may take beyond its phase before the parent gives up on it.
_GRACE = 30.0


def key_name(i: int) -> str:
    """The i-th key of the preloaded key space."""
    return f"k{i:08d}"


def _query(params: dict[str, str]) -> str:
    return ("?" + "&".join(f"{k}={v}" for k, v in params.items())) if params else ""


@dataclass(frozen=True)
class LoadSpec:
    """One measured phase: what to send, where, how hard and for how long."""

    urls: list[str]
    op: Op = "get"
    get_fraction: float = 0.5  # for op == "mixed"
    concurrency: int = 32
    duration: float | None = 10.0  # measured seconds; or None and `ops` instead
    ops: int | None = None  # a fixed number of measured ops (bounded by max_seconds)
    max_seconds: float = 300.0  # hard cap on the measured part of a fixed-op-count run
    warmup: float = 2.0
    keys: int = 10_000
    value_size: int = 1024
    bucket: str = DEFAULT_BUCKET
    get_params: dict[str, str] = field(default_factory=dict)
    put_params: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0  # client timeout per request
    processes: int = 1  # load generator processes; workers are split among them
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("at least one base URL is needed")
        if (self.duration is None) == (self.ops is None):
            raise ValueError("give exactly one of duration and ops")
        if self.op not in ("get", "put", "mixed"):
            raise ValueError(f"op {self.op!r}: expected get, put or mixed")
        if self.processes < 1 or self.concurrency < self.processes:
            raise ValueError("need 1 <= processes <= concurrency")

    def bound(self) -> float:
        """Seconds after which every load process has stopped by itself."""
        measured = self.duration if self.duration is not None else self.max_seconds
        return self.warmup + measured + self.timeout


@dataclass
class PhaseResult:
    """What one phase measured; latencies in milliseconds over successful measured ops."""

    op: str
    ops: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int  # all failed requests, warm-up and tail included
    error_kinds: dict[str, int]
    per_op: dict[str, dict[str, float]]  # "get"/"put": ops, ops_per_s, p50_ms, p99_ms
    concurrency: int
    processes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float] | array.array, q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100); NaN if empty."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


# ---------------------------------------------------------------- one load process


def _session(connections: int, timeout: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0, ttl_dns_cache=None)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )


def _url_table(spec: LoadSpec, params: dict[str, str]) -> list[list[URL]]:
    """urls[base][key]: prebuilt so the client does not parse a URL string per request."""
    q = _query(params)
    return [
        [
            URL(f"{base.rstrip('/')}/buckets/{spec.bucket}/keys/{key_name(i)}{q}", encoded=True)
            for i in range(spec.keys)
        ]
        for base in spec.urls
    ]


class _Recorder:
    """Per-process samples: latencies (s) of measured successes, and every error."""

    def __init__(self) -> None:
        self.latency = {"get": array.array("d"), "put": array.array("d")}
        self.errors: Counter[str] = Counter()


async def _one(
    session: aiohttp.ClientSession, kind: str, url: URL, value: bytes, value_size: int
) -> str | None:
    """Send one request; None if it succeeded, else the kind of error."""
    try:
        if kind == "get":
            async with session.get(url) as resp:
                body = await resp.read()
                if not 200 <= resp.status < 300:
                    return f"GET {resp.status}"
                if len(body) != value_size:
                    return f"GET body of {len(body)} bytes"
                return None
        async with session.put(
            url, data=value, headers={"Content-Type": "application/octet-stream"}
        ) as resp:
            await resp.read()
            return None if 200 <= resp.status < 300 else f"PUT {resp.status}"
    except TimeoutError:
        return f"{kind.upper()} timeout"
    except aiohttp.ClientError as exc:
        return f"{kind.upper()} {type(exc).__name__}"


async def _drive(spec: LoadSpec, index: int, workers: int, ops: int | None, go: Any) -> dict:
    """Run this process's share of the phase; `go()` blocks until the common start time."""
    rng = random.Random(None if spec.seed is None else spec.seed * 1000 + index)
    value = os.urandom(spec.value_size)
    gets = _url_table(spec, spec.get_params) if spec.op != "put" else []
    puts = _url_table(spec, spec.put_params) if spec.op != "get" else []
    nbases = len(spec.urls)
    rr = itertools.count(index)  # round-robin over base URLs, offset per process
    rec = _Recorder()
    remaining = ops
    clock = time.monotonic

    async with _session(workers, spec.timeout) as session:
        start_at = go()
        measure_from = start_at + spec.warmup
        if spec.duration is not None:
            stop_at = measure_from + spec.duration
        else:
            stop_at = measure_from + spec.max_seconds
        await asyncio.sleep(max(0.0, start_at - clock()))
        last_done = measure_from

        async def worker() -> None:
            nonlocal remaining, last_done
            while True:
                now = clock()
                if now >= stop_at:
                    return
                if remaining is not None and now >= measure_from:
                    if remaining <= 0:
                        return
                    remaining -= 1
                if spec.op == "mixed":
                    kind = "get" if rng.random() < spec.get_fraction else "put"
                else:
                    kind = spec.op
                table = gets if kind == "get" else puts
                url = table[next(rr) % nbases][rng.randrange(spec.keys)]
                t0 = clock()
                error = await _one(session, kind, url, value, spec.value_size)
                t1 = clock()
                if error is not None:
                    rec.errors[error] += 1
                elif measure_from <= t1 < stop_at and (remaining is None or t0 >= measure_from):
                    rec.latency[kind].append(t1 - t0)
                    last_done = max(last_done, t1)

        await asyncio.gather(*(worker() for _ in range(workers)))

    seconds = spec.duration if spec.duration is not None else last_done - measure_from
    return {
        "latency": {k: v.tobytes() for k, v in rec.latency.items()},
        "errors": dict(rec.errors),
        "seconds": seconds,
    }


def _process_main(
    spec: LoadSpec,
    index: int,
    workers: int,
    ops: int | None,
    ready: Any,
    go: Any,
    start_at: Any,
    results: Any,
) -> None:
    def wait_for_go() -> float:
        ready.put(index)
        if not go.wait(_GRACE):
            raise TimeoutError("no start signal from the parent")
        return start_at.value

    try:
        out = uvloop.run(_drive(spec, index, workers, ops, wait_for_go))
    except BaseException as exc:
        results.put((index, {"fatal": f"{type(exc).__name__}: {exc}"}))
        raise
    results.put((index, out))


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _await_ready(procs: list[Any], ready: Any) -> None:
    """Wait until every load process is set up; fail fast if one dies first."""
    deadline = time.monotonic() + _GRACE
    waiting = len(procs)
    while waiting:
        try:
            ready.get(timeout=0.2)
            waiting -= 1
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode is not None]
            if dead:
                raise RuntimeError(f"a load process exited early (exit codes {dead})") from None
            if time.monotonic() > deadline:
                raise RuntimeError("load processes did not get ready in time") from None


def run_phase(spec: LoadSpec) -> PhaseResult:
    """Run one phase in `spec.processes` load processes, all starting together; merge them."""
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    workers = _split(spec.concurrency, spec.processes)
    ops = _split(spec.ops, spec.processes) if spec.ops is not None else [None] * spec.processes
    procs = [
        ctx.Process(
            target=_process_main,
            args=(spec, i, workers[i], ops[i], ready, go, start_at, results),
            daemon=True,
        )
        for i in range(spec.processes)
    ]
    outs: dict[int, dict] = {}
    try:
        for p in procs:
            p.start()
        _await_ready(procs, ready)
        start_at.value = time.monotonic() + 0.2
        go.set()
        deadline = time.monotonic() + 0.2 + spec.bound() + _GRACE
        while len(outs) < len(procs):
            try:
                index, out = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(
                    f"load processes {sorted(set(range(len(procs))) - set(outs))} "
                    "did not finish in time"
                ) from None
            if "fatal" in out:
                raise RuntimeError(f"load process {index} failed: {out['fatal']}")
            outs[index] = out
    finally:
        for p in procs:
            if p.pid is None:
                continue
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    return _merge(spec, list(outs.values()))


def _merge(spec: LoadSpec, outs: list[dict]) -> PhaseResult:
    errors: Counter[str] = Counter()
    per_kind: dict[str, array.array] = {"get": array.array("d"), "put": array.array("d")}
    for out in outs:
        errors.update(out["errors"])
        for kind, raw in out["latency"].items():
            per_kind[kind].frombytes(raw)
    seconds = max(out["seconds"] for out in outs) or float("nan")
    per_op: dict[str, dict[str, float]] = {}
    for kind, values in per_kind.items():
        if values:
            s = sorted(values)
            per_op[kind] = {
                "ops": len(s),
                "ops_per_s": len(s) / seconds,
                "p50_ms": percentile(s, 50) * 1000,
                "p99_ms": percentile(s, 99) * 1000,
            }
    every = sorted(itertools.chain(*per_kind.values()))
    count = len(every)
    return PhaseResult(
        op=spec.op,
        ops=count,
        seconds=seconds,
        ops_per_s=count / seconds,
        p50_ms=percentile(every, 50) * 1000,
        p99_ms=percentile(every, 99) * 1000,
        mean_ms=(sum(every) / count * 1000) if count else float("nan"),
        max_ms=(every[-1] * 1000) if count else float("nan"),
        errors=sum(errors.values()),
        error_kinds=dict(errors),
        per_op=per_op,
        concurrency=spec.concurrency,
        processes=spec.processes,
    )


# ---------------------------------------------------------------- preload


async def _preload(
    urls: list[str],
    keys: int,
    value_size: int,
    concurrency: int,
    params: dict[str, str],
    bucket: str,
    timeout: float,
) -> Counter[str]:
    value = os.urandom(value_size)
    todo = iter(range(keys))
    errors: Counter[str] = Counter()
    q = _query(params)

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in todo:
            base = urls[i % len(urls)].rstrip("/")
            url = URL(f"{base}/buckets/{bucket}/keys/{key_name(i)}{q}", encoded=True)
            error = await _one(session, "put", url, value, value_size)
            if error is not None:
                errors[error] += 1

    async with _session(concurrency, timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return errors


def preload(
    urls: list[str],
    keys: int,
    value_size: int = 1024,
    *,
    concurrency: int = 32,
    params: dict[str, str] | None = None,
    bucket: str = DEFAULT_BUCKET,
    timeout: float = 10.0,
) -> None:
    """PUT every key of the key space once (so GETs hit); raises if any PUT failed."""
    errors = uvloop.run(
        _preload(urls, keys, value_size, concurrency, params or {}, bucket, timeout)
    )
    if errors:
        raise RuntimeError(f"preload: {sum(errors.values())} of {keys} PUTs failed: {errors}")


# ---------------------------------------------------------------- CLI


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{pair!r}: expected NAME=VALUE")
        out[name] = value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", action="append", required=True, help="base URL (repeatable)")
    parser.add_argument("--op", choices=["get", "put", "mixed"], default="get")
    parser.add_argument("--get-fraction", type=float, default=0.5, help="GET share for mixed")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--ops", type=int, help="measure a fixed op count instead of a duration")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--processes", type=int, default=1, help="load generator processes")
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout (s)")
    parser.add_argument("--param", action="append", default=[], help="query NAME=VALUE")
    parser.add_argument("--preload", action="store_true", help="PUT every key first")
    args = parser.parse_args(argv)
    params = _params(args.param)
    if args.preload:
        preload(args.url, args.keys, args.value_size, params=params, timeout=args.timeout)
    spec = LoadSpec(
        urls=args.url,
        op=args.op,
        get_fraction=args.get_fraction,
        concurrency=args.concurrency,
        duration=None if args.ops else args.duration,
        ops=args.ops,
        warmup=args.warmup,
        keys=args.keys,
        value_size=args.value_size,
        get_params=params,
        put_params=params,
        timeout=args.timeout,
        processes=args.processes,
    )
    result = run_phase(spec)
    json.dump(result.to_dict(), sys.stdout, indent=2)
    print()
    if result.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
