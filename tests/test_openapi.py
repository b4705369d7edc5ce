"""The OpenAPI description: every route, generated from the request schemas, served, and turned into Postman."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate

from app import create_app
from config.settings import Settings
from controllers.schemas import DNS1123_SUBDOMAIN, cluster_schema, login_schema
from routers import openapi
from tests.service import ADMIN_PASSWORD, Service

DOCS = Path(__file__).resolve().parent.parent / "docs"
OPENAPI_FILE = DOCS / "openapi.json"
POSTMAN_FILE = DOCS / "krm-backend.postman_collection.json"


@pytest.fixture(scope="module")
def app() -> Flask:
    """The app as the generator builds it (no bootstrap: nothing is contacted)."""
    return create_app(Settings(), bootstrap=False)


@pytest.fixture(scope="module")
def spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of that app."""
    return openapi.build_spec(app)


def flask_routes(app: Flask) -> set[tuple[str, str]]:
    """(path, method) of every rule the app serves, as OpenAPI writes them."""
    return {
        (re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def described(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """(path, method) of every operation in the description."""
    return {(path, method.upper()) for path, operations in spec["paths"].items() for method in operations}


def test_every_route_is_described_and_nothing_else(app: Flask, spec: dict[str, Any]) -> None:
    routes = flask_routes(app)
    assert {r for r in routes if r[0].startswith("/api")} == {d for d in described(spec) if d[0].startswith("/api")}
    assert routes == described(spec)


def test_an_undescribed_route_fails_the_build() -> None:
    app = create_app(Settings(), bootstrap=False)
    app.add_url_rule("/api/cluster/rename", "cluster.rename", lambda: "", methods=["POST"])
    with pytest.raises(openapi.RoutesDisagree, match=r"POST /api/cluster/rename"):
        openapi.build_spec(app)


def test_a_described_route_that_is_gone_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(Settings(), bootstrap=False)
    stale = openapi.Operation(summary="gone", tag="cluster", operation_id="gone")
    monkeypatch.setitem(openapi.OPERATIONS, ("cluster.gone", "GET"), stale)
    with pytest.raises(openapi.RoutesDisagree, match=r"GET on endpoint cluster.gone"):
        openapi.build_spec(app)


def test_the_document_is_valid_openapi_3(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.0")
    validate(spec)


def test_request_bodies_come_from_the_marshmallow_schemas(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    cluster_keys = {f.data_key or name for name, f in cluster_schema.fields.items()}
    assert cluster_keys <= set(schemas["Cluster"]["properties"])
    assert schemas["Cluster"]["properties"]["id"]["pattern"] == DNS1123_SUBDOMAIN.pattern
    assert schemas["Cluster"]["properties"]["id"]["maxLength"] == 253
    assert {"clusterId", "clusterid", "cluster_id"} <= set(schemas["Cluster"]["properties"])
    assert set(login_schema.fields) <= set(schemas["Login"]["properties"])
    assert "userName" in schemas["Login"]["properties"]
    add = spec["paths"]["/api/cluster/add"]["post"]["requestBody"]["content"]["application/json"]
    assert add["schema"] == {"$ref": "#/components/schemas/Cluster"}


def test_envelope_token_aliases_and_delete_methods_are_documented(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["Authorization"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "Authorization"}
    assert spec["security"] == [{"Authorization": []}]
    assert spec["paths"]["/api/auth/login"]["post"]["security"] == []
    assert set(spec["paths"]["/api/cluster/delete"]) == {"get", "post", "delete"}
    for path in ("/api/cluster/get", "/api/cluster/delete"):
        for operation in spec["paths"][path].values():
            names = [p["name"] for p in operation["parameters"] if p["in"] == "query"]
            assert names == ["id", "clusterId", "clusterid", "cluster_id"]
    envelope = spec["components"]["schemas"]["Envelope"]
    assert list(envelope["properties"]) == ["status", "message", "data"]
    listed = spec["paths"]["/api/cluster/list"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["examples"]["ok"]["value"]["message"] == "查询成功"


def test_committed_files_are_what_the_generator_writes_now() -> None:
    openapi_text, postman_text = openapi.generate()
    assert OPENAPI_FILE.read_text(encoding="utf-8") == openapi_text, "run: python -m routers.openapi (README)"
    assert POSTMAN_FILE.read_text(encoding="utf-8") == postman_text, "run: python -m routers.openapi (README)"


def test_postman_collection_has_one_request_per_operation(spec: dict[str, Any]) -> None:
    collection = json.loads(POSTMAN_FILE.read_text(encoding="utf-8"))
    assert collection["info"]["schema"] == openapi.POSTMAN_SCHEMA
    requests = [item["request"] for folder in collection["item"] for item in folder["item"]]
    assert {("/" + "/".join(r["url"]["path"]), r["method"]) for r in requests} == described(spec)
    assert collection["auth"]["type"] == "apikey"
    assert {"key": "value", "value": "{{token}}", "type": "string"} in collection["auth"]["apikey"]


def test_openapi_json_is_served_without_a_token(service: Service, spec: dict[str, Any]) -> None:
    resp = service.call("GET", "/openapi.json", auth=False)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json() == spec


def test_every_postman_request_reaches_its_route(service: Service) -> None:
    """Replay the collection against the running service: each request is routed and authenticated."""
    collection = json.loads(POSTMAN_FILE.read_text(encoding="utf-8"))
    values = {"baseUrl": service.url, "clusterId": "postman-replay", "username": "admin", "password": ADMIN_PASSWORD}

    def fill(text: str) -> str:
        return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)

    for folder in collection["item"]:
        for item in folder["item"]:
            request = item["request"]
            values["token"] = service.login()["data"]["token"]  # fresh: the logout requests revoke theirs
            url = fill(request["url"]["raw"])
            headers = {h["key"]: fill(h["value"]) for h in request["header"]}
            if request.get("auth", {}).get("type") != "noauth":
                headers["Authorization"] = values["token"]
            data = fill(request["body"]["raw"]).encode() if "body" in request else None
            resp = service.session.request(request["method"], url, headers=headers, data=data, timeout=10)
            assert resp.status_code in (200, 503), (item["name"], resp.status_code)
            if request["url"]["path"][0] == "api":
                body = resp.json()
                assert list(body) == ["status", "message", "data"], item["name"]
                assert body["status"] not in (401, 404), (item["name"], body)
