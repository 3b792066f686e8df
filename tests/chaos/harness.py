"""One chaos run: cluster up, load under a seeded nemesis, heal, wait for quiet, judge the set."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.history import History, SetResult, check_set
from tests.support import eventually

from .cluster import ChaosCluster
from .nemesis import Fault, FaultEvent, Firewall, Nemesis, plan_faults, require_nft
from .workload import SetWorkload, WorkloadStats, final_read


@contextlib.contextmanager
def running_cluster(folder: Path) -> Iterator[tuple[ChaosCluster, Firewall]]:
    """Five nodes on 127.0.0.11-15 and our nft table; afterwards, whatever happened, every
    node pid started here is SIGCONTed and SIGKILLed and the table is deleted."""
    require_nft()  # fail loudly before starting anything
    cluster = ChaosCluster(folder)
    firewall = Firewall(cluster.host)
    try:
        firewall.heal()
        cluster.up()
        yield cluster, firewall
    finally:
        try:
            firewall.heal()
        finally:
            cluster.kill_everything()


@dataclass(frozen=True)
class ChaosReport:
    seed: int
    result: SetResult
    stats: WorkloadStats
    injected: Counter
    shapes: Counter
    events: list[FaultEvent]
    wall: float  # seconds from the first fault window to the verdict
    quiet_after: float  # seconds from the end of load until the cluster was quiet


class ChaosRun:
    """Everything one seed decides: the fault plan, the workload's choices, the history."""

    def __init__(
        self,
        cluster: ChaosCluster,
        firewall: Firewall,
        seed: int,
        duration: float,
        *,
        workers: int = 6,
        keys: int = 3,
        pace: float = 0.05,
        gap: tuple[float, float] = (2.0, 5.0),
        length: tuple[float, float] = (3.0, 8.0),
        quiet_timeout: float = 120.0,
    ) -> None:
        self.cluster = cluster
        self.seed = seed
        self.duration = duration
        self.quiet_timeout = quiet_timeout
        rng = random.Random(seed)
        self.history = History(clock=time.monotonic)
        self.plan: list[Fault] = plan_faults(
            random.Random(rng.getrandbits(64)), cluster.names, duration, gap=gap, length=length
        )
        self.nemesis = Nemesis(cluster, firewall)
        self.workload = SetWorkload(
            [cluster.url(n) for n in cluster.names],
            self.history,
            random.Random(rng.getrandbits(64)),
            keys=keys,
            workers=workers,
            pace=pace,
        )
        self._reader = random.Random(rng.getrandbits(64)).choice(cluster.names)
        self.phase = "starting"
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    async def execute(self) -> ChaosReport:
        self.t0 = self.nemesis.t0 = time.monotonic()
        until = self.t0 + self.duration
        self.phase = "load + faults"
        nemesis = asyncio.ensure_future(self.nemesis.run(self.plan, self.duration))
        try:
            await self.workload.run(until)
        except BaseException:
            nemesis.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await nemesis
            raise
        self.phase = "healing"
        await nemesis  # it heals everything once the schedule is over
        load_done = time.monotonic()
        self.phase = "waiting for quiet"
        await wait_quiet(self.cluster, self.quiet_timeout)
        quiet_after = time.monotonic() - load_done
        self.phase = f"final read from {self._reader}"
        read = self.history.invoke(self.workload.workers, "read")
        elements = await final_read(
            self.cluster.url(self._reader), self.workload.keys, time.monotonic() + 30
        )
        self.history.ok(read, frozenset(elements))
        self.phase = "done"
        return ChaosReport(
            seed=self.seed,
            result=check_set(self.history),
            stats=self.workload.stats,
            injected=self.nemesis.injected,
            shapes=self.nemesis.shapes,
            events=self.nemesis.events,
            wall=self.elapsed(),
            quiet_after=quiet_after,
        )


async def cluster_status(cluster: ChaosCluster) -> dict[str, dict | str]:
    """Each node's /admin/status, or why it did not answer."""
    out: dict[str, dict | str] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for name in cluster.names:
            try:
                async with session.get(cluster.url(name) + "/admin/status") as resp:
                    out[name] = await resp.json() if resp.status == 200 else f"HTTP {resp.status}"
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                out[name] = f"{type(exc).__name__} {exc}"
    return out


def quiet_problems(cluster: ChaosCluster, statuses: dict[str, dict | str]) -> list[str]:
    """Why the cluster is not quiet: a node not answering, a member seen down, handoff."""
    members = cluster.config.members()
    problems = []
    for name, status in statuses.items():
        if isinstance(status, str):
            problems.append(f"{name} does not answer: {status}")
            continue
        down = [m for m in members if not status["members"].get(m, {}).get("up")]
        if down:
            problems.append(f"{name} sees {','.join(down)} down")
        handoff = status["handoff"]
        if handoff["pending"] or handoff["active"]:
            problems.append(
                f"{name} handoff: {len(handoff['pending'])} pending,"
                f" {len(handoff['active'])} active"
            )
    return problems


async def wait_quiet(cluster: ChaosCluster, timeout: float) -> None:
    """Poll until every node answers, sees every member up, and no handoff is pending."""

    async def quiet() -> bool:
        problems = quiet_problems(cluster, await cluster_status(cluster))
        assert not problems, "; ".join(problems)
        return True

    await eventually(
        quiet, what="the cluster to be quiet after heal", timeout=timeout, interval=0.25
    )
