"""Time as the node sees it: injected so the simulation can run nodes on virtual time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (timestamps on objects)."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring intervals and deadlines."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
