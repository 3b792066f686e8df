"""Operator endpoints under /admin: what each replica of a key holds, and node status."""

from __future__ import annotations

import os
from dataclasses import asdict

from aiohttp import web

from .. import object as riak_object
from ..node.coordinator import BKey, Coordinator
from ..node.handoff import Handoff
from ..transport.base import TransportError


class AdminHandlers:
    def __init__(self, coordinator: Coordinator, handoff: Handoff, n_val: int) -> None:
        self.coordinator = coordinator
        self.handoff = handoff
        self.n_val = n_val

    async def status(self, request: web.Request) -> web.Response:
        membership = self.coordinator.membership
        ring = membership.ring
        return web.json_response(
            {
                "node": self.coordinator.me,
                "pid": os.getpid(),
                "ring_size": ring.ring_size,
                "members": {
                    name: {"up": membership.is_up(name), "partitions": count}
                    for name, count in sorted(ring.shares().items())
                },
                "handoff": {
                    "pending": [
                        {"partition": p, "owner": owner} for p, owner in self.handoff.pending()
                    ],
                    "active": [asdict(t) for t in self.handoff.stats.active.values()],
                    "recent": [asdict(t) for t in self.handoff.stats.completed],
                },
            }
        )

    async def replicas(self, request: web.Request) -> web.Response:
        """Each preference-list entry of a key and what that replica holds, without repairing."""
        info = request.match_info
        bkey = BKey(info["type"].encode(), info["bucket"].encode(), info["key"].encode())
        coord = self.coordinator
        ring = coord.membership.ring
        n_val = request.query.get("n_val", str(self.n_val))
        if not n_val.isdigit() or int(n_val) < 1:
            return web.Response(status=400, text=f"n_val={n_val!r}: expected a positive integer\n")
        partition = ring.partition_of(bkey.bucket_type, bkey.bucket, bkey.key)
        out = []
        for entry in coord.membership.preflist(partition, int(n_val)):
            row = {"partition": entry.partition, "node": entry.node, "primary": entry.primary}
            try:
                if entry.node == coord.me:
                    raw = coord.vnodes.get_raw(entry.partition, bkey.okey)
                else:
                    raw = await coord.transport.request(
                        entry.node, ["get", entry.partition, bkey.okey], 5.0
                    )
            except TransportError as exc:
                row["status"] = f"error: {exc}"
            else:
                row.update(_describe(raw))
            out.append(row)
        return web.json_response({"partition": partition, "replicas": out})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/status", self.status),
            web.get("/admin/replicas/types/{type}/buckets/{bucket}/keys/{key}", self.replicas),
        ]


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
