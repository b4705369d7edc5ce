"""A cluster record and its Secret, in exactly the shape the Go version reads and writes."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from config.constants import ANNOTATION_KEYS, KUBECONFIG_KEY
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


def list_item(name: str, annotations: dict[str, str] | None) -> dict[str, str]:
    """A list item: the documented keys only, plus ``clusterVersion``/``clusterStatus`` mirrors.

    A Secret written by the Go copy that stores ``clusterVersion`` (and no ``version``) is read as
    having that version; foreign annotations (kubectl's last-applied, ...) are never passed on.
    """
    annotations = annotations or {}
    item = {key: str(annotations.get(key, "")) for key in ANNOTATION_KEYS}
    item["id"] = item["id"] or name
    item["version"] = item["version"] or str(annotations.get("clusterVersion", ""))
    item["status"] = item["status"] or str(annotations.get("clusterStatus", ""))
    item["clusterVersion"] = item["version"]
    item["clusterStatus"] = item["status"]
    return item


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
