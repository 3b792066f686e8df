"""GET /admin/audit/verify: walk one node's audit chain and report gaps, edits and forgeries."""

from __future__ import annotations

from aiohttp import web

from ..records.outcome import RecordError
from ..records.services import RecordServices
from . import api, openapi


class AuditHandlers:
    """The operator's view of the audit chains (admin only, like every /admin route).

    A node held against its own head also finds a deleted tail, so `spinekv admin audit verify`
    asks each node for its own chain, and another node only for a node that does not answer.
    """

    def __init__(self, services: RecordServices) -> None:
        self.services = services

    def routes(self) -> list[api.Route]:
        return [api.get("/admin/audit/verify", self.verify, _VERIFY)]

    async def verify(self, request: web.Request) -> web.Response:
        audit = self.services.audit
        node = request.query.get("node", audit.node)
        if not node or node not in self.services.config.node_names():
            return web.json_response({"error": f"node {node!r} is not in cluster.toml"}, status=400)
        try:
            report = await audit.verify(node)
        except RecordError as exc:
            return web.json_response({"error": exc.diagnostics}, status=exc.status)
        return web.json_response({**report.to_json(), "verified_by": audit.node})


_VERIFY = api.Operation(
    permission="admin",
    summary="Walk a node's audit chain (default: this node's, held against its head)",
    tag="admin",
    responses={
        **openapi.ADMIN_RESULT,
        "400": api.json_answer(api.schema("AdminResult"), "Not a node of cluster.toml."),
        "503": api.json_answer(api.schema("AdminResult"), "The audit records cannot be read."),
    },
    params=(api.query("node", {"type": "string"}, "The node whose chain to walk."),),
)
