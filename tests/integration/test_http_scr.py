"""The Summary Care Record API on five in-process nodes: upload, find, read, consent, audit."""

from __future__ import annotations

import uuid

from spinekv.records.scr.builder import build_document
from spinekv.records.scr.codes import PERMISSION_SYSTEM, SCR_ID_SYSTEM
from spinekv.ring import primaries
from tests.records_support import NHS_SYSTEM, PDS, RAW, SCR, RecordClient, patient
from tests.support import eventually

WHEN = "2024-03-01T10:00:00+00:00"


async def new_patient(api: RecordClient, nhs: str) -> str:
    answer = await api.call("POST", f"{PDS}/Patient", body=patient(nhs=nhs))
    assert answer.status == 201, answer
    assert answer.json["id"] == nhs
    return nhs


def document(nhs: str, scr_id: str, *, author: str = "Dr Jane Jones") -> dict:
    return build_document(
        nhs,
        scr_id,
        allergies=[("91936005", "Allergy to penicillin")],
        medications=[("322236009", "Paracetamol 500mg tablets")],
        author=author,
        when=WHEN,
    )


def find_path(nhs: str) -> str:
    return f"{SCR}/DocumentReference?patient={NHS_SYSTEM}|{nhs}"


def read_path(nhs: str, scr_id: str) -> str:
    return (
        f"{SCR}/Bundle?composition.identifier={scr_id}"
        f"&composition.subject:Patient.identifier={NHS_SYSTEM}|{nhs}"
    )


def audit_path(nhs: str) -> str:
    return f"{SCR}/AuditEvent?patient={NHS_SYSTEM}|{nhs}"


def permission(nhs: str, code: str) -> dict:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "setPermissions",
                "part": [
                    {"name": "nhsNumber", "valueString": nhs},
                    {
                        "name": "permissionCode",
                        "valueCoding": {"system": PERMISSION_SYSTEM, "code": code},
                    },
                ],
            }
        ],
    }


def current_id(answer) -> str | None:
    assert answer.status == 200, answer
    bundle = answer.json
    assert bundle["type"] == "searchset"
    if bundle["total"] == 0:
        return None
    return bundle["entry"][0]["resource"]["masterIdentifier"]["value"]


def composition_id(answer) -> str | None:
    assert answer.status == 200, answer
    if answer.json["total"] == 0:
        return None
    first = answer.json["entry"][0]["resource"]
    assert first["resourceType"] == "Composition"
    return first["identifier"]["value"]


async def audit_events(api: RecordClient, nhs: str, expected: int) -> list[dict]:
    """The patient's audit trail once it holds `expected` events (a 2i coverage query may ask
    the one replica a just-acknowledged write has not reached yet, so poll with a deadline)."""

    async def settled():
        answer = await api.call("GET", audit_path(nhs), role="admin")
        return answer if answer.status != 200 or answer.json["total"] >= expected else None

    answer = await eventually(settled, what=f"{expected} audit events for {nhs}")
    assert answer.status == 200, answer
    assert answer.json["total"] == expected, answer
    return [e["resource"] for e in answer.json["entry"]]


async def test_upload_find_read_and_a_newer_upload_becomes_current(api, records_cluster):
    nhs = await new_patient(api, "9000000009")
    first, second = str(uuid.uuid4()).upper(), str(uuid.uuid4()).upper()

    up = await api.call("POST", f"{SCR}/Bundle", body=document(nhs, first))
    assert up.status == 201, up
    assert up.json["masterIdentifier"]["value"] == first
    assert up.headers["Location"] == read_path(nhs, first)
    assert up.headers["Content-Type"].startswith("application/fhir+json")

    assert current_id(await api.call("GET", find_path(nhs))) == first
    # The DocumentReference's attachment url is the read, and any node serves it.
    found = await api.call("GET", find_path(nhs), base_url=records_cluster.url("n3"))
    url = found.json["entry"][0]["resource"]["content"][0]["attachment"]["url"]
    assert url.endswith(read_path(nhs, first))
    read = await api.call("GET", read_path(nhs, first), base_url=records_cluster.url("n4"))
    assert composition_id(read) == first
    assert read.json["total"] == len(document(nhs, first)["entry"])

    up = await api.call("POST", f"{SCR}/Bundle", body=document(nhs, second))
    assert up.status == 201, up
    assert current_id(await api.call("GET", find_path(nhs))) == second
    assert composition_id(await api.call("GET", read_path(nhs, second))) == second
    # The replaced SCR is out of date: the read answers an empty searchset, as the real API.
    assert composition_id(await api.call("GET", read_path(nhs, first))) is None
    # An SCR read with the wrong patient finds nothing either.
    other = await new_patient(api, "9000000017")
    assert composition_id(await api.call("GET", read_path(other, second))) is None

    # The first document uploaded again (a retry with a new request id): 201, nothing changes.
    again = await api.call("POST", f"{SCR}/Bundle", body=document(nhs, first))
    assert again.status == 201, again
    assert current_id(await api.call("GET", find_path(nhs))) == second
    # The same id with other content is refused.
    clash = await api.call("POST", f"{SCR}/Bundle", body=document(nhs, first, author="Dr X"))
    assert clash.status == 400 and clash.code == "INVALID_VALUE", clash
    assert first in clash.json["issue"][0]["diagnostics"]

    # A retry with the same X-Request-ID answers the first response again.
    third = str(uuid.uuid4())
    request_id = str(uuid.uuid4())
    one = await api.call("POST", f"{SCR}/Bundle", body=document(nhs, third), request_id=request_id)
    two = await api.call("POST", f"{SCR}/Bundle", body=document(nhs, third), request_id=request_id)
    assert one.status == two.status == 201 and one.json == two.json
    assert two.headers["X-Request-ID"] == request_id


async def test_consent_no_blocks_upload_and_reads_until_yes(api):
    nhs = await new_patient(api, "9000000009")
    first = str(uuid.uuid4()).upper()
    assert (await api.call("POST", f"{SCR}/Bundle", body=document(nhs, first))).status == 201

    set_no = await api.call("POST", f"{SCR}/$setPermission", body=permission(nhs, "No"))
    assert set_no.status == 201, set_no
    assert set_no.json["parameter"][0]["part"][1]["valueCoding"]["code"] == "No"

    blocked = await api.call("POST", f"{SCR}/Bundle", body=document(nhs, str(uuid.uuid4())))
    assert blocked.status == 403 and blocked.code == "FORBIDDEN_UPDATE", blocked
    found = await api.call("GET", find_path(nhs))
    assert found.status == 403 and found.code == "ACCESS_DENIED", found
    assert first not in found.text
    read = await api.call("GET", read_path(nhs, first))
    assert read.status == 403 and read.code == "ACCESS_DENIED", read
    assert "Composition" not in read.text

    set_yes = await api.call("POST", f"{SCR}/$setPermission", body=permission(nhs, "Yes"))
    assert set_yes.status == 201, set_yes
    found = await api.call("GET", find_path(nhs))
    assert current_id(found) == first
    label = found.json["entry"][0]["resource"]["securityLabel"][0]["coding"][0]["code"]
    assert label == "Yes"
    assert composition_id(await api.call("GET", read_path(nhs, first))) == first
    second = str(uuid.uuid4()).upper()
    assert (await api.call("POST", f"{SCR}/Bundle", body=document(nhs, second))).status == 201
    assert current_id(await api.call("GET", find_path(nhs))) == second

    # Consent needs a known patient, the consent right and a well-formed Parameters.
    unknown = await api.call("POST", f"{SCR}/$setPermission", body=permission("9000000017", "No"))
    assert unknown.status == 404 and unknown.code == "RESOURCE_NOT_FOUND", unknown
    service = await api.call(
        "POST", f"{SCR}/$setPermission", role="service", body=permission(nhs, "No")
    )
    assert service.status == 403 and service.code == "ACCESS_DENIED", service
    bad = await api.call("POST", f"{SCR}/$setPermission", body=permission(nhs, "Maybe"))
    assert bad.status == 400 and bad.code == "INVALID_VALUE", bad
    assert "'Maybe'" in bad.json["issue"][0]["diagnostics"]
    # Nothing refused changed the state: the SCR is still readable.
    assert current_id(await api.call("GET", find_path(nhs))) == second


async def test_every_read_is_audited_and_only_admins_list_the_trail(api, records_cluster):
    nhs = await new_patient(api, "9000000009")
    scr_id = str(uuid.uuid4()).upper()
    assert (await api.call("POST", f"{SCR}/Bundle", body=document(nhs, scr_id))).status == 201
    assert await audit_events(api, nhs, 0) == []

    # Finding the pointer is not a read of the record; reading it is, whoever reads.
    assert current_id(await api.call("GET", find_path(nhs))) == scr_id
    plain = await api.call("GET", read_path(nhs, scr_id))
    assert composition_id(plain) == scr_id
    emergency = await api.call(
        "GET",
        read_path(nhs, scr_id),
        role="admin",
        headers={"NHSD-Emergency-Access-Reason": "unconscious in A&E"},
        base_url=records_cluster.url("n2"),
    )
    assert composition_id(emergency) == scr_id
    # A read of an out-of-date id returns no record, so it is not audited.
    assert composition_id(await api.call("GET", read_path(nhs, str(uuid.uuid4())))) is None

    events = await audit_events(api, nhs, 2)
    who = [
        (e["agent"][0]["who"]["identifier"]["value"], e["agent"][0]["role"][0]["text"])
        for e in events
    ]
    assert who == [("clinical-user", "clinical"), ("admin-user", "admin")]
    for event in events:
        whats = [entity["what"]["identifier"] for entity in event["entity"]]
        assert {"system": NHS_SYSTEM, "value": nhs} in whats
        assert {"system": SCR_ID_SYSTEM, "value": scr_id} in whats
        assert event["recorded"]
    assert "purposeOfEvent" not in events[0]
    assert events[1]["purposeOfEvent"][0]["text"] == "unconscious in A&E"
    assert events[0]["recorded"] <= events[1]["recorded"]

    listed = await api.call("GET", audit_path(nhs), role="clinical")
    assert listed.status == 403 and listed.code == "ACCESS_DENIED", listed
    service_read = await api.call("GET", read_path(nhs, scr_id), role="service")
    assert service_read.status == 403 and service_read.code == "ACCESS_DENIED", service_read

    # Opting out hides the SCR but not the trail of who read it.
    no = await api.call("POST", f"{SCR}/$setPermission", body=permission(nhs, "No"))
    assert no.status == 201, no
    assert len(await audit_events(api, nhs, 2)) == 2
    # An empty reason header is refused before anything is read or audited.
    empty = await api.call(
        "GET", read_path(nhs, scr_id), headers={"NHSD-Emergency-Access-Reason": " "}
    )
    assert empty.status == 400 and empty.code == "INVALID_VALUE", empty


async def test_a_read_that_cannot_be_audited_returns_503_and_no_document(
    api, records_cluster, http
):
    """The audit bucket is made to need every one of five primaries (n_val 5, pw 5), and a node
    owning a partition in every five-partition window is stopped: each audit write must then
    fail, while the SCR and its pointer (n_val 3, r 2) stay readable."""
    nhs = await new_patient(api, "9000000009")
    scr_id = str(uuid.uuid4()).upper()
    assert (await api.call("POST", f"{SCR}/Bundle", body=document(nhs, scr_id))).status == 201

    ring = next(iter(records_cluster.nodes.values())).membership.ring
    in_every_window = [
        name
        for name in records_cluster.nodes
        if all(name in {e.node for e in primaries(ring, p, 5)} for p in range(len(ring.owners)))
    ]
    assert in_every_window, ring
    victim = in_every_window[0]
    serving = next(n for n in records_cluster.nodes if n != victim)
    base = records_cluster.url(serving)
    props_url = f"{base}/types/records/buckets/audit/props"
    async with http.put(props_url, json={"props": {"n_val": 5, "pw": 5}}, headers=RAW) as r:
        assert r.status == 204, await r.text()

    await records_cluster.stop(victim)
    failed = await api.call("GET", read_path(nhs, scr_id), base_url=base)
    assert failed.status == 503 and failed.code == "SERVICE_UNAVAILABLE", failed
    assert "audited" in failed.json["issue"][0]["diagnostics"]
    assert "Composition" not in failed.text and "Allergy" not in failed.text
    # The pointer itself is still readable: the failure was the audit write alone.
    assert current_id(await api.call("GET", find_path(nhs), base_url=base)) == scr_id

    await records_cluster.restart(victim)
    async with http.delete(props_url, headers=RAW) as r:
        assert r.status == 204, await r.text()

    async def audited_read():
        read = await api.call("GET", read_path(nhs, scr_id), base_url=base)
        return read if read.status != 503 else None

    read = await eventually(
        audited_read, what=f"the read to be audited again once {victim} is back"
    )
    assert composition_id(read) == scr_id


async def test_bad_requests_are_refused_with_the_reason(api):
    nhs = await new_patient(api, "9000000009")
    unknown = await api.call(
        "POST", f"{SCR}/Bundle", body=document("9000000017", str(uuid.uuid4()))
    )
    assert unknown.status == 404 and unknown.code == "RESOURCE_NOT_FOUND", unknown

    doc = document(nhs, str(uuid.uuid4()))
    doc["entry"][0]["resource"]["section"] = doc["entry"][0]["resource"]["section"][1:]
    invalid = await api.call("POST", f"{SCR}/Bundle", body=doc)
    assert invalid.status == 400 and invalid.code == "MISSING_VALUE", invalid
    assert "Bundle.entry[0].resource.section" in invalid.json["issue"][0]["diagnostics"]

    not_json = await api.call("POST", f"{SCR}/Bundle", data=b"{nope")
    assert not_json.status == 400 and not_json.code == "INVALID_VALUE", not_json
    wrong_type = await api.call(
        "POST", f"{SCR}/Bundle", data=b"<Bundle/>", content_type="application/xml"
    )
    assert wrong_type.status == 415, wrong_type

    for path in (
        f"{SCR}/DocumentReference?patient={NHS_SYSTEM}|9000000008",
        f"{SCR}/DocumentReference?patient=12",
        f"{SCR}/Bundle?composition.identifier={uuid.uuid4()}"
        f"&composition.subject:Patient.identifier=9000000008",
        f"{SCR}/Bundle?composition.identifier=nope&composition.subject:Patient.identifier={nhs}",
    ):
        answer = await api.call("GET", path, role="admin")
        assert answer.status == 400 and answer.code == "INVALID_SEARCH_DATA", (path, answer)
    bad_audit = await api.call("GET", f"{SCR}/AuditEvent?patient=9000000008", role="admin")
    assert bad_audit.status == 400 and bad_audit.code == "INVALID_SEARCH_DATA", bad_audit
    missing = await api.call("GET", f"{SCR}/DocumentReference")
    assert missing.status == 400 and missing.code == "MISSING_VALUE", missing

    no_token = await api.call("GET", find_path(nhs), role=None)
    assert no_token.status == 401 and no_token.code == "ACCESS_DENIED", no_token
    # No patient was given an SCR by any of the refused requests.
    assert current_id(await api.call("GET", find_path(nhs))) is None
