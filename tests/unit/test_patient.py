"""Patients and NHS numbers (pure): validation, 2i terms, the envelope, patches and allocation."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from spinekv.records import nhs
from spinekv.records import patient as rules
from spinekv.records.outcome import NHS_NUMBER_SYSTEM, RecordError
from tests.records_support import patient

TODAY = dt.date(2026, 1, 1)
NUMBER = "9990000018"


def refused(expected: str, call, *args, **kwargs) -> RecordError:
    """Run `call`, expecting a RecordError with this Spine code; answer it for more checks."""
    with pytest.raises(RecordError) as info:
        call(*args, **kwargs)
    assert info.value.code == expected, info.value
    assert info.value.diagnostics
    return info.value


def made(resource: dict | None = None, number: str = NUMBER) -> rules.Envelope:
    fields = rules.validate(resource or patient(), TODAY)
    return rules.create(fields, number, update_id="create-1", at_us=1_000, by="alice")


def patched(env: rules.Envelope, patches: list, update_id: str = "update-1") -> rules.Envelope:
    return rules.apply_patch(env, patches, update_id=update_id, at_us=2_000, by="bob", today=TODAY)


# ------------------------------------------------------------------ NHS numbers


def test_is_valid_needs_ten_ascii_digits_with_the_modulus_11_check_digit():
    assert nhs.is_valid("9434765919")  # the NHS's own example number
    assert nhs.is_valid(NUMBER)
    for bad in (
        "9434765918",  # wrong check digit
        "943476591",  # nine digits
        "94347659190",  # eleven
        "943 476 5919",  # spaced, as printed on letters: not a resource id
        "943-476-5919",
        "9434765919".translate({d: d + 0xFEE0 for d in range(0x30, 0x3A)}),  # full-width
        "94347659l9",
        "",
        None,
        9434765919,
    ):
        assert not nhs.is_valid(bad), bad


def test_with_check_digit_appends_the_digit_or_refuses_when_it_would_be_ten():
    assert nhs.with_check_digit("943476591") == "9434765919"
    assert nhs.with_check_digit("999000001") == "9990000018"
    assert nhs.with_check_digit("999000000") is None  # Modulus 11 gives 10: no such number


@given(st.integers(min_value=0, max_value=999_999_999))
# In the Scottish CHI range (0100000000-3112999999) a number is valid only if it starts with a
# real DDMMYY date, as the nhs-number package checks.
@example(nine=14228988)
def test_every_number_with_check_digit_makes_is_valid(nine):
    number = nhs.with_check_digit(f"{nine:09d}")
    if number is not None:
        assert nhs.is_valid(number) and number[:9] == f"{nine:09d}"


def test_parse_identifier_takes_the_system_form_or_a_bare_number():
    assert nhs.parse_identifier(f"{NHS_NUMBER_SYSTEM}|{NUMBER}") == NUMBER
    assert nhs.parse_identifier(NUMBER) == NUMBER
    refused("INVALID_VALUE", nhs.parse_identifier, f"https://example.org/id|{NUMBER}")
    refused("INVALID_VALUE", nhs.parse_identifier, f"{NHS_NUMBER_SYSTEM}|9434765918")
    refused("INVALID_VALUE", nhs.parse_identifier, f"{NHS_NUMBER_SYSTEM}|")
    refused("INVALID_VALUE", nhs.parse_identifier, "not a number")
    # Searches ask for their own code.
    refused("INVALID_SEARCH_DATA", nhs.parse_identifier, "123", "INVALID_SEARCH_DATA")


@given(
    first=st.integers(min_value=0, max_value=9_999_999_999),
    width=st.integers(min_value=0, max_value=10_000),
    seed=st.text(max_size=20),
)
@example(first=134_017_918, width=20, seed="")  # a configured range inside the CHI range
def test_candidates_are_valid_and_inside_the_range(first, width, seed):
    last = min(first + width, 9_999_999_999)
    for number in nhs.candidates(seed, first, last):
        assert nhs.is_valid(number)
        assert first <= int(number) <= last


def test_candidates_are_fixed_by_the_seed_so_a_retry_walks_the_same_numbers():
    first, last = 9_990_000_000, 9_999_999_999
    one = list(nhs.candidates("request-a", first, last))
    assert one == list(nhs.candidates("request-a", first, last))
    assert one[:5] != list(nhs.candidates("request-b", first, last))[:5]
    assert len(set(one)) > 50  # a large range offers many distinct numbers


def test_candidates_of_a_range_without_valid_numbers_is_empty():
    assert list(nhs.candidates("s", 9_990_000_000, 9_990_000_009)) == []  # prefix 999000000
    assert set(nhs.candidates("s", 9_990_000_018, 9_990_000_018)) == {"9990000018"}


# ------------------------------------------------------------------ validation


def test_validate_keeps_the_patient_fields_and_drops_server_ones():
    resource = patient(nhs=NUMBER) | {"id": "ignored", "meta": {"versionId": "7"}}
    fields = rules.validate(resource, TODAY)
    assert set(fields) == {
        "identifier",
        "name",
        "gender",
        "birthDate",
        "address",
        "telecom",
        "generalPractitioner",
    }
    assert fields["name"] == resource["name"]


@pytest.mark.parametrize("field", ["name", "gender", "birthDate"])
def test_a_missing_required_field_is_missing_value(field):
    resource = patient()
    del resource[field]
    error = refused("MISSING_VALUE", rules.validate, resource, TODAY)
    assert field in error.diagnostics


def test_an_empty_name_list_or_a_name_without_family_is_missing_value():
    refused("MISSING_VALUE", rules.validate, patient() | {"name": []}, TODAY)
    refused("MISSING_VALUE", rules.validate, patient() | {"name": [{"given": ["Jane"]}]}, TODAY)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"gender": "F"}, "gender"),
        ({"gender": ["female"]}, "gender"),
        ({"birthDate": "29/02/1980"}, "birthDate"),
        ({"birthDate": "1981-02-29"}, "birthDate"),  # not a leap year
        ({"birthDate": 19800229}, "birthDate"),
        ({"birthDate": "2026-01-02"}, "birthDate"),  # after TODAY
        ({"address": [{"postalCode": "NOT A CODE"}]}, "postalCode"),
        ({"address": [{"postalCode": 12345}]}, "postalCode"),
        ({"address": [{"line": "1 Road"}]}, "line"),
        ({"address": {"postalCode": "LS1 4HR"}}, "address"),
        ({"name": [{"family": ""}]}, "family"),
        ({"name": [{"family": 7}]}, "family"),
        ({"name": [{"family": "Smith", "given": "Jane"}]}, "given"),
        ({"name": "Smith"}, "name"),
        ({"telecom": [{"value": "0113"}]}, "telecom"),
        ({"generalPractitioner": [{"identifier": {"value": "not ods!"}}]}, "generalPractitioner"),
        ({"generalPractitioner": [{"identifier": "Y12345"}]}, "generalPractitioner"),
        ({"identifier": "9990000018"}, "identifier"),
        ({"maritalStatus": {"text": "single"}}, "maritalStatus"),
        ({"resourceType": "Practitioner"}, "resourceType"),
    ],
)
def test_a_wrong_value_is_invalid_value_and_says_where(change, where):
    error = refused("INVALID_VALUE", rules.validate, patient() | change, TODAY)
    assert where in error.diagnostics


def test_a_body_that_is_not_an_object_is_invalid_value():
    for body in ([], "Patient", None, 5):
        refused("INVALID_VALUE", rules.validate, body, TODAY)


def test_after_a_patch_every_problem_is_invalid_update():
    resource = patient()
    del resource["gender"]
    refused("INVALID_UPDATE", rules.validate, resource, TODAY, code="INVALID_UPDATE")
    refused("INVALID_UPDATE", rules.validate, patient(gender="x"), TODAY, code="INVALID_UPDATE")


def test_postcodes_are_accepted_in_any_case_and_spacing():
    for code in ("LS1 4HR", "ls14hr", "SW1A 1AA", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT"):
        rules.validate(patient(postcode=code), TODAY)


def test_requested_number_is_a_valid_nhs_identifier_only():
    assert rules.requested_number(patient(nhs=NUMBER)) == NUMBER
    assert rules.requested_number(patient(nhs="9434765918")) is None
    assert rules.requested_number(patient()) is None
    other = patient() | {"identifier": [{"system": "https://example.org", "value": NUMBER}]}
    assert rules.requested_number(other) is None


# ------------------------------------------------------------------ 2i terms


def test_index_terms_cover_family_soundex_postcode_and_gp():
    terms = rules.index_terms(patient(family="Smith", postcode="ls1 4hr", gp="y12345"))
    assert terms == [
        ("family_dob_bin", "SMITH|19800229"),
        ("gp_bin", "Y12345"),
        ("postcode_bin", "LS14HR"),
        ("soundex_dob_bin", "S530|19800229"),
    ]


def test_index_terms_normalise_accents_and_punctuation_and_cover_every_name():
    resource = patient(family="Müller-Lüdenscheidt")
    resource["name"].append({"use": "old", "family": "O'Brien"})
    terms = dict.fromkeys(rules.index_terms(resource))
    assert ("family_dob_bin", "MULLER-LUDENSCHEIDT|19800229") in terms
    assert ("family_dob_bin", "O'BRIEN|19800229") in terms
    assert ("soundex_dob_bin", "O165|19800229") in terms
    assert ("soundex_dob_bin", "M464|19800229") in terms  # MULLERLUDENSCHEIDT


def test_a_patient_without_address_or_gp_has_only_name_terms():
    resource = patient()
    del resource["address"], resource["generalPractitioner"]
    assert {f for f, _ in rules.index_terms(resource)} == {"family_dob_bin", "soundex_dob_bin"}


# ------------------------------------------------------------------ the envelope


def test_create_sets_id_and_puts_the_nhs_identifier_first_at_version_1():
    other = {"system": "https://example.org/mrn", "value": "M1"}
    old_nhs = {"system": NHS_NUMBER_SYSTEM, "value": "9434765919"}
    env = made(patient() | {"identifier": [old_nhs, other]})
    resource = rules.to_fhir(env)
    assert resource["id"] == NUMBER
    assert resource["identifier"] == [{"system": NHS_NUMBER_SYSTEM, "value": NUMBER}, other]
    assert resource["meta"] == {"versionId": "1"}
    assert rules.version(env) == 1
    assert rules.created_by(env, "create-1") and not rules.created_by(env, "other")
    assert "meta" not in env["resource"]  # to_fhir adds it to a copy


def test_envelopes_survive_encoding():
    env = made()
    assert rules.decode(rules.encode(env)) == env


# ------------------------------------------------------------------ patches


def test_a_patch_makes_the_next_version_and_stamps_the_fields_it_changed():
    env = made()
    before = copy.deepcopy(env)
    after = patched(
        env,
        [
            {"op": "replace", "path": "/gender", "value": "male"},
            {"op": "add", "path": "/name/0/given/-", "value": "Ann"},
        ],
    )
    assert env == before  # the input is not changed
    resource = rules.to_fhir(after)
    assert resource["gender"] == "male"
    assert resource["name"][0]["given"] == ["Jane", "Ann"]
    assert resource["meta"] == {"versionId": "2"}
    assert after["stamps"]["gender"] == [2_000, "update-1"]
    assert after["stamps"]["name"] == [2_000, "update-1"]
    assert after["stamps"]["birthDate"] == env["stamps"]["birthDate"]
    assert after["history"]["update-1"] == {
        "kind": "update",
        "at": 2_000,
        "by": "bob",
        "fields": ["gender", "name"],
    }
    again = patched(after, [{"op": "remove", "path": "/telecom"}], update_id="update-2")
    assert rules.version(again) == 3 and "telecom" not in rules.to_fhir(again)


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "/id", "value": "9434765919"},
        {"op": "replace", "path": "/identifier/0/value", "value": "9434765919"},
        {"op": "add", "path": "/identifier/-", "value": {"system": "x", "value": "y"}},
        {"op": "remove", "path": "/identifier"},
        {"op": "add", "path": "/meta", "value": {"versionId": "9"}},
        {"op": "replace", "path": "/resourceType", "value": "Practitioner"},
        {"op": "move", "from": "/identifier", "path": "/extension"},
    ],
)
def test_changing_id_identifier_or_meta_is_forbidden_update(op):
    refused("FORBIDDEN_UPDATE", patched, made(), [op])


def test_replacing_the_whole_document_with_another_id_is_forbidden_update():
    other = rules.to_fhir(made(number="9434765919"))
    del other["meta"]
    refused("FORBIDDEN_UPDATE", patched, made(), [{"op": "replace", "path": "", "value": other}])


@pytest.mark.parametrize(
    "patches",
    [
        [{"op": "test", "path": "/gender", "value": "male"}],  # the test fails
        [{"op": "remove", "path": "/deceasedDateTime"}],  # no such member
        [{"op": "replace", "path": "/name/5/family", "value": "X"}],
        [{"op": "replace", "path": "gender", "value": "male"}],  # not a JSON pointer
        [{"op": "frobnicate", "path": "/gender", "value": "male"}],
        [{"op": "replace", "path": "/gender"}],  # no value
        [{"path": "/gender", "value": "male"}],  # no op
        [{"op": "replace", "value": "male"}],  # no path
        ["replace /gender male"],
        [],
        {"op": "replace", "path": "/gender", "value": "male"},  # not a list
        None,
    ],
)
def test_a_malformed_or_failing_patch_is_invalid_update(patches):
    refused("INVALID_UPDATE", patched, made(), patches)


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "/gender", "value": "x"},
        {"op": "remove", "path": "/birthDate"},
        {"op": "remove", "path": "/name/0/family"},
        {"op": "replace", "path": "/birthDate", "value": "2030-01-01"},
        {"op": "replace", "path": "/address/0/postalCode", "value": "nowhere"},
        {"op": "add", "path": "/favouriteColour", "value": "blue"},
    ],
)
def test_a_patch_leaving_an_invalid_patient_is_invalid_update(op):
    refused("INVALID_UPDATE", patched, made(), [op])


def test_a_patch_is_all_or_nothing():
    env = made()
    before = copy.deepcopy(env)
    refused(
        "INVALID_UPDATE",
        patched,
        env,
        [
            {"op": "replace", "path": "/gender", "value": "male"},
            {"op": "test", "path": "/birthDate", "value": "1999-01-01"},
        ],
    )
    assert env == before
    # A good patch guarded by a passing test applies every operation.
    after = patched(
        env,
        [
            {"op": "test", "path": "/birthDate", "value": "1980-02-29"},
            {"op": "replace", "path": "/gender", "value": "male"},
            {"op": "replace", "path": "/address/0/postalCode", "value": "M1 1AE"},
        ],
    )
    assert rules.to_fhir(after)["gender"] == "male"
    assert rules.postcodes(after["resource"]) == ["M11AE"]


def test_a_test_op_may_guard_server_fields_since_it_changes_nothing():
    env = made()
    guard = {"op": "test", "path": "/identifier/0/value", "value": NUMBER}
    change = {"op": "replace", "path": "/gender", "value": "male"}
    after = patched(env, [guard, change])
    assert after["resource"]["gender"] == "male"
    assert after["resource"]["identifier"] == env["resource"]["identifier"]
    # A guard that fails stops the whole patch.
    wrong = {**guard, "value": "9990000000"}
    refused("INVALID_UPDATE", patched, env, [wrong, change])
