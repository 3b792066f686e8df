"""Both backends honour the same contract: partition key ranges, folds, drops, metadata."""

from __future__ import annotations

import pytest

from spinekv.storage.keys import object_key, split_object_key
from spinekv.storage.leveldb import LevelDBBackend
from spinekv.storage.memory import MemoryBackend


@pytest.fixture(params=["memory", "leveldb"])
def backend(request, tmp_path):
    b = MemoryBackend() if request.param == "memory" else LevelDBBackend(tmp_path / "data")
    yield b
    b.close()


def test_object_keys_are_unambiguous():
    assert object_key(b"a", b"bc", b"") != object_key(b"ab", b"c", b"")
    assert split_object_key(object_key(b"t", b"b", b"k/\x00x")) == (b"t", b"b", b"k/\x00x")


def test_put_get_delete(backend):
    k = object_key(b"default", b"b", b"k")
    assert backend.get(3, k) is None
    backend.put(3, k, b"v", sync=True)
    assert backend.get(3, k) == b"v"
    assert backend.get(4, k) is None  # partitions are separate ranges
    backend.delete(3, k)
    assert backend.get(3, k) is None


def test_fold_partitions_and_drop(backend):
    for p in (0, 1, 7):
        for i in range(3):
            backend.put(p, object_key(b"t", b"b", b"k%d" % i), b"v%d" % p)
    assert backend.partitions() == [0, 1, 7]
    assert [k for k, _ in backend.fold(1)] == [object_key(b"t", b"b", b"k%d" % i) for i in range(3)]
    assert {v for _, v in backend.fold(7)} == {b"v7"}
    backend.drop_partition(1)
    assert backend.partitions() == [0, 7]
    assert list(backend.fold(1)) == []
    assert len(list(backend.fold(0))) == 3
    assert [backend.count(p) for p in (0, 1, 7)] == [3, 0, 3]


def test_partitions_follow_every_write_and_delete_path(backend, tmp_path):
    keys = [object_key(b"t", b"b", b"k%d" % i) for i in range(4)]
    backend.put_many(2, [(k, b"v") for k in keys])
    backend.put(9, keys[0], b"v")
    backend.put_many(5, [])  # an empty batch holds nothing
    assert backend.partitions() == [2, 9]
    backend.delete_many(2, keys[:3])
    assert backend.partitions() == [2, 9]  # one key left
    backend.delete(2, keys[3])
    assert backend.partitions() == [9]
    backend.put(2, keys[1], b"back")
    assert backend.partitions() == [2, 9]
    backend.delete_many(9, keys)
    assert backend.partitions() == [2]
    if isinstance(backend, LevelDBBackend):  # the set kept in memory matches the files
        backend.close()
        again = LevelDBBackend(tmp_path / "data")
        assert again.partitions() == [2]
        again.close()


def test_metadata_is_separate_from_objects(backend):
    backend.put_meta("vnode-id/1", b"abc")
    assert backend.get_meta("vnode-id/1") == b"abc"
    assert backend.partitions() == []


def test_leveldb_persists_across_reopen(tmp_path):
    b = LevelDBBackend(tmp_path / "d")
    b.put(5, b"key", b"value")
    b.put_meta("m", b"x")
    b.close()
    again = LevelDBBackend(tmp_path / "d")
    assert again.get(5, b"key") == b"value"
    assert again.get_meta("m") == b"x"
    again.close()
