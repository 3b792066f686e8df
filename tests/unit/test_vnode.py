"""Vnode actor ids: a dot (actor, counter) never names two different writes (Riak's kv679)."""

from __future__ import annotations

import random

from spinekv import object as riak_object
from spinekv.node.vnode import Vnodes
from spinekv.object import Content
from spinekv.storage.keys import object_key
from spinekv.storage.memory import MemoryBackend

KEY = object_key(b"sets", b"b", b"k")


def write(vnodes: Vnodes, value: bytes):
    return vnodes.coordinate(3, KEY, {}, Content(value), allow_mult=True, last_write_wins=False)


def values(obj) -> set[bytes]:
    return {c.value for c in riak_object.contents(obj)}


def test_after_handing_off_its_copy_a_vnode_writes_under_a_fresh_actor():
    vnodes = Vnodes("n2", MemoryBackend(), random.Random(1))
    first = write(vnodes, b"one")  # as a fallback; then handed to the owner and deleted here
    vnodes.forget(3, [(KEY, vnodes.get_raw(3, KEY))])
    assert vnodes.get(3, KEY) is None
    second = write(vnodes, b"two")  # a blind write (empty context), concurrent with "one"
    assert riak_object.context(first).keys().isdisjoint(riak_object.context(second))
    # The owner merges both: neither write may swallow the other.
    assert values(riak_object.merge(first, second, allow_mult=True)) == {b"one", b"two"}


def test_a_restarted_node_does_not_reuse_the_dots_a_crash_may_have_lost():
    backend = MemoryBackend()
    before = write(Vnodes("n2", backend, random.Random(1)), b"one")
    backend.delete(3, KEY)  # the crash lost the write that was not yet on disk
    after = write(Vnodes("n2", backend, random.Random(2)), b"two")
    assert values(riak_object.merge(before, after, allow_mult=True)) == {b"one", b"two"}


def test_forgetting_nothing_keeps_the_actor():
    vnodes = Vnodes("n2", MemoryBackend(), random.Random(1))
    actor = vnodes.actor(3)
    vnodes.forget(3, [])
    assert vnodes.actor(3) == actor


def test_an_unreadable_local_copy_counts_as_lost_and_the_next_write_does_not_reuse_its_dots():
    backend = MemoryBackend()
    vnodes = Vnodes("n2", backend, random.Random(1))
    first = write(vnodes, b"one")
    backend.put(3, KEY, b"\xc1 rotten")  # the disk rotted the copy; 0xc1 is never msgpack
    assert vnodes.get(3, KEY) is None
    assert vnodes.unreadable == 1
    second = write(vnodes, b"two")  # blind: the context that named "one" is gone with the copy
    assert values(riak_object.merge(first, second, allow_mult=True)) == {b"one", b"two"}


def test_a_replica_merged_over_an_unreadable_copy_replaces_it():
    backend = MemoryBackend()
    vnodes = Vnodes("n2", backend, random.Random(1))
    good = write(Vnodes("n1", MemoryBackend(), random.Random(2)), b"good")
    backend.put(3, KEY, b"\xc1 rotten")
    vnodes.merge(3, KEY, good, allow_mult=True)
    assert values(vnodes.get(3, KEY)) == {b"good"}
