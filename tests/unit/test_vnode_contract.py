"""The vnode contract: every change to a stored object passes one write path, old and new."""

from __future__ import annotations

import random

import pytest

from spinekv import object as riak_object
from spinekv import tictac
from spinekv.node.vnode import Change, VnodeContract, Vnodes
from spinekv.object import Content
from spinekv.storage.keys import object_key
from spinekv.storage.memory import MemoryBackend

P = 3
KEY = object_key(b"t", b"b", b"k")
OTHER = object_key(b"t", b"b", b"other")


def vnodes_with_log() -> tuple[Vnodes, list[Change]]:
    vnodes = Vnodes("n1", MemoryBackend(), random.Random(1))
    log: list[Change] = []
    vnodes.listeners.append(log.append)
    return vnodes, log


def write(vnodes: Vnodes, okey: bytes, value: bytes, context=None):
    return vnodes.coordinate(
        P, okey, context or {}, Content(value), allow_mult=True, last_write_wins=False
    )


def test_the_implementation_offers_the_whole_contract():
    declared = {name for name in vars(VnodeContract) if not name.startswith("_")}
    assert declared <= set(dir(Vnodes))
    assert {"get", "coordinate", "merge", "fold", "handoff_items", "forget", "drop"} <= declared


def test_a_client_write_and_a_replica_merge_are_told_with_old_and_new():
    vnodes, log = vnodes_with_log()
    first = write(vnodes, KEY, b"one")
    second = write(vnodes, KEY, b"two", riak_object.context(first))
    assert [(c.cause, c.old, c.new) for c in log] == [
        ("coordinate", None, first),
        ("coordinate", first, second),
    ]
    replica, replica_log = vnodes_with_log()
    replica.merge(P, KEY, first, allow_mult=True)
    replica.merge(P, KEY, first, allow_mult=True)  # nothing new: no change, no event
    replica.merge(P, KEY, second, allow_mult=True)
    assert [(c.cause, c.old, c.new) for c in replica_log] == [
        ("merge", None, first),
        ("merge", first, second),
    ]


def test_handoff_receipt_forget_and_drop_are_told_too():
    sender, _ = vnodes_with_log()
    obj = write(sender, KEY, b"one")
    write(sender, OTHER, b"two")
    items = list(sender.handoff_items(P))
    receiver, log = vnodes_with_log()
    receiver.receive_handoff(P, items, lambda t, b: True)
    assert {(c.cause, c.okey) for c in log} == {("handoff", KEY), ("handoff", OTHER)}
    assert next(c for c in log if c.okey == KEY).new == obj
    log.clear()
    # A key rewritten since it was sent is kept, and so not told as forgotten.
    changed = [(KEY, items[0][1] if items[0][0] == KEY else items[1][1]), (OTHER, b"stale")]
    assert receiver.forget(P, changed) == 1
    assert [(c.cause, c.okey, c.new) for c in log] == [("forget", KEY, None)]
    assert receiver.get(P, KEY) is None and receiver.get(P, OTHER) is not None
    log.clear()
    receiver.drop(P)
    assert [(c.cause, c.okey, c.new) for c in log] == [("drop", OTHER, None)]
    assert receiver.is_empty(P) and receiver.held() == []


def test_fold_reads_a_partition_or_a_key_range():
    vnodes, _ = vnodes_with_log()
    write(vnodes, KEY, b"one")
    write(vnodes, OTHER, b"two")
    assert [k for k, _ in vnodes.fold(P)] == sorted([KEY, OTHER])
    assert [k for k, _ in vnodes.fold(P, KEY, KEY + b"\x00")] == [KEY]
    assert vnodes.size(P) == 2 and not vnodes.is_empty(P) and vnodes.held() == [P]
    with pytest.raises(ValueError, match="both ends"):
        vnodes.fold(P, KEY)


def test_reap_removes_only_the_tombstone_it_was_shown_and_tells_it():
    vnodes, log = vnodes_with_log()
    live = write(vnodes, KEY, b"one")
    assert not vnodes.reap(P, KEY, tictac.version(live))  # a live value is never reaped
    dead = vnodes.coordinate(
        P,
        KEY,
        riak_object.context(live),
        riak_object.tombstone(5),
        allow_mult=True,
        last_write_wins=False,
    )
    log.clear()
    assert not vnodes.reap(P, KEY, tictac.version(live))  # another version: kept
    assert not vnodes.reap(P, OTHER, tictac.version(dead))  # nothing there
    assert vnodes.get(P, KEY) == dead and vnodes.reaped == 0 and log == []
    assert vnodes.reap(P, KEY, tictac.version(dead))
    assert vnodes.get(P, KEY) is None and vnodes.reaped == 1
    assert [(c.cause, c.okey, c.old, c.new) for c in log] == [("reap", KEY, dead, None)]
