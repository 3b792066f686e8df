"""The patient sibling merge: order-free, idempotent, and no acknowledged update silently lost."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from spinekv.records import patient as rules
from tests.records_support import patient

TODAY = dt.date(2026, 1, 1)
BASE = rules.create(
    rules.validate(patient(), TODAY), "9990000018", update_id="create", at_us=1, by="x"
)
# Each choice changes one top-level field to a value no other choice uses.
CHANGES = {
    "gender": [{"op": "replace", "path": "/gender", "value": "male"}],
    "birthDate": [{"op": "replace", "path": "/birthDate", "value": "1970-01-01"}],
    "telecom": [{"op": "add", "path": "/telecom/-", "value": {"system": "email", "value": "a@b"}}],
    "address": [{"op": "replace", "path": "/address/0/postalCode", "value": "M14 5RB"}],
    "name": [{"op": "replace", "path": "/name/0/family", "value": "Jones"}],
    "generalPractitioner": [{"op": "remove", "path": "/generalPractitioner"}],
}


@st.composite
def sibling_sets(draw):
    """Siblings made concurrently from BASE, each by its own chain of 1-2 updates."""
    count = draw(st.integers(2, 4))
    siblings = []
    for s in range(count):
        env = BASE
        fields = draw(
            st.lists(st.sampled_from(sorted(CHANGES)), min_size=1, max_size=2, unique=True)
        )
        for step, field in enumerate(fields):
            ops = [dict(op) for op in CHANGES[field]]
            if field == "name":  # distinct values per writer, so a collision really differs
                ops[0]["value"] = f"Writer{s}x{step}"
            at = draw(st.integers(2, 1000))
            env = rules.apply_patch(
                env, ops, update_id=f"u{s}.{step}", at_us=at, by=f"w{s}", today=TODAY
            )
        siblings.append(env)
    return siblings


@settings(max_examples=300, deadline=None)
@given(sibling_sets(), st.randoms(use_true_random=False))
def test_the_merge_does_not_depend_on_sibling_order(siblings, rnd):
    shuffled = list(siblings)
    rnd.shuffle(shuffled)
    assert rules.merge(shuffled) == rules.merge(siblings)


@settings(max_examples=200, deadline=None)
@given(sibling_sets())
def test_merging_a_merge_with_its_own_siblings_changes_nothing(siblings):
    merged = rules.merge(siblings)
    assert rules.merge([merged, merged]) == merged
    assert rules.merge([merged, *siblings]) == merged


@settings(max_examples=300, deadline=None)
@given(sibling_sets())
def test_every_update_is_kept_or_recorded_as_superseded(siblings):
    merged = rules.merge(siblings)
    updates = {uid for s in siblings for uid, e in s["history"].items() if e["kind"] == "update"}
    # Every acknowledged update is in the merged history, and the version counts each once.
    assert updates <= set(merged["history"])
    assert rules.version(merged) == 1 + len(updates)
    conflicts = [e for e in merged["history"].values() if e["kind"] == "conflict"]
    for field in rules.FIELDS:
        writers = [s for s in siblings if s["stamps"].get(field) != BASE["stamps"].get(field)]
        values = {repr(s["resource"].get(field)) for s in writers}
        if len(writers) == 1:
            # Only one side changed it: its change survives, with no conflict recorded.
            assert merged["resource"].get(field) == writers[0]["resource"].get(field)
        if len(values) > 1:
            # Sides disagree: the newest stamp wins and every other value is in the history.
            winner = max(writers, key=lambda s: s["stamps"][field])
            assert merged["resource"].get(field) == winner["resource"].get(field)
            lost = {repr(c["value"]) for c in conflicts if c["field"] == field}
            assert values - {repr(winner["resource"].get(field))} <= lost
