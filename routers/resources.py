"""/api/<prefix>/<action> for every row of the kind table (aliases included): HTTP in, envelope out.

GET binds the query string (case-sensitive, as Gin's form binding); every route also accepts POST
with a JSON body whose keys bind case-insensitively (Go's encoding/json), plus this port's aliases.
A POST ignores its query string. Bind errors answer ``请求出错: <reason>`` before any call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from flask import Blueprint, current_app, g, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, ValidationError

from config.constants import (
    MSG_CREATE_OK,
    MSG_DELETE_OK,
    MSG_DETAIL_OK,
    MSG_NS_GET_OK,
    MSG_NS_LIST_OK,
    MSG_QUERY_OK,
    MSG_RESTART_OK,
)
from config.envelope import ok, ok_items
from controllers.resources import autoservice, composite, generic, namespaces, nodes, secrets, workloads
from controllers.resources import schemas as s
from controllers.resources.cleaning import bad_request
from controllers.resources.generic import Platform
from controllers.resources.kinds import ADD, DELETE, DELETELIST, GET, KINDS, LIST, RESTART, UPDATE, Kind
from controllers.schemas import describe_errors
from routers import require_ready
from utils.binding import ConflictingKeys, bind_keys

bp = Blueprint("resources", __name__, url_prefix="/api")

# Methods per action (§6): reads and restart answer GET and POST, writes POST; namespace/delete both.
METHODS = {LIST: ["GET", "POST"], GET: ["GET", "POST"], RESTART: ["GET", "POST"],
           ADD: ["POST"], UPDATE: ["POST"], DELETE: ["POST"], DELETELIST: ["POST"]}  # fmt: skip
NAMESPACE_DELETE_METHODS = ["GET", "POST"]
SCHEMAS: dict[str, Schema] = {LIST: s.list_request, GET: s.get_request, ADD: s.write_request,
                              UPDATE: s.write_request, DELETE: s.delete_request,
                              DELETELIST: s.delete_list_request, RESTART: s.name_request}  # fmt: skip


def platform() -> Platform:
    """The platform controllers' context (after bootstrap)."""
    require_ready()
    return current_app.extensions["krm.platform"]


def user() -> str:
    """The logged-in user, for audit lines."""
    claims = g.get("claims") or {}
    return str(claims.get("username") or claims.get("sub") or "")


def _raw_fields() -> dict[str, Any]:
    """The request's fields: the query for GET, the JSON body for POST (canonical keys)."""
    try:
        if request.method == "GET":
            picked = {k: v for k, v in request.args.items() if k in s.QUERY_SPELLINGS}
            bound = bind_keys(picked, s.SPELLINGS)  # two spellings that disagree are refused
            if "forceDelete" in bound:
                value = str(bound["forceDelete"]).strip().lower()
                if value not in s.QUERY_BOOLEANS:
                    raise bad_request("forceDelete: 必须是 true、false、1 或 0")
                bound["forceDelete"] = s.QUERY_BOOLEANS[value]
            return bound
        return post_fields(s.SPELLINGS)
    except ConflictingKeys as exc:
        raise bad_request(str(exc)) from None


def post_fields(spellings: Mapping[str, str]) -> dict[str, Any]:
    """A POST's JSON object with canonical keys (any letter case, as Go binds); ``ConflictingKeys`` passes up."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}  # an empty POST is an empty form: the missing fields say what is wrong
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("请求体不是有效的 JSON") from None
    if not isinstance(body, dict):
        raise bad_request("请求体必须是 JSON 对象")
    return bind_keys(body, spellings)


def load(schema: Schema, read_fields: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The fields ``read_fields`` gives, loaded by ``schema``; ``请求出错: <reason>`` on a wrong type."""
    try:
        return schema.load(read_fields())
    except ValidationError as exc:
        raise bad_request(describe_errors(exc.messages)) from None


def bind(schema: Schema) -> dict[str, Any]:
    """The request's fields loaded by ``schema``."""
    return load(schema, _raw_fields)


# The actions: bind, call one controller, wrap the answer. ------------------------------------------


def _list(kind: Kind) -> ResponseReturnValue:
    """list: ``data.items`` in the server's order."""
    f = bind(s.list_request)
    p = platform()
    if kind.prefix == "namespace":
        return ok_items(MSG_NS_LIST_OK, namespaces.list_namespaces(p, kind, f["cluster_id"]))
    lister = secrets.list_secrets if kind.kind == "Secret" else generic.list_raw
    items = lister(p, kind, f["cluster_id"], f["namespace"], f["label_selector"], f["field_selector"])
    return ok_items(MSG_QUERY_OK, items)


def _get(kind: Kind) -> ResponseReturnValue:
    """get: ``data.item``, the server's object (or its cleaned copy)."""
    f = bind(s.get_request)
    p = platform()
    if kind.prefix == "namespace":
        return ok(MSG_NS_GET_OK, {"item": namespaces.get_namespace(p, kind, f["cluster_id"], f["name"])})
    if kind.kind == "Secret":
        item = secrets.get_secret(p, kind, f["cluster_id"], f["namespace"], f["name"], f["method"], user())
    else:
        item = generic.get_object(p, kind, f["cluster_id"], f["namespace"], f["name"], f["method"])
    return ok(MSG_DETAIL_OK, {"item": item})


def _add(kind: Kind) -> ResponseReturnValue:
    """add: create the cleaned item (``autoCreateService`` is accepted and, for now, ignored)."""
    if kind.prefix == "namespace":
        f = bind(s.name_request)
        namespaces.add_namespace(platform(), kind, f["cluster_id"], f["name"], user())
        return ok(f"创建ns: {f['name']}成功")
    f = bind(s.write_request)
    if kind.kind in autoservice.KINDS:  # the workload forms' "create a Service" switch (§2.5)
        return ok(composite.add_workload(platform(), kind, f["cluster_id"], f["namespace"], f["item"], user(),
                                         f["auto_create_service"]))  # fmt: skip
    generic.add_object(platform(), kind, f["cluster_id"], f["namespace"], f["item"], user())
    return ok(MSG_CREATE_OK)


def _update(kind: Kind) -> ResponseReturnValue:
    """update: PUT of the cleaned item; node and namespace: field-scoped read-modify-write."""
    f = bind(s.write_request)
    p = platform()
    if kind.prefix == "namespace":
        name = namespaces.update_namespace(p, kind, f["cluster_id"], f["name"], f["item"], user())
        return ok(f"更新ns: {name}成功")
    if kind.prefix == "node":
        nodes.update_node(p, kind, f["cluster_id"], f["name"], f["item"], user())
    else:
        generic.update_object(p, kind, f["cluster_id"], f["namespace"], f["item"], user())
    return ok(kind.update_message)


def _delete(kind: Kind) -> ResponseReturnValue:
    """delete: one object (namespaces: unless protected)."""
    if kind.prefix == "namespace":
        f = bind(s.name_request)
        namespaces.delete_namespace(platform(), kind, f["cluster_id"], f["name"], user())
        return ok(f"删除ns: {f['name']}成功")
    f = bind(s.delete_request)
    generic.delete_object(platform(), kind, f["cluster_id"], f["namespace"], f["name"], f["force_delete"], user())
    return ok(MSG_DELETE_OK)


def _deletelist(kind: Kind) -> ResponseReturnValue:
    """deletelist: every name, errors reported with ``data.failed``."""
    f = bind(s.delete_list_request)
    generic.delete_objects(platform(), kind, f["cluster_id"], f["namespace"], f["delete_list"],
                           f["force_delete"], user())  # fmt: skip
    return ok(MSG_DELETE_OK)


def _restart(kind: Kind) -> ResponseReturnValue:
    """restart: roll the workload's pods."""
    f = bind(s.name_request)
    workloads.restart(platform(), kind, f["cluster_id"], f["namespace"], f["name"], user())
    return ok(MSG_RESTART_OK)


ACTIONS: dict[str, Callable[[Kind], ResponseReturnValue]] = {
    LIST: _list, GET: _get, ADD: _add, UPDATE: _update, DELETE: _delete, DELETELIST: _deletelist,
    RESTART: _restart,
}  # fmt: skip


def endpoint(prefix: str, action: str) -> str:
    """The Flask endpoint of a route (blueprint-local; ``resources.<prefix>_<action>`` in the app)."""
    return f"{prefix}_{action}"


def methods(kind: Kind, action: str) -> list[str]:
    """The HTTP methods a route answers."""
    if kind.prefix == "namespace" and action == DELETE:
        return NAMESPACE_DELETE_METHODS
    return METHODS[action]


def _view(kind: Kind, action: str) -> Callable[[], ResponseReturnValue]:
    """The view function of one route."""
    handler = ACTIONS[action]

    def view() -> ResponseReturnValue:
        return handler(kind)

    view.__doc__ = f"{action} of {kind.kind}"
    return view


for _kind in KINDS:
    for _prefix in _kind.prefixes:
        for _action in _kind.actions:
            bp.add_url_rule(f"/{_prefix}/{_action}", endpoint(_prefix, _action), _view(_kind, _action),
                            methods=methods(_kind, _action))  # fmt: skip


def _body_limit() -> None:
    """Resource routes carry whole objects: a larger body limit than the registry's routes."""
    request.max_content_length = current_app.extensions["krm.platform.max_body"]


bp.before_request(_body_limit)
