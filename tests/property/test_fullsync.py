"""Full-sync's law: over any two key sets, under the cap, the core finds exactly the keys
that differ, each on the right side."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spinekv.fullsync import DEFAULT_MAX_KEYS
from spinekv.tictac import TreeShape
from tests.fullsync_support import compare

# Small trees, so that keys share segments and branches and every step is exercised.
SHAPE = TreeShape(segment_bits=6, branch_bits=2)
NAMES = st.tuples(
    st.sampled_from([b"t", b"u"]), st.sampled_from([b"a", b"b"]), st.binary(max_size=4)
)
VERSIONS = st.sampled_from([b"v1", b"v2", b"v3"])
KEYSET = st.dictionaries(NAMES, VERSIONS, max_size=40)


@given(KEYSET, KEYSET)
def test_the_core_finds_exactly_the_symmetric_difference(ours, theirs):
    found, _ = compare(ours, theirs, SHAPE)
    assert found.complete
    assert set(found.only_ours) == ours.keys() - theirs.keys()
    assert set(found.only_theirs) == theirs.keys() - ours.keys()
    assert set(found.differ) == {n for n in ours.keys() & theirs.keys() if ours[n] != theirs[n]}
    assert len(found.differ) + len(found.only_ours) + len(found.only_theirs) < DEFAULT_MAX_KEYS


@given(KEYSET, KEYSET, st.integers(min_value=1, max_value=5))
def test_under_a_cap_the_core_finds_only_true_differences(ours, theirs, cap):
    found, _ = compare(ours, theirs, SHAPE, max_keys=cap)
    named = [*found.only_ours, *found.only_theirs, *found.differ]
    assert len(named) <= cap
    assert all(ours.get(n) != theirs.get(n) for n in named)
    differing = {n for n in ours.keys() | theirs.keys() if ours.get(n) != theirs.get(n)}
    assert found.complete == (len(named) == len(differing))
