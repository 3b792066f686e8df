"""Batch tracing (pure): the CSV file's lines and rows, their validation and the match decision.

A trace file is read line by line (`LineSplitter`), its first line checked (`check_header`),
each later line parsed into a `TraceRequest` or a `BadRow` (`parse_line`), and a request decided
against what the store holds (`decide`) into a `Traced` result, which `output_row` writes back.
Nothing here does I/O or reads a clock, so every rule is tested directly; http/trace.py drives it.

One physical line is one row: a line break inside a quoted field is refused (that row is
reported as bad, the next line is the next row) so that a stray quote can never swallow the
rest of a file, and a caller can always pair output rows with input lines.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .nhs import is_valid
from .patient import normalise_name, usual_name

HEADER = (
    "UNIQUE REFERENCE",
    "NHS_NO",
    "FAMILY_NAME",
    "GIVEN_NAME",
    "GENDER",
    "DATE_OF_BIRTH",
    "POST_CODE",
)
# ERROR is ours, not the issue's: the reason a row is `invalid` or `error`, empty otherwise.
OUTPUT_HEADER = (
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
)

CROSS_CHECK = "cross-check"
ALPHANUMERIC = "alphanumeric"
MULTIPLE_MATCH = "multiple-match"
NO_MATCH = "no-match"
# Not matches: `invalid` is a row we cannot trace as written (resending it won't help);
# `error` is a row whose lookup failed in the store (resending it may, unless the reason names a
# stored record that failed its integrity check).
INVALID = "invalid"
ERROR = "error"
MATCH_TYPES = (CROSS_CHECK, ALPHANUMERIC, MULTIPLE_MATCH, NO_MATCH, INVALID, ERROR)

# The batch trace file's gender codes (the NHS Data Dictionary's person stated gender codes).
GENDER_BY_CODE = {"1": "male", "2": "female", "0": "unknown", "9": "other"}
CODE_BY_GENDER = {gender: code for code, gender in GENDER_BY_CODE.items()}

# A row is seven short fields; a longer line is refused rather than buffered without end.
MAX_LINE_BYTES = 4096
MAX_FIELD_CHARS = 256
BOM = "\ufeff"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_TO_REPLACEMENT = {c: "\ufffd" for c in [*range(0x20), 0x7F]}


class HeaderError(ValueError):
    """The file's first line is not the trace header: the whole request is refused."""


# ------------------------------------------------------------------ lines


@dataclass(frozen=True, slots=True)
class TooLong:
    """A line longer than MAX_LINE_BYTES, dropped; `start`: its first bytes (for its reference)."""

    start: bytes


class LineSplitter:
    """Bytes as they arrive -> whole lines (without their line break), in memory bounded by
    `max_bytes`: a longer line yields one TooLong in its place and the rest of it is skipped."""

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._partial = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | TooLong]:
        """The lines that `data` completes."""
        lines: list[bytes | TooLong] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._keep(data[start:], lines)
                return lines
            self._keep(data[start:end], lines)
            if self._skipping:
                self._skipping = False
            else:
                lines.append(self._line())
            start = end + 1

    def end(self) -> list[bytes | TooLong]:
        """The last line when the data did not end with a line break."""
        lines: list[bytes | TooLong] = []
        if self._partial and not self._skipping:
            lines.append(self._line())
        self._partial.clear()
        self._skipping = False
        return lines

    def _line(self) -> bytes | TooLong:
        line = bytes(self._partial).removesuffix(b"\r")
        self._partial.clear()
        return line if len(line) <= self.max_bytes else TooLong(line[:64])

    def _keep(self, piece: bytes, lines: list[bytes | TooLong]) -> None:
        if self._skipping:
            return
        self._partial += piece
        # +1: a line of exactly max_bytes may still be waiting for the "\r" of its "\r\n".
        if len(self._partial) > self.max_bytes + 1:
            lines.append(TooLong(bytes(self._partial[:64])))
            self._partial.clear()
            self._skipping = True


def is_blank(line: bytes | TooLong) -> bool:
    """An empty or all-whitespace line: not a row (files often end with one)."""
    return isinstance(line, bytes) and not line.strip()


# ------------------------------------------------------------------ header and rows


def check_header(line: bytes | TooLong) -> None:
    """Accept the trace header (around any whitespace, after a UTF-8 BOM) or raise HeaderError."""
    expected = ",".join(HEADER)
    if isinstance(line, TooLong):
        raise HeaderError(f"the first line is not the header {expected}")
    try:
        text = line.decode("utf-8").removeprefix(BOM)
        names = next(csv.reader([text], strict=True))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        raise HeaderError(f"the first line is not the header {expected}") from None
    names = [name.strip() for name in names]
    if tuple(names) != HEADER:
        got = ",".join(names)[:200]
        raise HeaderError(f"the header must be {expected}, found {got!r}")


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One valid row: who to look for."""

    reference: str
    nhs: str | None  # a valid NHS number, or None when the row gives none
    family: str | None
    given: str
    gender: str | None  # FHIR gender (male, female, unknown, other)
    birth_date: str  # YYYY-MM-DD
    postcode: str


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that cannot be traced as written, and why; reference and NHS_NO as far as read."""

    reference: str
    nhs_text: str
    reason: str


def parse_line(line: bytes | TooLong, today: datetime.date) -> TraceRequest | BadRow:
    """A row of the trace file -> what to look for, or the reason it is refused."""
    if isinstance(line, TooLong):
        return BadRow(_leading_field(line.start), "", f"row longer than {MAX_LINE_BYTES} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return BadRow(_leading_field(line), "", "row is not UTF-8 text")
    if _has_control(text):
        # A "\r" inside the line most often: a line break inside a quoted field.
        return BadRow(_leading_field(line), "", "row contains a control character or line break")
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error:
        return BadRow(
            _leading_field(line), "", "malformed quoting (a line break inside a field is refused)"
        )
    return parse_fields(fields, today)


def parse_fields(fields: Sequence[str], today: datetime.date) -> TraceRequest | BadRow:
    """The seven fields of a row -> what to look for, or the first reason it is refused."""
    fields = [f.strip() for f in fields]
    # As far as they can be read, so that even a refused row can be told apart in the output.
    reference = _shown(fields[0]) if fields else ""
    nhs_text = _shown(fields[1]) if len(fields) > 1 else ""
    if len(fields) != len(HEADER):
        return BadRow(reference, nhs_text, f"expected {len(HEADER)} fields, found {len(fields)}")
    for name, value in zip(HEADER, fields, strict=True):
        problem = _field_problem(name, value)
        if problem:
            return BadRow(reference, nhs_text, problem)
    _, _, family, given, gender_code, dob_text, postcode = fields
    if not reference:
        return BadRow(reference, nhs_text, "UNIQUE REFERENCE is missing")
    nhs = nhs_text.replace(" ", "") or None
    if nhs is not None and not is_valid(nhs):
        return BadRow(
            reference,
            nhs_text,
            f"NHS_NO {nhs_text!r} is not a valid NHS number "
            "(ten digits with a Modulus 11 check digit)",
        )
    birth_date = _birth_date(dob_text, today)
    if isinstance(birth_date, _BadDate):
        return BadRow(reference, nhs_text, birth_date.reason)
    gender = None
    if gender_code:
        gender = GENDER_BY_CODE.get(gender_code)
        if gender is None:
            return BadRow(
                reference,
                nhs_text,
                f"GENDER {gender_code!r} must be 1 (male), 2 (female), 0 (not known) "
                "or 9 (not specified)",
            )
    if family and not normalise_name(family):
        return BadRow(reference, nhs_text, f"FAMILY_NAME {family!r} has no letters")
    if nhs is None:
        # Without a number only an alphanumeric trace is possible, and it needs both.
        missing = [n for n, v in (("FAMILY_NAME", family), ("GENDER", gender_code)) if not v]
        if missing:
            return BadRow(
                reference, nhs_text, f"{' and '.join(missing)} required when NHS_NO is not given"
            )
    return TraceRequest(reference, nhs, family or None, given, gender, birth_date, postcode)


@dataclass(frozen=True, slots=True)
class _BadDate:
    reason: str


def _birth_date(text: str, today: datetime.date) -> str | _BadDate:
    if not text:
        return _BadDate("DATE_OF_BIRTH is missing")
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        return _BadDate(f"DATE_OF_BIRTH {text!r} must be YYYYMMDD")
    try:
        day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return _BadDate(f"DATE_OF_BIRTH {text!r} is not a real date")
    if day > today:
        return _BadDate(f"DATE_OF_BIRTH {text!r} is in the future")
    return day.isoformat()


def _field_problem(name: str, value: str) -> str | None:
    if len(value) > MAX_FIELD_CHARS:
        return f"{name} is longer than {MAX_FIELD_CHARS} characters"
    if _has_control(value):
        return f"{name} contains a control character"
    return None


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _shown(text: str) -> str:
    """A field of a refused row as it may be echoed: short, and on one line."""
    return _one_line(text[:MAX_FIELD_CHARS])


def _one_line(text: str) -> str:
    return text.translate(_CONTROL_TO_REPLACEMENT)


def _leading_field(data: bytes) -> str:
    """The UNIQUE REFERENCE of a row we cannot parse, when its first field can still be read."""
    if b"," not in data:
        return ""  # the first field may be cut short
    first = data.split(b",", 1)[0].strip()
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if text.startswith('"') or _field_problem("", text):
        return ""
    return text[:MAX_FIELD_CHARS]


# ------------------------------------------------------------------ matching


@dataclass(frozen=True, slots=True)
class Traced:
    """The outcome of one row: its match type, the patient matched (if one), any reason."""

    reference: str
    req_nhs: str
    match_type: str
    patient: dict | None = None
    reason: str = ""


def decide(request: TraceRequest, by_nhs: dict | None, candidates: Iterable[dict]) -> Traced:
    """The match for `request`, given the patient with its NHS_NO (None: none, or not asked)
    and the patients that share its family name and date of birth.

    cross-check when the number's patient has the row's date of birth; otherwise alphanumeric
    when exactly one patient agrees on family name, date of birth and gender, multiple-match
    when several do, no-match when none.
    """
    req_nhs = request.nhs or ""
    if by_nhs is not None and request.nhs and by_nhs.get("birthDate") == request.birth_date:
        return Traced(request.reference, req_nhs, CROSS_CHECK, by_nhs)
    if request.family is None or request.gender is None:
        return Traced(request.reference, req_nhs, NO_MATCH)
    family = normalise_name(request.family)
    agreeing: dict[str, dict] = {}
    for patient in candidates:
        if (
            patient.get("birthDate") == request.birth_date
            and patient.get("gender") == request.gender
            and family in {normalise_name(f) for f in _families(patient)}
        ):
            agreeing[str(patient.get("id"))] = patient  # one patient may come back twice
    if len(agreeing) == 1:
        return Traced(request.reference, req_nhs, ALPHANUMERIC, next(iter(agreeing.values())))
    if agreeing:
        return Traced(request.reference, req_nhs, MULTIPLE_MATCH)
    return Traced(request.reference, req_nhs, NO_MATCH)


def needs_candidates(request: TraceRequest, by_nhs: dict | None) -> bool:
    """Whether `decide` will look at candidates (so a caller can skip fetching them)."""
    cross_checked = by_nhs is not None and by_nhs.get("birthDate") == request.birth_date
    return not cross_checked and request.family is not None and request.gender is not None


def bad(row: BadRow) -> Traced:
    return Traced(row.reference, row.nhs_text, INVALID, reason=row.reason)


def failed(request: TraceRequest, reason: str) -> Traced:
    """A row whose lookup failed in the store: reported, the trace goes on."""
    return Traced(request.reference, request.nhs or "", ERROR, reason=reason)


# ------------------------------------------------------------------ output


def output_row(traced: Traced) -> list[str]:
    """The output file's row for one traced row (the matched patient's values, as stored, with
    any control character replaced by U+FFFD)."""
    patient = traced.patient
    if patient is None:
        matched = [""] * 6
    else:
        family, given = _usual_name(patient)
        birth = str(patient.get("birthDate") or "")
        matched = [
            str(patient.get("id") or ""),
            family,
            given,
            CODE_BY_GENDER.get(str(patient.get("gender")), ""),
            birth.replace("-", ""),
            _postcode(patient),
        ]
    row = [traced.reference, traced.req_nhs, matched[0], traced.match_type, *matched[1:]]
    # One line per row, whatever a stored value holds, so the answer pairs with the input by line.
    return [_one_line(field) for field in [*row, traced.reason]]


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """Rows as CSV text with CRLF line ends (RFC 4180)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def _names(patient: dict) -> list[dict]:
    names = patient.get("name")
    return [n for n in names if isinstance(n, dict)] if isinstance(names, list) else []


def _families(patient: dict) -> list[str]:
    return [n["family"] for n in _names(patient) if isinstance(n.get("family"), str)]


def _usual_name(patient: dict) -> tuple[str, str]:
    usual = usual_name(patient)
    given = usual.get("given")
    given_text = " ".join(g for g in given if isinstance(g, str)) if isinstance(given, list) else ""
    family = usual.get("family")
    return (family if isinstance(family, str) else "", given_text)


def _postcode(patient: dict) -> str:
    addresses = patient.get("address")
    if not isinstance(addresses, list):
        return ""
    with_code = [a for a in addresses if isinstance(a, dict) and a.get("postalCode")]
    home = next((a for a in with_code if a.get("use") == "home"), None)
    chosen = home or (with_code[0] if with_code else None)
    return str(chosen["postalCode"]) if chosen else ""
