"""/api/cluster: add, update, delete, get, list."""

from __future__ import annotations

from flask import Blueprint, Response, request
from marshmallow import ValidationError

from config.constants import (
    MSG_ADD_OK,
    MSG_BIND_ADD,
    MSG_BIND_UPDATE,
    MSG_DELETE_FAILED,
    MSG_DELETE_OK,
    MSG_GET_FAILED,
    MSG_QUERY_OK,
    MSG_UPDATE_OK,
)
from config.envelope import JSON_CONTENT_TYPE, ok
from controllers import cluster
from controllers.errors import BadRequest
from controllers.schemas import ID_ALIASES, ConflictingKeys, bind_id_keys, cluster_schema, describe_errors
from routers import json_body, require_ready

bp = Blueprint("cluster", __name__, url_prefix="/api/cluster")


def _load_cluster(bind_message: str) -> dict:
    """The cluster body, validated; a 400 with the Go bind message otherwise."""
    try:
        return cluster_schema.load(json_body(bind_message))
    except ValidationError as exc:
        raise BadRequest(f"{bind_message}: {describe_errors(exc.messages)}") from None


def _request_id(fail_message: str) -> str | None:
    """The cluster id from the query, a form or a JSON body (keys in any letter case, as Go binds JSON)."""
    sources: list[dict] = [request.args]
    if request.method in ("POST", "DELETE"):
        sources.append(request.form)
        body = request.get_json(silent=True, force=True)
        if isinstance(body, dict):
            try:
                sources.append(bind_id_keys(body))
            except ConflictingKeys as exc:
                raise BadRequest(f"{fail_message}: {exc}") from None
    for source in sources:
        for key in ID_ALIASES:
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


@bp.post("/add")
def add():
    """Register a cluster by its kubeconfig."""
    b = require_ready()
    cluster.add(b.clusters, _load_cluster(MSG_BIND_ADD))
    return ok(MSG_ADD_OK)


@bp.post("/update")
def update():
    """Change a registered cluster; the edit form posts back what ``get`` returned."""
    b = require_ready()
    cluster.update(b.clusters, _load_cluster(MSG_BIND_UPDATE))
    return ok(MSG_UPDATE_OK)


@bp.route("/delete", methods=["GET", "POST", "DELETE"])
def delete():
    """Remove a cluster from the registry (GET as in Go; POST and DELETE too)."""
    b = require_ready()
    cluster.delete(b.clusters, _request_id(MSG_DELETE_FAILED))
    return ok(MSG_DELETE_OK)


@bp.get("/get")
def get():
    """One cluster with its kubeconfig."""
    b = require_ready()
    return ok(MSG_QUERY_OK, {"item": cluster.get(b.clusters, _request_id(MSG_GET_FAILED))})


_listed: tuple[object, bytes] | None = None  # (the registry's items JSON, the envelope built around it)


@bp.get("/list")
def list_():
    """Every registered cluster, without kubeconfigs (the envelope is built once per registry change)."""
    global _listed
    b = require_ready()
    items = cluster.list_clusters_json(b.clusters)
    cached = _listed
    if cached is None or cached[0] is not items:
        cached = _listed = (items, ok(MSG_QUERY_OK, {"items": items}).get_data())
    return Response(cached[1], status=200, content_type=JSON_CONTENT_TYPE)
