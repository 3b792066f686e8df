"""SCR ids: the canonical form of an SCR id, and the stable ids derived from it."""

from __future__ import annotations

import uuid
from typing import Any

# Ids derived from an SCR id (the DocumentReference, the entries build_document makes) are
# name-based UUIDs, so the same SCR always gets the same ids.
_ID_NAMESPACE = uuid.UUID("5d0a3f0e-6c1b-4a57-9a43-2f8de1c9b7a1")


def derived_id(*parts: str) -> str:
    """A stable UUID (upper case, as the SCR API writes them) named by `parts`."""
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(parts))).upper()


def canonical_scr_id(text: Any) -> str | None:
    """The SCR id in canonical form (upper-case hyphenated UUID), or None if `text` is not one."""
    if not isinstance(text, str) or len(text) != 36 or not text.isascii():
        return None
    try:
        return str(uuid.UUID(text)).upper()
    except ValueError:
        return None
