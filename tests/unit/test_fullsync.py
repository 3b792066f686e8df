"""The full-sync core: each step of the comparison, caps and cut lists, and the summary."""

from __future__ import annotations

import pytest

from spinekv import fullsync
from spinekv.fullsync import (
    AHEAD,
    BEHIND,
    BRANCHES,
    CONCURRENT,
    KEYS,
    ROOT,
    SAME,
    SEGMENTS,
    Differences,
    FullSyncCore,
    KeyList,
    Summary,
    combine_key_lists,
    summarise,
)
from spinekv.tictac import Tree, TreeShape
from tests.fullsync_support import compare, tree_of

SHAPE = TreeShape(segment_bits=8, branch_bits=3)
BASE = {(b"t", b"b", f"k{i:03d}".encode()): b"v1" for i in range(50)}


def k(i: int) -> tuple[bytes, bytes, bytes]:
    return (b"t", b"b", f"k{i:03d}".encode())


def test_equal_trees_are_in_sync_after_one_root_each_way():
    found, asks = compare(BASE, dict(BASE), SHAPE)
    assert found == Differences()
    assert [a.what for a in asks] == [ROOT]


def test_keys_only_here_only_there_and_at_other_versions_are_told_apart():
    theirs = dict(BASE)
    del theirs[k(1)]
    theirs[k(2)] = b"v2"
    theirs[(b"t", b"c", b"new")] = b"v1"
    found, asks = compare(BASE, theirs, SHAPE)
    assert found == Differences((k(1),), ((b"t", b"c", b"new"),), (k(2),), complete=True)
    assert [a.what for a in asks] == [ROOT, BRANCHES, SEGMENTS, KEYS]


def test_equal_branches_or_segments_after_all_mean_in_sync():
    # The other cluster changed between answers: its root differed, its branches do not.
    tree = tree_of(BASE, SHAPE)
    core = FullSyncCore(tree)
    core.start()
    assert core.feed(tree.root ^ 1).what == BRANCHES
    assert core.feed(list(tree.branches)) == Differences()
    core.start()
    core.feed(tree.root ^ 1)
    branches = list(tree.branches)
    branches[0] ^= 1
    ask = core.feed(branches)
    assert ask.what == SEGMENTS and ask.positions == tuple(SHAPE.segments_of(0))
    assert core.feed(tree.segment_hashes(ask.positions)) == Differences()


def test_the_cap_on_keys_lists_only_as_many_segments_and_says_the_run_is_incomplete():
    theirs = {n: b"v2" for n in BASE}
    found, asks = compare(BASE, theirs, SHAPE, max_keys=3)
    assert len(asks[-1].positions) == 3
    assert len(found.differ) == 3 and not found.complete
    assert list(found.differ) == sorted(found.differ)


def test_the_cap_on_keys_within_the_listed_segments():
    ours = KeyList({k(i): b"a" for i in range(5)})
    theirs = KeyList({k(i): b"b" for i in range(5)})
    found = fullsync.compare(ours, theirs, 2)
    assert found == Differences(differ=(k(0), k(1)), complete=False)
    assert fullsync.compare(ours, theirs, 5).complete


def test_a_list_cut_short_says_nothing_past_its_last_key():
    ours = KeyList({k(0): b"a", k(5): b"a", k(9): b"a"})
    theirs = KeyList({k(0): b"b", k(3): b"b"}, complete=False)  # cut after k003
    found = fullsync.compare(ours, theirs, 100)
    assert found == Differences(only_theirs=(k(3),), differ=(k(0),), complete=False)
    nothing = fullsync.compare(ours, KeyList({}, complete=False), 100)
    assert nothing == Differences(complete=False)


def test_the_core_refuses_misuse():
    with pytest.raises(ValueError):
        FullSyncCore(Tree(SHAPE), max_keys=0)
    core = FullSyncCore(Tree(SHAPE))
    with pytest.raises(RuntimeError):
        core.feed(0)
    core.start()
    core.feed(1)
    core.feed([1] + [0] * (SHAPE.branches - 1))
    core.feed([1] + [0] * (SHAPE.per_branch - 1))
    with pytest.raises(TypeError):
        core.feed(KeyList({}))  # ours missing
    core.start()
    core.feed(0)  # equal roots: done
    with pytest.raises(RuntimeError):
        core.feed(0)


def test_key_lists_combine_across_partitions_and_stay_a_prefix_when_cut():
    whole = combine_key_lists(
        [[True, [[b"t", b"b", b"k2", b"x"]]], [True, [[b"t", b"b", b"k1", b"y"]]]], 10
    )
    assert whole == KeyList({k_(1): b"y", k_(2): b"x"})
    cut = combine_key_lists(
        [
            [False, [[b"t", b"b", b"k1", b"a"], [b"t", b"b", b"k4", b"a"]]],
            [True, [[b"t", b"b", b"k2", b"b"], [b"t", b"b", b"k7", b"b"]]],
        ],
        10,
    )
    assert cut == KeyList({k_(1): b"a", k_(2): b"b", k_(4): b"a"}, complete=False)
    limited = combine_key_lists([[True, [[b"t", b"b", b"k3", b"a"], [b"t", b"b", b"k1", b"a"]]]], 1)
    assert limited == KeyList({k_(1): b"a"}, complete=False)


def k_(i: int) -> tuple[bytes, bytes, bytes]:
    return (b"t", b"b", f"k{i}".encode())


def test_summary_counts_each_side_s_lead_and_concurrent_keys_on_both():
    found = Differences(
        only_ours=(k(1), k(2)),
        only_theirs=(k(3),),
        differ=(k(4), k(5), k(6), k(7)),
    )
    verdicts = {k(4): AHEAD, k(5): BEHIND, k(6): CONCURRENT, k(7): SAME}
    as_source = summarise(found, verdicts, we_are_source=True, repaired=7, seconds=1.25)
    assert as_source == Summary(4, 3, 7, 1.25)
    assert not as_source.in_sync
    assert as_source.describe() == "source ahead by 4, sink ahead by 3; repaired 7 keys in 1.2s"
    as_sink = summarise(found, verdicts, we_are_source=False)
    assert (as_sink.source_ahead, as_sink.sink_ahead) == (3, 4)


def test_summary_in_sync_and_incomplete_runs():
    synced = summarise(Differences(), {}, we_are_source=True, seconds=0.5)
    assert synced.in_sync and synced.describe() == "in sync; repaired 0 keys in 0.5s"
    same_only = summarise(Differences(differ=(k(1),)), {k(1): SAME}, we_are_source=True)
    assert same_only.in_sync
    capped = summarise(Differences(only_ours=(k(1),), complete=False), {}, we_are_source=True)
    assert not capped.in_sync and "at least" in capped.describe()
    stopped = summarise(Differences(complete=False), {}, we_are_source=True)
    assert not stopped.in_sync


def test_summary_needs_a_valid_verdict_for_every_differing_key():
    with pytest.raises(ValueError, match="no clock verdict"):
        summarise(Differences(differ=(k(1),)), {}, we_are_source=True)
    with pytest.raises(ValueError, match="verdicts are"):
        summarise(Differences(differ=(k(1),)), {k(1): "newer"}, we_are_source=True)
