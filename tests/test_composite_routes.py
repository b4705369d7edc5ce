"""The composite routes over HTTP (gunicorn) against real API servers: statistics, details, copy,
topology, tools/yaml and autoCreateService, with their faults (contract-platform.md §2.5–§2.10)."""

from __future__ import annotations

import functools
import threading
from typing import Any

import pytest

from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.service import Service, eventually, unique

FAST = {
    "PROBE_ENABLED": "true",
    "PROBE_INTERVAL": "0.5",
    "PROBE_COUNT_INTERVAL": "0.5",
    "PROBE_TIMEOUT": "2",
    "PROBE_HEARTBEAT": "1",
    "PROBE_MAX_BACKOFF": "1",
    "LEASE_DURATION": "3",
    "LEASE_RENEW_INTERVAL": "1",
}


# Probe rounds on a busy machine: a longer default than the shared helper's.
eventually = functools.partial(eventually, timeout=30.0)


def register(svc: Service, cluster: Cluster, identity: str = "admin", display: str = "") -> str:
    """Register ``cluster`` under a fresh id."""
    cluster_id = unique("cmp")
    body = svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "displayName": display,
                                                      "kubeconfig": kubeconfig_text(cluster, identity)})  # fmt: skip
    assert body["status"] == 200, body
    return cluster_id


def namespace(cluster: Cluster) -> str:
    """A fresh namespace in ``cluster``."""
    name = unique("ns")
    assert cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    return name


@pytest.fixture(scope="module")
def c1(service: Service, target1: Cluster) -> str:
    """target1 registered with the shared service."""
    return register(service, target1)


@pytest.fixture(scope="module")
def c2(service: Service, target2: Cluster) -> str:
    """target2 registered with the shared service."""
    return register(service, target2)


# Statistics ----------------------------------------------------------------------------------------


def _entry(svc: Service, resource_type: str) -> dict:
    body = svc.api("GET", "/api/cluster/statics")
    assert body["status"] == 200 and body["message"] == "查询成功", body
    return next(e for e in body["data"]["items"] if e["resourceType"] == resource_type)


def test_statics_include_a_cluster_registered_after_start_and_follow_the_prober(make_service, target1: Cluster) -> None:
    svc = make_service(env=FAST)
    assert [e["resourceType"] for e in svc.api("GET", "/api/cluster/statics")["data"]["items"]] == [
        "cluster", "node", "pod", "namespace", "deployment", "daemonset"]  # fmt: skip
    display = unique("Late")
    cluster_id = register(svc, target1, display=display)

    def namespaces_counted() -> int:
        data = {d["name"]: d["value"] for d in _entry(svc, "namespace")["data"]}
        return data.get(display, 0)

    before = eventually(namespaces_counted)
    item = next(i for i in svc.api("GET", "/api/cluster/list")["data"]["items"] if i["id"] == cluster_id)
    assert int(item["namespaceCount"]) == before and item["countedAt"] and item["countError"] == ""
    assert item["nodeCount"] != ""  # the 集群规模 column can read it from the item
    namespace(target1)
    eventually(lambda: namespaces_counted() > before)  # changed after the prober's next round
    cluster_entry = _entry(svc, "cluster")
    assert cluster_entry["seriesName"] == "集群统计" and cluster_entry["total"] == 1
    assert cluster_entry["data"][1] == {"name": "Active", "value": 1, "itemStyle": {"color": "#228B22"}}
    got = svc.api("GET", f"/api/cluster/get?id={cluster_id}")["data"]["item"]
    assert got["namespaceCount"] and got["countedAt"]


def test_cluster_detail_is_live_and_falls_back_to_recorded_counts(make_service, target2: Cluster) -> None:
    svc = make_service(env=FAST)
    cluster_id = register(svc, target2)
    body = svc.api("GET", f"/api/cluster/detail?clusterId={cluster_id}")
    assert body["status"] == 200 and body["data"]["live"] is True
    assert [i["resourceType"] for i in body["data"]["items"]] == ["node", "namespace", "pod", "deployment",
                                                                  "daemonset"]  # fmt: skip
    live_namespaces = body["data"]["items"][1]["total"]
    assert live_namespaces >= 4
    eventually(lambda: next(i for i in svc.api("GET", "/api/cluster/list")["data"]["items"]
                            if i["id"] == cluster_id)["countedAt"])  # fmt: skip
    target2.stop()
    try:
        down = svc.api("GET", f"/api/cluster/detail?clusterId={cluster_id}")
        assert down["status"] == 200 and down["data"]["live"] is False and down["data"]["countedAt"]
        assert down["data"]["items"][1]["total"] >= 4
        # The home page counts an unreachable cluster 0 once the prober noticed.
        eventually(lambda: _entry(svc, "namespace")["total"] == 0)
    finally:
        target2.start()


def test_unknown_and_missing_clusters_are_400s(service: Service) -> None:
    for path in ("/api/cluster/detail", "/api/namespace/detail?name=default", "/api/ingress/topology?name=x"):
        sep = "&" if "?" in path else "?"
        missing = service.api("GET", path)
        assert missing["status"] == 400 and missing["message"] == "缺少参数: clusterId", (path, missing)
        unknown = service.api("GET", f"{path}{sep}clusterId=nope-{unique('x')}")
        assert unknown["status"] == 400 and unknown["message"].startswith("集群不存在: "), (path, unknown)
    body = service.api("POST", "/api/tools/yaml", json={"clusterId": "nope", "yaml": "a: 1"})
    assert body["status"] == 400 and body["message"] == "集群不存在: nope"


def test_namespace_detail_counts_in_fixed_order(service: Service, c1: str, target1: Cluster) -> None:
    ns = namespace(target1)
    target1.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "a"}})
    body = service.api("GET", f"/api/namespace/detail?clusterId={c1}&name={ns}")
    assert body["status"] == 200 and body["message"] == "查询ns详情成功", body
    assert [i["resourceType"] for i in body["data"]["items"]] == [
        "pod", "deployment", "statefulset", "daemonset", "service", "configmap", "secret"]  # fmt: skip
    assert body["data"]["items"][5]["total"] >= 1
    gone = service.api("GET", f"/api/namespace/detail?clusterId={c1}&name={unique('gone')}")
    assert gone["status"] == 400 and gone["message"].startswith("查询失败: ") and gone["data"] == {"items": []}


# namespace/copy ------------------------------------------------------------------------------------


def test_copy_across_clusters_over_http(service: Service, c1: str, c2: str, target1: Cluster,
                                        target2: Cluster) -> None:  # fmt: skip
    src, dst = namespace(target1), unique("dst")
    target1.request("POST", f"/api/v1/namespaces/{src}/configmaps", {"metadata": {"name": "cfg"}, "data": {"a": "b"}})
    target1.request("POST", f"/api/v1/namespaces/{src}/services", {"metadata": {"name": "web"}, "spec": {
        "type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}})  # fmt: skip
    body = service.api("POST", "/api/namespace/copy", json={
        "clusterId": c1, "namespace": src, "toClusterId": c2, "toNamespace": dst, "createNamespace": True,
        "toResources": {"ConfigMap": ["cfg"], "Service": ["web"], "StatefulSet": []},
        "resourceList": ["ignored"], "fromResources": {}})  # fmt: skip
    assert body["status"] == 200 and body["message"] == "复制成功", body
    assert body["data"]["results"] == [{"kind": "ConfigMap", "name": "cfg", "status": "ok", "message": ""},
                                       {"kind": "Service", "name": "web", "status": "ok", "message": ""}]  # fmt: skip
    assert target2.request("GET", f"/api/v1/namespaces/{dst}/configmaps/cfg")[1]["data"] == {"a": "b"}
    again = service.api("POST", "/api/namespace/copy", json={
        "clusterId": c1, "namespace": src, "toClusterId": c2, "toNamespace": dst, "createNamespace": True,
        "toResources": {"ConfigMap": ["cfg"], "Secret": ["nope"]}})  # fmt: skip
    assert again["status"] == 400 and again["message"].startswith("复制完成, 失败 2 项: ConfigMap/cfg: "), again
    assert [r["status"] for r in again["data"]["results"]] == ["failed", "failed"]


def test_copy_refusals(service: Service, c1: str, meta: Cluster, target1: Cluster) -> None:
    src = namespace(target1)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"toClusterId": c1, "toNamespace": src}, "复制失败: 源和目标相同"),
        ({"toClusterId": "nope-x", "toNamespace": "x"}, "目标集群不存在: nope-x"),
        ({"toClusterId": c1, "toNamespace": unique("none")}, "复制失败: 目标命名空间不存在"),
        ({"toClusterId": c1, "toNamespace": "x", "toResources": {"Pod": ["p"]}}, "请求出错: toResources: 不支持的类型"),
        ({"toClusterId": c1, "toNamespace": "x", "namespace": unique("gone")}, "复制失败: 源命名空间不存在"),
        ({"toClusterId": c1, "toNamespace": "x", "createNamespace": "yes"}, "请求出错: "),
    ]
    extra: dict[str, Any]
    for extra, expected in cases:
        body = service.api("POST", "/api/namespace/copy", json={"clusterId": c1, "namespace": src,
                                                                 "toResources": {}, **extra})  # fmt: skip
        assert body["status"] == 400 and body["message"].startswith(expected), (extra, body)
    meta_id = register(service, meta)  # the metadata cluster itself registered as a target
    body = service.api("POST", "/api/namespace/copy", json={
        "clusterId": c1, "namespace": src, "toClusterId": meta_id, "toNamespace": service.namespace,
        "createNamespace": True, "toResources": {}})  # fmt: skip
    assert body["status"] == 400 and "元数据命名空间" in body["message"], body


def test_copy_into_a_vanishing_namespace_reports_each_object(service: Service, c1: str, target1: Cluster) -> None:
    src, dst = namespace(target1), namespace(target1)
    target1.request("POST", f"/api/v1/namespaces/{src}/configmaps", {"metadata": {"name": "cfg"}})
    target1.request("DELETE", f"/api/v1/namespaces/{dst}")  # stays Terminating: no controller manager
    body = service.api("POST", "/api/namespace/copy", json={
        "clusterId": c1, "namespace": src, "toClusterId": c1, "toNamespace": dst, "toResources": {
            "ConfigMap": ["cfg"]}})  # fmt: skip
    assert body["status"] == 400 and body["message"].startswith("复制完成, 失败 1 项: ConfigMap/cfg: "), body
    assert "terminat" in body["message"]


def test_a_target_that_dies_mid_copy_is_reported_per_object(make_service, target1: Cluster,
                                                             target2: Cluster) -> None:  # fmt: skip
    svc = make_service(env={"PROBE_ENABLED": "false"})
    c1, c2 = register(svc, target1), register(svc, target2)
    src, dst = namespace(target1), namespace(target2)
    names = [f"cm-{i:03d}" for i in range(300)]
    for name in names:
        target1.request("POST", f"/api/v1/namespaces/{src}/configmaps", {"metadata": {"name": name}})
    reply: dict[str, Any] = {}

    def copy() -> None:
        reply["body"] = svc.api("POST", "/api/namespace/copy", timeout=30, json={
            "clusterId": c1, "namespace": src, "toClusterId": c2, "toNamespace": dst,
            "toResources": {"ConfigMap": names}})  # fmt: skip

    worker = threading.Thread(target=copy)
    worker.start()
    try:
        eventually(lambda: len(target2.request("GET", f"/api/v1/namespaces/{dst}/configmaps")[1].get("items") or [])
                   >= 5, timeout=20, interval=0.02)  # fmt: skip
        target2.stop()
        worker.join(30)
    finally:
        target2.start()
    body = reply["body"]
    assert body["status"] == 400 and body["message"].startswith("复制完成, 失败 "), body["message"][:300]
    results = body["data"]["results"]
    assert len(results) == len(names)
    ok = [r["name"] for r in results if r["status"] == "ok"]
    assert ok and len(ok) < len(names)
    assert all(r["message"] for r in results if r["status"] == "failed")
    present = {i["metadata"]["name"] for i in target2.request("GET", f"/api/v1/namespaces/{dst}/configmaps")[1]
               .get("items") or []}  # fmt: skip
    assert set(ok) <= present  # nothing claimed that did not happen


# ingress/topology ----------------------------------------------------------------------------------


def test_topology_over_http(service: Service, c1: str, target1: Cluster) -> None:
    ns = namespace(target1)
    target1.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", {
        "metadata": {"name": "ing"}, "spec": {"rules": [{"host": "h.example.com"}], "defaultBackend": {
            "service": {"name": "web", "port": {"number": 80}}}}})  # fmt: skip
    body = service.api("GET", f"/api/ingress/topology?clusterId={c1}&nameSpace={ns}&name=ing")
    assert body["status"] == 200 and body["message"] == "查询成功", body
    assert [n["id"] for n in body["data"]["nodes"]] == ["*", "*(default)", "web:80"]
    assert body["data"]["edges"] == [{"from": "*", "to": "*(default)"}, {"from": "*(default)", "to": "web:80"}]
    missing = service.api("GET", f"/api/ingress/topology?clusterId={c1}&nameSpace={ns}&name=nope")
    assert missing["status"] == 400 and missing["message"].startswith("获取拓图失败: ")


# tools/yaml ----------------------------------------------------------------------------------------


def test_tools_yaml_over_http(service: Service, c1: str, target1: Cluster) -> None:
    ns = namespace(target1)
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {}}}\n"
    text = doc.format("y1") + "---\n" + doc.format("y2")
    body = service.api("POST", "/api/tools/yaml", json={"clusterId": c1, "nameSpace": ns, "yaml": text,
                                                         "method": "Create"})  # fmt: skip
    assert body == {"status": 200, "message": "创建成功", "data": {}}
    assert target1.request("GET", f"/api/v1/namespaces/{ns}/configmaps/y2")[0] == 200
    failed = service.api("POST", "/api/tools/yaml", json={"clusterId": c1, "nameSpace": ns, "yaml": text + "---\n<x"})
    assert (failed["status"] == 400 and "&lt;" in failed["message"]) or "序列化" in failed["message"], failed
    again = service.api("POST", "/api/tools/yaml", json={"clusterId": c1, "nameSpace": ns, "yaml": text})
    assert again["status"] == 400 and again["message"].split("\n")[0].startswith("第1项yaml数据创建失败: ")
    applied = service.api("POST", "/api/tools/yaml", json={"clusterId": c1, "nameSpace": ns, "yaml": text,
                                                            "method": "Apply"})  # fmt: skip
    assert applied["status"] == 200 and applied["message"] == "创建成功", applied
    wrong = service.api("POST", "/api/tools/yaml", json={"clusterId": c1, "yaml": text, "method": "Delete"})
    assert wrong == {"status": 400, "message": "不支持的method: Delete", "data": {}}


def test_tools_yaml_can_be_turned_off(make_service) -> None:
    svc = make_service(env={"ENABLE_TOOLS_YAML": "false", "PROBE_ENABLED": "false"})
    body = svc.api("POST", "/api/tools/yaml", json={"clusterId": "x", "yaml": "a: 1"})
    assert body == {"status": 403, "message": "功能已关闭", "data": {}}


# autoCreateService ---------------------------------------------------------------------------------


def workload(kind: str, name: str, ports: bool = True) -> dict[str, Any]:
    """A workload item as the form posts it."""
    container: dict[str, Any] = {"name": "app", "image": "registry.example/app:1"}
    if ports:
        container["ports"] = [{"containerPort": 8080, "name": "http"}, {"containerPort": 8080}]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
    }
    return {"kind": kind.lower(), "metadata": {"name": name}, "spec": spec}


def test_auto_created_services(service: Service, c1: str, target1: Cluster) -> None:
    ns = namespace(target1)
    for prefix, kind in (("deployment", "Deployment"), ("statefulset", "StatefulSet"), ("daemonset", "DaemonSet")):
        name = unique(prefix[:5])
        body = service.api(
            "POST",
            f"/api/{prefix}/add",
            json={"clusterId": c1, "nameSpace": ns, "item": workload(kind, name), "autoCreateService": True},
        )
        assert body == {"status": 200, "message": "创建成功", "data": {}}, body
        status, svc = target1.request("GET", f"/api/v1/namespaces/{ns}/services/{name}")
        assert status == 200 and svc["spec"]["selector"] == {"app": name}
        assert [p["port"] for p in svc["spec"]["ports"]] == [8080]
        assert svc["metadata"]["annotations"]["kubeasy.com/autoCreateService"] == "true"
        if kind == "StatefulSet":
            assert svc["spec"]["clusterIP"] == "None"
            sts = target1.request("GET", f"/apis/apps/v1/namespaces/{ns}/statefulsets/{name}")[1]
            assert sts["spec"]["serviceName"] == name
    taken = unique("taken")
    target1.request("POST", f"/api/v1/namespaces/{ns}/services", {"metadata": {"name": taken}, "spec": {
        "ports": [{"port": 1}]}})  # fmt: skip
    body = service.api(
        "POST",
        "/api/deployment/add",
        json={"clusterId": c1, "nameSpace": ns, "item": workload("Deployment", taken), "autoCreateService": True},
    )
    assert body["status"] == 200 and body["message"].startswith("创建成功, 自动创建Service失败: "), body
    bare = workload("Deployment", unique("bare"))
    del bare["spec"]["selector"]
    body = service.api("POST", "/api/deployment/add", json={"clusterId": c1, "nameSpace": ns, "item": bare,
                                                            "autoCreateService": True})  # fmt: skip
    assert body["status"] == 400
    assert target1.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{bare['metadata']['name']}")[0] == 404
    plain = unique("plain")
    body = service.api(
        "POST",
        "/api/deployment/add",
        json={"clusterId": c1, "nameSpace": ns, "item": workload("Deployment", plain), "autoCreateService": False},
    )
    assert body["status"] == 200
    assert target1.request("GET", f"/api/v1/namespaces/{ns}/services/{plain}")[0] == 404
