"""Batch tracing's pure rules: lines, the header, row validation, match decisions, output rows."""

from __future__ import annotations

import datetime

import pytest

from spinekv.records import trace
from spinekv.records.trace import (
    ALPHANUMERIC,
    CROSS_CHECK,
    ERROR,
    INVALID,
    MULTIPLE_MATCH,
    NO_MATCH,
    BadRow,
    HeaderError,
    LineSplitter,
    TooLong,
    TraceRequest,
)

TODAY = datetime.date(2024, 6, 1)
HEADER = b"UNIQUE REFERENCE,NHS_NO,FAMILY_NAME,GIVEN_NAME,GENDER,DATE_OF_BIRTH,POST_CODE"
JANE_NHS = "9990000018"
OTHER_NHS = "9990000026"


def patient(nhs=JANE_NHS, family="Smith", given=("Jane",), gender="female", dob="1980-01-01"):
    return {
        "resourceType": "Patient",
        "id": nhs,
        "name": [{"use": "usual", "family": family, "given": list(given)}],
        "gender": gender,
        "birthDate": dob,
        "address": [{"line": ["1 Road"], "postalCode": "LS1 4HR"}],
    }


def row(line: str) -> TraceRequest | BadRow:
    return trace.parse_line(line.encode(), TODAY)


def request(**changes) -> TraceRequest:
    fields = {
        "reference": "r1",
        "nhs": None,
        "family": "Smith",
        "given": "Jane",
        "gender": "female",
        "birth_date": "1980-01-01",
        "postcode": "",
    }
    fields.update(changes)
    return TraceRequest(**fields)


# ------------------------------------------------------------------ lines


def test_splitter_joins_chunks_into_lines_and_drops_crlf():
    s = LineSplitter()
    assert s.feed(b"ab") == []
    assert s.feed(b"c\r\nde\nf") == [b"abc", b"de"]
    assert s.feed(b"g\r") == []
    assert s.feed(b"\n") == [b"fg"]
    assert s.end() == []


def test_splitter_gives_a_last_line_without_a_break_at_the_end():
    s = LineSplitter()
    assert s.feed(b"a\nlast\r") == [b"a"]
    assert s.end() == [b"last"]


def test_splitter_replaces_an_overlong_line_and_resumes_at_the_next():
    s = LineSplitter(max_bytes=10)
    out = s.feed(b"ok\n" + b"x" * 8) + s.feed(b"y" * 100) + s.feed(b"z\nnext\n")
    assert out[0] == b"ok"
    assert isinstance(out[1], TooLong) and out[1].start.startswith(b"xxxxxxxx")
    assert out[2:] == [b"next"]


def test_splitter_limit_counts_the_line_without_its_break():
    s = LineSplitter(max_bytes=4)
    assert s.feed(b"abcd\n1234\r") == [b"abcd"]
    assert s.end() == [b"1234"]
    out = s.feed(b"12345\n") + s.feed(b"123") + s.feed(b"45\r") + s.end()
    assert [type(x) for x in out] == [TooLong, TooLong]


def test_splitter_keeps_a_line_of_exactly_the_limit_before_its_crlf():
    s = LineSplitter(max_bytes=4)
    out = s.feed(b"abcd\r\n12345\r\n")
    assert out[0] == b"abcd"
    assert isinstance(out[1], TooLong)
    assert len(out) == 2


def test_blank_lines_are_not_rows():
    assert trace.is_blank(b"")
    assert trace.is_blank(b"  \t")
    assert not trace.is_blank(b",,,,,,")
    assert not trace.is_blank(TooLong(b""))


# ------------------------------------------------------------------ header


@pytest.mark.parametrize(
    "line",
    [
        HEADER,
        b"\xef\xbb\xbf" + HEADER,
        b"  " + HEADER.replace(b",", b" , ") + b"  ",
        b'"UNIQUE REFERENCE",NHS_NO,FAMILY_NAME,GIVEN_NAME,GENDER,DATE_OF_BIRTH,POST_CODE',
    ],
)
def test_header_accepted_around_whitespace_bom_and_quotes(line):
    trace.check_header(line)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        HEADER.replace(b"NHS_NO", b"NHS_NUMBER"),
        HEADER + b",EXTRA",
        HEADER.rsplit(b",", 1)[0],
        HEADER.lower(),
        b"1,9990000018,Smith,Jane,2,19800101,LS1 4HR",
        b"\xff\xfe" + HEADER,
        b'"UNIQUE REFERENCE,NHS_NO',
        TooLong(HEADER[:64]),
    ],
)
def test_any_other_first_line_is_a_header_error(line):
    with pytest.raises(HeaderError, match="header"):
        trace.check_header(line)


# ------------------------------------------------------------------ rows


def test_a_full_row_parses_with_gender_and_date_mapped():
    got = row(" r1 , 9990000018 ,Smith,Jane,2,19800101,LS1 4HR")
    assert got == TraceRequest("r1", JANE_NHS, "Smith", "Jane", "female", "1980-01-01", "LS1 4HR")


@pytest.mark.parametrize(
    ("code", "gender"), [("1", "male"), ("2", "female"), ("0", "unknown"), ("9", "other")]
)
def test_gender_codes(code, gender):
    assert row(f"r,,Smith,Jane,{code},19800101,").gender == gender


def test_quoted_fields_may_hold_commas_and_quotes():
    got = row('r1,,"Smith, ""Jr""",Jane,1,19800101,')
    assert got.family == 'Smith, "Jr"'


def test_nhs_number_may_be_written_with_spaces_and_optional_fields_may_be_empty():
    got = row("r1,999 000 0018,,,,19800101,")
    assert got.nhs == JANE_NHS
    assert (got.family, got.gender, got.given, got.postcode) == (None, None, "", "")


def test_a_birth_date_of_today_is_accepted():
    assert row("r,,Smith,,1,20240601,").birth_date == "2024-06-01"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("r1,9990000018,Smith,Jane,2,19800101", "expected 7 fields, found 6"),
        ("r1,9990000018,Smith,Jane,2,19800101,LS1,x", "expected 7 fields, found 8"),
        (",9990000018,Smith,Jane,2,19800101,", "UNIQUE REFERENCE is missing"),
        ("r1,9990000019,Smith,Jane,2,19800101,", "not a valid NHS number"),
        ("r1,12345,Smith,Jane,2,19800101,", "not a valid NHS number"),
        ("r1,,Smith,Jane,2,,", "DATE_OF_BIRTH is missing"),
        ("r1,,Smith,Jane,2,1980-01-01,", "must be YYYYMMDD"),
        ("r1,,Smith,Jane,2,\uff11\uff19\uff18\uff10\uff10\uff11\uff10\uff11,", "must be YYYYMMDD"),
        ("r1,,Smith,Jane,2,19800230,", "not a real date"),
        ("r1,,Smith,Jane,2,20240602,", "in the future"),
        ("r1,,Smith,Jane,3,19800101,", "GENDER '3' must be 1 (male)"),
        ("r1,,Smith,Jane,M,19800101,", "GENDER 'M'"),
        ("r1,,,Jane,2,19800101,", "FAMILY_NAME required when NHS_NO is not given"),
        ("r1,,Smith,Jane,,19800101,", "GENDER required when NHS_NO is not given"),
        ("r1,,,Jane,,19800101,", "FAMILY_NAME and GENDER required"),
        ("r1,,123,Jane,2,19800101,", "FAMILY_NAME '123' has no letters"),
        ('r1,,"Smith,Jane,2,19800101,', "malformed quoting"),
        ('r1,,"Smith"x,Jane,2,19800101,', "malformed quoting"),
        ("r1,,Sm\rith,Jane,2,19800101,", "control character or line break"),
        ("r1,,Sm\x00ith,Jane,2,19800101,", "control character"),
        ("r1,," + "S" * 300 + ",Jane,2,19800101,", "FAMILY_NAME is longer than 256"),
    ],
)
def test_bad_rows_give_their_reason(line, reason):
    got = row(line)
    assert isinstance(got, BadRow)
    assert reason in got.reason


def test_a_bad_row_keeps_its_reference_and_nhs_text_when_readable():
    assert row("r9,12345,Smith,Jane,2,19800101,") == BadRow(
        "r9",
        "12345",
        "NHS_NO '12345' is not a valid NHS number (ten digits with a Modulus 11 check digit)",
    )
    assert row('r8,,"Smith,Jane,2,19800101,').reference == "r8"


def test_rows_that_are_not_text_or_too_long_are_bad_rows():
    assert trace.parse_line(b"r1,\xff,Smith,Jane,2,19800101,", TODAY).reason == (
        "row is not UTF-8 text"
    )
    assert trace.parse_line(b"r1,\xff,Smith,Jane,2,19800101,", TODAY).reference == "r1"
    too_long = trace.parse_line(TooLong(b"r7,xxxxxxxx"), TODAY)
    assert too_long == BadRow("r7", "", f"row longer than {trace.MAX_LINE_BYTES} bytes")
    # Cut inside its first field: no reference rather than a wrong one.
    assert trace.parse_line(TooLong(b"r" * 64), TODAY).reference == ""


def test_refused_fields_are_echoed_on_one_line():
    got = trace.parse_fields(["r\n1", "x", "", "", "", "", ""], TODAY)
    assert isinstance(got, BadRow)
    assert got.reference == "r\ufffd1"
    assert "\n" not in trace.csv_text([trace.output_row(trace.bad(got))]).rstrip("\r\n")


# ------------------------------------------------------------------ decisions


def test_cross_check_when_the_number_and_birth_date_agree():
    jane = patient()
    got = trace.decide(request(nhs=JANE_NHS, family=None, gender=None), jane, [])
    assert (got.match_type, got.patient) == (CROSS_CHECK, jane)


def test_cross_check_ignores_names_and_gender():
    jane = patient()
    got = trace.decide(request(nhs=JANE_NHS, family="Jones", gender="male"), jane, [])
    assert got.match_type == CROSS_CHECK
    assert not trace.needs_candidates(request(nhs=JANE_NHS), jane)


def test_number_with_another_birth_date_falls_back_to_alphanumeric():
    by_nhs = patient(dob="1970-05-05")
    other = patient(nhs=OTHER_NHS)
    req = request(nhs=JANE_NHS)
    assert trace.needs_candidates(req, by_nhs)
    got = trace.decide(req, by_nhs, [other])
    assert (got.match_type, got.patient, got.req_nhs) == (ALPHANUMERIC, other, JANE_NHS)


def test_unknown_number_without_names_is_no_match():
    req = request(nhs=JANE_NHS, family=None, gender=None)
    assert not trace.needs_candidates(req, None)
    assert trace.decide(req, None, [patient()]).match_type == NO_MATCH


def test_alphanumeric_compares_family_names_normalised():
    jane = patient(family="O'Brien-Smith")
    got = trace.decide(request(family="  o'brien-SMITH "), None, [jane])
    assert (got.match_type, got.patient) == (ALPHANUMERIC, jane)


def test_alphanumeric_matches_any_of_a_patients_names():
    jane = patient(family="Jones")
    jane["name"].append({"use": "old", "family": "Smith", "given": ["Jane"]})
    assert trace.decide(request(), None, [jane]).match_type == ALPHANUMERIC


@pytest.mark.parametrize(
    "other",
    [
        {"gender": "male"},
        {"dob": "1980-01-02"},
        {"family": "Smyth"},
    ],
)
def test_a_candidate_disagreeing_on_family_dob_or_gender_does_not_match(other):
    assert trace.decide(request(), None, [patient(**other)]).match_type == NO_MATCH


def test_two_agreeing_patients_are_a_multiple_match():
    got = trace.decide(request(), None, [patient(), patient(nhs=OTHER_NHS), patient(gender="male")])
    assert (got.match_type, got.patient) == (MULTIPLE_MATCH, None)


def test_one_patient_found_twice_is_still_one_match():
    assert trace.decide(request(), None, [patient(), patient()]).match_type == ALPHANUMERIC


def test_no_candidates_is_no_match():
    assert trace.decide(request(), None, []).match_type == NO_MATCH


# ------------------------------------------------------------------ output


def test_output_row_of_a_match_has_the_stored_values_in_file_form():
    jane = patient(given=("Jane", "Ann"))
    got = trace.output_row(trace.decide(request(nhs=JANE_NHS), jane, []))
    assert got == [
        "r1",
        JANE_NHS,
        JANE_NHS,
        CROSS_CHECK,
        "Smith",
        "Jane Ann",
        "2",
        "19800101",
        "LS1 4HR",
        "",
    ]
    assert len(got) == len(trace.OUTPUT_HEADER)


@pytest.mark.parametrize(
    ("gender", "code"), [("male", "1"), ("female", "2"), ("unknown", "0"), ("other", "9")]
)
def test_output_gender_codes(gender, code):
    p = patient(gender=gender)
    assert trace.output_row(trace.Traced("r", "", ALPHANUMERIC, p))[6] == code


def test_output_prefers_the_usual_name_and_a_home_postcode():
    p = patient()
    p["name"].insert(0, {"use": "old", "family": "Old", "given": ["X"]})
    p["address"] = [{"postalCode": "AB1 2CD"}, {"use": "home", "postalCode": "LS2 9JT"}]
    got = trace.output_row(trace.Traced("r", "", ALPHANUMERIC, p))
    assert (got[4], got[5], got[8]) == ("Smith", "Jane", "LS2 9JT")


def test_output_of_non_matches_bad_rows_and_failures():
    assert trace.output_row(trace.decide(request(nhs=JANE_NHS), None, [])) == [
        "r1",
        JANE_NHS,
        "",
        NO_MATCH,
        "",
        "",
        "",
        "",
        "",
        "",
    ]
    bad = trace.output_row(trace.bad(BadRow("r2", "123", "why")))
    assert bad == ["r2", "123", "", INVALID, "", "", "", "", "", "why"]
    failed = trace.output_row(trace.failed(request(reference="r3"), "store down"))
    assert failed == ["r3", "", "", ERROR, "", "", "", "", "", "store down"]


def test_csv_text_quotes_what_needs_it():
    assert trace.csv_text([["a", "b,c", 'd"e']]) == 'a,"b,c","d""e"\r\n'
