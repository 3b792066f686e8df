"""Replication queues: filters, the bound, and durable FIFOs whose numbering survives a reopen."""

from __future__ import annotations

import pytest

from spinekv.config import ReplSource
from spinekv.dvv import EMPTY, update
from spinekv.node.coordinator import BKey
from spinekv.node.replqueues import ReplQueue, ReplQueues
from spinekv.replqueue import (
    BEHIND,
    HOLDS_KEY,
    SCAN_MOST,
    Entry,
    Filter,
    FilterError,
    Pending,
    hold_reason,
    mentions,
    overflow,
    parse_filter,
    pending,
)
from spinekv.storage.leveldb import LevelDBBackend
from spinekv.storage.memory import MemoryBackend
from spinekv.tictac import version
from tests.sim.storage import DurableStore, SimBackend


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("any", Filter()),
        ("type:records", Filter(b"records")),
        ("bucket:records/patients", Filter(b"records", b"patients")),
        ("prefix:t/b/a/b", Filter(b"t", b"b", b"a/b")),
    ],
)
def test_each_filter_form_parses(text, wanted):
    assert parse_filter(text) == wanted


@pytest.mark.parametrize(
    "text",
    ["", "all", "type", "type:", "bucket:t", "bucket:/b", "bucket:t/b/c", "prefix:t/b", "x:t"],
)
def test_malformed_filters_are_refused(text):
    with pytest.raises(FilterError, match=r"expected|prefix"):
        parse_filter(text)


def test_filters_match_what_they_name_and_nothing_else():
    cases = [(b"t", b"b", b"key"), (b"t", b"c", b"key"), (b"u", b"b", b"key"), (b"t", b"b", b"x")]
    assert [Filter().matches(*c) for c in cases] == [True, True, True, True]
    assert [parse_filter("type:t").matches(*c) for c in cases] == [True, True, False, True]
    assert [parse_filter("bucket:t/b").matches(*c) for c in cases] == [True, False, False, True]
    assert [parse_filter("prefix:t/b/ke").matches(*c) for c in cases] == [
        True,
        False,
        False,
        False,
    ]


def test_overflow_makes_room_for_exactly_one_more():
    assert [overflow(depth, 3) for depth in range(6)] == [0, 0, 0, 1, 2, 3]


def test_entries_round_trip():
    entry = Entry(b"t", b"b", b"\x00k", b"\x01" * 16, 1_700_000_000.25)
    assert Entry.decode(entry.encode()) == entry


def _entry(i: int) -> Entry:
    return Entry(b"t", b"b", b"k%d" % i, bytes(16), float(i))


@pytest.fixture(params=["memory", "leveldb", "sim"])
def backend(request, tmp_path):
    if request.param == "memory":
        b = MemoryBackend()
    elif request.param == "leveldb":
        b = LevelDBBackend(tmp_path / "data")
    else:
        b = SimBackend(DurableStore())
    yield b
    b.close()


def test_a_queue_is_fifo_read_leaves_entries_ack_removes_them(backend):
    queue = ReplQueue(ReplSource("dr", Filter()), backend)
    assert (queue.first, queue.end, queue.depth) == (1, 1, 0)
    for i in range(5):
        queue.append(_entry(i))
    assert queue.depth == 5
    assert queue.read(3) == [(1, _entry(0)), (2, _entry(1)), (3, _entry(2))]
    assert queue.read(3) == queue.read(3)  # reading removes nothing
    queue.ack(2)
    assert queue.depth == 3
    assert [seq for seq, _ in queue.read(10)] == [3, 4, 5]
    queue.ack(99)  # past the tail: everything, and no further
    assert queue.depth == 0 and queue.read(10) == []
    queue.append(_entry(9))
    assert queue.read(10) == [(6, _entry(9))]


def test_queues_are_kept_apart(backend):
    a = ReplQueue(ReplSource("a", Filter()), backend)
    ab = ReplQueue(ReplSource("ab", Filter()), backend)
    a.append(_entry(1))
    ab.append(_entry(2))
    ab.append(_entry(3))
    assert a.read(10) == [(1, _entry(1))]
    assert ab.read(10) == [(1, _entry(2)), (2, _entry(3))]


def test_past_the_bound_the_oldest_are_dropped_and_counted(backend):
    queue = ReplQueue(ReplSource("dr", Filter(), max_entries=3), backend)
    for i in range(7):
        queue.append(_entry(i))
    assert queue.depth == 3 and queue.dropped == 4 and queue.enqueued == 7
    assert queue.read(10) == [(5, _entry(4)), (6, _entry(5)), (7, _entry(6))]


def test_sequence_numbers_go_on_after_a_reopened_leveldb(tmp_path):
    source = ReplSource("dr", Filter())
    backend = LevelDBBackend(tmp_path / "data")
    queue = ReplQueue(source, backend)
    for i in range(4):
        queue.append(_entry(i))
    queue.ack(1)
    backend.close()

    backend = LevelDBBackend(tmp_path / "data")
    queue = ReplQueue(source, backend)
    assert (queue.first, queue.end) == (2, 5)
    assert queue.read(10) == [(2, _entry(1)), (3, _entry(2)), (4, _entry(3))]
    queue.ack(4)  # emptied: only the trim mark remembers where numbering stood
    backend.close()

    backend = LevelDBBackend(tmp_path / "data")
    queue = ReplQueue(source, backend)
    assert (queue.first, queue.end, queue.depth) == (5, 5, 0)
    queue.append(_entry(7))
    assert queue.read(10) == [(5, _entry(7))]
    backend.close()


def test_a_simulated_crash_keeps_only_synced_queue_writes():
    store = DurableStore()
    source = ReplSource("dr", Filter())
    queue = ReplQueue(source, SimBackend(store))
    queue.append(_entry(0))
    queue.append(_entry(1))
    store.sync()
    queue.ack(1)
    queue.append(_entry(2))
    store.rollback()
    queue = ReplQueue(source, SimBackend(store))
    assert queue.read(10) == [(1, _entry(0)), (2, _entry(1))]


def test_on_write_queues_on_every_matching_queue_once():
    backend = MemoryBackend()
    sources = [
        ReplSource("all", Filter()),
        ReplSource("recs", parse_filter("type:records")),
        ReplSource("other", parse_filter("bucket:default/other")),
    ]
    queues = ReplQueues(sources, backend, lambda: 1234.5)
    obj = update(EMPTY, {}, b"v", "n1")
    queues.on_write(BKey(b"records", b"p", b"k"), obj)
    assert queues.stat_counters() == {
        "repl_queue_all_depth": 1,
        "repl_queue_all_enqueued": 1,
        "repl_queue_all_dropped": 0,
        "repl_queue_recs_depth": 1,
        "repl_queue_recs_enqueued": 1,
        "repl_queue_recs_dropped": 0,
        "repl_queue_other_depth": 0,
        "repl_queue_other_enqueued": 0,
        "repl_queue_other_dropped": 0,
    }
    [(_, entry)] = queues.queues["recs"].read(10)
    assert entry == Entry(b"records", b"p", b"k", version(obj), 1234.5)


# ------------------------------------------------------------------ holding a reap back


def test_a_queue_whose_oldest_entry_is_younger_than_the_delete_is_clear():
    assert pending(None, 0, after=100.0) is Pending.CLEAR  # empty
    assert pending(100.5, 5 * SCAN_MOST, after=100.0) is Pending.CLEAR  # acked past it
    assert pending(100.0, SCAN_MOST, after=100.0) is Pending.SCAN  # the delete may be next
    assert pending(3.0, SCAN_MOST + 1, after=100.0) is Pending.BEHIND


def test_mentions_finds_an_entry_of_the_key_only():
    raw = [_entry(i).encode() for i in range(50)]
    assert mentions(raw, b"t", b"b", b"k7")
    assert not mentions(raw, b"t", b"b", b"k50")
    # The key's bytes appear, but in another bucket, type or as part of another key.
    assert not mentions(raw, b"t", b"other", b"k7")
    assert not mentions(raw, b"u", b"b", b"k7")
    assert not mentions(raw, b"t", b"b", b"k")
    assert not mentions([], b"t", b"b", b"k7")


def test_the_reason_names_the_queue_node_and_why():
    assert hold_reason("dr", "n2", HOLDS_KEY) == (
        "replication queue 'dr' on n2 still holds a change of the key (its sink has not applied it)"
    )
    assert hold_reason("dr", "n2", BEHIND) == (
        "replication queue 'dr' on n2 is more than 10,000 entries behind"
    )


def test_a_queue_holds_a_key_until_its_entry_is_acknowledged(backend):
    queue = ReplQueue(ReplSource("dr", Filter()), backend)
    for i in range(10):
        queue.append(_entry(i))  # k<i> queued at time i
    key = BKey(b"t", b"b", b"k4")
    assert queue.holds(key, after=5.0) == HOLDS_KEY
    assert queue.holds(BKey(b"t", b"b", b"k40"), after=5.0) is None  # never queued
    queue.ack(queue.first + 4)  # k0..k4 applied by the sink
    assert queue.holds(key, after=5.0) is None  # the head, k5, is not younger: scanned
    assert queue.holds(key, after=4.5) is None  # the head is younger: not scanned


def test_a_queue_too_far_behind_holds_every_older_key(backend, monkeypatch):
    for module in ("spinekv.replqueue", "spinekv.node.replqueues"):
        monkeypatch.setattr(f"{module}.SCAN_MOST", 3)
    queue = ReplQueue(ReplSource("dr", Filter()), backend)
    for i in range(4):
        queue.append(_entry(i))
    assert queue.holds(BKey(b"t", b"b", b"nowhere"), after=1.0) == BEHIND
    assert queue.holds(BKey(b"t", b"b", b"nowhere"), after=-1.0) is None
    queue.ack(queue.first)
    assert queue.holds(BKey(b"t", b"b", b"nowhere"), after=1.0) is None  # 3 left: scanned


def test_only_queues_whose_filter_carries_the_key_are_asked():
    backend = MemoryBackend()
    sources = [ReplSource("recs", parse_filter("type:records")), ReplSource("all", Filter())]
    queues = ReplQueues(sources, backend, lambda: 10.0)
    obj = update(EMPTY, {}, b"v", "n1")
    key = BKey(b"default", b"b", b"k")
    assert queues.holding(key, after=20.0) is None
    queues.on_write(key, obj)
    assert queues.holding(key, after=20.0) == ("all", HOLDS_KEY)
    queues.queues["all"].ack(queues.queues["all"].end - 1)
    assert queues.holding(key, after=20.0) is None
