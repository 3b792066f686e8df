"""Property tests of the object codec's cheap reads against a full decode."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spinekv import object as riak_object
from spinekv.object import Content

ACTORS = ["a", "b", "c"]

contents = st.builds(
    Content,
    value=st.binary(max_size=40),
    content_type=st.sampled_from(["text/plain", "application/json"]),
    last_modified_us=st.integers(0, 10**6),
    deleted=st.booleans(),
    meta=st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=2).map(tuple),
    links=st.lists(st.tuples(st.just("b"), st.text(max_size=3), st.just("t")), max_size=1).map(
        tuple
    ),
)
# A write: (content, writing replica, replica whose context the writer read, or None for
# a write without context, which makes siblings).
writes = st.lists(
    st.tuples(contents, st.integers(0, 2), st.none() | st.integers(0, 2)), max_size=12
)


@given(writes, st.booleans())
def test_cheap_tombstone_reads_agree_with_a_full_decode(history, allow_mult):
    replicas: list = [None, None, None]
    for content, i, read_from in history:
        seen = replicas[read_from] if read_from is not None else None
        context = riak_object.context(seen) if seen is not None else {}
        replicas[i] = riak_object.write(
            replicas[i], context, content, ACTORS[i], allow_mult=allow_mult
        )
    for obj in filter(None, replicas):
        data = riak_object.encode(obj)
        decoded = riak_object.decode(data)
        assert riak_object.deleted_flags(data) == [c.deleted for c in riak_object.contents(decoded)]
        assert riak_object.is_encoded_tombstone(data) == riak_object.is_tombstone(decoded)
