"""Patient search (pure): parsing the PDS parameters, the 2i range searched, scores and ranking."""

from __future__ import annotations

import datetime as dt

import pytest
from multidict import MultiDict

from spinekv.records import search
from spinekv.records.outcome import RecordError
from spinekv.records.search import Criteria
from tests.records_support import patient

TODAY = dt.date(2026, 1, 1)
MINIMUM = [("family", "Smith"), ("birthdate", "eq1980-02-29")]


def parse(pairs: list[tuple[str, str]]) -> Criteria:
    query = MultiDict(pairs)
    return search.parse(query, lambda name: query.getall(name, []), TODAY)


def refused(pairs: list[tuple[str, str]]) -> str:
    """The diagnostics of a search refused with INVALID_SEARCH_DATA."""
    with pytest.raises(RecordError) as info:
        parse(pairs)
    assert info.value.code == "INVALID_SEARCH_DATA", info.value
    assert info.value.status == 400
    return info.value.diagnostics


def criteria(**overrides) -> Criteria:
    base = {"family": "Smith", "dob_low": "19800229", "dob_high": "19800229"}
    return Criteria(**(base | overrides))


def stored(nhs: str = "9990000018", **fields) -> dict:
    return {"resourceType": "Patient", "id": nhs, **patient(**fields)}


# ------------------------------------------------------------------ parse


def test_the_minimum_search_is_family_and_birthdate():
    got = parse(MINIMUM)
    assert (got.family, got.dob_low, got.dob_high) == ("Smith", "19800229", "19800229")
    assert got.max_results == 1 and not got.fuzzy and not got.exact


@pytest.mark.parametrize(
    "pairs",
    [
        [],
        [("family", "Smith")],
        [("birthdate", "eq1980-02-29")],
        [("family", ""), ("birthdate", "eq1980-02-29")],
        [("family", "   "), ("birthdate", "eq1980-02-29")],
        [("given", "Jane"), ("gender", "female"), ("birthdate", "1980-02-29")],
    ],
)
def test_less_than_family_and_birthdate_is_refused(pairs):
    assert "minimum" in refused(pairs)


def test_every_parameter_is_read():
    got = parse(
        [
            *MINIMUM,
            ("given", "Jane"),
            ("given", "Ann"),
            ("gender", "female"),
            ("address-postalcode", "LS1 4HR"),
            ("general-practitioner", "Y12345"),
            ("_fuzzy-match", "TRUE"),
            ("_max-results", "50"),
        ]
    )
    assert got.given == ("Jane", "Ann")
    assert (got.gender, got.postcode, got.gp) == ("female", "LS1 4HR", "Y12345")
    assert got.fuzzy and not got.exact and got.max_results == 50
    assert parse([*MINIMUM, ("_exact-match", "true"), ("_fuzzy-match", "false")]).exact


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [
        (["1980-02-29"], "19800229", "19800229"),  # no prefix means eq
        (["eq1980-02-29"], "19800229", "19800229"),
        (["ge1980-01-01"], "19800101", "99999999"),
        (["le1980-01-01"], "00000000", "19800101"),
        (["ge1980-01-01", "le1989-12-31"], "19800101", "19891231"),
        (["le1989-12-31", "ge1980-01-01"], "19800101", "19891231"),
        (["ge1980-01-01", "le1980-01-01"], "19800101", "19800101"),
    ],
)
def test_birthdate_ranges(values, low, high):
    got = parse([("family", "Smith"), *(("birthdate", v) for v in values)])
    assert (got.dob_low, got.dob_high) == (low, high)


@pytest.mark.parametrize(
    ("pairs", "says"),
    [
        ([("birthdate", "1980-02-30")], "birthdate"),
        ([("birthdate", "29-02-1980")], "birthdate"),
        ([("birthdate", "gt1980-01-01")], "birthdate"),
        ([("birthdate", "eq1980-01-01"), ("birthdate", "le1990-01-01")], "range"),
        ([("birthdate", "ge1990-01-01"), ("birthdate", "le1980-01-01")], "empty"),
        ([("birthdate", "ge1980-01-01")] * 3, "birthdate"),
        ([("gender", "F")], "gender"),
        ([("_max-results", "0")], "_max-results"),
        ([("_max-results", "51")], "_max-results"),
        ([("_max-results", "-1")], "_max-results"),
        ([("_max-results", "ten")], "_max-results"),
        ([("_max-results", "²")], "_max-results"),  # a digit to isdigit(), not to int()
        ([("_fuzzy-match", "yes")], "_fuzzy-match"),
        ([("_exact-match", "1")], "_exact-match"),
        ([("_fuzzy-match", "true"), ("_exact-match", "true")], "both"),
        ([("nhs", "9990000018")], "unknown"),
    ],
)
def test_bad_search_data_is_refused_with_the_reason(pairs, says):
    names = {name for name, _ in pairs}
    base = [p for p in MINIMUM if p[0] not in names]
    assert says in refused(base + pairs)


@pytest.mark.parametrize(
    ("family", "extra", "says"),
    [
        ("Smi*", [("_fuzzy-match", "true")], "wildcard"),
        ("Smi*", [("_exact-match", "true")], "wildcard"),
        ("S*", [], "two characters"),
        ("*ith", [], "at the end"),
        ("Sm*th", [], "at the end"),
        ("Smi**", [], "at the end"),
        ("123", [], "no letters"),
    ],
)
def test_bad_family_names_and_wildcards_are_refused(family, extra, says):
    assert says in refused([("family", family), ("birthdate", "1980-02-29"), *extra])


# ------------------------------------------------------------------ the 2i range


def test_an_exact_family_reads_its_family_dob_range():
    got = search.index_range(criteria(family="smith ", dob_high="19891231"))
    assert got == ("family_dob_bin", "SMITH|19800229", "SMITH|19891231")


def test_a_fuzzy_search_reads_the_soundex_range():
    got = search.index_range(criteria(family="Smyth", fuzzy=True))
    assert got == ("soundex_dob_bin", "S530|19800229", "S530|19800229")


def test_a_wildcard_reads_every_family_with_the_prefix_and_filters_dates_by_term():
    c = criteria(family="Smi*")
    field, start, end = search.index_range(c)
    assert field == "family_dob_bin"
    for term in ("SMITH|19800229", "SMITHSON|19800229", "SMI|19800229"):
        assert start <= term <= end and search.term_in_range(c, term)
    assert not start <= "SMJ|19800229" <= end
    assert not start <= "SM|19800229" <= end
    assert not search.term_in_range(c, "SMITH|19800228")  # inside the prefix range, wrong date


def test_term_in_range_checks_the_date_of_exact_terms():
    c = criteria(dob_low="19800101", dob_high="19801231")
    assert search.term_in_range(c, "SMITH|19800101")
    assert search.term_in_range(c, "SMITH|19801231")
    assert not search.term_in_range(c, "SMITH|19810101")


# ------------------------------------------------------------------ scores


def test_an_exact_match_of_every_criterion_scores_1():
    c = criteria(given=("Jane",), gender="female", postcode="ls14hr", gp="y12345")
    assert search.score(c, stored()) == 1.0


def test_a_wildcard_match_scores_below_an_exact_one():
    assert search.score(criteria(family="Smi*"), stored()) == pytest.approx(0.95)
    assert search.score(criteria(family="Smi*"), stored(family="Jones")) is None


@pytest.mark.parametrize(
    ("change", "c"),
    [
        ({"family": "Jones"}, criteria()),
        ({"birth_date": "1980-03-01"}, criteria()),
        ({"given": "Ann"}, criteria(given=("Jane",))),
        ({"gender": "male"}, criteria(gender="female")),
        ({"postcode": "M1 1AE"}, criteria(postcode="LS1 4HR")),
        ({"gp": "A99999"}, criteria(gp="Y12345")),
    ],
)
def test_any_criterion_not_met_is_no_match(change, c):
    assert search.score(c, stored(**change)) is None
    assert search.score(c, stored()) == 1.0


def test_filters_compare_normalised_values_and_postcodes_take_a_wildcard():
    assert search.score(criteria(postcode="ls1 4hr"), stored()) == 1.0
    assert search.score(criteria(postcode="LS1*"), stored()) == 1.0
    assert search.score(criteria(postcode="LS2*"), stored()) is None
    assert search.score(criteria(given=("jan*",)), stored()) == 1.0
    assert search.score(criteria(family="SMITH"), stored()) == 1.0


def test_exact_match_needs_the_name_as_written():
    c = criteria(exact=True, given=("Jane",))
    assert search.score(c, stored()) == 1.0
    assert search.score(c, stored(family="Smyth")) is None
    assert search.score(criteria(exact=True, family="smith"), stored()) is None
    assert search.score(c, stored(given="Janet")) is None


def test_fuzzy_match_scores_by_similarity_and_accepts_the_same_soundex():
    c = criteria(fuzzy=True)
    exact, near, far = (search.score(c, stored(family=f)) for f in ("Smith", "Smithe", "Smyth"))
    assert exact == 1.0 and 1.0 > near > far > search.FUZZY_FLOOR
    # Sounds alike (S530) though spelt unlike: still a match, scored below closer spellings.
    sandy = search.score(c, stored(family="Sandy"))
    assert sandy is not None and 0.0 < sandy < far
    assert search.score(c, stored(family="Jones")) is None
    assert search.score(criteria(fuzzy=True, given=("Jayne",)), stored()) > search.FUZZY_FLOOR


def test_a_patient_matches_on_any_of_its_names():
    resource = stored(family="Jones")
    resource["name"].append({"use": "old", "family": "Smith", "given": ["Jane"]})
    assert search.score(criteria(), resource) == 1.0


def test_rank_drops_non_matches_and_sorts_by_score_then_number():
    patients = [
        stored("9990000034", family="Smyth"),
        stored("9990000026", family="Smith"),
        stored("9990000018", family="Smith"),
        stored("9990000042", family="Jones"),
        stored("9990000050", family="Smithe"),
    ]
    ranked = search.rank(criteria(fuzzy=True), patients)
    assert [p["id"] for _, p in ranked] == [
        "9990000018",
        "9990000026",
        "9990000050",
        "9990000034",
    ]
    scores = [s for s, _ in ranked]
    assert scores == sorted(scores, reverse=True)
