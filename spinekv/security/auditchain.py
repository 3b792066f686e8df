"""The audit chain (pure): each node's audit records linked by hash and sealed with a keyed MAC,
and the check that finds gaps, edits and forgeries in what is stored.

A link is a batch of audit records, {"records": [...]}, the events a node audited while its
previous link was being written (one when it is idle; group commit under load, so an audited
read does not cost a replicated write of its own). Two members are added: `chain` = {node,
seq, prev} (seq counts the node's links from 1; prev is the SHA-256 of the node's previous
stored link, GENESIS for its first) and `mac`, an HMAC-SHA256 under the audit-chain key over
the rest. The link is stored under link_key(node, seq). So:

- an edited record fails its MAC, and only a holder of the cluster secret can make one that
  passes;
- a valid record copied under another key, or swapped with its neighbour, names a node and seq
  that disagree with its key;
- a deleted record leaves a gap in the seqs (the node's persisted head shows a deleted tail);
- a record a node never wrote fails its MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
# Above every character a seq is written in: a node's links are the terms link_key(node, "")..
_TOP = "~"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link_key(node: str, seq: int) -> str:
    """The key (and 2i term) of a node's seq-th link: zero-padded, so terms sort by seq."""
    return f"{node}:{seq:012d}"


def node_range(node: str) -> tuple[str, str]:
    """The first and last 2i term any link of `node` can have."""
    return f"{node}:", f"{node}:{_TOP}"


def seq_of_key(node: str, key: str) -> int | None:
    """The seq a key of `node`'s chain names, or None when it is no link key of `node`."""
    prefix = f"{node}:"
    digits = key[len(prefix) :]
    if not key.startswith(prefix) or not (digits.isascii() and digits.isdigit()):
        return None
    return int(digits)


def _mac(key: bytes, unsigned: dict) -> str:
    return hmac.new(key, b"spinekv audit\x00" + _canonical(unsigned), hashlib.sha256).hexdigest()


def link(key: bytes, node: str, seq: int, prev: str, records: list[dict]) -> bytes:
    """The stored bytes of `records` as `node`'s seq-th link, after the link hashed `prev`."""
    unsigned = {"records": records, "chain": {"node": node, "seq": seq, "prev": prev}}
    return _canonical({**unsigned, "mac": _mac(key, unsigned)})


def records_of(value: bytes) -> list[dict]:
    """The audit records a link holds (call it on a link `opened` accepted)."""
    records = json.loads(value).get("records")
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def canonical_record(record: dict) -> bytes:
    """One record's bytes, the same for the same record wherever it was read."""
    return _canonical(record)


def link_hash(value: bytes) -> str:
    """What the next link's `prev` names: the SHA-256 of the stored bytes."""
    return hashlib.sha256(value).hexdigest()


@dataclass(frozen=True, slots=True)
class Link:
    """A stored link whose MAC verified."""

    node: str
    seq: int
    prev: str
    hash: str
    # How many audit records (events) the link holds.
    events: int = 1


def opened(key: bytes, value: bytes) -> Link | None:
    """The link `value` holds, or None when it does not decode or its MAC does not verify."""
    try:
        raw = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("mac"), str):
        return None
    chain = raw.get("chain")
    if not (
        isinstance(chain, dict)
        and isinstance(chain.get("node"), str)
        and isinstance(chain.get("seq"), int)
        and isinstance(chain.get("prev"), str)
        and isinstance(raw.get("records"), list)
    ):
        return None
    unsigned = {k: v for k, v in raw.items() if k != "mac"}
    if not hmac.compare_digest(raw["mac"], _mac(key, unsigned)):
        return None
    return Link(chain["node"], chain["seq"], chain["prev"], link_hash(value), len(raw["records"]))


@dataclass(frozen=True, slots=True)
class Head:
    """A node's last link: its seq (0 before the first) and hash."""

    seq: int = 0
    hash: str = GENESIS


def encode_head(head: Head) -> bytes:
    return _canonical({"seq": head.seq, "hash": head.hash})


def decode_head(raw: bytes) -> Head:
    loaded = json.loads(raw)
    return Head(int(loaded["seq"]), str(loaded["hash"]))


@dataclass
class ChainReport:
    """What a walk of one node's chain found.

    gaps: seq ranges with no record at all (deleted); edits: seqs whose record is there but is
    not the one the node wrote (changed, swapped, or not followed by its successor's prev);
    forgeries: keys of records the node never wrote at a place no link of it was (beyond its
    head, beside a genuine link, or under a key that is no link's). `head_seq` is the node's own
    count when it was asked, else None (a deleted tail then shows only as a shorter chain).
    """

    node: str
    # Audit records in the genuine links, and the links themselves.
    events: int = 0
    links: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_seq: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)
    edits: list[int] = field(default_factory=list)
    forgeries: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.gaps or self.edits or self.forgeries)

    def to_json(self) -> dict:
        return {
            "node": self.node,
            "events": self.events,
            "links": self.links,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "head_seq": self.head_seq,
            "gaps": [list(g) for g in self.gaps],
            "edits": self.edits,
            "forgeries": self.forgeries,
            "ok": self.ok,
        }


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for seq in seqs:
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def _only_hash(links: set[Link] | None) -> str | None:
    """The hash a successor must name, when exactly one genuine link holds the seq."""
    return next(iter(links)).hash if links is not None and len(links) == 1 else None


def check_chain(
    key: bytes, node: str, stored: Iterable[tuple[str, list[bytes]]], head: Head | None = None
) -> ChainReport:
    """Walk `node`'s chain: `stored` is every (key, sibling values) found under its link keys;
    `head` the node's own last link when known."""
    genuine: dict[int, set[Link]] = {}
    tampered: dict[int, list[str]] = {}  # seq of the key -> keys holding a record that failed
    stray: list[str] = []
    for where, values in stored:
        seq_here = seq_of_key(node, where)
        for value in set(values):
            found = opened(key, value)
            if (
                found is not None
                and seq_here is not None
                and found.node == node
                and found.seq == seq_here
            ):
                genuine.setdefault(found.seq, set()).add(found)
            elif seq_here is None:
                stray.append(where)
            else:
                tampered.setdefault(seq_here, []).append(where)
    report = ChainReport(node, head_seq=None if head is None else head.seq)
    seqs = sorted(genuine)
    report.links = len(seqs)
    report.events = sum(max(link.events for link in genuine[seq]) for seq in seqs)
    if seqs:
        report.first_seq, report.last_seq = seqs[0], seqs[-1]
    top = head.seq if head is not None else max(seqs, default=0)
    missing, edits = [], set()
    for seq in range(1, top + 1):
        links = genuine.get(seq)
        if links is None:
            if seq in tampered:
                edits.add(seq)
            else:
                missing.append(seq)
            continue
        if len(links) > 1:  # two records the node sealed at one seq: its chain forked
            edits.add(seq)
            continue
        (this,) = links
        expected = GENESIS if seq == 1 else _only_hash(genuine.get(seq - 1))
        if expected is not None and this.prev != expected:
            edits.add(seq)
    if (
        head is not None
        and head.seq in genuine
        and {link.hash for link in genuine[head.seq]} != {head.hash}
    ):
        edits.add(head.seq)
    forged = [k for seq, keys in tampered.items() if seq > top or seq in genuine for k in keys]
    report.gaps = _ranges(missing)
    report.edits = sorted(edits)
    report.forgeries = sorted(set(forged) | set(stray))
    return report
