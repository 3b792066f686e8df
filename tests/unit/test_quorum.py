"""The GET/PUT decision cores and quorum value parsing."""

from __future__ import annotations

import pytest

from spinekv import dvv
from spinekv import object as riak_object
from spinekv.object import Content
from spinekv.props import BucketProps
from spinekv.quorum import (
    CoordinateHere,
    Failed,
    Forward,
    Found,
    GetCore,
    GetOptions,
    NotFound,
    PutCore,
    PutOptions,
    QuorumValueError,
    delete_options,
    get_options,
    put_options,
    resolve,
    route_after_forwards_failed,
    route_put,
)
from spinekv.ring import PrefEntry


def obj(value: bytes, actor: str = "a", base=dvv.EMPTY):
    return riak_object.write(base, dvv.join(base), Content(value), actor, allow_mult=True)


@pytest.mark.parametrize(
    ("spec", "expected"), [("one", 1), ("quorum", 2), ("all", 3), ("2", 2), (3, 3), ("QUORUM", 2)]
)
def test_resolve_symbols_and_numbers(spec, expected):
    assert resolve("r", spec, 3) == expected


def test_resolve_default_uses_bucket_default():
    assert resolve("w", "default", 5, "quorum") == 3


@pytest.mark.parametrize("spec", ["4", "0", "-1", "many", "", "1.5"])
def test_resolve_rejects_bad_r(spec):
    with pytest.raises(QuorumValueError, match="r="):
        resolve("r", spec, 3)


def test_pr_may_be_zero_but_not_above_n():
    assert resolve("pr", "0", 3) == 0
    with pytest.raises(QuorumValueError):
        resolve("pw", 4, 3)


def core(r=2, pr=0, n=3, notfound_ok=True, primaries=3):
    c = GetCore(n=n, r=r, pr=pr, notfound_ok=notfound_ok)
    for i in range(n):
        c.expect(i, i < primaries)
    return c


def test_get_answers_at_r_with_merged_object():
    c = core()
    a = obj(b"x")
    c.add(0, Found(a))
    assert c.outcome() is None
    c.add(1, Found(a))
    assert c.outcome() == Found(a)


def test_get_merges_siblings_from_different_replicas():
    c = core()
    a, b = obj(b"x", "a"), obj(b"y", "b")
    c.add(0, Found(a))
    c.add(1, Found(b))
    out = c.outcome()
    assert isinstance(out, Found)
    assert sorted(x.value for x in riak_object.contents(out.obj)) == [b"x", b"y"]


def test_get_notfound_ok_counts_notfound_but_prefers_found_object():
    c = core()
    a = obj(b"x")
    c.add(0, NotFound())
    c.add(1, Found(a))
    assert c.outcome() == Found(a)


def test_get_all_notfound_is_notfound():
    c = core()
    c.add(0, NotFound())
    c.add(1, NotFound())
    assert c.outcome() == NotFound()


def test_get_tombstone_reads_as_notfound():
    a = obj(b"x")
    dead = riak_object.write(a, dvv.join(a), riak_object.tombstone(5), "a", allow_mult=True)
    c = core()
    c.add(0, Found(dead))
    c.add(1, Found(dead))
    assert c.outcome() == NotFound(dead)  # not found, carrying the tombstone and its context


def test_get_fails_when_r_cannot_be_met_and_says_why():
    c = core()
    c.add(0, Failed("n2 (primary): Unreachable"))
    assert c.outcome() is None
    c.add(1, Failed("n3 (primary): RequestTimeout"))
    out = c.outcome()
    assert isinstance(out, Failed)
    assert "r=2 unsatisfied" in out.reason and "n3" in out.reason


def test_get_pr_counts_only_primaries():
    c = core(r=2, pr=3, primaries=2)
    a = obj(b"x")
    out = c.outcome()
    assert isinstance(out, Failed) and "pr=3" in out.reason
    c2 = core(r=1, pr=2, primaries=2)
    c2.add(2, Found(a))  # a fallback answers first
    assert c2.outcome() is None
    c2.add(0, Found(a))
    assert c2.outcome() is None
    c2.add(1, Found(a))
    assert c2.outcome() == Found(a)


def test_get_notfound_not_ok_waits_for_a_found_copy():
    c = core(notfound_ok=False)
    a = obj(b"x")
    c.add(0, NotFound())
    c.add(1, Found(a))
    assert c.outcome() is None
    c.add(2, NotFound())
    # r=2 found copies are out of reach: that is an unmet quorum, not a 404
    assert isinstance(c.outcome(), Failed)


def test_repair_targets_are_missing_and_stale_replicas():
    c = core()
    old = obj(b"x")
    new = riak_object.write(old, dvv.join(old), Content(b"y"), "b", allow_mult=True)
    c.add(0, Found(new))
    c.add(1, Found(old))
    c.add(2, NotFound())
    merged = c.merged()
    assert merged == new
    assert c.repair_targets(merged) == [1, 2]


THREE = [("n1", True), ("n2", True), ("n3", True)]


def test_put_answers_after_w_acks():
    p = PutCore(THREE, w=2)
    p.add_ack(0, False)
    assert not p.enough()
    p.add_ack(1, False)
    assert p.succeeded()


def test_put_fails_when_w_out_of_reach_with_reasons():
    p = PutCore(THREE, w=3)
    p.add_ack(0, True)
    p.add_failure(1, "n4 (primary): Unreachable")
    reason = p.failure()
    assert reason is not None and "w=3 unsatisfied" in reason and "n4" in reason


def test_put_pw_needs_primary_acks():
    p = PutCore([("n1", True), ("n2", True), ("n4", False)], w=2, pw=3)
    assert p.failure() is not None and "pw=3" in p.failure()


def test_put_dw_counts_durable_acks_only():
    p = PutCore(THREE, w=2, dw=2)
    p.add_ack(0, False)
    p.add_ack(1, True)
    assert not p.succeeded()
    p.add_ack(2, True)
    assert p.succeeded()


def test_node_confirms_counts_distinct_physical_nodes():
    # Two primaries down: both fallback vnodes landed on n1, beside its own primary.
    one_host = [("n1", True), ("n1", False), ("n1", False)]
    p = PutCore(one_host, w=3, node_confirms=2)
    reason = p.failure()
    assert reason is not None and "node_confirms=2 unsatisfied" in reason
    q = PutCore(one_host, w=3)
    for i in range(3):
        q.add_ack(i, False)
    assert q.succeeded()  # w alone is fooled by fallbacks on one host


def test_node_confirms_waits_for_a_second_node():
    p = PutCore([("n1", True), ("n1", False), ("n2", False)], w=2, node_confirms=2)
    p.add_ack(0, False)
    p.add_ack(1, False)
    assert not p.enough()
    p.add_ack(2, False)
    assert p.succeeded()


# ---------------------------------------------------------------- options from props


def test_get_options_take_the_requested_values_over_the_buckets():
    props = BucketProps(n_val=5, r="all", pr=1, notfound_ok=False, basic_quorum=True)
    assert get_options(props, {}, 2.0) == GetOptions(
        r=5, pr=1, notfound_ok=False, basic_quorum=True, timeout=2.0
    )
    asked = get_options(props, {"r": "one", "pr": "default"}, 1.0, notfound_ok=True)
    assert (asked.r, asked.pr, asked.notfound_ok, asked.basic_quorum) == (1, 1, True, True)


def test_put_options_never_ask_for_fewer_acks_than_durable_ones():
    props = BucketProps(n_val=3, w=1, dw=2, pw=0, node_confirms=0)
    assert put_options(props, {}, 1.0) == PutOptions(w=2, dw=2, pw=0, node_confirms=0, timeout=1.0)
    assert put_options(props, {"w": "all", "dw": "0"}, 1.0).w == 3
    assert put_options(props, {"w": 1, "dw": 0}, 1.0).w == 1


def test_delete_options_use_rw_for_the_read_and_the_tombstone():
    props = BucketProps(n_val=3, r=1, w=1, dw=0, rw="quorum")
    read, write = delete_options(props, {}, 1.0)
    assert (read.r, write.w) == (2, 2)
    read, write = delete_options(props, {"rw": "all", "r": "one", "w": "one"}, 1.0)
    assert (read.r, write.w) == (1, 1)
    _, write = delete_options(props, {"rw": "one", "dw": "all"}, 1.0)
    assert (write.w, write.dw) == (3, 3)


def test_options_refuse_values_out_of_range():
    with pytest.raises(QuorumValueError, match="rw=4 is out of range"):
        delete_options(BucketProps(n_val=3), {"rw": "4"}, 1.0)
    with pytest.raises(QuorumValueError, match="node_confirms"):
        put_options(BucketProps(n_val=3), {"node_confirms": "x"}, 1.0)


# ---------------------------------------------------------------- who coordinates a PUT


def _prefs(*nodes: str) -> list[PrefEntry]:
    return [PrefEntry(partition=p, node=n, primary=True) for p, n in enumerate(nodes)]


def test_a_put_is_coordinated_on_a_local_replica():
    assert route_put(_prefs("n1", "n2", "n3"), "n2", forwarded=False) == CoordinateHere(1)
    assert route_put(_prefs("n1", "n2", "n3"), "n2", forwarded=True) == CoordinateHere(1)


def test_a_node_without_a_replica_forwards_once_and_never_again():
    prefs = _prefs("n1", "n2", "n3")
    assert route_put(prefs, "n9", forwarded=False) == Forward(tuple(prefs))
    refused = route_put(prefs, "n9", forwarded=True)
    assert isinstance(refused, Failed) and refused.reason.startswith("forward: n9")


def test_after_every_forward_failed_a_fallback_here_coordinates_or_the_put_fails():
    with_fallback = _prefs("n1", "n9", "n3")
    assert route_after_forwards_failed(with_fallback, "n9", 2, ["x"]) == CoordinateHere(1)
    failed = route_after_forwards_failed(_prefs("n1", "n2"), "n9", 2, ["n1: down", "n2: down"])
    assert isinstance(failed, Failed)
    assert failed.reason == (
        "w=2 unsatisfied: no replica could coordinate the write (n1: down; n2: down)"
    )
