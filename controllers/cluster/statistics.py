"""Counting: the home page's statistics, cluster detail and namespace detail (contract-platform.md §2.10).

Go keeps a shared informer per kind per cluster (every pod of every cluster in memory), started only
for the clusters registered at its start. Here a count is a LIST with ``limit=1``: the API server
answers ``metadata.remainingItemCount``, so one small answer gives the total. When that field is
absent (the server cannot tell, e.g. on an inconsistent continuation), metadata-only pages of 500
are counted. The prober counts each cluster every ``PROBE_COUNT_INTERVAL`` and records the counts
with its health; ``statics`` reads them from the registry's items.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from config.constants import COUNT_KINDS, STATUS_ACTIVE, STATUS_INACTIVE
from utils import kube
from utils.budget import Budget

PAGE = 500
# (group/version path, plural) of every kind counted anywhere; "" namespace means all namespaces.
_PATHS = {
    "node": ("/api/v1", "nodes", False),
    "namespace": ("/api/v1", "namespaces", False),
    "pod": ("/api/v1", "pods", True),
    "service": ("/api/v1", "services", True),
    "configmap": ("/api/v1", "configmaps", True),
    "secret": ("/api/v1", "secrets", True),
    "deployment": ("/apis/apps/v1", "deployments", True),
    "statefulset": ("/apis/apps/v1", "statefulsets", True),
    "daemonset": ("/apis/apps/v1", "daemonsets", True),
}
CLUSTER_DETAIL_ORDER = ("node", "namespace", "pod", "deployment", "daemonset")
NAMESPACE_DETAIL_ORDER = ("pod", "deployment", "statefulset", "daemonset", "service", "configmap", "secret")
# The frontend's sample colours for the cluster pie.
COLOURS = {STATUS_ACTIVE: "#228B22", STATUS_INACTIVE: "#c23531"}
HEADERS = {
    "cluster": "集群统计",
    "node": "节点统计",
    "pod": "Pod统计",
    "namespace": "命名空间统计",
    "deployment": "Deployment统计",
    "daemonset": "DaemonSet统计",
}
STATICS_ORDER = ("cluster", "node", "pod", "namespace", "deployment", "daemonset")


def collection_path(resource: str, namespace: str = "") -> str:
    """The LIST path of a counted kind, in one namespace or all."""
    prefix, plural, namespaced = _PATHS[resource]
    if namespaced and namespace:
        return f"{prefix}/namespaces/{quote(namespace, safe='')}/{plural}"
    return f"{prefix}/{plural}"


def count(client: kube.KubeClient, path: str, timeout: Any = None) -> int:
    """How many objects the collection at ``path`` holds.

    ``timeout`` is a ``(connect, read)`` pair or a callable giving one per call (a route's budget).
    """

    def bound() -> Any:
        return timeout() if callable(timeout) else timeout

    query: dict[str, Any] = {"limit": 1}
    first = client.request("GET", path, query=query, accept=kube.ACCEPT_METADATA_LIST, timeout=bound())
    items = len(first.get("items") or [])
    meta = first.get("metadata") or {}
    if not meta.get("continue"):
        return items
    remaining = meta.get("remainingItemCount")
    if isinstance(remaining, int) and remaining >= 0:
        return items + remaining
    total, token = 0, None
    while True:  # the server could not say: count metadata-only pages
        page_query: dict[str, Any] = {"limit": PAGE}
        if token:
            page_query["continue"] = token
        page = client.request("GET", path, query=page_query, accept=kube.ACCEPT_METADATA_LIST, timeout=bound())
        total += len(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return total


def count_cluster(client: kube.KubeClient, timeout: Any = None) -> dict[str, int]:
    """Nodes, pods, namespaces, deployments and daemonsets of a cluster (five small LISTs)."""
    return {kind: count(client, collection_path(kind), timeout) for kind in COUNT_KINDS}


def _short(exc: kube.KubeError) -> str:
    """A failure in a few characters for a message (``Forbidden``, ``Timeout``, ...)."""
    return exc.reason if exc.reason != "Error" else exc.message[:60]


def namespace_detail(client: kube.KubeClient, namespace: str, budget: Budget) -> tuple[list[dict[str, Any]], list[str]]:
    """The counts of one namespace in the fixed order, and the kinds that could not be counted.

    The namespace itself is read first, so a missing one is an error (``NotFound``) rather than a
    page of zeros. A kind that fails (forbidden, timed out) is left out and named ``<kind>(<reason>)``.
    """
    client.request("GET", f"/api/v1/namespaces/{quote(namespace, safe='')}", timeout=budget.timeout())
    items: list[dict[str, Any]] = []
    missing: list[str] = []
    for kind in NAMESPACE_DETAIL_ORDER:
        try:
            items.append({"resourceType": kind, "total": count(client, collection_path(kind, namespace),
                                                                 budget.timeout)})  # fmt: skip
        except kube.KubeError as exc:
            missing.append(f"{kind}({_short(exc)})")
    return items, missing


def recorded_counts(annotations: Mapping[str, Any]) -> dict[str, int] | None:
    """The counts the prober recorded in a cluster item (``<kind>Count``), or None when never counted."""
    if not annotations.get("countedAt"):
        return None
    counts = {}
    for kind in COUNT_KINDS:
        try:
            counts[kind] = max(0, int(str(annotations.get(f"{kind}Count") or 0)))
        except ValueError:
            counts[kind] = 0
    return counts


def cluster_detail(live: dict[str, int] | None, recorded: dict[str, int] | None) -> list[dict[str, Any]]:
    """The five entries of cluster/detail in order: the live counts, else the recorded ones, else zeros."""
    source = live if live is not None else (recorded or {})
    return [{"resourceType": kind, "total": int(source.get(kind, 0))} for kind in CLUSTER_DETAIL_ORDER]


def _counts_of(item: Mapping[str, Any]) -> dict[str, int]:
    """What an item contributes to the home page: its recorded counts, or zeros when never counted
    or when its last count failed (an unreachable cluster counts 0)."""
    counts = recorded_counts(item)
    if counts is None or item.get("countError"):
        return dict.fromkeys(COUNT_KINDS, 0)
    return counts


def statics(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The six entries of cluster/statics from the registry's items (no call to any cluster)."""
    items = list(items)
    active = sum(1 for i in items if i.get("status") == STATUS_ACTIVE)
    entries: list[dict[str, Any]] = [{
        "resourceType": "cluster",
        "header": HEADERS["cluster"],
        "seriesName": HEADERS["cluster"],
        "total": len(items),
        "data": [
            {"name": STATUS_INACTIVE, "value": len(items) - active, "itemStyle": {"color": COLOURS[STATUS_INACTIVE]}},
            {"name": STATUS_ACTIVE, "value": active, "itemStyle": {"color": COLOURS[STATUS_ACTIVE]}},
        ],
    }]  # fmt: skip
    per_cluster = [(str(i.get("displayName") or i.get("id") or ""), _counts_of(i)) for i in items]
    for kind in STATICS_ORDER[1:]:
        data = [{"name": name, "value": counts[kind]} for name, counts in per_cluster]
        entries.append({
            "resourceType": kind,
            "header": HEADERS[kind],
            "seriesName": HEADERS[kind],
            "total": sum(d["value"] for d in data),
            "data": data,
        })  # fmt: skip
    return entries


def count_annotations(client: kube.KubeClient, timeout: Any, now: str) -> dict[str, str]:
    """The counts as the prober records them: ``<kind>Count``, ``countedAt`` and ``countError`` ("" when ok).

    A failure is recorded as ``countError`` only: the last good counts stay for cluster/detail's
    fallback, while the home page counts such a cluster 0. Never raises: one cluster's count must
    not disturb its health record or the round.
    """
    try:
        counts = count_cluster(client, timeout)
    except kube.KubeError as exc:
        return {"countError": exc.reason}
    except Exception as exc:  # a bug here must cost this cluster's counts, not the probe
        return {"countError": type(exc).__name__}
    return {**{f"{kind}Count": str(value) for kind, value in counts.items()}, "countedAt": now, "countError": ""}
