"""Operator endpoints under /admin: node status, ring state and staged changes, replicas, AAE."""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict

from aiohttp import web

from .. import object as riak_object
from .. import ringstate
from ..config import ClusterConfig
from ..node.aae import AaeTrees
from ..node.coordinator import BKey, Coordinator
from ..node.exchange import Exchanges
from ..node.handoff import Handoff
from ..node.messages import Get
from ..ringstate import JOIN, LEAVE, REMOVE, RingStateError
from ..transport.base import TransportError
from . import api, openapi
from .request import HttpError, json_answer, path_names, refusing


class AdminHandlers:
    def __init__(
        self,
        config: ClusterConfig,
        coordinator: Coordinator,
        handoff: Handoff,
        aae: AaeTrees | None,
        exchanges: Exchanges | None,
    ) -> None:
        self.config = config
        self.coordinator = coordinator
        self.handoff = handoff
        self.aae = aae
        self.exchanges = exchanges
        self.n_val = config.n_val

    async def status(self, request: web.Request) -> web.Response:
        membership = self.coordinator.membership
        state = membership.state
        now = membership.clock.monotonic()
        return web.json_response(
            {
                "node": self.coordinator.me,
                "pid": os.getpid(),
                "ring_size": state.ring_size,
                "ring": {"epoch": state.epoch, "digest": state.full_digest},
                "members": {
                    name: {"up": membership.is_up(name), "partitions": now, "status": status}
                    for name, (now, _), status in _member_rows(state)
                },
                "handoff": {
                    "pending": [
                        {"partition": p, "target": target, "kind": kind}
                        for p, target, kind in self.handoff.pending()
                    ],
                    "active": [
                        {**asdict(t), "elapsed": now - t.started}
                        for t in self.handoff.stats.active.values()
                    ],
                    "recent": [asdict(t) for t in self.handoff.stats.completed],
                },
            }
        )

    async def aae_trees(self, request: web.Request) -> web.Response:
        """This node's anti-entropy trees: per preference list, its state, keys and root,
        its last exchange and the keys its exchanges repaired in the last hour."""
        trees, exchanges = self.aae, self.exchanges
        rows = [] if trees is None else trees.status()
        if exchanges is not None:
            for row in rows:
                row.update(exchanges.tree_status((row["partition"], row["n_val"])))
        return web.json_response(
            {
                "node": self.coordinator.me,
                "enabled": trees is not None,
                "segments": None if trees is None else trees.shape.segments,
                "trees": rows,
            }
        )

    async def identity(self, request: web.Request) -> web.Response:
        """Who answers on this port: `spinekv up` checks that it is the node it started."""
        return web.json_response(
            {"node": self.coordinator.me, "pid": os.getpid(), "cluster": self.config.name}
        )

    @refusing(json_answer)
    async def replicas(self, request: web.Request) -> web.Response:
        """Each preference-list entry of a key and what that replica holds, without repairing."""
        info = path_names(request)
        bkey = BKey(info["type"].encode(), info["bucket"].encode(), info["key"].encode())
        coord = self.coordinator
        ring = coord.membership.ring
        n_val = request.query.get("n_val", str(self.n_val))
        ring_size = coord.membership.ring.ring_size
        if not (n_val.isascii() and n_val.isdigit() and 1 <= int(n_val) <= ring_size):
            raise HttpError(400, f"n_val={n_val!r}: expected an integer from 1 to {ring_size}")
        partition = ring.partition_of(bkey.bucket_type, bkey.bucket, bkey.key)
        out = []
        for entry in coord.membership.preflist(partition, int(n_val)):
            row = {"partition": entry.partition, "node": entry.node, "primary": entry.primary}
            try:
                if entry.node == coord.me:
                    raw = coord.vnodes.get_raw(entry.partition, bkey.okey)
                else:
                    raw = await coord.transport.request(
                        entry.node, Get(entry.partition, bkey.okey).to_wire(), 5.0
                    )
            except TransportError as exc:
                row["status"] = f"error: {exc}"
            else:
                row.update(_describe(raw))
            out.append(row)
        return web.json_response({"partition": partition, "replicas": out})

    async def ring(self, request: web.Request) -> web.Response:
        """The ring state as this node sees it, with who is reachable from here."""
        membership = self.coordinator.membership
        state = membership.state
        return web.json_response(
            {
                "node": self.coordinator.me,
                "epoch": state.epoch,
                "digest": state.full_digest,
                "ring_size": state.ring_size,
                "members": [
                    {
                        "node": name,
                        "status": status,
                        "up": membership.is_up(name),
                        "partitions": now,
                        "partitions_after": after,
                    }
                    for name, (now, after), status in _member_rows(state)
                ],
                "pending": [
                    {"partition": m.partition, "source": m.source, "target": m.target}
                    for m in state.pending_moves()
                ],
                "staged": state.staged_changes(),
                "unreachable": [n for n in membership.known() if not membership.is_up(n)],
            }
        )

    @refusing(json_answer)
    async def stage(self, request: web.Request) -> web.Response:
        """POST /admin/stage?action=join|leave|remove&node=NAME"""
        action = request.query.get("action", "")
        node = request.query.get("node", "")
        if action not in (JOIN, LEAVE, REMOVE):
            raise HttpError(400, f"action={action!r}: expected join, leave or remove")
        if node not in self.coordinator.membership.known():
            raise HttpError(400, f"node={node!r}: not a node in cluster.toml")
        membership = self.coordinator.membership
        if action == JOIN:
            # It may have just started, and the link to it be waiting out a reconnect
            # backoff (at most 2 s): keep asking it directly for a little while.
            deadline = membership.clock.monotonic() + 3.0
            while not membership.is_up(node) and membership.clock.monotonic() < deadline:
                await membership.probe(node)
                if not membership.is_up(node):
                    await asyncio.sleep(0.2)
        if action == JOIN and not membership.is_up(node):
            raise HttpError(
                409,
                f"{node} is not reachable from {membership.me}; start it first "
                f"(spinekv up --detach {node})",
            )
        try:
            state = membership.stage(node, action)
        except RingStateError as exc:
            raise HttpError(409, str(exc)) from None
        return web.json_response({"staged": state.staged_changes()})

    async def clear(self, request: web.Request) -> web.Response:
        state = self.coordinator.membership.clear()
        return web.json_response({"staged": state.staged_changes()})

    @refusing(json_answer)
    async def plan(self, request: web.Request) -> web.Response:
        membership = self.coordinator.membership
        try:
            plan = membership.plan()
        except RingStateError as exc:
            raise HttpError(409, str(exc)) from None
        state = membership.state
        before = state.effective.shares()
        after = plan.target.shares()
        return web.json_response(
            {
                "joins": list(plan.joins),
                "leaves": list(plan.leaves),
                "removes": list(plan.removes),
                "moves": [
                    {"partition": m.partition, "source": m.source, "target": m.target}
                    for m in plan.moves
                ],
                "shares": {
                    n: [before.get(n, 0), after.get(n, 0)] for n in sorted({*before, *after})
                },
                "warnings": list(plan.warnings),
            }
        )

    @refusing(json_answer)
    async def commit(self, request: web.Request) -> web.Response:
        membership = self.coordinator.membership
        try:
            state = membership.commit()
        except RingStateError as exc:
            raise HttpError(409, str(exc)) from None
        return web.json_response(
            {"epoch": state.epoch, "digest": state.full_digest, "moves": len(state.pending_moves())}
        )

    def routes(self) -> list[api.Route]:
        return [
            api.get("/admin/node", self.identity, _IDENTITY),
            api.get("/admin/status", self.status, _STATUS),
            api.get("/admin/ring", self.ring, _RING),
            api.get("/admin/aae", self.aae_trees, _AAE),
            api.post("/admin/stage", self.stage, _STAGE),
            api.post("/admin/clear", self.clear, _CLEAR),
            api.get("/admin/plan", self.plan, _PLAN),
            api.post("/admin/commit", self.commit, _COMMIT),
            api.get(
                "/admin/replicas/types/{type}/buckets/{bucket}/keys/{key}", self.replicas, _REPLICAS
            ),
        ]


def _member_rows(state: ringstate.RingState) -> list[tuple[str, tuple[int, int], str]]:
    """(node, (partitions now, after pending moves), status) for every member."""
    shares = ringstate.shares(state)
    return [(name, shares.get(name, (0, 0)), status) for name, status in state.members]


def _describe(raw: bytes | None) -> dict:
    if raw is None:
        return {"status": "notfound"}
    obj = riak_object.decode(raw)
    status = "tombstone" if riak_object.is_tombstone(obj) else "found"
    return {
        "status": status,
        "siblings": len(riak_object.contents(obj)),
        "vclock": riak_object.encode_context(riak_object.context(obj)),
    }


# ------------------------------------------------------------------ OpenAPI descriptions

_CHANGE = {**openapi.ADMIN_RESULT, **openapi.ADMIN_REFUSED}
_IDENTITY = api.Operation(
    permission=api.USER,
    summary="Who answers on this port: node name, process id and cluster name",
    tag="admin",
    responses=openapi.ADMIN_RESULT,
)
_STATUS = api.Operation(
    permission=api.USER,
    summary="This node, its ring view and handoffs",
    tag="admin",
    responses=openapi.ADMIN_RESULT,
)
_RING = api.Operation(
    permission="admin",
    summary="The ring state as this node sees it",
    tag="admin",
    responses=openapi.ADMIN_RESULT,
)
_AAE = api.Operation(
    permission="admin",
    summary="This node's anti-entropy trees: state, keys, root, last rebuild and exchange of each",
    tag="admin",
    responses={"200": api.json_answer(api.schema("AaeStatus"), "The trees.")},
)
_STAGE = api.Operation(
    permission="admin",
    summary="Stage a membership change",
    tag="admin",
    responses=_CHANGE,
    params=(
        api.query(
            "action",
            {"type": "string", "enum": ["join", "leave", "remove"]},
            "What to stage.",
            required=True,
        ),
        api.query("node", {"type": "string"}, "A node of cluster.toml.", required=True),
    ),
)
_CLEAR = api.Operation(
    permission="admin",
    summary="Drop the staged changes",
    tag="admin",
    responses=openapi.ADMIN_RESULT,
)
_PLAN = api.Operation(
    permission="admin",
    summary="What committing the staged changes would do",
    tag="admin",
    responses=_CHANGE,
)
_COMMIT = api.Operation(
    permission="admin", summary="Commit the staged changes", tag="admin", responses=_CHANGE
)
_REPLICAS = api.Operation(
    permission="admin",
    summary="What each replica of a key holds, without repairing it",
    tag="admin",
    responses={**openapi.ADMIN_RESULT, "400": api.response("BadRequest")},
    params=(api.query("n_val", {"type": "integer", "minimum": 1}, "Replicas to show."),),
)
