"""The byte form of the SCR's stored values: canonical JSON out, a JSON object (or nothing) in."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """One byte form per JSON value, so equal documents compare equal as bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_object(value: bytes) -> dict | None:
    """The JSON object `value` holds, or None when it holds anything else (or is not JSON)."""
    try:
        loaded = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    return loaded if isinstance(loaded, dict) else None
