"""Riak's legacy counters (pure): a PN-counter kept as the value of an allow_mult object.

Each vnode actor counts its own increments and decrements. An increment is
applied where it is coordinated: the vnode merges its local siblings' states,
adds the delta to its own actor's entry and writes the result over everything
it read. Concurrent increments coordinated elsewhere become siblings; a read
merges siblings entry by entry (the larger count wins, since each entry only
grows) and sums. An actor's entry only ever grows from that actor's own latest
copy, which is why actor ids are fresh per start (see Vnodes.actor).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgpack

from .dvv import DVVSet, VersionVector
from .object import Content, context, live_contents

CONTENT_TYPE = "application/riak_counter"
# What a client write carries to the coordinating vnode: a delta, not a state.
INCREMENT = "application/x-spinekv-counter-increment"

State = dict[str, tuple[int, int]]  # actor -> (increments, decrements)


class CounterError(ValueError):
    """A delta that is not an integer, or a stored value that is not a counter."""


def parse_delta(body: bytes) -> int:
    text = body.decode("ascii", errors="replace").strip()
    if not re.fullmatch(r"[+-]?\d{1,19}", text):
        raise CounterError(f"counter increment must be an integer, got {text[:40]!r}")
    return int(text)


def increment_op(delta: int, now_us: int) -> Content:
    return Content(str(delta).encode(), INCREMENT, now_us)


def _state(content: Content) -> State:
    if content.content_type != CONTENT_TYPE:
        return {}
    try:
        pairs = msgpack.unpackb(content.value, raw=False)
        return {str(actor): (int(p), int(n)) for actor, p, n in pairs}
    except (ValueError, TypeError, msgpack.UnpackException):
        raise CounterError("stored counter is corrupt") from None


def merge(states: Iterable[State]) -> State:
    out: State = {}
    for state in states:
        for actor, (p, n) in state.items():
            old = out.get(actor, (0, 0))
            out[actor] = (max(old[0], p), max(old[1], n))
    return out


def value_of(siblings: Iterable[Content]) -> int:
    """The counter's value over every live sibling."""
    return sum(p - n for p, n in merge(_state(c) for c in siblings).values())


def apply(local: DVVSet | None, op: Content, actor: str) -> tuple[Content, VersionVector]:
    """The content and context a vnode writes for increment `op` over its copy `local`."""
    siblings = live_contents(local) if local is not None else []
    state = merge(_state(c) for c in siblings)
    delta = int(op.value)
    p, n = state.get(actor, (0, 0))
    state[actor] = (p + delta, n) if delta >= 0 else (p, n - delta)
    packed = msgpack.packb(sorted([a, p, n] for a, (p, n) in state.items()), use_bin_type=True)
    written = Content(packed, CONTENT_TYPE, op.last_modified_us)
    return written, (context(local) if local is not None else {})
