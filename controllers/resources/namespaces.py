"""Namespaces: list, get, add, update and delete with protections (§2.2), with Go's own messages."""

from __future__ import annotations

import re
from typing import Any

from config.constants import MSG_ITEM_NOT_OBJECT, MSG_QUERY_FAILED
from controllers.errors import BadRequest
from utils import kube

from .cleaning import bad_request, check_segment
from .generic import Platform, audit, list_raw, session
from .kinds import Kind

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
KUBE_SYSTEM = "kube-system"


def list_namespaces(platform: Platform, kind: Kind, cluster_id: str) -> Any:
    """Every namespace, in the server's order (raw JSON, as ``generic.list_raw``)."""
    return list_raw(platform, kind, cluster_id)


def get_namespace(platform: Platform, kind: Kind, cluster_id: str, name: str) -> dict[str, Any]:
    """One namespace."""
    check_segment("name", name)
    with session(platform, cluster_id, MSG_QUERY_FAILED) as call:
        return call("GET", kind.path("", name))


def add_namespace(platform: Platform, kind: Kind, cluster_id: str, name: str, user: str) -> None:
    """Create a namespace; its name must be a DNS-1123 label (what the API server requires)."""
    if not name:
        raise bad_request("name: 不能为空")
    if not _DNS_LABEL.match(name):
        raise bad_request(f"name: {name[:100]!r} 必须是 DNS-1123 标签 (小写字母、数字和 '-', 最多 63 个字符)")
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    with session(platform, cluster_id, lambda reason: f"创建ns: {name}失败 {reason}") as call:
        call("POST", kind.path(), body=body)
    audit("add", user, cluster_id, kind, "", name)


def update_namespace(platform: Platform, kind: Kind, cluster_id: str, name: str, item: Any, user: str) -> str:
    """Replace labels and annotations with the item's on a fresh read; PUT, one retry on conflict.

    Go PUTs the posted item with its stale resourceVersion (a 409 when anything changed since); the
    page edits only labels and annotations, so only those are taken. Returns the namespace's name.
    """
    if not isinstance(item, dict):
        raise bad_request(MSG_ITEM_NOT_OBJECT)
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise bad_request("item.metadata: 必须是对象")
    target = metadata.get("name") or name
    if not isinstance(target, str):
        raise bad_request("item.metadata.name: 必须是字符串")
    check_segment("name", target)
    edits = {}
    for key in ("labels", "annotations"):
        value = metadata.get(key)
        if value is not None and not isinstance(value, dict):
            raise bad_request(f"item.metadata.{key}: 必须是对象")
        edits[key] = value or {}
    with session(platform, cluster_id, lambda reason: f"更新ns: {target}失败 {reason}") as call:
        for attempt in (1, 2):
            namespace = call("GET", kind.path("", target))
            meta = namespace.setdefault("metadata", {})
            for key, value in edits.items():
                if value:
                    meta[key] = value
                else:
                    meta.pop(key, None)
            try:
                call("PUT", kind.path("", target), body=namespace)
                break
            except kube.Conflict:
                if attempt == 2:
                    raise
    audit("update", user, cluster_id, kind, "", target)
    return target


def delete_namespace(platform: Platform, kind: Kind, cluster_id: str, name: str, user: str) -> None:
    """Delete a namespace unless it is protected (``PROTECTED_NAMESPACES``, the metadata namespace)."""
    check_segment("name", name)
    protected = BadRequest(f"删除被保护的ns: {name}失败")
    if name in platform.protected_namespaces:
        raise protected
    with session(platform, cluster_id, lambda reason: f"删除ns: {name}失败{reason}") as call:
        if name == platform.metadata_namespace:
            # The registry itself lives there on the metadata cluster; the same name elsewhere is not
            # special. When either identity cannot be read, the namespace is treated as the registry's.
            metadata_uid = platform.metadata_uid()
            system = call("GET", kind.path("", KUBE_SYSTEM))
            target_uid = str((system.get("metadata") or {}).get("uid") or "")
            if not metadata_uid or not target_uid or metadata_uid == target_uid:
                raise protected
        call("DELETE", kind.path("", name), query={"propagationPolicy": "Background"})
    audit("delete", user, cluster_id, kind, "", name)
