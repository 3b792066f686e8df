"""Exchanges yield to the request backlog: they wait while it is long, but not forever."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from types import SimpleNamespace

from spinekv.aae_exchange import IN_SYNC
from spinekv.clock import SystemClock
from spinekv.node.exchange import Exchanges
from spinekv.ring import Ring
from spinekv.tictac import Tree, TreeShape

TID = (0, 2)


class Peer:
    """A transport to a peer whose tree equals ours; notes the backlog when it is asked."""

    def __init__(self, tree: Tree, backlog: list[int]) -> None:
        self._tree = tree
        self._backlog = backlog
        self.asked_at: list[int] = []

    async def request(self, peer: str, wire: object, timeout: float) -> list:
        self.asked_at.append(self._backlog[0])
        return [True, self._tree.root]


def exchanges(backlog: list[int], tick: float) -> tuple[Exchanges, Peer]:
    tree = Tree(TreeShape(segment_bits=8, branch_bits=4))
    tree.add(12345, b"v1")
    peer = Peer(tree, backlog)
    made = Exchanges(
        "n1",
        SimpleNamespace(built=lambda tid: tree),  # type: ignore[arg-type]
        SimpleNamespace(ring=Ring(4, ("n1", "n2") * 2), is_up=lambda n: True),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # handoff: only the background loop asks it
        None,  # type: ignore[arg-type]  # coordinator: an in-sync exchange repairs nothing
        peer,  # type: ignore[arg-type]
        lambda t, b: None,
        tick=tick,
        max_bytes=1 << 20,
        clock=SystemClock(),
        rng=random.Random(1),
        backlog=lambda: backlog[0],
        pause_backlog=64,
    )
    return made, peer


async def test_an_exchange_waits_for_the_backlog_to_shrink():
    backlog = [65]
    made, peer = exchanges(backlog, tick=1.0)  # ten seconds of patience

    async def answered() -> None:
        await asyncio.sleep(0.3)
        backlog[0] = 64  # at the limit is not above it

    started = time.monotonic()
    result, _ = await asyncio.gather(made.exchange(TID), answered())
    assert time.monotonic() - started >= 0.3
    assert result is not None and result.outcome == IN_SYNC
    assert peer.asked_at == [64]  # the peer was asked nothing while the backlog was long


async def test_an_exchange_goes_on_after_ten_ticks_of_backlog_and_says_so(caplog):
    backlog = [1000]
    made, peer = exchanges(backlog, tick=0.05)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="spinekv.exchange"):
        result = await made.exchange(TID)
    assert 0.5 <= time.monotonic() - started < 5
    assert result is not None and result.outcome == IN_SYNC and peer.asked_at == [1000]
    assert "after waiting 0.5 s for a backlog of 1000 requests" in caplog.text


async def test_a_short_backlog_costs_no_wait():
    made, peer = exchanges([3], tick=60.0)
    started = time.monotonic()
    assert (await made.exchange(TID)).outcome == IN_SYNC
    assert time.monotonic() - started < 0.5 and peer.asked_at == [3]
