"""Failed authentications per client address (pure, time passed in): when to answer 429.

An address that failed `limit` times within the last `window_s` seconds waits until
the oldest of those failures leaves the window. Memory is bounded: each address
keeps its last `limit` failures, and at most `max_addresses` addresses are kept
(the least recently failing are forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable


class FailureLimiter:
    def __init__(self, limit: int, window_s: float, *, max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def retry_after(self, address: Hashable, now: float) -> float:
        """Seconds `address` must wait before it may try again; 0.0 when it may now."""
        times = self._failures.get(address)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
            return 0.0
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.window_s - now

    def failed(self, address: Hashable, now: float) -> None:
        """Count one failed authentication from `address` at `now`."""
        times = self._failures.pop(address, None)
        if times is None:
            times = deque(maxlen=self.limit)
        times.append(now)
        self._failures[address] = times  # most recent last
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
