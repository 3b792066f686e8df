"""The stored SCR (bucket `scr`, key = SCR id): its codec, and which of racing siblings wins."""

from __future__ import annotations

from collections.abc import Iterable

from .codec import canonical_json, load_object
from .upload import Upload


def encode_stored(upload: Upload, stored_us: int) -> bytes:
    """The value kept under bucket `scr`, key = SCR id."""
    return canonical_json(
        {
            "scr_id": upload.scr_id,
            "nhs": upload.nhs,
            "date": upload.date,
            "stored_us": stored_us,
            "document": upload.document,
        }
    )


def decode_stored(value: bytes) -> dict | None:
    """A stored SCR, or None when the bytes are not one (never written by this module)."""
    stored = load_object(value)
    if (
        stored is None
        or not isinstance(stored.get("scr_id"), str)
        or not isinstance(stored.get("nhs"), str)
        or not isinstance(stored.get("stored_us"), int)
        or not isinstance(stored.get("document"), dict)
    ):
        return None
    return stored


def pick_stored(values: Iterable[bytes]) -> dict:
    """One stored SCR among siblings (two uploads of one id raced): the earliest stored wins,
    ties broken by bytes, so every node picks the same one. ValueError when a sibling is not a
    stored SCR: what was written there is unknown, so no sibling is trusted."""
    decoded = []
    for value in values:
        stored = decode_stored(value)
        if stored is None:
            raise ValueError("not a stored SCR")
        decoded.append((stored["stored_us"], value, stored))
    if not decoded:
        raise ValueError("no value")
    return min(decoded, key=lambda t: (t[0], t[1]))[2]


def same_upload(stored: dict, upload: Upload) -> bool:
    """Whether a stored SCR is this upload again (same patient and the same document)."""
    return stored["nhs"] == upload.nhs and canonical_json(stored["document"]) == canonical_json(
        upload.document
    )
