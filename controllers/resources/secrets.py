"""Secrets: the list rules of §2.7 (no data in list items; the TLS picker's selector)."""

from __future__ import annotations

import re
from typing import Any

from .generic import Platform, audit, get_object, list_objects
from .kinds import Kind

# The Ingress TLS picker sends labelSelector=type=kubernetes.io/tls: not a valid label selector (a '/'
# in the value), but exactly the field selector the page means.
_TYPE_SELECTOR = re.compile(r"^\s*type\s*=\s*([^,=!\s]+)\s*$")


def selectors(label_selector: str, field_selector: str) -> tuple[str, str]:
    """(label, field) selectors to send: ``type=<v>`` as a label selector moves to the field selector."""
    match = _TYPE_SELECTOR.match(label_selector or "")
    if match and not field_selector:
        return "", f"type={match.group(1)}"
    return label_selector, field_selector


def list_secrets(platform: Platform, kind: Kind, cluster_id: str, namespace: str, label_selector: str,
                 field_selector: str) -> list[dict[str, Any]]:  # fmt: skip
    """The Secrets, without ``data``/``stringData`` unless ``SECRET_LIST_DATA=full`` (Go's behaviour)."""
    label, fields = selectors(label_selector, field_selector)
    items = list_objects(platform, kind, cluster_id, namespace, label, fields)
    if platform.secret_list_data != "full":  # noqa: S105 - a mode, not a password
        for item in items:
            item.pop("data", None)
            item.pop("stringData", None)
    return items


def get_secret(platform: Platform, kind: Kind, cluster_id: str, namespace: str, name: str, method: str,
               user: str) -> dict[str, Any]:  # fmt: skip
    """One whole Secret (the edit form decodes ``data``), with an audit line naming who read it."""
    secret = get_object(platform, kind, cluster_id, namespace, name, method)
    meta = secret.get("metadata") or {}
    audit("get", user, cluster_id, kind, str(meta.get("namespace") or namespace or "default"), name)
    return secret
