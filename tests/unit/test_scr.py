"""The pure SCR module: upload validation paths, consent state merging, answers and audit."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spinekv.records import scr
from spinekv.records.outcome import NHS_NUMBER_SYSTEM, RecordError

NHS = "9000000009"
SCR_ID = "BF4180FD-C403-4EF7-A4AB-E07303AF5477"
WHEN = "2024-03-01T10:00:00+00:00"


def document(**kw) -> dict:
    args = {
        "allergies": [("91936005", "Allergy to penicillin")],
        "medications": [("322236009", "Paracetamol 500mg tablets")],
        "author": "Dr Jane Jones",
        "when": WHEN,
    }
    args.update(kw)
    return scr.build_document(NHS, SCR_ID, **args)


def composition(doc: dict) -> dict:
    return doc["entry"][0]["resource"]


def refused(body, code: str, *words: str) -> RecordError:
    with pytest.raises(RecordError) as info:
        scr.validate_document(body)
    assert info.value.code == code, info.value.diagnostics
    for word in words:
        assert word in info.value.diagnostics, info.value.diagnostics
    return info.value


# ------------------------------------------------------------------ build_document / accept


def test_built_document_validates_and_names_the_scr_and_patient():
    upload = scr.validate_document(document())
    assert upload.scr_id == SCR_ID
    assert upload.nhs == NHS
    assert upload.date == WHEN
    resources = [e["resource"]["resourceType"] for e in upload.document["entry"]]
    assert resources[0] == "Composition"
    assert "AllergyIntolerance" in resources and "MedicationStatement" in resources


def test_build_document_is_deterministic_and_canonicalises_the_id():
    a = scr.build_document(NHS, SCR_ID.lower(), allergies=[], medications=[], author="x", when=WHEN)
    b = scr.build_document(NHS, SCR_ID, allergies=[], medications=[], author="x", when=WHEN)
    assert a == b
    assert composition(a)["identifier"]["value"] == SCR_ID
    with pytest.raises(ValueError):
        scr.build_document(NHS, "not-a-uuid", allergies=[], medications=[], author="x", when=WHEN)


def test_empty_sections_are_accepted_but_must_be_present():
    upload = scr.validate_document(document(allergies=[], medications=[]))
    sections = composition(upload.document)["section"]
    assert [s["code"]["coding"][0]["code"] for s in sections] == [
        "AllergiesHeader",
        "RepeatMedsHeader",
    ]
    assert all("entry" not in s for s in sections)


def test_displays_are_escaped_in_the_narrative():
    doc = document(allergies=[("1", "<script>alert(1)</script>")])
    div = composition(doc)["section"][0]["text"]["div"]
    assert "<script>" not in div and "&lt;script&gt;" in div


def test_real_api_shape_subject_reference_to_patient_entry():
    """As UploadScrBundle.json: the subject is `Patient/<id>`, the Patient entry carries the NHS
    number, fullUrls are https URLs, sections carry only narrative."""
    base = "https://api.service.nhs.uk/summary-care-record/FHIR/R4"
    doc = {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [
            {
                "fullUrl": f"{base}/Composition/{SCR_ID}",
                "resource": {
                    "resourceType": "Composition",
                    "identifier": {"system": scr.UUID_SYSTEM, "value": SCR_ID.lower()},
                    "type": {"coding": [{"system": scr.SNOMED, "code": "196981000000101"}]},
                    "subject": {"reference": "Patient/565B3BEF"},
                    "date": "2020-11-17T01:00:00+00:00",
                    "section": [
                        {"code": {"coding": [{"code": "AllergiesHeader"}]}},
                        {"code": {"coding": [{"code": "AcuteMedsHeader"}]}},
                    ],
                },
            },
            {
                "fullUrl": f"{base}/Patient/565B3BEF",
                "resource": {
                    "resourceType": "Patient",
                    "id": "565B3BEF",
                    "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9995000180"}],
                },
            },
        ],
    }
    upload = scr.validate_document(doc)
    assert (upload.scr_id, upload.nhs) == (SCR_ID, "9995000180")


def test_subject_by_identifier_is_accepted():
    doc = document()
    composition(doc)["subject"] = {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": NHS}}
    assert scr.validate_document(doc).nhs == NHS


# ------------------------------------------------------------------ every refusal


def test_body_must_be_a_bundle():
    refused([], "INVALID_VALUE", "Bundle", "JSON object")
    refused({"type": "document"}, "MISSING_VALUE", "Bundle.resourceType")
    refused({"resourceType": "Patient"}, "INVALID_VALUE", "Bundle.resourceType", "Patient")


def test_bundle_type_must_be_document():
    doc = document()
    del doc["type"]
    refused(doc, "MISSING_VALUE", "Bundle.type")
    doc["type"] = "searchset"
    refused(doc, "INVALID_VALUE", "Bundle.type", "searchset")


def test_entries_must_be_resources():
    doc = document()
    doc["entry"] = []
    refused(doc, "MISSING_VALUE", "Bundle.entry")
    doc["entry"] = {"resource": {}}
    refused(doc, "INVALID_VALUE", "Bundle.entry", "array")
    doc = document()
    doc["entry"][2] = "text"
    refused(doc, "INVALID_VALUE", "Bundle.entry[2]")
    doc["entry"][2] = {"fullUrl": "urn:x"}
    refused(doc, "MISSING_VALUE", "Bundle.entry[2].resource")
    doc["entry"][2] = {"resource": {"id": "x"}}
    refused(doc, "INVALID_VALUE", "Bundle.entry[2].resource", "resourceType")


def test_exactly_one_composition():
    doc = document()
    doc["entry"] = doc["entry"][1:]
    refused(doc, "MISSING_VALUE", "Bundle.entry", "Composition")
    doc = document()
    doc["entry"].append(copy.deepcopy(doc["entry"][0]))
    refused(doc, "INVALID_VALUE", f"Bundle.entry[{len(doc['entry']) - 1}]", "one Composition")


def test_composition_type_must_be_the_gp_summary_snomed_code():
    doc = document()
    del composition(doc)["type"]
    refused(doc, "MISSING_VALUE", "Bundle.entry[0].resource.type", "196981000000101")
    composition(doc)["type"] = {"coding": [{"system": scr.SNOMED, "code": "123"}]}
    refused(doc, "INVALID_VALUE", "Bundle.entry[0].resource.type.coding", "196981000000101")
    # The right code under another system is not the SNOMED concept.
    composition(doc)["type"] = {"coding": [{"system": "urn:x", "code": "196981000000101"}]}
    refused(doc, "INVALID_VALUE", "resource.type.coding")


def test_composition_identifier_must_be_a_uuid():
    doc = document()
    del composition(doc)["identifier"]
    refused(doc, "MISSING_VALUE", "Bundle.entry[0].resource.identifier", "SCR id")
    composition(doc)["identifier"] = "x"
    refused(doc, "INVALID_VALUE", "Bundle.entry[0].resource.identifier")
    composition(doc)["identifier"] = {"system": scr.UUID_SYSTEM}
    refused(doc, "MISSING_VALUE", "Bundle.entry[0].resource.identifier.value")
    composition(doc)["identifier"] = {"value": "12345"}
    refused(doc, "INVALID_VALUE", "Bundle.entry[0].resource.identifier.value", "'12345'", "UUID")


def test_subject_must_name_a_patient_with_a_valid_nhs_number():
    doc = document()
    del composition(doc)["subject"]
    refused(doc, "MISSING_VALUE", "Bundle.entry[0].resource.subject")
    composition(doc)["subject"] = {"display": "someone"}
    refused(doc, "MISSING_VALUE", "Bundle.entry[0].resource.subject", "Patient reference")
    composition(doc)["subject"] = {"reference": "Patient/nobody"}
    refused(doc, "INVALID_VALUE", "resource.subject.reference", "Patient/nobody")

    doc = document()
    patient = doc["entry"][1]["resource"]
    patient["identifier"] = [{"system": "urn:other", "value": NHS}]
    refused(doc, "MISSING_VALUE", "Bundle.entry[1].resource.identifier", NHS_NUMBER_SYSTEM)
    patient["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": "9000000008"}]
    refused(doc, "INVALID_VALUE", "Bundle.entry[1].resource.identifier[0].value", "9000000008")
    patient["identifier"] = [{"system": NHS_NUMBER_SYSTEM}]
    refused(doc, "MISSING_VALUE", "Bundle.entry[1].resource.identifier[0].value")

    doc = document()
    composition(doc)["subject"] = {"identifier": {"system": "urn:x", "value": NHS}}
    refused(doc, "INVALID_VALUE", "resource.subject.identifier.system")
    composition(doc)["subject"] = {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": "12"}}
    refused(doc, "INVALID_VALUE", "resource.subject.identifier.value", "'12'")


def test_date_is_required_and_must_be_a_fhir_datetime():
    doc = document()
    del composition(doc)["date"]
    refused(doc, "MISSING_VALUE", "Bundle.entry[0].resource.date")
    for bad in ("yesterday", "2024-13-01", "2024-03-01T10:00:00"):
        composition(doc)["date"] = bad
        refused(doc, "INVALID_VALUE", "Bundle.entry[0].resource.date", repr(bad))
    composition(doc)["date"] = "2024-03-01"
    assert scr.validate_document(doc).date == "2024-03-01"


def test_allergies_and_medications_sections_are_required():
    doc = document()
    del composition(doc)["section"]
    refused(doc, "MISSING_VALUE", "Bundle.entry[0].resource.section")
    composition(doc)["section"] = {}
    refused(doc, "INVALID_VALUE", "Bundle.entry[0].resource.section", "array")
    composition(doc)["section"] = ["x"]
    refused(doc, "INVALID_VALUE", "Bundle.entry[0].resource.section[0]")

    doc = document()
    sections = composition(doc)["section"]
    composition(doc)["section"] = [sections[1]]
    refused(doc, "MISSING_VALUE", "resource.section", "allergies", "AllergiesHeader")
    composition(doc)["section"] = [sections[0]]
    refused(doc, "MISSING_VALUE", "resource.section", "medications", "RepeatMedsHeader")


# ------------------------------------------------------------------ stored documents


def test_stored_roundtrip_identity_and_sibling_pick():
    upload = scr.validate_document(document())
    value = scr.encode_stored(upload, 100)
    stored = scr.decode_stored(value)
    assert stored["scr_id"] == SCR_ID and stored["stored_us"] == 100
    assert scr.same_upload(stored, upload)
    other = scr.validate_document(document(author="Dr Other"))
    assert not scr.same_upload(stored, other)
    later = scr.encode_stored(other, 200)
    assert scr.pick_stored([later, value])["stored_us"] == 100
    assert scr.pick_stored([value, later])["stored_us"] == 100
    assert scr.pick_stored([b"junk"]) is None


# ------------------------------------------------------------------ state merge


ids = st.sampled_from(["A", "B", "C"])
times = st.integers(min_value=0, max_value=5)
currents = st.none() | st.builds(lambda i, t: {"id": i, "at_us": t}, ids, times)
permissions = st.none() | st.builds(
    lambda c, t, b: {"code": c, "at_us": t, "by": b},
    st.sampled_from(scr.PERMISSIONS),
    times,
    st.sampled_from(["u1", "u2"]),
)
states = st.builds(lambda c, p: {"current": c, "permission": p}, currents, permissions)


@given(states, states)
def test_merge_is_commutative(a, b):
    assert scr.merge_state([a, b]) == scr.merge_state([b, a])


@given(states, states, states)
def test_merge_is_associative(a, b, c):
    left = scr.merge_state([scr.merge_state([a, b]), c])
    right = scr.merge_state([a, scr.merge_state([b, c])])
    assert left == right == scr.merge_state([a, b, c])


@given(states)
def test_merge_is_idempotent_and_survives_encoding(a):
    assert scr.merge_state([a, a]) == scr.merge_state([a]) == a
    assert scr.decode_state(scr.encode_state(a)) == a


def test_merge_keeps_the_newest_of_each_field_independently():
    a = {"current": {"id": "A", "at_us": 5}, "permission": {"code": "No", "at_us": 1, "by": "u"}}
    b = {"current": {"id": "B", "at_us": 3}, "permission": {"code": "Yes", "at_us": 9, "by": "u"}}
    merged = scr.merge_state([a, b])
    assert merged["current"]["id"] == "A"
    assert scr.permission_code(merged) == "Yes"


def test_with_current_and_with_permission_never_go_back_in_time():
    state = scr.with_current(scr.empty_state(), "NEW", 10)
    assert scr.with_current(state, "OLD", 5)["current"]["id"] == "NEW"
    assert scr.with_current(state, "NEWER", 11)["current"]["id"] == "NEWER"
    state = scr.with_permission(state, "No", 10, "u")
    assert scr.permission_code(scr.with_permission(state, "Yes", 9, "u")) == "No"
    assert scr.permission_code(scr.with_permission(state, "Yes", 11, "u")) == "Yes"


def test_decode_state_ignores_malformed_fields():
    assert scr.decode_state(b"junk") == scr.empty_state()
    raw = json.dumps({"current": {"id": 3}, "permission": {"code": "Maybe", "at_us": 1, "by": "u"}})
    assert scr.decode_state(raw.encode()) == scr.empty_state()


# ------------------------------------------------------------------ request parameters


def params(**kw) -> dict[str, list[str]]:
    return {k.replace("__", "."): v if isinstance(v, list) else [v] for k, v in kw.items()}


def test_find_params():
    assert scr.find_params({"patient": [f"{NHS_NUMBER_SYSTEM}|{NHS}"]}) == NHS
    assert scr.find_params({"patient": [NHS], "_sort": ["date"], "_count": ["1"]}) == NHS
    cases = [
        ({}, "MISSING_VALUE", "patient"),
        ({"patient": [""]}, "MISSING_VALUE", "patient"),
        ({"patient": [NHS, NHS]}, "INVALID_SEARCH_DATA", "once"),
        ({"patient": ["9000000008"]}, "INVALID_SEARCH_DATA", "9000000008"),
        ({"patient": [f"urn:x|{NHS}"]}, "INVALID_SEARCH_DATA", "system"),
        ({"patient": [NHS], "_count": ["5"]}, "INVALID_SEARCH_DATA", "_count"),
        ({"patient": [NHS], "_sort": ["name"]}, "INVALID_SEARCH_DATA", "_sort"),
        ({"patient": [NHS], "type": ["x|1"]}, "INVALID_SEARCH_DATA", "type"),
    ]
    for query, code, word in cases:
        with pytest.raises(RecordError) as info:
            scr.find_params(query)
        assert info.value.code == code and word in info.value.diagnostics, (query, info.value)


def test_read_params():
    query = {
        "composition.identifier": [SCR_ID.lower()],
        "composition.subject:Patient.identifier": [f"{NHS_NUMBER_SYSTEM}|{NHS}"],
    }
    assert scr.read_params(query) == (SCR_ID, NHS)
    for name, value, code in [
        ("composition.identifier", None, "MISSING_VALUE"),
        ("composition.identifier", "nope", "INVALID_SEARCH_DATA"),
        ("composition.subject:Patient.identifier", None, "MISSING_VALUE"),
        ("composition.subject:Patient.identifier", "1234567890", "INVALID_SEARCH_DATA"),
    ]:
        bad = dict(query)
        if value is None:
            del bad[name]
        else:
            bad[name] = [value]
        with pytest.raises(RecordError) as info:
            scr.read_params(bad)
        assert info.value.code == code and name in info.value.diagnostics


def test_emergency_reason():
    assert scr.emergency_reason(None) is None
    assert scr.emergency_reason("  unconscious in A&E ") == "unconscious in A&E"
    for bad in ("", "   ", "x" * (scr.MAX_REASON_LENGTH + 1)):
        with pytest.raises(RecordError) as info:
            scr.emergency_reason(bad)
        assert info.value.code == "INVALID_VALUE"
        assert scr.EMERGENCY_REASON_HEADER in info.value.diagnostics


def set_permission(nhs_part: dict, code_part: dict, nested: bool = True) -> dict:
    parts = [{"name": "nhsNumber", **nhs_part}, {"name": "permissionCode", **code_part}]
    if nested:
        return {
            "resourceType": "Parameters",
            "parameter": [{"name": "setPermissions", "part": parts}],
        }
    return {"resourceType": "Parameters", "parameter": parts}


def test_set_permission_accepts_the_real_and_the_flat_shapes():
    coding = {"valueCoding": {"system": scr.PERMISSION_SYSTEM, "code": "No"}}
    real = set_permission({"valueString": NHS}, coding)
    assert scr.parse_set_permission(real) == scr.PermissionRequest(NHS, "No")
    ident = {"valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": NHS}}
    flat = set_permission(ident, {"valueCoding": {"code": "Ask"}}, nested=False)
    assert scr.parse_set_permission(flat) == scr.PermissionRequest(NHS, "Ask")
    # What $setPermission answers parses back to the same request.
    answer = scr.permission_parameters(NHS, "Yes")
    assert scr.parse_set_permission(answer) == scr.PermissionRequest(NHS, "Yes")


def test_set_permission_refusals_name_the_problem():
    ident = {"valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": NHS}}
    ok_code = {"valueCoding": {"code": "Yes"}}
    cases = [
        ("x", "INVALID_VALUE", "Parameters"),
        ({"parameter": []}, "MISSING_VALUE", "Parameters.resourceType"),
        ({"resourceType": "Bundle"}, "INVALID_VALUE", "Parameters.resourceType"),
        ({"resourceType": "Parameters"}, "MISSING_VALUE", "Parameters.parameter"),
        ({"resourceType": "Parameters", "parameter": {}}, "INVALID_VALUE", "array"),
        ({"resourceType": "Parameters", "parameter": [3]}, "INVALID_VALUE", "parameter[0]"),
        (set_permission(ident, ok_code) | {"parameter": []}, "MISSING_VALUE", "nhsNumber"),
        (
            {"resourceType": "Parameters", "parameter": [{"name": "nhsNumber", **ident}]},
            "MISSING_VALUE",
            "permissionCode",
        ),
        (set_permission({}, ok_code), "MISSING_VALUE", "part[0].valueIdentifier"),
        (
            set_permission(
                {"valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": "1"}}, ok_code
            ),
            "INVALID_VALUE",
            "part[0].valueIdentifier.value",
        ),
        (
            set_permission({"valueIdentifier": {"system": "urn:x", "value": NHS}}, ok_code),
            "INVALID_VALUE",
            "part[0].valueIdentifier.system",
        ),
        (set_permission({"valueString": "123"}, ok_code), "INVALID_VALUE", "valueString"),
        (set_permission(ident, {}), "MISSING_VALUE", "part[1].valueCoding"),
        (set_permission(ident, {"valueCoding": "Yes"}), "INVALID_VALUE", "part[1].valueCoding"),
        (set_permission(ident, {"valueCoding": {}}), "MISSING_VALUE", "valueCoding.code"),
        (
            set_permission(ident, {"valueCoding": {"code": "Maybe"}}),
            "INVALID_VALUE",
            "'Maybe'",
        ),
        (
            set_permission(ident, {"valueCoding": {"system": "urn:x", "code": "Yes"}}),
            "INVALID_VALUE",
            "valueCoding.system",
        ),
    ]
    twice = set_permission(ident, ok_code)
    twice["parameter"][0]["part"].append({"name": "nhsNumber", **ident})
    cases.append((twice, "INVALID_VALUE", "twice"))
    for body, code, word in cases:
        with pytest.raises(RecordError) as info:
            scr.parse_set_permission(body)
        assert info.value.code == code, (body, info.value)
        assert word in info.value.diagnostics, (body, info.value.diagnostics)


# ------------------------------------------------------------------ answers


BASE = "http://127.0.0.1:8098/summary-care-record/FHIR/R4"


def test_document_reference_bundle_points_at_the_current_scr():
    state = scr.with_permission(
        scr.with_current(scr.empty_state(), SCR_ID, 1_700_000_000_000_000), "Ask", 1, "u"
    )
    bundle = scr.document_reference_bundle("b1", NHS, state, BASE)
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    ref = bundle["entry"][0]["resource"]
    assert ref["resourceType"] == "DocumentReference"
    assert ref["masterIdentifier"] == {"system": scr.SCR_ID_SYSTEM, "value": SCR_ID}
    assert ref["type"]["coding"][0]["code"] == scr.SCR_TYPE_CODE
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
        scr.document_reference_bundle("b2", NHS, state, BASE)["entry"][0]["resource"]["id"]
        == ref["id"]
    )
    empty = scr.document_reference_bundle("b3", NHS, scr.empty_state(), BASE)
    assert empty["total"] == 0 and empty["entry"] == []


def test_scr_bundle_is_a_searchset_of_the_document_entries_composition_first():
    doc = document()
    doc["entry"].reverse()
    stored = scr.decode_stored(scr.encode_stored(scr.validate_document(doc), 5))
    bundle = scr.scr_bundle("b", stored, WHEN)
    assert bundle["type"] == "searchset"
    assert bundle["total"] == len(doc["entry"]) == len(bundle["entry"])
    assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    assert {e["fullUrl"] for e in bundle["entry"]} == {e["fullUrl"] for e in doc["entry"]}


def test_audit_event_records_who_role_when_what_and_reason():
    event = scr.audit_event(
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
    assert {"system": scr.SCR_ID_SYSTEM, "value": SCR_ID} in whats
    assert event["purposeOfEvent"][0]["text"] == "unconscious"
    plain = scr.audit_event("E2", user="u", role="admin", recorded_us=1, nhs=NHS, scr_id=SCR_ID)
    assert "purposeOfEvent" not in plain


def test_audit_bundle_keeps_every_distinct_record_sorted_by_time():
    def value(event_id: str, us: int) -> bytes:
        event = scr.audit_event(
            event_id, user="u", role="r", recorded_us=us, nhs=NHS, scr_id=SCR_ID
        )
        return scr.encode_audit(event, us)

    a, b, c = value("A", 30), value("B", 10), value("C", 20)
    # Two different siblings under one key are both kept; a byte-identical copy is one record.
    bundle = scr.audit_bundle("x", [a, b, c, b, b"junk"], BASE)
    assert bundle["total"] == 3
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["B", "C", "A"]
