"""Record integrity and the audit chain on five in-process nodes.

Data is tampered with the way an intruder on the KV API or a replica's disk would: raw bytes
written (or deleted) through a node's coordinator, under the record API's back. Each attack
is shown to fail, and the allowed path beside it to keep working.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Callable

from click.testing import CliRunner

from spinekv import object as riak_object
from spinekv.cli import main
from spinekv.node.coordinator import BKey, PutOk
from spinekv.object import Content
from spinekv.quorum import Found, get_options, put_options
from spinekv.records.audit import HEAD_META
from spinekv.records.scr.builder import build_document
from spinekv.records.scr.codes import PERMISSION_SYSTEM
from spinekv.security.auditchain import Head, encode_head, link_hash, link_key
from tests.records_support import NHS_SYSTEM, PDS, SCR, patient
from tests.support import eventually

JANE, JOHN, MARY = "9990000018", "9990000026", "9990000034"
TRACE_HEADER = "UNIQUE REFERENCE,NHS_NO,FAMILY_NAME,GIVEN_NAME,GENDER,DATE_OF_BIRTH,POST_CODE"


# ------------------------------------------------------------------ tampering


def _where(cluster, bucket: str, key: str):
    node = cluster.nodes["n1"]
    props = node.props_of("records", bucket)
    return node, BKey(b"records", bucket.encode(), key.encode()), props


async def raw_read(cluster, bucket: str, key: str) -> tuple[Content, dict[str, int]]:
    """The stored content of a record (sealed bytes and all) and its causal context."""
    node, bkey, props = _where(cluster, bucket, key)
    got = await node.coordinator.get(bkey, props, get_options(props, {}, 5))
    assert isinstance(got, Found), got
    (content,) = riak_object.live_contents(got.obj)
    return content, dict(riak_object.context(got.obj))


async def raw_write(cluster, bucket: str, key: str, value: bytes, indexes=()) -> None:
    """Store `value` over whatever the record holds, as the KV API would."""
    node, bkey, props = _where(cluster, bucket, key)
    got = await node.coordinator.get(bkey, props, get_options(props, {}, 5))
    context = dict(riak_object.context(got.obj)) if isinstance(got, Found) else {}
    content = Content(value, "application/json", node.now_us(), indexes=tuple(indexes))
    result = await node.coordinator.put(bkey, props, context, content, put_options(props, {}, 5))
    assert isinstance(result, PutOk), result


async def tamper(cluster, bucket: str, key: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite a record's bytes with `change`, keeping its index entries."""
    content, _ = await raw_read(cluster, bucket, key)
    changed = change(content.value)
    assert changed != content.value
    await raw_write(cluster, bucket, key, changed, content.indexes)


async def raw_delete(cluster, bucket: str, key: str) -> None:
    node, bkey, props = _where(cluster, bucket, key)
    _, context = await raw_read(cluster, bucket, key)
    result = await node.coordinator.delete(bkey, props, context, put_options(props, {}, 5))
    assert isinstance(result, PutOk), result


def issue(answer) -> dict:
    return answer.json["issue"][0]


# ------------------------------------------------------------------ records


async def create(api, nhs: str, family: str = "Smith", given: str = "Jane", **kw) -> None:
    body = patient(family, given, "1980-01-01", kw.pop("gender", "female"), nhs=nhs, **kw)
    answer = await api.call("POST", f"{PDS}/Patient", body=body)
    assert answer.status == 201, answer


async def test_a_patient_with_a_bad_mac_is_a_named_non_transient_error(api, records_cluster):
    await create(api, JANE)
    await create(api, JOHN, given="Ann")
    await tamper(records_cluster, "patients", JANE, lambda v: v.replace(b"Jane", b"Jade"))
    bad = await api.call("GET", f"{PDS}/Patient/{JANE}")
    assert bad.status == 500 and bad.code == "INVALID_STORED_RECORD", bad
    assert issue(bad)["code"] == "exception"  # not "transient": asking again cannot help
    assert issue(bad)["diagnostics"].startswith(
        f"Patient {JANE}: stored record failed its integrity check"
    ), bad
    assert "Jade" not in bad.text

    # A genuine record copied under another patient's number does not verify there either.
    genuine, _ = await raw_read(records_cluster, "patients", JOHN)
    await raw_write(records_cluster, "patients", MARY, genuine.value)
    copied = await api.call("GET", f"{PDS}/Patient/{MARY}")
    assert copied.status == 500 and copied.code == "INVALID_STORED_RECORD", copied
    assert f"Patient {MARY}" in issue(copied)["diagnostics"]

    # The untouched patient reads as before.
    fine = await api.call("GET", f"{PDS}/Patient/{JOHN}")
    assert fine.status == 200 and fine.json["id"] == JOHN, fine


async def test_a_search_skips_a_bad_record_under_its_term_and_reports_it(api, records_cluster):
    await create(api, JANE)
    await create(api, JOHN, given="Ann")
    await tamper(records_cluster, "patients", JANE, lambda v: b"junk" + v)
    query = f"{PDS}/Patient?family=Smith&birthdate=eq1980-01-01&_max-results=10"

    async def both_indexed():
        answer = await api.call("GET", query)
        return answer if answer.status != 200 or len(answer.json["entry"]) == 2 else None

    found = await eventually(both_indexed, what="both patients under the search term")
    assert found.status == 200, found
    assert found.json["total"] == 1
    matches = [e for e in found.json["entry"] if e["search"].get("mode") != "outcome"]
    assert [e["resource"]["id"] for e in matches] == [JOHN]
    (outcome,) = [e for e in found.json["entry"] if e["search"].get("mode") == "outcome"]
    assert outcome["resource"]["resourceType"] == "OperationOutcome"
    reported = outcome["resource"]["issue"][0]
    assert reported["code"] == "exception"
    assert reported["diagnostics"].startswith(f"Patient {JANE}: stored record failed"), reported


async def test_a_batch_trace_answers_every_row_but_the_bad_records(api, records_cluster):
    await create(api, JANE)
    await create(api, JOHN, family="Brown", given="John", gender="male")
    await tamper(records_cluster, "patients", JANE, lambda v: v.replace(b"Smith", b"Smyth"))
    rows = "\n".join(
        [
            TRACE_HEADER,
            f"r1,{JANE},Smith,Jane,2,19800101,",
            f"r2,{JOHN},Brown,John,1,19800101,",
            "r3,,Brown,John,1,19800101,",
        ]
    )
    answer = await api.call(
        "POST",
        "/personal-demographics/batch-trace",
        role="service",
        data=rows,
        content_type="text/csv",
    )
    assert answer.status == 200, answer
    out = {row[0]: row for row in csv.reader(io.StringIO(answer.text))}
    assert out["r1"][3] == "error"
    assert out["r1"][9].startswith(
        f"lookup failed (INVALID_STORED_RECORD: Patient {JANE}: stored record failed"
    ), out["r1"]
    assert "resend" not in out["r1"][9]  # the same bytes would be read again
    assert out["r2"][2:4] == [JOHN, "cross-check"], out["r2"]
    assert out["r3"][2:4] == [JOHN, "alphanumeric"], out["r3"]


# ------------------------------------------------------------------ consent


def permission(nhs: str, code: str) -> dict:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "nhsNumber", "valueString": nhs},
            {"name": "permissionCode", "valueCoding": {"system": PERMISSION_SYSTEM, "code": code}},
        ],
    }


def read_path(nhs: str, scr_id: str) -> str:
    return (
        f"{SCR}/Bundle?composition.identifier={scr_id}"
        f"&composition.subject:Patient.identifier={NHS_SYSTEM}|{nhs}"
    )


async def test_corrupt_consent_denies_the_scr_until_consent_is_recorded_again(api, records_cluster):
    await create(api, JANE)
    scr_id = str(uuid.uuid4()).upper()
    document = build_document(
        JANE,
        scr_id,
        allergies=[("91936005", "Allergy to penicillin")],
        medications=[],
        author="Dr Jones",
        when="2024-03-01T10:00:00+00:00",
    )
    assert (await api.call("POST", f"{SCR}/Bundle", body=document)).status == 201
    no = await api.call("POST", f"{SCR}/$setPermission", body=permission(JANE, "No"))
    assert no.status == 201, no
    dissent = await api.call("GET", read_path(JANE, scr_id))
    assert dissent.status == 403, dissent

    # Flipping the stored dissent to consent does not open the record ...
    await tamper(records_cluster, "scrstate", JANE, lambda v: v.replace(b'"No"', b'"Yes"'))
    flipped = await api.call("GET", read_path(JANE, scr_id))
    assert flipped.status == 403 and flipped.code == "ACCESS_DENIED", flipped
    why = issue(flipped)["diagnostics"]
    assert f"SCR consent of patient {JANE}: stored record failed its integrity check" in why
    assert "consent cannot be read" in why
    assert "Allergy" not in flipped.text
    # ... nor does garbage read as "no consent recorded".
    await raw_write(records_cluster, "scrstate", JANE, b"garbage")
    for path in (read_path(JANE, scr_id), f"{SCR}/DocumentReference?patient={NHS_SYSTEM}|{JANE}"):
        denied = await api.call("GET", path)
        assert denied.status == 403 and denied.code == "ACCESS_DENIED", denied
    # An upload cannot go ahead either: the dissent the state may hold is unknown.
    refused = await api.call("POST", f"{SCR}/Bundle", body={**document, "id": str(uuid.uuid4())})
    assert refused.status == 500 and refused.code == "INVALID_STORED_RECORD", refused

    # Recording consent again through the API makes the SCR readable again, still current.
    yes = await api.call("POST", f"{SCR}/$setPermission", body=permission(JANE, "Yes"))
    assert yes.status == 201, yes
    read = await api.call("GET", read_path(JANE, scr_id))
    assert read.status == 200 and read.json["total"] > 0, read
    assert read.json["entry"][0]["resource"]["identifier"]["value"] == scr_id


# ------------------------------------------------------------------ the audit chain


async def chain_of(http, cluster, node: str, asked: str | None = None) -> dict:
    """`node`'s chain report, walked by `asked` (default: `node` itself, against its head)."""
    url = f"{cluster.url(asked or node)}/admin/audit/verify?node={node}"
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def verify_cli(cluster) -> tuple[int, str]:
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["admin", "audit", "verify", "--config", str(cluster.config.path)]
    )
    return result.exit_code, result.output


async def test_pds_reads_and_searches_are_audited_in_the_patients_trail(api, records_cluster):
    await create(api, JANE)
    await create(api, JOHN, given="Ann")
    assert (await api.call("GET", f"{PDS}/Patient/{JANE}")).status == 200
    missing = await api.call("GET", f"{PDS}/Patient/9990000042")
    assert missing.status == 404  # nothing returned, nothing to audit
    query = f"{PDS}/Patient?family=Smith&birthdate=eq1980-01-01&_max-results=10"

    async def both_found():
        answer = await api.call("GET", query, role="service")
        return answer if answer.status != 200 or answer.json["total"] == 2 else None

    assert (await eventually(both_found, what="both patients found")).status == 200

    async def trail(nhs: str, count: int):
        answer = await api.call("GET", f"{SCR}/AuditEvent?patient={NHS_SYSTEM}|{nhs}", role="admin")
        return answer if answer.status != 200 or answer.json["total"] >= count else None

    jane = await eventually(lambda: trail(JANE, 2), what="Jane's read and search audited")
    events = [e["resource"] for e in jane.json["entry"]]
    # A search that came back short (one patient not yet indexed) is audited too: the last one
    # is the search that returned both.
    assert events[0]["subtype"][0]["code"] == "read" and events[0]["action"] == "R"
    assert events[0]["agent"][0]["who"]["display"] == "clinical-user"
    search = events[-1]
    assert search["subtype"][0]["code"] == "search-type" and search["action"] == "E"
    assert search["agent"][0]["role"][0]["text"] == "service"
    numbers = {
        e["what"]["identifier"]["value"] for e in search["entity"] if "reference" in e["what"]
    }
    assert numbers == {JANE, JOHN}
    john = await eventually(lambda: trail(JOHN, 1), what="John's search audited")
    assert john.json["entry"][-1]["resource"]["id"] == search["id"]


async def test_audit_verify_finds_an_edited_a_deleted_and_a_forged_event(
    api, records_cluster, http
):
    await create(api, JANE)
    for _ in range(4):
        assert (await api.call("GET", f"{PDS}/Patient/{JANE}")).status == 200
    code, output = await verify_cli(records_cluster)
    assert code == 0, output
    assert "TAMPERED" not in output and "intact" in output
    report = await chain_of(http, records_cluster, "n1")
    assert (report["events"], report["first_seq"], report["last_seq"], report["head_seq"]) == (
        4,
        1,
        4,
        4,
    ), report

    await tamper(
        records_cluster,
        "audit",
        link_key("n1", 1),
        lambda v: v.replace(b"clinical-user", b"someone-else"),
    )
    code, output = await verify_cli(records_cluster)
    assert code == 1 and "n1: edited seq 1" in output, output

    await raw_delete(records_cluster, "audit", link_key("n1", 2))
    code, output = await verify_cli(records_cluster)
    assert code == 1 and "n1: missing (deleted) seq 2..2" in output, output

    # The tail deleted: only the node's own head shows it.
    await raw_delete(records_cluster, "audit", link_key("n1", 4))
    report = await chain_of(http, records_cluster, "n1")
    assert report["gaps"] == [[2, 2], [4, 4]], report

    forged_key = link_key("n1", 9)
    genuine, _ = await raw_read(records_cluster, "audit", link_key("n1", 3))
    forged = json.loads(genuine.value)
    forged["chain"]["seq"] = 9
    forged["records"][0]["event"]["id"] = "forged"
    await raw_write(
        records_cluster,
        "audit",
        forged_key,
        json.dumps(forged).encode(),
        [("patient_bin", JANE), ("chain_bin", forged_key)],
    )
    code, output = await verify_cli(records_cluster)
    assert code == 1 and f"n1: forged record {forged_key}" in output, output
    # The trail shows only what the nodes wrote, and says what it left out.
    trail = await api.call("GET", f"{SCR}/AuditEvent?patient={NHS_SYSTEM}|{JANE}", role="admin")
    assert trail.status == 200, trail
    ids = [e["resource"]["id"] for e in trail.json["entry"] if e["search"]["mode"] == "match"]
    assert "forged" not in ids and len(ids) == 1  # seq 3 alone is intact
    left_out = [e for e in trail.json["entry"] if e["search"]["mode"] == "outcome"]
    reported = " ".join(e["resource"]["issue"][0]["diagnostics"] for e in left_out)
    assert f"audit record {forged_key}" in reported and link_key("n1", 1) in reported, reported
    # Other nodes' chains are untouched.
    assert (await chain_of(http, records_cluster, "n2"))["ok"]


async def test_the_chain_continues_across_a_restart_and_concurrent_reads_never_fork_it(
    api, records_cluster, http
):
    await create(api, JANE)
    n2 = records_cluster.url("n2")
    for _ in range(2):
        assert (await api.call("GET", f"{PDS}/Patient/{JANE}", base_url=n2)).status == 200
    await records_cluster.stop("n2")
    # While n2 is down another node walks its chain (without n2's head).
    elsewhere = await chain_of(http, records_cluster, "n2", asked="n3")
    assert elsewhere["ok"] and elsewhere["head_seq"] is None and elsewhere["last_seq"] == 2
    await records_cluster.restart("n2")

    reads = await asyncio.gather(
        *(api.call("GET", f"{PDS}/Patient/{JANE}", base_url=n2) for _ in range(12))
    )
    assert all(r.status == 200 for r in reads), reads
    report = await chain_of(http, records_cluster, "n2")
    assert report["ok"], report
    # Every read is one event; reads audited while a link was being written share the next.
    assert report["events"] == 14 and report["first_seq"] == 1, report
    assert report["last_seq"] == report["head_seq"] == report["links"] <= 14, report


async def test_a_head_left_behind_by_a_power_cut_is_carried_past_the_stored_links(
    api, records_cluster, http
):
    # The head is written without an fsync, so a power cut can leave it behind the links
    # already stored; the node must step past them rather than reuse their seqs (a fork).
    await create(api, JANE)
    n2 = records_cluster.url("n2")
    for _ in range(3):
        assert (await api.call("GET", f"{PDS}/Patient/{JANE}", base_url=n2)).status == 200
    first, _ = await raw_read(records_cluster, "audit", link_key("n2", 1))
    await records_cluster.stop("n2")
    records_cluster.backends["n2"].put_meta(HEAD_META, encode_head(Head(1, link_hash(first.value))))
    await records_cluster.restart("n2")

    assert (await api.call("GET", f"{PDS}/Patient/{JANE}", base_url=n2)).status == 200
    report = await chain_of(http, records_cluster, "n2")
    assert report["ok"], report
    assert (report["events"], report["last_seq"], report["head_seq"]) == (4, 4, 4), report


async def test_reads_audited_together_share_a_link_and_each_trail_keeps_only_its_own(
    api, records_cluster, http
):
    audit = records_cluster.nodes["n3"].records.audit
    patients = [JANE, JOHN, MARY]
    await asyncio.gather(
        *(
            audit.append(
                {"recorded_us": i, "event": {"id": f"e{i}", "resourceType": "AuditEvent"}},
                [("patient_bin", patients[i % 3]), ("recorded_int", i)],
            )
            for i in range(30)
        )
    )
    report = await chain_of(http, records_cluster, "n3")
    assert report["ok"] and report["events"] == 30, report
    assert report["links"] < 30, report  # group commit: not one replicated write per event
    for n, nhs in enumerate(patients):
        trail = await api.call("GET", f"{SCR}/AuditEvent?patient={NHS_SYSTEM}|{nhs}", role="admin")
        assert trail.status == 200, trail
        ids = {e["resource"]["id"] for e in trail.json["entry"]}
        assert ids == {f"e{i}" for i in range(30) if i % 3 == n}, (nhs, ids)
