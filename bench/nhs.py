"""The NHS workload (basho_bench's NHS mix) against the record API, with raw Riak GETs beside it.

Starts a 5-node cluster in a temp dir, preloads synthetic patients with `spinekv load-demo`,
then runs three timed phases with the same load generator:

1. mix: basho_bench's NHS weights over the record API (get 1000, update with 2i 250, put new
   50, get recent 200, 2i query by postcode 3, 2i query by birth date 1), keys 80/20 hot/cold;
2. record GET: only GET /Patient/{nhs};
3. raw GET: only GET /types/records/buckets/patients/keys/{nhs}, the same keys on the Riak API.

The ratio of 2 to 3 is what the record layer (auth, JSON, sibling merge, FHIR) costs a read.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import datetime as dt
import itertools
import json
import multiprocessing
import os
import platform
import queue
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import aiohttp
import uvloop
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import percentile
from run import Cluster, _http_ports, _spinekv

from spinekv.records import demo
from spinekv.security.secrets import hash_secret
from tests.support import write_cluster_toml

TOKEN = "bench-clinical-token"
# The clinical role for the record API, and a grant naming the records type for the raw GETs
# (the KV API reaches the record API's type only with one).
USERS = (
    f'[[user]]\nname = "bench"\nrole = "clinical"\ntoken_hash = "{hash_secret(TOKEN)}"\n'
    'grants = [{ on = "records", permissions = ["get"] }]\n'
)
PDS = "/personal-demographics/FHIR/R4"
RAW = "/types/records/buckets/patients/keys"
# basho_bench's NHS config: operation -> weight.
NHS_MIX = {
    "get": 1000,
    "update_2i": 250,
    "put_new": 50,
    "get_recent": 200,
    "query_postcode": 3,
    "query_dob": 1,
}
HOT_SHARE = 0.2  # the hot fifth of the keys ...
HOT_TRAFFIC = 0.8  # ... takes four fifths of the reads and updates
RECENT = 100  # "get recent" reads one of the last this many patients created
_GRACE = 30.0  # seconds a load process may overrun its phase before it is given up on

# Wide enough for the tables when the output is a file or a pipe (rich assumes 80 columns).
console = Console() if sys.stdout.isatty() else Console(width=110)


# ---------------------------------------------------------------- the population


@dataclass(frozen=True)
class Key:
    """What the workload needs to know of one preloaded patient."""

    nhs: str
    family: str
    birth_date: str
    postcode: str


def population_keys(seed: int, count: int, today: dt.date, scr_share: float) -> list[Key]:
    """The patients `spinekv load-demo` loads with these settings (same seed, same people)."""
    keys = []
    for person in itertools.islice(demo.population(seed, today, scr_share), count):
        p = person.patient
        keys.append(
            Key(person.nhs, p["name"][0]["family"], p["birthDate"], p["address"][0]["postalCode"])
        )
    return keys


# ---------------------------------------------------------------- one load process


@dataclass(frozen=True)
class Phase:
    """One timed phase: which operations (with weights), where, how hard and for how long."""

    name: str
    ops: dict[str, int]
    urls: list[str]
    keys: list[Key]
    concurrency: int
    duration: float
    warmup: float
    timeout: float
    seed: int
    today: dt.date


class Worker:
    """The operations of one load process. Each answers None when it succeeded, "conflict" for
    an update that lost the race for its version (409), or else what went wrong."""

    def __init__(self, phase: Phase, index: int, session: aiohttp.ClientSession) -> None:
        self.phase = phase
        self.session = session
        self.rng = Random(phase.seed * 1000 + index)
        # Round robin over the nodes, each process starting at its own.
        self.urls = itertools.cycle(phase.urls[index:] + phase.urls[:index])
        self.hot = phase.keys[: max(1, int(len(phase.keys) * HOT_SHARE))]
        # The newest patients: the last preloaded ones until this process creates its own.
        self.recent = deque((k.nhs for k in phase.keys[-RECENT:]), maxlen=RECENT)
        self.practices = demo.practices(Random(phase.seed))
        # Queries sent, and those that found the patient they were made from (whose postcode
        # an update may have changed since).
        self.queries: Counter[str] = Counter()
        self.matched: Counter[str] = Counter()

    def key(self) -> Key:
        if self.rng.random() < HOT_TRAFFIC:
            return self.rng.choice(self.hot)
        return self.rng.choice(self.phase.keys)

    def headers(self, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": str(uuid.uuid4()), **more}

    async def _get(self, url: str, params: Any = None) -> tuple[str | None, Any, str]:
        """(error, JSON body, ETag) of a record API GET."""
        async with self.session.get(url, params=params, headers=self.headers()) as resp:
            body = await resp.read()
            if resp.status != 200:
                return f"GET {resp.status}", None, ""
            return None, json.loads(body), resp.headers.get("ETag", "")

    async def get(self) -> str | None:
        return (await self._get(f"{next(self.urls)}{PDS}/Patient/{self.key().nhs}"))[0]

    async def get_recent(self) -> str | None:
        nhs = self.rng.choice(self.recent)
        return (await self._get(f"{next(self.urls)}{PDS}/Patient/{nhs}"))[0]

    async def raw_get(self) -> str | None:
        url = f"{next(self.urls)}{RAW}/{self.key().nhs}"
        async with self.session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            await resp.read()
            # 300: siblings not merged yet (the record layer merges them when it reads).
            return None if resp.status in (200, 300) else f"GET {resp.status}"

    async def update_2i(self) -> str | None:
        """Read a patient, then PATCH its postcode (a 2i term) with If-Match: its version."""
        nhs = self.key().nhs
        base = next(self.urls)
        error, resource, etag = await self._get(f"{base}{PDS}/Patient/{nhs}")
        if error is not None:
            return error
        outward = resource["address"][0]["postalCode"].split()[0]
        new = demo.postcode(self.rng, outward)
        body = {"patches": [{"op": "replace", "path": "/address/0/postalCode", "value": new}]}
        headers = self.headers(**{"If-Match": etag, "Content-Type": "application/json-patch+json"})
        async with self.session.patch(
            f"{base}{PDS}/Patient/{nhs}", data=json.dumps(body), headers=headers
        ) as resp:
            await resp.read()
            if resp.status == 409:  # a concurrent update of this (hot) patient won the version
                return "conflict"
            return None if resp.status == 200 else f"PATCH {resp.status}"

    async def put_new(self) -> str | None:
        """Create a patient without a number: the cluster allocates one."""
        resource = demo.patient(self.rng, None, self.phase.today, self.practices)
        headers = self.headers(**{"Content-Type": "application/fhir+json"})
        url = f"{next(self.urls)}{PDS}/Patient"
        async with self.session.post(url, data=json.dumps(resource), headers=headers) as resp:
            body = await resp.read()
            if resp.status != 201:
                return f"POST {resp.status}"
            self.recent.append(json.loads(body)["id"])
            return None

    async def _query(self, op: str, key: Key, params: list[tuple[str, str]]) -> str | None:
        error, bundle, _ = await self._get(f"{next(self.urls)}{PDS}/Patient", params)
        self.queries[op] += 1
        if error is None and any(e["resource"]["id"] == key.nhs for e in bundle["entry"]):
            self.matched[op] += 1
        return error

    async def query_postcode(self) -> str | None:
        key = self.rng.choice(self.phase.keys)
        params = [
            ("family", key.family),
            ("birthdate", f"eq{key.birth_date}"),
            ("address-postalcode", key.postcode),
        ]
        return await self._query("query_postcode", key, params)

    async def query_dob(self) -> str | None:
        key = self.rng.choice(self.phase.keys)
        born = dt.date.fromisoformat(key.birth_date)
        params = [
            ("family", key.family),
            ("birthdate", f"ge{born - dt.timedelta(days=365)}"),
            ("birthdate", f"le{min(born + dt.timedelta(days=365), self.phase.today)}"),
            ("_max-results", "50"),
        ]
        return await self._query("query_dob", key, params)


async def _drive(phase: Phase, index: int, workers: int, go: Any) -> dict:
    """Run this process's share of the phase; `go()` blocks until every process is ready."""
    names = list(phase.ops)
    cum_weights = list(itertools.accumulate(phase.ops.values()))
    latency = {op: array.array("d") for op in names}
    errors: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    clock = time.monotonic
    connector = aiohttp.TCPConnector(limit=workers, limit_per_host=0)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=phase.timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        worker = Worker(phase, index, session)
        calls = {op: getattr(worker, op) for op in names}
        go()
        measure_from = clock() + phase.warmup
        stop_at = measure_from + phase.duration

        async def loop() -> None:
            while clock() < stop_at:
                op = worker.rng.choices(names, cum_weights=cum_weights)[0]
                t0 = clock()
                try:
                    outcome = await calls[op]()
                except TimeoutError:
                    outcome = "timeout"
                except aiohttp.ClientError as exc:
                    outcome = type(exc).__name__
                t1 = clock()
                # Errors and conflicts count over the whole phase, warm-up included.
                if outcome == "conflict":
                    conflicts[op] += 1
                elif outcome is not None:
                    errors[f"{op}: {outcome}"] += 1
                elif measure_from <= t0 and t1 < stop_at:
                    latency[op].append(t1 - t0)

        await asyncio.gather(*(loop() for _ in range(workers)))
    return {
        "latency": {op: v.tobytes() for op, v in latency.items()},
        "errors": dict(errors),
        "conflicts": dict(conflicts),
        "queries": dict(worker.queries),
        "matched": dict(worker.matched),
    }


def _process_main(phase: Phase, index: int, workers: int, barrier: Any, results: Any) -> None:
    try:
        out = uvloop.run(_drive(phase, index, workers, lambda: barrier.wait(_GRACE)))
    except BaseException as exc:
        results.put((index, {"fatal": f"{type(exc).__name__}: {exc}"}))
        raise
    results.put((index, out))


# ---------------------------------------------------------------- a phase over processes


@dataclass
class OpResult:
    ops: int
    ops_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int = 0
    conflicts: int = 0
    # Queries (warm-up included): how many were sent, and found the patient they were made from.
    queries: int | None = None
    matched: int | None = None


@dataclass
class PhaseResult:
    name: str
    seconds: float
    per_op: dict[str, OpResult]
    total: OpResult
    error_kinds: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_phase(phase: Phase, processes: int) -> PhaseResult:
    """Run `phase` in `processes` load processes that start together; merge what they saw."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    shares = [
        phase.concurrency // processes + (i < phase.concurrency % processes)
        for i in range(processes)
    ]
    procs = [
        ctx.Process(target=_process_main, args=(phase, i, shares[i], barrier, results), daemon=True)
        for i in range(processes)
    ]
    outs: list[dict] = []
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + phase.warmup + phase.duration + phase.timeout + 2 * _GRACE
        while len(outs) < processes:
            try:
                index, out = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"phase {phase.name}: load processes did not finish") from None
            if "fatal" in out:
                raise RuntimeError(f"phase {phase.name}: load process {index}: {out['fatal']}")
            outs.append(out)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    return _merge(phase, outs)


def _stats(values: list[float], seconds: float) -> OpResult:
    """Throughput and latency percentiles (None without samples) of sorted latencies (s)."""
    return OpResult(
        ops=len(values),
        ops_per_s=len(values) / seconds,
        p50_ms=percentile(values, 50) * 1000 if values else None,
        p99_ms=percentile(values, 99) * 1000 if values else None,
    )


def _merge(phase: Phase, outs: list[dict]) -> PhaseResult:
    errors: Counter[str] = Counter()  # "op: kind" -> count
    conflicts: Counter[str] = Counter()
    queries: Counter[str] = Counter()
    matched: Counter[str] = Counter()
    samples: dict[str, array.array] = {op: array.array("d") for op in phase.ops}
    for out in outs:
        errors.update(out["errors"])
        conflicts.update(out["conflicts"])
        queries.update(out["queries"])
        matched.update(out["matched"])
        for op, raw in out["latency"].items():
            samples[op].frombytes(raw)
    per_op = {}
    for op, values in samples.items():
        result = _stats(sorted(values), phase.duration)
        result.errors = sum(n for kind, n in errors.items() if kind.split(":")[0] == op)
        result.conflicts = conflicts[op]
        if op.startswith("query"):
            result.queries, result.matched = queries[op], matched[op]
        per_op[op] = result
    total = _stats(sorted(itertools.chain(*samples.values())), phase.duration)
    total.errors = sum(errors.values())
    total.conflicts = sum(conflicts.values())
    return PhaseResult(phase.name, phase.duration, per_op, total, dict(errors))


# ---------------------------------------------------------------- the cluster and the run


class RecordCluster(Cluster):
    """bench/run.py's throwaway cluster, with a clinical [[user]] for the record API."""

    def start(self) -> None:
        self.config = write_cluster_toml(
            self.folder,
            self.nodes,
            n_val=self.n_val,
            max_object_size=self.max_object_size,
            extra=USERS,
        )
        self.ports = _http_ports(self.config)
        done = self._cli("up", "--detach", timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"spinekv up failed ({done.returncode}): {done.stdout}{done.stderr}")

    def load_demo(self, patients: int, seed: int, scr_share: float, concurrency: int) -> None:
        """`spinekv load-demo` (its progress bar shows here); raises if it failed."""
        assert self.config is not None
        argv = [
            *_spinekv(),
            "--config",
            str(self.config),
            "load-demo",
            f"--patients={patients}",
            f"--seed={seed}",
            f"--scr-share={scr_share}",
            f"--concurrency={concurrency}",
            f"--token={TOKEN}",
        ]
        done = subprocess.run(argv, cwd=self.folder, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"spinekv load-demo failed ({done.returncode})")


def print_mix(result: PhaseResult, title: str) -> None:
    table = Table(title=title)
    for column in ("operation", "weight", "ops", "ops/s", "p50 ms", "p99 ms", "errors", "notes"):
        table.add_column(column, justify="left" if column in ("operation", "notes") else "right")
    rows = [*((op, NHS_MIX[op], r) for op, r in result.per_op.items()), ("total", "", result.total)]
    for name, weight, r in rows:
        notes = []
        if r.conflicts:
            notes.append(f"{r.conflicts} lost the version race (409)")
        if r.queries:
            notes.append(f"{r.matched} of {r.queries} found their patient")
        table.add_row(
            name,
            str(weight),
            f"{r.ops:,}",
            f"{r.ops_per_s:,.0f}",
            _ms(r.p50_ms),
            _ms(r.p99_ms),
            f"[red]{r.errors}[/red]" if r.errors else "0",
            "; ".join(notes),
        )
    console.print(table)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_gets(record: PhaseResult, raw: PhaseResult, ratio: float, title: str) -> None:
    table = Table(title=title)
    for column in ("GET by NHS number", "ops/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(column, justify="left" if column.startswith("GET") else "right")
    for name, r in (
        (f"record API: GET {PDS}/Patient/{{nhs}}", record.total),
        (f"raw Riak API: GET {RAW}/{{nhs}}", raw.total),
    ):
        table.add_row(
            name,
            f"{r.ops_per_s:,.0f}",
            _ms(r.p50_ms),
            _ms(r.p99_ms),
            f"[red]{r.errors}[/red]" if r.errors else "0",
        )
    console.print(table)
    console.print(f"record GET / raw GET throughput: [bold]{ratio:.1%}[/bold]")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000, help="preloaded population")
    parser.add_argument("--seed", type=int, default=1, help="population and workload seed")
    parser.add_argument("--scr-share", type=float, default=0.0, help="preload SCRs for this share")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent requests")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout (s)")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not 1 <= args.processes <= args.concurrency:
        parser.error("need 1 <= --processes <= --concurrency")
    if args.patients < 1:
        parser.error("--patients must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now().astimezone()
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    console.print(f"spinekv NHS workload {started:%Y-%m-%d %H:%M %Z}: {params}")
    today = dt.date.today()
    keys = population_keys(args.seed, args.patients, today, args.scr_share)
    with tempfile.TemporaryDirectory(prefix="spinekv-nhs-") as tmp:
        cluster = RecordCluster(Path(tmp), nodes=args.nodes)
        try:
            cluster.start()
            console.print(f"cluster {', '.join(cluster.urls)}")
            cluster.load_demo(args.patients, args.seed, args.scr_share, args.concurrency)

            def phase(name: str, ops: dict[str, int]) -> PhaseResult:
                spec = Phase(
                    name=name,
                    ops=ops,
                    urls=cluster.urls,
                    keys=keys,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    timeout=args.timeout,
                    seed=args.seed,
                    today=today,
                )
                result = run_phase(spec, args.processes)
                console.print(
                    f"[dim]{name}: {result.total.ops_per_s:,.0f} ops/s, errors"
                    f" {result.total.errors} {result.error_kinds or ''}[/dim]"
                )
                return result

            mix = phase("NHS mix", NHS_MIX)
            record = phase("record GET", {"get": 1})
            raw = phase("raw GET", {"raw_get": 1})
        finally:
            cluster.stop()

    ratio = record.total.ops_per_s / raw.total.ops_per_s if raw.total.ops_per_s else float("nan")
    setting = (
        f"{args.nodes} nodes (N=3, R=W=quorum), {args.patients:,} patients,"
        f" concurrency {args.concurrency} over {args.processes} load processes,"
        f" {args.duration:g}s measured, {os.cpu_count()} cores shared"
    )
    print_mix(mix, f"NHS mix over the record API: {setting}")
    print_gets(record, raw, ratio, f"GET by NHS number, record API vs raw Riak API: {setting}")
    if args.json is not None:
        report = {
            "date": started.isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "parameters": params,
            "phases": {r.name: r.to_dict() for r in (mix, record, raw)},
            "record_over_raw_get": ratio,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 1 if any(r.total.errors for r in (mix, record, raw)) else 0


if __name__ == "__main__":
    sys.exit(main())
