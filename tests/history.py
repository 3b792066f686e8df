"""Jepsen-style operation histories and the checkers that judge them (set, register)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INVOKE, OK, FAIL, INFO = "invoke", "ok", "fail", "info"


@dataclass(frozen=True)
class Op:
    """One event: a client invoked an operation, or the operation completed.

    `fail` means it certainly did not take effect; `info` means nobody knows (a timeout,
    or a write refused after some replica may already have stored it).
    """

    index: int
    process: int
    type: str
    f: str
    value: Any
    time: float
    error: str | None = None


@dataclass
class History:
    """An append-only list of operations, timed by `clock` (virtual or monotonic)."""

    clock: Callable[[], float]
    ops: list[Op] = field(default_factory=list)

    def _append(self, process: int, type_: str, f: str, value: Any, error: str | None) -> Op:
        op = Op(len(self.ops), process, type_, f, value, self.clock(), error)
        self.ops.append(op)
        return op

    def invoke(self, process: int, f: str, value: Any = None) -> Op:
        return self._append(process, INVOKE, f, value, None)

    def ok(self, invoked: Op, value: Any = None) -> Op:
        """Completes `invoked`; `value` defaults to what was invoked (the write's value)."""
        value = invoked.value if value is None else value
        return self._append(invoked.process, OK, invoked.f, value, None)

    def fail(self, invoked: Op, error: str) -> Op:
        return self._append(invoked.process, FAIL, invoked.f, invoked.value, error)

    def info(self, invoked: Op, error: str) -> Op:
        return self._append(invoked.process, INFO, invoked.f, invoked.value, error)

    def finish(self, invoked: Op, type_: str, error: str | None = None) -> Op:
        """Complete `invoked` as ok, fail or info (the type a client call reported)."""
        if type_ == OK:
            return self.ok(invoked)
        if type_ == FAIL:
            return self.fail(invoked, error or "")
        if type_ == INFO:
            return self.info(invoked, error or "")
        raise ValueError(f"not a completion type: {type_!r}")

    def completions(self, f: str) -> list[tuple[Op, Op | None]]:
        """(invoke, completion or None if it never completed) for every `f` operation."""
        open_: dict[int, int] = {}
        pairs: list[list[Any]] = []
        for op in self.ops:
            if op.f != f:
                continue
            if op.type == INVOKE:
                open_[op.process] = len(pairs)
                pairs.append([op, None])
            elif op.process in open_:
                pairs[open_.pop(op.process)][1] = op
        return [(a, b) for a, b in pairs]

    def lines(self) -> list[str]:
        return [
            json.dumps(
                {
                    "index": op.index,
                    "process": op.process,
                    "type": op.type,
                    "f": op.f,
                    "value": _jsonable(op.value),
                    "time": round(op.time, 6),
                    **({"error": op.error} if op.error else {}),
                },
                sort_keys=True,
            )
            for op in self.ops
        ]

    def digest(self) -> str:
        """A hash of the whole history: equal digests mean the same run, event for event."""
        h = hashlib.blake2b(digest_size=16)
        for line in self.lines():
            h.update(line.encode())
            h.update(b"\n")
        return h.hexdigest()

    def dump(self, path: Path) -> None:
        path.write_text("".join(line + "\n" for line in self.lines()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------- set


@dataclass(frozen=True)
class SetResult:
    attempted: int
    acknowledged: int
    lost: frozenset
    unexpected: frozenset
    recovered: int  # adds not acknowledged (info) that the final read holds anyway
    read: int

    @property
    def valid(self) -> bool:
        return not self.lost and not self.unexpected

    def summary(self) -> str:
        verdict = "valid" if self.valid else "INVALID"
        return (
            f"set: {verdict}; {self.attempted} attempted, {self.acknowledged} acknowledged,"
            f" {self.read} read, {len(self.lost)} lost {sorted(self.lost, key=repr)[:10]},"
            f" {len(self.unexpected)} unexpected {sorted(self.unexpected, key=repr)[:10]},"
            f" {self.recovered} indeterminate adds present"
        )


def check_set(history: History) -> SetResult:
    """Jepsen's set checker: `add` ops of unique elements, then a final `read` after heal.

    lost = acknowledged adds missing from the final read; unexpected = read but never
    attempted. The last successful read is the final one; without one nothing can be
    judged, which is an error in the test, not a verdict.
    """
    reads = [done for _, done in history.completions("read") if done and done.type == OK]
    if not reads:
        raise ValueError("the history has no successful final read")
    final = frozenset(max(reads, key=lambda op: op.index).value)  # the last to complete
    adds = history.completions("add")
    attempted = {inv.value for inv, _ in adds}
    acked = {inv.value for inv, done in adds if done is not None and done.type == OK}
    maybe = {inv.value for inv, done in adds if done is None or done.type == INFO}
    return SetResult(
        attempted=len(attempted),
        acknowledged=len(acked),
        lost=frozenset(acked - final),
        unexpected=frozenset(final - attempted),
        recovered=len((maybe - acked) & final),
        read=len(final),
    )


# ---------------------------------------------------------------- register with siblings


@dataclass(frozen=True)
class RegisterResult:
    acknowledged: int
    lost: frozenset  # (key, value) pairs
    unexpected: frozenset
    keys: int

    @property
    def valid(self) -> bool:
        return not self.lost and not self.unexpected

    def summary(self) -> str:
        verdict = "valid" if self.valid else "INVALID"
        return (
            f"register: {verdict}; {self.keys} keys, {self.acknowledged} acknowledged writes,"
            f" {len(self.lost)} lost {sorted(self.lost)[:10]},"
            f" {len(self.unexpected)} unexpected {sorted(self.unexpected)[:10]}"
        )


def check_register(history: History) -> RegisterResult:
    """Causal registers: `write` ops of {"key", "value", "saw"}, final `read`s of {"key", "values"}.

    Each write stores a unique value under the causal context of a read, so it supersedes
    exactly the values that read returned (`saw`). After heal, each acknowledged write
    must be accounted for: its value is in the key's final siblings, or a write that saw
    it is accounted for (so the overwrite chain ends in what the store holds now). A
    write that saw it but was not acknowledged counts only if its own effect shows, since
    only then is it known to have happened. Unexpected: final values never written, or
    written by a write that failed (certainly not applied).

    A delete is a write with "delete": true. Its tombstone does not show in a read, so
    a delete that may have happened (ok or info) accounts for the values it saw.
    """
    final: dict[Any, frozenset] = {}
    for _, done in history.completions("read"):
        if done is not None and done.type == OK:
            final[done.value["key"]] = frozenset(done.value["values"])
    attempted: dict[Any, set] = {}
    saw: dict[tuple, list] = {}  # (key, value) -> the values that write superseded
    deleted: set[tuple] = set()  # (key, value) pairs a delete saw
    acked: list[tuple] = []
    for inv, done in history.completions("write"):
        key, value = inv.value["key"], inv.value["value"]
        if done is not None and done.type == FAIL:
            continue  # certainly not applied: it overwrote nothing, and showing up is unexpected
        attempted.setdefault(key, set()).add(value)
        if inv.value.get("delete"):
            deleted.update((key, seen) for seen in inv.value["saw"])
            continue
        saw[(key, value)] = list(inv.value["saw"])
        if done is not None and done.type == OK:
            acked.append((key, value))
    missing = {key for key, _ in acked if key not in final}
    if missing:
        raise ValueError(f"no successful final read of keys {sorted(missing)[:10]}")
    # Walk back from what the store holds: a held value accounts for everything its write
    # saw, and so on down the chain.
    accounted = {(key, v) for key, values in final.items() for v in values} | deleted
    todo = list(accounted)
    while todo:
        key, value = todo.pop()
        for seen in saw.get((key, value), ()):
            if (key, seen) not in accounted:
                accounted.add((key, seen))
                todo.append((key, seen))
    lost = frozenset(kv for kv in acked if kv not in accounted)
    unexpected = frozenset(
        (key, v) for key, values in final.items() for v in values if v not in attempted.get(key, ())
    )
    return RegisterResult(len(acked), lost, unexpected, len(final))


def unique_elements(prefix: str) -> Iterable[str]:
    """Element names for adds: unique across a run, readable in a failure message."""
    n = 0
    while True:
        yield f"{prefix}{n}"
        n += 1
