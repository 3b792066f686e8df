"""What the pure SCR tests share: a patient, an SCR id and the upload Bundle built for them."""

from __future__ import annotations

from spinekv.records.scr.builder import build_document

NHS = "9000000009"
SCR_ID = "BF4180FD-C403-4EF7-A4AB-E07303AF5477"
WHEN = "2024-03-01T10:00:00+00:00"


def document(**kw) -> dict:
    args = {
        "allergies": [("91936005", "Allergy to penicillin")],
        "medications": [("322236009", "Paracetamol 500mg tablets")],
        "author": "Dr Jane Jones",
        "when": WHEN,
    }
    args.update(kw)
    return build_document(NHS, SCR_ID, **args)


def composition(doc: dict) -> dict:
    return doc["entry"][0]["resource"]
