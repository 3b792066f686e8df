"""The demographics API over HTTP on the in-process cluster: create, read, search, patch, history.

Errors are checked as OperationOutcomes with their Spine codes (expect_outcome); auth, request
ids and idempotent retries are in test_records_common.py.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from spinekv.records import nhs
from tests.inproc import inproc_cluster
from tests.integration.test_records_common import create, expect_outcome, matches, patch
from tests.records_support import NHS_SYSTEM, PDS, RAW, USERS_TOML, RecordClient, patient

FIRST, LAST = 9_990_000_000, 9_999_999_999  # the default allocation range
GENDER_MALE = [{"op": "replace", "path": "/gender", "value": "male"}]


async def read(api: RecordClient, number: str, **kwargs):
    return await api.call("GET", f"{PDS}/Patient/{number}", **kwargs)


async def search(api: RecordClient, query: str, **kwargs):
    answer = await api.call("GET", f"{PDS}/Patient?{query}", **kwargs)
    assert answer.status == 200, answer
    return answer.json


async def index_keys(http, url: str, bucket_field: str, term: str) -> list[str]:
    """Keys the Riak 2i API lists for one term of the patients bucket."""
    path = f"/types/records/buckets/patients/index/{bucket_field}/{quote(term, safe='')}"
    async with http.get(url + path, headers=RAW) as r:
        assert r.status == 200, await r.text()
        return sorted((await r.json())["keys"])


def in_range(number: str, first: int = FIRST, last: int = LAST) -> bool:
    return nhs.is_valid(number) and first <= int(number) <= last


# ------------------------------------------------------------------ create


async def test_create_answers_201_with_version_1_etag_and_location(api, records_cluster):
    sent = patient(given="Jane", postcode="LS1 4HR", gp="Y12345")
    answer = await api.call("POST", f"{PDS}/Patient", body=sent)
    assert answer.status == 201, answer
    assert answer.headers["Content-Type"].startswith("application/fhir+json")
    body = answer.json
    number = body["id"]
    assert in_range(number)
    assert body["resourceType"] == "Patient"
    assert body["meta"]["versionId"] == "1"
    assert answer.headers["ETag"] == 'W/"1"'
    assert answer.headers["Location"] == f"{PDS}/Patient/{number}"
    assert body["identifier"][0] == {"system": NHS_SYSTEM, "value": number}
    for field in ("name", "gender", "birthDate", "address", "telecom", "generalPractitioner"):
        assert body[field] == sent[field], field
    # The Location serves the same resource, from any node.
    located = await read(api, number, base_url=records_cluster.url("n5"))
    assert located.status == 200 and located.json == body


async def test_a_valid_unused_number_is_kept_and_a_used_or_invalid_one_replaced(
    api, records_cluster
):
    kept = (await create(api, nhs="9434765919")).json
    assert kept["id"] == "9434765919"  # valid and free: kept, even outside the allocation range
    in_use = (await create(api, family="Jones", nhs="9434765919")).json
    assert in_use["id"] != "9434765919" and in_range(in_use["id"])
    assert in_use["identifier"] == [{"system": NHS_SYSTEM, "value": in_use["id"]}]
    invalid = (await create(api, family="Brown", nhs="9434765918")).json
    assert in_range(invalid["id"]) and invalid["id"] != in_use["id"]
    # The patient who had the number first is untouched.
    first = await read(api, "9434765919")
    assert first.json["name"][0]["family"] == "Smith" and first.headers["ETag"] == 'W/"1"'
    assert await matches(api) == ["9434765919"]


async def test_new_numbers_come_from_the_configured_range_until_it_runs_out(tmp_path, http):
    ranges = {"wide": ("9990000000", "9990000999"), "one": ("9990000018", "9990000018")}
    for name, (first, last) in ranges.items():
        (tmp_path / name).mkdir()
        extra = f'{USERS_TOML}\n[records]\nnhs_number_range = ["{first}", "{last}"]\n'
        async with inproc_cluster(tmp_path / name, extra=extra) as c:
            api = RecordClient(http, c.url("n1"))
            if name == "wide":
                numbers = [(await create(api, family=f"Fam{'x' * i}")).json["id"] for i in range(4)]
                assert len(set(numbers)) == 4
                assert all(in_range(n, int(first), int(last)) for n in numbers), numbers
            else:
                assert (await create(api)).json["id"] == "9990000018"
                full = await api.call("POST", f"{PDS}/Patient", body=patient(family="Jones"))
                expect_outcome(full, 503, "SERVICE_UNAVAILABLE")


@pytest.mark.parametrize("field", ["name", "gender", "birthDate"])
async def test_a_create_without_a_required_field_is_missing_value(api, records_cluster, field):
    body = patient()
    del body[field]
    answer = await api.call("POST", f"{PDS}/Patient", body=body)
    assert field in expect_outcome(answer, 400, "MISSING_VALUE")
    assert await matches(api) == []


async def test_a_create_with_a_bad_value_is_invalid_value_and_stores_nothing(api, records_cluster):
    cases = {
        "gender": patient() | {"gender": "F"},
        "birthDate": patient(birth_date="1980-02-30"),
        "postalCode": patient(postcode="LS1 4H"),
        "maritalStatus": patient() | {"maritalStatus": {"text": "married"}},
        "resourceType": patient() | {"resourceType": "Practitioner"},
        "family": patient() | {"name": [{"family": ""}]},
        "future": patient(birth_date="2999-01-01"),
    }
    for what, body in cases.items():
        answer = await api.call("POST", f"{PDS}/Patient", body=body)
        diagnostics = expect_outcome(answer, 400, "INVALID_VALUE")
        assert what in diagnostics or what == "future", (what, diagnostics)
    for body in ([patient()], "Patient", None):
        answer = await api.call("POST", f"{PDS}/Patient", data=json.dumps(body))
        expect_outcome(answer, 400, "INVALID_VALUE")
    answer = await api.call("POST", f"{PDS}/Patient", data="{not json")
    expect_outcome(answer, 400, "INVALID_VALUE")
    answer = await api.call("POST", f"{PDS}/Patient", body=patient(), content_type="text/csv")
    expect_outcome(answer, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert await matches(api) == []


# ------------------------------------------------------------------ read


async def test_read_answers_the_resource_with_its_version_as_etag_from_every_node(
    api, records_cluster
):
    number = (await create(api)).json["id"]
    first = await read(api, number)
    assert first.status == 200 and first.headers["ETag"] == 'W/"1"'
    assert first.json["id"] == number and first.json["meta"]["versionId"] == "1"
    assert (await patch(api, number, GENDER_MALE, 1)).status == 200
    for node in ("n1", "n2", "n3", "n4", "n5"):
        answer = await read(api, number, base_url=records_cluster.url(node))
        assert answer.status == 200, (node, answer)
        assert answer.headers["ETag"] == 'W/"2"'
        assert answer.json["meta"]["versionId"] == "2" and answer.json["gender"] == "male"


async def test_read_of_an_invalid_number_is_400_and_of_an_unknown_one_404(api, records_cluster):
    for bad in ("123", "9434765918", "99900000180", "abcdefghij", "%20943476591"):
        expect_outcome(await read(api, bad), 400, "INVALID_RESOURCE_ID")
    expect_outcome(await read(api, "9434765919"), 404, "RESOURCE_NOT_FOUND")
    expect_outcome(
        await api.call("GET", f"{PDS}/Patient/9434765919/_history"), 404, "RESOURCE_NOT_FOUND"
    )
    expect_outcome(await api.call("GET", f"{PDS}/Patient/123/_history"), 400, "INVALID_RESOURCE_ID")


# ------------------------------------------------------------------ search

PEOPLE = {
    "smith_jane": {"family": "Smith", "given": "Jane"},
    "smith_john": {
        "family": "Smith",
        "given": "John",
        "gender": "male",
        "postcode": "M1 1AE",
        "gp": "A81001",
    },
    "smyth": {"family": "Smyth"},
    "smithe": {"family": "Smithe"},
    "smiht": {"family": "Smiht"},  # misspelt; the same Soundex (S530) as Smith
    "smithson": {"family": "Smithson"},
    "smith_1985": {"family": "Smith", "birth_date": "1985-06-15"},
    "jones": {"family": "Jones"},
}


@pytest.fixture
async def people(api, records_cluster) -> dict[str, str]:
    """NHS number by name of PEOPLE (born 1980-02-29 unless said otherwise)."""
    return {name: (await create(api, **fields)).json["id"] for name, fields in PEOPLE.items()}


def found(bundle: dict, people: dict[str, str]) -> set[str]:
    by_number = {number: name for name, number in people.items()}
    return {by_number[e["resource"]["id"]] for e in bundle["entry"]}


async def test_search_needs_family_and_birthdate_and_sane_parameters(api, people):
    for query in (
        "",
        "family=Smith",
        "birthdate=eq1980-02-29",
        "given=Jane&gender=female&birthdate=1980-02-29",
        "family=Smith&birthdate=1980-02-30",
        "family=Smith&birthdate=eq1980-02-29&_max-results=51",
        "family=Smith&birthdate=eq1980-02-29&_max-results=0",
        "family=Smith&birthdate=eq1980-02-29&gender=F",
        "family=Smith&birthdate=eq1980-02-29&_fuzzy-match=true&_exact-match=true",
        "family=S*&birthdate=eq1980-02-29",
        "family=Smith&birthdate=eq1980-02-29&colour=blue",
    ):
        answer = await api.call("GET", f"{PDS}/Patient?{query}")
        expect_outcome(answer, 400, "INVALID_SEARCH_DATA")


async def test_search_answers_a_scored_searchset_best_first(api, records_cluster, people):
    bundle = await search(
        api, "family=Smith&birthdate=eq1980-02-29&_fuzzy-match=true&_max-results=50"
    )
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert found(bundle, people) == {"smith_jane", "smith_john", "smyth", "smithe", "smiht"}
    assert bundle["total"] == 5 == len(bundle["entry"])
    scores = [e["search"]["score"] for e in bundle["entry"]]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == scores[1] == 1.0 and scores[-1] < 1.0
    for entry in bundle["entry"]:
        number = entry["resource"]["id"]
        assert entry["fullUrl"].endswith(f"{PDS}/Patient/{number}")
        assert entry["resource"]["meta"]["versionId"] == "1"
    # _max-results cuts the entries, not the total; the default is one entry.
    first = await search(api, "family=Smith&birthdate=eq1980-02-29&_fuzzy-match=true")
    assert first["total"] == 5 and len(first["entry"]) == 1
    assert first["entry"][0]["search"]["score"] == 1.0
    two = await search(
        api,
        "family=Smith&birthdate=eq1980-02-29&_fuzzy-match=true&_max-results=2",
        base_url=records_cluster.url("n3"),
    )
    assert [e["resource"]["id"] for e in two["entry"]] == [
        e["resource"]["id"] for e in bundle["entry"][:2]
    ]


# (query, the PEOPLE it finds)
FILTERS = [
    ("family=Smith&birthdate=eq1980-02-29", {"smith_jane", "smith_john"}),
    ("family=smith&birthdate=1980-02-29", {"smith_jane", "smith_john"}),
    ("family=Smith&birthdate=ge1980-01-01", {"smith_jane", "smith_john", "smith_1985"}),
    ("family=Smith&birthdate=ge1980-03-01", {"smith_1985"}),
    ("family=Smith&birthdate=le1985-06-14", {"smith_jane", "smith_john"}),
    (
        "family=Smith&birthdate=ge1980-02-29&birthdate=le1985-06-15",
        {"smith_jane", "smith_john", "smith_1985"},
    ),
    ("family=Smith&birthdate=ge1981-01-01&birthdate=le1984-12-31", set()),
    ("family=Smith&birthdate=1980-02-29&gender=female", {"smith_jane"}),
    ("family=Smith&birthdate=1980-02-29&given=John", {"smith_john"}),
    ("family=Smith&birthdate=1980-02-29&given=Jo*", {"smith_john"}),
    ("family=Smith&birthdate=1980-02-29&address-postalcode=m11ae", {"smith_john"}),
    ("family=Smith&birthdate=1980-02-29&general-practitioner=Y12345", {"smith_jane"}),
    (
        "family=Smi*&birthdate=1980-02-29",
        {"smith_jane", "smith_john", "smithe", "smiht", "smithson"},
    ),
    ("family=Smith*&birthdate=ge1985-01-01", {"smith_1985"}),
    ("family=Smith&birthdate=1980-02-29&_exact-match=true", {"smith_jane", "smith_john"}),
    ("family=smith&birthdate=1980-02-29&_exact-match=true", set()),
    (
        "family=Smith&birthdate=1980-02-29&_fuzzy-match=true&gender=female",
        {"smith_jane", "smyth", "smithe", "smiht"},
    ),
    ("family=Smiht&birthdate=1980-02-29&_fuzzy-match=true&given=John", {"smith_john"}),
    ("family=Jonas&birthdate=1980-02-29&_fuzzy-match=true", {"jones"}),
    ("family=Jonas&birthdate=1980-02-29", set()),
    ("family=Nobody&birthdate=1980-02-29&_fuzzy-match=true", set()),
]


async def test_search_filters_dates_names_gender_postcode_and_gp(api, people):
    wrong = {}
    for query, expected in FILTERS:
        bundle = await search(api, query + "&_max-results=50")
        got = found(bundle, people)
        if got != expected or bundle["total"] != len(expected):
            wrong[query] = (bundle["total"], sorted(got))
    assert wrong == {}


async def test_search_reads_the_secondary_indexes(api, records_cluster, people, http):
    url = records_cluster.url("n2")
    smiths = sorted([people["smith_jane"], people["smith_john"]])
    assert await index_keys(http, url, "family_dob_bin", "SMITH|19800229") == smiths
    same_sound = sorted(people[n] for n in ("smith_jane", "smith_john", "smyth", "smithe", "smiht"))
    assert await index_keys(http, url, "soundex_dob_bin", "S530|19800229") == same_sound
    assert people["smith_john"] in await index_keys(http, url, "postcode_bin", "M11AE")
    assert await index_keys(http, url, "gp_bin", "A81001") == [people["smith_john"]]

    # Write Jane's stored object back through the Riak API without its index entries: she can
    # still be read, but a search (which reads only the index) no longer finds her.
    key_url = f"{url}/types/records/buckets/patients/keys/{people['smith_jane']}"
    async with http.get(key_url, headers=RAW) as r:
        assert r.status == 200
        value, vclock = await r.read(), r.headers["X-Riak-Vclock"]
    headers = {**RAW, "Content-Type": "application/json", "X-Riak-Vclock": vclock}
    async with http.put(key_url, data=value, headers=headers) as r:
        assert r.status in (200, 204), await r.text()
    assert await index_keys(http, url, "family_dob_bin", "SMITH|19800229") == [people["smith_john"]]
    assert (await read(api, people["smith_jane"])).status == 200
    bundle = await search(api, "family=Smith&birthdate=1980-02-29&_max-results=50")
    assert found(bundle, people) == {"smith_john"}


async def test_a_patch_moves_the_patient_in_the_indexes(api, records_cluster, people, http):
    number = people["smith_jane"]
    moved = await patch(
        api,
        number,
        [
            {"op": "replace", "path": "/address/0/postalCode", "value": "B33 8TH"},
            {"op": "replace", "path": "/name/0/family", "value": "Jones"},
        ],
        1,
    )
    assert moved.status == 200, moved
    url = records_cluster.url("n4")
    assert number not in await index_keys(http, url, "postcode_bin", "LS14HR")
    assert await index_keys(http, url, "postcode_bin", "B338TH") == [number]
    assert number not in await index_keys(http, url, "family_dob_bin", "SMITH|19800229")
    assert number in await index_keys(http, url, "family_dob_bin", "JONES|19800229")
    old = await search(api, "family=Smith&birthdate=1980-02-29&_max-results=50")
    assert found(old, people) == {"smith_john"}
    new = await search(api, "family=Jones&birthdate=1980-02-29&address-postalcode=B33 8TH")
    assert found(new, people) == {"smith_jane"}
    assert new["entry"][0]["resource"]["meta"]["versionId"] == "2"
    by_old_postcode = await search(
        api, "family=Jones&birthdate=1980-02-29&address-postalcode=LS1 4HR&_max-results=50"
    )
    assert found(by_old_postcode, people) == {"jones"}


# ------------------------------------------------------------------ patch


async def test_a_patch_answers_the_next_version(api, records_cluster):
    number = (await create(api)).json["id"]
    answer = await patch(
        api,
        number,
        [
            {"op": "test", "path": "/gender", "value": "female"},
            {"op": "replace", "path": "/gender", "value": "male"},
            {"op": "add", "path": "/name/0/given/-", "value": "Ann"},
            {"op": "remove", "path": "/telecom"},
        ],
        1,
    )
    assert answer.status == 200, answer
    assert answer.headers["Content-Type"].startswith("application/fhir+json")
    assert answer.headers["ETag"] == 'W/"2"'
    body = answer.json
    assert body["meta"]["versionId"] == "2" and body["id"] == number
    assert (body["gender"], body["name"][0]["given"]) == ("male", ["Jane", "Ann"])
    assert "telecom" not in body
    again = await patch(
        api,
        number,
        [{"op": "replace", "path": "/birthDate", "value": "1980-03-01"}],
        2,
        role="admin",
    )
    assert again.status == 200 and again.headers["ETag"] == 'W/"3"'
    read_back = await read(api, number, base_url=records_cluster.url("n2"))
    assert read_back.json == again.json


async def test_a_patch_needs_if_match_with_the_current_version(api, records_cluster):
    number = (await create(api)).json["id"]
    path = f"{PDS}/Patient/{number}"
    body = {"patches": GENDER_MALE}
    missing = await api.call("PATCH", path, body=body, content_type="application/json-patch+json")
    expect_outcome(missing, 412, "PRECONDITION_FAILED")
    for malformed in ('"1"', "1", 'W/"one"', "*"):
        answer = await api.call(
            "PATCH",
            path,
            body=body,
            content_type="application/json-patch+json",
            headers={"If-Match": malformed},
        )
        expect_outcome(answer, 412, "PRECONDITION_FAILED")
    assert (await patch(api, number, GENDER_MALE, 1)).status == 200
    for stale in (1, 3):
        answer = await patch(
            api, number, [{"op": "replace", "path": "/gender", "value": "other"}], stale
        )
        assert "version 2" in expect_outcome(answer, 409, "RESOURCE_VERSION_MISMATCH")
    current = await read(api, number)
    assert current.headers["ETag"] == 'W/"2"' and current.json["gender"] == "male"


async def test_a_patch_of_an_invalid_or_unknown_patient(api, records_cluster):
    expect_outcome(await patch(api, "123", GENDER_MALE, 1), 400, "INVALID_RESOURCE_ID")
    expect_outcome(await patch(api, "9434765919", GENDER_MALE, 1), 404, "RESOURCE_NOT_FOUND")


async def test_a_refused_patch_changes_nothing(api, records_cluster):
    created = await create(api)
    number = created.json["id"]
    path = f"{PDS}/Patient/{number}"
    if_match = {"If-Match": 'W/"1"'}
    refusals = [
        # (operations, status, Spine code)
        ([{"op": "test", "path": "/gender", "value": "male"}, *GENDER_MALE], 400, "INVALID_UPDATE"),
        ([{"op": "remove", "path": "/deceasedDateTime"}], 400, "INVALID_UPDATE"),
        ([{"op": "replace", "path": "/name/3/family", "value": "X"}], 400, "INVALID_UPDATE"),
        ([{"op": "replace", "path": "/gender", "value": "x"}], 400, "INVALID_UPDATE"),
        ([{"op": "remove", "path": "/birthDate"}], 400, "INVALID_UPDATE"),
        ([{"op": "add", "path": "/hairColour", "value": "red"}], 400, "INVALID_UPDATE"),
        ([{"op": "jump", "path": "/gender"}], 400, "INVALID_UPDATE"),
        ([], 400, "INVALID_UPDATE"),
        # One bad operation among good ones: none is applied.
        (
            [*GENDER_MALE, {"op": "replace", "path": "/birthDate", "value": "yesterday"}],
            400,
            "INVALID_UPDATE",
        ),
        ([{"op": "replace", "path": "/id", "value": "9434765919"}], 403, "FORBIDDEN_UPDATE"),
        (
            [{"op": "replace", "path": "/identifier/0/value", "value": "9434765919"}],
            403,
            "FORBIDDEN_UPDATE",
        ),
        ([*GENDER_MALE, {"op": "remove", "path": "/identifier"}], 403, "FORBIDDEN_UPDATE"),
        ([{"op": "replace", "path": "/meta/versionId", "value": "9"}], 403, "FORBIDDEN_UPDATE"),
    ]
    for ops, status, code in refusals:
        answer = await patch(api, number, ops, 1)
        expect_outcome(answer, status, code)
    for body in (GENDER_MALE, {"patches": GENDER_MALE, "extra": 1}, {"ops": GENDER_MALE}):
        answer = await api.call(
            "PATCH",
            path,
            body=body,
            content_type="application/json-patch+json",
            headers=if_match,
        )
        expect_outcome(answer, 400, "INVALID_UPDATE")
    answer = await api.call(
        "PATCH", path, data="{", content_type="application/json-patch+json", headers=if_match
    )
    expect_outcome(answer, 400, "INVALID_VALUE")
    for content_type in ("text/plain", "application/merge-patch+json"):
        answer = await api.call(
            "PATCH",
            path,
            body={"patches": GENDER_MALE},
            content_type=content_type,
            headers=if_match,
        )
        expect_outcome(answer, 415, "UNSUPPORTED_MEDIA_TYPE")
    after = await read(api, number)
    assert after.headers["ETag"] == 'W/"1"'
    assert after.json == created.json
    history = await api.call("GET", f"{path}/_history")
    assert history.json["total"] == 1


# ------------------------------------------------------------------ history


async def test_history_lists_the_create_and_each_update(api, records_cluster):
    number = (await create(api)).json["id"]
    assert (await patch(api, number, GENDER_MALE, 1)).status == 200
    moved = [{"op": "replace", "path": "/address/0/postalCode", "value": "M1 1AE"}]
    assert (await patch(api, number, moved, 2, role="admin")).status == 200
    refused = await patch(api, number, [{"op": "replace", "path": "/gender", "value": "x"}], 3)
    assert refused.status == 400
    answer = await api.call(
        "GET",
        f"{PDS}/Patient/{number}/_history",
        role="service",
        base_url=records_cluster.url("n5"),
    )
    assert answer.status == 200, answer
    bundle = answer.json
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "history", 3)
    provenances = [e["resource"] for e in bundle["entry"]]
    assert [p["resourceType"] for p in provenances] == ["Provenance"] * 3
    assert [p["activity"]["coding"][0]["code"] for p in provenances] == [
        "create",
        "update",
        "update",
    ]
    assert [p["agent"][0]["who"]["display"] for p in provenances] == [
        "clinical-user",
        "clinical-user",
        "admin-user",
    ]
    assert all(p["target"] == [{"reference": f"Patient/{number}"}] for p in provenances)
    assert [e["what"]["display"] for e in provenances[1]["entity"]] == ["gender"]
    assert [e["what"]["display"] for e in provenances[2]["entity"]] == ["address"]
    recorded = [p["recorded"] for p in provenances]
    assert recorded == sorted(recorded)
    assert len({p["id"] for p in provenances}) == 3
