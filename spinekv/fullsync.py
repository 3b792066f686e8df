"""Full-sync's decisions (pure): what to ask the other cluster next, which keys differ, and
how a run is summed up.

As aae_exchange.py is to an exchange between replicas, this is to full-sync between two
clusters (issue 16): the caller holds our cluster's tree for a scope (a coverage fold of
`tictac` trees, keyed by key hash alone, so ring sizes and n_vals need not match), sends
each `Ask` to the other cluster, and feeds its answers back. The steps: roots (equal: in
sync), all branch hashes, the segment hashes of the differing branches, then both sides'
(type, bucket, key) -> version lists of the differing segments. `Differences` names the
keys only we hold, only they hold, and those both hold at different versions.

Whether a differing key is ahead, behind or concurrent needs the two objects' clocks, which
the caller fetches; it reports a verdict per key to `summarise`, which counts each side's
lead: "in sync", or "source ahead by n, sink ahead by m".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .tictac import Tree, differing

DEFAULT_MAX_KEYS = 10_000
ROOT, BRANCHES, SEGMENTS, KEYS = "root", "branches", "segments", "keys"
# A differing key's clock on our side against theirs: ours descends theirs, theirs descends
# ours, each has what the other lacks, or the clocks are the same after all.
AHEAD, BEHIND, CONCURRENT, SAME = "ahead", "behind", "concurrent", "same"

Ident = tuple[bytes, bytes, bytes]  # (type, bucket, key)


@dataclass(frozen=True, slots=True)
class KeyList:
    """One cluster's (type, bucket, key) -> version list of some segments. A list cut short
    by a size limit (`complete` False) holds a prefix in key order: it says nothing past its
    last key."""

    versions: Mapping[Ident, bytes]
    complete: bool = True


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask both clusters for this: the root, all branch hashes, the hashes of the listed
    segments, or the key lists of the listed segments."""

    what: str
    positions: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Differences:
    """The keys that differ, each sorted. `complete` is False when the run stopped at its cap
    or at a key list cut short: more may differ, for the next run."""

    only_ours: tuple[Ident, ...] = ()
    only_theirs: tuple[Ident, ...] = ()
    differ: tuple[Ident, ...] = ()
    complete: bool = True


class FullSyncCore:
    """One comparison of our cluster's tree with another's; `start`, then `feed` each answer
    until it returns Differences."""

    def __init__(self, tree: Tree, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._tree = tree
        self._max = max_keys
        self._step: Ask | None = None
        self._capped = False  # more segments differed than the run may list

    def start(self) -> Ask:
        self._step = Ask(ROOT)
        return self._step

    def feed(self, theirs: object, ours: KeyList | None = None) -> Ask | Differences:
        """The other cluster's answer to the last Ask (a root, a list of hashes, a KeyList);
        for key lists also our own KeyList of the same segments."""
        step = self._step
        if step is None:
            raise RuntimeError("feed before start, or after the Differences")
        if step.what == ROOT:
            return self._done() if theirs == self._tree.root else self._ask(BRANCHES, None)
        if step.what == BRANCHES:
            branches = self._tree.branches
            diff = differing(branches, theirs, range(len(branches)))  # type: ignore[arg-type]
            shape = self._tree.shape
            if not diff:
                return self._done()
            return self._ask(SEGMENTS, [s for b in diff for s in shape.segments_of(b)])
        if step.what == SEGMENTS:
            positions = step.positions or ()
            ours_h = self._tree.segment_hashes(positions)
            diff = differing(ours_h, theirs, positions)  # type: ignore[arg-type]
            if not diff:
                return self._done()
            # Each differing segment holds at least one differing key: listing more segments
            # than the cap lists keys this run cannot report.
            self._capped = len(diff) > self._max
            return self._ask(KEYS, diff[: self._max])
        if ours is None or not isinstance(theirs, KeyList):
            raise TypeError("key lists are fed as two KeyLists, theirs and ours")
        return self._done(compare(ours, theirs, self._max, capped=self._capped))

    def _ask(self, what: str, positions: Sequence[int] | None) -> Ask:
        self._step = Ask(what, None if positions is None else tuple(positions))
        return self._step

    def _done(self, found: Differences | None = None) -> Differences:
        self._step = None
        return Differences() if found is None else found


def compare(ours: KeyList, theirs: KeyList, max_keys: int, *, capped: bool = False) -> Differences:
    """Sort the keys of two lists of the same segments into only ours, only theirs and at
    different versions, at most `max_keys` of them, first in key order. Past the end of a
    list cut short nothing is known, so keys beyond the shorter cut wait for the next run."""
    short = [kl for kl in (ours, theirs) if not kl.complete]
    if not all(kl.versions for kl in short):
        return Differences(complete=False)  # a list cut before its first key says nothing
    cut = min((max(kl.versions) for kl in short), default=None)
    names = sorted(
        k
        for k in ours.versions.keys() | theirs.versions.keys()
        if (cut is None or k <= cut) and ours.versions.get(k) != theirs.versions.get(k)
    )
    kept = names[:max_keys]
    return Differences(
        only_ours=tuple(k for k in kept if k not in theirs.versions),
        only_theirs=tuple(k for k in kept if k not in ours.versions),
        differ=tuple(k for k in kept if k in ours.versions and k in theirs.versions),
        complete=not (capped or short or len(names) > max_keys),
    )


def combine_key_lists(parts: Iterable[list], limit: int) -> KeyList:
    """One cluster's KeyList from its coverage answers to a keys-in-segments fold, each
    [complete, [[type, bucket, key, version], ...]] sorted and cut to `limit`. Each key is in
    one answer only; the result is cut to `limit`, and to the shortest cut answer's last
    key, so that a cut list is still a prefix in key order."""
    found: dict[Ident, bytes] = {}
    cut: Ident | None = None
    for complete, entries in parts:
        rows = [((bytes(t), bytes(b), bytes(k)), bytes(v)) for t, b, k, v in entries]
        found.update(rows)
        if not complete and rows:
            last = rows[-1][0]
            cut = last if cut is None else min(cut, last)
    names = sorted(k for k in found if cut is None or k <= cut)
    kept = names[:limit]
    return KeyList({k: found[k] for k in kept}, cut is None and len(names) <= limit)


@dataclass(frozen=True, slots=True)
class Summary:
    """One run's result, as the issue reports it."""

    source_ahead: int
    sink_ahead: int
    repaired: int = 0
    seconds: float = 0.0
    complete: bool = True  # False: the run stopped at its cap; more may differ

    @property
    def in_sync(self) -> bool:
        return self.complete and not self.source_ahead and not self.sink_ahead

    def describe(self) -> str:
        if self.in_sync:
            head = "in sync"
        else:
            head = f"source ahead by {self.source_ahead}, sink ahead by {self.sink_ahead}"
            if not self.complete:
                head += " (at least: the run stopped at its cap)"
        return f"{head}; repaired {self.repaired} keys in {self.seconds:.1f}s"


def summarise(
    found: Differences,
    verdicts: Mapping[Ident, str],
    *,
    we_are_source: bool,
    repaired: int = 0,
    seconds: float = 0.0,
) -> Summary:
    """Count each side's lead: a key only one side holds, or whose clock there descends the
    other's, puts that side ahead; a concurrent key puts both ahead (the repair leaves
    siblings). `verdicts` holds the caller's clock comparison for every key in `differ`."""
    missing = [k for k in found.differ if k not in verdicts]
    if missing:
        raise ValueError(f"no clock verdict for {len(missing)} differing keys, e.g. {missing[0]}")
    if not set(verdicts.values()) <= {AHEAD, BEHIND, CONCURRENT, SAME}:
        raise ValueError(f"verdicts are {AHEAD}, {BEHIND}, {CONCURRENT} or {SAME}")
    kinds = [verdicts[k] for k in found.differ]
    ours = len(found.only_ours) + kinds.count(AHEAD) + kinds.count(CONCURRENT)
    theirs = len(found.only_theirs) + kinds.count(BEHIND) + kinds.count(CONCURRENT)
    source, sink = (ours, theirs) if we_are_source else (theirs, ours)
    return Summary(source, sink, repaired, seconds, found.complete)
