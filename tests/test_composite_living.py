"""The composite routes over HTTP against living target clusters (controllers, scheduler, kwok nodes):
copies that roll out, topology with controller-made pods, auto Services that get endpoints, real counts."""

from __future__ import annotations

import pytest

from controlplane.harness import Cluster, wait_for
from tests.conftest import kubeconfig_text
from tests.service import Service, unique

ROLLOUT = 90.0  # seconds: create -> schedule -> Running on a busy two-core machine


def register(svc: Service, cluster: Cluster) -> str:
    """Register ``cluster`` under a fresh id."""
    cluster_id = unique("liv")
    body = svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig_text(cluster)})
    assert body["status"] == 200, body
    return cluster_id


def namespace(cluster: Cluster) -> str:
    """A fresh namespace."""
    name = unique("cl")
    assert cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    return name


def deployment(name: str, replicas: int = 2) -> dict:
    """A Deployment reading a ConfigMap, with a container port."""
    labels = {"app": name}
    container = {"name": "app", "image": "registry.invalid/demo:1", "ports": [{"containerPort": 8080}],
                 "envFrom": [{"configMapRef": {"name": f"{name}-cfg"}}]}  # fmt: skip
    return {"metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}  # fmt: skip


def running(cluster: Cluster, ns: str, app: str, count: int) -> list[dict]:
    """The pods of ``app`` when ``count`` of them run on the cluster's kwok Nodes, else ``[]``."""
    status, body = cluster.request("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=app%3D{app}")
    assert status == 200, body
    pods = [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]
    if len(pods) == count and all(p["status"].get("phase") == "Running" for p in pods):
        return pods
    return []


@pytest.mark.timeout(300)
def test_a_copy_between_living_clusters_rolls_out(service: Service, living1: Cluster, living2: Cluster) -> None:
    c1, c2 = register(service, living1), register(service, living2)
    src, dst = namespace(living1), unique("dst")
    name = unique("web")
    living1.request("POST", f"/api/v1/namespaces/{src}/configmaps", {"metadata": {"name": f"{name}-cfg"},
                                                                      "data": {"MODE": "x"}})  # fmt: skip
    add = {"clusterId": c1, "nameSpace": src, "item": deployment(name), "autoCreateService": True}
    body = service.api("POST", "/api/deployment/add", json=add)
    assert body == {"status": 200, "message": "创建成功", "data": {}}, body
    wait_for(lambda: running(living1, src, name, 2), ROLLOUT, "source pods Running")
    copied = service.api("POST", "/api/namespace/copy", json={
        "clusterId": c1, "namespace": src, "toClusterId": c2, "toNamespace": dst, "createNamespace": True,
        "toResources": {"Deployment": [name], "ConfigMap": [f"{name}-cfg"], "Service": [name]}})  # fmt: skip
    assert copied["status"] == 200 and copied["message"] == "复制成功", copied
    assert [r["kind"] for r in copied["data"]["results"]] == ["ConfigMap", "Service", "Deployment"]
    # The copies apply and work: the Deployment rolls out in the other cluster, owned by its own objects.
    pods = wait_for(lambda: running(living2, dst, name, 2), ROLLOUT, "copied pods Running")
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in pods)
    status, svc = living2.request("GET", f"/api/v1/namespaces/{dst}/services/{name}")
    assert status == 200 and svc["spec"]["selector"] == {"app": name}


@pytest.mark.timeout(300)
def test_topology_auto_service_and_counts_on_a_living_cluster(make_service, living1: Cluster) -> None:
    svc = make_service(env={"PROBE_ENABLED": "true", "PROBE_INTERVAL": "0.5", "PROBE_COUNT_INTERVAL": "0.5",
                            "PROBE_HEARTBEAT": "1",
                            "LEASE_DURATION": "3", "LEASE_RENEW_INTERVAL": "1"})  # fmt: skip
    cluster_id = register(svc, living1)
    ns, name = namespace(living1), unique("api")
    living1.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": f"{name}-cfg"}})
    assert svc.api("POST", "/api/deployment/add", json={"clusterId": cluster_id, "nameSpace": ns,
                   "item": deployment(name, 3), "autoCreateService": True})["status"] == 200  # fmt: skip
    pods = wait_for(lambda: running(living1, ns, name, 3), ROLLOUT, "pods Running")

    def endpoints() -> list:  # the auto Service selects the pods: the EndpointSlice controller fills it
        status, body = living1.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
                                              f"?labelSelector=kubernetes.io%2Fservice-name%3D{name}")  # fmt: skip
        return [e for s in body.get("items") or [] for e in s.get("endpoints") or []] if status == 200 else []

    def three_endpoints() -> list:
        found = endpoints()
        return found if len(found) == 3 else []

    assert len(wait_for(three_endpoints, ROLLOUT, "3 endpoints")) == 3
    backend = {"service": {"name": name, "port": {"number": 8080}}}
    living1.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", {
        "metadata": {"name": "ing"}, "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}})  # fmt: skip
    graph = svc.api("GET", f"/api/ingress/topology?clusterId={cluster_id}&nameSpace={ns}&name=ing")["data"]
    pod_nodes = sorted(n["id"] for n in graph["nodes"] if n["resourceType"] == "pod")
    assert pod_nodes == sorted(p["metadata"]["name"] for p in pods)
    detail = svc.api("GET", f"/api/namespace/detail?clusterId={cluster_id}&name={ns}")
    totals = {i["resourceType"]: i["total"] for i in detail["data"]["items"]}
    assert totals["pod"] == 3 and totals["deployment"] == 1 and totals["service"] == 1, detail
    assert living1.living is not None
    live = svc.api("GET", f"/api/cluster/detail?clusterId={cluster_id}")["data"]
    assert live["live"] and live["items"][0] == {"resourceType": "node", "total": len(living1.nodes_ready())}

    def node_count() -> int:
        item = next(i for i in svc.api("GET", "/api/cluster/list")["data"]["items"] if i["id"] == cluster_id)
        return int(item["nodeCount"] or 0)

    assert wait_for(node_count, 30, "nodes counted by the prober") == len(living1.living.nodes)
    statics = svc.api("GET", "/api/cluster/statics")["data"]["items"]
    assert next(e for e in statics if e["resourceType"] == "node")["total"] == len(living1.living.nodes)
