"""Riak's request parameters (quorums, flags, timeout) read into coordinator options."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..node.coordinator import GetOptions, PutOptions
from ..props import QUORUM_NAMES, BucketProps
from ..quorum import QuorumValueError, resolve
from .riakheaders import RequestError, shown

# The longest timeout Erlang's timers (and so Riak) take, in milliseconds.
MAX_TIMEOUT_MS = 2**32 - 1

_QUORUM_TEXT = re.compile(r"[0-9]{1,9}|one|quorum|all|default")
_TIMEOUT_TEXT = re.compile(r"[0-9]{1,10}")
_SYNC_ON_WRITE = ("default", "backend", "one", "all")


def bool_param(
    query: Mapping[str, str], name: str, default: bool, *, allow_default: bool = True
) -> bool:
    """true / false, or `default` (the bucket's value) where Riak takes it."""
    raw = query.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    if value == "default" and allow_default:
        return default
    raise RequestError(f"{name} query parameter must be true or false, not {shown(raw)}")


def check_params(query: Mapping[str, str], *, write: bool) -> None:
    """Refuse any parameter Riak reads that is malformed, before the bucket type is looked up."""
    timeout(query, default_ms=1)  # for its checks; the value is read with the options
    for name in QUORUM_NAMES:
        raw = query.get(name)
        if raw is not None and not _QUORUM_TEXT.fullmatch(raw.strip().lower()):
            raise RequestError(
                f"{name}={shown(raw)} is not a number or one of one, quorum, all, default"
            )
    raw = query.get("sync_on_write")
    if raw is not None and raw.strip().lower() not in _SYNC_ON_WRITE:
        raise RequestError(
            f"sync_on_write query parameter must be one of {', '.join(_SYNC_ON_WRITE)}, "
            f"not {shown(raw)}"
        )
    for name in ("notfound_ok", "basic_quorum"):
        bool_param(query, name, False)
    # asis (store the client's clock unchanged) is Riak's replication hook; every spinekv
    # write is a new event, so a write asking for it is refused rather than misapplied.
    if bool_param(query, "asis", False) and write:
        raise RequestError("asis=true is not supported: every write is applied as a new version")


def quorum(query: Mapping[str, str], name: str, props: BucketProps) -> int:
    try:
        return resolve(name, query.get(name, props.quorum(name)), props.n_val, props.quorum(name))
    except QuorumValueError as exc:
        raise RequestError(str(exc)) from None


def timeout(query: Mapping[str, str], default_ms: int) -> float:
    raw = query.get("timeout")
    if raw is None:
        return default_ms / 1000
    if not _TIMEOUT_TEXT.fullmatch(raw) or not 0 < int(raw) <= MAX_TIMEOUT_MS:
        raise RequestError(
            f"Bad timeout value {shown(raw)}: expected a positive number of milliseconds "
            f"(at most {MAX_TIMEOUT_MS})"
        )
    return int(raw) / 1000


def get_options(query: Mapping[str, str], props: BucketProps, default_ms: int) -> GetOptions:
    return GetOptions(
        r=quorum(query, "r", props),
        pr=quorum(query, "pr", props),
        notfound_ok=bool_param(query, "notfound_ok", props.notfound_ok),
        basic_quorum=bool_param(query, "basic_quorum", props.basic_quorum),
        timeout=timeout(query, default_ms),
    )


def put_options(query: Mapping[str, str], props: BucketProps, default_ms: int) -> PutOptions:
    w = quorum(query, "w", props)
    dw = quorum(query, "dw", props)
    return PutOptions(
        w=max(w, dw),
        dw=dw,
        pw=quorum(query, "pw", props),
        node_confirms=quorum(query, "node_confirms", props),
        timeout=timeout(query, default_ms),
    )
