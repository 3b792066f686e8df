"""What every record resource shares (pure): Spine error codes, the OperationOutcome that carries
them, the NHS number system and FHIR instants."""

from __future__ import annotations

import datetime as dt

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SPINE_CODES_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"

# Spine code -> (HTTP status, FHIR issue type, display), as the PDS and SCR FHIR APIs use them.
CODES: dict[str, tuple[int, str, str]] = {
    "INVALID_RESOURCE_ID": (400, "value", "Resource Id is invalid"),
    "INVALID_SEARCH_DATA": (400, "value", "Search data is invalid"),
    "MISSING_VALUE": (400, "required", "Required value is missing"),
    "INVALID_VALUE": (400, "value", "Provided value is invalid"),
    "INVALID_UPDATE": (400, "structure", "Update is invalid"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "value", "Unsupported media type"),
    "ACCESS_DENIED": (403, "forbidden", "Access denied"),
    "FORBIDDEN_UPDATE": (403, "forbidden", "Forbidden update"),
    "RESOURCE_NOT_FOUND": (404, "not-found", "Resource not found"),
    "METHOD_NOT_ALLOWED": (405, "not-supported", "Method not allowed"),
    "RESOURCE_VERSION_MISMATCH": (409, "conflict", "Resource version mismatch"),
    "PRECONDITION_FAILED": (412, "required", "Required condition was not fulfilled"),
    "TOO_MANY_MATCHES": (400, "multiple-matches", "Too Many Matches"),
    "TOO_MANY_REQUESTS": (429, "throttled", "Too many requests"),
    "SERVICE_UNAVAILABLE": (503, "transient", "Service unavailable"),
    # Ours: a stored record that fails its integrity check or does not decode. Not transient:
    # asking again reads the same bytes.
    "INVALID_STORED_RECORD": (500, "exception", "Stored record is invalid"),
}


class RecordError(Exception):
    """A request the record layer refuses or cannot serve; rendered as an OperationOutcome."""

    def __init__(self, code: str, diagnostics: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {diagnostics}")
        if code not in CODES:
            raise ValueError(f"unknown Spine code {code!r}")
        self.code = code
        self.diagnostics = diagnostics
        self.status = CODES[code][0] if status is None else status

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (the store could not answer in time)."""
        return CODES[self.code][1] == "transient"


def bad_record(what: str, key: str, problem: str) -> RecordError:
    """The error for a stored record that cannot be trusted, naming it: e.g. `Patient
    9990000018: stored record failed its integrity check`."""
    return RecordError("INVALID_STORED_RECORD", f"{what} {key}: stored record {problem}")


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict:
    """The FHIR OperationOutcome for one Spine error code (`severity` warning: reported beside
    an answer that still stands, such as a search that skipped a bad record)."""
    _, issue_type, display = CODES[code]
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": issue_type,
                "details": {
                    "coding": [
                        {
                            "system": SPINE_CODES_SYSTEM,
                            "version": "1",
                            "code": code,
                            "display": display,
                        }
                    ]
                },
                "diagnostics": diagnostics,
            }
        ],
    }


def iso_instant(us: int) -> str:
    """Microseconds since the epoch (the store's clock) as a FHIR instant, in UTC."""
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).isoformat(timespec="milliseconds")


def skipped_entry(diagnostics: str) -> dict:
    """A searchset entry reporting a bad record a search left out (FHIR's search.mode outcome):
    the search answers for everything else."""
    return {
        "resource": operation_outcome("INVALID_STORED_RECORD", diagnostics, "warning"),
        "search": {"mode": "outcome"},
    }
