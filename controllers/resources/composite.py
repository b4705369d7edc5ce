"""The composite routes' controllers: statistics, details, copy, topology, YAML, workload add with a Service.

Each takes the platform context and plain arguments, gets the cached client(s) within the route's
budget, calls the pure parts (``statistics``, ``copy``, ``topology``, ``yaml_tool``, ``autoservice``)
and returns plain data or raises a domain error with the contract's message.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from config.constants import (
    MSG_AUTO_SERVICE_FAILED,
    MSG_BIND,
    MSG_COPY_DONE_FAILED,
    MSG_COPY_FAILED,
    MSG_COPY_OK,
    MSG_CREATE_FAILED,
    MSG_CREATE_OK,
    MSG_NOT_COUNTED,
    MSG_NS_GET_OK,
    MSG_QUERY_FAILED,
    MSG_STATICS_FAILED,
    MSG_TOPOLOGY_FAILED,
    MSG_UNKNOWN_CLUSTER,
)
from controllers.cluster import statistics
from controllers.cluster.registry import ClusterRegistry
from controllers.errors import BadRequest, ServiceError, Unavailable
from utils import kube, logs

from . import autoservice, topology, yaml_tool
from . import copy as ns_copy
from .cleaning import check_segment, clean_item
from .generic import Platform, audit, failure
from .kinds import BY_KIND, Kind

DEFAULT_NAMESPACE = "default"


# The last statics, by the registry's items they were computed from: the items list is the same object
# until the registry changes (ClusterRegistry.list_items), so a page reload costs no recount. Holding the
# items keeps their identity from being reused.
_last_statics: tuple[list[dict[str, str]], orjson.Fragment] | None = None


def cluster_statics(registry: ClusterRegistry) -> orjson.Fragment:
    """cluster/statics: six entries from the registry's items (the prober's recorded counts), as JSON.

    Computed and serialised once per change of the registry (10,000 clusters: 60,000 slices), like
    the cluster list.
    """
    global _last_statics
    try:
        items = registry.list_items()
    except kube.KubeError as exc:
        raise Unavailable(f"{MSG_STATICS_FAILED}: {exc.message}") from None
    last = _last_statics
    if last is not None and last[0] is items:
        return last[1]
    rendered = orjson.Fragment(orjson.dumps(statistics.statics(items)))
    _last_statics = (items, rendered)
    return rendered


def _recorded(registry: ClusterRegistry, cluster_id: str) -> dict[str, str] | None:
    """The registry item of a cluster (its recorded counts), or None if it cannot be read."""
    try:
        return registry.item(cluster_id)
    except kube.KubeError:
        return None


def cluster_detail(platform: Platform, registry: ClusterRegistry, cluster_id: str) -> dict[str, Any]:
    """cluster/detail: the five counts of one cluster, live; the prober's last counts when it does not answer.

    ``data.live`` says which it is and ``data.countedAt`` when the recorded counts were taken.
    """
    budget = platform.budget()
    try:
        with platform.clients.use(cluster_id, budget) as client:
            counts = statistics.count_cluster(client, budget.timeout)
        return {"items": statistics.cluster_detail(counts, None), "live": True, "countedAt": ""}
    except kube.KubeError as exc:
        reason = exc.message
    except BadRequest as exc:
        if exc.message.startswith(MSG_UNKNOWN_CLUSTER) or exc.message.startswith(MSG_BIND) or not cluster_id:
            exc.data = {"items": []}
            raise
        reason = exc.message  # unreachable or timed out: fall back
    item = _recorded(registry, cluster_id) or {}
    logs.info({"clusterId": cluster_id, "reason": reason}, "cluster detail from recorded counts")
    recorded = statistics.recorded_counts(item)
    return {"items": statistics.cluster_detail(None, recorded), "live": False, "countedAt": item.get("countedAt", "")}


def namespace_detail(platform: Platform, cluster_id: str, name: str) -> tuple[str, list[dict[str, Any]]]:
    """namespace/detail: the message (naming kinds not counted) and the seven counts in fixed order."""
    check_segment("name", name)
    budget = platform.budget(long=True)
    try:
        with platform.clients.use(cluster_id, budget) as client:
            items, missing = statistics.namespace_detail(client, name, budget)
    except kube.KubeError as exc:
        raise failure(cluster_id, MSG_QUERY_FAILED, exc, {"items": []}) from None
    except ServiceError as exc:
        exc.data = {"items": []}
        raise
    message = MSG_NS_GET_OK if not missing else f"{MSG_NS_GET_OK}, {MSG_NOT_COUNTED}: {', '.join(missing)}"
    return message, items


def ingress_topology(platform: Platform, cluster_id: str, namespace: str, name: str) -> dict[str, Any]:
    """ingress/topology: ``{nodes, edges}``."""
    ns = check_segment("nameSpace", namespace or DEFAULT_NAMESPACE)
    check_segment("name", name)
    budget = platform.budget()
    try:
        with platform.clients.use(cluster_id, budget) as client:
            return topology.ingress_topology(client, ns, name, budget)
    except kube.KubeError as exc:
        raise failure(cluster_id, MSG_TOPOLOGY_FAILED, exc) from None


def tools_yaml(platform: Platform, cluster_id: str, text: str, method: str, namespace: str, user: str) -> str:
    """tools/yaml: run the documents; the success message, or a 400 with one line per document."""
    method = yaml_tool.check_method(method)  # before any call: a wrong method touches nothing
    if namespace:
        check_segment("nameSpace", namespace)
    budget = platform.budget()
    try:
        with platform.clients.use(cluster_id, budget) as client:
            message = yaml_tool.run_yaml(client, text, method, namespace, budget)
    except kube.KubeError as exc:
        raise failure(cluster_id, MSG_CREATE_FAILED, exc) from None
    except BadRequest as exc:
        logs.info({"audit": True, "action": f"yaml-{method}", "user": user, "clusterId": cluster_id,
                   "result": "failed"}, "audit")  # fmt: skip
        raise exc from None
    logs.info({"audit": True, "action": f"yaml-{method}", "user": user, "clusterId": cluster_id,
               "result": "ok"}, "audit")  # fmt: skip
    return message


def add_workload(platform: Platform, kind: Kind, cluster_id: str, namespace: str, item: Any, user: str,
                 auto_service: bool) -> str:  # fmt: skip
    """Add a Deployment, StatefulSet or DaemonSet; with ``auto_service`` its Service after it (§2.5).

    A missing selector is a 400 before anything is created. The workload created but the Service
    refused: status 200 ``创建成功, 自动创建Service失败: <reason>`` (the workload exists, so the add
    succeeded, and the switch's outcome is not hidden).
    """
    body, ns, name = clean_item(kind, item, namespace, adding=True)
    if auto_service:
        try:
            body = autoservice.prepare_workload(kind.kind, body)
            service = autoservice.service_for_workload(kind.kind, body)
        except autoservice.NoSelector as exc:
            raise BadRequest(f"{MSG_CREATE_FAILED}: {exc}") from None
    budget = platform.budget()
    try:
        with platform.clients.use(cluster_id, budget) as client:
            created = client.request("POST", kind.path(ns), body=body, timeout=budget.timeout())
            name = name or str((created.get("metadata") or {}).get("name", ""))
            audit("add", user, cluster_id, kind, ns, name)
            if not auto_service or service is None:
                return MSG_CREATE_OK
            service["metadata"]["name"] = name
            try:
                autoservice.create_service(client, service, ns, budget)
            except kube.KubeError as exc:
                logs.info({"clusterId": cluster_id, "namespace": ns, "name": name, "reason": exc.message},
                          "auto service not created")  # fmt: skip
                return f"{MSG_CREATE_OK}, {MSG_AUTO_SERVICE_FAILED}: {exc.message}"
            audit("add", user, cluster_id, BY_KIND["Service"], ns, name, auto=True)
            return MSG_CREATE_OK
    except kube.KubeError as exc:
        raise failure(cluster_id, MSG_CREATE_FAILED, exc) from None


def _target_is_metadata_namespace(platform: Platform, target: kube.KubeClient, namespace: str, budget: Any) -> bool:
    """True when ``namespace`` is this service's metadata namespace on the metadata cluster (same kube-system)."""
    if not platform.metadata_namespace or namespace != platform.metadata_namespace:
        return False
    own = platform.metadata_uid()
    if not own:
        return True  # cannot tell which cluster holds the registry: refuse rather than risk it
    uid = ((target.request("GET", "/api/v1/namespaces/kube-system", timeout=budget.timeout()) or {})
           .get("metadata") or {}).get("uid")  # fmt: skip
    return uid == own


def namespace_copy(platform: Platform, cluster_id: str, namespace: str, to_cluster_id: str, to_namespace: str,
                   create_namespace: bool, resources: Any, user: str) -> tuple[str, list[dict[str, str]]]:  # fmt: skip
    """namespace/copy: the message and ``results``; a 400 (with the results) when anything failed."""
    check_segment("namespace", namespace)
    check_segment("toNamespace", to_namespace)
    to_cluster_id = to_cluster_id or cluster_id  # no target cluster named: a copy within the source cluster
    if to_cluster_id == cluster_id and to_namespace == namespace:
        raise BadRequest(f"{MSG_COPY_FAILED}: 源和目标相同 ({cluster_id}/{namespace})")
    try:
        pairs = ns_copy.plan(resources if resources is not None else {})
    except ns_copy.CopyRefused as exc:
        raise BadRequest(f"{MSG_BIND}: {exc}") from None
    budget = platform.budget(long=True)
    try:
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(platform.clients.use(cluster_id, budget))
            ns_copy.check_source(source, namespace, budget)
            try:
                target = stack.enter_context(platform.clients.use(to_cluster_id, budget))
            except BadRequest as exc:
                if exc.message.startswith(MSG_UNKNOWN_CLUSTER):
                    raise BadRequest(f"目标{MSG_UNKNOWN_CLUSTER}: {to_cluster_id}") from None
                raise
            try:
                if _target_is_metadata_namespace(platform, target, to_namespace, budget):
                    raise BadRequest(f"{MSG_COPY_FAILED}: 不能复制到本服务的元数据命名空间 {to_namespace}")
                ns_copy.ensure_target(target, to_namespace, create_namespace, budget)
            except kube.KubeError as exc:  # the target's failure names the target cluster
                raise failure(to_cluster_id, MSG_COPY_FAILED, exc) from None
            results = ns_copy.copy_objects(source, target, namespace, to_namespace, pairs, budget)
    except ns_copy.NamespaceProblem as exc:
        raise BadRequest(f"{MSG_COPY_FAILED}: {exc.message}") from None
    except kube.KubeError as exc:
        raise failure(cluster_id, MSG_COPY_FAILED, exc) from None
    rows = [r.as_dict() for r in results]
    failed, text = ns_copy.summary(results)
    logs.info({"audit": True, "action": "copy", "user": user, "clusterId": cluster_id, "namespace": namespace,
               "toClusterId": to_cluster_id, "toNamespace": to_namespace, "objects": len(rows),
               "failed": failed}, "audit")  # fmt: skip
    if failed:
        raise BadRequest(f"{MSG_COPY_DONE_FAILED} {failed} 项: {text}", data={"results": rows})
    return MSG_COPY_OK, rows
