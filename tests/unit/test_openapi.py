"""The OpenAPI document is generated from the routes: it has every route, and nothing else."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from spinekv.http import api, openapi
from tests.inproc import unstarted_app


async def _handler(request: web.Request) -> web.Response:
    return web.Response(text="ok")


_DESCRIBED = api.Operation(
    summary="A thing", tag="things", responses={"200": api.text("It.")}, permission=api.USER
)


def _registered(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"  # aiohttp adds HEAD beside every GET
    }


def _documented(doc: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


def test_the_node_documents_exactly_the_routes_it_registers(tmp_path):
    app = unstarted_app(tmp_path)
    doc = json.loads(app[openapi.DOCUMENT])
    validate(doc)
    registered = _registered(app)
    assert sorted(registered - _documented(doc)) == [], "registered but not documented"
    assert sorted(_documented(doc) - registered) == [], "documented but not registered"
    # Every kind of route is there: Riak's, the admin endpoints and the record API.
    assert {
        ("GET", "/types/{type}/buckets/{bucket}/keys/{key}"),
        ("POST", "/buckets/{bucket}/counters/{key}"),
        ("GET", "/buckets/{bucket}/index/{field}/{start}/{end}"),
        ("POST", "/admin/bucket-types/{type}/activate"),
        ("PATCH", "/personal-demographics/FHIR/R4/Patient/{nhs}"),
        ("POST", "/personal-demographics/batch-trace"),
        ("GET", "/openapi.json"),
    } <= registered


def test_each_path_parameter_of_a_route_is_described(tmp_path):
    doc = json.loads(unstarted_app(tmp_path)[openapi.DOCUMENT])
    parameters = doc["components"]["parameters"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            names = [
                parameters[p["$ref"].rsplit("/", 1)[1]]["name"]
                for p in op["parameters"]
                if "$ref" in p and parameters[p["$ref"].rsplit("/", 1)[1]]["in"] == "path"
            ]
            assert [f"{{{name}}}" for name in names] == [
                part for part in path.split("/") if part.startswith("{")
            ], f"{method} {path}"


def test_a_route_declared_without_a_description_is_refused():
    with pytest.raises(TypeError, match="GET /undescribed"):
        openapi.add_routes(web.Application(), [web.get("/undescribed", _handler)])


def test_a_path_variable_without_a_shared_description_is_refused():
    with pytest.raises(KeyError, match=r"GET /things/\{thing\}: no path parameter 'thing'"):
        openapi.document([api.get("/things/{thing}", _handler, _DESCRIBED)])


@pytest.mark.parametrize("name", ["no_such_parameter", "bucket"])
def test_an_operation_names_only_shared_query_or_header_parameters(name):
    """A name missing from openapi.PARAMETERS, or naming a path parameter, is refused."""
    described = api.Operation(
        summary="A thing", tag="things", responses={}, params=(name,), permission=api.USER
    )
    with pytest.raises(KeyError, match=f"no query or header parameter '{name}'"):
        openapi.document([api.get("/things", _handler, described)])


def test_a_described_route_registers_as_aiohttps_own_and_is_documented():
    app = web.Application()
    openapi.add_routes(
        app,
        [
            api.get("/things/{key}", _handler, _DESCRIBED),
            api.post("/things/{key}", _handler, _DESCRIBED),
        ],
    )
    methods = {route.method for route in app.router.routes()}
    assert methods == {"GET", "HEAD", "POST"}  # GET with its HEAD twin, as web.get registers
    assert all(route.handler is _handler for route in app.router.routes())
    doc = json.loads(app[openapi.DOCUMENT])
    validate(doc)
    get = doc["paths"]["/things/{key}"]["get"]
    assert get["summary"] == "A thing" and get["tags"] == ["things"]
    assert get["parameters"] == [{"$ref": "#/components/parameters/key"}]
    assert set(doc["paths"]["/things/{key}"]) == {"get", "post"}
