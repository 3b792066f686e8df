"""Who may drain a source node's replication queue: one consumer at a time, under a lease.

A fetch names its consumer and takes (or renews) the lease on that queue for LEASE_S
seconds; while another consumer's lease runs, it is refused with who holds it and for
how long. An acknowledgement counts only from the consumer that took the lease last,
so a consumer whose lease lapsed and was taken over cannot drop the new holder's entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

LEASE_S = 30.0


@dataclass(frozen=True, slots=True)
class Held:
    """The refusal: `holder`'s lease runs `remaining` more seconds."""

    holder: str
    remaining: float


class Leases:
    """Each queue's holder and the (clock) time its lease ends; the clock is injected."""

    def __init__(self, clock: Callable[[], float], lease_s: float = LEASE_S) -> None:
        self._clock = clock
        self._lease_s = lease_s
        self._held: dict[str, tuple[str, float]] = {}

    def take(self, queue: str, consumer: str) -> Held | None:
        """Take or renew `queue`'s lease for `consumer`; Held if another holds it still."""
        now = self._clock()
        holder, until = self._held.get(queue, (consumer, now))
        if holder != consumer and until > now:
            return Held(holder, until - now)
        self._held[queue] = (consumer, now + self._lease_s)
        return None

    def holder(self, queue: str) -> str | None:
        """The consumer that took `queue`'s lease last (its lease may have lapsed)."""
        held = self._held.get(queue)
        return None if held is None else held[0]
