"""Checks the SCR's FHIR bodies share: refusals that name the JSON path, resource types, NHS
numbers."""

from __future__ import annotations

from typing import Any

from .. import nhs as nhs_numbers
from ..outcome import NHS_NUMBER_SYSTEM, RecordError


def missing(path: str, what: str) -> RecordError:
    """MISSING_VALUE at `path`."""
    return RecordError("MISSING_VALUE", f"{path}: {what}")


def invalid(path: str, what: str) -> RecordError:
    """INVALID_VALUE at `path`."""
    return RecordError("INVALID_VALUE", f"{path}: {what}")


def require_resource(body: Any, kind: str) -> dict:
    """`body` when it is a JSON object with resourceType `kind`; refused otherwise."""
    if not isinstance(body, dict):
        raise invalid(kind, f"the body must be a JSON object (a FHIR {kind})")
    found = body.get("resourceType")
    if found is None:
        raise missing(f"{kind}.resourceType", f"required ({kind})")
    if found != kind:
        raise invalid(f"{kind}.resourceType", f"expected {kind!r}, got {found!r}")
    return body


def require_list(owner: dict, name: str, path: str, why: str, items: str = "") -> list:
    """`owner[name]` when it is an array (maybe empty); MISSING_VALUE (`why`) when absent."""
    value = owner.get(name)
    if value is None:
        raise missing(path, why)
    if not isinstance(value, list):
        raise invalid(path, f"expected an array{items}")
    return value


def nhs_of(identifier: Any, path: str) -> str:
    """The NHS number an Identifier holds; refused unless its system and number are right."""
    if not isinstance(identifier, dict):
        raise invalid(path, "expected an Identifier object")
    if identifier.get("system") != NHS_NUMBER_SYSTEM:
        raise invalid(f"{path}.system", f"expected {NHS_NUMBER_SYSTEM}")
    value = identifier.get("value")
    if value is None:
        raise missing(f"{path}.value", "required (the NHS number)")
    if not isinstance(value, str) or not nhs_numbers.is_valid(value):
        raise invalid(f"{path}.value", f"{value!r} is not a valid NHS number")
    return value
