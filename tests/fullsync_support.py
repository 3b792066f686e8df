"""Drive a full-sync comparison between two in-memory key sets (unit and property tests)."""

from __future__ import annotations

from spinekv.fullsync import BRANCHES, KEYS, ROOT, Ask, Differences, FullSyncCore, Ident, KeyList
from spinekv.tictac import Tree, TreeShape, key_hash

Versions = dict[Ident, bytes]


def tree_of(versions: Versions, shape: TreeShape) -> Tree:
    tree = Tree(shape)
    for (t, b, k), digest in versions.items():
        tree.add(key_hash(t, b, k), digest)
    return tree


def in_segments(versions: Versions, shape: TreeShape, segments: tuple[int, ...]) -> Versions:
    wanted = set(segments)
    return {n: v for n, v in versions.items() if shape.segment_of(key_hash(*n)) in wanted}


def compare(ours: Versions, theirs: Versions, shape: TreeShape, **kw) -> tuple[Differences, list]:
    """Run the core over two key sets; (its Differences, the Asks it made)."""
    mine, other = tree_of(ours, shape), tree_of(theirs, shape)
    core = FullSyncCore(mine, **kw)
    asks = []
    step = core.start()
    while isinstance(step, Ask):
        asks.append(step)
        if step.what == ROOT:
            step = core.feed(other.root)
        elif step.what == BRANCHES:
            step = core.feed(list(other.branches))
        elif step.what == KEYS:
            positions = step.positions or ()
            step = core.feed(
                KeyList(in_segments(theirs, shape, positions)),
                KeyList(in_segments(ours, shape, positions)),
            )
        else:
            step = core.feed(other.segment_hashes(step.positions or ()))
    return step, asks
