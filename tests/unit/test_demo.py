"""The synthetic data generator: valid, unique, realistic and reproducible people."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from collections import Counter
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spinekv.records import demo, nhs
from spinekv.records.patient import soundex, validate
from spinekv.records.scr.upload import validate_document

TODAY = dt.date(2026, 3, 1)
# The UK postcode format: outward code (area, district), a space, inward code (sector, unit).
POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][ABD-HJLNP-UW-Z]{2}$")
ODS_CODE = re.compile(r"^[A-Z][0-9]{5}$")


def people(seed: int, count: int, scr_share: float = 0.0) -> list[demo.Person]:
    return list(itertools.islice(demo.population(seed, TODAY, scr_share), count))


def test_nhs_numbers_are_valid_unique_and_in_the_999_range():
    numbers = list(itertools.islice(demo.nhs_numbers(Random(7)), 20_000))
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        assert nhs.is_valid(number), number
        assert 9_990_000_000 <= int(number) <= 9_999_999_999
    # Drawn over the whole range, not counted up from its start.
    assert max(numbers) > "9995" and min(numbers) < "9994"


def test_same_seed_same_people_and_another_seed_other_people():
    first = people(3, 200, scr_share=0.0)
    assert first == people(3, 200, scr_share=0.0)
    other = people(4, 200, scr_share=0.0)
    assert [p.nhs for p in first] != [p.nhs for p in other]
    assert [p.patient["name"] for p in first] != [p.patient["name"] for p in other]


def test_every_patient_is_one_the_record_api_accepts():
    for person in people(1, 500):
        assert validate(person.patient, TODAY) == {
            k: v for k, v in person.patient.items() if k != "resourceType"
        }
        assert person.patient["identifier"] == [
            {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": person.nhs}
        ]


def test_postcodes_dates_practices_and_phones_look_real():
    patients = [p.patient for p in people(2, 2_000)]
    practices = Counter()
    for patient in patients:
        (address,) = patient["address"]
        assert POSTCODE.match(address["postalCode"]), address
        assert len(address["line"]) == 2 and address["line"][1]
        born = dt.date.fromisoformat(patient["birthDate"])
        assert TODAY - dt.timedelta(days=102 * 366) < born < TODAY
        (gp,) = patient["generalPractitioner"]
        assert gp["identifier"]["system"] == "https://fhir.nhs.uk/Id/ods-organization-code"
        assert ODS_CODE.match(gp["identifier"]["value"])
        practices[gp["identifier"]["value"]] += 1
        (phone,) = patient["telecom"]
        assert re.fullmatch(r"0(7700 900|1632 960)\d{3}", phone["value"])
    # One run's pool of practices: many patients share each.
    assert len(practices) <= demo.GP_PRACTICES
    assert max(practices.values()) >= 10


def test_ages_and_genders_are_spread_like_a_population():
    patients = [p.patient for p in people(5, 3_000)]
    ages = [(TODAY - dt.date.fromisoformat(p["birthDate"])).days / 365.25 for p in patients]
    assert min(ages) < 5 and max(ages) > 85
    assert sum(a < 60 for a in ages) > 2 * sum(a >= 60 for a in ages)
    genders = Counter(p["gender"] for p in patients)
    assert set(genders) <= {"male", "female", "other", "unknown"}
    assert genders["male"] > 1_200 and genders["female"] > 1_200
    assert genders["other"] + genders["unknown"] < 100


def test_surnames_include_sound_alikes_for_fuzzy_search():
    assert soundex("Smith") == soundex("Smyth") and {"Smith", "Smyth"} <= set(demo.SURNAMES)
    assert soundex("Reid") == soundex("Reed") == soundex("Read")
    assert soundex("Gray") == soundex("Grey")
    assert len(set(demo.SURNAMES)) >= 150
    assert len(set(demo.MALE_NAMES)) >= 100 and len(set(demo.FEMALE_NAMES)) >= 100


def test_postcode_inward_code_avoids_the_excluded_letters():
    rng = Random(0)
    codes = [demo.postcode(rng, "EH1") for _ in range(2_000)]
    assert all(POSTCODE.match(c) and c.startswith("EH1 ") for c in codes)
    assert not set("".join(c[-2:] for c in codes)) & set("CIKMOV")


def test_practices_have_distinct_codes():
    pool = demo.practices(Random(9), 200)
    assert len({p.code for p in pool}) == 200
    assert all(ODS_CODE.match(p.code) and (p.outward, p.town) in demo.AREAS for p in pool)


def test_patient_without_a_number_leaves_it_to_the_server():
    rng = Random(1)
    resource = demo.patient(rng, None, TODAY, demo.practices(rng))
    assert "identifier" not in resource
    validate(resource, TODAY)


def test_scr_content_is_zero_to_three_distinct_snomed_entries():
    rng = Random(11)
    sizes = Counter()
    for _ in range(500):
        allergies, medications = demo.scr_content(rng)
        for items, pool in ((allergies, demo.ALLERGIES), (medications, demo.MEDICATIONS)):
            assert 0 <= len(items) <= 3 and len(set(items)) == len(items)
            assert set(items) <= set(pool)
            sizes[len(items)] += 1
    assert set(sizes) == {0, 1, 2, 3}


def test_scrs_are_documents_the_scr_api_accepts_for_their_patient():
    batch = people(6, 300, scr_share=0.6)
    with_scr = [p for p in batch if p.scr is not None]
    assert 120 < len(with_scr) < 240
    ids = set()
    for person in with_scr:
        upload = validate_document(person.scr)
        assert upload.nhs == person.nhs
        assert dt.date.fromisoformat(upload.date[:10]) < TODAY
        ids.add(upload.scr_id)
    assert len(ids) == len(with_scr)
    assert all(p.scr is None for p in people(6, 50, scr_share=0.0))


def test_uuid_from_is_reproducible_version_4():
    a, b = demo.uuid_from(Random(1)), demo.uuid_from(Random(1))
    assert a == b and uuid.UUID(a).version == 4
    assert a != demo.uuid_from(Random(2))


def test_scr_share_is_checked():
    with pytest.raises(ValueError, match="scr_share"):
        next(demo.population(1, TODAY, scr_share=1.5))


@given(st.integers(min_value=0, max_value=2**64))
def test_any_seed_gives_valid_unique_reproducible_people(seed):
    batch = people(seed, 30)
    assert batch == people(seed, 30)
    numbers = [p.nhs for p in batch]
    assert len(set(numbers)) == len(numbers)
    for person in batch:
        assert nhs.is_valid(person.nhs) and person.nhs.startswith("999")
        validate(person.patient, TODAY)
        assert POSTCODE.match(person.patient["address"][0]["postalCode"])
        assert dt.date.fromisoformat(person.patient["birthDate"]) < TODAY
