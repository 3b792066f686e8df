"""POST /personal-demographics/batch-trace on the in-process cluster: match types, bad rows,
access, refused files, a streamed answer, a large file, and `spinekv trace` end to end."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import uuid
from collections import Counter
from urllib.parse import urlsplit

from click.testing import CliRunner

from spinekv.cli.records import trace_command
from spinekv.security.secrets import hash_secret
from tests.inproc import inproc_cluster
from tests.records_support import PDS, TOKENS, USERS_TOML, RecordClient, patient
from tests.support import FailingBackend, eventually

DEMO_HASH = hash_secret("service-demo-token")

PATH = "/personal-demographics/batch-trace"
HEADER = "UNIQUE REFERENCE,NHS_NO,FAMILY_NAME,GIVEN_NAME,GENDER,DATE_OF_BIRTH,POST_CODE"
OUT_HEADER = [
    "UNIQUE REFERENCE",
    "REQ_NHS_NO",
    "NHS_NO",
    "MATCH_TYPE",
    "FAMILY_NAME",
    "GIVEN_NAME",
    "GENDER",
    "DATE_OF_BIRTH",
    "POST_CODE",
    "ERROR",
]
JANE, JOHN_A, JOHN_B, ANN, UNUSED = (
    "9990000018",
    "9990000026",
    "9990000034",
    "9990000042",
    "9990000050",
)


async def load_patients(api) -> None:
    people = [
        patient("Smith", "Jane", "1980-01-01", "female", "LS1 4HR", nhs=JANE),
        patient("Brown", "John", "1975-05-05", "male", "M1 1AE", nhs=JOHN_A),
        patient("Brown", "John", "1975-05-05", "male", "M2 5BQ", nhs=JOHN_B),
        patient("O'Neil", "Ann", "1990-07-15", "female", "SW1A 1AA", nhs=ANN),
    ]
    for body in people:
        answer = await api.call("POST", f"{PDS}/Patient", body=body)
        assert answer.status == 201, answer


async def trace(api, text: str | bytes, role: str | None = "service", **kw):
    return await api.call("POST", PATH, role=role, data=text, content_type="text/csv", **kw)


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


async def test_every_match_type_and_bad_rows_come_back_in_input_order(api):
    await load_patients(api)
    lines = [
        HEADER,
        f"c1,{JANE},,,,19800101,",
        "a1,,o'neil,,2,19900715,",
        f"a2,{JANE},O'Neil,Ann,2,19900715,",  # the number's birth date disagrees: by name
        "m1,,BROWN,John,1,19750505,",
        "",
        "n1,,Nobody,X,1,19750505,",
        f"n2,{UNUSED},,,,19800101,",
        '"q1",,"Smith, Jr",Jane,2,19800101,"LS1 4HR"',
        "b1,9990000019,Smith,Jane,2,19800101,",
        f"b2,{JANE},Smith,Jane,2,19800230,",
        "b3,,Smith,Jane,2,19800101",
    ]
    body = ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()
    answer = await trace(api, body, headers={"X-Correlation-ID": "corr-1"})
    assert answer.status == 200, answer
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert answer.headers["X-Correlation-ID"] == "corr-1"
    assert uuid.UUID(answer.headers["X-Request-ID"])
    rows = rows_of(answer.text)
    assert rows[0] == OUT_HEADER
    invalid_nhs = (
        "NHS_NO '9990000019' is not a valid NHS number (ten digits with a Modulus 11 check digit)"
    )
    bad_date = "DATE_OF_BIRTH '19800230' is not a real date"
    assert rows[1:] == [
        ["c1", JANE, JANE, "cross-check", "Smith", "Jane", "2", "19800101", "LS1 4HR", ""],
        ["a1", "", ANN, "alphanumeric", "O'Neil", "Ann", "2", "19900715", "SW1A 1AA", ""],
        ["a2", JANE, ANN, "alphanumeric", "O'Neil", "Ann", "2", "19900715", "SW1A 1AA", ""],
        ["m1", "", "", "multiple-match", "", "", "", "", "", ""],
        ["n1", "", "", "no-match", "", "", "", "", "", ""],
        ["n2", UNUSED, "", "no-match", "", "", "", "", "", ""],
        ["q1", "", "", "no-match", "", "", "", "", "", ""],
        ["b1", "9990000019", "", "invalid", "", "", "", "", "", invalid_nhs],
        ["b2", JANE, "", "invalid", "", "", "", "", "", bad_date],
        ["b3", "", "", "invalid", "", "", "", "", "", "expected 7 fields, found 6"],
    ]


async def test_access_request_ids_and_refused_files(api):
    good = f"{HEADER}\nr1,,Smith,Jane,2,19800101,\n"
    no_token = await trace(api, good, role=None)
    assert (no_token.status, no_token.code) == (401, "ACCESS_DENIED")
    clinical = await trace(api, good, role="clinical")
    assert (clinical.status, clinical.code) == (403, "ACCESS_DENIED")
    admin = await trace(api, good, role="admin")
    assert admin.status == 200 and rows_of(admin.text)[1][3] == "no-match"

    bad_id = await trace(api, good, request_id="not-a-uuid")
    assert (bad_id.status, bad_id.code) == (400, "INVALID_VALUE")
    wrong_type = await api.call(
        "POST", PATH, role="service", data=good, content_type="application/json"
    )
    assert (wrong_type.status, wrong_type.code) == (415, "UNSUPPORTED_MEDIA_TYPE")
    latin1 = await api.call(
        "POST", PATH, role="service", data=good, content_type="text/csv; charset=iso-8859-1"
    )
    assert (latin1.status, latin1.code) == (415, "UNSUPPORTED_MEDIA_TYPE")
    utf8 = await api.call(
        "POST", PATH, role="service", data=good, content_type="text/csv; charset=UTF-8"
    )
    assert utf8.status == 200

    wrong_header = await trace(api, good.replace("NHS_NO", "NHS_NUMBER"))
    assert (wrong_header.status, wrong_header.code) == (400, "INVALID_VALUE")
    assert "header must be" in wrong_header.json["issue"][0]["diagnostics"]
    assert wrong_header.headers["Content-Type"] == "application/fhir+json"
    headerless = await trace(api, "r1,,Smith,Jane,2,19800101,\n")
    assert (headerless.status, headerless.code) == (400, "INVALID_VALUE")
    empty = await trace(api, "\r\n  \n")
    assert (empty.status, empty.code) == (400, "MISSING_VALUE")

    # A header alone is a trace of nothing.
    alone = await trace(api, HEADER)
    assert alone.status == 200 and rows_of(alone.text) == [OUT_HEADER]


async def test_a_failed_lookup_is_an_error_row_and_the_trace_goes_on(tmp_path, http):
    # Every node's disk fails to read the index entries of the Browns born 1975-05-05.
    def backend():
        return FailingBackend(term=b"family_dob_binBROWN|19750505")

    async with inproc_cluster(tmp_path, extra=USERS_TOML, backend=backend) as cluster:
        api = RecordClient(http, cluster.url("n1"))
        await load_patients(api)
        text = f"{HEADER}\ne1,,Brown,John,1,19750505,\nc1,{JANE},,,,19800101,\n"
        answer = await trace(api, text)
    assert answer.status == 200
    rows = rows_of(answer.text)
    assert rows[1][:4] == ["e1", "", "", "error"]
    assert "lookup failed (SERVICE_UNAVAILABLE: index query on family_dob_bin" in rows[1][9]
    assert rows[2][:4] == ["c1", JANE, JANE, "cross-check"]


# ------------------------------------------------------------------ streaming


async def read_chunk(reader: asyncio.StreamReader) -> bytes:
    size = int((await reader.readline()).strip(), 16)
    data = await reader.readexactly(size + 2)
    return data[:-2]


async def read_until(reader: asyncio.StreamReader, wanted: int, got: list[str]) -> None:
    """Decode chunks into lines until `wanted` lines have come (or the deadline passes)."""
    buffer = ""
    async with asyncio.timeout(15):
        while len(got) < wanted:
            chunk = await read_chunk(reader)
            assert chunk, "the answer ended early"
            buffer += chunk.decode()
            *complete, buffer = buffer.split("\r\n")
            got.extend(complete)
    assert buffer == ""


def chunk(data: str) -> bytes:
    raw = data.encode()
    return f"{len(raw):x}\r\n".encode() + raw + b"\r\n"


async def test_rows_are_answered_before_the_upload_has_finished(api, records_cluster):
    await load_patients(api)
    url = urlsplit(records_cluster.url("n2"))
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(
            (
                f"POST {PATH} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: Bearer {TOKENS['service']}\r\n"
                f"X-Request-ID: {uuid.uuid4()}\r\nContent-Type: text/csv\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        # The header and two rows, the second cut mid-line: only the first is answerable.
        writer.write(chunk(f"{HEADER}\r\nr1,{JANE},,,,19800101,\r\nr2,,Bro"))
        await writer.drain()
        async with asyncio.timeout(15):
            status = await reader.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            while (await reader.readline()) != b"\r\n":
                pass
        got: list[str] = []
        await read_until(reader, 2, got)
        assert got[1].startswith(f"r1,{JANE},{JANE},cross-check,Smith")

        writer.write(chunk("wn,John,1,19750505,\r\nr3,,O'Neil,Ann,2,19900715,"))
        await writer.drain()
        await read_until(reader, 3, got)
        assert got[2] == "r2,,,multiple-match,,,,,,"

        # The last row ends without a line break: the end of the upload completes it.
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await read_until(reader, 4, got)
        assert got[3].startswith(f"r3,,{ANN},alphanumeric,O'Neil,Ann,2,19900715")
        async with asyncio.timeout(15):
            assert await read_chunk(reader) == b""  # the answer's end
    finally:
        writer.close()


async def test_a_client_that_breaks_off_mid_upload_leaves_the_node_serving(
    api, records_cluster, caplog
):
    # Another test (the simulation) may have quietened "spinekv"; this logger must be heard.
    caplog.set_level(logging.WARNING, logger="spinekv.records.trace")
    url = urlsplit(records_cluster.url("n1"))
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        (
            f"POST {PATH} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {TOKENS['service']}\r\n"
            f"X-Request-ID: {uuid.uuid4()}\r\nContent-Type: text/csv\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + chunk(f"{HEADER}\nr1,,Smith,Jane,2,19800101,\n")
    )
    await writer.drain()
    async with asyncio.timeout(15):
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.close()
    await eventually(
        lambda: "ended early" in caplog.text, what="the node to log the broken-off upload"
    )
    answer = await trace(api, f"{HEADER}\nr1,,Smith,Jane,2,19800101,\n")
    assert answer.status == 200 and rows_of(answer.text)[1][3] == "no-match"


# ------------------------------------------------------------------ size


def big_file(count: int) -> tuple[str, list[str]]:
    """A file of `count` rows cycling through every kind of row, and each row's match type."""
    kinds = [
        ("{i},{jane},,,,19800101,", "cross-check"),
        ("{i},,O'Neil,Ann,2,19900715,", "alphanumeric"),
        ("{i},,Brown,John,1,19750505,", "multiple-match"),
        ("{i},,Nobody,X,1,19750505,", "no-match"),
        ("{i},123,Smith,Jane,2,19800101,", "invalid"),
    ]
    lines, expected = [HEADER], []
    for i in range(count):
        template, kind = kinds[i % len(kinds)]
        lines.append(template.format(i=f"row{i}", jane=JANE))
        expected.append(kind)
    return "\n".join(lines) + "\n", expected


async def test_a_few_thousand_rows_trace_fully_in_order(api):
    await load_patients(api)
    text, expected = big_file(2500)
    answer = await trace(api, text)
    assert answer.status == 200
    rows = rows_of(answer.text)[1:]
    assert [r[0] for r in rows] == [f"row{i}" for i in range(2500)]
    assert [r[3] for r in rows] == expected


# ------------------------------------------------------------------ spinekv trace


async def test_spinekv_trace_streams_a_file_and_summarises(api, records_cluster, tmp_path):
    await load_patients(api)
    text, expected = big_file(300)
    source = tmp_path / "in.csv"
    source.write_text(text)
    out = tmp_path / "out.csv"
    runner = CliRunner()
    config = str(records_cluster.config.path)
    result = await asyncio.to_thread(
        runner.invoke,
        trace_command,
        [str(source), str(out), "--node", "n3", "--token", TOKENS["service"], "--config", config],
    )
    assert result.exit_code == 0, result.output
    rows = rows_of(out.read_text())
    assert rows[0] == OUT_HEADER
    assert [r[3] for r in rows[1:]] == expected
    for kind, count in Counter(expected).items():
        assert f"{kind} {count}" in " ".join(result.output.split())

    # Refused by the node: the reason is shown, the exit status is non-zero, no output file.
    refused = tmp_path / "refused.csv"
    result = await asyncio.to_thread(
        runner.invoke,
        trace_command,
        ["--config", config, str(source), str(refused), "--token", TOKENS["clinical"]],
    )
    assert result.exit_code != 0
    assert "ACCESS_DENIED" in result.output
    assert not refused.exists()


async def test_spinekv_trace_uses_the_demo_service_token_when_cluster_toml_holds_its_hash(tmp_path):
    # cluster.toml keeps only hashes, so the command can find a token by itself only when a
    # service user's hash is that of the local cluster's documented demo token.
    demo = f'[[user]]\nname = "demo-service"\nrole = "service"\ntoken_hash = "{DEMO_HASH}"\n'
    source = tmp_path / "in.csv"
    source.write_text(f"{HEADER}\nr1,,Smith,Jane,2,19800101,\n")
    out = tmp_path / "out.csv"
    (tmp_path / "c").mkdir()
    async with inproc_cluster(tmp_path / "c", extra=demo) as cluster:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            trace_command,
            [str(source), str(out), "--config", str(cluster.config.path)],
        )
    assert result.exit_code == 0, result.output
    assert rows_of(out.read_text())[1][:4] == ["r1", "", "", "no-match"]


async def test_spinekv_trace_asks_for_a_token_when_cluster_toml_holds_no_demo_one(
    records_cluster, tmp_path
):
    source = tmp_path / "in.csv"
    source.write_text(f"{HEADER}\nr1,,Smith,Jane,2,19800101,\n")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        trace_command,
        [str(source), str(tmp_path / "out.csv"), "--config", str(records_cluster.config.path)],
    )
    assert result.exit_code != 0
    assert "pass --token" in result.output
