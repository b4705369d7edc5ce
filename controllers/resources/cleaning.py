"""What a posted item becomes before it reaches the API server (§1.5), and the copy cleaning (§2.8).

Pure functions on raw JSON dicts: no client models, no calls. ``clean_copy`` is shared by
``get?method=Copy`` and ``namespace/copy``.
"""

from __future__ import annotations

import copy
from typing import Any

from config.constants import MSG_BIND, MSG_ITEM_NOT_OBJECT
from controllers.errors import BadRequest

from .kinds import Kind

DEFAULT_NAMESPACE = "default"
# Dropped from metadata on every write: server-owned bookkeeping that only makes a request fail.
_ALWAYS_DROPPED = ("managedFields", "selfLink")
# Also dropped on add: identity and history of the object the item was copied from.
_DROPPED_ON_ADD = ("resourceVersion", "uid", "creationTimestamp", "generation", "deletionTimestamp",
                   "deletionGracePeriodSeconds")  # fmt: skip
# Annotations that describe the source object's history or its binding to storage, not the object.
_COPY_DROPPED_ANNOTATIONS = ("deployment.kubernetes.io/revision",)
_COPY_DROPPED_PREFIXES = ("pv.kubernetes.io/", "volume.kubernetes.io/", "volume.beta.kubernetes.io/")


def bad_request(reason: str) -> BadRequest:
    """``请求出错: <reason>`` (§1.1): a bind or validation failure, before any call."""
    return BadRequest(f"{MSG_BIND}: {reason}")


def valid_segment(value: str) -> bool:
    """True when ``value`` can be one segment of a REST path (client-go's ``IsValidPathSegmentName``)."""
    return bool(value) and value not in (".", "..") and "/" not in value and "%" not in value


def check_segment(field: str, value: str) -> str:
    """``value`` if it is a valid path segment; else a 400 naming the field (§1.3)."""
    if not value:
        raise bad_request(f"{field}: 不能为空")
    if not valid_segment(value):
        raise bad_request(f"{field}: {value[:100]!r} 不是有效的名称 (不能是 '.' 或 '..', 不能含 '/' 或 '%')")
    return value


def object_namespace(kind: Kind, namespace: str) -> str:
    """The namespace of a single-object route: the given one, else ``default`` (§1.3); "" if cluster-scoped."""
    if not kind.namespaced:
        return ""
    return check_segment("nameSpace", namespace or DEFAULT_NAMESPACE)


def list_namespace(kind: Kind, namespace: str) -> str:
    """The namespace of a list: empty means all namespaces; cluster-scoped kinds ignore it (§1.3)."""
    if not kind.namespaced or not namespace:
        return ""
    return check_segment("nameSpace", namespace)


def clean_item(kind: Kind, item: Any, namespace: str, adding: bool) -> tuple[dict[str, Any], str, str]:
    """The posted ``item`` as it is sent (§1.5), with its namespace and name.

    The route's apiVersion/kind replace whatever was sent; only the kind's own top-level keys stay;
    metadata loses server bookkeeping (and, on add, the source's identity) and gets the namespace:
    ``nameSpace``, else ``item.metadata.namespace``, else ``default``. ``resourceVersion`` is dropped on
    update too, as Go does: an unconditional replace (the frontend posts stale rows).
    """
    if not isinstance(item, dict):
        raise bad_request(MSG_ITEM_NOT_OBJECT)
    metadata = item.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise bad_request("item.metadata: 必须是对象")
    cleaned: dict[str, Any] = {"apiVersion": kind.api_version, "kind": kind.kind}
    for key in kind.keep:
        if key in item and key != "metadata":
            cleaned[key] = item[key]
    meta = {k: v for k, v in metadata.items() if k not in _ALWAYS_DROPPED}
    meta.pop("resourceVersion", None)
    if adding:
        for key in _DROPPED_ON_ADD:
            meta.pop(key, None)
    ns = ""
    if kind.namespaced:
        sent = metadata.get("namespace")
        ns = namespace or (sent if isinstance(sent, str) else "") or DEFAULT_NAMESPACE
        check_segment("nameSpace", ns)
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    name = meta.get("name")
    if name is None or name == "":
        generated = meta.get("generateName")
        if not (adding and isinstance(generated, str) and generated):
            raise bad_request("item.metadata.name: 不能为空")
        name = ""
    elif not isinstance(name, str):
        raise bad_request("item.metadata.name: 必须是字符串")
    else:
        check_segment("item.metadata.name", name)
    cleaned["metadata"] = meta
    return cleaned, ns, name


def clean_copy(kind: Kind, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A copy of ``obj`` that can be created elsewhere (§2.8), placed in ``namespace``.

    Metadata keeps only the name, the labels and the annotations (without the source's revision and
    storage-binding ones); status goes; a Service loses its allocated IPs and node ports, a PV its
    claim, a PVC its volume.
    """
    out = copy.deepcopy({k: v for k, v in obj.items() if k not in ("metadata", "status")})
    source: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    meta: dict[str, Any] = {"name": source.get("name", "")}
    if kind.namespaced:
        meta["namespace"] = namespace
    labels = source.get("labels")
    if isinstance(labels, dict) and labels:
        meta["labels"] = dict(labels)
    annotations = source.get("annotations")
    if isinstance(annotations, dict):
        kept = {k: v for k, v in annotations.items()
                if k not in _COPY_DROPPED_ANNOTATIONS and not k.startswith(_COPY_DROPPED_PREFIXES)}  # fmt: skip
        if kept:
            meta["annotations"] = kept
    out["metadata"] = meta
    spec = out.get("spec")
    if isinstance(spec, dict):
        if kind.kind == "Service":
            if spec.get("clusterIP") != "None":
                spec.pop("clusterIP", None)
                spec.pop("clusterIPs", None)
            spec.pop("healthCheckNodePort", None)
            for port in spec.get("ports") or []:
                if isinstance(port, dict):
                    port.pop("nodePort", None)
        elif kind.kind == "PersistentVolume":
            spec.pop("claimRef", None)
        elif kind.kind == "PersistentVolumeClaim":
            spec.pop("volumeName", None)
    return out
