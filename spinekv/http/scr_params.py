"""The SCR routes' request parameters: query parameters and the emergency-access reason header."""

from __future__ import annotations

from collections.abc import Mapping

from ..records import nhs as nhs_numbers
from ..records.outcome import NHS_NUMBER_SYSTEM, RecordError
from ..records.scr.codes import SCR_TYPE_CODE, SNOMED
from ..records.scr.ids import canonical_scr_id

EMERGENCY_REASON_HEADER = "NHSD-Emergency-Access-Reason"
MAX_REASON_LENGTH = 1000


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
