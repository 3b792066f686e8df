"""Patient search (pure): the PDS query parameters, the 2i range they read, filters and scores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jellyfish

from .outcome import RecordError
from .patient import (
    GENDERS,
    compact_date,
    gp_codes,
    normalise_name,
    normalise_postcode,
    parse_date,
    postcodes,
    soundex,
)

PARAMS = (
    "family",
    "given",
    "gender",
    "birthdate",
    "address-postalcode",
    "general-practitioner",
    "_fuzzy-match",
    "_exact-match",
    "_max-results",
)
MAX_RESULTS = 50
# More candidates than this from the index is a search too broad to answer.
MAX_CANDIDATES = 1000
# Fuzzy matches below this similarity of family name are not matches at all.
FUZZY_FLOOR = 0.7
_TOP = "\x7f"  # above every character a normalised name or term can hold


@dataclass(frozen=True)
class Criteria:
    family: str  # as given (may end in * unless fuzzy or exact)
    dob_low: str  # YYYYMMDD
    dob_high: str
    given: tuple[str, ...] = ()
    gender: str | None = None
    postcode: str | None = None
    gp: str | None = None
    fuzzy: bool = False
    exact: bool = False
    max_results: int = 1


def _bad(text: str) -> RecordError:
    return RecordError("INVALID_SEARCH_DATA", text)


def _flag(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise _bad(f"{name}={raw!r}: expected true or false")


def _birthdates(values: Sequence[str], today: dt.date) -> tuple[str, str]:
    low, high = "00000000", "99999999"
    if not values or len(values) > 2:
        raise _bad("birthdate: give one date (eqYYYY-MM-DD) or a range (ge... and le...)")
    for raw in values:
        prefix, date = (raw[:2], raw[2:]) if raw[:2] in ("eq", "ge", "le") else ("eq", raw)
        parse_date(date, f"birthdate={raw}", "INVALID_SEARCH_DATA")
        day = compact_date(date)
        if prefix == "eq" and len(values) == 1:
            low = high = day
        elif prefix == "ge":
            low = max(low, day)
        elif prefix == "le":
            high = min(high, day)
        else:
            raise _bad(f"birthdate={raw!r}: a range needs one ge and one le")
    if low > high:
        raise _bad("birthdate: the range is empty (ge is after le)")
    return low, high


def parse(query: Mapping[str, str], getall: Any, today: dt.date) -> Criteria:
    """PDS search parameters -> Criteria; fewer than family and birthdate is INVALID_SEARCH_DATA.

    `getall(name)` answers every value of a repeated parameter (given, birthdate).
    """
    unknown = sorted(set(query) - set(PARAMS))
    if unknown:
        raise _bad(f"unknown search parameter {unknown[0]!r} (known: {', '.join(PARAMS)})")
    family = query.get("family", "").strip()
    birthdates = getall("birthdate")
    if not family or not birthdates:
        raise _bad("the minimum search is family and birthdate")
    fuzzy, exact = _flag(query, "_fuzzy-match"), _flag(query, "_exact-match")
    if fuzzy and exact:
        raise _bad("_fuzzy-match and _exact-match cannot both be true")
    if "*" in family:
        if fuzzy or exact:
            raise _bad("wildcards cannot be used with _fuzzy-match or _exact-match")
        if not family.endswith("*") or family.count("*") > 1 or len(normalise_name(family)) < 2:
            raise _bad("family: a wildcard must follow at least two characters, at the end")
    elif not normalise_name(family):
        raise _bad(f"family={family!r}: no letters")
    low, high = _birthdates(birthdates, today)
    gender = query.get("gender")
    if gender is not None and gender not in GENDERS:
        raise _bad(f"gender={gender!r}: expected one of {', '.join(GENDERS)}")
    raw_max = query.get("_max-results", "1")
    if not (raw_max.isascii() and raw_max.isdigit() and 1 <= int(raw_max) <= MAX_RESULTS):
        raise _bad(f"_max-results={raw_max!r}: expected 1 to {MAX_RESULTS}")
    given = tuple(g.strip() for g in getall("given") if g.strip())
    return Criteria(
        family=family,
        dob_low=low,
        dob_high=high,
        given=given,
        gender=gender,
        postcode=query.get("address-postalcode"),
        gp=query.get("general-practitioner"),
        fuzzy=fuzzy,
        exact=exact,
        max_results=int(raw_max),
    )


def index_range(c: Criteria) -> tuple[str, str, str]:
    """(2i field, first term, last term) that holds every candidate."""
    if c.fuzzy:
        code = soundex(c.family)
        return "soundex_dob_bin", f"{code}|{c.dob_low}", f"{code}|{c.dob_high}"
    if c.family.endswith("*"):
        prefix = normalise_name(c.family[:-1])
        return "family_dob_bin", prefix, prefix + _TOP
    family = normalise_name(c.family)
    return "family_dob_bin", f"{family}|{c.dob_low}", f"{family}|{c.dob_high}"


def term_in_range(c: Criteria, term: str) -> bool:
    """A wildcard's prefix range also holds other birth dates; the term says which."""
    name, _, dob = term.rpartition("|")
    if c.family.endswith("*") and not name.startswith(normalise_name(c.family[:-1])):
        return False
    return c.dob_low <= dob <= c.dob_high


def _similar(a: str, b: str) -> float:
    return jellyfish.jaro_winkler_similarity(normalise_name(a), normalise_name(b))


def _wild(pattern: str, value: str, norm: Any) -> bool:
    if pattern.endswith("*"):
        return norm(value).startswith(norm(pattern[:-1]))
    return norm(value) == norm(pattern)


def score(c: Criteria, patient: Mapping[str, Any]) -> float | None:
    """How well a candidate matches (1.0 is every criterion exactly), or None for no match."""
    names = patient.get("name", [])
    families = [n.get("family", "") for n in names]
    givens = [g for n in names for g in n.get("given", [])]
    parts: list[float] = []
    # Family name.
    if c.exact:
        if c.family not in families:
            return None
        parts.append(1.0)
    elif c.fuzzy:
        best = max((_similar(c.family, f) for f in families), default=0.0)
        same_sound = any(soundex(f) == soundex(c.family) for f in families)
        if best < FUZZY_FLOOR and not same_sound:
            return None
        parts.append(best)
    else:
        if not any(_wild(c.family, f, normalise_name) for f in families):
            return None
        parts.append(1.0 if not c.family.endswith("*") else 0.9)
    # Birth date.
    dob = compact_date(patient.get("birthDate", ""))
    if not c.dob_low <= dob <= c.dob_high:
        return None
    parts.append(1.0)
    # Given names: each one asked for must be among the patient's.
    for wanted in c.given:
        if c.exact:
            ok = 1.0 if wanted in givens else 0.0
        elif c.fuzzy:
            ok = max((_similar(wanted, g) for g in givens), default=0.0)
            ok = ok if ok >= FUZZY_FLOOR else 0.0
        else:
            ok = 1.0 if any(_wild(wanted, g, normalise_name) for g in givens) else 0.0
        if ok == 0.0:
            return None
        parts.append(ok)
    if c.gender is not None:
        if patient.get("gender") != c.gender:
            return None
        parts.append(1.0)
    if c.postcode is not None:
        if not any(_wild(c.postcode, p, normalise_postcode) for p in postcodes(patient)):
            return None
        parts.append(1.0)
    if c.gp is not None:
        if c.gp.upper() not in gp_codes(patient):
            return None
        parts.append(1.0)
    return round(sum(parts) / len(parts), 4)


def rank(c: Criteria, patients: Sequence[Mapping[str, Any]]) -> list[tuple[float, dict]]:
    """Matches, best first (ties by NHS number, so the order is stable)."""
    scored = [(s, dict(p)) for p in patients if (s := score(c, p)) is not None]
    scored.sort(key=lambda sp: (-sp[0], sp[1].get("id", "")))
    return scored
