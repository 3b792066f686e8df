"""Validating an SCR upload (every refusal names its JSON path) and building one."""

from __future__ import annotations

import copy

import pytest

from spinekv.records.outcome import NHS_NUMBER_SYSTEM, RecordError
from spinekv.records.scr.builder import build_document
from spinekv.records.scr.codes import SNOMED, UUID_SYSTEM
from spinekv.records.scr.upload import validate_document
from tests.unit.scr_support import NHS, SCR_ID, WHEN, composition, document


def refused(body, code: str, *words: str) -> RecordError:
    with pytest.raises(RecordError) as info:
        validate_document(body)
    assert info.value.code == code, info.value.diagnostics
    for word in words:
        assert word in info.value.diagnostics, info.value.diagnostics
    return info.value


# ------------------------------------------------------------------ build_document / accept


def test_built_document_validates_and_names_the_scr_and_patient():
    upload = validate_document(document())
    assert upload.scr_id == SCR_ID
    assert upload.nhs == NHS
    assert upload.date == WHEN
    resources = [e["resource"]["resourceType"] for e in upload.document["entry"]]
    assert resources[0] == "Composition"
    assert "AllergyIntolerance" in resources and "MedicationStatement" in resources


def test_build_document_is_deterministic_and_canonicalises_the_id():
    a = build_document(NHS, SCR_ID.lower(), allergies=[], medications=[], author="x", when=WHEN)
    b = build_document(NHS, SCR_ID, allergies=[], medications=[], author="x", when=WHEN)
    assert a == b
    assert composition(a)["identifier"]["value"] == SCR_ID
    with pytest.raises(ValueError):
        build_document(NHS, "not-a-uuid", allergies=[], medications=[], author="x", when=WHEN)


def test_empty_sections_are_accepted_but_must_be_present():
    upload = validate_document(document(allergies=[], medications=[]))
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
                    "identifier": {"system": UUID_SYSTEM, "value": SCR_ID.lower()},
                    "type": {"coding": [{"system": SNOMED, "code": "196981000000101"}]},
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
    upload = validate_document(doc)
    assert (upload.scr_id, upload.nhs) == (SCR_ID, "9995000180")


def test_subject_by_identifier_is_accepted():
    doc = document()
    composition(doc)["subject"] = {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": NHS}}
    assert validate_document(doc).nhs == NHS


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
    composition(doc)["type"] = {"coding": [{"system": SNOMED, "code": "123"}]}
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
    composition(doc)["identifier"] = {"system": UUID_SYSTEM}
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
    assert validate_document(doc).date == "2024-03-01"


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
