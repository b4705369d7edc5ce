"""The generic actions on any kind of the table, on raw JSON (§1.7, §1.9).

Each function takes plain arguments, gets the cluster's cached client within the route's budget,
makes one raw API call (deletelist: one per name), and returns raw JSON or raises a domain error with
the contract's message. Failures of a list carry ``data={"items": []}`` (§1.6).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from config.constants import (
    MSG_CREATE_FAILED,
    MSG_NOT_RUN_TIMEOUT,
    MSG_QUERY_FAILED,
    MSG_RESOURCE_DELETE_FAILED,
    MSG_RESOURCE_UPDATE_FAILED,
)
from config.envelope import RawItems
from controllers.cluster.clients import ClusterClients, timed_out, unreachable
from controllers.errors import BadRequest, ServiceError
from utils import kube, logs
from utils.budget import Budget

from .cleaning import bad_request, check_segment, clean_copy, clean_item, list_namespace, object_namespace
from .kinds import Kind

# Transport failures say the cluster cannot be reached; anything else is the action's own failure.
_UNREACHABLE = (kube.Unreachable, kube.TLSError, kube.BadKubeconfig, kube.Unauthorized)


@dataclass(frozen=True)
class Platform:
    """What the resource controllers need: the client cache and the platform's settings."""

    clients: ClusterClients
    budget_seconds: float = 4.5
    budget_long_seconds: float = 9.5
    connect_timeout: float = 2.0
    delete_list_max: int = 500
    delete_list_concurrency: int = 8
    secret_list_data: str = "none"  # noqa: S105 - a mode, not a password
    protected_namespaces: tuple[str, ...] = ()
    metadata_namespace: str = ""
    # The metadata cluster's kube-system UID ("" when unknown): namespace/delete protects the
    # metadata namespace only on that cluster.
    metadata_uid: Callable[[], str] = field(default=lambda: "")

    def budget(self, long: bool = False) -> Budget:
        """A fresh budget for one request (the long one for detail and copy)."""
        return Budget(self.budget_long_seconds if long else self.budget_seconds, self.connect_timeout)


# A failure message: ``<prefix>: <reason>`` for a text, or whatever a function makes of the reason.
Prefix = str | Callable[[str], str]


def failure(cluster_id: str, prefix: Prefix, exc: kube.KubeError, data: dict[str, Any] | None = None) -> ServiceError:
    """A failed call as the reply: time-outs and unreachable clusters say so, else ``<prefix>: <reason>``."""
    if isinstance(exc, kube.Timeout):
        error = timed_out(cluster_id)
    elif isinstance(exc, _UNREACHABLE):
        error = unreachable(cluster_id, exc.message)
    else:
        error = BadRequest(prefix(exc.message) if callable(prefix) else f"{prefix}: {exc.message}")
    error.data = data
    return error


def audit(action: str, user: str, cluster_id: str, kind: Kind, namespace: str, name: str, **extra: Any) -> None:
    """One audit line per write and per secret read: who, where, what; never the object's data."""
    logs.info({"audit": True, "action": action, "user": user, "clusterId": cluster_id, "namespace": namespace,
               "kind": kind.kind, "name": name, **extra}, "audit")  # fmt: skip


@contextmanager
def session(platform: Platform, cluster_id: str, prefix: Prefix, data: dict[str, Any] | None = None,
            long: bool = False) -> Iterator[Callable[..., Any]]:  # fmt: skip
    """A ``call(method, path, **kw)`` bound to the cluster's client and one budget for the request.

    Every failure inside, the cluster lookup included, becomes the route's reply (with ``data``).
    """
    budget = platform.budget(long)
    try:
        with platform.clients.use(cluster_id, budget) as client:

            def call(method: str, path: str, **kwargs: Any) -> Any:
                return client.request(method, path, timeout=budget.timeout(), deadline=budget.deadline, **kwargs)

            yield call
    except kube.KubeError as exc:
        raise failure(cluster_id, prefix, exc, data) from None
    except ServiceError as exc:
        if data is not None and exc.data is None:
            exc.data = data
        raise


_ITEMS_KEY = b',"items":'
_WHITESPACE = b" \t\r\n"


def raw_items(body: bytes) -> RawItems | None:
    """The ``items`` array of a raw LIST answer, to embed in the reply unparsed; None if not found.

    The API server writes ``{"kind", "apiVersion", "metadata", "items"}`` in that order, and the list
    metadata holds only strings and numbers. ``,"items":`` cannot occur inside a JSON string (a quote
    there is escaped), so its first occurrence is the top-level key and the array runs to the last ``}``
    (trailing whitespace holds none). Nothing is copied.
    """
    start = body.find(_ITEMS_KEY)
    end = body.rfind(b"}")
    if start < 0 or end < 0:
        return None
    start += len(_ITEMS_KEY)
    while start < end and body[start] in _WHITESPACE:
        start += 1
    while end > start and body[end - 1] in _WHITESPACE:
        end -= 1
    if body.startswith(b"null", start) and end - start == 4:
        return RawItems(b"[]", 0, 2)
    if not (body.startswith(b"[", start) and body[end - 1 : end] == b"]"):
        return None
    return RawItems(body, start, end)


def _list_request(kind: Kind, namespace: str, label_selector: str, field_selector: str,
                  empty: dict[str, Any]) -> tuple[str, dict[str, str]]:  # fmt: skip
    """The namespace and query of a LIST; a refused namespace answers with ``empty`` as its data."""
    try:
        ns = list_namespace(kind, namespace)
    except ServiceError as exc:
        exc.data = empty
        raise
    query = {}
    if label_selector:
        query["labelSelector"] = label_selector
    if field_selector:
        query["fieldSelector"] = field_selector
    return ns, query


def list_raw(platform: Platform, kind: Kind, cluster_id: str, namespace: str = "", label_selector: str = "",
             field_selector: str = "") -> Any:  # fmt: skip
    """``list_objects`` without parsing: the server's items passed through as raw JSON.

    A LIST of 5,000 Pods is megabytes of JSON; parsing it into Python objects only to write it out
    again costs more time and memory than everything else the route does.
    """
    empty: dict[str, Any] = {"items": []}
    ns, query = _list_request(kind, namespace, label_selector, field_selector, empty)
    with session(platform, cluster_id, MSG_QUERY_FAILED, empty) as call:
        body = call("GET", kind.path(ns), query=query, raw=True)
    raw = raw_items(body) if isinstance(body, bytes) else None
    if raw is not None:
        return raw
    try:  # not the shape the API server writes: parse it after all
        listing = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest(f"{MSG_QUERY_FAILED}: not a Kubernetes API answer", data=empty) from None
    items = listing.get("items") if isinstance(listing, dict) else None
    return items if isinstance(items, list) else []


def list_objects(platform: Platform, kind: Kind, cluster_id: str, namespace: str = "",
                 label_selector: str = "", field_selector: str = "") -> list[dict[str, Any]]:  # fmt: skip
    """LIST with the selectors, in the server's order; all namespaces when ``namespace`` is empty."""
    empty: dict[str, Any] = {"items": []}
    ns, query = _list_request(kind, namespace, label_selector, field_selector, empty)
    with session(platform, cluster_id, MSG_QUERY_FAILED, empty) as call:
        listing = call("GET", kind.path(ns), query=query)
    items = listing.get("items") if isinstance(listing, dict) else None
    return items if isinstance(items, list) else []


def get_object(platform: Platform, kind: Kind, cluster_id: str, namespace: str, name: str,
               method: str = "") -> dict[str, Any]:  # fmt: skip
    """GET one object; ``method=Copy`` answers a cleaned copy that ``add`` accepts (§2.8)."""
    ns = object_namespace(kind, namespace)
    check_segment("name", name)
    with session(platform, cluster_id, MSG_QUERY_FAILED) as call:
        obj = call("GET", kind.path(ns, name))
    if method.casefold() == "copy":
        return clean_copy(kind, obj, ns)
    return obj


def add_object(platform: Platform, kind: Kind, cluster_id: str, namespace: str, item: Any, user: str) -> dict:
    """Create the cleaned item (§1.5) in its namespace."""
    body, ns, name = clean_item(kind, item, namespace, adding=True)
    with session(platform, cluster_id, MSG_CREATE_FAILED) as call:
        created = call("POST", kind.path(ns), body=body)
    audit("add", user, cluster_id, kind, ns, name or str((created.get("metadata") or {}).get("name", "")))
    return created


def update_object(platform: Platform, kind: Kind, cluster_id: str, namespace: str, item: Any, user: str) -> dict:
    """Replace the object with the cleaned item: an unconditional PUT, last write wins (§1.9)."""
    body, ns, name = clean_item(kind, item, namespace, adding=False)
    with session(platform, cluster_id, MSG_RESOURCE_UPDATE_FAILED) as call:
        updated = call("PUT", kind.path(ns, name), body=body)
    audit("update", user, cluster_id, kind, ns, name)
    return updated


def delete_query(force: bool) -> dict[str, str]:
    """Background propagation; a zero grace period only when the user forces the delete (§1.9)."""
    query = {"propagationPolicy": "Background"}
    if force:
        query["gracePeriodSeconds"] = "0"
    return query


def delete_object(platform: Platform, kind: Kind, cluster_id: str, namespace: str, name: str,
                  force: bool, user: str) -> None:  # fmt: skip
    """DELETE one object."""
    ns = object_namespace(kind, namespace)
    check_segment("name", name)
    with session(platform, cluster_id, MSG_RESOURCE_DELETE_FAILED) as call:
        call("DELETE", kind.path(ns, name), query=delete_query(force))
    audit("delete", user, cluster_id, kind, ns, name, force=force)


def delete_objects(platform: Platform, kind: Kind, cluster_id: str, namespace: str, names: list[str],
                   force: bool, user: str) -> int:  # fmt: skip
    """DELETE each name, ``delete_list_concurrency`` at a time; return how many were deleted.

    Every name is checked before the first call, so a bad list deletes nothing. Failures are reported
    together: ``删除失败: <name>: <reason>; …`` with ``data.failed=[{name, message}]``.
    """
    ns = object_namespace(kind, namespace)
    if not names:
        raise bad_request("deleteList: 不能为空")
    if len(names) > platform.delete_list_max:
        raise bad_request(f"deleteList: 最多 {platform.delete_list_max} 个名称, 收到 {len(names)} 个")
    unique = list(dict.fromkeys(names))
    for index, name in enumerate(unique):
        check_segment(f"deleteList[{index}]", name)
    budget = platform.budget()
    failed: list[dict[str, str]] = []
    try:
        with platform.clients.use(cluster_id, budget) as client:
            query = delete_query(force)

            def one(name: str) -> str | None:
                try:
                    timeout = budget.timeout()
                except kube.Timeout:
                    return MSG_NOT_RUN_TIMEOUT
                try:
                    client.request(
                        "DELETE", kind.path(ns, name), query=query, timeout=timeout, deadline=budget.deadline
                    )
                except kube.KubeError as exc:
                    return exc.message
                return None

            workers = min(platform.delete_list_concurrency, len(unique))
            with ThreadPoolExecutor(workers, thread_name_prefix="deletelist") as pool:
                outcomes = list(pool.map(one, unique))
    except kube.KubeError as exc:
        raise failure(cluster_id, MSG_RESOURCE_DELETE_FAILED, exc) from None
    for name, message in zip(unique, outcomes, strict=True):
        if message is not None:
            failed.append({"name": name, "message": message})
    deleted = len(unique) - len(failed)
    audit("deletelist", user, cluster_id, kind, ns, ",".join(unique)[:2000], force=force, failed=len(failed))
    if failed:
        text = "; ".join(f"{f['name']}: {f['message']}" for f in failed[:20])
        if len(failed) > 20:
            text += f"; … (+{len(failed) - 20})"
        raise BadRequest(f"{MSG_RESOURCE_DELETE_FAILED}: {text}", data={"failed": failed})
    return deleted


def local_time() -> str:
    """Now in the server's local time, ``YYYY-MM-DD HH:MM:SS`` (the restart annotation's value)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
