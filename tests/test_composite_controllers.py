"""The composite controllers against real API servers: YAML tool, topology, copy, counting, auto Service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from controllers.cluster import statistics
from controllers.errors import BadRequest
from controllers.resources import autoservice, topology, yaml_tool
from controllers.resources import copy as ns_copy
from controllers.resources.kinds import BY_KIND
from controlplane.harness import Cluster
from tests.service import unique
from utils import kube
from utils.budget import Budget


@pytest.fixture
def client1(target1: Cluster) -> Iterator[kube.KubeClient]:
    """An admin client of target1."""
    with kube.KubeClient.from_kubeconfig(target1.kubeconfig(), timeout=(2, 5)) as client:
        yield client


@pytest.fixture
def client2(target2: Cluster) -> Iterator[kube.KubeClient]:
    """An admin client of target2."""
    with kube.KubeClient.from_kubeconfig(target2.kubeconfig(), timeout=(2, 5)) as client:
        yield client


def make_namespace(client: kube.KubeClient) -> str:
    """A fresh namespace (namespaces never finish deleting here, so names are unique)."""
    name = unique("ns")
    client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    return name


def budget() -> Budget:
    """A copy/detail-sized budget."""
    return Budget(9.5)


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: web
          image: nginx
          ports: [{{containerPort: 80, name: http}}, {{containerPort: 80}}, {{containerPort: 53, protocol: UDP}}]
"""

# tools/yaml ----------------------------------------------------------------------------------------


def test_yaml_creates_namespaced_and_cluster_scoped_documents(client1: kube.KubeClient) -> None:
    ns = make_namespace(client1)
    pc = unique("pc")
    text = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: cm1}}
data: {{a: "1"}}
---
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: {pc}, namespace: ignored}}
value: 1000
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: ing}}
spec: {{defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"""
    assert yaml_tool.run_yaml(client1, text, "", ns, budget()) == "创建成功"
    assert client1.request("GET", f"/api/v1/namespaces/{ns}/configmaps/cm1")["data"] == {"a": "1"}
    assert client1.request("GET", f"/apis/scheduling.k8s.io/v1/priorityclasses/{pc}")["value"] == 1000
    client1.request("GET", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/ing")  # plural from discovery


def test_yaml_reports_every_document_and_fails_with_400(client1: kube.KubeClient) -> None:
    ns = make_namespace(client1)
    text = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: ok, namespace: {ns}}}
---
- just a list
---
apiVersion: example.com/v1
kind: Nothing
metadata: {{name: x}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ok, namespace: {ns}}}
"""
    with pytest.raises(BadRequest) as caught:
        yaml_tool.run_yaml(client1, text, "Create", ns, budget())
    lines = caught.value.message.split("\n")
    assert lines[0] == "第1项yaml数据创建成功"
    assert lines[1].startswith("第2项yaml数据序列化: ")
    assert lines[2].startswith("第3项yaml数据创建失败: ") and "Nothing" in lines[2]
    assert lines[3].startswith("第4项yaml数据创建失败: ") and "already exists" in lines[3]


def test_yaml_apply_creates_then_applies_server_side(client1: kube.KubeClient) -> None:
    ns = make_namespace(client1)
    first = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: {ns}}}\ndata: {{a: '1'}}\n"
    assert yaml_tool.run_yaml(client1, first, "Apply", "", budget()) == "创建成功"
    client1.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/cfg", body={"data": {"a": "other"}},
                    content_type="application/merge-patch+json")  # fmt: skip
    second = first.replace("'1'", "'2'")
    assert yaml_tool.run_yaml(client1, second, "Apply", "", budget()) == "创建成功"
    got = client1.request("GET", f"/api/v1/namespaces/{ns}/configmaps/cfg")
    assert got["data"] == {"a": "2"}  # forced over the other manager's change
    assert any(m.get("manager") == "krm-backend" and m.get("operation") == "Apply"
               for m in got["metadata"]["managedFields"])  # fmt: skip


def test_yaml_update_of_a_secret_without_data_keeps_the_stored_data(client1: kube.KubeClient) -> None:
    ns = make_namespace(client1)
    client1.request("POST", f"/api/v1/namespaces/{ns}/secrets", body={
        "metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth", "stringData": {"username": "u"}})  # fmt: skip
    text = f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: {ns}, labels: {{x: y}}}}\n"
    assert yaml_tool.run_yaml(client1, text, "Update", "", budget()) == "更新成功"
    got = client1.request("GET", f"/api/v1/namespaces/{ns}/secrets/s")
    assert got["data"] == {"username": "dQ=="} and got["type"] == "kubernetes.io/basic-auth"
    assert got["metadata"]["labels"] == {"x": "y"}


def test_yaml_resolves_a_crd_created_a_moment_ago(client1: kube.KubeClient) -> None:
    group = f"{unique('g')}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }  # fmt: skip
    ns = make_namespace(client1)
    text = f"apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w1}}\nspec: {{size: 3}}\n"
    discovery = yaml_tool.Discovery()
    with pytest.raises(BadRequest):  # not served yet: and the miss is cached only briefly
        yaml_tool.run_yaml(client1, text, "Create", ns, budget(), discovery)
    client1.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd)
    deadline = time.monotonic() + 60
    while True:  # the CRD becomes served asynchronously; a cached miss is retried after 2 s
        try:
            assert yaml_tool.run_yaml(client1, text, "Create", ns, budget(), discovery) == "创建成功"
            break
        except BadRequest as exc:
            if time.monotonic() > deadline:
                raise AssertionError(exc.message) from None
            time.sleep(0.2)
    got = client1.request("GET", f"/apis/{group}/v1/namespaces/{ns}/widgets/w1")
    assert got["spec"] == {"size": 3}


def test_yaml_refuses_aliases_tags_limits_and_unknown_methods(client1: kube.KubeClient) -> None:
    cases = {
        "a: &x [1]\nb: *x\n": "anchors",
        "b: *x\n": "序列化",
        "a: !!python/object:os.system ls\n": "序列化",
        "---\n" * 101 + "a: 1\n": "yaml文档过多",
        "x" * (2 * 1024 * 1024 + 1): "yaml数据过大",
        "": "yaml数据为空",
        "a: [1\n": "序列化",
    }
    for text, expected in cases.items():
        with pytest.raises(BadRequest) as caught:
            yaml_tool.run_yaml(client1, text, "Create", "default", budget())
        assert expected in caught.value.message, (text[:40], caught.value.message)
    with pytest.raises(BadRequest) as caught:
        yaml_tool.run_yaml(client1, "a: 1", "Delete<b>", "default", budget())
    assert caught.value.message == "不支持的method: Delete&lt;b&gt;"


def test_yaml_message_is_html_escaped(client1: kube.KubeClient) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '<img src=x>'}\n"
    with pytest.raises(BadRequest) as caught:
        yaml_tool.run_yaml(client1, text, "Create", "default", budget())
    assert "<" not in caught.value.message and "&lt;img" in caught.value.message


# ingress/topology ----------------------------------------------------------------------------------


def test_topology_covers_every_rule_shape_with_unique_ids(client1: kube.KubeClient) -> None:
    ns = make_namespace(client1)
    client1.request("POST", f"/api/v1/namespaces/{ns}/services", body={
        "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})  # fmt: skip
    for pod in ("web-1", "web-2", "other"):
        client1.request("POST", f"/api/v1/namespaces/{ns}/pods", body={
            "metadata": {"name": pod, "labels": {"app": "web" if pod != "other" else "x"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}})  # fmt: skip
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    ingress = {
        "metadata": {"name": "ing"},
        "spec": {
            "defaultBackend": backend,
            "rules": [
                {"host": "a.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": backend},
                    {"path": "/", "pathType": "Prefix", "backend": backend},
                    {"path": "/r", "pathType": "Prefix", "backend": {"resource": {
                        "apiGroup": "example.com", "kind": "Bucket", "name": "b"}}},
                    {"path": "/m", "pathType": "Exact", "backend": {
                        "service": {"name": "missing", "port": {"name": "http"}}}},
                ]}},
                {"host": "no-http.example.com"},
                {"http": {"paths": [{"path": "/any", "pathType": "Prefix", "backend": backend}]}},
            ],
        },
    }  # fmt: skip
    client1.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", body=ingress)
    graph = topology.ingress_topology(client1, ns, "ing", budget())
    ids = [n["id"] for n in graph["nodes"]]
    assert len(ids) == len(set(ids))
    by_type: dict[str, list[str]] = {}
    for node in graph["nodes"]:
        by_type.setdefault(node["resourceType"], []).append(node["id"])
    assert by_type["domain"] == ["a.example.com", "*"]
    assert by_type["path"] == ["a.example.com/Prefix", "a.example.com/Prefix#2", "a.example.com/mExact",
                               "*/anyPrefix", "*(default)"]  # fmt: skip
    assert by_type["service"] == ["web:80", "missing:http"]
    assert sorted(by_type["pod"]) == ["web-1", "web-2"]
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    assert ("*", "*(default)") in edges and ("*(default)", "web:80") in edges
    assert ("web:80", "web-1") in edges and ("a.example.com/mExact", "missing:http") in edges
    assert next(n for n in graph["nodes"] if n["id"] == "*(default)")["label"] == "(default)"


def test_topology_of_a_missing_ingress_is_not_found(client1: kube.KubeClient) -> None:
    with pytest.raises(kube.NotFound):
        topology.ingress_topology(client1, "default", unique("nope"), budget())


# namespace/copy ------------------------------------------------------------------------------------


def seed_source(client: kube.KubeClient, ns: str) -> None:
    """A ConfigMap, an SA-token Secret, an opaque Secret, a NodePort Service and a StatefulSet."""
    base = f"/api/v1/namespaces/{ns}"
    client.request("POST", f"{base}/configmaps", body={"metadata": {"name": "cfg", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "00000000-0000-0000-0000-000000000001"}]},
        "data": {"k": "v"}})  # fmt: skip
    client.request("POST", f"{base}/secrets", body={"metadata": {"name": "plain"}, "stringData": {"p": "w"}})
    client.request("POST", f"{base}/serviceaccounts", body={"metadata": {"name": "sa"}})
    client.request("POST", f"{base}/secrets", body={"metadata": {"name": "tok", "annotations": {
        "kubernetes.io/service-account.name": "sa"}}, "type": "kubernetes.io/service-account-token"})  # fmt: skip
    client.request("POST", f"{base}/services", body={"metadata": {"name": "web"}, "spec": {
        "type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}})  # fmt: skip
    client.request("POST", f"/apis/apps/v1/namespaces/{ns}/statefulsets", body={
        "metadata": {"name": "db", "annotations": {"deployment.kubernetes.io/revision": "3"}},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "db", "image": "postgres"}]}}}})  # fmt: skip


def test_copy_across_clusters_cleans_orders_and_reports(client1: kube.KubeClient, client2: kube.KubeClient) -> None:
    src = make_namespace(client1)
    seed_source(client1, src)
    dst = unique("dst")
    ns_copy.check_source(client1, src, budget())
    assert ns_copy.ensure_target(client2, dst, True, budget()) is True
    assert ns_copy.ensure_target(client2, dst, True, budget()) is False  # an existing namespace is fine
    pairs = ns_copy.plan({"StatefulSet": ["db"], "Service": ["web"], "Secret": ["plain", "tok", "ghost"],
                          "ConfigMap": ["cfg", "cfg"]})  # fmt: skip
    results = [r.as_dict() for r in ns_copy.copy_objects(client1, client2, src, dst, pairs, budget())]
    assert [(r["kind"], r["name"], r["status"]) for r in results] == [
        ("ConfigMap", "cfg", "ok"), ("Secret", "plain", "ok"), ("Secret", "tok", "skipped"),
        ("Secret", "ghost", "failed"), ("Service", "web", "ok"), ("StatefulSet", "db", "ok")]  # fmt: skip
    assert "not found" in results[3]["message"]
    cfg = client2.request("GET", f"/api/v1/namespaces/{dst}/configmaps/cfg")
    assert "ownerReferences" not in cfg["metadata"] and cfg["data"] == {"k": "v"}
    sts = client2.request("GET", f"/apis/apps/v1/namespaces/{dst}/statefulsets/db")
    assert "deployment.kubernetes.io/revision" not in (sts["metadata"].get("annotations") or {})
    failed, text = ns_copy.summary(ns_copy.copy_objects(client1, client2, src, dst, pairs, budget()))
    assert failed == 5 and text.startswith("ConfigMap/cfg: ")  # the second time everything exists


def test_copy_within_a_cluster_gets_fresh_ips_and_node_ports(client1: kube.KubeClient) -> None:
    src, dst = make_namespace(client1), make_namespace(client1)
    seed_source(client1, src)
    results = ns_copy.copy_objects(client1, client1, src, dst, ns_copy.plan({"Service": ["web"]}), budget())
    assert [r.status for r in results] == ["ok"], results
    old = client1.request("GET", f"/api/v1/namespaces/{src}/services/web")["spec"]
    new = client1.request("GET", f"/api/v1/namespaces/{dst}/services/web")["spec"]
    assert new["clusterIP"] != old["clusterIP"] and new["ports"][0]["nodePort"] != old["ports"][0]["nodePort"]


def test_copy_refuses_bad_plans_and_missing_namespaces(client1: kube.KubeClient) -> None:
    bads: list[Any] = [{"Pod": ["x"]}, {"Secret": "x"}, {"Secret": ["a/b"]}, []]
    for bad in bads:
        with pytest.raises(ns_copy.CopyRefused):
            ns_copy.plan(bad)
    with pytest.raises(ns_copy.NamespaceProblem, match="源命名空间不存在"):
        ns_copy.check_source(client1, unique("gone"), budget())
    with pytest.raises(ns_copy.NamespaceProblem, match="目标命名空间不存在"):
        ns_copy.ensure_target(client1, unique("gone"), False, budget())


def test_copy_reports_objects_not_reached_within_the_budget(client1: kube.KubeClient) -> None:
    src = make_namespace(client1)
    pairs = ns_copy.plan({"ConfigMap": [f"c{i}" for i in range(5)]})
    spent = Budget(0.0)
    results = ns_copy.copy_objects(client1, client1, src, src, pairs, spent)
    assert {r.message for r in results} == {"未执行(超时)"} and all(r.status == "failed" for r in results)


# statistics ----------------------------------------------------------------------------------------


def test_counts_match_the_objects(client1: kube.KubeClient) -> None:
    ns = make_namespace(client1)
    for i in range(3):
        client1.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body={"metadata": {"name": f"c{i}"}})
    path = statistics.collection_path("configmap", ns)
    listing = client1.request("GET", path)
    assert statistics.count(client1, path, (2, 5)) == len(listing["items"])
    counts = statistics.count_cluster(client1, (2, 5))
    assert set(counts) == {"node", "pod", "namespace", "deployment", "daemonset"}
    assert counts["namespace"] == len(client1.request("GET", "/api/v1/namespaces")["items"])


def test_namespace_detail_in_fixed_order_fails_on_a_missing_namespace(
    target1: Cluster, client1: kube.KubeClient
) -> None:
    ns = make_namespace(client1)
    client1.request("POST", f"/api/v1/namespaces/{ns}/secrets", body={"metadata": {"name": "s"}})
    items, missing = statistics.namespace_detail(client1, ns, budget())
    assert [i["resourceType"] for i in items] == list(statistics.NAMESPACE_DETAIL_ORDER)
    assert next(i for i in items if i["resourceType"] == "secret")["total"] == 1
    assert missing == []
    with pytest.raises(kube.NotFound):
        statistics.namespace_detail(client1, unique("gone"), budget())
    with kube.KubeClient.from_kubeconfig(target1.kubeconfig("limited"), timeout=(2, 5)) as limited, \
            pytest.raises(kube.Forbidden):  # fmt: skip
        statistics.namespace_detail(limited, ns, budget())


def test_statics_builds_six_entries_from_recorded_counts() -> None:
    items = [
        {"id": "a", "displayName": "A", "status": "Active", "countedAt": "t", "nodeCount": "2", "podCount": "5",
         "namespaceCount": "4", "deploymentCount": "1", "daemonsetCount": "0", "countError": ""},
        {"id": "b", "displayName": "", "status": "InActive", "countedAt": "t", "nodeCount": "9",
         "countError": "Unreachable"},
        {"id": "c", "displayName": "C", "status": "Active"},
    ]  # fmt: skip
    entries = statistics.statics(items)
    assert [e["resourceType"] for e in entries] == ["cluster", "node", "pod", "namespace", "deployment", "daemonset"]
    assert all(e["seriesName"] == e["header"] for e in entries)
    assert entries[0]["total"] == 3
    assert entries[0]["data"] == [{"name": "InActive", "value": 1, "itemStyle": {"color": "#c23531"}},
                                  {"name": "Active", "value": 2, "itemStyle": {"color": "#228B22"}}]  # fmt: skip
    assert entries[1]["data"] == [{"name": "A", "value": 2}, {"name": "b", "value": 0}, {"name": "C", "value": 0}]
    assert entries[1]["total"] == 2 and entries[2]["total"] == 5
    assert statistics.cluster_detail(None, statistics.recorded_counts(items[0]))[0] == {"resourceType": "node",
                                                                                          "total": 2}  # fmt: skip
    assert [e["total"] for e in statistics.cluster_detail(None, None)] == [0] * 5


# autoCreateService ---------------------------------------------------------------------------------


def test_service_for_a_deployment_selects_its_pods_with_distinct_ports() -> None:
    import yaml

    workload = yaml.safe_load(DEPLOYMENT.format(name="web"))
    workload["metadata"]["namespace"] = "team"
    service = autoservice.service_for_workload("Deployment", workload)
    assert service is not None
    assert service["metadata"] == {"name": "web", "namespace": "team", "labels": {"app": "web"},
                                   "annotations": {"kubeasy.com/autoCreateService": "true"}}  # fmt: skip
    assert service["spec"] == {"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "protocol": "TCP"}, {"name": "web-2", "port": 53, "protocol": "UDP"}]}  # fmt: skip


def test_service_for_a_statefulset_is_headless_and_names_it() -> None:
    sts: dict[str, Any] = {"metadata": {"name": "db"}, "spec": {"selector": {"matchLabels": {"app": "db"}},
           "template": {"spec": {"containers": [{"name": "a-very-long-container-name", "ports": [
               {"containerPort": 5432}]}]}}}}  # fmt: skip
    prepared = autoservice.prepare_workload("StatefulSet", sts)
    assert prepared["spec"]["serviceName"] == "db" and "serviceName" not in sts["spec"]
    service = autoservice.service_for_workload("StatefulSet", prepared)
    assert service is not None and service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [{"name": "port-0", "port": 5432, "protocol": "TCP"}]


def test_no_ports_no_service_and_no_selector_is_refused() -> None:
    bare = {"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "c"}]}}}}  # fmt: skip
    assert autoservice.service_for_workload("Deployment", bare) is None
    assert autoservice.service_for_workload("StatefulSet", bare) is not None
    with pytest.raises(autoservice.NoSelector):
        autoservice.service_for_workload("DaemonSet", {"metadata": {"name": "x"}, "spec": {}})


def test_the_auto_service_is_accepted_by_the_api_server(client1: kube.KubeClient) -> None:
    import yaml

    ns = make_namespace(client1)
    workload = yaml.safe_load(DEPLOYMENT.format(name="api"))
    client1.request("POST", BY_KIND["Deployment"].path(ns), body=workload)
    service = autoservice.service_for_workload("Deployment", workload)
    assert service is not None
    created = autoservice.create_service(client1, service, ns, budget())
    assert created["spec"]["selector"] == {"app": "api"} and created["spec"]["clusterIP"]
