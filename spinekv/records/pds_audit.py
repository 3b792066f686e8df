"""The AuditEvents of PDS reads and searches (pure): who looked at which patients, and when.

As the real PDS does, a read is audited against the patient it returned and a search against
every patient it returned; a read that returns no patient is not.
"""

from __future__ import annotations

from typing import Any

from .audit import Reader
from .outcome import NHS_NUMBER_SYSTEM, iso_instant
from .scr.codes import USER_SYSTEM, UUID_SYSTEM

INTERACTIONS = {"read": "R", "search-type": "E"}  # FHIR interaction -> AuditEvent action


def patient_access_event(
    event_id: str, *, reader: Reader, recorded_us: int, interaction: str, numbers: list[str]
) -> dict:
    """The AuditEvent of one PDS `interaction` (read or search-type) that returned `numbers`."""
    entities: list[dict[str, Any]] = [
        {
            "what": {
                "reference": f"Patient/{number}",
                "identifier": {"system": NHS_NUMBER_SYSTEM, "value": number},
            }
        }
        for number in numbers
    ]
    entities.append(
        {
            "what": {"identifier": {"system": UUID_SYSTEM, "value": reader.request_id}},
            "description": f"X-Request-ID of the {interaction}",
        }
    )
    return {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}],
        "action": INTERACTIONS[interaction],
        "recorded": iso_instant(recorded_us),
        "outcome": "0",
        "agent": [
            {
                "who": {
                    "identifier": {"system": USER_SYSTEM, "value": reader.name},
                    "display": reader.name,
                },
                "role": [{"text": reader.role}],
                "requestor": True,
            }
        ],
        "source": {"observer": {"display": "spinekv personal-demographics"}},
        "entity": entities,
    }
