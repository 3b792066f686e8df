"""Replica convergence: once healed and quiet, every key's primaries hold the same clock.

`diverged` is the pure verdict over replicas it is given; `gather` reads them straight
from each primary's simulated disk (never through a coordinator GET, whose read repair
would heal what anti-entropy failed to). Fallback copies are not judged: hinted handoff
owns those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from spinekv import object as riak_object
from spinekv.ring import primaries
from spinekv.storage.keys import object_key, split_object_key
from spinekv.tictac import version

from .cluster import SimCluster

# Virtual seconds of quiet after the cluster settles (no handoff pending) and before the
# check: six exchange ticks of the simulation, so every tree of every node exchanges at
# least four times (a tick is jittered by up to 20%) with a random up peer; a primary
# missing a key meets a peer that holds it on its own exchanges, and the others pick it
# half the time. The loop jumps over idle time, so this costs little wall time.
QUIET_SECONDS = 60.0

Key = tuple[str, str, str]  # (bucket type, bucket, key)


@dataclass(frozen=True, slots=True)
class KeyReplicas:
    """One key's copies on its primaries: node -> clock digest (None: holds no copy)."""

    key: Key
    copies: Mapping[str, bytes | None]
    acknowledged: bool = False  # some write of it was acknowledged to a client
    maybe_deleted: bool = False  # its last acknowledged operation may have been a delete


def diverged(keys: Iterable[KeyReplicas]) -> list[str]:
    """Why each key that has not converged has not, one line per key; [] if all have.

    A key has converged when every primary holds a copy with the same clock digest, or
    when none holds one and that is allowed: it was never acknowledged, or may have been
    deleted (a reaped tombstone leaves no copy anywhere).
    """
    problems = []
    for replicas in keys:
        name = "/".join(replicas.key)
        held = {node: v for node, v in replicas.copies.items() if v is not None}
        missing = sorted(node for node, v in replicas.copies.items() if v is None)
        if not held:
            if replicas.acknowledged and not replicas.maybe_deleted:
                problems.append(f"{name}: acknowledged but on no primary")
            continue
        if missing:
            problems.append(f"{name}: missing on {', '.join(missing)} (held by {sorted(held)})")
            continue
        digests = sorted(set(held.values()))
        if len(digests) > 1:
            groups = "; ".join(
                ",".join(sorted(node for node, v in held.items() if v == d)) + f" at {d.hex()[:8]}"
                for d in digests
            )
            problems.append(f"{name}: replicas differ: {groups}")
    return problems


def _digest(raw: bytes | None) -> bytes | None:
    return None if raw is None else version(riak_object.decode(raw))


def stored_keys(cluster: SimCluster) -> set[Key]:
    """Every object key on any node's disk, primary or fallback copy."""
    found = set()
    for store in cluster.stores.values():
        for partition in store.mem.partitions():
            for okey, _ in store.mem.fold(partition):
                btype, bucket, key = split_object_key(okey)
                found.add((btype.decode(), bucket.decode(), key.decode()))
    return found


def gather(cluster: SimCluster, acknowledged: AbstractSet[Key]) -> list[KeyReplicas]:
    """The primaries' copies of every acknowledged key and every key stored anywhere (the
    workloads never delete, so no key is judged as maybe deleted)."""
    ring = next(iter(cluster.nodes.values())).membership.ring
    judged = []
    for key in sorted(acknowledged | stored_keys(cluster)):
        btype, bucket, name = (part.encode() for part in key)
        okey = object_key(btype, bucket, name)
        props = cluster.props(key[0])
        entries = primaries(ring, ring.partition_of(btype, bucket, name), props.n_val)
        copies = {
            e.node: _digest(cluster.stores[e.node].mem.get(e.partition, okey)) for e in entries
        }
        judged.append(KeyReplicas(key, copies, key in acknowledged))
    return judged
