"""A cluster's side of full-sync: its Tictac tree for a scope, and the keys of some segments,
each a coverage fold (every key partition answered once) of the per-vnode folds."""

from __future__ import annotations

from collections.abc import Iterable

from ..fullsync import KeyList, combine_key_lists
from ..tictac import Tree
from .coverage import Coverage
from .folds import FULLSYNC_SHAPE, KEYS_IN_SEGMENTS, TICTAC, Scope


async def cluster_tree(coverage: Coverage, scope: Scope, n_val: int, timeout: float) -> Tree:
    """The cluster's tree of the objects in `scope`: the XOR of the covering vnodes' trees,
    each of which counts only the key partitions it answers for."""
    tree = Tree(FULLSYNC_SHAPE)
    async for part in coverage.run(TICTAC, [scope.to_wire()], n_val, timeout):
        tree.combine(Tree.from_bytes(bytes(part[0]), FULLSYNC_SHAPE))
    return tree


async def segment_keys(
    coverage: Coverage,
    scope: Scope,
    segments: Iterable[int],
    limit: int,
    n_val: int,
    timeout: float,
) -> KeyList:
    """(type, bucket, key) -> version of the objects in `scope` in `segments`, at most
    `limit` of them, first in key order (the list says whether it was cut)."""
    args = [scope.to_wire(), sorted(set(segments)), limit]
    parts = [part async for part in coverage.run(KEYS_IN_SEGMENTS, args, n_val, timeout)]
    return combine_key_lists(parts, limit)
