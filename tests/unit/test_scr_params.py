"""The SCR routes' query parameters and emergency-access reason header, read at the HTTP edge."""

from __future__ import annotations

import pytest

from spinekv.http.scr_params import (
    EMERGENCY_REASON_HEADER,
    MAX_REASON_LENGTH,
    emergency_reason,
    find_params,
    read_params,
)
from spinekv.records.outcome import NHS_NUMBER_SYSTEM, RecordError
from tests.unit.scr_support import NHS, SCR_ID


def test_find_params():
    assert find_params({"patient": [f"{NHS_NUMBER_SYSTEM}|{NHS}"]}) == NHS
    assert find_params({"patient": [NHS], "_sort": ["date"], "_count": ["1"]}) == NHS
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
            find_params(query)
        assert info.value.code == code and word in info.value.diagnostics, (query, info.value)


def test_read_params():
    query = {
        "composition.identifier": [SCR_ID.lower()],
        "composition.subject:Patient.identifier": [f"{NHS_NUMBER_SYSTEM}|{NHS}"],
    }
    assert read_params(query) == (SCR_ID, NHS)
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
            read_params(bad)
        assert info.value.code == code and name in info.value.diagnostics


def test_emergency_reason():
    assert emergency_reason(None) is None
    assert emergency_reason("  unconscious in A&E ") == "unconscious in A&E"
    for bad in ("", "   ", "x" * (MAX_REASON_LENGTH + 1)):
        with pytest.raises(RecordError) as info:
            emergency_reason(bad)
        assert info.value.code == "INVALID_VALUE"
        assert EMERGENCY_REASON_HEADER in info.value.diagnostics
