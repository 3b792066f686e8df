"""The $setPermission Parameters: the shapes accepted, every refusal, and the answer."""

from __future__ import annotations

import pytest

from spinekv.records.outcome import NHS_NUMBER_SYSTEM, RecordError
from spinekv.records.scr.codes import PERMISSION_SYSTEM
from spinekv.records.scr.permission import (
    PermissionRequest,
    parse_set_permission,
    permission_parameters,
)
from tests.unit.scr_support import NHS


def set_permission(nhs_part: dict, code_part: dict, nested: bool = True) -> dict:
    parts = [{"name": "nhsNumber", **nhs_part}, {"name": "permissionCode", **code_part}]
    if nested:
        return {
            "resourceType": "Parameters",
            "parameter": [{"name": "setPermissions", "part": parts}],
        }
    return {"resourceType": "Parameters", "parameter": parts}


def test_set_permission_accepts_the_real_and_the_flat_shapes():
    coding = {"valueCoding": {"system": PERMISSION_SYSTEM, "code": "No"}}
    real = set_permission({"valueString": NHS}, coding)
    assert parse_set_permission(real) == PermissionRequest(NHS, "No")
    ident = {"valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": NHS}}
    flat = set_permission(ident, {"valueCoding": {"code": "Ask"}}, nested=False)
    assert parse_set_permission(flat) == PermissionRequest(NHS, "Ask")
    # What $setPermission answers parses back to the same request.
    answer = permission_parameters(NHS, "Yes")
    assert parse_set_permission(answer) == PermissionRequest(NHS, "Yes")


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
            parse_set_permission(body)
        assert info.value.code == code, (body, info.value)
        assert word in info.value.diagnostics, (body, info.value.diagnostics)
