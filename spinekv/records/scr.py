"""Summary Care Records (pure): upload validation, consent state, DocumentReference, AuditEvent.

Shapes follow NHS Digital's Summary Care Record FHIR API (UploadScrBundle.json,
DocumentReferenceBundle.json, GetScrBundle.json, SetPermission.json, AuditEvent.json):

- An upload is a document Bundle whose Composition has SNOMED type 196981000000101
  (General Practice Summary), `identifier.value` = the SCR id (a UUID), a subject naming the
  patient by NHS number (directly, or by reference to a Patient entry that carries it), and
  sections coded as the real API codes them: `AllergiesHeader` for allergies and adverse
  reactions, and one of `AcuteMedsHeader` / `RepeatMedsHeader` / `DiscRepeatMedsHeader` for
  medications. Both sections must be present; either may be empty (the real example's
  discontinued-medications section is only "No relevant information available").
- The GET /Bundle answer is, as in the real API, a searchset Bundle holding the document's
  entries (Composition first), not the document Bundle itself.
- A patient's state (bucket `scrstate`) is {current: {id, at_us}, permission: {code, at_us, by}};
  concurrent writes leave siblings, and `merge_state` keeps per field the greatest
  (at_us, ...) tuple — a join, so merging is commutative, associative and idempotent.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import nhs as nhs_numbers
from .outcome import NHS_NUMBER_SYSTEM, RecordError, iso_instant

SNOMED = "http://snomed.info/sct"
SCR_TYPE_CODE = "196981000000101"
SCR_TYPE_DISPLAY = "General Practice Summary"
SCR_CATEGORY_CODE = "163171000000105"
SCR_CATEGORY_DISPLAY = "Care Professional Documentation"
UUID_SYSTEM = "https://tools.ietf.org/html/rfc4122"
SCR_ID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSCRUUID"
PERMISSION_SYSTEM = "https://fhir.nhs.uk/CodeSystem/SCR-ACSPermission"
USER_SYSTEM = "urn:spinekv:user"  # record API users (cluster.toml [[user]]), not SDS ids
PERMISSIONS = ("Yes", "No", "Ask")
ALLERGIES_SECTION = "AllergiesHeader"
MEDICATION_SECTIONS = ("AcuteMedsHeader", "RepeatMedsHeader", "DiscRepeatMedsHeader")
EMERGENCY_REASON_HEADER = "NHSD-Emergency-Access-Reason"
MAX_REASON_LENGTH = 1000

# Ids derived from an SCR id (the DocumentReference, the entries build_document makes) are
# name-based UUIDs, so the same SCR always gets the same ids.
_ID_NAMESPACE = uuid.UUID("5d0a3f0e-6c1b-4a57-9a43-2f8de1c9b7a1")


def derived_id(*parts: str) -> str:
    """A stable UUID (upper case, as the SCR API writes them) named by `parts`."""
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(parts))).upper()


def canonical_scr_id(text: Any) -> str | None:
    """The SCR id in canonical form (upper-case hyphenated UUID), or None if `text` is not one."""
    if not isinstance(text, str) or len(text) != 36 or not text.isascii():
        return None
    try:
        return str(uuid.UUID(text)).upper()
    except ValueError:
        return None


# ------------------------------------------------------------------ upload validation


@dataclass(frozen=True, slots=True)
class Upload:
    """A validated SCR upload: its id, the patient, the Composition date and the whole Bundle."""

    scr_id: str
    nhs: str
    date: str
    document: dict


def _missing(path: str, what: str) -> RecordError:
    return RecordError("MISSING_VALUE", f"{path}: {what}")


def _invalid(path: str, what: str) -> RecordError:
    return RecordError("INVALID_VALUE", f"{path}: {what}")


def _codes(concept: Any, system: str | None = None) -> list[str]:
    """The codes of a CodeableConcept (of `system` when given); malformed codings ignored."""
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return []
    return [
        c["code"]
        for c in concept["coding"]
        if isinstance(c, dict)
        and isinstance(c.get("code"), str)
        and (system is None or c.get("system") == system)
    ]


def _valid_datetime(text: Any) -> bool:
    """A FHIR date or dateTime (YYYY-MM-DD, or with time and an offset)."""
    if not isinstance(text, str) or len(text) < 10 or not text.isascii():
        return False
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10 or parsed.tzinfo is not None


def validate_document(body: Any) -> Upload:
    """Check an upload Bundle; RecordError MISSING_VALUE / INVALID_VALUE names the JSON path."""
    if not isinstance(body, dict):
        raise _invalid("Bundle", "the body must be a JSON object (a FHIR Bundle)")
    kind = body.get("resourceType")
    if kind is None:
        raise _missing("Bundle.resourceType", "required (Bundle)")
    if kind != "Bundle":
        raise _invalid("Bundle.resourceType", f"expected 'Bundle', got {kind!r}")
    bundle_type = body.get("type")
    if bundle_type is None:
        raise _missing("Bundle.type", "required (document)")
    if bundle_type != "document":
        raise _invalid("Bundle.type", f"unsupported Bundle.type {bundle_type!r}: expected document")
    entries = body.get("entry")
    if entries is None or entries == []:
        raise _missing("Bundle.entry", "a document needs entries, the Composition first")
    if not isinstance(entries, list):
        raise _invalid("Bundle.entry", "expected an array of entries")
    for i, entry in enumerate(entries):
        path = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            raise _invalid(path, "expected an object")
        resource = entry.get("resource")
        if resource is None:
            raise _missing(f"{path}.resource", "required")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise _invalid(f"{path}.resource", "expected a FHIR resource with a resourceType")
    compositions = [
        i for i, e in enumerate(entries) if e["resource"]["resourceType"] == "Composition"
    ]
    if not compositions:
        raise _missing("Bundle.entry", "no Composition entry")
    if len(compositions) > 1:
        raise _invalid(f"Bundle.entry[{compositions[1]}]", "a document has one Composition")
    at = compositions[0]
    path = f"Bundle.entry[{at}].resource"
    composition = entries[at]["resource"]

    concept = composition.get("type")
    if concept is None:
        raise _missing(f"{path}.type", f"required (SNOMED {SCR_TYPE_CODE})")
    if SCR_TYPE_CODE not in _codes(concept, SNOMED):
        raise _invalid(
            f"{path}.type.coding",
            f"expected SNOMED code {SCR_TYPE_CODE} ({SCR_TYPE_DISPLAY}) with system {SNOMED}",
        )

    identifier = composition.get("identifier")
    if identifier is None:
        raise _missing(f"{path}.identifier", "required (the SCR id)")
    if not isinstance(identifier, dict):
        raise _invalid(f"{path}.identifier", "expected an Identifier object")
    raw_id = identifier.get("value")
    if raw_id is None:
        raise _missing(f"{path}.identifier.value", "required (the SCR id, a UUID)")
    scr_id = canonical_scr_id(raw_id)
    if scr_id is None:
        raise _invalid(f"{path}.identifier.value", f"{raw_id!r} is not a UUID")

    nhs = _subject_nhs(composition, entries, path)

    date = composition.get("date")
    if date is None:
        raise _missing(f"{path}.date", "required (when the summary was made)")
    if not _valid_datetime(date):
        raise _invalid(f"{path}.date", f"{date!r} is not a FHIR date or dateTime with offset")

    _check_sections(composition, path)
    return Upload(scr_id=scr_id, nhs=nhs, date=date, document=body)


def _subject_nhs(composition: dict, entries: list[dict], path: str) -> str:
    """The patient's NHS number: from subject.identifier or the Patient entry it references."""
    subject = composition.get("subject")
    if subject is None:
        raise _missing(f"{path}.subject", "required (the patient)")
    if not isinstance(subject, dict):
        raise _invalid(f"{path}.subject", "expected a Reference object")
    if subject.get("identifier") is not None:
        return _nhs_of(subject["identifier"], f"{path}.subject.identifier")
    reference = subject.get("reference")
    if reference is None:
        raise _missing(f"{path}.subject", "needs an NHS number identifier or a Patient reference")
    if not isinstance(reference, str) or not reference:
        raise _invalid(f"{path}.subject.reference", "expected a reference text")
    for i, entry in enumerate(entries):
        resource = entry["resource"]
        if resource["resourceType"] == "Patient" and reference in (
            entry.get("fullUrl"),
            f"Patient/{resource.get('id')}",
        ):
            return _patient_nhs(resource, f"Bundle.entry[{i}].resource")
    raise _invalid(f"{path}.subject.reference", f"{reference!r} is not a Patient in the Bundle")


def _patient_nhs(patient: dict, path: str) -> str:
    identifiers = patient.get("identifier")
    if not isinstance(identifiers, list):
        raise _missing(f"{path}.identifier", f"the patient needs a {NHS_NUMBER_SYSTEM} identifier")
    for j, identifier in enumerate(identifiers):
        if isinstance(identifier, dict) and identifier.get("system") == NHS_NUMBER_SYSTEM:
            return _nhs_of(identifier, f"{path}.identifier[{j}]")
    raise _missing(f"{path}.identifier", f"the patient needs a {NHS_NUMBER_SYSTEM} identifier")


def _nhs_of(identifier: Any, path: str) -> str:
    if not isinstance(identifier, dict):
        raise _invalid(path, "expected an Identifier object")
    if identifier.get("system") != NHS_NUMBER_SYSTEM:
        raise _invalid(f"{path}.system", f"expected {NHS_NUMBER_SYSTEM}")
    value = identifier.get("value")
    if value is None:
        raise _missing(f"{path}.value", "required (the NHS number)")
    if not isinstance(value, str) or not nhs_numbers.is_valid(value):
        raise _invalid(f"{path}.value", f"{value!r} is not a valid NHS number")
    return value


def _check_sections(composition: dict, path: str) -> None:
    sections = composition.get("section")
    if sections is None:
        raise _missing(f"{path}.section", "required (allergies and medications sections)")
    if not isinstance(sections, list):
        raise _invalid(f"{path}.section", "expected an array of sections")
    found: set[str] = set()
    for k, section in enumerate(sections):
        if not isinstance(section, dict):
            raise _invalid(f"{path}.section[{k}]", "expected an object")
        found.update(_codes(section.get("code")))
    if ALLERGIES_SECTION not in found:
        raise _missing(
            f"{path}.section",
            f"no allergies and adverse reactions section (code {ALLERGIES_SECTION})",
        )
    if not found.intersection(MEDICATION_SECTIONS):
        raise _missing(
            f"{path}.section",
            f"no medications section (code one of {', '.join(MEDICATION_SECTIONS)})",
        )


# ------------------------------------------------------------------ building a document


def _table(rows: list[tuple[str, str]], when: str, kind: str) -> str:
    if not rows:
        body = '<tr><td colspan="3">No relevant information available for this category.</td></tr>'
    else:
        body = "".join(
            f"<tr><td>{html.escape(when[:10])}</td><td>{html.escape(display)}</td>"
            f"<td>{html.escape(code)}</td></tr>"
            for code, display in rows
        )
    return (
        f'<div xmlns="http://www.w3.org/1999/xhtml"><table id="{kind}"><thead><tr><th>Date</th>'
        f"<th>Description</th><th>SNOMED CT</th></tr></thead><tbody>{body}</tbody></table></div>"
    )


def _section(title: str, code: str, rows: list[tuple[str, str]], refs: list[str], when: str):
    section: dict[str, Any] = {
        "title": title,
        "code": {"coding": [{"code": code}]},
        "text": {"status": "generated", "div": _table(rows, when, code)},
    }
    if refs:
        section["entry"] = [{"reference": ref} for ref in refs]
    return section


def build_document(
    nhs: str,
    scr_id: str,
    *,
    allergies: list[tuple[str, str]],
    medications: list[tuple[str, str]],
    author: str,
    when: str,
) -> dict:
    """An upload Bundle `validate_document` accepts: SNOMED (code, display) pairs, `when` an
    ISO 8601 instant. Deterministic: the same arguments give the same Bundle."""
    canonical = canonical_scr_id(scr_id)
    if canonical is None:
        raise ValueError(f"scr_id {scr_id!r} is not a UUID")
    scr_id = canonical
    patient_id = derived_id(scr_id, "Patient")
    author_id = derived_id(scr_id, "Practitioner")

    def full_url(resource_id: str) -> str:
        return f"urn:uuid:{resource_id}"

    allergy_entries = []
    for i, (code, display) in enumerate(allergies):
        rid = derived_id(scr_id, "AllergyIntolerance", str(i))
        allergy_entries.append(
            {
                "fullUrl": full_url(rid),
                "resource": {
                    "resourceType": "AllergyIntolerance",
                    "id": rid,
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "allergyintolerance-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
                    "patient": {"reference": full_url(patient_id)},
                    "recordedDate": when,
                },
            }
        )
    medication_entries = []
    for i, (code, display) in enumerate(medications):
        rid = derived_id(scr_id, "MedicationStatement", str(i))
        medication_entries.append(
            {
                "fullUrl": full_url(rid),
                "resource": {
                    "resourceType": "MedicationStatement",
                    "id": rid,
                    "status": "active",
                    "medicationCodeableConcept": {
                        "coding": [{"system": SNOMED, "code": code, "display": display}]
                    },
                    "subject": {"reference": full_url(patient_id)},
                    "dateAsserted": when,
                },
            }
        )
    composition = {
        "resourceType": "Composition",
        "id": scr_id,
        "meta": {"lastUpdated": when},
        "identifier": {"system": UUID_SYSTEM, "value": scr_id},
        "status": "final",
        "type": {
            "coding": [{"system": SNOMED, "code": SCR_TYPE_CODE, "display": SCR_TYPE_DISPLAY}]
        },
        "category": [
            {
                "coding": [
                    {"system": SNOMED, "code": SCR_CATEGORY_CODE, "display": SCR_CATEGORY_DISPLAY}
                ]
            }
        ],
        "subject": {"reference": full_url(patient_id)},
        "date": when,
        "author": [{"reference": full_url(author_id), "display": author}],
        "title": SCR_TYPE_DISPLAY,
        "section": [
            _section(
                "Allergies and Adverse Reactions",
                ALLERGIES_SECTION,
                allergies,
                [e["fullUrl"] for e in allergy_entries],
                when,
            ),
            _section(
                "Current Repeat Medications",
                "RepeatMedsHeader",
                medications,
                [e["fullUrl"] for e in medication_entries],
                when,
            ),
        ],
    }
    return {
        "resourceType": "Bundle",
        "id": derived_id(scr_id, "Bundle"),
        "identifier": {"system": UUID_SYSTEM, "value": derived_id(scr_id, "Bundle")},
        "type": "document",
        "timestamp": when,
        "entry": [
            {"fullUrl": full_url(scr_id), "resource": composition},
            {
                "fullUrl": full_url(patient_id),
                "resource": {
                    "resourceType": "Patient",
                    "id": patient_id,
                    "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
                },
            },
            {
                "fullUrl": full_url(author_id),
                "resource": {
                    "resourceType": "Practitioner",
                    "id": author_id,
                    "name": [{"text": author}],
                },
            },
            *allergy_entries,
            *medication_entries,
        ],
    }


# ------------------------------------------------------------------ stored documents


def canonical_json(value: Any) -> bytes:
    """One byte form per JSON value, so equal documents compare equal as bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode_stored(upload: Upload, stored_us: int) -> bytes:
    """The value kept under bucket `scr`, key = SCR id."""
    return canonical_json(
        {
            "scr_id": upload.scr_id,
            "nhs": upload.nhs,
            "date": upload.date,
            "stored_us": stored_us,
            "document": upload.document,
        }
    )


def decode_stored(value: bytes) -> dict | None:
    """A stored SCR, or None when the bytes are not one (never written by this module)."""
    try:
        stored = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if (
        not isinstance(stored, dict)
        or not isinstance(stored.get("scr_id"), str)
        or not isinstance(stored.get("nhs"), str)
        or not isinstance(stored.get("stored_us"), int)
        or not isinstance(stored.get("document"), dict)
    ):
        return None
    return stored


def pick_stored(values: Iterable[bytes]) -> dict | None:
    """One stored SCR among siblings (two uploads of one id raced): the earliest stored wins,
    ties broken by bytes, so every node picks the same one."""
    decoded = [(s["stored_us"], v, s) for v in values if (s := decode_stored(v)) is not None]
    if not decoded:
        return None
    return min(decoded, key=lambda t: (t[0], t[1]))[2]


def same_upload(stored: dict, upload: Upload) -> bool:
    """Whether a stored SCR is this upload again (same patient and the same document)."""
    return stored["nhs"] == upload.nhs and canonical_json(stored["document"]) == canonical_json(
        upload.document
    )


# ------------------------------------------------------------------ consent and pointer state


def empty_state() -> dict:
    return {"current": None, "permission": None}


def _current_key(current: dict) -> tuple:
    return (current["at_us"], current["id"])


def _permission_key(permission: dict) -> tuple:
    return (permission["at_us"], permission["by"], permission["code"])


def _well_formed_current(value: Any) -> dict | None:
    if (
        isinstance(value, dict)
        and isinstance(value.get("id"), str)
        and isinstance(value.get("at_us"), int)
    ):
        return {"id": value["id"], "at_us": value["at_us"]}
    return None


def _well_formed_permission(value: Any) -> dict | None:
    if (
        isinstance(value, dict)
        and value.get("code") in PERMISSIONS
        and isinstance(value.get("at_us"), int)
        and isinstance(value.get("by"), str)
    ):
        return {"code": value["code"], "at_us": value["at_us"], "by": value["by"]}
    return None


def decode_state(value: bytes) -> dict:
    """A state sibling; fields that are not well formed read as unset (we only write good ones)."""
    try:
        raw = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return empty_state()
    if not isinstance(raw, dict):
        return empty_state()
    return {
        "current": _well_formed_current(raw.get("current")),
        "permission": _well_formed_permission(raw.get("permission")),
    }


def encode_state(state: dict) -> bytes:
    return canonical_json(state)


def merge_state(siblings: Iterable[dict]) -> dict:
    """Per field the newest value by (at_us, id) / (at_us, by, code): a deterministic join."""
    merged = empty_state()
    for state in siblings:
        current, permission = state.get("current"), state.get("permission")
        if current is not None and (
            merged["current"] is None or _current_key(current) > _current_key(merged["current"])
        ):
            merged["current"] = current
        if permission is not None and (
            merged["permission"] is None
            or _permission_key(permission) > _permission_key(merged["permission"])
        ):
            merged["permission"] = permission
    return merged


def with_current(state: dict, scr_id: str, at_us: int) -> dict:
    """The state with this SCR as current, unless a newer one already is."""
    return merge_state([state, {"current": {"id": scr_id, "at_us": at_us}, "permission": None}])


def with_permission(state: dict, code: str, at_us: int, by: str) -> dict:
    """The state with this consent decision, unless a newer one is recorded."""
    permission = {"code": code, "at_us": at_us, "by": by}
    return merge_state([state, {"current": None, "permission": permission}])


def permission_code(state: dict) -> str | None:
    """Yes, No or Ask; None when the patient never stated a preference."""
    return state["permission"]["code"] if state.get("permission") else None


# ------------------------------------------------------------------ request parameters


def _one(params: Mapping[str, list[str]], name: str, code: str) -> str | None:
    values = params.get(name, [])
    if len(values) > 1:
        raise RecordError(code, f"{name}: give it once, not {len(values)} times")
    return values[0] if values else None


def _required(params: Mapping[str, list[str]], name: str, example: str) -> str:
    value = _one(params, name, "INVALID_SEARCH_DATA")
    if value is None or not value.strip():
        raise RecordError("MISSING_VALUE", f"{name}: required query parameter (e.g. {example})")
    return value


def patient_param(params: Mapping[str, list[str]], name: str = "patient") -> str:
    """`patient=https://fhir.nhs.uk/Id/nhs-number|N` -> N (400 when missing or invalid)."""
    raw = _required(params, name, f"{NHS_NUMBER_SYSTEM}|9000000009")
    return nhs_numbers.parse_identifier(raw, "INVALID_SEARCH_DATA", name)


def find_params(params: Mapping[str, list[str]]) -> str:
    """The NHS number of GET /DocumentReference; the real API's optional type, _sort and
    _count are accepted only with the values it supports."""
    nhs = patient_param(params)
    checks = {
        "type": (f"{SNOMED}|{SCR_TYPE_CODE}",),
        "_sort": ("date",),
        "_count": ("1",),
    }
    for name, allowed in checks.items():
        value = _one(params, name, "INVALID_SEARCH_DATA")
        if value is not None and value not in allowed:
            raise RecordError(
                "INVALID_SEARCH_DATA", f"{name}={value!r}: the only supported value is {allowed[0]}"
            )
    return nhs


def read_params(params: Mapping[str, list[str]]) -> tuple[str, str]:
    """(SCR id, NHS number) of GET /Bundle."""
    raw = _required(params, "composition.identifier", "FA60BE64-1F34-11EB-A2A8-000C29A364EB")
    scr_id = canonical_scr_id(raw.strip())
    if scr_id is None:
        raise RecordError("INVALID_SEARCH_DATA", f"composition.identifier: {raw!r} is not a UUID")
    return scr_id, patient_param(params, "composition.subject:Patient.identifier")


def emergency_reason(header: str | None) -> str | None:
    """The NHSD-Emergency-Access-Reason header's text, or None when not sent."""
    if header is None:
        return None
    reason = header.strip()
    if not reason:
        raise RecordError("INVALID_VALUE", f"{EMERGENCY_REASON_HEADER}: empty; give the reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise RecordError(
            "INVALID_VALUE",
            f"{EMERGENCY_REASON_HEADER}: {len(reason)} characters; at most {MAX_REASON_LENGTH}",
        )
    return reason


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    nhs: str
    code: str


def parse_set_permission(body: Any) -> PermissionRequest:
    """A $setPermission Parameters: nhsNumber (valueIdentifier, or valueString as in the real
    example) and permissionCode (valueCoding Yes | No | Ask). Parts may sit at the top level or
    inside a `setPermissions` parameter, as in SetPermission.json."""
    if not isinstance(body, dict):
        raise _invalid("Parameters", "the body must be a JSON object (a FHIR Parameters)")
    kind = body.get("resourceType")
    if kind is None:
        raise _missing("Parameters.resourceType", "required (Parameters)")
    if kind != "Parameters":
        raise _invalid("Parameters.resourceType", f"expected 'Parameters', got {kind!r}")
    params = body.get("parameter")
    if params is None:
        raise _missing("Parameters.parameter", "required (nhsNumber and permissionCode)")
    if not isinstance(params, list):
        raise _invalid("Parameters.parameter", "expected an array")
    found: dict[str, tuple[dict, str]] = {}

    def collect(items: list, path: str) -> None:
        for i, item in enumerate(items):
            here = f"{path}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise _invalid(here, "expected a parameter with a name")
            name = item["name"]
            if name == "setPermissions" and "part" in item:
                if not isinstance(item["part"], list):
                    raise _invalid(f"{here}.part", "expected an array")
                collect(item["part"], f"{here}.part")
            elif name in ("nhsNumber", "permissionCode"):
                if name in found:
                    raise _invalid(here, f"{name} given twice")
                found[name] = (item, here)

    collect(params, "Parameters.parameter")
    if "nhsNumber" not in found:
        raise _missing("Parameters.parameter", "no nhsNumber parameter")
    if "permissionCode" not in found:
        raise _missing("Parameters.parameter", "no permissionCode parameter")

    item, path = found["nhsNumber"]
    if "valueIdentifier" in item:
        number = _nhs_of(item["valueIdentifier"], f"{path}.valueIdentifier")
    elif "valueString" in item:
        number = item["valueString"]
        if not isinstance(number, str) or not nhs_numbers.is_valid(number):
            raise _invalid(f"{path}.valueString", f"{number!r} is not a valid NHS number")
    else:
        raise _missing(f"{path}.valueIdentifier", "required (the patient's NHS number)")

    item, path = found["permissionCode"]
    coding = item.get("valueCoding")
    if coding is None:
        raise _missing(f"{path}.valueCoding", "required (code Yes, No or Ask)")
    if not isinstance(coding, dict):
        raise _invalid(f"{path}.valueCoding", "expected a Coding object")
    if coding.get("system") not in (None, PERMISSION_SYSTEM):
        raise _invalid(f"{path}.valueCoding.system", f"expected {PERMISSION_SYSTEM}")
    code = coding.get("code")
    if code is None:
        raise _missing(f"{path}.valueCoding.code", "required (Yes, No or Ask)")
    if code not in PERMISSIONS:
        raise _invalid(f"{path}.valueCoding.code", f"{code!r}: expected Yes, No or Ask")
    return PermissionRequest(nhs=number, code=code)


def permission_parameters(nhs: str, code: str) -> dict:
    """The Parameters answered by $setPermission: what is now recorded."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "setPermissions",
                "part": [
                    {
                        "name": "nhsNumber",
                        "valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs},
                    },
                    {
                        "name": "permissionCode",
                        "valueCoding": {"system": PERMISSION_SYSTEM, "code": code},
                    },
                ],
            }
        ],
    }


# ------------------------------------------------------------------ answers


def read_url(base_url: str, nhs: str, scr_id: str) -> str:
    """Where GET /Bundle serves this SCR."""
    return (
        f"{base_url}/Bundle?composition.identifier={scr_id}"
        f"&composition.subject:Patient.identifier={NHS_NUMBER_SYSTEM}|{nhs}"
    )


def _patient_ref(nhs: str) -> dict:
    return {
        "reference": f"Patient/{nhs}",
        "identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs},
    }


def document_reference(
    nhs: str, scr_id: str, at_us: int, permission: str | None, base_url: str
) -> dict:
    """The DocumentReference pointing at a patient's SCR (`at_us`: when it was uploaded)."""
    scr_type = {"coding": [{"system": SNOMED, "code": SCR_TYPE_CODE, "display": SCR_TYPE_DISPLAY}]}
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": derived_id(scr_id, "DocumentReference"),
        "masterIdentifier": {"system": SCR_ID_SYSTEM, "value": scr_id},
        "status": "current",
        "type": scr_type,
        "subject": _patient_ref(nhs),
        "date": iso_instant(at_us),
        "content": [
            {
                "attachment": {
                    "contentType": "application/fhir+json",
                    "url": read_url(base_url, nhs, scr_id),
                }
            }
        ],
        "context": {"event": [scr_type]},
    }
    if permission is not None:
        reference["securityLabel"] = [
            {"coding": [{"system": PERMISSION_SYSTEM, "code": permission}]}
        ]
    return reference


def searchset(
    bundle_id: str,
    matches: list[tuple[str, dict]],
    extra: Iterable[tuple[str, dict]] = (),
    **fields: Any,
) -> dict:
    """A searchset Bundle: `matches` (fullUrl, resource) counted in total; `extra` included."""
    entry = [
        {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
        for url, resource in matches
    ]
    entry += [
        {"fullUrl": url, "resource": resource, "search": {"mode": "include"}}
        for url, resource in extra
    ]
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "searchset",
        **fields,
        "total": len(matches),
        "entry": entry,
    }


def document_reference_bundle(bundle_id: str, nhs: str, state: dict, base_url: str) -> dict:
    """GET /DocumentReference's answer: the current SCR's DocumentReference (none: empty)."""
    current = state.get("current")
    if current is None:
        return searchset(bundle_id, [])
    ref = document_reference(nhs, current["id"], current["at_us"], permission_code(state), base_url)
    patient = {
        "resourceType": "Patient",
        "id": nhs,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
    }
    return searchset(
        bundle_id,
        [(f"{base_url}/DocumentReference/{ref['id']}", ref)],
        [(f"{base_url}/Patient/{nhs}", patient)],
    )


def scr_bundle(bundle_id: str, stored: dict, timestamp: str) -> dict:
    """GET /Bundle's answer, as the real API gives it: a searchset Bundle of the document's
    entries, Composition first (total = every entry)."""
    document = stored["document"]
    entries = document["entry"]
    first = [e for e in entries if e["resource"]["resourceType"] == "Composition"]
    rest = [e for e in entries if e["resource"]["resourceType"] != "Composition"]
    fields: dict[str, Any] = {"timestamp": timestamp}
    if isinstance(document.get("identifier"), dict):
        fields["identifier"] = document["identifier"]
    matches = [
        (e.get("fullUrl") or f"urn:uuid:{e['resource'].get('id', '')}", e["resource"])
        for e in first + rest
    ]
    return searchset(bundle_id, matches, **fields)


# ------------------------------------------------------------------ audit


def audit_event(
    event_id: str,
    *,
    user: str,
    role: str,
    recorded_us: int,
    nhs: str,
    scr_id: str,
    outcome: str = "0",
    emergency_reason: str | None = None,
    request_id: str | None = None,
) -> dict:
    """The AuditEvent of one SCR read: who, in what role, when, which record, with what result,
    and the emergency-access reason when one was claimed."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle",
            "code": "access",
            "display": "Access/View Record Lifecycle Event",
        },
        "action": "R",
        "recorded": iso_instant(recorded_us),
        "outcome": outcome,
        "agent": [
            {
                "who": {"identifier": {"system": USER_SYSTEM, "value": user}, "display": user},
                "role": [{"text": role}],
                "requestor": True,
            }
        ],
        "source": {"observer": {"display": "spinekv summary-care-record"}},
        "entity": [
            {"what": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}},
            {"what": {"identifier": {"system": SCR_ID_SYSTEM, "value": scr_id}}},
        ],
    }
    if emergency_reason is not None:
        event["purposeOfEvent"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": "ETREAT",
                        "display": "Emergency Treatment",
                    }
                ],
                "text": emergency_reason,
            }
        ]
    if request_id is not None:
        event["entity"].append(
            {
                "what": {"identifier": {"system": UUID_SYSTEM, "value": request_id}},
                "description": "X-Request-ID of the read",
            }
        )
    return event


def encode_audit(event: dict, recorded_us: int) -> bytes:
    """The value kept under bucket `audit`: the event and its time as a sortable integer."""
    return canonical_json({"recorded_us": recorded_us, "event": event})


def decode_audit(value: bytes) -> tuple[int, dict] | None:
    try:
        raw = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("recorded_us"), int)
        or not isinstance(raw.get("event"), dict)
    ):
        return None
    return raw["recorded_us"], raw["event"]


def audit_bundle(bundle_id: str, values: Iterable[bytes], base_url: str) -> dict:
    """Every audit record (siblings included: none is merged away), oldest first. Byte-identical
    copies are one record; undecodable values are skipped."""
    events = [d for v in sorted(set(values)) if (d := decode_audit(v)) is not None]
    events.sort(key=lambda d: (d[0], str(d[1].get("id", ""))))
    return searchset(
        bundle_id, [(f"{base_url}/AuditEvent/{e.get('id', '')}", e) for _, e in events]
    )
