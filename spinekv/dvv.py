"""Dotted version vector sets: causality tracking for replicated values (pure).

A DVVSet keeps, per actor (a vnode id), a counter and the values still live for
that actor's most recent dots, newest first. An entry ``(a, n, [v1, v2])`` means
actor ``a`` has issued events 1..n, that ``v1`` was written at dot ``(a, n)`` and
``v2`` at ``(a, n-1)``, and that every older dot of ``a`` has been superseded.
This is the structure of Riak's ``dvvset`` (Almeida et al., "Scalable and
Accurate Causality Tracking for Eventually Consistent Stores"): concurrent
writes stay as siblings, a write carrying the context it read supersedes exactly
what that context saw, and ``sync`` is a join (commutative, associative,
idempotent), so replicas converge whatever order they merge in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Entry = tuple[str, int, tuple[Any, ...]]
VersionVector = dict[str, int]
# How a local copy stands to an incoming one (see compare).
Order = Literal["equal", "local_ahead", "remote_ahead", "concurrent"]


@dataclass(frozen=True, slots=True)
class DVVSet:
    """Entries sorted by actor id; each holds that actor's live values, newest first."""

    entries: tuple[Entry, ...] = ()


EMPTY = DVVSet()


def _merge_entry(n1: int, l1: tuple[Any, ...], n2: int, l2: tuple[Any, ...]) -> tuple[int, tuple]:
    # Order the pair so the result does not depend on argument order.
    if n1 < n2 or (n1 == n2 and len(l1) > len(l2)):
        n1, l1, n2, l2 = n2, l2, n1, l1
    # A dot survives only if neither side has already discarded it.
    oldest_discarded = max(n1 - len(l1), n2 - len(l2))
    return n1, l1[: n1 - oldest_discarded]


def sync(a: DVVSet, b: DVVSet) -> DVVSet:
    """Join two clocks: the causal union, dropping every value one side has superseded."""
    if a is b or a == b:
        return a
    ea, eb = a.entries, b.entries
    out: list[Entry] = []
    i = j = 0
    while i < len(ea) and j < len(eb):
        ida, idb = ea[i][0], eb[j][0]
        if ida == idb:
            n, values = _merge_entry(ea[i][1], ea[i][2], eb[j][1], eb[j][2])
            out.append((ida, n, values))
            i += 1
            j += 1
        elif ida < idb:
            out.append(ea[i])
            i += 1
        else:
            out.append(eb[j])
            j += 1
    out.extend(ea[i:])
    out.extend(eb[j:])
    return DVVSet(tuple(out))


def sync_all(clocks: Iterable[DVVSet]) -> DVVSet:
    result = EMPTY
    for clock in clocks:
        result = sync(result, clock)
    return result


def join(clock: DVVSet) -> VersionVector:
    """The causal context: every dot this clock has seen, as a version vector."""
    return {actor: n for actor, n, _ in clock.entries}


def from_context(context: Mapping[str, int]) -> DVVSet:
    """A clock that has seen `context` and holds no values."""
    return DVVSet(tuple((a, n, ()) for a, n in sorted(context.items()) if n > 0))


def _event(clock: DVVSet, actor: str, value: Any) -> DVVSet:
    entries = list(clock.entries)
    for i, (a, n, values) in enumerate(entries):
        if a == actor:
            entries[i] = (a, n + 1, (value, *values))
            return DVVSet(tuple(entries))
        if a > actor:
            entries.insert(i, (actor, 1, (value,)))
            return DVVSet(tuple(entries))
    entries.append((actor, 1, (value,)))
    return DVVSet(tuple(entries))


def update(stored: DVVSet, context: Mapping[str, int], value: Any, actor: str) -> DVVSet:
    """Record a write of `value` by `actor` that saw `context`.

    Values in `stored` that the context saw are superseded; values it did not see
    (concurrent writes) remain as siblings beside the new one.
    """
    return _event(sync(from_context(context), stored), actor, value)


def values(clock: DVVSet) -> list[Any]:
    """Live values (siblings) in a deterministic order: by actor, newest first."""
    return [v for _, _, vs in clock.entries for v in vs]


def dotted_values(clock: DVVSet) -> list[tuple[str, int, Any]]:
    """Each live value with its dot (actor, counter)."""
    return [(a, n - i, v) for a, n, vs in clock.entries for i, v in enumerate(vs)]


def descends(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """True when version vector `a` has seen every event `b` has."""
    return all(a.get(actor, 0) >= n for actor, n in b.items())


def less(a: DVVSet, b: DVVSet) -> bool:
    """True when `a`'s history is strictly contained in `b`'s."""
    ja, jb = join(a), join(b)
    return ja != jb and descends(jb, ja)


def _skeleton(clock: DVVSet) -> tuple[tuple[str, int, int], ...]:
    # Each actor's counter and how many of its dots are live: the clock without its values.
    return tuple((a, n, len(vs)) for a, n, vs in clock.entries)


def compare(local: DVVSet | None, remote: DVVSet | None) -> Order:
    """How `local` stands to `remote` by causal clock; None is an object never seen.

    A clock is ahead when merging the other into it changes nothing: it has seen every
    event the other has and superseded at least what the other superseded. So a copy
    whose siblings were collapsed (allow_mult=false) is ahead of the uncollapsed one,
    as merging them keeps the collapse. "equal" means the same clock (tictac.version
    digests alike), whatever the values.
    """
    a, b = local or EMPTY, remote or EMPTY
    mine, theirs = _skeleton(a), _skeleton(b)
    if mine == theirs:
        return "equal"
    joined = _skeleton(sync(a, b))
    if joined == mine:
        return "local_ahead"
    if joined == theirs:
        return "remote_ahead"
    return "concurrent"


def lww(clock: DVVSet, key: Callable[[Any], Any]) -> DVVSet:
    """Collapse siblings to the one with the greatest `key`, keeping the causal history.

    This is what Riak does for allow_mult=false: the history still records every
    dot, so the collapsed object supersedes all the siblings it replaced.
    """
    dotted = dotted_values(clock)
    if len(dotted) <= 1:
        return clock
    winner_actor, _, winner = max(dotted, key=lambda d: (key(d[2]), d[0], d[1]))
    return DVVSet(
        tuple((a, n, (winner,) if a == winner_actor else ()) for a, n, _ in clock.entries)
    )
