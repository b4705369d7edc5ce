"""GET /openapi.json: the OpenAPI 3 description of every route, and the Postman collection made from it.

The request bodies are described by the marshmallow schemas the routes load (``controllers/schemas.py``,
through apispec's marshmallow plugin); everything else a route does (envelope, aliases, methods) is in
``OPERATIONS`` below, keyed by the Flask endpoint. ``build_spec`` walks ``app.url_map`` and refuses to
describe an app whose routes and ``OPERATIONS`` disagree, so a new route cannot ship undescribed.

``python -m routers.openapi --openapi docs/openapi.json --postman docs/krm-backend.postman_collection.json``
writes both files (``--check`` compares instead of writing).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app

from config import constants as c
from controllers.resources import kinds as k
from controllers.resources import schemas as rs
from controllers.resources.kinds import KINDS, Kind
from controllers.schemas import ID_ALIASES, USERNAME_ALIASES, cluster_schema, login_schema
from routers import composite as composite_routes
from routers.resources import endpoint as resource_endpoint
from routers.resources import methods as resource_methods

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.0.3"  # 3.0 rather than 3.1: what Postman, Swagger UI and most generators import best
POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
TITLE = "krm-backend"
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})  # answered by Flask for every GET / by CORS; not operations
UNDOCUMENTED_ENDPOINTS = frozenset({"static"})  # Flask's static-file route; this app ships no static files
SECURITY = "Authorization"
TAGS = (
    ("auth", "Login and logout (no token needed)."),
    ("cluster", "The cluster registry."),
    ("operations", "Probes, metrics and this description (no token, no envelope)."),
    ("tools", "The YAML tool: create, update or apply multi-document YAML."),
    *(
        (
            kind.prefix,
            f"{kind.kind} ({kind.api_version}), by `clusterId`"
            + (f"; also under /api/{', /api/'.join(kind.aliases)}" if kind.aliases else ""),
        )
        for kind in KINDS
    ),
)

ENVELOPE_TEXT = (
    'Every `/api` route answers HTTP 200 with the envelope `{"status", "message", "data"}` (keys in that '
    "order, `data` always an object). The outcome is the body's `status`: 200 success, 400 a request or "
    "upstream failure, 401 authentication failure (the frontend drops its token), 404 unknown `/api` route, "
    "500/503 the service's own fault (metadata cluster unreachable, not ready yet)."
)
DESCRIPTION = f"""A wire-compatible Python port of the Go krm-backend: a registry of Kubernetes clusters.

{ENVELOPE_TEXT}

Authentication: `POST /api/auth/login` returns `data.token`; send it as `Authorization: <token>` (raw, as the
Vue frontend does; `Bearer <token>` works too). Only login and logout need no token.

Resources: `/api/<kind>/<action>` (namespace, node, pod, deployment, statefulset, daemonset, cronjob, replicaset,
service, ingress, ingressclass, configmap, secret, persistentvolume or `pv`, persistentvolumeclaim or `pvc`,
storageclass) act on the registered cluster `clusterId`; every route also accepts POST with a JSON body
whose keys bind case-insensitively, as in Go.

Cluster ids: wherever a route takes `id`, the aliases `clusterId`, `clusterid` and `cluster_id` work too.
JSON body keys bind as Go binds them, in any letter case (`UserName`, `PassWord`, `kubeConfig`,
`displayname`, `ID`, `clusterID`); two spellings of one field with different values are refused.
Unknown query parameters (the frontend's `timeStamp=<ms>`) and unknown body keys are ignored."""


@dataclass(frozen=True)
class Operation:
    """What one method of one route does, beyond its marshmallow request schema."""

    summary: str
    tag: str
    operation_id: str
    description: str = ""
    public: bool = False  # no token needed
    body: str | None = None  # component schema of the JSON body
    body_example: dict[str, Any] | None = None
    body_optional: bool = False  # delete: the id may come from the query instead
    form_body: bool = False  # also accepts an HTML form (delete)
    query_id: bool = False  # takes the cluster id (and its aliases) from the query
    query: tuple[dict[str, Any], ...] = ()  # other query parameters (OpenAPI parameter objects)
    data: str | None = None  # component schema of the envelope's data; None: a non-API answer
    ok_message: str = ""
    ok_data: dict[str, Any] = field(default_factory=dict)
    failure: tuple[int, str] | None = None
    plain: dict[str, Any] | None = None  # the responses of a non-API route, as written


_CLUSTER_EXAMPLE = {
    "id": "prod-bj-1",
    "displayName": "生产集群",
    "city": "北京",
    "district": "朝阳",
    "kubeconfig": "apiVersion: v1\nkind: Config\nclusters: ...\n",
}
_ITEM_EXAMPLE = {
    "id": "prod-bj-1",
    "displayName": "生产集群",
    "city": "北京",
    "district": "朝阳",
    "version": "v1.36.3",
    "status": c.STATUS_ACTIVE,
    "clusterVersion": "v1.36.3",
    "clusterStatus": c.STATUS_ACTIVE,
}
_HEALTH_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Probe"}}}


def _delete(method: str) -> Operation:
    """``delete`` answers GET (as in Go), POST and DELETE alike."""
    takes_body = method != "GET"
    return Operation(
        summary=f"Delete a cluster ({method})",
        tag="cluster",
        operation_id=f"deleteCluster{method.capitalize()}" if method != "GET" else "deleteCluster",
        description="Removes the cluster's Secret; never contacts the cluster itself, so it works while the "
        "cluster is down. The id comes from the query"
        + (" or from a JSON or form body." if takes_body else ".")
        + " Go answers GET only; POST and DELETE are this port's additions.",
        query_id=True,
        body="ClusterId" if takes_body else None,
        body_example={"id": "prod-bj-1"} if takes_body else None,
        body_optional=True,
        form_body=takes_body,
        data="Empty",
        ok_message=c.MSG_DELETE_OK,
        failure=(400, f'{c.MSG_DELETE_FAILED}: secrets "prod-bj-1" not found'),
    )


def _logout(method: str) -> Operation:
    """``logout`` answers GET (as in Go) and POST."""
    return Operation(
        summary=f"Log out ({method})",
        tag="auth",
        operation_id="logout" if method == "GET" else "logoutPost",
        description="Revokes the presented token for every worker and replica until its own expiry (Go "
        "revokes nothing: there the client only drops it). No token, or a dead one, still answers success; "
        f"when the revocation cannot be recorded (metadata cluster down) the answer is 503 `{c.MSG_LOGOUT_FAILED}`. "
        "Go answers GET only; POST is this port's addition.",
        public=True,
        data="Empty",
        ok_message=c.MSG_LOGOUT_OK,
    )


# Keyed by (Flask endpoint, method): a route missing here, or an entry without a route, fails build_spec.
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("auth.login", "POST"): Operation(
        summary="Log in",
        tag="auth",
        operation_id="login",
        description="Exchanges the admin's username and password for a token (HS256 JWT, lifetime "
        "`JWT_EXPIRE_TIME` minutes). Keys bind in any letter case (`userName`, `PassWord`); the password may "
        "be the plain value or its MD5 hex. Any bad body, two disagreeing spellings included, is the 401.",
        public=True,
        body="Login",
        body_example={"username": "admin", "password": "<password>"},
        data="LoginData",
        ok_message=c.MSG_LOGIN_OK,
        ok_data={"token": "<jwt>"},
        failure=(401, c.MSG_BAD_LOGIN),
    ),
    ("auth.logout", "GET"): _logout("GET"),
    ("auth.logout", "POST"): _logout("POST"),
    ("cluster.add", "POST"): Operation(
        summary="Add a cluster",
        tag="cluster",
        operation_id="addCluster",
        description="Parses the kubeconfig (current context; policy in the README), asks the cluster for its "
        "version within the cluster timeouts, and writes the cluster Secret. An existing id is a failure.",
        body="Cluster",
        body_example=_CLUSTER_EXAMPLE,
        data="Empty",
        ok_message=c.MSG_ADD_OK,
        failure=(400, f"{c.MSG_CLUSTER_INFO}: connection refused (https://10.0.0.1:6443)"),
    ),
    ("cluster.update", "POST"): Operation(
        summary="Update a cluster",
        tag="cluster",
        operation_id="updateCluster",
        description="Same body as add; the edit form may post back the whole item `get` returned (read-only "
        "keys are ignored). An empty `kubeconfig` keeps the stored one.",
        body="Cluster",
        body_example=_CLUSTER_EXAMPLE,
        data="Empty",
        ok_message=c.MSG_UPDATE_OK,
        failure=(400, f'{c.MSG_UPDATE_FAILED}: secrets "prod-bj-1" not found'),
    ),
    ("cluster.delete", "GET"): _delete("GET"),
    ("cluster.delete", "POST"): _delete("POST"),
    ("cluster.delete", "DELETE"): _delete("DELETE"),
    ("cluster.get", "GET"): Operation(
        summary="Get a cluster",
        tag="cluster",
        operation_id="getCluster",
        description="One cluster: its list item plus the kubeconfig (what the edit form posts back).",
        query_id=True,
        data="ClusterGetData",
        ok_message=c.MSG_QUERY_OK,
        ok_data={"item": {**_ITEM_EXAMPLE, "kubeconfig": _CLUSTER_EXAMPLE["kubeconfig"]}},
        failure=(400, f'{c.MSG_GET_FAILED}: secrets "prod-bj-1" not found'),
    ),
    ("cluster.list_", "GET"): Operation(
        summary="List clusters",
        tag="cluster",
        operation_id="listClusters",
        description="Every registered cluster, never a kubeconfig; `[]` when there is none.",
        data="ClusterListData",
        ok_message=c.MSG_QUERY_OK,
        ok_data={"items": [_ITEM_EXAMPLE]},
        failure=(503, f"{c.MSG_LIST_FAILED}: {c.MSG_METADATA_UNAVAILABLE} (connection refused)"),
    ),
    ("health.healthz", "GET"): Operation(
        summary="Liveness",
        tag="operations",
        operation_id="healthz",
        description="The process answers (the liveness probe).",
        public=True,
        plain={"200": {"description": "Alive.", "content": _HEALTH_JSON}},
    ),
    ("health.readyz", "GET"): Operation(
        summary="Readiness",
        tag="operations",
        operation_id="readyz",
        description="Bootstrap is done and the metadata namespace answers now (the readiness probe).",
        public=True,
        plain={
            "200": {"description": "Ready.", "content": _HEALTH_JSON},
            "503": {"description": "Not ready; `reason` says why.", "content": _HEALTH_JSON},
        },
    ),
    ("metrics.scrape", "GET"): Operation(
        summary="Prometheus metrics",
        tag="operations",
        operation_id="metrics",
        description="Requests and latency per route, registry size, per-cluster readiness and probe latency, "
        "in the Prometheus text format. It names every registered cluster: do not expose it publicly.",
        public=True,
        plain={
            "200": {
                "description": "The metrics.",
                "content": {"text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}},
            }
        },
    ),
    ("openapi.document", "GET"): Operation(
        summary="This description",
        tag="operations",
        operation_id="openapi",
        description="The OpenAPI 3 description of every route.",
        public=True,
        plain={"200": {"description": "OpenAPI 3 document.", "content": {"application/json": {"schema": {}}}}},
    ),
}


# The resource routes (contract-platform.md §2.1-2.7): one operation per (route, method), from the kind table.
RESOURCE_BODIES = {
    "CompositeCluster": composite_routes.cluster_request,
    "NamespaceCopy": composite_routes.copy_request,
    "ToolsYaml": composite_routes.yaml_request,
    "ResourceList": rs.list_request,
    "ResourceGet": rs.get_request,
    "ResourceWrite": rs.write_request,
    "ResourceDelete": rs.delete_request,
    "ResourceDeleteList": rs.delete_list_request,
    "ResourceName": rs.name_request,
}
_ACTION_BODY = {k.LIST: "ResourceList", k.GET: "ResourceGet", k.ADD: "ResourceWrite", k.UPDATE: "ResourceWrite",
                k.DELETE: "ResourceDelete", k.DELETELIST: "ResourceDeleteList", k.RESTART: "ResourceName"}  # fmt: skip
_ACTION_TEXT = {
    k.LIST: (
        "List",
        "In the server's order; an empty `nameSpace` lists all namespaces. A failure answers `data.items = []`.",
    ),
    k.GET: (
        "Get",
        "The server's object; `method=Copy` answers a copy without identity, status and allocated "
        "addresses, ready for add.",
    ),
    k.ADD: (
        "Add",
        "Creates the item: apiVersion/kind set by the route, only the kind's own keys kept, server "
        "fields dropped; namespace `nameSpace`, else the item's, else `default`.",
    ),
    k.UPDATE: ("Update", "An unconditional PUT of the cleaned item (resourceVersion dropped): last write wins."),
    k.DELETE: ("Delete", "DELETE with propagationPolicy=Background; a zero grace period only with `forceDelete`."),
    k.DELETELIST: ("Delete several", "Up to 500 names, 8 at a time; failures are reported in `data.failed`."),
    k.RESTART: ("Restart", "A merge PATCH of the pod template's `kubeeasy.com/restart` annotation (local time)."),
}
_EXAMPLES = {"clusterId": "{{clusterId}}", "nameSpace": "default", "name": "web", "method": "", "labelSelector": "",
             "fieldSelector": "", "forceDelete": "false"}  # fmt: skip


def _query_parameters(schema_name: str) -> tuple[dict[str, Any], ...]:
    """The query parameters of a GET route: the scalar fields of its body schema."""
    params = []
    for name, fld in RESOURCE_BODIES[schema_name].fields.items():
        key = fld.data_key or name
        if key in ("item", "deleteList", "autoCreateService"):
            continue
        description = fld.metadata.get("description", "")
        if key == "forceDelete":
            description = "`true`, `false`, `1` or `0` (also `ForceDelete`, `force`)"
        params.append({"name": key, "in": "query", "required": key == "clusterId",
                       "schema": {"type": "string"}, "description": description,
                       "example": _EXAMPLES.get(key, "")})  # fmt: skip
    return tuple(params)


def _resource_operation(kind: Kind, prefix: str, action: str, method: str) -> Operation:
    """The description of one method of one resource route."""
    body = _ACTION_BODY[action]
    ok_message = {k.LIST: c.MSG_QUERY_OK, k.GET: c.MSG_DETAIL_OK, k.ADD: c.MSG_CREATE_OK,
                  k.UPDATE: kind.update_message, k.DELETE: c.MSG_DELETE_OK, k.DELETELIST: c.MSG_DELETE_OK,
                  k.RESTART: c.MSG_RESTART_OK}[action]  # fmt: skip
    failure = {k.LIST: c.MSG_QUERY_FAILED, k.GET: c.MSG_QUERY_FAILED, k.ADD: c.MSG_CREATE_FAILED,
               k.UPDATE: c.MSG_RESOURCE_UPDATE_FAILED, k.DELETE: c.MSG_RESOURCE_DELETE_FAILED,
               k.DELETELIST: c.MSG_RESOURCE_DELETE_FAILED, k.RESTART: c.MSG_RESTART_FAILED}[action]  # fmt: skip
    summary, text = _ACTION_TEXT[action]
    if prefix == "namespace":
        body = "ResourceName" if action in (k.ADD, k.DELETE) else body
        ok_message = {k.LIST: c.MSG_NS_LIST_OK, k.GET: c.MSG_NS_GET_OK, k.ADD: "创建ns: <name>成功",
                      k.UPDATE: "更新ns: <name>成功", k.DELETE: "删除ns: <name>成功"}[action]  # fmt: skip
        if action == k.UPDATE:
            text = "Reads the namespace fresh, replaces its labels and annotations with the item's, PUTs (one retry)."
        if action == k.DELETE:
            text = "Refuses `PROTECTED_NAMESPACES` and the registry's namespace on the metadata cluster."
    if prefix == "node" and action == k.UPDATE:
        text = "Reads the Node fresh and applies only `metadata.labels`, `spec.taints` and `spec.unschedulable`."
    alias = f" (alias of /api/{kind.prefix}/{action})" if prefix != kind.prefix else ""
    data = {k.LIST: "ResourceListData", k.GET: "ResourceGetData"}.get(action, "Empty")
    examples: dict[str, dict[str, Any]] = {k.LIST: {"items": []}, k.GET: {"item": {}}}
    ok_data = examples.get(action, {})
    get = method == "GET"
    return Operation(
        summary=f"{summary} {kind.kind} ({method})" + (" (alias)" if alias else ""),
        tag=kind.prefix,
        operation_id=f"{action}{prefix.capitalize()}{method.capitalize()}",
        description=text + alias + (" The same fields as the POST body, in the query." if get else ""),
        body=None if get else body,
        body_example=None if get else {"clusterId": "prod-bj-1", "nameSpace": "default", "name": "web"},
        query=_query_parameters(body) if get else (),
        data=data,
        ok_message=ok_message,
        ok_data=ok_data,
        failure=(400, f'{failure}: deployments.apps "web" not found'),
    )


for _kind in KINDS:
    for _prefix in _kind.prefixes:
        for _action in _kind.actions:
            for _method in resource_methods(_kind, _action):
                _endpoint = f"resources.{resource_endpoint(_prefix, _action)}"
                OPERATIONS[(_endpoint, _method)] = _resource_operation(_kind, _prefix, _action, _method)


def _composite_operation(endpoint: str, method: str, body: str, tag: str, summary: str, text: str, ok_message: str,
                         failure: str, example: dict[str, Any]) -> Operation:  # fmt: skip
    """The description of one method of one composite route (contract-platform.md §2.6-§2.10)."""
    get = method == "GET"
    return Operation(
        summary=f"{summary} ({method})",
        tag=tag,
        operation_id=f"{endpoint.split('.')[-1].replace('_', ' ').title().replace(' ', '')}{method.capitalize()}",
        description=text + (" The same fields as the POST body, in the query." if get else ""),
        body=None if get else body,
        body_example=None if get else example,
        query=_query_parameters(body) if get else (),
        data="Empty",
        ok_message=ok_message,
        failure=(400, failure),
    )


_COMPOSITE: tuple[tuple[Any, ...], ...] = (
    ("composite.cluster_statics", ("GET", "POST"), "CompositeCluster", "cluster", "Home-page statistics",
     "Six entries (cluster, node, pod, namespace, deployment, daemonset) with header, seriesName, total and "
     "per-cluster data, from the counts the prober records; no call to any cluster. No input.",
     c.MSG_QUERY_OK, f"{c.MSG_STATICS_FAILED}: {c.MSG_METADATA_UNAVAILABLE}", {}),
    ("composite.cluster_detail", ("GET", "POST"), "CompositeCluster", "cluster", "Counts of one cluster",
     "node, namespace, pod, deployment, daemonset counted live; the prober's last counts when the cluster does "
     "not answer (`data.live`, `data.countedAt`).", c.MSG_QUERY_OK, "集群不存在: prod-bj-1",
     {"clusterId": "prod-bj-1"}),
    ("composite.namespace_detail", ("GET", "POST"), "CompositeCluster", "namespace", "Counts of one namespace",
     "pod, deployment, statefulset, daemonset, service, configmap, secret of namespace `name`; kinds that cannot "
     "be counted are named in the message.", c.MSG_NS_GET_OK, f'{c.MSG_QUERY_FAILED}: namespaces "x" not found',
     {"clusterId": "prod-bj-1", "name": "default"}),
    ("composite.namespace_copy", ("POST",), "NamespaceCopy", "namespace", "Copy objects to another namespace",
     "Copies `toResources` ({Kind: [names]}) from `clusterId`/`namespace` to `toClusterId`/`toNamespace`, cleaned "
     "for copying, in the order ConfigMap, Secret, Service, Deployment, StatefulSet, DaemonSet, CronJob; "
     "`data.results` has one entry per object.", c.MSG_COPY_OK,
     f"{c.MSG_COPY_DONE_FAILED} 1 项: ConfigMap/cfg: already exists",
     {"clusterId": "prod-bj-1", "namespace": "web", "toClusterId": "prod-sh-1", "toNamespace": "web",
      "createNamespace": True, "toResources": {"ConfigMap": ["cfg"]}}),
    ("composite.ingress_topology", ("GET", "POST"), "CompositeCluster", "ingress", "Ingress topology",
     "`data.nodes=[{id,label,resourceType}]`, `data.edges=[{from,to}]`: host, path, service, pods.",
     c.MSG_QUERY_OK, f'{c.MSG_TOPOLOGY_FAILED}: ingresses.networking.k8s.io "web" not found',
     {"clusterId": "prod-bj-1", "nameSpace": "default", "name": "web"}),
    ("composite.tools_yaml", ("POST",), "ToolsYaml", "tools", "Create, update or apply YAML",
     "`method` Create (default), Update or Apply (server-side, field manager krm-backend); one message line per "
     "document; any failure a 400. Off with ENABLE_TOOLS_YAML=false (403).", c.MSG_CREATE_OK,
     "第1项yaml数据创建失败: configmaps \"cfg\" already exists",
     {"clusterId": "prod-bj-1", "yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n",
      "method": "Create"}),
)  # fmt: skip
for _ep, _methods, _body, _tag, _summary, _text, _ok, _fail, _example in _COMPOSITE:
    for _method in _methods:
        OPERATIONS[(_ep, _method)] = _composite_operation(_ep, _method, _body, _tag, _summary, _text, _ok, _fail,
                                                          _example)  # fmt: skip


def _ws_query(*extra: tuple[str, str]) -> tuple[dict[str, Any], ...]:
    """The query parameters of a WebSocket route (§3)."""
    fields = (("clusterId", "the cluster (also `clusterid`, `cluster_id`)"),
              ("nameSpace", "the Pod's namespace (also `namespace`); default `default`"),
              ("name", "the Pod"), ("container", "default: the Pod's first container"), *extra)  # fmt: skip
    return tuple({"name": name, "in": "query", "required": name in ("clusterId", "name"),
                  "schema": {"type": "string"}, "description": text} for name, text in fields)  # fmt: skip


_WS_TEXT = (" A WebSocket (GET with upgrade headers); the token comes as the only offered subprotocol "
            "(`Sec-WebSocket-Protocol: <token>`, echoed) or in `Authorization`. Refusals before the upgrade are "
            "envelopes (401 token, 400 `需要WebSocket连接` without upgrade headers); after it, one text frame with "
            "the reason and close 1008 (bad input), 1011 (cluster) or 1013 (`WS_MAX_SESSIONS` reached). "
            "A ping every `WS_PING_SECONDS`; frames from the browser are limited to 64 KiB.")  # fmt: skip
for _method in ("GET", "POST"):
    OPERATIONS[("terminal.pod_log", _method)] = Operation(
        summary=f"Follow a Pod's log over WebSocket ({_method})",
        tag="pod",
        operation_id=f"podLog{_method.capitalize()}",
        description="One text frame per log line (valid UTF-8, lines cut at 64 KiB), following new lines until "
        "the browser closes or `LOG_MAX_SECONDS`." + _WS_TEXT,
        query=_ws_query(
            ("tailLines", "lines of history, default 100, at most 10000"), ("follow", "`true` (default) or `false`")
        ),
        data="Empty",
        ok_message=c.MSG_WS_REQUIRED,
        failure=(400, c.MSG_WS_REQUIRED),
    )
    OPERATIONS[("terminal.pod_exec", _method)] = Operation(
        summary=f"A terminal in a container over WebSocket ({_method})",
        tag="pod",
        operation_id=f"podExec{_method.capitalize()}",
        description="Runs `defaultCommand` (else `defaultComamnd`, else `/bin/bash`) with a TTY. Browser frames: "
        '`{"messageType":"input","data":"…"}`, `{"messageType":"resize","rows":R,"cols":C}`, or binary stdin; '
        "server frames: the terminal's output as UTF-8 text. Close 1000 when the process exits. "
        "`ENABLE_POD_EXEC=false`: 403 `功能已关闭`." + _WS_TEXT,
        query=_ws_query(
            ("defaultCommand", "the command (one argv element)"),
            ("defaultComamnd", "the same (the frontend's first exec spells it so)"),
        ),
        data="Empty",
        ok_message=c.MSG_WS_REQUIRED,
        failure=(400, c.MSG_WS_REQUIRED),
    )
    OPERATIONS[("composite.tools_ping", _method)] = Operation(
        summary=f"Echo with the server time over WebSocket ({_method})",
        tag="tools",
        operation_id=f"toolsPing{_method.capitalize()}",
        description="Each frame comes back with one space and the time appended, RFC 3339 in UTC with "
        "milliseconds: `hello` → `hello 2026-12-02T03:13:25.123Z`; a binary frame comes back as a binary frame. "
        "A session like an exec: counted in `WS_MAX_SESSIONS` (over it, an error frame and close 1013), closed "
        "1000 after `EXEC_IDLE_SECONDS` without a frame or `EXEC_MAX_SECONDS` in all, 1009 on a frame over "
        "64 KiB. A WebSocket (GET with upgrade headers); the token comes as the only offered subprotocol "
        "(`Sec-WebSocket-Protocol: <token>`, echoed) or in `Authorization`. Refusals before the upgrade are "
        "envelopes (401 token, 400 `需要WebSocket连接` without upgrade headers). A ping every `WS_PING_SECONDS`.",
        data="Empty",
        ok_message=c.MSG_WS_REQUIRED,
        failure=(400, c.MSG_WS_REQUIRED),
    )


class RoutesDisagree(ValueError):
    """The app's routes and ``OPERATIONS`` differ; the message lists every difference."""


def route_methods(app: Flask) -> dict[tuple[str, str], tuple[str, str]]:
    """Every (endpoint, method) the app answers, mapped to (OpenAPI path, method)."""
    found = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED_ENDPOINTS:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            found[(rule.endpoint, method)] = (path, method)
    return found


def check_routes(app: Flask) -> list[str]:
    """The differences between the app's routes and ``OPERATIONS`` (empty when they agree)."""
    routes = route_methods(app)
    problems = [f"{m} {p} (endpoint {e}) is not described in routers/openapi.py"
                for (e, _), (p, m) in sorted(routes.items()) if (e, m) not in OPERATIONS]  # fmt: skip
    problems += [f"{m} on endpoint {e} is described but the app has no such route"
                 for (e, m) in sorted(OPERATIONS) if (e, m) not in routes]  # fmt: skip
    return problems


def _id_schema() -> dict[str, Any]:
    """The body that carries only a cluster id (delete by POST or DELETE)."""
    return {
        "type": "object",
        "description": "The cluster id under any of its names; the first non-empty one is used.",
        "properties": {key: {"type": "string"} for key in ID_ALIASES},
    }


def _item_schema() -> dict[str, Any]:
    """A list item: Go's six annotation keys, the two mirrors, and this port's health fields."""
    properties: dict[str, Any] = {key: {"type": "string"} for key in c.ITEM_KEYS}
    properties["status"] = {"type": "string", "description": f"`{c.STATUS_ACTIVE}` or `{c.STATUS_INACTIVE}`"}
    properties["clusterVersion"] = {"type": "string", "description": "mirrors `version` (some frontends read it)"}
    properties["clusterStatus"] = {"type": "string", "description": "mirrors `status` (some frontends read it)"}
    return {"type": "object", "properties": properties, "required": [*c.ANNOTATION_KEYS, "clusterVersion",
                                                                     "clusterStatus"]}  # fmt: skip


def _add_aliases(schema: dict[str, Any], canonical: str, aliases: tuple[str, ...]) -> None:
    """Describe the alias keys a schema's ``pre_load`` accepts, and require one of them instead of one key."""
    for alias in aliases:
        schema["properties"][alias] = {"type": "string", "description": f"accepted for `{canonical}`"}
    schema["required"] = [key for key in schema.get("required", []) if key != canonical]
    schema["anyOf"] = [{"required": [key]} for key in (canonical, *aliases)]
    if not schema["required"]:
        del schema["required"]


def _envelope_response(op: Operation) -> dict[str, Any]:
    """The HTTP 200 answer of an /api route: the envelope with this route's ``data``."""
    examples: dict[str, Any] = {
        "ok": {"summary": "success", "value": {"status": 200, "message": op.ok_message, "data": op.ok_data}}
    }
    if op.failure is not None:
        status, message = op.failure
        examples["failed"] = {"summary": "failure", "value": {"status": status, "message": message, "data": {}}}
    if not op.public:
        examples["unauthenticated"] = {
            "summary": "no token",
            "value": {"status": 401, "message": c.MSG_NO_TOKEN, "data": {}},
        }
    schema = {
        "allOf": [
            {"$ref": "#/components/schemas/Envelope"},
            {"type": "object", "properties": {"data": {"$ref": f"#/components/schemas/{op.data}"}}},
        ]
    }
    return {
        "200": {
            "description": "Always HTTP 200; the outcome is the body's `status`.",
            "content": {"application/json": {"schema": schema, "examples": examples}},
        }
    }


def _operation(op: Operation) -> dict[str, Any]:
    """One OpenAPI operation object."""
    out: dict[str, Any] = {"tags": [op.tag], "summary": op.summary, "operationId": op.operation_id}
    if op.description:
        out["description"] = op.description
    if op.public:
        out["security"] = []
    if op.query:
        out["parameters"] = [copy.deepcopy(param) for param in op.query]
    if op.query_id:
        out["parameters"] = [
            {
                "name": key,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "the cluster id (one of `id`, `clusterId`, `clusterid`, `cluster_id` is needed)"
                if key == "id"
                else "alias of `id`",
            }
            for key in ID_ALIASES
        ]
    if op.body is not None:
        ref = {"schema": {"$ref": f"#/components/schemas/{op.body}"}}
        content: dict[str, Any] = {"application/json": {**ref, "example": op.body_example}}
        if op.form_body:
            content["application/x-www-form-urlencoded"] = copy.deepcopy(ref)
        out["requestBody"] = {"required": not op.body_optional, "content": content}
    out["responses"] = op.plain if op.plain is not None else _envelope_response(op)
    return out


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3 document of ``app``; ``RoutesDisagree`` when a route is undescribed or gone."""
    problems = check_routes(app)
    if problems:
        raise RoutesDisagree("; ".join(problems))
    spec = APISpec(
        title=TITLE,
        version=_version(),
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION},
        servers=[{"url": "/", "description": "the service that serves this document"}],
        tags=[{"name": name, "description": text} for name, text in TAGS],
        security=[{SECURITY: []}],
    )
    spec.components.security_scheme(SECURITY, {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "The raw token from login (`Authorization: <token>`); `Bearer <token>` is accepted too.",
    })  # fmt: skip
    # The request bodies, from the very schemas the routes load.
    spec.components.schema("Cluster", schema=cluster_schema)
    spec.components.schema("Login", schema=login_schema)
    spec.components.schema("ClusterId", _id_schema())
    for name, schema in RESOURCE_BODIES.items():
        spec.components.schema(name, schema=schema)
    spec.components.schema("ResourceListData", {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "object", "description": "an API server object"}}}})  # fmt: skip
    spec.components.schema("ResourceGetData", {"type": "object", "properties": {
        "item": {"type": "object", "description": "the API server's object"}}})  # fmt: skip
    spec.components.schema("Envelope", {
        "type": "object", "description": ENVELOPE_TEXT, "required": ["status", "message", "data"],
        "properties": {
            "status": {"type": "integer", "enum": [200, 400, 401, 404, 500, 503]},
            "message": {"type": "string"},
            "data": {"type": "object"},
        },
    })  # fmt: skip
    spec.components.schema("Empty", {"type": "object", "description": "`{}`"})
    spec.components.schema("LoginData", {"type": "object", "properties": {"token": {"type": "string"}}})
    spec.components.schema("ClusterItem", _item_schema())
    spec.components.schema("ClusterDetail", {"allOf": [
        {"$ref": "#/components/schemas/ClusterItem"},
        {"type": "object", "properties": {"kubeconfig": {"type": "string"}}, "required": ["kubeconfig"]},
    ]})  # fmt: skip
    spec.components.schema("ClusterListData", {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/ClusterItem"}}}})  # fmt: skip
    spec.components.schema("ClusterGetData", {"type": "object", "properties": {
        "item": {"$ref": "#/components/schemas/ClusterDetail"}}})  # fmt: skip
    spec.components.schema("Probe", {"type": "object", "properties": {
        "status": {"type": "string"}, "reason": {"type": "string"}}})  # fmt: skip
    paths: dict[str, dict[str, Any]] = {}
    for (endpoint, method), (path, _) in sorted(route_methods(app).items(), key=lambda kv: kv[1]):
        paths.setdefault(path, {})[method.lower()] = _operation(OPERATIONS[(endpoint, method)])
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    schemas = document["components"]["schemas"]
    _add_aliases(schemas["Cluster"], "id", ID_ALIASES[1:])
    schemas["Cluster"]["description"] = (
        "The add/update body. Unknown keys (and the read-only keys `get` returns) are ignored; a wrong type is "
        "a failure. `id` becomes the Secret's name."
    )
    _add_aliases(schemas["Login"], "username", USERNAME_ALIASES[1:])
    return document


def _version() -> str:
    """The package version (the description's ``info.version``)."""
    try:
        return metadata.version("krm-backend")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@bp.get("/openapi.json")
def document():
    """The OpenAPI 3 description (no token)."""
    cached = current_app.extensions.get("krm.openapi")
    if cached is None:
        cached = dump(build_spec(current_app))
        current_app.extensions["krm.openapi"] = cached
    return Response(cached, status=200, content_type="application/json; charset=utf-8")


def dump(document: dict[str, Any]) -> str:
    """A document as the committed files hold it: indented, UTF-8 text kept readable, final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# Postman ---------------------------------------------------------------------------------------------


def _postman_request(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    """One Postman request item from one OpenAPI operation."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    query = []
    for param in operation.get("parameters", []):
        if param["in"] == "query":
            value = param.get("example", "{{clusterId}}")
            entry = {"key": param["name"], "value": value, "description": param.get("description", "")}
            # One id is sent: in the body when the request has one, else as `id`; the aliases (the Vue copies
            # send clusterId) are there to switch on.
            if (param["name"] != "id" and "example" not in param) or body is not None:
                entry["disabled"] = True
            query.append(entry)
    enabled = "&".join(f"{q['key']}={q['value']}" for q in query if not q.get("disabled"))
    url: dict[str, Any] = {
        "raw": "{{baseUrl}}" + path + (f"?{enabled}" if enabled else ""),
        "host": ["{{baseUrl}}"],
        "path": [part for part in path.split("/") if part],
    }
    if query:
        url["query"] = query
    request: dict[str, Any] = {"method": method.upper(), "header": [], "url": url}
    if operation.get("description"):
        request["description"] = operation["description"]
    if body is not None:
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        example = dict(body.get("example") or {})
        if "id" in example:
            example["id"] = "{{clusterId}}"  # one variable drives add, get, update and delete
        if "clusterId" in example:
            example["clusterId"] = "{{clusterId}}"  # the resource routes act on that cluster
        if operation["operationId"] == "login":
            example = {"username": "{{username}}", "password": "{{password}}"}
        raw = json.dumps(example, indent=2, ensure_ascii=False)
        request["body"] = {"mode": "raw", "raw": raw, "options": {"raw": {"language": "json"}}}
    if operation.get("security") == []:
        request["auth"] = {"type": "noauth"}
    item: dict[str, Any] = {"name": operation["summary"], "request": request, "response": []}
    if operation["operationId"] == "login":
        # Keep the token for every other request of the collection (they send {{token}}).
        item["event"] = [{"listen": "test", "script": {"type": "text/javascript", "exec": [
            "const body = pm.response.json();",
            "if (body.status === 200) { pm.collectionVariables.set('token', body.data.token); }",
        ]}}]  # fmt: skip
    return item


def postman_collection(document: dict[str, Any]) -> dict[str, Any]:
    """A Postman collection (v2.1) with one request per operation, in folders by tag."""
    folders: dict[str, list[dict[str, Any]]] = {tag["name"]: [] for tag in document.get("tags", [])}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            folders.setdefault(operation["tags"][0], []).append(_postman_request(path, method, operation))
    descriptions = {tag["name"]: tag.get("description", "") for tag in document.get("tags", [])}
    return {
        "info": {
            "_postman_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "krm-backend/postman")),
            "name": document["info"]["title"],
            "description": document["info"].get("description", "")
            + "\n\nGenerated from the OpenAPI description by `python -m routers.openapi`; run **Log in** first.",
            "schema": POSTMAN_SCHEMA,
        },
        "auth": {
            "type": "apikey",
            "apikey": [
                {"key": "key", "value": "Authorization", "type": "string"},
                {"key": "value", "value": "{{token}}", "type": "string"},
                {"key": "in", "value": "header", "type": "string"},
            ],
        },
        "variable": [
            {"key": "baseUrl", "value": "http://127.0.0.1:8080", "type": "string"},
            {"key": "username", "value": "admin", "type": "string"},
            {"key": "password", "value": "", "type": "string"},
            {"key": "token", "value": "", "type": "string"},
            {"key": "clusterId", "value": "prod-bj-1", "type": "string"},
        ],
        "item": [
            {"name": name, "description": descriptions.get(name, ""), "item": items}
            for name, items in folders.items()
            if items
        ],
    }


def generate() -> tuple[str, str]:
    """The OpenAPI document and the Postman collection as the files in docs/ should hold them."""
    from app import create_app  # the CLI builds an app; importing this module must not
    from config.settings import Settings

    app = create_app(Settings(), bootstrap=False)
    document = build_spec(app)
    return dump(document), dump(postman_collection(document))


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) docs/openapi.json and the Postman collection."""
    parser = argparse.ArgumentParser(prog="python -m routers.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--openapi", type=Path, help="write the OpenAPI document here")
    parser.add_argument("--postman", type=Path, help="write the Postman collection (v2.1) here")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    args = parser.parse_args(argv)
    openapi_text, postman_text = generate()
    stale = []
    for path, text in ((args.openapi, openapi_text), (args.postman, postman_text)):
        if path is None:
            continue
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write(f"out of date (run without --check to regenerate): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
