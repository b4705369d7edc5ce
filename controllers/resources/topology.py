"""ingress/topology: the graph the frontend draws with vis-network (contract-platform.md §2.6).

Nodes are ``{id, label, resourceType}``, edges ``{from, to}``: ingress host (``domain``) → path →
``<service>:<port>`` → pods selected by that Service. Go panics on a rule without ``http`` or a
resource backend and ignores ``spec.defaultBackend``; here such rules are skipped, the default
backend is a path ``(default)`` under ``*``, and every node id is unique (vis-network throws on a
duplicate id).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from utils import kube
from utils.budget import Budget

DOMAIN, PATH, SERVICE, POD = "domain", "path", "service", "pod"
ANY_HOST = "*"
DEFAULT_PATH = "(default)"


def _mapping(parent: Any, key: str) -> dict[str, Any]:
    """``parent[key]`` when both are mappings, else an empty dict (posted objects may be anything)."""
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def ingress_path(namespace: str, name: str) -> str:
    """The REST path of one Ingress."""
    return f"/apis/networking.k8s.io/v1/namespaces/{quote(namespace, safe='')}/ingresses/{quote(name, safe='')}"


class Graph:
    """Nodes in insertion order with unique ids, and edges without repeats."""

    def __init__(self) -> None:
        """An empty graph."""
        self.nodes: list[dict[str, str]] = []
        self.edges: list[dict[str, str]] = []
        self._ids: dict[str, str] = {}  # id -> resourceType
        self._edges: set[tuple[str, str]] = set()

    def node(self, node_id: str, label: str, resource_type: str, dedupe: bool = True) -> str:
        """Add a node and return its id; with ``dedupe`` an existing id of the same type is the same node.

        Any other clash (a path repeated, a pod named like a host) gets a ``#<n>`` suffix.
        """
        if node_id in self._ids:
            if dedupe and self._ids[node_id] == resource_type:
                return node_id
            base, n = node_id, 2
            while f"{base}#{n}" in self._ids:
                n += 1
            node_id = f"{base}#{n}"
        self._ids[node_id] = resource_type
        self.nodes.append({"id": node_id, "label": label, "resourceType": resource_type})
        return node_id

    def edge(self, source: str, target: str) -> None:
        """Connect two nodes once."""
        if (source, target) not in self._edges:
            self._edges.add((source, target))
            self.edges.append({"from": source, "to": target})


def _service_backend(backend: Any) -> tuple[str, str] | None:
    """(service name, port number or name) of a backend, or None for a resource backend or junk."""
    if not isinstance(backend, dict):
        return None
    service = backend.get("service")
    if not isinstance(service, dict) or not isinstance(service.get("name"), str) or not service["name"]:
        return None
    port = _mapping(service, "port")
    number, name = port.get("number"), port.get("name")
    return service["name"], str(number if number not in (None, 0, "") else (name or ""))


def build_graph(ingress: dict[str, Any]) -> tuple[Graph, list[tuple[str, str]]]:
    """The domain/path/service part of the graph and the (service node id, service name) pairs to expand."""
    graph = Graph()
    services: list[tuple[str, str]] = []
    spec = _mapping(ingress, "spec")

    def add_path(host_id: str, label: str, path_id: str, backend: Any) -> None:
        target = _service_backend(backend)
        if target is None:
            return  # a resource backend (or a broken one) has no Service to draw
        pid = graph.node(path_id, label, PATH, dedupe=False)  # Go does not dedupe paths either
        graph.edge(host_id, pid)
        sid = graph.node(f"{target[0]}:{target[1]}", f"{target[0]}:{target[1]}", SERVICE)
        graph.edge(pid, sid)
        if (sid, target[0]) not in services:
            services.append((sid, target[0]))

    for rule in spec.get("rules") or []:
        if not isinstance(rule, dict):
            continue
        http = rule.get("http")
        paths = http.get("paths") if isinstance(http, dict) else None
        if not isinstance(paths, list) or not paths:
            continue  # a rule without http (host only) routes nothing
        given = rule.get("host")
        host = given if isinstance(given, str) and given else ANY_HOST
        host_id = graph.node(host, host, DOMAIN)
        for entry in paths:
            if not isinstance(entry, dict):
                continue
            path = entry.get("path") if isinstance(entry.get("path"), str) else ""
            path_type = entry.get("pathType") if isinstance(entry.get("pathType"), str) else ""
            path, path_type = str(path or ""), str(path_type or "")
            add_path(host_id, path or "/", f"{host}{path}{path_type}", entry.get("backend"))
    default = spec.get("defaultBackend")
    if _service_backend(default) is not None:
        host_id = graph.node(ANY_HOST, ANY_HOST, DOMAIN)
        add_path(host_id, DEFAULT_PATH, f"{ANY_HOST}{DEFAULT_PATH}", default)
    return graph, services


def ingress_topology(client: kube.KubeClient, namespace: str, name: str, budget: Budget) -> dict[str, Any]:
    """``{nodes, edges}`` of one Ingress, with the pods of each Service it routes to.

    A Service that is missing, or has no selector, simply has no pods: the graph shows what routes
    where, and an unbacked path is part of that picture. Failing to read the Ingress, or a listing
    of pods, is an error (``KubeError``).
    """
    ingress = client.request("GET", ingress_path(namespace, name), timeout=budget.timeout())
    graph, services = build_graph(ingress)
    ns_path = f"/api/v1/namespaces/{quote(namespace, safe='')}"
    for service_id, service_name in services:
        try:
            service = client.request("GET", f"{ns_path}/services/{quote(service_name, safe='')}",
                                     timeout=budget.timeout())  # fmt: skip
        except kube.NotFound:
            continue
        selector = (service.get("spec") or {}).get("selector") or {}
        if not isinstance(selector, dict) or not selector:
            continue  # Go lists with an empty selector, i.e. every pod of the namespace: wrong
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = client.request("GET", f"{ns_path}/pods", query={"labelSelector": label_selector},
                              accept=kube.ACCEPT_METADATA_LIST, timeout=budget.timeout())  # fmt: skip
        for pod in pods.get("items") or []:
            pod_name = str((pod.get("metadata") or {}).get("name") or "")
            if pod_name:
                graph.edge(service_id, graph.node(pod_name, pod_name, POD))
    return {"nodes": graph.nodes, "edges": graph.edges}
