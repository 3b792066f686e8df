"""Quorum cores always decide once every replica has answered, and never answer early."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spinekv import object as riak_object
from spinekv.object import Content
from spinekv.props import BucketProps
from spinekv.quorum import (
    Failed,
    Found,
    GetCore,
    NotFound,
    PutCore,
    QuorumValueError,
    delete_options,
    put_options,
    resolve,
)

OBJ = riak_object.write(None, {}, Content(b"v"), "a", allow_mult=True)

replies = st.lists(st.sampled_from(["found", "notfound", "failed"]), min_size=1, max_size=5)


@given(replies, st.data())
def test_get_core_decides_by_the_last_reply_and_only_with_enough(kinds, data):
    n = len(kinds)
    r = data.draw(st.integers(1, n))
    pr = data.draw(st.integers(0, n))
    primaries = data.draw(st.integers(0, n))
    notfound_ok = data.draw(st.booleans())
    core = GetCore(n=n, r=r, pr=pr, notfound_ok=notfound_ok)
    for i in range(n):
        core.expect(i, i < primaries)
    order = data.draw(st.permutations(range(n)))
    decided = None
    for i in order:
        kind = kinds[i]
        reply = Found(OBJ) if kind == "found" else NotFound() if kind == "notfound" else Failed("x")
        core.add(i, reply)
        outcome = core.outcome()
        if outcome is not None and decided is None:
            decided = outcome
            seen = [kinds[j] for j in order[: order.index(i) + 1]]
            positive = seen.count("found") + (seen.count("notfound") if notfound_ok else 0)
            if isinstance(outcome, Found):
                assert positive >= r
    assert decided is not None  # every reply is in: a decision exists, so no request hangs
    assert core.outcome() is not None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ack", "durable", "fail"]), st.sampled_from("abc"), st.booleans()
        ),
        min_size=1,
        max_size=5,
    ),
    st.data(),
)
def test_put_core_decides_by_the_last_reply(replies, data):
    n = len(replies)
    w = data.draw(st.integers(1, n))
    dw = data.draw(st.integers(0, w))
    pw = data.draw(st.integers(0, n))
    confirms = data.draw(st.integers(0, n))
    core = PutCore([(node, primary) for _, node, primary in replies], w, dw, pw, confirms)
    for i, (kind, _, _) in enumerate(replies):
        assert not core.succeeded() or core.enough()
        if kind == "fail":
            core.add_failure(i, "down")
        else:
            core.add_ack(i, kind == "durable")
    assert core.enough()
    acked = [r for r in replies if r[0] != "fail"]
    expected = (
        len(acked) >= w
        and sum(r[0] == "durable" for r in acked) >= dw
        and sum(r[2] for r in acked) >= pw
        and len({r[1] for r in acked}) >= confirms
    )
    assert core.succeeded() == expected


# Quorum values as a bucket or a client may give them, for any n_val.
quorum_values = st.one_of(
    st.sampled_from(["one", "quorum", "all"]), st.integers(0, 7).map(str), st.integers(0, 7)
)


@given(
    st.integers(1, 7),
    st.dictionaries(st.sampled_from(["w", "dw", "pw", "node_confirms", "rw", "r"]), quorum_values),
)
def test_options_stay_within_n_val_and_writes_wait_for_their_durable_acks(n_val, requested):
    props = BucketProps(n_val=n_val)
    try:
        write = put_options(props, requested, 1.0)
        read, tombstone = delete_options(props, requested, 1.0)
    except QuorumValueError:
        return  # out of range for this n_val, or r/w/rw of 0: refused, never clamped
    for opts in (write, tombstone):
        assert opts.dw <= opts.w <= n_val
        assert 0 <= opts.pw <= n_val and 0 <= opts.node_confirms <= n_val
    assert 1 <= read.r <= n_val
    rw = resolve("rw", requested.get("rw", props.rw), n_val)
    if "w" not in requested:  # rw stands in for w, as it does for r
        assert tombstone.w == max(rw, tombstone.dw)
    if "r" not in requested:
        assert read.r == rw
