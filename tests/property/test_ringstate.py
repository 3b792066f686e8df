"""Gossip convergence: ring states merge as a semilattice, so any exchange order agrees."""

from __future__ import annotations

from functools import reduce

from hypothesis import given
from hypothesis import strategies as st

from spinekv import ringstate
from spinekv.ringstate import JOIN, LEAVE, REMOVE, RingState, RingStateError

NODES = [f"n{i}" for i in range(1, 7)]
KNOWN = set(NODES)


def start() -> RingState:
    return ringstate.bootstrap(NODES[:4], 16, 3)


def act(state: RingState, action: tuple, stamp: int) -> RingState:
    """One local change a node might make; refused changes leave the state as it was."""
    kind, arg = action
    try:
        if kind == "stage":
            node, change = arg
            return state.stage(node, change, stamp, KNOWN)
        if kind == "clear":
            return state.clear(stamp)
        if kind == "commit":
            return state.commit()
        if kind == "done":  # finish a few transfers, as the old owners would
            for move in state.pending_moves()[: arg % 4 + 1]:
                state = state.mark_done(move.partition)
            return state.finalised()
        if kind == "exit":
            exiting = [n for n, s in state.members if s == ringstate.EXITING]
            return state.without(exiting[arg % len(exiting)]) if exiting else state
    except RingStateError:
        return state
    raise AssertionError(kind)


actions = st.one_of(
    st.tuples(
        st.just("stage"),
        st.tuples(st.sampled_from(NODES), st.sampled_from([JOIN, LEAVE, JOIN, LEAVE, REMOVE])),
    ),
    st.tuples(st.just("clear"), st.none()),
    st.tuples(st.just("commit"), st.none()),
    st.tuples(st.just("commit"), st.none()),
    st.tuples(st.just("done"), st.integers(0, 63)),
    st.tuples(st.just("done"), st.integers(0, 63)),
    st.tuples(st.just("exit"), st.integers(0, 5)),
)

# A step is either a local action on one replica or a push-pull exchange between two.
steps = st.lists(
    st.one_of(
        # Replica 0 acts most, so staged changes tend to get committed and finished.
        st.tuples(st.just("act"), st.sampled_from([0, 0, 0, 1, 2, 3]), actions),
        st.tuples(st.just("gossip"), st.integers(0, 3), st.integers(0, 3)),
    ),
    min_size=10,
    max_size=80,
)


def run(schedule: list) -> list[RingState]:
    replicas = [start() for _ in range(4)]
    for stamp, step in enumerate(schedule):
        if step[0] == "act":
            _, i, action = step
            replicas[i] = act(replicas[i], action, stamp)
        else:
            _, i, j = step
            merged = ringstate.merge(replicas[i], replicas[j])
            replicas[i] = replicas[j] = merged
    return replicas


@st.composite
def states(draw) -> RingState:
    return draw(st.sampled_from(run(draw(steps))))


@given(states(), states(), states())
def test_merge_is_a_semilattice(a, b, c):
    m = ringstate.merge
    assert m(a, a) == a
    assert m(a, b) == m(b, a)
    assert m(m(a, b), c) == m(a, m(b, c))


@given(steps, st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=20))
def test_gossip_converges_to_the_merge_of_everything(schedule, extra):
    replicas = run(schedule)
    everything = reduce(ringstate.merge, replicas)
    for i, j in extra:  # arbitrary further exchanges, then a sweep through replica 0
        replicas[i] = replicas[j] = ringstate.merge(replicas[i], replicas[j])
    for i in range(4):
        replicas[0] = replicas[i] = ringstate.merge(replicas[0], replicas[i])
    for i in range(4):
        replicas[i] = ringstate.merge(replicas[0], replicas[i])
    assert all(r == everything for r in replicas)
    assert len({r.full_digest for r in replicas}) == 1


@given(steps)
def test_every_state_routes_to_its_members(schedule):
    for state in run(schedule):
        names = set(state.member_names())
        assert set(state.effective.owners) <= names
        assert set(state.target) <= names
        assert state.done <= {m.partition for m in _all_moves(state)}


@given(steps)
def test_round_trips_through_the_codec(schedule):
    for state in run(schedule):
        assert ringstate.decode(ringstate.encode(state)) == state


def _all_moves(state: RingState):
    return [
        ringstate.Move(p, state.owners[p], state.target[p])
        for p in range(state.ring_size)
        if state.owners[p] != state.target[p]
    ]
