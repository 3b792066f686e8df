"""A trace file traces the same whatever its row order, chunking or line ends, and its answer
keeps the input's order however the lookups finish (http/trace.py's pipeline, fake lookups)."""

from __future__ import annotations

import asyncio
import csv
import datetime
import hashlib
import io
import itertools

from hypothesis import given
from hypothesis import strategies as st

from spinekv.http.trace import lines, trace_lines
from spinekv.records import trace
from spinekv.records.outcome import RecordError
from spinekv.records.patient import normalise_name

TODAY = datetime.date(2024, 6, 1)
NUMBERS = ["9990000018", "9990000026", "9990000034", "9990000042", "9990000050"]
UNUSED_NUMBER = "9990000069"
FAMILIES = ["Smith", "Smyth", "O'Neil"]
# (family, gender, birth date) of each patient: two Smiths alike, so multiple matches happen.
PEOPLE = [
    ("Smith", "female", "1980-01-01"),
    ("Smith", "female", "1980-01-01"),
    ("Smyth", "male", "1980-01-01"),
    ("O'Neil", "female", "1990-07-15"),
    ("Smith", "male", "1990-07-15"),
]
PATIENTS = {
    number: {
        "id": number,
        "name": [{"use": "usual", "family": family, "given": ["Ann"]}],
        "gender": gender,
        "birthDate": dob,
        "address": [{"postalCode": f"LS{i} 1AA"}],
    }
    for i, (number, (family, gender, dob)) in enumerate(zip(NUMBERS, PEOPLE, strict=True))
}


class FakeDemographics:
    """The population above; each lookup yields to the loop a row-and-seed dependent number of
    times (so lookups finish out of order), and one family name's lookups fail."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    async def _delay(self, *key: str) -> None:
        digest = hashlib.sha256(f"{self.seed}/{key}".encode()).digest()
        for _ in range(digest[0] % 8):
            await asyncio.sleep(0)

    async def read(self, number: str) -> dict | None:
        await self._delay("read", number)
        return PATIENTS.get(number)

    async def candidates(self, family: str, birth_date: str) -> list[dict]:
        await self._delay("candidates", family, birth_date)
        if normalise_name(family) == "FAIL":
            raise RecordError("SERVICE_UNAVAILABLE", "no quorum")
        return [
            p
            for p in PATIENTS.values()
            if p["birthDate"] == birth_date
            and normalise_name(p["name"][0]["family"]) == normalise_name(family)
        ]


# Valid values drawn more often than bad ones, so that most rows reach the lookups.
row_fields = st.tuples(
    st.sampled_from(["", "", *NUMBERS, UNUSED_NUMBER, "9990000019", "12"]),
    st.sampled_from(["", *FAMILIES, *FAMILIES, "smith", "FAIL", "Nobody", "123"]),
    st.sampled_from(["", "Ann", "Bo, Jr"]),
    st.sampled_from(["", "1", "2", "1", "2", "0", "9", "3"]),
    st.sampled_from(["19800101", "19900715"] * 3 + ["20000101", "19800230", "2024-01-01", ""]),
    st.sampled_from(["", "LS1 4HR"]),
)


def csv_line(fields) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def file_bytes(rows, line_end: str, bom: bool) -> bytes:
    lines = [",".join(trace.HEADER)] + [csv_line(r) for r in rows]
    return (("\ufeff" if bom else "") + line_end.join(lines) + line_end).encode()


def run_trace(data: bytes, cuts: list[int], seed: int) -> list[list[str]]:
    """The output rows (header checked and dropped) of tracing `data` cut into chunks."""
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]

    async def go() -> bytes:
        async def source():
            for chunk in chunks:
                await asyncio.sleep(0)
                yield chunk

        rows = lines(source())
        trace.check_header(await anext(rows))
        written: list[bytes] = []

        async def write(b: bytes) -> None:
            written.append(b)

        await trace_lines(rows, FakeDemographics(seed), TODAY, write, concurrency=4)
        return b"".join(written)

    text = asyncio.run(go()).decode()
    return list(csv.reader(io.StringIO(text, newline="")))


traces = st.lists(row_fields, min_size=1, max_size=25)


@given(
    traces,
    st.randoms(use_true_random=False),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
    st.integers(min_value=0, max_value=1000),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_a_file_traces_the_same_in_any_row_order(rows, rnd, cuts, seed, line_end, bom):
    numbered = [(f"ref{i}", *fields) for i, fields in enumerate(rows)]
    shuffled = list(numbered)
    rnd.shuffle(shuffled)

    first = run_trace(file_bytes(numbered, "\n", False), [], seed)
    second = run_trace(file_bytes(shuffled, line_end, bom), cuts, seed + 1)

    # One output row per input row, in the input's order.
    assert [r[0] for r in first] == [r[0] for r in numbered]
    assert [r[0] for r in second] == [r[0] for r in shuffled]
    # The same answer for each row, whatever the order, chunking and line ends.
    assert {r[0]: r for r in first} == {r[0]: r for r in second}
    assert all(len(r) == len(trace.OUTPUT_HEADER) for r in first)
    assert {r[3] for r in first} <= set(trace.MATCH_TYPES)


@given(traces, st.integers(min_value=0, max_value=1000))
def test_each_output_row_is_the_pure_decision_for_its_row(rows, seed):
    """The pipeline adds nothing of its own: it answers what parse_line and decide say."""
    numbered = [(f"ref{i}", *fields) for i, fields in enumerate(rows)]
    got = run_trace(file_bytes(numbered, "\n", False), [], seed)
    fake = FakeDemographics(seed)
    for fields, out in zip(numbered, got, strict=True):
        parsed = trace.parse_line(csv_line(fields).encode(), TODAY)
        if isinstance(parsed, trace.BadRow):
            assert out == trace.output_row(trace.bad(parsed))
            continue
        by_nhs = asyncio.run(fake.read(parsed.nhs)) if parsed.nhs else None
        try:
            candidates = (
                asyncio.run(fake.candidates(parsed.family, parsed.birth_date))
                if trace.needs_candidates(parsed, by_nhs)
                else []
            )
        except RecordError:
            assert out[3] == trace.ERROR and "SERVICE_UNAVAILABLE" in out[9]
            continue
        assert out == trace.output_row(trace.decide(parsed, by_nhs, candidates))
