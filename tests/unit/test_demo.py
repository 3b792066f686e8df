"""The synthetic data generator: valid, unique, realistic and reproducible people."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import re
import uuid
from collections import Counter
from pathlib import Path
from random import Random

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from spinekv.cli import records as cli_records
from spinekv.records import demo, nhs
from spinekv.records.patient import soundex, validate
from spinekv.records.scr.upload import validate_document
from tests.records_support import PDS, SCR, TOKENS, USERS_TOML
from tests.support import write_cluster_toml

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


# ------------------------------------------------------------------ spinekv load-demo


@pytest.fixture
def no_retry_pause(monkeypatch):
    monkeypatch.setattr(cli_records, "RETRY_PAUSES", (0.0, 0.0, 0.0))


class FlakyApi:
    """A stand-in record API: answers each request id with the next status of a script."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = statuses
        self.seen: list[str] = []  # X-Request-ID of every attempt

    async def handle(self, request: web.Request) -> web.Response:
        request_id = request.headers["X-Request-ID"]
        status = self.statuses[min(self.seen.count(request_id), len(self.statuses) - 1)]
        self.seen.append(request_id)
        body = await request.json()
        if status >= 400:
            outcome = {"issue": [{"details": {"coding": [{"code": "BAD"}]}, "diagnostics": "no"}]}
            return web.json_response(outcome, status=status)
        return web.json_response({**body, "id": body["identifier"][0]["value"]}, status=status)


@contextlib.asynccontextmanager
async def flaky_server(api: FlakyApi):
    app = web.Application()
    app.router.add_post(cli_records.PATIENT_PATH, api.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_retries_keep_the_request_id_and_a_retried_conflict_counts_as_done(
    http, no_retry_pause
):
    person = people(1, 1)[0]
    for script, loaded in (((503, 502, 201), 1), ((503, 409), 1), ((503,), 0)):
        api = FlakyApi(*script)
        async with flaky_server(api) as url:
            loader = cli_records.DemoLoader(http, [url], "token")
            await loader.load_person(person)
        assert len(set(api.seen)) == 1, "every attempt must carry the same X-Request-ID"
        assert loader.report.patients == loaded
        if not loaded:
            assert len(api.seen) == 1 + cli_records.RETRIES
            (failure,) = loader.report.failures
            assert failure.status == 503 and "BAD: no" in str(failure)


async def test_a_4xx_is_reported_with_its_diagnostics_and_not_retried(http, no_retry_pause):
    api = FlakyApi(400)
    async with flaky_server(api) as url:
        loader = cli_records.DemoLoader(http, [url], "token")
        await cli_records.load_people(loader, demo.population(1, TODAY, 0.0), 3, 2)
    assert len(api.seen) == 3
    assert loader.report.patients == 0
    assert [f.status for f in loader.report.failures] == [400, 400, 400]
    assert "BAD: no" in str(loader.report.failures[0])


async def test_loading_stops_after_max_failures(http, no_retry_pause):
    api = FlakyApi(400)
    async with flaky_server(api) as url:
        loader = cli_records.DemoLoader(http, [url], "token")
        await cli_records.load_people(loader, demo.population(1, TODAY, 0.0), 1_000, 4)
    failed = len(loader.report.failures)
    assert cli_records.MAX_FAILURES <= failed < cli_records.MAX_FAILURES + 4
    assert len(api.seen) == failed


async def test_load_people_creates_readable_patients_and_scrs_across_nodes(
    records_cluster, api, http
):
    urls = [records_cluster.url(n) for n in ("n1", "n2", "n3", "n4", "n5")]
    loader = cli_records.DemoLoader(http, urls, TOKENS["clinical"])
    report = await cli_records.load_people(loader, demo.population(8, TODAY, 0.5), 20, 4)
    loaded = people(8, 20, scr_share=0.5)
    with_scr = [p for p in loaded if p.scr is not None]
    assert report.failures == [] and report.renumbered == 0
    assert (report.patients, report.scrs) == (20, len(with_scr)) and with_scr
    for person in loaded:
        answer = await api.call("GET", f"{PDS}/Patient/{person.nhs}", base_url=urls[2])
        assert answer.status == 200, answer
        assert answer.json["name"] == person.patient["name"]
        assert answer.json["address"] == person.patient["address"]
    for person in with_scr:
        query = f"patient=https://fhir.nhs.uk/Id/nhs-number|{person.nhs}"
        found = await api.call("GET", f"{SCR}/DocumentReference?{query}", base_url=urls[4])
        assert found.status == 200, found
        (ref,) = [
            e["resource"]
            for e in found.json["entry"]
            if e["resource"]["resourceType"] == "DocumentReference"
        ]
        assert ref["masterIdentifier"]["value"] == validate_document(person.scr).scr_id


def invoke(config: Path, *args: str):
    return CliRunner().invoke(cli_records.load_demo, ["--config", str(config), *args])


async def test_load_demo_command_loads_refuses_a_seed_twice_and_a_cluster_that_is_down(
    records_cluster, api, tmp_path
):
    config = records_cluster.config.path
    done = await asyncio.to_thread(invoke, config, "--patients", "12")
    assert done.exit_code == 0, done.output
    loaded = people(1, 12, scr_share=0.6)  # the defaults: --seed 1, --scr-share 0.6
    scrs = sum(p.scr is not None for p in loaded)
    assert f"loaded 12 patients and {scrs} SCRs in" in done.output
    for person in loaded:
        assert (await api.call("GET", f"{PDS}/Patient/{person.nhs}")).status == 200

    again = await asyncio.to_thread(invoke, config, "--patients", "12", "--node", "n3")
    assert again.exit_code == 1
    assert "already in the cluster" in again.output and "another --seed" in again.output

    bad_token = await asyncio.to_thread(invoke, config, "--patients", "1", "--token", "nope")
    assert bad_token.exit_code == 1 and "refused the token" in bad_token.output

    (tmp_path / "down").mkdir()
    nobody = write_cluster_toml(tmp_path / "down", 2, extra=USERS_TOML)
    down = await asyncio.to_thread(invoke, nobody, "--patients", "1")
    assert down.exit_code == 1 and "not up" in down.output
