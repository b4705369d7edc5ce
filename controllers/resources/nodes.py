"""Nodes: the field-scoped update of §2.3 (labels, taints, unschedulable; nothing else)."""

from __future__ import annotations

from typing import Any

from config.constants import MSG_ITEM_NOT_OBJECT, MSG_RESOURCE_UPDATE_FAILED
from utils import kube

from .cleaning import bad_request, check_segment
from .generic import Platform, audit, session
from .kinds import Kind


def _edits(item: Any) -> dict[str, tuple[str, Any]]:
    """The fields the node page edits, as present in the item: {field: (section, value)}."""
    if not isinstance(item, dict):
        raise bad_request(MSG_ITEM_NOT_OBJECT)
    metadata = item.get("metadata") or {}
    spec = item.get("spec") or {}
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise bad_request("item.metadata, item.spec: 必须是对象")
    edits: dict[str, tuple[str, Any]] = {}
    if "labels" in metadata:
        labels = metadata["labels"]
        if labels is not None and not isinstance(labels, dict):
            raise bad_request("item.metadata.labels: 必须是对象")
        edits["labels"] = ("metadata", labels)
    if "taints" in spec:
        taints = spec["taints"]
        if taints is not None and not isinstance(taints, list):
            raise bad_request("item.spec.taints: 必须是数组")
        edits["taints"] = ("spec", taints)
    if "unschedulable" in spec:
        unschedulable = spec["unschedulable"]
        if unschedulable is not None and not isinstance(unschedulable, bool):
            raise bad_request("item.spec.unschedulable: 必须是布尔值")
        edits["unschedulable"] = ("spec", unschedulable)
    return edits


def _apply(node: dict[str, Any], edits: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """The fresh Node with the edited fields set (``null`` removes one)."""
    for key, (section, value) in edits.items():
        part = node.setdefault(section, {})
        if value is None or (key == "unschedulable" and value is False):
            part.pop(key, None)
        else:
            part[key] = value
    return node


_ATTEMPTS = 5  # read-modify-write rounds before a conflict is reported


def update_node(platform: Platform, kind: Kind, cluster_id: str, name: str, item: Any, user: str) -> str:
    """Read the Node fresh, apply labels/taints/unschedulable from the item, PUT; read again on conflict.

    Go PUTs the posted Node as it was when the page loaded, undoing whatever the kubelet and
    controllers wrote since (conditions, addresses, their own taints and labels). Here only the fields
    the page edits change, and a conflict with a concurrent writer (the node lifecycle controller and
    the kubelet write Nodes often) is resolved by reading again, up to ``_ATTEMPTS`` times inside the
    route's budget.
    Returns the node's name.
    """
    edits = _edits(item)
    item_name = ((item.get("metadata") or {}).get("name")) or name
    if not isinstance(item_name, str):
        raise bad_request("item.metadata.name: 必须是字符串")
    check_segment("name", item_name)
    with session(platform, cluster_id, MSG_RESOURCE_UPDATE_FAILED) as call:
        for attempt in range(1, _ATTEMPTS + 1):
            node = call("GET", kind.path("", item_name))
            try:
                call("PUT", kind.path("", item_name), body=_apply(node, edits))
                break
            except kube.Conflict:
                if attempt == _ATTEMPTS:
                    raise
    audit("update", user, cluster_id, kind, "", item_name, fields=sorted(edits))
    return item_name
