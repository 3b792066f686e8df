"""What every record API request shares: bearer auth, X-Request-ID, idempotent writes, errors.

Run against the demographics routes on the in-process cluster (tests/inproc.py), whose
cluster.toml has a user per role (tests/records_support.py).
"""

from __future__ import annotations

import asyncio
import json
import uuid

from spinekv.records import nhs
from spinekv.records.outcome import CODES
from tests.records_support import PDS, RAW, TOKENS, Answer, RecordClient, patient

SPINE_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
PATCH_JSON = "application/json-patch+json"


def expect_outcome(answer: Answer, status: int, code: str) -> str:
    """Check `answer` is an OperationOutcome with this status and Spine code; its diagnostics."""
    assert answer.status == status, answer
    assert answer.headers["Content-Type"].startswith("application/fhir+json"), answer.headers
    body = answer.json
    assert body["resourceType"] == "OperationOutcome", body
    issue = body["issue"][0]
    coding = issue["details"]["coding"][0]
    assert coding["system"] == SPINE_SYSTEM
    assert coding["code"] == code, body
    _, issue_type, display = CODES[code]
    assert (issue["severity"], issue["code"], coding["display"]) == ("error", issue_type, display)
    assert isinstance(issue["diagnostics"], str) and issue["diagnostics"].strip()
    return issue["diagnostics"]


async def create(api: RecordClient, role: str = "clinical", **fields) -> Answer:
    answer = await api.call("POST", f"{PDS}/Patient", body=patient(**fields), role=role)
    assert answer.status == 201, answer
    return answer


async def patch(api: RecordClient, number: str, patches: list, version: int, **kwargs) -> Answer:
    return await api.call(
        "PATCH",
        f"{PDS}/Patient/{number}",
        body={"patches": patches},
        content_type=PATCH_JSON,
        headers={"If-Match": f'W/"{version}"'},
        **kwargs,
    )


async def raw(http, method: str, url: str, headers: dict[str, str], body: str | None = None):
    """A request with exactly these headers (RecordClient always adds an X-Request-ID)."""
    async with http.request(method, url, data=body, headers=headers) as resp:
        return Answer(resp.status, resp.headers, await resp.text())


async def matches(api: RecordClient, query: str = "family=Smith&birthdate=1980-02-29") -> list:
    """The NHS numbers a search finds (at most 50)."""
    answer = await api.call("GET", f"{PDS}/Patient?{query}&_max-results=50")
    assert answer.status == 200, answer
    return [e["resource"]["id"] for e in answer.json["entry"]]


# ------------------------------------------------------------------ auth


async def test_no_unknown_or_non_bearer_credentials_are_401_access_denied(api, records_cluster):
    number = (await create(api)).json["id"]
    read = f"{PDS}/Patient/{number}"
    expect_outcome(await api.call("GET", read, role=None), 401, "ACCESS_DENIED")
    for header in (
        "Bearer not-a-known-token",
        f"Basic {TOKENS['clinical']}",
        TOKENS["clinical"],  # a token with no scheme
        "Bearer ",
        "Bearer",
    ):
        answer = await api.call("GET", read, role=None, headers={"Authorization": header})
        expect_outcome(answer, 401, "ACCESS_DENIED")
    # The scheme is case-insensitive (RFC 7235).
    lower = await api.call(
        "GET", read, role=None, headers={"Authorization": f"bearer {TOKENS['clinical']}"}
    )
    assert lower.status == 200, lower
    # A write without credentials changes nothing.
    refused = await api.call("POST", f"{PDS}/Patient", body=patient(family="Nobody"), role=None)
    expect_outcome(refused, 401, "ACCESS_DENIED")
    assert await matches(api, "family=Nobody&birthdate=1980-02-29") == []


async def test_the_service_role_reads_and_searches_but_may_not_write(api, records_cluster):
    expect_outcome(
        await api.call("POST", f"{PDS}/Patient", body=patient(), role="service"),
        403,
        "ACCESS_DENIED",
    )
    assert await matches(api) == []
    number = (await create(api, role="admin")).json["id"]
    denied = await patch(
        api, number, [{"op": "replace", "path": "/gender", "value": "male"}], 1, role="service"
    )
    assert "service" in expect_outcome(denied, 403, "ACCESS_DENIED")
    read = await api.call("GET", f"{PDS}/Patient/{number}", role="service")
    assert read.status == 200 and read.json["gender"] == "female"
    assert read.headers["ETag"] == 'W/"1"'
    found = await api.call(
        "GET", f"{PDS}/Patient?family=Smith&birthdate=1980-02-29", role="service"
    )
    assert found.status == 200 and found.json["total"] == 1
    history = await api.call("GET", f"{PDS}/Patient/{number}/_history", role="service")
    assert history.status == 200


# ------------------------------------------------------------------ request ids


async def test_a_missing_or_malformed_request_id_is_400(api, records_cluster, http):
    url = records_cluster.url("n1") + f"{PDS}/Patient/9990000018"
    bearer = {"Authorization": f"Bearer {TOKENS['clinical']}"}
    expect_outcome(await raw(http, "GET", url, bearer), 400, "MISSING_VALUE")
    for bad in ("not-a-uuid", "12345", "9990000018", str(uuid.uuid4())[:-1]):
        answer = await raw(http, "GET", url, bearer | {"X-Request-ID": bad})
        assert bad in expect_outcome(answer, 400, "INVALID_VALUE")
    # A write without one is refused before it is applied.
    post = records_cluster.url("n1") + f"{PDS}/Patient"
    headers = bearer | {"Content-Type": "application/fhir+json"}
    answer = await raw(http, "POST", post, headers, json.dumps(patient()))
    expect_outcome(answer, 400, "MISSING_VALUE")
    assert await matches(api) == []


async def test_request_and_correlation_ids_are_echoed_on_success_and_on_errors(
    api, records_cluster
):
    ids = {"X-Correlation-ID": "trace-7f3a"}

    def echoes(answer: Answer, request_id: str) -> None:
        assert answer.headers["X-Request-ID"] == request_id, answer.headers
        assert answer.headers["X-Correlation-ID"] == "trace-7f3a", answer.headers

    rid = str(uuid.uuid4())
    created = await api.call("POST", f"{PDS}/Patient", body=patient(), request_id=rid, headers=ids)
    assert created.status == 201
    echoes(created, rid)
    number = created.json["id"]
    for method, path, role, status in (
        ("GET", f"{PDS}/Patient/{number}", "clinical", 200),
        ("GET", f"{PDS}/Patient/9434765919", "clinical", 404),
        ("GET", f"{PDS}/Patient/123", "clinical", 400),
        ("GET", f"{PDS}/Patient?family=Smith", "clinical", 400),
        ("GET", f"{PDS}/Patient/{number}", None, 401),
        ("POST", f"{PDS}/Patient", "service", 403),
    ):
        rid = str(uuid.uuid4())
        answer = await api.call(
            method,
            path,
            role=role,
            request_id=rid,
            headers=ids,
            body=patient() if method == "POST" else None,
        )
        assert answer.status == status, (path, answer)
        echoes(answer, rid)
    # A malformed id is echoed too, so the caller can match the refusal to its request.
    answer = await api.call("GET", f"{PDS}/Patient/{number}", headers=ids | {"X-Request-ID": "x1"})
    assert answer.status == 400
    assert answer.headers["X-Request-ID"] == "x1"
    # Without X-Correlation-ID none is invented.
    plain = await api.call("GET", f"{PDS}/Patient/{number}")
    assert "X-Correlation-ID" not in plain.headers


# ------------------------------------------------------------------ idempotent writes


async def test_a_create_retried_with_its_request_id_answers_the_first_result_once(
    api, records_cluster
):
    rid = str(uuid.uuid4())
    first = await api.call("POST", f"{PDS}/Patient", body=patient(), request_id=rid)
    assert first.status == 201
    again = await api.call("POST", f"{PDS}/Patient", body=patient(), request_id=rid)
    # The retry may arrive at any node: the first answer lives in the store.
    elsewhere = await api.call(
        "POST",
        f"{PDS}/Patient",
        body=patient(),
        request_id=rid,
        base_url=records_cluster.url("n4"),
    )
    for retry in (again, elsewhere):
        assert retry.status == 201
        assert retry.text == first.text
        assert retry.headers["ETag"] == first.headers["ETag"] == 'W/"1"'
        assert retry.headers["Location"] == first.headers["Location"]
        assert retry.headers["X-Request-ID"] == rid
    assert await matches(api) == [first.json["id"]]


async def test_simultaneous_duplicates_create_one_patient(api, records_cluster):
    """The same create sent three times at once, twice to one node and once to another."""
    rid = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(
            api.call(
                "POST",
                f"{PDS}/Patient",
                body=patient(),
                request_id=rid,
                base_url=records_cluster.url(node),
            )
            for node in ("n1", "n1", "n2")
        )
    )
    assert [a.status for a in answers] == [201, 201, 201], answers
    assert len({a.json["id"] for a in answers}) == 1
    number = answers[0].json["id"]
    assert await matches(api) == [number]
    read = await api.call("GET", f"{PDS}/Patient/{number}")
    assert read.json["meta"]["versionId"] == "1"


async def test_a_request_id_reused_for_another_request_is_409_and_changes_nothing(
    api, records_cluster
):
    rid = str(uuid.uuid4())
    first = await api.call("POST", f"{PDS}/Patient", body=patient(), request_id=rid)
    number = first.json["id"]
    other_body = await api.call(
        "POST", f"{PDS}/Patient", body=patient(family="Jones"), request_id=rid
    )
    assert "X-Request-ID" in expect_outcome(other_body, 409, "INVALID_VALUE")
    other_user = await api.call(
        "POST", f"{PDS}/Patient", body=patient(), request_id=rid, role="admin"
    )
    expect_outcome(other_user, 409, "INVALID_VALUE")
    as_patch = await patch(
        api, number, [{"op": "replace", "path": "/gender", "value": "male"}], 1, request_id=rid
    )
    expect_outcome(as_patch, 409, "INVALID_VALUE")
    assert await matches(api, "family=Jones&birthdate=1980-02-29") == []
    read = await api.call("GET", f"{PDS}/Patient/{number}")
    assert (read.json["gender"], read.headers["ETag"]) == ("female", 'W/"1"')


async def test_a_patch_retried_answers_the_first_result_and_bumps_the_version_once(
    api, records_cluster
):
    number = (await create(api)).json["id"]
    rid = str(uuid.uuid4())
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    first = await patch(api, number, ops, 1, request_id=rid)
    assert first.status == 200 and first.headers["ETag"] == 'W/"2"'
    # The retry still names version 1, which is stale by now: it is answered, not refused.
    for node in ("n1", "n3"):
        retry = await patch(api, number, ops, 1, request_id=rid, base_url=records_cluster.url(node))
        assert (retry.status, retry.text, retry.headers["ETag"]) == (200, first.text, 'W/"2"')
    read = await api.call("GET", f"{PDS}/Patient/{number}")
    assert read.headers["ETag"] == 'W/"2"' and read.json["meta"]["versionId"] == "2"
    history = await api.call("GET", f"{PDS}/Patient/{number}/_history")
    assert history.json["total"] == 2


async def _forget_response(http, records_cluster, request_id: str) -> None:
    """Delete a write's stored first response through the Riak HTTP API, and check it is gone."""
    url = records_cluster.url("n2") + f"/types/records/buckets/requests/keys/{request_id}"
    async with http.get(url, headers=RAW) as r:
        assert r.status == 200, "the first response was never stored"
    async with http.delete(url, headers=RAW) as r:
        assert r.status == 204
    async with http.get(url, headers=RAW) as r:
        assert r.status == 404


async def test_a_retry_whose_stored_response_is_lost_still_applies_once(api, records_cluster, http):
    """The record itself remembers the request ids that made it (its history)."""
    create_rid, wanted_rid, patch_rid = (str(uuid.uuid4()) for _ in range(3))
    first = await api.call("POST", f"{PDS}/Patient", body=patient(), request_id=create_rid)
    number = first.json["id"]
    kept = await api.call(
        "POST",
        f"{PDS}/Patient",
        body=patient(family="Jones", nhs="9434765919"),
        request_id=wanted_rid,
    )
    assert kept.json["id"] == "9434765919"
    ops = [{"op": "replace", "path": "/address/0/postalCode", "value": "M1 1AE"}]
    patched = await patch(api, number, ops, 1, request_id=patch_rid)
    assert patched.status == 200
    for rid in (create_rid, wanted_rid, patch_rid):
        await _forget_response(http, records_cluster, rid)

    again = await api.call("POST", f"{PDS}/Patient", body=patient(), request_id=create_rid)
    assert again.status == 201 and again.json["id"] == number
    assert await matches(api) == [number]
    kept_again = await api.call(
        "POST",
        f"{PDS}/Patient",
        body=patient(family="Jones", nhs="9434765919"),
        request_id=wanted_rid,
    )
    assert kept_again.status == 201 and kept_again.json["id"] == "9434765919"
    assert await matches(api, "family=Jones&birthdate=1980-02-29") == ["9434765919"]
    repatched = await patch(api, number, ops, 1, request_id=patch_rid)
    assert repatched.status == 200 and repatched.json["meta"]["versionId"] == "2"
    read = await api.call("GET", f"{PDS}/Patient/{number}")
    assert read.headers["ETag"] == 'W/"2"'
    history = await api.call("GET", f"{PDS}/Patient/{number}/_history")
    assert history.json["total"] == 2


# ------------------------------------------------------------------ error format


async def test_bodies_are_fhir_json_and_bad_ones_are_refused_as_operation_outcomes(
    api, records_cluster
):
    plain = await api.call(
        "POST", f"{PDS}/Patient", body=patient(), content_type="application/json"
    )
    assert plain.status == 201 and plain.headers["Content-Type"].startswith("application/fhir+json")
    assert nhs.is_valid(plain.json["id"])
    wrong_type = await api.call(
        "POST", f"{PDS}/Patient", data="family=Smith", content_type="text/plain"
    )
    expect_outcome(wrong_type, 415, "UNSUPPORTED_MEDIA_TYPE")
    for text in ("{", "", "[1, 2", "\xff"):
        answer = await api.call("POST", f"{PDS}/Patient", data=text)
        assert "JSON" in expect_outcome(answer, 400, "INVALID_VALUE")
    assert await matches(api) == [plain.json["id"]]


async def test_an_unsupported_method_is_an_operation_outcome(api, records_cluster):
    number = (await create(api)).json["id"]
    answer = await api.call("DELETE", f"{PDS}/Patient/{number}")
    expect_outcome(answer, 405, "METHOD_NOT_ALLOWED")
    assert (await api.call("GET", f"{PDS}/Patient/{number}")).status == 200


async def test_one_uuid_written_two_ways_is_one_request(api):
    request_id = uuid.uuid4()
    first = await api.call("POST", f"{PDS}/Patient", body=patient(), request_id=str(request_id))
    again = await api.call(
        "POST", f"{PDS}/Patient", body=patient(), request_id=str(request_id).upper()
    )
    assert first.status == again.status == 201
    assert again.json["id"] == first.json["id"]
    assert again.headers["X-Request-ID"] == str(request_id).upper()  # echoed as sent


async def test_an_unknown_path_under_the_record_api_is_an_operation_outcome(api):
    answer = await api.call("GET", f"{PDS}/Practitioner/1")
    assert answer.status == 404
    expect_outcome(answer, 404, "RESOURCE_NOT_FOUND")
