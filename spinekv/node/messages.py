"""The internode protocol: every message type, its wire encoding, and one dispatch table.

A message travels as a msgpack list `[tag, field, ...]`: the tag names its type
and the fields follow in declaration order. Each type says what its reply is.
Replies stay plain msgpack values (bytes, lists, booleans), since each belongs
to exactly one request type.

PROTOCOL_VERSION goes in the transport's hello. A peer whose version is outside
[MIN_PROTOCOL_VERSION, PROTOCOL_VERSION] is refused before any request; within
that range both sides speak the lower version (a rolling upgrade raises
PROTOCOL_VERSION, keeps the older encodings for one release, and bumps
MIN_PROTOCOL_VERSION the release after).

The dispatch table routes each type to the module that owns it: reads and
writes to the vnodes, coordinated PUTs to the coordinator, handoff to
handoff.py, coverage folds to coverage.py, gossip and pings to membership.py, anti-entropy
exchanges to exchange.py, tombstone reaps to the vnodes, a reap's question about the
replication queues to reapgate.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

PROTOCOL_VERSION = 1
MIN_PROTOCOL_VERSION = 1


class ProtocolError(ValueError):
    """A message that is not one this version of the protocol knows, or has the wrong shape."""


class Message:
    """Base of every internode message; subclasses are frozen dataclasses with a TAG."""

    TAG: ClassVar[int]

    def to_wire(self) -> list:
        # Not dataclasses.astuple: that deep-copies every field, a whole handoff batch.
        return [self.TAG, *(getattr(self, f.name) for f in fields(self))]  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Get(Message):
    """Read one replica. Reply: the stored (encoded) object, or None."""

    TAG: ClassVar[int] = 1
    partition: int
    okey: bytes

    def to_wire(self) -> list:
        return [1, self.partition, self.okey]


@dataclass(frozen=True, slots=True)
class Put(Message):
    """Merge an object into one replica (a coordinated write or a read repair).

    Reply: True once it is durable when `sync` was asked, else False at once.
    """

    TAG: ClassVar[int] = 2
    partition: int
    okey: bytes
    encoded: bytes
    sync: bool
    allow_mult: bool

    def to_wire(self) -> list:
        return [2, self.partition, self.okey, self.encoded, self.sync, self.allow_mult]


@dataclass(frozen=True, slots=True)
class CoordinatePut(Message):
    """Ask a replica to coordinate a client's write (the receiving node holds no replica).

    `key` is [type, bucket, key]; `props` is [n_val, allow_mult, last_write_wins];
    `context` is sorted [actor, counter] pairs; `content` an encoded one-content
    object; `quorums` is [w, dw, pw, node_confirms, timeout].
    Reply: [True, encoded stored object] or [False, reason]; a reason starting
    "forward:" means this node holds no replica either.
    """

    TAG: ClassVar[int] = 3
    key: list
    props: list
    context: list
    content: bytes
    quorums: list


@dataclass(frozen=True, slots=True)
class HandoffBatch(Message):
    """Objects of `partition` for their owner, with the sender's encoded ring state.

    `items` are [object key, encoded object] pairs. Reply: True once merged and durable.
    """

    TAG: ClassVar[int] = 4
    partition: int
    items: list
    ring: bytes


@dataclass(frozen=True, slots=True)
class Cover(Message):
    """One coverage fold on one vnode. `partitions`: the key partitions to answer for
    (None: all); `kind`: "index", "buckets" or an operator fold of folds.py; `args` its
    arguments. Reply: a list."""

    TAG: ClassVar[int] = 5
    vnode: int
    partitions: list | None
    kind: str
    args: list


@dataclass(frozen=True, slots=True)
class Gossip(Message):
    """A gossip frame (ring state and bucket metadata). Reply: the receiver's frame."""

    TAG: ClassVar[int] = 6
    frame: bytes


@dataclass(frozen=True, slots=True)
class Ping(Message):
    """Liveness probe. Reply: "pong"."""

    TAG: ClassVar[int] = 7


@dataclass(frozen=True, slots=True)
class AaeRoot(Message):
    """An anti-entropy exchange asks for the root of tree (partition, n_val).

    Every Aae* reply is [True, answer] or [False, why] when the peer holds no built tree
    of that name (not a primary of that list, or rebuilding): the exchange is skipped.
    The answer here is the root (an int).
    """

    TAG: ClassVar[int] = 8
    partition: int
    n_val: int


@dataclass(frozen=True, slots=True)
class AaeBranches(Message):
    """An exchange asks for a tree's branch hashes: those listed, or all (None)."""

    TAG: ClassVar[int] = 9
    partition: int
    n_val: int
    branches: list | None


@dataclass(frozen=True, slots=True)
class AaeSegments(Message):
    """An exchange asks for the hashes of a tree's listed segments."""

    TAG: ClassVar[int] = 10
    partition: int
    n_val: int
    segments: list


@dataclass(frozen=True, slots=True)
class AaeKeys(Message):
    """An exchange asks for the [object key, version] pairs of a tree's listed segments.

    The answer is [pairs in key order, complete]; a long list is cut short (complete False).
    """

    TAG: ClassVar[int] = 11
    partition: int
    n_val: int
    segments: list


@dataclass(frozen=True, slots=True)
class Reap(Message):
    """Remove a primary's copy of a tombstone, only if it is still the tombstone whose
    tictac.version is `version` (a write since then keeps it). Reply: whether it was removed."""

    TAG: ClassVar[int] = 12
    partition: int
    okey: bytes
    version: bytes


@dataclass(frozen=True, slots=True)
class ReplHolds(Message):
    """Before a reap: do this node's replication queues (or a client write under way here)
    still hold a change of `key` ([type, bucket, key]) made no later than `after` (wall-clock
    seconds), which a sink has not applied? Reply: None, or the reason (a string)."""

    TAG: ClassVar[int] = 13
    key: list
    after: float


MESSAGE_TYPES: tuple[type[Message], ...] = (
    Get,
    Put,
    CoordinatePut,
    HandoffBatch,
    Cover,
    Gossip,
    Ping,
    AaeRoot,
    AaeBranches,
    AaeSegments,
    AaeKeys,
    Reap,
    ReplHolds,
)
_BY_TAG: dict[int, tuple[type[Message], int]] = {
    cls.TAG: (cls, len(fields(cls))) for cls in MESSAGE_TYPES
}


def decode(wire: Any) -> Message:
    """The message a peer sent; ProtocolError if it is not a well-formed known message."""
    if type(wire) is not list or not wire:
        raise ProtocolError(f"a message is a non-empty list, not {type(wire).__name__}")
    known = _BY_TAG.get(wire[0])
    if known is None:
        raise ProtocolError(
            f"unknown message type {wire[0]!r} (protocol version {PROTOCOL_VERSION})"
        )
    cls, arity = known
    if len(wire) != arity + 1:
        raise ProtocolError(f"{cls.__name__} takes {arity} fields, not {len(wire) - 1}")
    return cls(*wire[1:])


Handler = Callable[[str, Any], Any]


class Dispatcher:
    """The one table from message type to handler; the transport calls it for each request.

    A handler takes (source node, message) and returns the reply, or an awaitable
    of it when it must wait.
    """

    def __init__(self) -> None:
        self._routes: dict[type[Message], Handler] = {}

    def route(self, cls: type[Message], handler: Handler) -> None:
        if cls in self._routes:
            raise ValueError(f"{cls.__name__} is already routed")
        self._routes[cls] = handler

    def missing(self) -> list[str]:
        """Message types without a handler (the composition root checks there are none)."""
        return [cls.__name__ for cls in MESSAGE_TYPES if cls not in self._routes]

    def __call__(self, source: str, wire: Any) -> Any:
        message = decode(wire)
        return self._routes[type(message)](source, message)


def hello(cluster: str, host: str, peer_port: int) -> dict[str, Any]:
    """What this node says of itself in the transport's hello, after its name."""
    return {"version": PROTOCOL_VERSION, "cluster": cluster, "peer": [host, peer_port]}


def hello_refusal(cluster: str, peer_hello: dict[str, Any]) -> str | None:
    """Why a peer's hello is refused (another protocol version, another cluster), or None."""
    version = peer_hello.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        return f"no protocol version in its hello (this node speaks {PROTOCOL_VERSION})"
    if not MIN_PROTOCOL_VERSION <= version <= PROTOCOL_VERSION:
        return (
            f"protocol version {version} is not supported here "
            f"(this node speaks {MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION})"
        )
    if peer_hello.get("cluster") != cluster:
        return f"it belongs to cluster {peer_hello.get('cluster')!r}, not {cluster!r}"
    return None


def peer_address(peer_hello: dict[str, Any]) -> tuple[str, int] | None:
    """The (host, peer port) a peer's hello says it listens on, if well formed."""
    peer = peer_hello.get("peer")
    if (
        isinstance(peer, list)
        and len(peer) == 2
        and isinstance(peer[0], str)
        and isinstance(peer[1], int)
        and 0 < peer[1] < 65536
    ):
        return peer[0], peer[1]
    return None
