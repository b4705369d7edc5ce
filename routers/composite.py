"""The composite routes: cluster/statics, cluster/detail, namespace/detail, namespace/copy,
ingress/topology, tools/yaml and tools/ping. HTTP in, envelope out; binding as in ``routers.resources``;
tools/ping is a WebSocket served by ``routers.terminal``'s plumbing.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue
from marshmallow import EXCLUDE, Schema, fields

from config.constants import MSG_FEATURE_OFF, MSG_QUERY_OK
from config.envelope import envelope, ok
from controllers.resources import composite
from controllers.resources.cleaning import bad_request
from controllers.resources.schemas import FIELDS, QUERY_SPELLINGS, StrictBool, Text
from routers import backend, require_ready
from routers.resources import load, platform, post_fields, user
from routers.terminal import serve_ping
from utils.binding import ConflictingKeys, bind_keys, spelling_table

bp = Blueprint("composite", __name__, url_prefix="/api")

COMPOSITE_FIELDS: dict[str, tuple[str, ...]] = {
    **FIELDS,
    "toClusterId": ("toclusterid", "to_cluster_id"),
    "toNamespace": (),
    "createNamespace": (),
    "toResources": (),
    "yaml": (),
}
SPELLINGS = spelling_table(COMPOSITE_FIELDS)
GET_SPELLINGS = QUERY_SPELLINGS


class _Cluster(Schema):
    """The cluster (and namespace) most composite routes take."""

    class Meta:
        unknown = EXCLUDE

    cluster_id = Text(data_key="clusterId", load_default="")
    namespace = Text(data_key="nameSpace", load_default="")
    name = Text(load_default="")


class CopyRequest(Schema):
    """namespace/copy: source cluster and namespace, target cluster and namespace, what to copy."""

    class Meta:
        unknown = EXCLUDE

    cluster_id = Text(data_key="clusterId", load_default="")
    namespace = Text(data_key="nameSpace", load_default="", metadata={"description": "the source (`namespace`)"})
    to_cluster_id = Text(data_key="toClusterId", load_default="")
    to_namespace = Text(data_key="toNamespace", load_default="")
    create_namespace = StrictBool(data_key="createNamespace", load_default=False)
    to_resources = fields.Dict(keys=fields.String(), values=fields.Raw(), data_key="toResources",
                               load_default=dict, allow_none=True)  # fmt: skip


class YamlRequest(Schema):
    """tools/yaml: the YAML text, the method and the dialog's namespace."""

    class Meta:
        unknown = EXCLUDE

    cluster_id = Text(data_key="clusterId", load_default="")
    namespace = Text(data_key="nameSpace", load_default="")
    yaml = Text(load_default="")
    method = Text(load_default="")


cluster_request = _Cluster()
copy_request = CopyRequest()
yaml_request = YamlRequest()


def _fields() -> dict[str, Any]:
    """The query (GET, case-sensitive spellings) or the JSON body (POST, any case) with canonical keys."""
    try:
        if request.method == "GET":
            picked = {k: v for k, v in request.args.items() if k in GET_SPELLINGS}
            return bind_keys(picked, SPELLINGS)
        return post_fields(SPELLINGS)
    except ConflictingKeys as exc:
        raise bad_request(str(exc)) from None


def bind(schema: Schema) -> dict[str, Any]:
    """The request's fields loaded by ``schema``; ``请求出错: <reason>`` on a wrong type."""
    return load(schema, _fields)


@bp.route("/cluster/statics", methods=["GET", "POST"])
def cluster_statics() -> ResponseReturnValue:
    """Home-page statistics of every registered cluster, from the prober's recorded counts."""
    b = require_ready()
    return ok(MSG_QUERY_OK, {"items": composite.cluster_statics(b.clusters.registry)})


@bp.route("/cluster/detail", methods=["GET", "POST"])
def cluster_detail() -> ResponseReturnValue:
    """Five counts of one cluster: live, else recorded."""
    f = bind(cluster_request)
    b = require_ready()
    return ok(MSG_QUERY_OK, composite.cluster_detail(platform(), b.clusters.registry, f["cluster_id"]))


@bp.route("/namespace/detail", methods=["GET", "POST"])
def namespace_detail() -> ResponseReturnValue:
    """Seven counts of one namespace."""
    f = bind(cluster_request)
    message, items = composite.namespace_detail(platform(), f["cluster_id"], f["name"])
    return ok(message, {"items": items})


@bp.post("/namespace/copy")
def namespace_copy() -> ResponseReturnValue:
    """Copy chosen objects into another namespace, in this or another cluster."""
    f = bind(copy_request)
    message, results = composite.namespace_copy(
        platform(), f["cluster_id"], f["namespace"], f["to_cluster_id"], f["to_namespace"],
        f["create_namespace"], f["to_resources"], user(),
    )  # fmt: skip
    return ok(message, {"results": results})


@bp.route("/ingress/topology", methods=["GET", "POST"])
def ingress_topology() -> ResponseReturnValue:
    """The graph of one Ingress."""
    f = bind(cluster_request)
    return ok(MSG_QUERY_OK, composite.ingress_topology(platform(), f["cluster_id"], f["namespace"], f["name"]))


@bp.post("/tools/yaml")
def tools_yaml() -> ResponseReturnValue:
    """Create, update or apply a YAML stream (off with ENABLE_TOOLS_YAML=false)."""
    if not backend().settings.enable_tools_yaml:
        return envelope(403, MSG_FEATURE_OFF)
    f = bind(yaml_request)
    message = composite.tools_yaml(platform(), f["cluster_id"], f["yaml"], f["method"], f["namespace"], user())
    return ok(message)


# As pod/log: the handshake matches only the ``websocket`` rule, a plain GET or POST the other (400 envelope).
@bp.route("/tools/ping", methods=["GET", "POST"])
@bp.route("/tools/ping", methods=["GET"], websocket=True, endpoint="tools_ping")
def tools_ping() -> Response:
    """An echo over WebSocket: each frame back with the time appended (RFC 3339, UTC, milliseconds)."""
    return serve_ping()


def _body_limit() -> None:
    """tools/yaml and copy carry more than the registry's routes: the resource routes' limit."""
    request.max_content_length = current_app.extensions["krm.platform.max_body"]


bp.before_request(_body_limit)
