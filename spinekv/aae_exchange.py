"""An anti-entropy exchange's decisions (pure): what to ask the peer next, and which keys to repair.

As quorum.py is to the coordinator, this is to node/exchange.py: the driver sends each
`Ask` to the peer (and asks its own trees the same), feeds both answers back, and repairs
what `Done` names. The steps: roots (equal: in sync, one message each way), all branch
hashes, the segment hashes of the differing branches, then the (key -> version) lists of
the differing segments from both sides, twice. A key is repaired only if it differs on
both looks, so a write still reaching the replicas is not mistaken for a lost one.

Our tree is read at every step, not copied at the start: it keeps changing under the
exchange, and what matters is whether the two sides still differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .tictac import Tree, differing, differing_keys

DEFAULT_MAX_REPAIRS = 1000
ROOT, BRANCHES, SEGMENTS, KEYS = "root", "branches", "segments", "keys"
IN_SYNC, UNCONFIRMED, REPAIR = "in_sync", "unconfirmed", "repair"


@dataclass(frozen=True, slots=True)
class KeyList:
    """One side's (key -> version) list of some segments. A list cut short by a size limit
    (`complete` False) holds a prefix in key order, so it says nothing past its last key."""

    versions: Mapping[bytes, bytes]
    complete: bool = True


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask both sides for this: the root, branch hashes (positions None: all), the hashes of
    the listed segments, or the key lists of the listed segments."""

    what: str
    positions: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """The exchange's end: in sync, differences gone on the second look, or keys to repair."""

    outcome: str
    repair: tuple[bytes, ...] = ()


Step = Ask | Done


class ExchangeCore:
    """One exchange of our tree with a peer's; `start`, then `feed` each answer until Done."""

    def __init__(self, tree: Tree, max_repairs: int = DEFAULT_MAX_REPAIRS) -> None:
        if max_repairs < 1:
            raise ValueError("max_repairs must be at least 1")
        self._tree = tree
        self._max = max_repairs
        self._step: Ask | None = None
        self._first: list[bytes] | None = None  # the keys the first look found differing

    def start(self) -> Ask:
        self._step = Ask(ROOT)
        return self._step

    def feed(self, theirs: object, ours: KeyList | None = None) -> Step:
        """The peer's answer to the last Ask (a root, a list of hashes, a KeyList); for key
        lists also our own KeyList of the same segments."""
        step = self._step
        if step is None:
            raise RuntimeError("feed before start, or after Done")
        if step.what == ROOT:
            if theirs == self._tree.root:
                return self._done(IN_SYNC)
            return self._ask(BRANCHES, None)
        if step.what == BRANCHES:
            branches = self._tree.branches
            diff = differing(branches, theirs, range(len(branches)))  # type: ignore[arg-type]
            if not diff:
                return self._done(IN_SYNC)
            shape = self._tree.shape
            return self._ask(SEGMENTS, [s for b in diff for s in shape.segments_of(b)])
        if step.what == SEGMENTS:
            positions = step.positions or ()
            ours_h = self._tree.segment_hashes(positions)
            # Each differing segment holds at least one key to repair: asking for more
            # segments than max_repairs only lists keys that cannot be repaired this time.
            diff = differing(ours_h, theirs, positions)[: self._max]  # type: ignore[arg-type]
            if not diff:
                return self._done(IN_SYNC)
            return self._ask(KEYS, diff)
        if ours is None or not isinstance(theirs, KeyList):
            raise TypeError("key lists are fed as two KeyLists, theirs and ours")
        found = compare_lists(ours, theirs)
        if self._first is None:
            if not found:
                return self._done(UNCONFIRMED)
            self._first = found
            return self._ask(KEYS, step.positions)  # the second look, at the same segments
        confirmed = sorted(set(self._first) & set(found))[: self._max]
        return self._done(REPAIR, confirmed) if confirmed else self._done(UNCONFIRMED)

    def _ask(self, what: str, positions: Sequence[int] | None) -> Ask:
        self._step = Ask(what, None if positions is None else tuple(positions))
        return self._step

    def _done(self, outcome: str, repair: Sequence[bytes] = ()) -> Done:
        self._step = None
        return Done(outcome, tuple(repair))


def compare_lists(ours: KeyList, theirs: KeyList) -> list[bytes]:
    """Keys whose versions differ, sorted; past the end of a list cut short nothing is known,
    so keys beyond the shorter cut are left for the next exchange."""
    short = [kl for kl in (ours, theirs) if not kl.complete]
    if not short:
        return differing_keys(ours.versions, theirs.versions)
    if not all(kl.versions for kl in short):
        return []
    cut = min(max(kl.versions) for kl in short)
    return differing_keys(
        {k: v for k, v in ours.versions.items() if k <= cut},
        {k: v for k, v in theirs.versions.items() if k <= cut},
    )
