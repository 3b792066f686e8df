"""Request statistics for /stats: Riak's node get/put counts and latencies over the last minute.

Riak reports `node_gets` / `node_puts` as counts over a sliding minute, `*_total`
since start, and FSM times in microseconds (`node_get_fsm_time_mean`, `_median`,
`_95`, `_99`, `_100`) over the same minute. Here the minute is sixty one-second
slots. Each slot keeps its count, sum and maximum exactly, and a uniform
reservoir of at most `cap` latencies, so a busy node holds at most 60 * cap
samples; percentiles weigh each slot's samples by how many requests they stand
for. Nothing here reads a clock or does I/O on its own: the caller injects both.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

WINDOW_SECONDS = 60
SAMPLES_PER_SLOT = 1000

Kind = Literal["get", "put"]

# The object resource and the key collection (POST creates a key), plain or typed.
_OBJECT = re.compile(r"^(/types/\{[^}/]+\})?/buckets/\{[^}/]+\}/keys/\{[^}/]+\}$")
_KEYS = re.compile(r"^(/types/\{[^}/]+\})?/buckets/\{[^}/]+\}/keys$")


def classify(method: str, route: str | None, status: int) -> Kind | None:
    """Whether a finished request counts as a node get, a node put, or neither.

    `route` is the matched route template (e.g. /buckets/{bucket}/keys/{key}). As in
    Riak, only requests that ran a get or put count: a refused request (4xx other than
    404, which is a get's answer) did not, while a 503 did and timed out.
    """
    if route is None or (400 <= status < 500 and status != 404):
        return None
    if _OBJECT.match(route):
        if method in ("GET", "HEAD"):
            return "get"
        if method in ("PUT", "POST", "DELETE"):
            return "put"
    if _KEYS.match(route) and method == "POST":
        return "put"
    return None


@dataclass
class _Slot:
    second: int
    count: int = 0
    total: float = 0.0
    peak: float = 0.0
    samples: list[float] = field(default_factory=list)


class Histogram:
    """Values seen in the last `window` seconds (count, mean, percentiles) and a running total."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        window: int = WINDOW_SECONDS,
        cap: int = SAMPLES_PER_SLOT,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._window = window
        self._cap = cap
        self._rng = rng or random.Random()
        self._slots: deque[_Slot] = deque()
        self.total = 0

    def _current(self) -> _Slot:
        now = int(self._clock())
        self._expire(now)
        if not self._slots or self._slots[-1].second != now:
            self._slots.append(_Slot(now))
        return self._slots[-1]

    def _expire(self, now: int) -> None:
        while self._slots and self._slots[0].second <= now - self._window:
            self._slots.popleft()

    def record(self, value: float) -> None:
        slot = self._current()
        slot.count += 1
        slot.total += value
        slot.peak = max(slot.peak, value)
        self.total += 1
        if len(slot.samples) < self._cap:
            slot.samples.append(value)
        else:
            # Reservoir sampling (Vitter's algorithm R): every value of the slot is kept
            # with the same probability cap / count.
            j = self._rng.randrange(slot.count)
            if j < self._cap:
                slot.samples[j] = value

    def count(self) -> int:
        """How many values were recorded in the window."""
        self._expire(int(self._clock()))
        return sum(slot.count for slot in self._slots)

    def summary(self) -> dict[str, int]:
        """mean, median, 95, 99 and 100 (the maximum) over the window, rounded; 0 when empty."""
        self._expire(int(self._clock()))
        count = sum(slot.count for slot in self._slots)
        if count == 0:
            return dict.fromkeys(("mean", "median", "95", "99", "100"), 0)
        weighted = sorted(
            (value, slot.count / len(slot.samples))
            for slot in self._slots
            for value in slot.samples
        )
        return {
            "mean": round(sum(slot.total for slot in self._slots) / count),
            "median": round(nearest_rank(weighted, 0.50)),
            "95": round(nearest_rank(weighted, 0.95)),
            "99": round(nearest_rank(weighted, 0.99)),
            "100": round(max(slot.peak for slot in self._slots)),
        }


class Counter:
    """Events in the last `window` seconds and since start."""

    def __init__(self, clock: Callable[[], float], *, window: int = WINDOW_SECONDS) -> None:
        self._clock = clock
        self._window = window
        self._seconds: deque[list[int]] = deque()  # [second, count], oldest first
        self.total = 0

    def _expire(self, now: int) -> None:
        while self._seconds and self._seconds[0][0] <= now - self._window:
            self._seconds.popleft()

    def add(self) -> None:
        now = int(self._clock())
        self._expire(now)
        if not self._seconds or self._seconds[-1][0] != now:
            self._seconds.append([now, 0])
        self._seconds[-1][1] += 1
        self.total += 1

    def count(self) -> int:
        self._expire(int(self._clock()))
        return sum(n for _, n in self._seconds)


def nearest_rank(weighted: list[tuple[float, float]], q: float) -> float:
    """The smallest value whose cumulative weight reaches q of the whole (sorted input)."""
    whole = sum(weight for _, weight in weighted)
    reached = 0.0
    for value, weight in weighted:
        reached += weight
        # A small tolerance keeps float sums of fractional weights from skipping a rank.
        if reached >= q * whole - 1e-9 * whole:
            return value
    return weighted[-1][0]


class NodeStats:
    """The request counters one node reports in /stats; `clock` is monotonic seconds."""

    def __init__(self, clock: Callable[[], float], rng: random.Random | None = None) -> None:
        self.gets = Histogram(clock, rng=rng)
        self.puts = Histogram(clock, rng=rng)
        self.client_errors = Counter(clock)
        self.server_errors = Counter(clock)
        # Client requests accepted and not yet answered; exchanges yield while it is long.
        self.backlog = 0

    def observe(self, method: str, route: str | None, status: int, latency_us: float) -> None:
        """Account one finished HTTP request."""
        kind = classify(method, route, status)
        if kind == "get":
            self.gets.record(latency_us)
        elif kind == "put":
            self.puts.record(latency_us)
        if 400 <= status < 500:
            self.client_errors.add()
        elif status >= 500:
            self.server_errors.add()

    def snapshot(self) -> dict[str, int]:
        """The counters under Riak's names (latencies in microseconds)."""
        out = {
            "node_gets": self.gets.count(),
            "node_gets_total": self.gets.total,
            "node_puts": self.puts.count(),
            "node_puts_total": self.puts.total,
        }
        for name, hist in (("get", self.gets), ("put", self.puts)):
            for suffix, value in hist.summary().items():
                out[f"node_{name}_fsm_time_{suffix}"] = value
        out["http_4xx"] = self.client_errors.count()
        out["http_4xx_total"] = self.client_errors.total
        out["http_5xx"] = self.server_errors.count()
        out["http_5xx_total"] = self.server_errors.total
        return out
