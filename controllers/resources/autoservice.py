"""autoCreateService: the Service the workload forms' switch asks for on add (contract-platform.md §2.5).

Go creates it *before* the workload, with the selector left empty (so it never gets endpoints),
hides its errors and panics on a nil selector. Here the workload is created first; the Service then
selects the workload's pods (``spec.selector.matchLabels``), has one port per distinct container
(port, protocol), is headless for a StatefulSet, and a failure is reported next to the success.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import quote

from config.constants import AUTO_SERVICE_ANNOTATION
from utils import kube
from utils.budget import Budget

KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# A Service port name must be an IANA service name: at most 15 characters, lower-case alphanumerics
# and '-', at least one letter, no leading, trailing or double '-'.
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")


def _mapping(parent: Any, key: str) -> dict[str, Any]:
    """``parent[key]`` when both are mappings, else an empty dict (posted objects may be anything)."""
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def valid_port_name(name: str) -> bool:
    """True for an IANA service name (what the API server requires of a Service port's name)."""
    return bool(_PORT_NAME.match(name)) and "--" not in name and any(c.isalpha() for c in name)


class NoSelector(ValueError):
    """The workload has no ``spec.selector.matchLabels``: the Service would select nothing."""


def selector_of(workload: dict[str, Any]) -> dict[str, str]:
    """The workload's ``spec.selector.matchLabels``; ``NoSelector`` when empty or absent."""
    spec = _mapping(workload, "spec")
    selector = _mapping(spec, "selector")
    labels = selector.get("matchLabels")
    if not isinstance(labels, dict) or not labels or not all(isinstance(v, str) for v in labels.values()):
        raise NoSelector("spec.selector.matchLabels 为空, 无法自动创建Service")
    return {str(k): v for k, v in labels.items()}


def prepare_workload(kind: str, workload: dict[str, Any]) -> dict[str, Any]:
    """The workload as it is created when a Service is wanted: a StatefulSet without ``serviceName``
    gets its own name there (the headless Service created next has that name)."""
    selector_of(workload)  # refuse before anything is created
    if kind != "StatefulSet":
        return workload
    out = copy.deepcopy(workload)
    spec = out.setdefault("spec", {})
    if not spec.get("serviceName"):
        spec["serviceName"] = (out.get("metadata") or {}).get("name", "")
    return out


def _port_name(given: Any, container: str, index: int, taken: set[str]) -> str:
    """The port's own name, else Go's ``<container>-<index>``, else ``port-<index>`` if that is invalid."""
    for candidate in (given, f"{container}-{index}", f"port-{index}"):
        if isinstance(candidate, str) and valid_port_name(candidate) and candidate not in taken:
            return candidate
    n = index
    while f"port-{n}" in taken:
        n += 1
    return f"port-{n}"


def service_for_workload(kind: str, workload: dict[str, Any]) -> dict[str, Any] | None:
    """The Service for a workload, or None when there is nothing to expose (no ports, not a StatefulSet).

    Raises ``NoSelector`` when the workload selects no labels.
    """
    selector = selector_of(workload)
    metadata = _mapping(workload, "metadata")
    spec = _mapping(workload, "spec")
    template = _mapping(spec, "template")
    pod_spec = _mapping(template, "spec")
    ports: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    names: set[str] = set()
    for container in pod_spec.get("containers") or []:
        if not isinstance(container, dict):
            continue
        cname = str(container.get("name") or "")
        for index, port in enumerate(container.get("ports") or []):
            if not isinstance(port, dict) or not isinstance(port.get("containerPort"), int):
                continue
            protocol = str(port.get("protocol") or "TCP")
            key = (port["containerPort"], protocol)
            if key in seen:
                continue  # the API server refuses a Service with the same port and protocol twice
            seen.add(key)
            name = _port_name(port.get("name"), cname, index, names)
            names.add(name)
            ports.append({"name": name, "port": port["containerPort"], "protocol": protocol})
    if not ports and kind != "StatefulSet":
        return None
    service_spec: dict[str, Any] = {"selector": selector, "ports": ports}
    if kind == "StatefulSet":
        service_spec["clusterIP"] = "None"
    service_meta: dict[str, Any] = {
        "name": metadata.get("name", ""),
        "labels": dict(selector),
        "annotations": {AUTO_SERVICE_ANNOTATION: "true"},
    }
    if metadata.get("namespace"):
        service_meta["namespace"] = metadata["namespace"]
    return {"apiVersion": "v1", "kind": "Service", "metadata": service_meta, "spec": service_spec}


def create_service(client: kube.KubeClient, service: dict[str, Any], namespace: str, budget: Budget) -> dict:
    """Create the Service in ``namespace``; raises ``KubeError`` (the caller reports it)."""
    service = {**service, "metadata": {**service["metadata"], "namespace": namespace}}
    return client.request("POST", f"/api/v1/namespaces/{quote(namespace, safe='')}/services", body=service,
                          timeout=budget.timeout())  # fmt: skip
