"""The $setPermission Parameters: the consent decision a request states, and the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import nhs as nhs_numbers
from ..outcome import NHS_NUMBER_SYSTEM
from .checks import invalid, missing, nhs_of, require_list, require_resource
from .codes import PERMISSION_SYSTEM, PERMISSIONS


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """A patient's consent decision: NHS number and code (Yes, No or Ask)."""

    nhs: str
    code: str


def parse_set_permission(body: Any) -> PermissionRequest:
    """A $setPermission Parameters: nhsNumber (valueIdentifier, or valueString as in the real
    example) and permissionCode (valueCoding Yes | No | Ask). Parts may sit at the top level or
    inside a `setPermissions` parameter, as in SetPermission.json."""
    body = require_resource(body, "Parameters")
    params = require_list(
        body, "parameter", "Parameters.parameter", "required (nhsNumber and permissionCode)"
    )
    found: dict[str, tuple[dict, str]] = {}

    def collect(items: list, path: str) -> None:
        for i, item in enumerate(items):
            here = f"{path}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise invalid(here, "expected a parameter with a name")
            name = item["name"]
            if name == "setPermissions" and "part" in item:
                if not isinstance(item["part"], list):
                    raise invalid(f"{here}.part", "expected an array")
                collect(item["part"], f"{here}.part")
            elif name in ("nhsNumber", "permissionCode"):
                if name in found:
                    raise invalid(here, f"{name} given twice")
                found[name] = (item, here)

    collect(params, "Parameters.parameter")
    if "nhsNumber" not in found:
        raise missing("Parameters.parameter", "no nhsNumber parameter")
    if "permissionCode" not in found:
        raise missing("Parameters.parameter", "no permissionCode parameter")
    return PermissionRequest(
        nhs=_nhs_part(*found["nhsNumber"]), code=_code_part(*found["permissionCode"])
    )


def _nhs_part(item: dict, path: str) -> str:
    if "valueIdentifier" in item:
        return nhs_of(item["valueIdentifier"], f"{path}.valueIdentifier")
    if "valueString" in item:
        number = item["valueString"]
        if not isinstance(number, str) or not nhs_numbers.is_valid(number):
            raise invalid(f"{path}.valueString", f"{number!r} is not a valid NHS number")
        return number
    raise missing(f"{path}.valueIdentifier", "required (the patient's NHS number)")


def _code_part(item: dict, path: str) -> str:
    coding = item.get("valueCoding")
    if coding is None:
        raise missing(f"{path}.valueCoding", "required (code Yes, No or Ask)")
    if not isinstance(coding, dict):
        raise invalid(f"{path}.valueCoding", "expected a Coding object")
    if coding.get("system") not in (None, PERMISSION_SYSTEM):
        raise invalid(f"{path}.valueCoding.system", f"expected {PERMISSION_SYSTEM}")
    code = coding.get("code")
    if code is None:
        raise missing(f"{path}.valueCoding.code", "required (Yes, No or Ask)")
    if code not in PERMISSIONS:
        raise invalid(f"{path}.valueCoding.code", f"{code!r}: expected Yes, No or Ask")
    return code


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
