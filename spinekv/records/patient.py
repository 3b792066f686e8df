"""Patients (pure): validation, 2i terms, the stored envelope, patches and the sibling merge rule.

A patient is stored as an envelope: the FHIR resource, a stamp per top-level field naming the
update that last set it, and the history of updates. Concurrent updates (a partition, or two
coordinators) come back as siblings, and `merge` folds them deterministically:

- a field only one side changed keeps that change;
- a field both sides changed concurrently (neither had seen the other's update) goes to the
  newer stamp, (time in µs, update id) compared in that order, and the losing value is kept in
  the history as a conflict entry, so nothing acknowledged is silently lost.

The version number (meta.versionId) counts the distinct updates in the history, so the merge of
two updates made from version n is version n + 2 on every node.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import jellyfish
import jsonpatch
import jsonpointer

from . import nhs
from .outcome import NHS_NUMBER_SYSTEM, RecordError

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
GENDERS = ("male", "female", "other", "unknown")
# Fields a client may send; the rest of a FHIR Patient is not kept by this store.
FIELDS = (
    "identifier",
    "name",
    "gender",
    "birthDate",
    "deceasedDateTime",
    "address",
    "telecom",
    "generalPractitioner",
    "multipleBirthInteger",
    "contact",
    "extension",
)
# Set by the server: a patch may not change them.
SERVER_FIELDS = ("resourceType", "id", "meta", "identifier")
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")
_ODS = re.compile(r"^[A-Z0-9]{3,8}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Envelope = dict[str, Any]


# ------------------------------------------------------------------ normalising


def normalise_name(text: str) -> str:
    """Upper-case ASCII letters, spaces, hyphens and apostrophes: how names are compared."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    kept = re.sub(r"[^A-Za-z '\-]", "", plain).upper()
    return " ".join(kept.split())


def normalise_postcode(text: str) -> str:
    return "".join(text.split()).upper()


def soundex(text: str) -> str:
    letters = re.sub(r"[^A-Z]", "", normalise_name(text))
    return jellyfish.soundex(letters) if letters else ""


def compact_date(iso: str) -> str:
    """YYYY-MM-DD -> YYYYMMDD (the order-preserving form kept in index terms)."""
    return iso.replace("-", "")


# ------------------------------------------------------------------ validation


def _fail(code: str, path: str, problem: str) -> RecordError:
    return RecordError(code, f"{path}: {problem}")


def _strings(value: Any, path: str, code: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(code, path, "must be a list of non-empty strings")
    return value


def _objects(value: Any, path: str, code: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _fail(code, path, "must be a list of objects")
    return value


def parse_date(text: Any, path: str, code: str, today: dt.date | None = None) -> dt.date:
    if not isinstance(text, str) or not _DATE.match(text):
        raise _fail(code, path, f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise _fail(code, path, f"{text!r} is not a real date") from None
    if today is not None and day > today:
        raise _fail(code, path, f"{text} is in the future")
    return day


def validate(resource: Any, today: dt.date, *, code: str = "INVALID_VALUE") -> dict:
    """The patient fields of a FHIR Patient, checked; RecordError says what is wrong and where.

    `code` is the Spine code for a wrong value (INVALID_VALUE on create, INVALID_UPDATE after a
    patch); a missing required value is MISSING_VALUE on create and `code` otherwise.
    """
    missing = "MISSING_VALUE" if code == "INVALID_VALUE" else code
    if not isinstance(resource, dict):
        raise RecordError(code, "the body must be a FHIR Patient (a JSON object)")
    if resource.get("resourceType") != "Patient":
        raise _fail(code, "resourceType", "must be 'Patient'")
    unknown = sorted(set(resource) - set(FIELDS) - {"resourceType", "id", "meta"})
    if unknown:
        raise _fail(code, unknown[0], f"not a Patient field this API keeps (keeps: {FIELDS})")
    for name in ("name", "gender", "birthDate"):
        if name not in resource:
            raise _fail(missing, name, "is required")
    names = _objects(resource["name"], "name", code)
    if not names:
        raise _fail(missing, "name", "needs at least one name")
    for i, entry in enumerate(names):
        family = entry.get("family")
        if not isinstance(family, str) or not normalise_name(family):
            raise _fail(missing if family is None else code, f"name[{i}].family", "is required")
        if "given" in entry:
            _strings(entry["given"], f"name[{i}].given", code)
    if resource["gender"] not in GENDERS:
        raise _fail(code, "gender", f"{resource['gender']!r} is not one of {GENDERS}")
    parse_date(resource["birthDate"], "birthDate", code, today)
    for i, address in enumerate(_objects(resource.get("address", []), "address", code)):
        if "line" in address:
            _strings(address["line"], f"address[{i}].line", code)
        postcode = address.get("postalCode")
        if postcode is not None and (
            not isinstance(postcode, str) or not _POSTCODE.match(postcode.strip().upper())
        ):
            raise _fail(code, f"address[{i}].postalCode", f"{postcode!r} is not a UK postcode")
    for i, telecom in enumerate(_objects(resource.get("telecom", []), "telecom", code)):
        if not isinstance(telecom.get("system"), str) or not isinstance(telecom.get("value"), str):
            raise _fail(code, f"telecom[{i}]", "needs a system and a value")
    for i, gp in enumerate(_objects(resource.get("generalPractitioner", []), "gp", code)):
        ident = gp.get("identifier")
        value = ident.get("value") if isinstance(ident, dict) else None
        if not isinstance(value, str) or not _ODS.match(value.upper()):
            raise _fail(code, f"generalPractitioner[{i}].identifier.value", "must be an ODS code")
    # An identifier's NHS number is not checked here: a create keeps it only when it is valid
    # and free, and allocates a number otherwise.
    _objects(resource.get("identifier", []), "identifier", code)
    return {k: resource[k] for k in FIELDS if k in resource}


def requested_number(resource: dict) -> str | None:
    """The valid NHS number a create asks to keep, if it carries one."""
    for ident in resource.get("identifier", []):
        if ident.get("system") == NHS_NUMBER_SYSTEM and nhs.is_valid(ident.get("value")):
            return ident["value"]
    return None


# ------------------------------------------------------------------ 2i terms


def usual_name(resource: Mapping[str, Any]) -> dict:
    names = resource.get("name") or [{}]
    return next((n for n in names if n.get("use") == "usual"), names[0])


def postcodes(resource: Mapping[str, Any]) -> list[str]:
    return [
        normalise_postcode(a["postalCode"])
        for a in resource.get("address", [])
        if isinstance(a.get("postalCode"), str)
    ]


def gp_codes(resource: Mapping[str, Any]) -> list[str]:
    return [
        gp["identifier"]["value"].upper()
        for gp in resource.get("generalPractitioner", [])
        if isinstance(gp.get("identifier"), dict)
    ]


def index_terms(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The 2i entries searches use: every name's family (exact and Soundex) with the birth date."""
    dob = compact_date(resource["birthDate"])
    terms: set[tuple[str, str]] = set()
    for name in resource.get("name", []):
        family = normalise_name(name.get("family", ""))
        if family:
            terms.add(("family_dob_bin", f"{family}|{dob}"))
            terms.add(("soundex_dob_bin", f"{soundex(family)}|{dob}"))
    terms.update(("postcode_bin", p) for p in postcodes(resource))
    terms.update(("gp_bin", g) for g in gp_codes(resource))
    return sorted(terms)


# ------------------------------------------------------------------ the envelope


def _entry(kind: str, at_us: int, by: str, **more: Any) -> dict:
    return {"kind": kind, "at": at_us, "by": by, **more}


def create(fields: dict, number: str, *, update_id: str, at_us: int, by: str) -> Envelope:
    resource = {"resourceType": "Patient", "id": number, **copy.deepcopy(fields)}
    idents = [i for i in resource.get("identifier", []) if i.get("system") != NHS_NUMBER_SYSTEM]
    resource["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": number}, *idents]
    stamp = [at_us, update_id]
    return {
        "resource": resource,
        "stamps": {f: stamp for f in FIELDS if f in resource},
        "history": {update_id: _entry("create", at_us, by, fields=sorted(resource))},
    }


def version(env: Envelope) -> int:
    return sum(1 for e in env["history"].values() if e["kind"] in ("create", "update"))


def created_by(env: Envelope, update_id: str) -> bool:
    entry = env["history"].get(update_id)
    return entry is not None and entry["kind"] == "create"


def to_fhir(env: Envelope) -> dict:
    """The resource as answered: meta.versionId counts the updates applied."""
    resource = copy.deepcopy(env["resource"])
    resource["meta"] = {"versionId": str(version(env))}
    return resource


def apply_patch(
    env: Envelope,
    patches: Any,
    *,
    update_id: str,
    at_us: int,
    by: str,
    today: dt.date,
) -> Envelope:
    """The envelope after an RFC 6902 patch, applied all or nothing; RecordError if refused."""
    if not isinstance(patches, list) or not patches:
        raise RecordError("INVALID_UPDATE", "patches: must be a non-empty list of operations")
    for i, op in enumerate(patches):
        path = op.get("path") if isinstance(op, dict) else None
        if not isinstance(path, str):
            raise RecordError("INVALID_UPDATE", f"patches[{i}]: each operation needs a path")
        if op.get("op") == "test":  # a guard reads, it changes nothing: any path may be tested
            continue
        for pointer in (path, op.get("from")):
            if isinstance(pointer, str) and _top(pointer) in SERVER_FIELDS:
                raise RecordError("FORBIDDEN_UPDATE", f"patches[{i}]: {pointer} cannot be changed")
    before = env["resource"]
    try:
        after = jsonpatch.JsonPatch(patches).apply(copy.deepcopy(before))
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise RecordError("INVALID_UPDATE", f"patches: {exc}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise RecordError("INVALID_UPDATE", f"patches: malformed operation ({exc})") from None
    validate(after, today, code="INVALID_UPDATE")
    for f in SERVER_FIELDS:  # e.g. a replace of the whole document
        if after.get(f) != before.get(f):
            raise RecordError("FORBIDDEN_UPDATE", f"patches: {f} cannot be changed")
    changed = sorted(f for f in FIELDS if before.get(f) != after.get(f))
    stamps = dict(env["stamps"])
    for f in changed:
        stamps[f] = [at_us, update_id]
    history = dict(env["history"])
    history[update_id] = _entry("update", at_us, by, fields=changed)
    return {"resource": after, "stamps": stamps, "history": history}


def _top(pointer: str) -> str:
    """The top-level member a JSON pointer names ("" for the whole document)."""
    return pointer.split("/")[1] if pointer.startswith("/") else ""


# ------------------------------------------------------------------ the merge rule


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _merge_two(a: Envelope, b: Envelope) -> Envelope:
    history = dict(a["history"])
    for uid, entry in b["history"].items():
        # The same update on both sides (a retried request applied twice): keep one copy.
        if uid not in history or _canonical(entry) < _canonical(history[uid]):
            history[uid] = entry
    resource = copy.deepcopy(a["resource"])
    stamps: dict[str, list] = {}
    for f in sorted(set(a["stamps"]) | set(b["stamps"])):
        sa, sb = a["stamps"].get(f), b["stamps"].get(f)
        if sb is None or sa == sb or sb[1] in a["history"]:
            winner, loser = "a", None  # a has b's write to f, or a later one
        elif sa is None or sa[1] in b["history"]:
            winner, loser = "b", None
        else:  # concurrent writes to f: the newer stamp wins, the other is kept in history
            winner = "a" if sa > sb else "b"
            loser = sb if winner == "a" else sa
        won = a if winner == "a" else b
        stamps[f] = won["stamps"][f]
        if f in won["resource"]:
            resource[f] = copy.deepcopy(won["resource"][f])
        else:
            resource.pop(f, None)
        if loser is not None:
            lost = b if winner == "a" else a
            if lost["resource"].get(f) != won["resource"].get(f):
                history[f"conflict:{f}:{loser[1]}"] = _entry(
                    "conflict",
                    stamps[f][0],
                    "merge",
                    field=f,
                    kept=stamps[f][1],
                    lost=loser[1],
                    value=lost["resource"].get(f),
                )
    return {"resource": resource, "stamps": stamps, "history": history}


def merge(envelopes: Iterable[Envelope]) -> Envelope:
    """One envelope from concurrent siblings; the same whatever order they arrive in."""
    ordered = sorted(envelopes, key=_canonical)
    if not ordered:
        raise ValueError("nothing to merge")
    merged = ordered[0]
    for other in ordered[1:]:
        merged = _merge_two(merged, other)
    return merged


def encode(env: Envelope) -> bytes:
    return _canonical(env).encode()


def decode(data: bytes) -> Envelope:
    return json.loads(data)
