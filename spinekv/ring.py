"""Consistent-hash ring (pure): key hashing, partitions, preference lists, window checks."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass

RING_TOP = 2**160


def hash_key(bucket_type: bytes, bucket: bytes, key: bytes) -> int:
    """SHA-1 of the length-prefixed triple, as an int in [0, RING_TOP)."""
    # Length prefixes keep (b"a", b"bc") and (b"ab", b"c") apart.
    encoded = b"".join(len(part).to_bytes(4, "big") + part for part in (bucket_type, bucket, key))
    return int.from_bytes(hashlib.sha1(encoded).digest(), "big")


def partition_for(h: int, ring_size: int) -> int:
    """Index of the equal slice of [0, RING_TOP) that holds h."""
    check_ring_size(ring_size)
    if not 0 <= h < RING_TOP:
        raise ValueError(f"hash {h} is outside [0, 2**160)")
    return h // (RING_TOP // ring_size)


@dataclass(frozen=True)
class Ring:
    """Partition ownership: owners[i] is the node that owns partition i."""

    ring_size: int
    owners: tuple[str, ...]

    def __post_init__(self) -> None:
        check_ring_size(self.ring_size)
        # Accept any sequence but store a tuple so the ring stays hashable and immutable.
        object.__setattr__(self, "owners", tuple(self.owners))
        if len(self.owners) != self.ring_size:
            raise ValueError(f"{len(self.owners)} owners for a ring of {self.ring_size}")

    def partition_of(self, bucket_type: bytes, bucket: bytes, key: bytes) -> int:
        return partition_for(hash_key(bucket_type, bucket, key), self.ring_size)

    def members(self) -> list[str]:
        return sorted(set(self.owners))

    def partitions_of(self, node: str) -> list[int]:
        return [i for i, owner in enumerate(self.owners) if owner == node]

    def shares(self) -> dict[str, int]:
        counts = Counter(self.owners)
        return {node: counts[node] for node in sorted(counts)}


@dataclass(frozen=True)
class PrefEntry:
    """One replica slot; partition is the primary's index even when a fallback hosts it."""

    partition: int
    node: str
    primary: bool


def primaries(ring: Ring, partition: int, n_val: int) -> list[PrefEntry]:
    """The owners of partition .. partition+n_val-1 (wrapping), ignoring liveness."""
    check_n_val(n_val, ring.ring_size)
    indices = ((partition + i) % ring.ring_size for i in range(n_val))
    return [PrefEntry(p, ring.owners[p], True) for p in indices]


def preference_list(
    ring: Ring,
    partition: int,
    n_val: int,
    up: Callable[[str], bool] | Collection[str],
) -> list[PrefEntry]:
    """Up primaries in ring order, then one fallback per down primary (riak_core_apl style).

    up is a predicate or a collection of the up nodes' names.
    """
    is_up = up if callable(up) else frozenset(up).__contains__
    wanted = primaries(ring, partition, n_val)
    live = [entry for entry in wanted if is_up(entry.node)]
    if len(live) == len(wanted):
        return live  # the common case: nobody to replace, so skip the fallback walk
    down = [entry for entry in wanted if entry not in live]
    if not down:
        return live
    hosts = Counter(entry.node for entry in live)
    candidates = _fallback_candidates(ring, partition, n_val, is_up, len(down), set(hosts))
    if not candidates:
        return live  # nobody is up to stand in
    fallbacks = []
    for entry in down:
        node = _pick_fallback(candidates, hosts)
        hosts[node] += 1
        fallbacks.append(PrefEntry(entry.partition, node, False))
    return live + fallbacks


def ring_violations(ring: Ring, n_val: int) -> list[int]:
    """Partitions p whose window p .. p+n_val-1 has some owner twice."""
    check_n_val(n_val, ring.ring_size)
    return violating_starts(ring.owners, n_val)


# --- validation ----------------------------------------------------------------------------


def check_ring_size(ring_size: int) -> None:
    """ValueError unless ring_size is a power of two."""
    if ring_size < 1 or ring_size & (ring_size - 1):
        raise ValueError(f"ring_size must be a power of two, got {ring_size}")


def check_n_val(n_val: int, ring_size: int) -> None:
    """ValueError unless 1 <= n_val <= ring_size."""
    if not 1 <= n_val <= ring_size:
        raise ValueError(f"n_val must be in 1..{ring_size}, got {n_val}")


# --- preference lists ----------------------------------------------------------------------


def _fallback_candidates(
    ring: Ring,
    partition: int,
    n_val: int,
    is_up: Callable[[str], bool],
    wanted: int,
    listed: set[str],
) -> list[str]:
    """Distinct up owners met walking clockwise from the first partition after the primaries.

    The walk stops once wanted of them are not listed yet; if it goes all the way round,
    every up owner is a candidate, for reuse.
    """
    walk = ((partition + n_val + i) % ring.ring_size for i in range(ring.ring_size))
    seen: dict[str, None] = {}
    unlisted = 0
    for p in walk:
        owner = ring.owners[p]
        if owner not in seen and is_up(owner):
            seen[owner] = None
            unlisted += owner not in listed
            if unlisted == wanted:
                break
    return list(seen)


def _pick_fallback(candidates: list[str], hosts: Counter[str]) -> str:
    """The first candidate not in the list yet, else the least loaded (ties in walk order)."""
    # A down primary's partition is hosted by nobody else in the list, so any up node may
    # take it; spreading the reuse keeps one survivor from carrying every fallback.
    return min(candidates, key=lambda node: hosts[node])


# --- windows -------------------------------------------------------------------------------


def violating_starts(owners: Sequence[Hashable], n_val: int) -> list[int]:
    """Starts p whose window owners[p .. p+n_val-1] (wrapping) has some owner twice."""
    return [p for p in range(len(owners)) if not window_is_distinct(owners, p, n_val)]


def window_is_distinct(owners: Sequence[Hashable], start: int, n_val: int) -> bool:
    """Whether the n_val owners from start on (wrapping) are all different."""
    end = start + n_val
    window = (
        owners[start:end] if end <= len(owners) else [*owners[start:], *owners[: end - len(owners)]]
    )
    return len(set(window)) == n_val
