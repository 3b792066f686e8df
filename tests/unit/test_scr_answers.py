"""The stored SCR codec, and the FHIR answers built from it: DocumentReference, Bundle, audit."""

from __future__ import annotations

import pytest

from spinekv.records.outcome import NHS_NUMBER_SYSTEM
from spinekv.records.scr.answers import document_reference_bundle, scr_bundle
from spinekv.records.scr.audit import audit_bundle, audit_event, encode_audit
from spinekv.records.scr.codes import SCR_ID_SYSTEM, SCR_TYPE_CODE
from spinekv.records.scr.state import empty_state, with_current, with_permission
from spinekv.records.scr.stored import decode_stored, encode_stored, pick_stored, same_upload
from spinekv.records.scr.upload import validate_document
from tests.unit.scr_support import NHS, SCR_ID, WHEN, document

# ------------------------------------------------------------------ stored documents


def test_stored_roundtrip_identity_and_sibling_pick():
    upload = validate_document(document())
    value = encode_stored(upload, 100)
    stored = decode_stored(value)
    assert stored["scr_id"] == SCR_ID and stored["stored_us"] == 100
    assert same_upload(stored, upload)
    other = validate_document(document(author="Dr Other"))
    assert not same_upload(stored, other)
    later = encode_stored(other, 200)
    assert pick_stored([later, value])["stored_us"] == 100
    assert pick_stored([value, later])["stored_us"] == 100
    # A sibling that is no stored SCR makes the record untrustworthy, not silently absent.
    with pytest.raises(ValueError):
        pick_stored([value, b"junk"])


# ------------------------------------------------------------------ answers


BASE = "http://127.0.0.1:8098/summary-care-record/FHIR/R4"


def test_document_reference_bundle_points_at_the_current_scr():
    state = with_permission(
        with_current(empty_state(), SCR_ID, 1_700_000_000_000_000), "Ask", 1, "u"
    )
    bundle = document_reference_bundle("b1", NHS, state, BASE)
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    ref = bundle["entry"][0]["resource"]
    assert ref["resourceType"] == "DocumentReference"
    assert ref["masterIdentifier"] == {"system": SCR_ID_SYSTEM, "value": SCR_ID}
    assert ref["type"]["coding"][0]["code"] == SCR_TYPE_CODE
    assert ref["subject"]["identifier"] == {"system": NHS_NUMBER_SYSTEM, "value": NHS}
    assert ref["date"].startswith("2023-11-14T22:13:20")
    assert ref["securityLabel"][0]["coding"][0]["code"] == "Ask"
    url = ref["content"][0]["attachment"]["url"]
    assert url == (
        f"{BASE}/Bundle?composition.identifier={SCR_ID}"
        f"&composition.subject:Patient.identifier={NHS_NUMBER_SYSTEM}|{NHS}"
    )
    assert bundle["entry"][1]["search"]["mode"] == "include"
    # The same SCR keeps the same DocumentReference id from find to find.
    assert (
        document_reference_bundle("b2", NHS, state, BASE)["entry"][0]["resource"]["id"] == ref["id"]
    )
    empty = document_reference_bundle("b3", NHS, empty_state(), BASE)
    assert empty["total"] == 0 and empty["entry"] == []


def test_scr_bundle_is_a_searchset_of_the_document_entries_composition_first():
    doc = document()
    doc["entry"].reverse()
    stored = decode_stored(encode_stored(validate_document(doc), 5))
    bundle = scr_bundle("b", stored, WHEN)
    assert bundle["type"] == "searchset"
    assert bundle["total"] == len(doc["entry"]) == len(bundle["entry"])
    assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    assert {e["fullUrl"] for e in bundle["entry"]} == {e["fullUrl"] for e in doc["entry"]}


def test_audit_event_records_who_role_when_what_and_reason():
    event = audit_event(
        "E1",
        user="demo-clinician",
        role="clinical",
        recorded_us=1_700_000_000_000_000,
        nhs=NHS,
        scr_id=SCR_ID,
        emergency_reason="unconscious",
        request_id="r-1",
    )
    assert event["resourceType"] == "AuditEvent" and event["outcome"] == "0"
    agent = event["agent"][0]
    assert agent["who"]["identifier"]["value"] == "demo-clinician"
    assert agent["role"] == [{"text": "clinical"}]
    assert event["recorded"].startswith("2023-11-14T22:13:20")
    whats = [e["what"]["identifier"] for e in event["entity"]]
    assert {"system": NHS_NUMBER_SYSTEM, "value": NHS} in whats
    assert {"system": SCR_ID_SYSTEM, "value": SCR_ID} in whats
    assert event["purposeOfEvent"][0]["text"] == "unconscious"
    plain = audit_event("E2", user="u", role="admin", recorded_us=1, nhs=NHS, scr_id=SCR_ID)
    assert "purposeOfEvent" not in plain


def test_audit_bundle_keeps_every_distinct_record_sorted_by_time():
    def value(event_id: str, us: int) -> bytes:
        event = audit_event(event_id, user="u", role="r", recorded_us=us, nhs=NHS, scr_id=SCR_ID)
        return encode_audit(event, us)

    a, b, c = value("A", 30), value("B", 10), value("C", 20)
    # Two different siblings under one key are both kept; a byte-identical copy is one record.
    bundle = audit_bundle("x", [a, b, c, b, b"junk"], BASE)
    assert bundle["total"] == 3
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["B", "C", "A"]
