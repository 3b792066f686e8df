"""Partition claim (pure): even shares, distinct preference-list windows, few moves."""

from __future__ import annotations

from bisect import insort
from collections import Counter, deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from itertools import pairwise

from .ring import Ring, check_n_val, check_ring_size, violating_starts, window_is_distinct


def claim(members: Sequence[str], ring_size: int, n_val: int, previous: Ring | None = None) -> Ring:
    """Assign partitions to members: even shares, distinct windows, few moves from previous.

    With Q = ring_size and M distinct members:
    - shares: every member owns floor(Q/M) or ceil(Q/M) partitions;
    - windows: every n_val consecutive partitions have n_val distinct owners iff
      M >= n_val and ceil(Q/M) * n_val <= Q, which is exactly when any ring with such
      shares can have them (a node owning ceil(Q/M) partitions needs n_val slots of its
      own after each). Otherwise the ring is a best effort that ring_violations() lists;
    - movement: previous is repaired in place. A newcomer joining a clean ring takes
      just its share; a leaver's partitions go to survivors they fit beside, and what
      its stripe neighbours (which fit beside none) must gain comes by relays, one
      extra move each. Only when that leaves violations are swaps, or a restripe
      aligned with previous, used: whichever has fewer violations, then fewer moves;
    - deterministic: members are deduplicated and sorted; nothing else varies.
    """
    check_ring_size(ring_size)
    check_n_val(n_val, ring_size)
    nodes = sorted(set(members))
    if not nodes:
        raise ValueError("claim needs at least one member")
    fresh = _fresh_owners(nodes, ring_size, n_val)
    if previous is None:
        return Ring(ring_size, tuple(fresh))
    if previous.ring_size != ring_size:
        raise ValueError(f"cannot resize a ring from {previous.ring_size} to {ring_size}")
    incremental = _rebalanced_owners(previous.owners, nodes, n_val)
    if not violating_starts(incremental, n_val):
        return Ring(ring_size, tuple(incremental))
    # Moving partitions one by one ran into windows it could not keep distinct (too few
    # survivors to absorb a departed node without crowding, or violations inherited from
    # previous). Repairing those by swaps usually beats restriping, but not always.
    candidates = (
        _with_fewer_violations(incremental, n_val),
        _aligned_with(fresh, previous.owners, nodes),
    )
    best = min(candidates, key=lambda owners: _cost(owners, previous.owners, n_val))
    return Ring(ring_size, tuple(best))


# --- windows -------------------------------------------------------------------------------


def _violations_touching(owners: Sequence[str], partitions: Iterable[int], n_val: int) -> int:
    """How many violating windows contain at least one of the given partitions."""
    size = len(owners)
    starts = {(p - i) % size for p in partitions for i in range(n_val)}
    return sum(1 for s in starts if not window_is_distinct(owners, s, n_val))


def _cost(owners: Sequence[str], previous: Sequence[str], n_val: int) -> tuple[int, int]:
    """Violating windows first, then partitions that change owner."""
    moved = sum(1 for a, b in zip(owners, previous, strict=True) if a != b)
    return len(violating_starts(owners, n_val)), moved


# --- fresh claim ---------------------------------------------------------------------------


def _fresh_owners(nodes: list[str], ring_size: int, n_val: int) -> list[str]:
    """The striped layout, or when distinct windows are impossible the better best effort."""
    owners = _striped_owners(nodes, ring_size)
    if not violating_starts(owners, n_val):
        return owners
    # Plain round-robin bunches all the repeats at the wrap, which sometimes beats
    # spreading them; local search then polishes whichever layout is used.
    round_robin = [nodes[p % len(nodes)] for p in range(ring_size)]
    attempts = (_with_fewer_violations(layout, n_val) for layout in (owners, round_robin))
    return min(attempts, key=lambda layout: len(violating_starts(layout, n_val)))


def _striped_owners(nodes: list[str], ring_size: int) -> list[str]:
    """Rounds of the sorted nodes; the nodes that must own one partition fewer skip a round.

    With c = ceil(Q/M) rounds, S = c*M - Q nodes ("light") sit out one round each and the
    other M-S ("heavy") play every round, always first. The light nodes are cut into c
    consecutive blocks of floor/ceil(S/c) and round r leaves out block c-1-r. Between two
    appearances of a node, at most ceil(S/c) others are missing from a full round, so
    each gap is >= M - ceil(S/c) >= n_val exactly when ceil(Q/M) * n_val <= Q.
    """
    rounds = -(-ring_size // len(nodes))
    skipping = rounds * len(nodes) - ring_size
    heavy, light = nodes[: len(nodes) - skipping], nodes[len(nodes) - skipping :]
    blocks = _split_evenly(light, rounds)
    owners: list[str] = []
    for r in range(rounds):
        # Walking the blocks backwards keeps every pair of adjacent rounds, including
        # the wrap from the last round to the first, within the ceil(S/c) bound.
        missing = set(blocks[rounds - 1 - r])
        owners.extend(heavy)
        owners.extend(node for node in light if node not in missing)
    return owners


def _split_evenly(items: list[str], parts: int) -> list[list[str]]:
    """Consecutive blocks whose sizes differ by at most one, larger ones first."""
    size, extra = divmod(len(items), parts)
    blocks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        blocks.append(items[start:end])
        start = end
    return blocks


def _with_fewer_violations(owners: Sequence[str], n_val: int) -> list[str]:
    """owners after owner swaps (shares unchanged) that each leave fewer violating windows.

    The search is capped at _SWAP_CHECKS candidate swaps so a hopeless repair stays cheap
    (and deterministic); claim then compares the outcome with restriping.
    """
    owners = list(owners)
    if len(set(owners)) < n_val:
        return owners  # every window repeats an owner; no swap can help
    checks = iter(range(_SWAP_CHECKS))
    while (swap := _improving_swap(owners, n_val, checks)) is not None:
        p, q = swap
        owners[p], owners[q] = owners[q], owners[p]
    return owners


_SWAP_CHECKS = 50_000


def _improving_swap(owners: list[str], n_val: int, checks: Iterator[int]) -> tuple[int, int] | None:
    """(p, q) with p in a violating window whose swap helps; clean swaps are tried first."""
    size = len(owners)
    spots = sorted({(s + i) % size for s in violating_starts(owners, n_val) for i in range(n_val)})
    for clean_only in (True, False):
        for p in spots:
            for q in _swap_partners(owners, p, n_val, clean_only):
                if next(checks, None) is None:
                    return None
                if _swap_helps(owners, p, q, n_val):
                    return p, q
    return None


def _swap_partners(owners: list[str], p: int, n_val: int, clean_only: bool) -> Iterator[int]:
    """Partitions to try swapping with p; clean_only keeps those where both owners fit."""
    if not clean_only:
        return (q for q, owner in enumerate(owners) if owner != owners[p])
    # Clean partners nearly always help, so the broader scan only runs once they run out.
    near_p = set(_neighbours(owners, p, n_val))
    return (
        q
        for q, owner in enumerate(owners)
        if owner not in near_p and owners[p] not in _neighbours(owners, q, n_val)
    )


def _neighbours(owners: Sequence[str], p: int, n_val: int) -> list[str]:
    """Owners that share some window with partition p, p's own owner included."""
    size = len(owners)
    return [owners[(p + d) % size] for d in range(1 - n_val, n_val)]


def _swap_helps(owners: list[str], p: int, q: int, n_val: int) -> bool:
    before = _violations_touching(owners, (p, q), n_val)
    owners[p], owners[q] = owners[q], owners[p]
    after = _violations_touching(owners, (p, q), n_val)
    owners[p], owners[q] = owners[q], owners[p]
    return after < before


def _aligned_with(fresh: list[str], previous: Sequence[str], nodes: list[str]) -> list[str]:
    """fresh rotated and relabelled to keep as many previous owners as possible."""
    size = len(fresh)
    # The striped layout repeats every round of about M partitions, so rotations beyond
    # two rounds only revisit layouts already tried.
    best, best_kept = fresh, -1
    for shift in range(min(size, 2 * len(nodes))):
        rotated = fresh[shift:] + fresh[:shift]
        relabel, kept = _best_relabelling(rotated, previous, nodes)
        if kept > best_kept:
            best, best_kept = [relabel[node] for node in rotated], kept
    return best


def _best_relabelling(
    layout: list[str], previous: Sequence[str], nodes: list[str]
) -> tuple[dict[str, str], int]:
    """Greedy role -> node matching by shared partitions, and how many partitions it keeps."""
    member_set = set(nodes)
    overlap = Counter((role, prev) for role, prev in zip(layout, previous, strict=True))
    pairs = sorted(
        ((count, role, node) for (role, node), count in overlap.items() if node in member_set),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    relabel: dict[str, str] = {}
    used: set[str] = set()
    kept = 0
    for count, role, node in pairs:
        if role not in relabel and node not in used:
            relabel[role] = node
            used.add(node)
            kept += count
    spare = iter(node for node in nodes if node not in used)
    for role in nodes:
        if role not in relabel:
            relabel[role] = next(spare)
    return relabel, kept


# --- incremental claim ---------------------------------------------------------------------


def _rebalanced_owners(previous: Sequence[str], nodes: list[str], n_val: int) -> list[str]:
    """previous after single-partition moves to even shares.

    Every move settles a debt: the giver must shed the partition (it left, or is above
    its ceil share) or the taker must have it (below its floor share). A node only
    receives a partition that no window would then see twice. Departed nodes' partitions
    and newcomers' shares are placed by matchings, so those moves are the minimum
    max(owed out, owed in); what they cannot place is relayed along the shortest chain
    of nodes, one extra move per link beyond the first; only what no chain can settle
    is moved regardless of windows.
    """
    balance = _Balance(previous, nodes, n_val)
    balance.rehome_orphans()
    balance.fill_newcomers()
    while not balance.is_even() and balance.relay():
        pass
    balance.force()
    return balance.owners


class _Balance:
    """Owners being rebalanced, with per-node positions and running totals of what is owed."""

    def __init__(self, previous: Sequence[str], nodes: list[str], n_val: int) -> None:
        self.owners = list(previous)
        self.size = len(self.owners)
        self.nodes = nodes
        self.members = set(nodes)
        self.n_val = n_val
        self.low, self.high = self.size // len(nodes), -(-self.size // len(nodes))
        self.positions: dict[str, list[int]] = {node: [] for node in nodes}
        for p, owner in enumerate(self.owners):
            self.positions.setdefault(owner, []).append(p)
        self.give = sum(self.must_give(node) for node in self.positions)
        self.take = sum(self.must_take(node) for node in self.nodes)
        self._distance_cache: dict[str, list[int]] = {}

    def count(self, node: str) -> int:
        return len(self.positions.get(node, ()))

    def must_give(self, node: str) -> int:
        if node not in self.members:
            return self.count(node)
        return max(0, self.count(node) - self.high)

    def may_give(self, node: str) -> int:
        if node not in self.members:
            return self.count(node)
        return max(0, self.count(node) - self.low)

    def must_take(self, node: str) -> int:
        return max(0, self.low - self.count(node)) if node in self.members else 0

    def may_take(self, node: str) -> int:
        return max(0, self.high - self.count(node)) if node in self.members else 0

    def is_even(self) -> bool:
        return self.give == 0 and self.take == 0

    def fits(self, node: str, partition: int) -> bool:
        """Whether node could own partition without appearing twice in any window."""
        return self._distances(node)[partition] >= self.n_val

    def move(self, partition: int, taker: str) -> None:
        giver = self.owners[partition]
        self._distance_cache.pop(giver, None)
        self._distance_cache.pop(taker, None)
        self._settle(giver, taker, -1)
        self.owners[partition] = taker
        self.positions[giver].remove(partition)
        insort(self.positions[taker], partition)
        self._settle(giver, taker, +1)

    def _settle(self, giver: str, taker: str, sign: int) -> None:
        # A relay's middle node both gives and takes, so track both debts of both nodes.
        for node in (giver, taker):
            self.give += sign * self.must_give(node)
            self.take += sign * self.must_take(node)

    def rehome_orphans(self) -> None:
        """Give each departed node's partitions to members that fit there, as a matching.

        A departed node's partitions are n_val apart, so one member can take several of
        them without conflict; only the members' quotas tie the choices together.
        """
        for gone in sorted(set(self.positions) - self.members):
            graph: _Graph = {_SOURCE: {}, _SPARE: {_SINK: max(0, self.give - self.take)}}
            for p in self.positions[gone]:
                graph[_SOURCE][("p", p)] = 1
                graph[("p", p)] = {("n", b): 1 for b in self.nodes if self._can_receive(b, p)}
            for b in self.nodes:
                graph[("n", b)] = {
                    _SINK: self.must_take(b),
                    _SPARE: self.may_take(b) - self.must_take(b),
                }
            for (_, p), taker in _matched(_max_flow(graph), "p"):
                if self._can_receive(taker, p):
                    self.move(p, taker)

    def fill_newcomers(self) -> None:
        """Give each member that owns nothing yet its share, spread evenly around the ring."""
        for node in self.nodes:
            if self.count(node) or not self.must_take(node):
                continue
            wanted = self.must_take(node) + min(self.high - self.low, max(0, self.give - self.take))
            for p in self._spread_picks(wanted) or ():
                self.move(p, node)

    def _spread_picks(self, wanted: int) -> list[int] | None:
        """wanted partitions, pairwise >= n_val apart, drawn from nodes that may give them.

        The ring is cut into wanted arcs and one partition is picked from the first
        len(arc) - n_val + 1 slots of each, which keeps consecutive picks n_val apart; which
        giver serves which arc is a matching that honours what each giver owes.
        """
        troubled = {
            (start + i) % self.size
            for start in violating_starts(self.owners, self.n_val)
            for i in range(self.n_val)
        }
        best, best_score = None, None
        for offset in range(-(-self.size // wanted)):
            windows = _arc_heads(self.size, wanted, self.n_val, offset)
            if windows is None:
                return None
            graph: _Graph = {_SOURCE: {}, _SPARE: {_SINK: max(0, self.take - self.give)}}
            givers: set[str] = set()
            for i, window in enumerate(windows):
                graph[_SOURCE][("a", i)] = 1
                here = {self.owners[p] for p in window if self.may_give(self.owners[p])}
                graph[("a", i)] = {("g", g): 1 for g in sorted(here)}
                givers |= here
            for g in sorted(givers):
                graph[("g", g)] = {
                    _SINK: self.must_give(g),
                    _SPARE: self.may_give(g) - self.must_give(g),
                }
            matched = list(_matched(_max_flow(graph), "a"))
            if len(matched) < wanted:
                continue
            # Inside its arc, a giver hands over a partition from a violating window if it
            # has one, so joining a ring that had violations can clear them for free.
            picks = [
                min(
                    (p for p in windows[i] if self.owners[p] == giver),
                    key=lambda p: p not in troubled,
                )
                for (_, i), giver in matched
            ]
            if not troubled:
                return picks
            score = self._violations_after(picks)
            if best_score is None or score < best_score:
                best, best_score = picks, score
        return best

    def _violations_after(self, picks: list[int]) -> int:
        """Violating windows if a newcomer took picks (the owners are left unchanged)."""
        newcomer = object()  # equal to no node name, unlike any string stand-in
        trial: list[Hashable] = list(self.owners)
        for p in picks:
            trial[p] = newcomer
        return len(violating_starts(trial, self.n_val))

    def _settles_debt(self, giver: str, taker: str) -> bool:
        """Whether giver handing taker one partition shrinks the debt without adding any."""
        if not (self.may_give(giver) and self.may_take(taker)):
            return False
        giver_must, taker_must = self.must_give(giver) > 0, self.must_take(taker) > 0
        # Settling only one side is fine while that side owes more; otherwise it would
        # cost an extra move later.
        return (
            (giver_must and taker_must)
            or (giver_must and self.give > self.take)
            or (taker_must and self.take > self.give)
        )

    def relay(self) -> bool:
        """Settle one unit of debt through the shortest chain of moves; False if none exists.

        A chain of one link is a plain move. Longer ones serve a taker that sits next to
        every partition on offer (say, the removed node's stripe neighbours): it takes a
        partition from a node it fits beside, which takes one from a giver, and so on.
        """
        takers = sorted(
            (node for node in self.nodes if self.may_take(node)),
            key=lambda node: -self.must_take(node),
        )
        for taker in takers:
            chain = self._shortest_chain(taker)
            if chain is not None:
                for partition, node in chain:
                    self.move(partition, node)
                return True
        return False

    def force(self) -> None:
        """Settle the remaining debt directly, each move to the taker's least crowded spot."""
        while not self.is_even():
            pair = self._any_debt_pair()
            if pair is None:
                return
            giver, taker = pair
            distance = self._distances(taker)
            self.move(max(self.positions[giver], key=lambda p: distance[p]), taker)

    def _any_debt_pair(self) -> tuple[str, str] | None:
        for taker in sorted(self.nodes, key=lambda node: -self.must_take(node)):
            for giver in sorted(self.positions):
                if giver != taker and self._settles_debt(giver, taker):
                    return giver, taker
        return None

    def _shortest_chain(self, taker: str) -> list[tuple[int, str]] | None:
        """Moves (partition, new owner) passing one partition's worth along to taker."""
        # Breadth-first over nodes, stepping from a node to each owner it could take from.
        came_from: dict[str, tuple[int, str]] = {}
        frontier, seen = [taker], {taker}
        while frontier:
            following, ends = [], []
            for node in frontier:
                for partition, owner, gap in self._takeable(node):
                    if owner in seen:
                        continue
                    seen.add(owner)
                    came_from[owner] = (partition, node)
                    if self._settles_debt(owner, taker):
                        ends.append((gap, owner))
                    elif owner in self.members:
                        following.append(owner)
            if ends:
                # Of equally short chains, prefer the one whose last move lands farthest
                # from the receiver's other partitions: it keeps each node's share spread.
                giver = max(ends, key=lambda end: end[0])[1]
                return _chain_moves(came_from, giver, taker)
            frontier = following
        return None

    def _takeable(self, node: str) -> list[tuple[int, str, int]]:
        """(partition, owner, gap) for each other owner: the partition node fits best beside."""
        distance = self._distances(node)
        best: dict[str, tuple[int, str, int]] = {}
        for p, owner in enumerate(self.owners):
            gap = distance[p]
            if owner != node and gap >= self.n_val and (owner not in best or gap > best[owner][2]):
                best[owner] = (p, owner, gap)
        return list(best.values())

    def _distances(self, node: str) -> list[int]:
        """For every partition, the ring distance to node's nearest partition."""
        if node not in self._distance_cache:
            self._distance_cache[node] = _distances_to(self.positions[node], self.size)
        return self._distance_cache[node]

    def _can_receive(self, node: str, partition: int) -> bool:
        return self.may_take(node) > 0 and self.fits(node, partition)


def _distances_to(positions: list[int], size: int) -> list[int]:
    """For every partition, the ring distance to the nearest of positions (size if none)."""
    distance = [size] * size
    for p in positions:
        distance[p] = 0
    # Going round twice in each direction lets every run of distances wrap past 0.
    for order in (range(2 * size), range(2 * size - 1, -1, -1)):
        run = size
        for i in order:
            p = i % size
            run = 0 if distance[p] == 0 else run + 1
            distance[p] = min(distance[p], run)
    return distance


def _chain_moves(
    came_from: dict[str, tuple[int, str]], giver: str, taker: str
) -> list[tuple[int, str]]:
    moves, node = [], giver
    while node != taker:
        partition, receiver = came_from[node]
        moves.append((partition, receiver))
        node = receiver
    return moves


# --- flows ---------------------------------------------------------------------------------

_Vertex = Hashable
_Graph = dict[_Vertex, dict[_Vertex, int]]
# Matchings send what each node must give or take straight to _SINK; optional units go
# through _SPARE, whose capacity is how many one-sided moves the debts leave room for.
_SOURCE, _SINK, _SPARE = ("source",), ("sink",), ("spare",)


def _arc_heads(size: int, arcs: int, n_val: int, offset: int) -> list[list[int]] | None:
    """Per arc of a near-equal cut from offset, the slots a pick may use; None if one is short."""
    bounds = [offset + i * size // arcs for i in range(arcs + 1)]
    if any(end - start < n_val for start, end in pairwise(bounds)):
        return None
    return [[p % size for p in range(start, end - n_val + 1)] for start, end in pairwise(bounds)]


def _matched(flow: _Graph, kind: str) -> Iterable[tuple[_Vertex, str]]:
    """(left vertex, right name) pairs carrying flow out of the left vertices of kind."""
    for vertex, edges in flow.items():
        if vertex[0] == kind:
            for target in edges:
                yield vertex, target[1]


def _max_flow(capacity: _Graph) -> _Graph:
    """Edmonds-Karp from _SOURCE to _SINK; returns the positive flow on each edge."""
    residual: _Graph = {u: dict(edges) for u, edges in capacity.items()}
    for u, edges in capacity.items():
        for v in edges:
            residual.setdefault(v, {}).setdefault(u, 0)
    while (path := _augmenting_path(residual)) is not None:
        push = min(residual[u][v] for u, v in path)
        for u, v in path:
            residual[u][v] -= push
            residual[v][u] += push
    return {
        u: {v: cap - residual[u][v] for v, cap in edges.items() if cap > residual[u][v]}
        for u, edges in capacity.items()
    }


def _augmenting_path(residual: _Graph) -> list[tuple[_Vertex, _Vertex]] | None:
    parent: dict[_Vertex, _Vertex] = {}
    queue = deque([_SOURCE])
    seen = {_SOURCE}
    while queue:
        u = queue.popleft()
        for v, cap in residual[u].items():
            if cap > 0 and v not in seen:
                seen.add(v)
                parent[v] = u
                if v == _SINK:
                    return _path_to_sink(parent)
                queue.append(v)
    return None


def _path_to_sink(parent: dict[_Vertex, _Vertex]) -> list[tuple[_Vertex, _Vertex]]:
    path, v = [], _SINK
    while v != _SOURCE:
        path.append((parent[v], v))
        v = parent[v]
    return path
