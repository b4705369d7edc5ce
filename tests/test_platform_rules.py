"""Secret rules (§2.7), get?method=Copy (§2.8), bad input (§1.1, §1.3, §1.5), limits, audit and metrics."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.platform_fixtures import api_request
from tests.service import Service, unique

SECRET_VALUE = "do-not-log-this-value-42"


def make_secret(cluster: Cluster, namespace: str, name: str, secret_type: str = "Opaque") -> None:  # noqa: S107
    """A Secret created directly (with data a TLS Secret needs)."""
    data = {"password": base64.b64encode(SECRET_VALUE.encode()).decode()}
    if secret_type == "kubernetes.io/tls":
        data = {"tls.crt": base64.b64encode(b"crt").decode(), "tls.key": base64.b64encode(b"key").decode()}
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": secret_type, "data": data}
    status, created = api_request(cluster, "POST", f"/api/v1/namespaces/{namespace}/secrets", body)
    assert status == 201, created


def test_secret_list_omits_data_and_get_keeps_it_with_an_audit_line(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str
) -> None:
    name = unique("sec")
    make_secret(platform_cluster, namespace, name)
    listed = service.api("GET", "/api/secret/list", params={"clusterId": platform_id, "nameSpace": namespace})
    [item] = [i for i in listed["data"]["items"] if i["metadata"]["name"] == name]
    assert "data" not in item and item["type"] == "Opaque"
    got = service.api("GET", "/api/secret/get", params={"clusterId": platform_id, "nameSpace": namespace, "name": name})
    assert base64.b64decode(got["data"]["item"]["data"]["password"]).decode() == SECRET_VALUE
    audit = [json.loads(line) for line in service.log().splitlines() if '"audit":true' in line and name in line]
    assert audit and audit[-1]["kind"] == "Secret" and audit[-1]["action"] == "get"
    assert audit[-1]["user"] == "admin" and audit[-1]["namespace"] == namespace
    assert audit[-1]["clusterId"] == platform_id
    assert SECRET_VALUE not in service.log()
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in service.log()


def test_the_tls_pickers_label_selector_is_applied_as_a_field_selector(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str
) -> None:
    tls, opaque = unique("tls"), unique("opq")
    make_secret(platform_cluster, namespace, tls, "kubernetes.io/tls")
    make_secret(platform_cluster, namespace, opaque)
    listed = service.api(
        "GET",
        "/api/secret/list",
        params={
            "clusterId": platform_id,
            "nameSpace": namespace,
            "labelSelector": "type=kubernetes.io/tls",
            "fieldSelector": "",
        },
    )
    assert listed["status"] == 200, listed
    assert [i["metadata"]["name"] for i in listed["data"]["items"]] == [tls]
    by_field = service.api(
        "GET",
        "/api/secret/list",
        params={"clusterId": platform_id, "nameSpace": namespace, "fieldSelector": "type=Opaque"},
    )
    assert opaque in [i["metadata"]["name"] for i in by_field["data"]["items"]]
    assert tls not in [i["metadata"]["name"] for i in by_field["data"]["items"]]


def test_secret_list_data_full_restores_go(
    make_service, target1: Cluster, namespace: str, platform_cluster: Cluster
) -> None:
    svc = make_service({"SECRET_LIST_DATA": "full", "PROBE_ENABLED": "false"})
    cluster_id = unique("full")
    assert (
        svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig_text(target1)})["status"]
        == 200
    )
    name = unique("sec")
    make_secret(platform_cluster, namespace, name)
    listed = svc.api("GET", "/api/secret/list", params={"clusterId": cluster_id, "nameSpace": namespace})
    [item] = [i for i in listed["data"]["items"] if i["metadata"]["name"] == name]
    assert "password" in item["data"]


def test_get_method_copy_answers_an_object_that_add_accepts(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str
) -> None:
    """A copied Service keeps no clusterIP or node ports, so adding it elsewhere works (§4 #8)."""
    name = unique("svc")
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": {"keep": "1"}},
        "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [{"port": 80}]},
    }
    assert api_request(platform_cluster, "POST", f"/api/v1/namespaces/{namespace}/services", svc)[0] == 201
    got = service.api(
        "GET",
        "/api/service/get",
        params={"clusterId": platform_id, "nameSpace": namespace, "name": name, "method": "Copy"},
    )
    copy = got["data"]["item"]
    assert copy["metadata"] == {
        "name": name,
        "namespace": namespace,
        "labels": {"app": name},
        "annotations": {"keep": "1"},
    }
    assert "status" not in copy and "clusterIP" not in copy["spec"] and "clusterIPs" not in copy["spec"]
    assert all("nodePort" not in p for p in copy["spec"]["ports"])
    other = unique("ns")
    assert (
        api_request(
            platform_cluster,
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}},
        )[0]
        == 201
    )
    try:
        body = service.api(
            "POST", "/api/service/add", json={"clusterId": platform_id, "nameSpace": other, "item": copy}
        )
        assert body["status"] == 200, body
    finally:
        api_request(platform_cluster, "DELETE", f"/api/v1/namespaces/{other}")


# Bad input: a clear 400 before any call, nothing written ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/configmap/add", {"item": "not an object"}, "请求出错: item必须是对象"),
        ("/api/configmap/add", {"item": [1, 2]}, "请求出错: item必须是对象"),
        ("/api/configmap/add", {}, "请求出错: item必须是对象"),
        ("/api/configmap/add", {"item": {"metadata": {"name": ".."}}}, "请求出错: item.metadata.name: "),
        ("/api/configmap/add", {"item": {"metadata": {"name": "a/b"}}}, "请求出错: item.metadata.name: "),
        ("/api/configmap/add", {"item": {"metadata": {}}}, "请求出错: item.metadata.name: 不能为空"),
        ("/api/configmap/add", {"item": {"metadata": {"name": 5}}}, "请求出错: item.metadata.name: "),
        ("/api/configmap/add", {"item": {"metadata": "x"}}, "请求出错: item.metadata: "),
        ("/api/configmap/add", {"nameSpace": "..", "item": {"metadata": {"name": "a"}}}, "请求出错: nameSpace: "),
        ("/api/configmap/update", {"item": {"metadata": {"name": "%2e"}}}, "请求出错: item.metadata.name: "),
        ("/api/configmap/get", {"name": ".."}, "请求出错: name: "),
        ("/api/configmap/get", {"name": ""}, "请求出错: name: 不能为空"),
        ("/api/configmap/get", {"name": 7}, "请求出错: name: Not a valid string."),
        ("/api/configmap/get", {"nameSpace": ["a"], "name": "a"}, "请求出错: nameSpace: Not a valid string."),
        ("/api/configmap/list", {"nameSpace": "a%2fb"}, "请求出错: nameSpace: "),
        ("/api/configmap/delete", {"name": "x", "forceDelete": "yes"}, "请求出错: forceDelete: Not a valid boolean."),
        (
            "/api/configmap/delete",
            {"name": "x", "nameSpace": "a", "namespace": "b"},
            "请求出错: nameSpace: conflicting",
        ),
        ("/api/configmap/deletelist", {"deleteList": []}, "请求出错: deleteList: 不能为空"),
        ("/api/configmap/deletelist", {"deleteList": "a"}, "请求出错: deleteList: Not a valid list."),
        ("/api/configmap/deletelist", {"deleteList": ["a", None]}, "请求出错: deleteList: "),
        ("/api/configmap/deletelist", {"deleteList": ["ok", ".."]}, "请求出错: deleteList[1]: "),
        ("/api/configmap/deletelist", {"deleteList": [f"n{i}" for i in range(501)]}, "请求出错: deleteList: 最多 500"),
        ("/api/deployment/restart", {"name": "a/../b"}, "请求出错: name: "),
        ("/api/node/update", {"item": None}, "请求出错: item必须是对象"),
        (
            "/api/namespace/update",
            {"name": "x", "item": {"metadata": {"labels": "a=b"}}},
            "请求出错: item.metadata.labels",
        ),
    ],
)
def test_bad_input_is_a_400_before_any_call(
    service: Service, platform_id: str, namespace: str, path: str, body: dict, message: str
) -> None:
    sent = {"clusterId": platform_id, "nameSpace": namespace, **body}
    answer = service.api("POST", path, json=sent)
    assert answer["status"] == 400 and answer["message"].startswith(message), answer
    if path.endswith("/list"):
        assert answer["data"] == {"items": []}


def test_a_non_object_body_and_broken_json_are_400(service: Service, platform_id: str) -> None:
    for raw in (b"[1]", b'"x"', b"{not json", b"\xff\xfe"):
        answer = service.api("POST", "/api/pod/list", data=raw, headers={"Content-Type": "application/json"})
        assert answer["status"] == 400 and answer["message"].startswith("请求出错: "), (raw, answer)
        assert answer["data"] == {"items": []} or answer["data"] == {}


def test_a_foreign_kind_in_the_item_is_overwritten(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str
) -> None:
    name = unique("cm")
    item = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "data": {"a": "1"},
        "spec": {"replicas": 3},
    }
    body = service.api(
        "POST", "/api/configmap/add", json={"clusterId": platform_id, "nameSpace": namespace, "item": item}
    )
    assert body["status"] == 200, body
    status, stored = api_request(platform_cluster, "GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    assert status == 200 and stored["data"] == {"a": "1"}
    # Every write is audited: who, where, what; never the data.
    audit = [json.loads(line) for line in service.log().splitlines() if '"audit":true' in line and name in line]
    assert [(a["action"], a["kind"], a["namespace"], a["user"]) for a in audit] == [
        ("add", "ConfigMap", namespace, "admin")
    ]


def test_a_selector_the_api_server_refuses_is_a_400_with_empty_items(service: Service, platform_id: str) -> None:
    answer = service.api("GET", "/api/pod/list", params={"clusterId": platform_id, "labelSelector": "a b c ==="})
    assert answer["status"] == 400 and answer["data"] == {"items": []}
    assert answer["message"].startswith("查询失败: ")
    answer = service.api("GET", "/api/pod/list", params={"clusterId": platform_id, "fieldSelector": "nope=1"})
    assert answer["status"] == 400 and "field label not supported" in answer["message"]


def test_query_booleans_and_spellings(service: Service, platform_id: str) -> None:
    answer = service.api(
        "GET", "/api/deployment/restart", params={"clusterid": platform_id, "namespace": "x", "name": "y"}
    )
    assert answer["message"] == "未找到资源"
    answer = service.api("GET", "/api/pod/list", params={"clusterId": platform_id, "nameSpace": "a", "namespace": "b"})
    assert answer["status"] == 400 and "conflicting" in answer["message"]


def test_bodies_up_to_4_mib_reach_the_api_server_and_larger_ones_are_refused(
    service: Service, platform_id: str, namespace: str
) -> None:
    big: dict[str, Any] = {
        "clusterId": platform_id,
        "nameSpace": namespace,
        "item": {"metadata": {"name": unique("big")}, "data": {"blob": "x" * (3 * 1024 * 1024)}},
    }
    answer = service.api("POST", "/api/configmap/add", json=big)
    # 3 MiB passes this service's limit; the API server refuses a ConfigMap over 1 MiB itself.
    assert answer["status"] == 400 and answer["message"].startswith("创建失败: "), answer["message"][:200]
    big["item"]["data"]["blob"] = "x" * (5 * 1024 * 1024)
    answer = service.api("POST", "/api/configmap/add", json=big, timeout=30)
    assert answer == {"status": 400, "message": "请求体过大", "data": {}}


def test_metrics_label_resource_routes_by_pattern(service: Service, platform_id: str) -> None:
    name = unique("secret-name-in-query")
    service.api("GET", "/api/secret/get", params={"clusterId": platform_id, "name": name})
    text = service.call("GET", "/metrics", auth=False).text
    assert 'route="/api/secret/get"' in text
    assert name not in text
