"""Ring state (pure): members with a status, owners, staged changes, and how states merge.

One RingState is what every node holds and gossips. Its parts:

- `epoch`: bumped by every commit and every finalisation. Within an epoch the
  base (members, `owners`, `target`) is fixed.
- `owners` are the owners the epoch started with and `target` the owners a
  commit asked for. Partition p has moved once `p in done`; until then its
  old owner serves it and streams it to the new one (ownership handoff).
- `done` only grows within an epoch, so nodes that mark transfers in any
  order agree on the union.
- `staged` holds the joins, leaves and removals waiting for `plan` and `commit`, last
  writer wins per node.

`merge` is a join: commutative, associative and idempotent. The state with the
higher (epoch, digest) wins; equal bases union their `done` sets. Gossip
therefore converges whatever the order of exchanges. Two concurrent commits in
one epoch cannot both win; the one with the larger digest does, and the other
admin sees their plan was superseded.

Finalisation (every moved partition is done) is a function of the state
alone, so any number of nodes may perform it at once and reach the same result.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, replace
from functools import cached_property

import msgpack

from .claim import claim
from .ring import Ring, ring_violations

JOINING = "joining"
VALID = "valid"
LEAVING = "leaving"
EXITING = "exiting"

JOIN = "join"
LEAVE = "leave"
REMOVE = "remove"  # force-remove: a member that is gone for good; no handoff from it
NONE = "none"  # a cleared staged entry; keeps its stamp so an older stage cannot reappear


class RingStateError(ValueError):
    """A staged change or commit that the current state does not allow; says why."""


@dataclass(frozen=True)
class Move:
    partition: int
    source: str
    target: str


@dataclass(frozen=True)
class Plan:
    """What `commit` would do: member changes, partition moves, and warnings."""

    joins: tuple[str, ...]
    leaves: tuple[str, ...]
    removes: tuple[str, ...]
    moves: tuple[Move, ...]
    target: Ring
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class RingState:
    epoch: int
    ring_size: int
    n_val: int
    members: tuple[tuple[str, str], ...]  # sorted (name, status)
    owners: tuple[str, ...]
    target: tuple[str, ...]
    done: frozenset[int] = frozenset()
    staged: tuple[tuple[str, str, int], ...] = ()  # sorted (node, action, stamp)

    # ------------------------------------------------------------------ views

    @cached_property
    def digest(self) -> bytes:
        """Hash of the epoch's base; equal digests mean the same members and owners."""
        base = [self.epoch, self.ring_size, self.n_val, self.members, self.owners, self.target]
        return hashlib.blake2b(msgpack.packb(base), digest_size=16).digest()

    @cached_property
    def full_digest(self) -> str:
        """Hash of everything; nodes whose full digests match have converged."""
        whole = [self.digest, sorted(self.done), self.staged]
        return hashlib.blake2b(msgpack.packb(whole), digest_size=8).hexdigest()

    def status(self, node: str) -> str | None:
        return dict(self.members).get(node)

    def member_names(self) -> list[str]:
        return [name for name, _ in self.members]

    @cached_property
    def effective(self) -> Ring:
        """The owners requests route by: the target owner once a partition has moved."""
        owners = tuple(
            self.target[p] if p in self.done else self.owners[p] for p in range(self.ring_size)
        )
        return Ring(self.ring_size, owners)

    def pending_moves(self) -> list[Move]:
        """Ownership transfers committed but not yet done."""
        return [
            Move(p, self.owners[p], self.target[p])
            for p in range(self.ring_size)
            if self.owners[p] != self.target[p] and p not in self.done
        ]

    def staged_changes(self) -> dict[str, str]:
        """node -> join | leave, for every staged change not cleared."""
        return {node: action for node, action, _ in self.staged if action != NONE}

    # ------------------------------------------------------------------ changes

    def mark_done(self, partition: int) -> RingState:
        if self.owners[partition] == self.target[partition] or partition in self.done:
            return self
        return replace(self, done=self.done | {partition})

    def stage(self, node: str, action: str, stamp: int, known: set[str]) -> RingState:
        """Stage a join, leave or remove of `node`; `known` is every node cluster.toml names."""
        status = self.status(node)
        if action == JOIN:
            if node not in known:
                raise RingStateError(f"{node} is not a node in cluster.toml")
            if status is not None:
                raise RingStateError(f"{node} is already a member ({status})")
        elif action in (LEAVE, REMOVE):
            verb = "leave" if action == LEAVE else "be removed"
            if status != VALID:
                what = "not a member" if status is None else status
                raise RingStateError(f"{node} cannot {verb}: it is {what}")
            staged = self.staged_changes()
            valid = {n for n, s in self.members if s == VALID}
            going = {n for n, a in staged.items() if a in (LEAVE, REMOVE)}
            joining = {n for n, a in staged.items() if a == JOIN}
            if not (valid - going - {node}) | joining:
                raise RingStateError(f"{node} cannot {verb}: it would leave no member")
        else:
            raise RingStateError(f"unknown change {action!r}")
        return self._with_staged({node: (action, stamp)})

    def clear(self, stamp: int) -> RingState:
        """Drop every staged change."""
        return self._with_staged(dict.fromkeys(self.staged_changes(), (NONE, stamp)))

    def _with_staged(self, updates: dict[str, tuple[str, int]]) -> RingState:
        entries = {node: (action, stamp) for node, action, stamp in self.staged}
        entries.update(updates)
        staged = tuple(sorted((n, a, s) for n, (a, s) in entries.items()))
        return replace(self, staged=staged)

    def plan(self) -> Plan:
        """What committing the staged changes would do, or why it cannot be done now."""
        pending = self.pending_moves()
        if pending:
            raise RingStateError(
                f"{len(pending)} partition transfers from the last commit are still "
                "in progress; wait for them (spinekv admin transfers) before planning"
            )
        changes = self.staged_changes()
        if not changes:
            raise RingStateError(
                "no changes staged; stage some with admin join, leave or force-remove"
            )
        joins = tuple(sorted(n for n, a in changes.items() if a == JOIN))
        leaves = tuple(sorted(n for n, a in changes.items() if a == LEAVE))
        removes = tuple(sorted(n for n, a in changes.items() if a == REMOVE))
        going = {*leaves, *removes}
        stays = [n for n, s in self.members if s in (VALID, JOINING) and n not in going]
        new_members = sorted({*stays, *joins})
        target = claim(
            new_members, self.ring_size, self.n_val, previous=Ring(self.ring_size, self.owners)
        )
        moves = tuple(
            Move(p, self.owners[p], target.owners[p])
            for p in range(self.ring_size)
            if self.owners[p] != target.owners[p]
        )
        warnings = []
        if len(new_members) < self.n_val:
            warnings.append(
                f"{len(new_members)} members for n_val={self.n_val}: "
                "some replicas will share a node"
            )
        elif bad := ring_violations(target, self.n_val):
            warnings.append(
                f"{len(bad)} preference lists will not have {self.n_val} distinct nodes"
            )
        if orphaned := sum(m.source in removes for m in moves):
            warnings.append(
                f"{orphaned} partitions of {', '.join(removes)} will not be handed off; their "
                "new owners start empty and fill from the other replicas (read repair)"
            )
        return Plan(joins, leaves, removes, moves, target, tuple(warnings))

    def commit(self) -> RingState:
        """Start the next epoch with the planned owners as its target."""
        plan = self.plan()
        status = dict(self.members)
        for node in plan.joins:
            status[node] = JOINING
        for node in plan.leaves:
            status[node] = LEAVING
        for node in plan.removes:
            del status[node]
        # Nobody can hand off a removed node's partitions: they count as moved already.
        gone = frozenset(m.partition for m in plan.moves if m.source in plan.removes)
        return RingState(
            epoch=self.epoch + 1,
            ring_size=self.ring_size,
            n_val=self.n_val,
            members=tuple(sorted(status.items())),
            owners=self.owners,
            target=plan.target.owners,
            done=gone,
            staged=(),
        ).finalised()

    def finalised(self) -> RingState:
        """Once every move is done: the next epoch, joiners valid, leavers exiting.

        Returns self while moves are pending or nothing is in transition.
        """
        in_transition = any(s in (JOINING, LEAVING) for _, s in self.members)
        if self.pending_moves() or not (in_transition or self.owners != self.target):
            return self
        status = {JOINING: VALID, LEAVING: EXITING}
        members = tuple((n, status.get(s, s)) for n, s in self.members)
        return replace(
            self,
            epoch=self.epoch + 1,
            members=members,
            owners=self.target,
            done=frozenset(),
        )

    def without(self, node: str) -> RingState:
        """The next epoch with an exiting node removed (it has handed everything off)."""
        if self.status(node) != EXITING:
            raise RingStateError(f"{node} is not exiting")
        members = tuple((n, s) for n, s in self.members if n != node)
        return replace(self, epoch=self.epoch + 1, members=members, done=frozenset())


def bootstrap(members: list[str], ring_size: int, n_val: int) -> RingState:
    """Epoch 0: the cluster.toml members, all valid, owning a fresh claim."""
    ring = claim(members, ring_size, n_val)
    return RingState(
        epoch=0,
        ring_size=ring_size,
        n_val=n_val,
        members=tuple((name, VALID) for name in sorted(set(members))),
        owners=ring.owners,
        target=ring.owners,
    )


def merge(a: RingState, b: RingState) -> RingState:
    """The least state both a and b lead to (a join-semilattice)."""
    if a.epoch != b.epoch:
        return a if a.epoch > b.epoch else b
    if a.digest != b.digest:
        base = a if a.digest > b.digest else b
        done = base.done
    else:
        base = a
        done = a.done | b.done
    staged: dict[str, tuple[str, int]] = {}
    for node, action, stamp in (*a.staged, *b.staged):
        # Last writer wins per node; ties (same stamp) break by action name.
        if node not in staged or (stamp, action) > (staged[node][1], staged[node][0]):
            staged[node] = (action, stamp)
    merged_staged = tuple(sorted((n, act, s) for n, (act, s) in staged.items()))
    if done == base.done and merged_staged == base.staged:
        return base
    return replace(base, done=done, staged=merged_staged)


def shares(state: RingState) -> dict[str, tuple[int, int]]:
    """node -> (partitions owned now, partitions owned once pending moves finish)."""
    now = Counter(state.effective.owners)
    after = Counter(state.target)
    return {n: (now[n], after[n]) for n in sorted({*state.member_names(), *now, *after})}


def encode(state: RingState) -> bytes:
    return msgpack.packb(
        [
            1,
            state.epoch,
            state.ring_size,
            state.n_val,
            [list(m) for m in state.members],
            list(state.owners),
            list(state.target),
            sorted(state.done),
            [list(s) for s in state.staged],
        ]
    )


def decode(raw: bytes) -> RingState:
    """The state `encode` wrote; ValueError for anything else, whatever its shape."""
    try:
        return _decode(msgpack.unpackb(raw))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"malformed ring state: {exc}") from None


def _decode(fields: object) -> RingState:
    if not isinstance(fields, list) or not fields or fields[0] != 1:
        raise ValueError("not a version-1 ring state")
    _, epoch, ring_size, n_val, members, owners, target, done, staged = fields
    state = RingState(
        epoch=epoch,
        ring_size=ring_size,
        n_val=n_val,
        members=tuple((n, s) for n, s in members),
        owners=tuple(owners),
        target=tuple(target),
        done=frozenset(done),
        staged=tuple((n, a, s) for n, a, s in staged),
    )
    Ring(state.ring_size, state.owners)  # checks sizes
    Ring(state.ring_size, state.target)
    return state
