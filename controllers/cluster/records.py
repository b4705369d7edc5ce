"""A cluster record and its Secret, in exactly the shape the Go version reads and writes."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from config.constants import ANNOTATION_KEYS, COUNT_ITEM_KEYS, HEALTH_KEYS, KUBECONFIG_KEY
from utils.struct2map import struct_to_map


@dataclass
class ClusterRecord:
    """Go's ``ClusterStatus``: what the annotations of a cluster Secret hold."""

    id: str
    display_name: str = field(default="", metadata={"json": "displayName"})
    city: str = ""
    district: str = ""
    version: str = ""
    status: str = ""

    def annotations(self) -> dict[str, str]:
        """The record as the Secret's annotations (Go's ``Struct2Map``)."""
        return struct_to_map(self)


@dataclass
class ClusterHealth:
    """What this port adds to the annotations: the last probe, the cluster's identity, expiry."""

    reason: str = ""  # Healthy, Unreachable, Timeout, TLSError, Unauthorized, Forbidden, Unhealthy, ...
    message: str = ""
    last_probe_time: str = field(default="", metadata={"json": "lastProbeTime"})  # RFC 3339, UTC
    last_transition_time: str = field(default="", metadata={"json": "lastTransitionTime"})
    probe_latency_ms: str = field(default="", metadata={"json": "probeLatencyMs"})
    cluster_uid: str = field(default="", metadata={"json": "clusterUID"})  # UID of kube-system
    credential_expiry: str = field(default="", metadata={"json": "credentialExpiry"})

    def annotations(self) -> dict[str, str]:
        """The health fields as annotations."""
        return struct_to_map(self)


def list_item(name: str, annotations: dict[str, str] | None) -> dict[str, str]:
    """A list item: the documented keys only (``ITEM_KEYS``), never foreign annotations.

    A Secret written by the Go copy that stores ``clusterVersion`` (and no ``version``) is read as
    having that version; ``clusterVersion``/``clusterStatus`` mirror ``version``/``status``.
    ``duplicateOf`` is filled by the caller, which sees every item.
    """
    annotations = annotations or {}
    item = {key: str(annotations.get(key, "")) for key in ANNOTATION_KEYS}
    item["id"] = item["id"] or name
    item["version"] = item["version"] or str(annotations.get("clusterVersion", ""))
    item["status"] = item["status"] or str(annotations.get("clusterStatus", ""))
    item["clusterVersion"] = item["version"]
    item["clusterStatus"] = item["status"]
    for key in (*HEALTH_KEYS, *COUNT_ITEM_KEYS):
        item[key] = str(annotations.get(key, ""))
    item["duplicateOf"] = ""
    return item


MAX_DUPLICATES_SHOWN = 5  # one cluster under hundreds of ids must not make every item (and list) huge


def mark_duplicates(items: list[dict[str, str]]) -> list[dict[str, str]]:
    """Set ``duplicateOf`` to the other ids registered for the same cluster (same kube-system UID).

    At most ``MAX_DUPLICATES_SHOWN`` ids, sorted, then ``+N`` for the rest; linear in the item count.
    """
    by_uid: dict[str, list[str]] = {}
    for item in items:
        if item["clusterUID"]:
            by_uid.setdefault(item["clusterUID"], []).append(item["id"])
    for ids in by_uid.values():
        ids.sort()
    for item in items:
        ids = by_uid.get(item["clusterUID"], []) if item["clusterUID"] else []
        if len(ids) < 2:
            item["duplicateOf"] = ""
            continue
        shown = [i for i in ids[: MAX_DUPLICATES_SHOWN + 1] if i != item["id"]][:MAX_DUPLICATES_SHOWN]
        rest = len(ids) - 1 - len(shown)
        item["duplicateOf"] = ",".join(shown) + (f",+{rest}" if rest else "")
    return items


def stored_kubeconfig(secret: dict[str, Any]) -> str:
    """The kubeconfig text stored in a Secret's ``data.kubeconfig`` ("" when absent or unreadable)."""
    encoded = (secret.get("data") or {}).get(KUBECONFIG_KEY)
    if not encoded:
        return ""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""


def secret_body(
    record: ClusterRecord,
    kubeconfig: str,
    namespace: str,
    label: str,
    existing: dict[str, Any] | None = None,
    health: ClusterHealth | None = None,
) -> dict[str, Any]:
    """The Secret for a record; on update, keeps foreign labels, annotations and data keys."""
    metadata: dict[str, Any] = {"name": record.id, "namespace": namespace}
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    data: dict[str, str] = {}
    if existing is not None:
        old = existing.get("metadata") or {}
        labels.update(old.get("labels") or {})
        annotations.update(old.get("annotations") or {})
        data.update(existing.get("data") or {})
        data.pop(KUBECONFIG_KEY, None)
        metadata["resourceVersion"] = old.get("resourceVersion")
    labels[label] = "true"
    annotations.update(record.annotations())
    if health is not None:
        annotations.update(health.annotations())
    metadata["labels"] = labels
    metadata["annotations"] = annotations
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": (existing or {}).get("type", "Opaque"),
        "stringData": {KUBECONFIG_KEY: kubeconfig},
    }
    if data:
        body["data"] = data
    return body
