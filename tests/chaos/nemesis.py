"""The nemesis: SIGKILL/restart, SIGSTOP/SIGCONT and nftables link cuts against real nodes."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .cluster import ChaosCluster

KILL, STOP, CUT = "kill", "stop", "cut"
KINDS = (KILL, STOP, CUT)
ISOLATE, SPLIT, ONE_WAY = "isolate", "split", "one-way"
SHAPES = (ISOLATE, SPLIT, ONE_WAY)


class NemesisError(RuntimeError):
    """A fault could not be injected or healed: the run cannot be judged."""


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Fault:
    """One fault: from `start` to `end` seconds into the run.

    kill/stop: `nodes` is the victim. cut: `links` are the (from, to) directions dropped.
    """

    kind: str
    start: float
    end: float
    nodes: tuple[str, ...]
    shape: str = ""
    links: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        if self.kind != CUT:
            return f"{self.kind} {self.nodes[0]}"
        if self.shape == ISOLATE:
            return f"cut: isolate {self.nodes[0]}"
        if self.shape == SPLIT:
            return f"cut: split {'+'.join(self.nodes[:2])} | {'+'.join(self.nodes[2:])}"
        return f"cut: one-way {self.nodes[0]} -> {'+'.join(self.nodes[1:])}"


def plan_faults(
    rng: random.Random,
    names: Sequence[str],
    duration: float,
    *,
    gap: tuple[float, float] = (2.0, 5.0),
    length: tuple[float, float] = (3.0, 8.0),
    warmup: float = 2.0,
    settle: float = 3.0,
    max_damaged: int = 2,
    required: Sequence[str] = KINDS,
) -> list[Fault]:
    """A seeded schedule. At most `max_damaged` nodes killed or stopped at once, at most one
    cut at a time, nothing lasts past `duration - settle`; the `required` kinds come first."""
    names = list(names)
    todo = list(required)
    rng.shuffle(todo)
    faults: list[Fault] = []
    t = warmup
    last = duration - settle
    while t + length[0] <= last:
        active = [f for f in faults if f.start <= t < f.end]
        damaged = {f.nodes[0] for f in active if f.kind in (KILL, STOP)}
        allowed = [k for k in KINDS if k != CUT or not any(f.kind == CUT for f in active)]
        if len(damaged) >= max_damaged:
            allowed = [k for k in allowed if k == CUT]
        if allowed:
            wanted = [k for k in todo if k in allowed]
            kind = wanted[0] if wanted else rng.choice(allowed)
            if kind in todo:
                todo.remove(kind)
            end = min(t + rng.uniform(*length), last)
            if kind == CUT:
                faults.append(_cut(rng, names, t, end))
            else:
                victim = rng.choice([n for n in names if n not in damaged])
                faults.append(Fault(kind, t, end, (victim,)))
        t += rng.uniform(*gap)
    return faults


def _cut(rng: random.Random, names: list[str], start: float, end: float) -> Fault:
    shape = rng.choice(SHAPES)
    if shape == ISOLATE:
        victim = rng.choice(names)
        rest = [n for n in names if n != victim]
        links = [(victim, n) for n in rest] + [(n, victim) for n in rest]
        return Fault(CUT, start, end, (victim, *rest), shape, tuple(links))
    if shape == SPLIT:
        shuffled = rng.sample(names, len(names))
        a, b = shuffled[:2], shuffled[2:]
        links = [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]
        return Fault(CUT, start, end, (*a, *b), shape, tuple(links))
    src = rng.choice(names)
    rest = [n for n in names if n != src]
    dsts = sorted(rng.sample(rest, rng.randint(1, len(rest))))
    return Fault(CUT, start, end, (src, *dsts), shape, tuple((src, d) for d in dsts))


# ------------------------------------------------------------------ firewall


def require_nft() -> str:
    """The nft binary, checked to work here; raises (never skips) when it does not."""
    nft = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if nft is None:
        raise NemesisError(
            "nft (nftables) is not installed; the chaos suite needs it to cut links "
            "(apt-get install -y nftables; .ci/run does this)"
        )
    probe = subprocess.run([nft, "list", "tables"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        raise NemesisError(f"nft cannot manage rules here (root needed?): {probe.stderr.strip()}")
    return nft


class Firewall:
    """One nftables table of our own; a cut is its ruleset, heal deletes the table."""

    def __init__(self, hosts: Callable[[str], str], table: str | None = None) -> None:
        self.nft = require_nft()
        self.hosts = hosts
        self.table = table or f"spinekv_chaos_{os.getpid()}"

    def _apply(self, script: str) -> None:
        result = subprocess.run(
            [self.nft, "-f", "-"], input=script, capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise NemesisError(f"nft failed: {result.stderr.strip()}\n{script}")

    def cut(self, links: Sequence[tuple[str, str]]) -> None:
        """Drop every packet from A's address to B's for each (A, B), replacing earlier cuts."""
        rules = "\n".join(
            f"    ip saddr {self.hosts(a)} ip daddr {self.hosts(b)} counter drop" for a, b in links
        )
        # Creating the table first makes the delete valid whether or not it existed.
        self._apply(
            f"table inet {self.table} {{}}\n"
            f"delete table inet {self.table}\n"
            f"table inet {self.table} {{\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"{rules}\n"
            "  }\n"
            "}\n"
        )

    def heal(self) -> None:
        self._apply(f"table inet {self.table} {{}}\ndelete table inet {self.table}\n")

    def dropped(self) -> int:
        """Packets the current cut has dropped so far (0 when there is no cut)."""
        result = subprocess.run(
            [self.nft, "-j", "list", "table", "inet", self.table],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if result.returncode != 0:
            return 0
        total = 0
        for item in json.loads(result.stdout).get("nftables", []):
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    total += expr["counter"]["packets"]
        return total


# ------------------------------------------------------------------ the nemesis


@dataclass(frozen=True)
class FaultEvent:
    """One thing the nemesis did, `at` seconds into the run."""

    at: float
    action: str  # kill restart stop resume cut heal
    detail: str
    took: float = 0.0


# The least time a cut is held (membership pings cross every link each second).
MIN_CUT = 2.0


@dataclass
class Nemesis:
    """Applies a plan of faults to a ChaosCluster and records what it did."""

    cluster: ChaosCluster
    firewall: Firewall
    clock: Callable[[], float] = time.monotonic
    t0: float = field(default_factory=time.monotonic)
    killed: set[str] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)
    cut_active: Fault | None = None
    events: list[FaultEvent] = field(default_factory=list)
    injected: Counter = field(default_factory=Counter)  # kind -> count
    shapes: Counter = field(default_factory=Counter)  # cut shape -> count
    cut_drops: list[int] = field(default_factory=list)  # packets each healed cut dropped
    current: str = "calm"
    # When the active cut began: a schedule running late (a slow restart) must still hold
    # each cut long enough for traffic to meet it, or the cut tests nothing.
    cut_began: float = 0.0

    def _record(self, action: str, detail: str, started: float) -> None:
        now = self.clock()
        self.events.append(FaultEvent(now - self.t0, action, detail, now - started))

    def damaged(self) -> set[str]:
        return self.killed | self.stopped

    def _describe_state(self) -> str:
        parts = [f"killed {n}" for n in sorted(self.killed)]
        parts += [f"stopped {n}" for n in sorted(self.stopped)]
        if self.cut_active is not None:
            parts.append(self.cut_active.describe())
        return ", ".join(parts) or "calm"

    # -------------------------------------------------------------- single faults

    async def begin(self, fault: Fault) -> None:
        started = self.clock()
        if fault.kind in (KILL, STOP):
            victim = fault.nodes[0]
            if victim in self.damaged() or len(self.damaged()) >= 2:
                raise NemesisError(f"plan broke its own rules at {fault.describe()}")
        if fault.kind == KILL:
            pid = self.cluster.signal(victim, signal.SIGKILL)
            self.killed.add(victim)
            await asyncio.to_thread(self.cluster.wait_dead, victim, pid)
        elif fault.kind == STOP:
            self.cluster.signal(victim, signal.SIGSTOP)
            self.stopped.add(victim)
        else:
            self.firewall.cut(fault.links)
            self.cut_active = fault
            self.cut_began = self.clock()
            self.shapes[fault.shape] += 1
        self.injected[fault.kind] += 1
        self._record(fault.kind, fault.describe(), started)
        self.current = self._describe_state()

    async def end(self, fault: Fault) -> None:
        started = self.clock()
        if fault.kind == KILL:
            victim = fault.nodes[0]
            await self.cluster.up_async(victim)
            self.killed.discard(victim)
            self._record("restart", victim, started)
        elif fault.kind == STOP:
            victim = fault.nodes[0]
            self.cluster.signal(victim, signal.SIGCONT)
            self.stopped.discard(victim)
            self._record("resume", victim, started)
        else:
            held = self.clock() - self.cut_began
            if held < MIN_CUT:
                await asyncio.sleep(MIN_CUT - held)  # pacing the schedule, not waiting for state
            self._heal_cut(started)
        self.current = self._describe_state()

    # -------------------------------------------------------------- the schedule

    async def run(self, plan: Sequence[Fault], until: float) -> None:
        """Play `plan` (times relative to t0) until `until` seconds in, then heal everything.

        Events keep their order even when one runs late (a restart waits for the node to
        serve), so the plan's limits hold in what really happens.
        """
        events = sorted(
            [(f.start, 1, i, f) for i, f in enumerate(plan)]
            + [(f.end, 0, i, f) for i, f in enumerate(plan)],
            key=lambda e: e[:3],
        )
        try:
            for at, is_begin, _, fault in events:
                delay = self.t0 + at - self.clock()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the schedule, not waiting for state
                if self.clock() - self.t0 >= until:
                    break
                if is_begin:
                    await self.begin(fault)
                else:
                    await self.end(fault)
        except BaseException:
            self.release()  # the run is over: no restarts, the caller tears the cluster down
            raise
        await self.heal_all()

    def release(self) -> None:
        """Undo what needs no waiting: SIGCONT stopped nodes and delete the table."""
        for name in sorted(self.stopped):
            if self.cluster.pid(name) is not None:
                self.cluster.signal(name, signal.SIGCONT)
        self.stopped.clear()
        self.firewall.heal()
        self.cut_active = None
        self.current = "released"

    def _heal_cut(self, started: float) -> None:
        assert self.cut_active is not None
        dropped = self.firewall.dropped()
        self.firewall.heal()
        self.cut_drops.append(dropped)
        self._record("heal", f"{self.cut_active.describe()}: {dropped} packets dropped", started)
        self.cut_active = None

    async def heal_all(self) -> None:
        """SIGCONT every stopped node, delete the table, restart every killed node."""
        started = self.clock()
        for name in sorted(self.stopped):
            if self.cluster.pid(name) is not None:
                self.cluster.signal(name, signal.SIGCONT)
        self.stopped.clear()
        if self.cut_active is not None:
            self._heal_cut(started)
        self.firewall.heal()
        if self.killed:
            await self.cluster.up_async(*sorted(self.killed))
            self.killed.clear()
        self._record("heal-all", "all faults healed", started)
        self.current = "healed"
