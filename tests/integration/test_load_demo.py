"""`spinekv load-demo`: retries against a scripted server, then loading a live cluster."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from spinekv.cli import records as cli_records
from spinekv.records import demo
from spinekv.records.scr.upload import validate_document
from tests.records_support import PDS, SCR, TOKENS, USERS_TOML
from tests.support import write_cluster_toml

TODAY = dt.date(2026, 3, 1)


def people(seed: int, count: int, scr_share: float = 0.0) -> list[demo.Person]:
    return list(itertools.islice(demo.population(seed, TODAY, scr_share), count))


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
    """load-demo as the test cluster's clinical user (its file holds only the token's hash)."""
    token = [] if "--token" in args else ["--token", TOKENS["clinical"]]
    return CliRunner().invoke(cli_records.load_demo, ["--config", str(config), *token, *args])


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
