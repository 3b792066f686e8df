"""Seeded runs of the simulated cluster: client workloads, a nemesis, and their verdict."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from spinekv.transport.sim import LinkFaults
from tests.history import History, check_register, check_set

from .cluster import SimCluster
from .convergence import QUIET_SECONDS, Key, diverged, gather

SET_KEYS = ("s0", "s1", "s2")
REGISTER_KEYS = ("r0", "r1", "r2", "r3")
TYPE, BUCKET = "sets", "jepsen"


def _decode_set(value: bytes) -> set[str]:
    return set(msgpack.unpackb(value, raw=False))


def _encode_set(elements: set[str]) -> bytes:
    return msgpack.packb(sorted(elements), use_bin_type=True)


@dataclass
class RunResult:
    seed: int
    workload: str
    valid: bool
    summary: str
    digest: str
    faults: Counter = field(default_factory=Counter)
    ops: int = 0
    acknowledged: int = 0
    virtual_seconds: float = 0.0
    duration: float = 20.0
    history: History | None = None
    fault_log: list[tuple[float, str]] = field(default_factory=list)
    # Why keys' primaries still differ after heal and a quiet period with no reads; [] if none.
    unconverged: list[str] = field(default_factory=list)

    def replay(self) -> str:
        return (
            f"python -m tests.sim.run --workload {self.workload} --seed {self.seed}"
            f" --duration {self.duration:g} --log"
        )


# ---------------------------------------------------------------- nemesis


async def nemesis(cluster: SimCluster, rng: random.Random, until: float, faults: Counter) -> None:
    """Every 1-4 virtual seconds, heal or inject one fault; at most two nodes down at once."""
    names = cluster.names
    while cluster.now < until:
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        if cluster.now >= until:
            break
        down = [n for n in names if n not in cluster.nodes]
        choice = rng.choice(["crash", "restart", "partition", "one-way", "isolate", "net", "heal"])
        if choice == "crash" and len(down) < 2:
            cluster.crash(rng.choice(cluster.up))
        elif choice in ("crash", "restart") and down:
            cluster.restart(rng.choice(down))
        elif choice == "partition":
            shuffled = rng.sample(names, len(names))
            cut = rng.randint(1, len(names) - 1)
            cluster.partition(sorted(shuffled[:cut]), sorted(shuffled[cut:]))
        elif choice == "one-way":
            a, b = rng.sample(names, 2)
            cluster.cut(a, b, both_ways=False)
        elif choice == "isolate":
            lone = rng.choice(names)
            cluster.partition([lone], [n for n in names if n != lone])
        elif choice == "net":
            cluster.network.faults = LinkFaults(
                delay=(0.0005, rng.choice([0.005, 0.05, 0.3])),
                drop=rng.choice([0.0, 0.02, 0.1]),
                duplicate=rng.choice([0.0, 0.05, 0.2]),
            )
            cluster.log.append((cluster.now, f"net {cluster.network.faults}"))
        else:
            choice = "heal"
            cluster.heal()
            cluster.network.faults = LinkFaults()
        faults[choice] += 1


# ---------------------------------------------------------------- workloads


async def _set_client(
    cluster: SimCluster,
    history: History,
    process: int,
    rng: random.Random,
    elements: Any,
    until: float,
    acked: set[Key],
) -> None:
    while cluster.now < until:
        await asyncio.sleep(rng.uniform(0.0, 0.1))
        key = rng.choice(SET_KEYS)
        node = rng.choice(cluster.names)
        element = next(elements)
        op = history.invoke(process, "add", element)
        read = await cluster.get(node, TYPE, BUCKET, key)
        if read.type != "ok":
            history.fail(op, f"read failed: {read.error}")
            continue
        current = set().union(*(_decode_set(v) for v in read.value))
        wrote = await cluster.put(
            node, TYPE, BUCKET, key, _encode_set(current | {element}), read.context or {}
        )
        history.finish(op, wrote.type, wrote.error)
        if wrote.type == "ok":
            acked.add((TYPE, BUCKET, key))


async def _register_client(
    cluster: SimCluster,
    history: History,
    process: int,
    rng: random.Random,
    values: Any,
    until: float,
    acked: set[Key],
) -> None:
    while cluster.now < until:
        await asyncio.sleep(rng.uniform(0.0, 0.1))
        key = rng.choice(REGISTER_KEYS)
        node = rng.choice(cluster.names)
        read = await cluster.get(node, TYPE, BUCKET, key)
        if read.type != "ok":
            continue  # nothing was written, so nothing to record
        saw = sorted(v.decode() for v in read.value)
        value = next(values)
        op = history.invoke(process, "write", {"key": key, "value": value, "saw": saw})
        wrote = await cluster.put(node, TYPE, BUCKET, key, value.encode(), read.context or {})
        history.finish(op, wrote.type, wrote.error)
        if wrote.type == "ok":
            acked.add((TYPE, BUCKET, key))


async def _final_reads(cluster: SimCluster, history: History, workload: str) -> None:
    """After heal and settle: read every key from all replicas (r = n_val)."""
    reader = 10_000
    node = cluster.names[0]
    n_val = cluster.config.n_val
    if workload == "set":
        op = history.invoke(reader, "read")
        seen: set[str] = set()
        for key in SET_KEYS:
            read = await cluster.get(node, TYPE, BUCKET, key, r=n_val, pr=n_val)
            if read.type != "ok":
                history.fail(op, f"final read of {key} failed: {read.error}")
                return
            seen |= set().union(*(_decode_set(v) for v in read.value))
        history.ok(op, seen)
        return
    for key in REGISTER_KEYS:
        op = history.invoke(reader, "read", key)
        read = await cluster.get(node, TYPE, BUCKET, key, r=n_val, pr=n_val)
        if read.type != "ok":
            history.fail(op, f"final read of {key} failed: {read.error}")
            continue
        history.ok(op, {"key": key, "values": sorted(v.decode() for v in read.value)})


def run_seed(
    seed: int,
    *,
    workload: str = "set",
    duration: float = 20.0,
    clients: int = 5,
    keep_history: bool = False,
    exchanges: bool = True,
    before_check: Callable[[SimCluster, set[Key]], None] | None = None,
) -> RunResult:
    """One whole simulated run; the same seed gives the same history, event for event.

    `before_check(cluster, acknowledged keys)` runs just before the convergence check
    (a test that the check can fail damages replicas there).
    """
    cluster = SimCluster(seed, exchanges=exchanges)
    rng = random.Random(cluster.rng.getrandbits(64))
    history = History(clock=lambda: cluster.now)
    faults: Counter = Counter()
    until = cluster.now + duration
    names = itertools.count()
    elements = (f"e{i}" for i in names)
    client = _set_client if workload == "set" else _register_client
    acked: set[Key] = set()

    async def main() -> None:
        runs = [nemesis(cluster, random.Random(rng.getrandbits(64)), until, faults)]
        runs += [
            client(cluster, history, p, random.Random(rng.getrandbits(64)), elements, until, acked)
            for p in range(clients)
        ]
        await asyncio.gather(*runs)

    try:
        cluster.run_until(main())
        cluster.heal_all()
        cluster.network.faults = LinkFaults()
        cluster.settle()
        # Anti-entropy alone, with no client reads to repair anything, must bring every
        # key's primaries together; checked before the final reads, which read-repair.
        cluster.run(QUIET_SECONDS)
        if before_check is not None:
            before_check(cluster, acked)
        unconverged = diverged(gather(cluster, acked))
        cluster.run_until(_final_reads(cluster, history, workload))
        result = check_set(history) if workload == "set" else check_register(history)
        acked = sum(1 for op in history.ops if op.type == "ok" and op.f in ("add", "write"))
        return RunResult(
            seed=seed,
            workload=workload,
            valid=result.valid,
            summary=result.summary(),
            digest=history.digest(),
            faults=faults,
            ops=sum(1 for op in history.ops if op.type == "invoke"),
            acknowledged=acked,
            virtual_seconds=cluster.now,
            duration=duration,
            history=history if keep_history else None,
            fault_log=list(cluster.log),
            unconverged=unconverged,
        )
    finally:
        cluster.close()
