"""The service resources' pure rules: the resource map, content negotiation, ring ownership."""

from __future__ import annotations

import pytest
from aiohttp import web

from spinekv.http.service import (
    erlang_ownership,
    negotiate,
    resource_map,
    routes_serving,
)


def test_resource_map_leaves_out_what_is_not_routed():
    async def nothing(request):
        return web.Response()

    app = web.Application()
    app.add_routes([web.get("/ping", nothing), web.put("/buckets/{bucket}/keys/{key}", nothing)])
    app.add_routes([web.get("/types/{type}/buckets/{bucket}/keys/{key}", nothing)])
    # The object route answers PUT only, and Riak's probe is a GET: not offered.
    assert resource_map(routes_serving(app)) == {
        "riak_kv_wm_bucket_type": "/types",
        "riak_kv_wm_ping": "/ping",
    }
    assert resource_map(lambda method, path: False) == {}


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "text/html"),
        ("", "text/html"),
        ("*/*", "text/html"),
        ("application/json", "application/json"),
        ("text/html;q=0.5, application/json", "application/json"),
        ("application/*", "application/json"),
        ("text/*;q=0.1, */*;q=0.9", "application/json"),
        ("application/json;q=0, */*", "text/html"),
        ("image/png", None),
        ("garbage", None),
        ("application/json;q=abc, text/html;q=0.2", "text/html"),
        ("application/json;q=7", None),
        (";;,,/", None),
    ],
)
def test_negotiate_follows_q_values_and_specificity(accept, chosen):
    assert negotiate(accept, ["text/html", "application/json"]) == chosen


def test_ring_ownership_is_printed_as_riak_prints_the_erlang_term():
    assert erlang_ownership({"n2": 3, "n1": 5}) == "[{n1,5},{n2,3}]"
    assert erlang_ownership({"riak@127.0.0.1": 64}) == "[{'riak@127.0.0.1',64}]"
