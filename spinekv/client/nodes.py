"""Which node a request tries first, and which nodes to avoid for a while (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class NodePool:
    """Round-robin (or a preferred node first) over base URLs, skipping recently failed nodes.

    A node that failed (connection refused or reset, or no answer in time) is avoided
    for `avoid_for` seconds: it goes to the back of every order, so it is tried only
    when every healthy node has failed too. Times come from the caller's clock.
    """

    nodes: Sequence[str]
    prefer: str | None = None
    avoid_for: float = 5.0
    _next: int = 0
    _avoid_until: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("a client needs at least one node URL")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"node URLs appear twice: {list(self.nodes)}")
        if self.prefer is not None and self.prefer not in self.nodes:
            raise ValueError(f"preferred node {self.prefer!r} is not in {list(self.nodes)}")

    def order(self, now: float) -> list[str]:
        """Every node once, in the order one request should try them."""
        if self.prefer is not None:
            start = self.nodes.index(self.prefer)
        else:
            start = self._next % len(self.nodes)
            self._next += 1
        rotated = [*self.nodes[start:], *self.nodes[:start]]
        healthy = [n for n in rotated if self._avoid_until.get(n, 0.0) <= now]
        # Avoided nodes are still a last resort, the one coming back soonest first.
        avoided = sorted((n for n in rotated if n not in healthy), key=self._avoid_until.get)
        return healthy + avoided

    def failed(self, node: str, now: float) -> None:
        self._avoid_until[node] = now + self.avoid_for

    def succeeded(self, node: str) -> None:
        self._avoid_until.pop(node, None)

    def avoided(self, now: float) -> list[str]:
        """Nodes currently being avoided."""
        return [n for n in self.nodes if self._avoid_until.get(n, 0.0) > now]
