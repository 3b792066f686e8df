"""A patient's SCR state (bucket `scrstate`): the current SCR and the consent decision, a join.

The state is {current: {id, at_us}, permission: {code, at_us, by}}. Concurrent writes leave
siblings; `merge_state` keeps per field the greatest (at_us, ...) tuple, so merging is
commutative, associative and idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .codec import canonical_json, load_object
from .codes import PERMISSIONS


def empty_state() -> dict:
    """No current SCR and no stated preference."""
    return {"current": None, "permission": None}


def _current_key(current: dict) -> tuple:
    return (current["at_us"], current["id"])


def _permission_key(permission: dict) -> tuple:
    return (permission["at_us"], permission["by"], permission["code"])


def _well_formed_current(value: Any) -> dict | None:
    if (
        isinstance(value, dict)
        and isinstance(value.get("id"), str)
        and isinstance(value.get("at_us"), int)
    ):
        return {"id": value["id"], "at_us": value["at_us"]}
    return None


def _well_formed_permission(value: Any) -> dict | None:
    if (
        isinstance(value, dict)
        and value.get("code") in PERMISSIONS
        and isinstance(value.get("at_us"), int)
        and isinstance(value.get("by"), str)
    ):
        return {"code": value["code"], "at_us": value["at_us"], "by": value["by"]}
    return None


def decode_state(value: bytes) -> dict:
    """A state sibling; fields that are not well formed read as unset (we only write good ones).

    ValueError when the value is not a JSON object at all: that is no state, and reading it as
    "no consent recorded" would fail open.
    """
    raw = load_object(value)
    if raw is None:
        raise ValueError("not a JSON object")
    return {
        "current": _well_formed_current(raw.get("current")),
        "permission": _well_formed_permission(raw.get("permission")),
    }


def encode_state(state: dict) -> bytes:
    """The value kept under bucket `scrstate`, key = NHS number."""
    return canonical_json(state)


def merge_state(siblings: Iterable[dict]) -> dict:
    """Per field the newest value by (at_us, id) / (at_us, by, code): a deterministic join."""
    merged = empty_state()
    for state in siblings:
        current, permission = state.get("current"), state.get("permission")
        if current is not None and (
            merged["current"] is None or _current_key(current) > _current_key(merged["current"])
        ):
            merged["current"] = current
        if permission is not None and (
            merged["permission"] is None
            or _permission_key(permission) > _permission_key(merged["permission"])
        ):
            merged["permission"] = permission
    return merged


def with_current(state: dict, scr_id: str, at_us: int) -> dict:
    """The state with this SCR as current, unless a newer one already is."""
    return merge_state([state, {"current": {"id": scr_id, "at_us": at_us}, "permission": None}])


def with_permission(state: dict, code: str, at_us: int, by: str) -> dict:
    """The state with this consent decision, unless a newer one is recorded."""
    permission = {"code": code, "at_us": at_us, "by": by}
    return merge_state([state, {"current": None, "permission": permission}])


def permission_code(state: dict) -> str | None:
    """Yes, No or Ask; None when the patient never stated a preference."""
    return state["permission"]["code"] if state.get("permission") else None
