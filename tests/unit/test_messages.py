"""The internode protocol: typed messages round-trip, bad frames are refused, one route per type."""

from __future__ import annotations

import msgpack
import pytest

from spinekv.node import messages
from spinekv.node.messages import (
    MESSAGE_TYPES,
    Cover,
    Dispatcher,
    Get,
    HandoffBatch,
    Ping,
    ProtocolError,
    Put,
)

SAMPLES = [
    Get(7, b"\x00\x01t\x00\x01bk"),
    Put(3, b"okey", b"encoded", True, False),
    messages.CoordinatePut(
        [b"t", b"b", b"k"], [3, True, False], [["a", 2]], b"c", [2, 0, 0, 0, 1.5]
    ),
    HandoffBatch(5, [[b"k1", b"v1"], [b"k2", b"v2"]], b"ring"),
    Cover(9, [8, 9], "index", [b"t", b"b", "f_bin", "a", "z", False, None, None, None]),
    messages.Gossip(b"frame"),
    Ping(),
    messages.AaeRoot(4, 3),
    messages.AaeBranches(4, 3, None),
    messages.AaeSegments(4, 3, [1, 700]),
    messages.AaeKeys(4, 3, [700]),
    messages.Reap(4, b"okey", b"v" * 16),
    messages.ReplHolds([b"t", b"b", b"k"], 1234.5),
]


def test_every_message_type_has_a_sample_and_a_distinct_tag():
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES)
    assert len({cls.TAG for cls in MESSAGE_TYPES}) == len(MESSAGE_TYPES)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_a_message_survives_the_wire(message):
    wire = msgpack.unpackb(msgpack.packb(message.to_wire(), use_bin_type=True), raw=False)
    assert wire[0] == message.TAG
    assert messages.decode(wire) == message


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("get", "non-empty list"),
        ([], "non-empty list"),
        (["get", 1, b"k"], "unknown message type 'get'"),
        ([99], "unknown message type 99"),
        ([Get.TAG, 1], "Get takes 2 fields, not 1"),
        ([Ping.TAG, "extra"], "Ping takes 0 fields, not 1"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(wire, reason):
    with pytest.raises(ProtocolError, match=reason):
        messages.decode(wire)


def test_the_dispatcher_routes_each_type_to_its_owner_with_the_source():
    table = Dispatcher()
    table.route(Get, lambda source, m: ("get", source, m.partition))
    table.route(Ping, lambda source, m: "pong")
    assert table("n2", Get(4, b"k").to_wire()) == ("get", "n2", 4)
    assert table("n3", Ping().to_wire()) == "pong"
    assert "Put" in table.missing() and "Get" not in table.missing()
    with pytest.raises(ValueError, match="already routed"):
        table.route(Get, lambda source, m: None)
    with pytest.raises(KeyError):
        table("n2", Put(1, b"k", b"v", False, True).to_wire())  # no route: the transport refuses


def _hello(**fields):
    return {"name": "n2", **messages.hello("spine", "127.0.0.1", 8199), **fields}


def test_a_hello_of_this_cluster_and_version_is_admitted():
    assert messages.hello_refusal("spine", _hello()) is None
    assert messages.peer_address(_hello()) == ("127.0.0.1", 8199)


@pytest.mark.parametrize(
    ("peer", "reason"),
    [
        ({"name": "n2"}, "no protocol version"),
        (_hello(version=True), "no protocol version"),
        (_hello(version=messages.PROTOCOL_VERSION + 1), "is not supported here"),
        (_hello(version=messages.MIN_PROTOCOL_VERSION - 1), "is not supported here"),
        (_hello(cluster="other"), "belongs to cluster 'other', not 'spine'"),
    ],
)
def test_a_hello_of_another_version_or_cluster_is_refused(peer, reason):
    refusal = messages.hello_refusal("spine", peer)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("peer", [None, "h:1", ["h"], ["h", "1"], ["h", 0], ["h", 70000]])
def test_a_malformed_peer_address_is_ignored(peer):
    assert messages.peer_address(_hello(peer=peer)) is None
