"""A patient's SCR state: the merge is a join, and neither field goes back in time."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spinekv.records.scr.codes import PERMISSIONS
from spinekv.records.scr.state import (
    decode_state,
    empty_state,
    encode_state,
    merge_state,
    permission_code,
    with_current,
    with_permission,
)

ids = st.sampled_from(["A", "B", "C"])
times = st.integers(min_value=0, max_value=5)
currents = st.none() | st.builds(lambda i, t: {"id": i, "at_us": t}, ids, times)
permissions = st.none() | st.builds(
    lambda c, t, b: {"code": c, "at_us": t, "by": b},
    st.sampled_from(PERMISSIONS),
    times,
    st.sampled_from(["u1", "u2"]),
)
states = st.builds(lambda c, p: {"current": c, "permission": p}, currents, permissions)


@given(states, states)
def test_merge_is_commutative(a, b):
    assert merge_state([a, b]) == merge_state([b, a])


@given(states, states, states)
def test_merge_is_associative(a, b, c):
    left = merge_state([merge_state([a, b]), c])
    right = merge_state([a, merge_state([b, c])])
    assert left == right == merge_state([a, b, c])


@given(states)
def test_merge_is_idempotent_and_survives_encoding(a):
    assert merge_state([a, a]) == merge_state([a]) == a
    assert decode_state(encode_state(a)) == a


def test_merge_keeps_the_newest_of_each_field_independently():
    a = {"current": {"id": "A", "at_us": 5}, "permission": {"code": "No", "at_us": 1, "by": "u"}}
    b = {"current": {"id": "B", "at_us": 3}, "permission": {"code": "Yes", "at_us": 9, "by": "u"}}
    merged = merge_state([a, b])
    assert merged["current"]["id"] == "A"
    assert permission_code(merged) == "Yes"


def test_with_current_and_with_permission_never_go_back_in_time():
    state = with_current(empty_state(), "NEW", 10)
    assert with_current(state, "OLD", 5)["current"]["id"] == "NEW"
    assert with_current(state, "NEWER", 11)["current"]["id"] == "NEWER"
    state = with_permission(state, "No", 10, "u")
    assert permission_code(with_permission(state, "Yes", 9, "u")) == "No"
    assert permission_code(with_permission(state, "Yes", 11, "u")) == "Yes"


def test_decode_state_ignores_malformed_fields_but_refuses_what_is_no_state():
    # Junk read as "no state" would read as "no consent recorded": consent must fail closed.
    with pytest.raises(ValueError):
        decode_state(b"junk")
    raw = json.dumps({"current": {"id": 3}, "permission": {"code": "Maybe", "at_us": 1, "by": "u"}})
    assert decode_state(raw.encode()) == empty_state()
