"""Record MACs and the audit chain (pure): what verifies, and each kind of tampering found."""

from __future__ import annotations

import pytest

from spinekv.records.integrity import IntegrityError, seal, unseal
from spinekv.security import auditchain
from spinekv.security.auditchain import GENESIS, Head, check_chain, link, link_hash, link_key

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


# ------------------------------------------------------------------ record MACs


def test_a_sealed_record_opens_where_it_was_sealed():
    value = seal(KEY, "records", "patients", "9990000018", b'{"a":1}')
    assert unseal(KEY, "records", "patients", "9990000018", value) == b'{"a":1}'


@pytest.mark.parametrize(
    "where",
    [
        ("records", "patients", "9990000026"),  # copied under another patient
        ("records", "scrstate", "9990000018"),  # another bucket
        ("other", "patients", "9990000018"),  # another bucket type
    ],
)
def test_a_valid_record_copied_elsewhere_fails(where):
    value = seal(KEY, "records", "patients", "9990000018", b'{"a":1}')
    with pytest.raises(IntegrityError, match="does not verify"):
        unseal(KEY, *where, value)


def test_a_changed_body_or_another_key_fails():
    value = seal(KEY, "records", "patients", "9990000018", b'{"consent":"No"}')
    with pytest.raises(IntegrityError, match="does not verify"):
        unseal(KEY, "records", "patients", "9990000018", value.replace(b"No", b"Ye"))
    with pytest.raises(IntegrityError, match="does not verify"):
        unseal(OTHER_KEY, "records", "patients", "9990000018", value)


@pytest.mark.parametrize(
    "raw", [b'{"a":1}', b"", b"hmac-sha256:zz\n{}", b"hmac-sha256:" + b"g" * 64 + b"\n{}"]
)
def test_an_unsealed_or_malformed_value_fails(raw):
    with pytest.raises(IntegrityError):
        unseal(KEY, "records", "patients", "9990000018", raw)


def test_the_parts_of_the_place_cannot_be_shifted_into_each_other():
    value = seal(KEY, "records", "ab", "c", b"x")
    with pytest.raises(IntegrityError):
        unseal(KEY, "records", "a", "bc", value)


# ------------------------------------------------------------------ the audit chain


def chain(node: str, count: int, key: bytes = KEY) -> dict[str, list[bytes]]:
    """`count` links of `node`, as a store holds them: key -> siblings."""
    stored, prev = {}, GENESIS
    for seq in range(1, count + 1):
        value = link(key, node, seq, prev, [{"event": {"id": f"e{seq}"}, "recorded_us": seq}])
        stored[link_key(node, seq)] = [value]
        prev = link_hash(value)
    return stored


def head_of(stored: dict[str, list[bytes]]) -> Head:
    last = max(stored)
    return Head(len(stored), link_hash(stored[last][0]))


def test_an_untouched_chain_verifies_against_its_head():
    stored = chain("n1", 5)
    report = check_chain(KEY, "n1", stored.items(), head_of(stored))
    assert report.ok, report
    assert (report.events, report.first_seq, report.last_seq, report.head_seq) == (5, 1, 5, 5)


def test_an_empty_chain_verifies():
    assert check_chain(KEY, "n1", [], Head()).ok


def test_a_deleted_record_is_a_gap():
    stored = chain("n1", 6)
    head = head_of(stored)
    del stored[link_key("n1", 3)], stored[link_key("n1", 4)]
    report = check_chain(KEY, "n1", stored.items(), head)
    assert report.gaps == [(3, 4)] and not report.edits and not report.forgeries


def test_a_deleted_tail_shows_against_the_head_only():
    stored = chain("n1", 4)
    head = head_of(stored)
    del stored[link_key("n1", 4)]
    assert check_chain(KEY, "n1", stored.items(), head).gaps == [(4, 4)]
    assert check_chain(KEY, "n1", stored.items()).ok  # without the head it cannot be told


def test_an_edited_record_is_an_edit():
    stored = chain("n1", 3)
    head = head_of(stored)
    key = link_key("n1", 2)
    stored[key] = [stored[key][0].replace(b'"e2"', b'"e9"')]
    report = check_chain(KEY, "n1", stored.items(), head)
    assert report.edits == [2] and not report.gaps and not report.forgeries


def test_swapped_records_are_edits():
    stored = chain("n1", 3)
    head = head_of(stored)
    a, b = link_key("n1", 1), link_key("n1", 2)
    stored[a], stored[b] = stored[b], stored[a]
    assert check_chain(KEY, "n1", stored.items(), head).edits == [1, 2]


def test_a_record_resealed_without_the_key_is_a_forgery_beside_or_beyond_the_chain():
    stored = chain("n1", 3)
    head = head_of(stored)
    forged_beyond = link(OTHER_KEY, "n1", 4, head.hash, [{"event": {"id": "fake"}}])
    stored[link_key("n1", 4)] = [forged_beyond]
    sibling = link(OTHER_KEY, "n1", 2, GENESIS, [{"event": {"id": "fake"}}])
    stored[link_key("n1", 2)].append(sibling)
    report = check_chain(KEY, "n1", stored.items(), head)
    assert report.forgeries == [link_key("n1", 2), link_key("n1", 4)], report
    assert not report.gaps and not report.edits


def test_another_nodes_link_copied_in_is_refused():
    theirs = chain("n2", 1)[link_key("n2", 1)]
    report = check_chain(KEY, "n1", [(link_key("n1", 1), theirs)])
    assert report.forgeries == [link_key("n1", 1)] and report.events == 0


def test_a_fork_at_one_seq_is_an_edit():
    stored = chain("n1", 2)
    other = link(KEY, "n1", 2, GENESIS, [{"event": {"id": "again"}}])
    stored[link_key("n1", 2)].append(other)
    assert check_chain(KEY, "n1", stored.items()).edits == [2]


def test_a_head_that_names_another_record_is_an_edit():
    stored = chain("n1", 2)
    assert check_chain(KEY, "n1", stored.items(), Head(2, "f" * 64)).edits == [2]


def test_links_open_only_with_their_key_and_heads_round_trip():
    value = chain("n1", 1)[link_key("n1", 1)][0]
    found = auditchain.opened(KEY, value)
    assert found is not None and (found.node, found.seq, found.prev) == ("n1", 1, GENESIS)
    assert auditchain.opened(OTHER_KEY, value) is None
    assert auditchain.opened(KEY, b"junk") is None
    head = Head(7, "a" * 64)
    assert auditchain.decode_head(auditchain.encode_head(head)) == head


def test_node_ranges_hold_only_that_nodes_links():
    first, last = auditchain.node_range("n1")
    assert first <= link_key("n1", 1) <= link_key("n1", 10**11) <= last
    assert not first <= link_key("n10", 1) <= last
