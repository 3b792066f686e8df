"""The internode handshake's pure parts: proofs bind every field, hellos are read strictly,
and the replay memory holds what it must and no more."""

from __future__ import annotations

import pytest

from spinekv.security import handshake as hs

KEY = hs.handshake_key(b"0123456789abcdef0123456789abcdef")
ND, NA = b"d" * hs.NONCE_BYTES, b"a" * hs.NONCE_BYTES
ARGS = ("spine", "n1", "n2", ND, NA)


def test_both_sides_compute_the_same_proofs_and_they_differ_by_direction():
    proof_a = hs.accept_proof(KEY, *ARGS)
    proof_d = hs.dial_proof(KEY, *ARGS)
    assert hs.proof_matches(proof_a, hs.accept_proof(KEY, *ARGS))
    assert hs.proof_matches(proof_d, hs.dial_proof(KEY, *ARGS))
    # A proof the acceptor sent cannot be reflected back as the dialler's.
    assert not hs.proof_matches(proof_d, proof_a)


@pytest.mark.parametrize(
    "changed",
    [
        ("other", "n1", "n2", ND, NA),
        ("spine", "n3", "n2", ND, NA),
        ("spine", "n1", "n3", ND, NA),
        ("spine", "n2", "n1", ND, NA),
        ("spine", "n1", "n2", NA, ND),
        ("spine", "n1", "n2", ND, b"b" * hs.NONCE_BYTES),
        # Field boundaries count: "n1"+"n2" is not "n"+"1n2".
        ("spine", "n", "1n2", ND, NA),
    ],
)
def test_a_proof_is_worth_nothing_for_any_other_transcript(changed):
    assert not hs.proof_matches(hs.dial_proof(KEY, *ARGS), hs.dial_proof(KEY, *changed))


def test_another_secret_makes_other_proofs_and_the_key_is_not_the_secret():
    other = hs.handshake_key(b"fedcba9876543210fedcba9876543210")
    assert not hs.proof_matches(hs.dial_proof(KEY, *ARGS), hs.dial_proof(other, *ARGS))
    assert KEY != b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("given", [None, "text", b"", b"x" * 32, 42])
def test_a_wrong_or_mistyped_proof_does_not_match(given):
    assert not hs.proof_matches(hs.dial_proof(KEY, *ARGS), given)


def test_nonces_are_fresh_and_sized():
    nonces = {hs.new_nonce() for _ in range(100)}
    assert len(nonces) == 100 and {len(n) for n in nonces} == {hs.NONCE_BYTES}


def test_read_hello_takes_a_named_map_with_a_nonce():
    body = {"name": "n1", "cluster": "spine", "nonce": ND}
    assert hs.read_hello(body) == (body, ND)
    for bad in ("n1", {"name": "n1"}, {"name": "", "nonce": ND}, {"name": 1, "nonce": ND}):
        assert isinstance(hs.read_hello(bad), str), bad
    assert "nonce" in hs.read_hello({"name": "n1", "nonce": b"short"})  # type: ignore[operator]


def test_read_challenge_and_proof():
    assert hs.read_challenge({"name": "n2", "nonce": NA, "proof": b"p"}) == ("n2", NA, b"p")
    for bad in (None, {"name": "n2", "nonce": NA}, {"name": "n2", "proof": b"p"}, [1, 2]):
        assert isinstance(hs.read_challenge(bad), str), bad
    assert hs.read_proof({"proof": b"p"}) == b"p"
    assert hs.read_proof({"proof": "p"}) is None and hs.read_proof(b"p") is None


def test_replay_guard_remembers_until_the_ttl():
    guard = hs.ReplayGuard(capacity=10, ttl=60.0)
    guard.remember(ND, now=100.0)
    assert guard.seen(ND, now=159.0)
    assert not guard.seen(NA, now=159.0)
    assert not guard.seen(ND, now=160.0)
    assert len(guard) == 0


def test_replay_guard_is_bounded_in_count_oldest_first():
    guard = hs.ReplayGuard(capacity=3, ttl=60.0)
    nonces = [bytes([i]) * hs.NONCE_BYTES for i in range(5)]
    for i, nonce in enumerate(nonces):
        guard.remember(nonce, now=float(i))
    assert len(guard) == 3
    assert [guard.seen(n, now=5.0) for n in nonces] == [False, False, True, True, True]


def test_replay_guard_rejects_nonsense_bounds():
    with pytest.raises(ValueError):
        hs.ReplayGuard(capacity=0)
    with pytest.raises(ValueError):
        hs.ReplayGuard(ttl=0)
