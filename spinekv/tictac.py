"""Tictac trees (pure): XOR Merkle trees over key segments, kept by deltas, compared level by level.

A tree has 2**segment_bits segments grouped into 2**branch_bits branches. A key's segment
comes from a hash of (type, bucket, key) alone, never from the partition, so trees of
clusters with different ring sizes or n_vals are compared segment for segment (issue 16's
full-sync), and a cluster's tree is the XOR of its partitions' trees. A segment's hash is
the XOR of leaf(key, version) over its keys, where version is a digest of the object's
causal clock: replicas with the same history hash the same whatever bytes they store. A
branch is the XOR of its segments and the root the XOR of the branches.

XOR makes every update a delta: a change from version old to new applies
leaf(key, old) XOR leaf(key, new) to one segment, its branch and the root, with no
rescan; applying the same change twice undoes it, and any order of changes gives the
same tree. An exchange compares roots, then branches where the roots differ, then the
segments of the differing branches, then the (key, version) lists of the differing
segments; `differing_keys` names what to repair.

Default size: 2**16 segments of 4 bytes, 256 KiB per tree however many keys it covers;
a node holding a third of a 64-partition ring as primary (about 40 trees) keeps ~10 MiB.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgpack

from .dvv import DVVSet

__all__ = [
    "DEFAULT_BRANCH_BITS",
    "DEFAULT_SEGMENT_BITS",
    "Tree",
    "TreeShape",
    "differing",
    "differing_keys",
    "key_hash",
    "leaf",
    "version",
]

DEFAULT_SEGMENT_BITS = 16
DEFAULT_BRANCH_BITS = 8
_KEY_HASH_BITS = 64
if array("I").itemsize != 4:  # segment hashes are 32 bits; every platform CPython runs on agrees
    raise ImportError("spinekv.tictac needs array('I') of 4 bytes")


def key_hash(bucket_type: bytes, bucket: bytes, key: bytes) -> int:
    """A 64-bit hash of (type, bucket, key): where the key sits in every tree."""
    packed = msgpack.packb([bucket_type, bucket, key], use_bin_type=True)
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "big")


def version(obj: DVVSet) -> bytes:
    """A digest of an object's causal clock: each actor, its counter and how many of its
    dots are live. Those fix the live dots, so two replicas with the same history digest
    alike, and any write, merge or delete changes it."""
    entries = [[actor, counter, len(values)] for actor, counter, values in obj.entries]
    return hashlib.blake2b(msgpack.packb(entries, use_bin_type=True), digest_size=16).digest()


def leaf(khash: int, digest: bytes) -> int:
    """A key's 32-bit contribution to its segment at one version."""
    material = khash.to_bytes(8, "big") + digest
    return int.from_bytes(hashlib.blake2b(material, digest_size=4).digest(), "big")


@dataclass(frozen=True, slots=True)
class TreeShape:
    """How many segments a tree has, and how they group into branches."""

    segment_bits: int = DEFAULT_SEGMENT_BITS
    branch_bits: int = DEFAULT_BRANCH_BITS

    def __post_init__(self) -> None:
        if not 1 <= self.branch_bits <= self.segment_bits <= 24:
            raise ValueError("need 1 <= branch_bits <= segment_bits <= 24")

    @property
    def segments(self) -> int:
        return 1 << self.segment_bits

    @property
    def branches(self) -> int:
        return 1 << self.branch_bits

    @property
    def per_branch(self) -> int:
        return 1 << (self.segment_bits - self.branch_bits)

    def segment_of(self, khash: int) -> int:
        return khash >> (_KEY_HASH_BITS - self.segment_bits)

    def branch_of(self, segment: int) -> int:
        return segment >> (self.segment_bits - self.branch_bits)

    def segments_of(self, branch: int) -> range:
        first = branch * self.per_branch
        return range(first, first + self.per_branch)

    @property
    def memory_bytes(self) -> int:
        """What one tree holds in memory: its segment and branch hashes (4 bytes each)."""
        return 4 * (self.segments + self.branches)


class Tree:
    """One Tictac tree: segment and branch hashes and the root, changed only by deltas."""

    __slots__ = ("branches", "root", "segments", "shape")

    def __init__(self, shape: TreeShape | None = None) -> None:
        self.shape = shape or TreeShape()
        self.segments = array("I", bytes(4 * self.shape.segments))
        self.branches = array("I", bytes(4 * self.shape.branches))
        self.root = 0

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Tree)
            and self.shape == other.shape
            and self.segments == other.segments
        )

    def __repr__(self) -> str:
        return f"<Tree {self.shape.segments} segments root={self.root:08x}>"

    def _apply(self, segment: int, delta: int) -> None:
        if delta:
            self.segments[segment] ^= delta
            self.branches[self.shape.branch_of(segment)] ^= delta
            self.root ^= delta

    def change(self, khash: int, old: bytes | None, new: bytes | None) -> None:
        """A key went from version `old` to `new` (None: absent before / after)."""
        if old == new:
            return
        delta = (0 if old is None else leaf(khash, old)) ^ (0 if new is None else leaf(khash, new))
        self._apply(self.shape.segment_of(khash), delta)

    def add(self, khash: int, digest: bytes) -> None:
        """A key at `digest` joins the tree (as a rebuild's fold does)."""
        self.change(khash, None, digest)

    def combine(self, other: Tree) -> None:
        """XOR `other` into this tree: the tree of both key sets (they must not share keys)."""
        if other.shape != self.shape:
            raise ValueError("trees of different shapes do not combine")
        for segment, value in enumerate(other.segments):
            self._apply(segment, value)

    def segment_hashes(self, segments: Iterable[int]) -> list[int]:
        return [self.segments[s] for s in segments]

    def to_bytes(self) -> bytes:
        """The segments (big-endian), from which from_bytes restores the whole tree."""
        copy = array("I", self.segments)
        if _little_endian():
            copy.byteswap()
        return copy.tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes, shape: TreeShape | None = None) -> Tree:
        tree = cls(shape)
        if len(raw) != 4 * tree.shape.segments:
            raise ValueError(f"{len(raw)} bytes are not the segments of a {tree.shape}")
        segments = array("I", raw)
        if _little_endian():
            segments.byteswap()
        for segment, value in enumerate(segments):
            tree._apply(segment, value)
        return tree


def _little_endian() -> bool:
    return array("I", [1]).tobytes()[0] == 1


def differing(ours: Sequence[int], theirs: Sequence[int], among: Sequence[int]) -> list[int]:
    """The positions in `among` where two equally long lists of hashes differ (the branches of
    two trees, or the segments of the branches an exchange asked about)."""
    if len(ours) != len(theirs) or len(ours) != len(among):
        raise ValueError("compare hashes of the same positions")
    return [pos for pos, a, b in zip(among, ours, theirs, strict=True) if a != b]


def differing_keys(ours: Mapping[bytes, bytes], theirs: Mapping[bytes, bytes]) -> list[bytes]:
    """Keys whose versions differ between two (key -> version) lists of the same segments,
    including keys one side lacks; sorted, so both sides repair in one order."""
    return sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
