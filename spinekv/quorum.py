"""Quorum decisions for GET, PUT and DELETE, free of I/O (riak_kv_get_core / put_core in Python).

The options of a request come from its bucket's props and what the client asked
for (get_options, put_options, delete_options). The coordinator feeds each
replica's reply into a core and asks it whether it has enough to answer, what
the answer is, and, for GETs, which replicas to repair once every reply is in.
Nothing here reads a clock or touches the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import object as riak_object
from .dvv import DVVSet
from .ring import PrefEntry

if TYPE_CHECKING:
    from .props import BucketProps

# A request's quorum values by name (r, w, dw, rw, pr, pw, node_confirms): a count, or
# one of "one", "quorum", "all", "default". A name left out takes the bucket's value.
Requested = Mapping[str, str | int]

# ---------------------------------------------------------------- quorum values


class QuorumValueError(ValueError):
    """A quorum parameter that is not a number or symbol, or out of range for n_val."""


def resolve(name: str, spec: int | str, n_val: int, default: int | str | None = None) -> int:
    """Turn r/w/dw/rw/pr/pw as given ("one", "quorum", "all", "default", n) into a count."""
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "default":
            if default is None or default == "default":
                raise QuorumValueError(f"{name}=default has no bucket default to fall back on")
            return resolve(name, default, n_val)
        if text == "one":
            value = 1
        elif text == "quorum":
            value = n_val // 2 + 1
        elif text == "all":
            value = n_val
        elif text.isdigit():
            value = int(text)
        else:
            raise QuorumValueError(
                f"{name}={spec!r} is not a number or one of one, quorum, all, default"
            )
    else:
        value = spec
    lowest = 1 if name in ("r", "w", "rw") else 0
    if not lowest <= value <= n_val:
        raise QuorumValueError(f"{name}={value} is out of range: must be {lowest}..{n_val} (n_val)")
    return value


# ---------------------------------------------------------------- request options


@dataclass(frozen=True, slots=True)
class GetOptions:
    r: int
    pr: int = 0
    notfound_ok: bool = True
    basic_quorum: bool = False
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class PutOptions:
    w: int
    dw: int = 0
    pw: int = 0
    node_confirms: int = 0
    timeout: float = 10.0


def _count(props: BucketProps, requested: Requested, name: str) -> int:
    bucket_value = props.quorum(name)
    return resolve(name, requested.get(name, bucket_value), props.n_val, bucket_value)


def get_options(
    props: BucketProps,
    requested: Requested,
    timeout: float,
    *,
    notfound_ok: bool | None = None,
    basic_quorum: bool | None = None,
) -> GetOptions:
    """A read's options: the requested r and pr, else the bucket's; None flags take the bucket's."""
    return GetOptions(
        r=_count(props, requested, "r"),
        pr=_count(props, requested, "pr"),
        notfound_ok=props.notfound_ok if notfound_ok is None else notfound_ok,
        basic_quorum=props.basic_quorum if basic_quorum is None else basic_quorum,
        timeout=timeout,
    )


def put_options(props: BucketProps, requested: Requested, timeout: float) -> PutOptions:
    """A write's options. A durable ack is an ack too, so w is never below dw (as in Riak)."""
    w = _count(props, requested, "w")
    dw = _count(props, requested, "dw")
    return PutOptions(
        w=max(w, dw),
        dw=dw,
        pw=_count(props, requested, "pw"),
        node_confirms=_count(props, requested, "node_confirms"),
        timeout=timeout,
    )


def delete_options(
    props: BucketProps,
    requested: Requested,
    timeout: float,
    *,
    notfound_ok: bool | None = None,
    basic_quorum: bool | None = None,
) -> tuple[GetOptions, PutOptions]:
    """The read and the tombstone write of a delete, as riak_kv_delete sets them from rw.

    rw stands in for r and for w where the client did not give them; the
    tombstone write still waits for dw durable acks.
    """
    rw = _count(props, requested, "rw")
    read = get_options(
        props, {"r": rw, **requested}, timeout, notfound_ok=notfound_ok, basic_quorum=basic_quorum
    )
    write = put_options(props, requested, timeout)
    if "w" not in requested:
        write = replace(write, w=max(rw, write.dw))
    return read, write


# ---------------------------------------------------------------- GET


@dataclass(frozen=True)
class Found:
    obj: DVVSet


@dataclass(frozen=True)
class NotFound:
    # The merged tombstone, when the replicas hold one: its context lets a client
    # write over the delete, and HTTP reports it with X-Riak-Deleted.
    obj: DVVSet | None = None


@dataclass(frozen=True)
class Failed:
    reason: str


Reply = Found | NotFound | Failed


@dataclass
class GetCore:
    """Counts replies for one GET against r, pr and notfound_ok, and decides the answer."""

    n: int  # replicas asked
    r: int
    pr: int = 0
    notfound_ok: bool = True
    basic_quorum: bool = False
    allow_mult: bool = True
    replies: dict[int, Reply] = field(default_factory=dict)
    primary: dict[int, bool] = field(default_factory=dict)

    def expect(self, index: int, is_primary: bool) -> None:
        """Declare a replica that was asked, before its reply arrives."""
        self.primary[index] = is_primary

    def add(self, index: int, reply: Reply) -> None:
        self.replies[index] = reply

    def outcome(self) -> Reply | None:
        """Found(merged), NotFound() or Failed(reason) once decided, else None."""
        found = notfound = failed = primary_ok = 0
        for i, reply in self.replies.items():
            if isinstance(reply, Failed):
                failed += 1
                continue
            if isinstance(reply, Found):
                found += 1
            else:
                notfound += 1
            if self.primary.get(i) and (isinstance(reply, Found) or self.notfound_ok):
                primary_ok += 1
        outstanding = self.n - len(self.replies)
        positive = found + (notfound if self.notfound_ok else 0)
        if positive >= self.r and primary_ok >= self.pr:
            merged = self.merged()
            if merged is None:
                return NotFound()
            if riak_object.is_tombstone(merged):
                return NotFound(merged)
            return Found(merged)
        pending_primaries = sum(1 for i, p in self.primary.items() if p and i not in self.replies)
        # notfound_ok=false: notfounds cannot make r, but when nothing failed they are an answer
        settled = positive + outstanding < self.r or (
            self.basic_quorum and notfound >= self.n // 2 + 1
        )
        if found == 0 and failed == 0 and not self.notfound_ok and settled:
            return NotFound()
        if positive + outstanding < self.r:
            return Failed(
                f"r={self.r} unsatisfied: {positive} of {self.n} replicas answered" + self._why()
            )
        if primary_ok + pending_primaries < self.pr:
            return Failed(
                f"pr={self.pr} unsatisfied: {primary_ok} primaries answered, "
                f"{pending_primaries} outstanding" + self._why()
            )
        return None

    def _why(self) -> str:
        reasons = [r.reason for r in self.replies.values() if isinstance(r, Failed)]
        return f" ({'; '.join(reasons)})" if reasons else ""

    def merged(self) -> DVVSet | None:
        """The merge of every object found so far, or None if none was."""
        objs = [r.obj for r in self.replies.values() if isinstance(r, Found)]
        return riak_object.merge_all(objs, allow_mult=self.allow_mult) if objs else None

    def repair_targets(self, merged: DVVSet) -> list[int]:
        """Replicas whose copy is missing or behind `merged` (read repair, once all replied)."""
        return [
            i
            for i, reply in sorted(self.replies.items())
            if isinstance(reply, NotFound) or (isinstance(reply, Found) and reply.obj != merged)
        ]


# ---------------------------------------------------------------- PUT


@dataclass(frozen=True, slots=True)
class CoordinateHere:
    """This node coordinates the write on its vnode `partition`."""

    partition: int


@dataclass(frozen=True, slots=True)
class Forward:
    """Ask these replicas, in order, to coordinate; the first that answers decides."""

    replicas: tuple[PrefEntry, ...]


def route_put(
    prefs: Sequence[PrefEntry], me: str, *, forwarded: bool
) -> CoordinateHere | Forward | Failed:
    """Who coordinates a PUT: a local replica if there is one, else a forward.

    A write is applied as a new event on exactly one replica, which then sends it
    to the others; a node with no replica forwards it. A forwarded request that
    lands on a node without a replica (the ring moved meanwhile) is refused with
    a reason starting "forward:", so the sender tries the next replica, never
    forwarding twice.
    """
    local = next((e for e in prefs if e.node == me), None)
    if local is not None:
        return CoordinateHere(local.partition)
    if forwarded:
        return Failed(f"forward: {me} holds no replica of this key")
    return Forward(tuple(prefs))


def route_after_forwards_failed(
    prefs: Sequence[PrefEntry], me: str, w: int, reasons: Sequence[str]
) -> CoordinateHere | Failed:
    """Every forward failed, so those replicas are now marked down and the preference
    list (`prefs`, recomputed) may hold a fallback here: coordinate on it, or fail."""
    route = route_put(prefs, me, forwarded=True)
    if isinstance(route, CoordinateHere):
        return route
    return Failed(
        f"w={w} unsatisfied: no replica could coordinate the write (" + "; ".join(reasons) + ")"
    )


@dataclass
class PutCore:
    """Counts acknowledgements for one PUT against w, dw, pw and node_confirms.

    node_confirms counts distinct physical nodes: two fallback vnodes on one
    machine are two acks for w but one for node_confirms (the safety the NHS
    added to Riak after fallbacks on one host gave false confidence).
    """

    replicas: list[tuple[str, bool]]  # (node, is_primary) of each preference-list entry
    w: int
    dw: int = 0
    pw: int = 0
    node_confirms: int = 0
    acked: dict[int, bool] = field(default_factory=dict)  # entry -> durable
    failed: dict[int, str] = field(default_factory=dict)

    def add_ack(self, index: int, durable: bool) -> None:
        self.acked[index] = durable

    def add_failure(self, index: int, reason: str) -> None:
        self.failed[index] = reason

    def _pending(self) -> list[int]:
        return [
            i for i in range(len(self.replicas)) if i not in self.acked and i not in self.failed
        ]

    def _tallies(self, indices: list[int]) -> tuple[int, int, int, int]:
        """(acks, durable acks, primary acks, distinct nodes) if `indices` all acked."""
        durable = sum(self.acked.get(i, True) for i in indices)
        primaries = sum(self.replicas[i][1] for i in indices)
        nodes = len({self.replicas[i][0] for i in indices})
        return len(indices), durable, primaries, nodes

    def succeeded(self) -> bool:
        acks, durable, primaries, nodes = self._tallies(list(self.acked))
        return (
            acks >= self.w
            and durable >= self.dw
            and primaries >= self.pw
            and nodes >= self.node_confirms
        )

    def failure(self) -> str | None:
        """Why the write can no longer succeed, or None while it still can."""
        if self.succeeded():
            return None
        acks, durable, primaries, nodes = self._tallies(list(self.acked))
        best = self._tallies(list(self.acked) + self._pending())
        why = "; ".join(self.failed[i] for i in sorted(self.failed))
        suffix = f" ({why})" if why else ""
        n = len(self.replicas)
        if best[0] < self.w:
            return f"w={self.w} unsatisfied: {acks} of {n} replicas acknowledged{suffix}"
        if best[1] < self.dw:
            return f"dw={self.dw} unsatisfied: {durable} durable acknowledgements{suffix}"
        if best[2] < self.pw:
            return (
                f"pw={self.pw} unsatisfied: {primaries} primary acknowledgements, "
                f"{best[2] - primaries} primaries outstanding{suffix}"
            )
        if best[3] < self.node_confirms:
            return (
                f"node_confirms={self.node_confirms} unsatisfied: acknowledgements from "
                f"{nodes} distinct node(s), at most {best[3]} possible{suffix}"
            )
        return None

    def enough(self) -> bool:
        return self.succeeded() or self.failure() is not None
