"""2i entries follow their object: written, replaced, removed and handed off in its batch."""

from __future__ import annotations

import random

import pytest

from spinekv import index
from spinekv import object as riak_object
from spinekv.node.vnode import Vnodes
from spinekv.object import Content
from spinekv.storage.keys import object_key
from spinekv.storage.leveldb import LevelDBBackend
from spinekv.storage.memory import MemoryBackend

P = 5
OKEY = object_key(b"default", b"people", b"ada")


def entries(backend) -> set[tuple[str, object, bytes]]:
    """(field, term, key) of every index entry under partition P."""
    out = set()
    for ikey, _ in backend.scan(P, b"", b"\xff" * 8, index=True):
        for field in ("age_int", "name_bin", "city_bin"):
            zero = 0 if field.endswith("int") else ""
            q = index.Query(b"default", b"people", field, zero, zero)
            if ikey.startswith(index.field_prefix(b"default", b"people", field)):
                term, key = index.split_entry(q, ikey)
                out.add((field, term, key))
    return out


@pytest.fixture(params=["memory", "leveldb"])
def backend(request, tmp_path):
    if request.param == "memory":
        yield MemoryBackend()
    else:
        db = LevelDBBackend(tmp_path / "db")
        yield db
        db.close()


def write(vnodes, indexes, context=None, deleted=False):
    content = (
        riak_object.tombstone(2)
        if deleted
        else Content(b"v", indexes=tuple(sorted(indexes, key=str)), last_modified_us=1)
    )
    return vnodes.coordinate(
        P, OKEY, context or {}, content, allow_mult=True, last_write_wins=False
    )


def test_entries_are_replaced_with_the_object_and_removed_by_its_tombstone(backend):
    vnodes = Vnodes("n1", backend, random.Random(1))
    first = write(vnodes, [("age_int", 36), ("name_bin", "ada")])
    assert entries(backend) == {("age_int", 36, b"ada"), ("name_bin", "ada", b"ada")}
    second = write(vnodes, [("age_int", 37)], riak_object.context(first))
    assert entries(backend) == {("age_int", 37, b"ada")}  # the old terms are gone
    write(vnodes, [], riak_object.context(second), deleted=True)
    assert entries(backend) == set()


def test_siblings_keep_the_union_of_their_entries(backend):
    vnodes = Vnodes("n1", backend, random.Random(1))
    write(vnodes, [("city_bin", "london")])
    write(vnodes, [("city_bin", "leeds")])  # blind: a concurrent sibling
    assert entries(backend) == {("city_bin", "london", b"ada"), ("city_bin", "leeds", b"ada")}


def test_a_merged_replica_and_a_handed_off_batch_bring_their_entries(backend):
    source = Vnodes("n1", MemoryBackend(), random.Random(1))
    obj = write(source, [("age_int", -4)])
    Vnodes("n2", backend, random.Random(2)).merge(P, OKEY, obj, allow_mult=True)
    assert entries(backend) == {("age_int", -4, b"ada")}

    other = MemoryBackend()
    receiver = Vnodes("n3", other, random.Random(3))
    receiver.receive_handoff(P, [(OKEY, riak_object.encode(obj))], lambda t, b: True)
    assert entries(other) == {("age_int", -4, b"ada")}
    # The sender forgets its copies after handoff; their entries go with them.
    receiver.forget(P, [(OKEY, other.get(P, OKEY))])
    assert entries(other) == set() and other.get(P, OKEY) is None


def test_leveldb_keeps_entries_across_reopen_and_drops_them_with_the_partition(tmp_path):
    db = LevelDBBackend(tmp_path / "db")
    write(Vnodes("n1", db, random.Random(1)), [("name_bin", "ada")])
    db.close()
    db = LevelDBBackend(tmp_path / "db")
    try:
        assert entries(db) == {("name_bin", "ada", b"ada")}
        db.drop_partition(P)
        assert entries(db) == set() and db.get(P, OKEY) is None
    finally:
        db.close()
