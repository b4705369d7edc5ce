"""/api/cluster over HTTP on the real control plane: every route, message and failure of the contract."""

from __future__ import annotations

import base64
import json
import time

import pytest
import yaml

from config.constants import HEALTH_KEYS, ITEM_KEYS
from controlplane.harness import Blackhole, Cluster, free_port
from tests.conftest import kubeconfig_text
from tests.service import Service

LIST_KEYS = list(ITEM_KEYS)


def secret_of(meta: Cluster, service: Service, cluster_id: str) -> tuple[int, dict]:
    """The cluster Secret as the metadata API server has it."""
    return meta.request("GET", f"/api/v1/namespaces/{service.namespace}/secrets/{cluster_id}")


def add(service: Service, cluster_id: str, kubeconfig: str, **fields) -> dict:
    """POST /api/cluster/add."""
    return service.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig, **fields})


def assert_absent(meta: Cluster, service: Service, cluster_id: str) -> None:
    """Nothing was written for this id."""
    assert secret_of(meta, service, cluster_id)[0] == 404


# add ------------------------------------------------------------------------------------------------


def test_add_writes_a_secret_in_the_go_shape(service: Service, meta: Cluster, target1: Cluster, cluster_id) -> None:
    text = kubeconfig_text(target1)
    body = add(service, cluster_id, text, displayName="生产集群", city="北京", district="朝阳")
    assert body == {"status": 200, "message": "添加成功", "data": {}}
    status, secret = secret_of(meta, service, cluster_id)
    assert status == 200
    assert secret["metadata"]["labels"] == {"kubeasy.com/cluster.metadata": "true"}
    annotations = secret["metadata"]["annotations"]
    go_keys = {k: annotations.pop(k) for k in ("id", "displayName", "city", "district", "version", "status")}
    assert go_keys == {
        "id": cluster_id,
        "displayName": "生产集群",
        "city": "北京",
        "district": "朝阳",
        "version": "v1.36.3",
        "status": "Active",
    }
    # What this port adds (the Go version ignores unknown annotations): health and identity.
    assert set(annotations) == set(HEALTH_KEYS)
    assert annotations["reason"] == "Healthy"
    assert annotations["clusterUID"]
    assert secret["type"] == "Opaque"
    assert list(secret["data"]) == ["kubeconfig"]
    assert base64.b64decode(secret["data"]["kubeconfig"]).decode() == text


def test_add_accepts_a_yaml_kubeconfig(service: Service, meta: Cluster, target1: Cluster, cluster_id) -> None:
    text = yaml.safe_dump(target1.kubeconfig(), sort_keys=False)
    assert add(service, cluster_id, text)["status"] == 200
    assert secret_of(meta, service, cluster_id)[1]["metadata"]["annotations"]["status"] == "Active"


def test_add_accepts_a_client_certificate_kubeconfig(service: Service, target2: Cluster, cluster_id) -> None:
    assert add(service, cluster_id, kubeconfig_text(target2, "cert-admin"))["status"] == 200


def test_add_of_an_existing_id_is_400(service: Service, target1: Cluster, cluster_id) -> None:
    assert add(service, cluster_id, kubeconfig_text(target1))["status"] == 200
    body = add(service, cluster_id, kubeconfig_text(target1))
    assert body["status"] == 400
    assert body["message"].startswith("添加集群失败: ")
    assert "already exists" in body["message"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"kubeconfig": "x"}', "id: Missing data for required field."),
        (b'{"id": 42, "kubeconfig": "x"}', "id: Not a valid string."),
        (b'{"id": "ok", "city": ["x"], "kubeconfig": "x"}', "city: Not a valid string."),
        (b'{"id": "Bad_ID", "kubeconfig": "x"}', "id: must be a DNS-1123 subdomain"),
        (b'{"id": "ok-id"}', "kubeconfig: Missing data for required field."),
    ],
    ids=["bad-json", "empty", "array", "no-id", "int-id", "list-city", "bad-id", "no-kubeconfig"],
)
def test_bad_add_bodies_are_400_with_the_bind_message(service: Service, meta: Cluster, payload, reason) -> None:
    body = service.api("POST", "/api/cluster/add", data=payload, headers={"Content-Type": "application/json"})
    assert body["status"] == 400
    assert body["message"].startswith("添加集群的配置信息不完整: ")
    assert reason in body["message"]
    assert_absent(meta, service, "ok-id")


def test_add_binds_go_keys_in_any_letter_case(service: Service, meta: Cluster, target1: Cluster, cluster_id) -> None:
    """Bodies written for Go's case-insensitive binding (``ID``, ``kubeConfig``, ``displayname``) work."""
    payload = {"ID": cluster_id, "kubeConfig": kubeconfig_text(target1), "displayname": "D", "City": "c",
               "DISTRICT": "d"}  # fmt: skip
    assert service.api("POST", "/api/cluster/add", json=payload)["status"] == 200
    annotations = secret_of(meta, service, cluster_id)[1]["metadata"]["annotations"]
    assert {k: annotations[k] for k in ("id", "displayName", "city", "district", "status")} == {
        "id": cluster_id,
        "displayName": "D",
        "city": "c",
        "district": "d",
        "status": "Active",
    }


@pytest.mark.parametrize("key", ["ClusterID", "clusterID", "CLUSTER_ID"])
def test_add_binds_the_id_aliases_in_any_letter_case(service: Service, target1: Cluster, cluster_id, key) -> None:
    assert (
        service.api("POST", "/api/cluster/add", json={key: cluster_id, "KUBECONFIG": kubeconfig_text(target1)})[
            "status"
        ]
        == 200
    )
    assert service.api("GET", f"/api/cluster/get?id={cluster_id}")["data"]["item"]["id"] == cluster_id


@pytest.mark.parametrize(
    ("route", "prefix"), [("add", "添加集群的配置信息不完整: "), ("update", "更新集群的配置信息不完整: ")]
)
def test_disagreeing_spellings_of_a_key_are_400_naming_both(
    service: Service, meta: Cluster, target1: Cluster, cluster_id, route: str, prefix: str
) -> None:
    payload = {"id": cluster_id, "ID": "another-id", "kubeconfig": kubeconfig_text(target1)}
    body = service.api("POST", f"/api/cluster/{route}", json=payload)
    assert body == {"status": 400, "message": f"{prefix}id: conflicting values for id, ID", "data": {}}
    assert_absent(meta, service, cluster_id)
    assert_absent(meta, service, "another-id")


def test_update_binds_go_keys_in_any_letter_case(service: Service, meta: Cluster, target1: Cluster, cluster_id) -> None:
    add(service, cluster_id, kubeconfig_text(target1), displayName="old")
    body = service.api("POST", "/api/cluster/update", json={"clusterID": cluster_id, "DisplayName": "new"})
    assert body["status"] == 200
    assert secret_of(meta, service, cluster_id)[1]["metadata"]["annotations"]["displayName"] == "new"


def test_id_longer_than_253_characters_is_refused(service: Service, target1: Cluster) -> None:
    body = add(service, "a" * 254, kubeconfig_text(target1))
    assert body["status"] == 400
    assert "DNS-1123" in body["message"]


def test_refusing_cluster_is_400_quickly(service: Service, meta: Cluster, target1: Cluster, cluster_id) -> None:
    text = kubeconfig_text(target1, server=f"https://127.0.0.1:{free_port()}")
    started = time.monotonic()
    body = add(service, cluster_id, text)
    elapsed = time.monotonic() - started
    assert body["status"] == 400
    assert body["message"].startswith("无法获取集群信息: connection refused")
    assert elapsed < 5, elapsed  # generous bound: proves "no hang", not speed (that is the benchmark's job)
    assert_absent(meta, service, cluster_id)


def test_hanging_cluster_is_400_within_the_timeout(
    service: Service, meta: Cluster, target1: Cluster, cluster_id
) -> None:
    hole = Blackhole()
    try:
        started = time.monotonic()
        body = add(service, cluster_id, kubeconfig_text(target1, server=hole.url))
        elapsed = time.monotonic() - started
    finally:
        hole.close()
    assert body["status"] == 400
    assert body["message"].startswith("无法获取集群信息: ")
    assert "timed out" in body["message"] or "no answer" in body["message"]
    assert elapsed < 8, elapsed  # connect 1 s + read 1.5 s by default; bound is loose on purpose
    assert_absent(meta, service, cluster_id)


def test_wrong_certificate_authority_is_a_tls_error(
    service: Service, target1: Cluster, target2: Cluster, cluster_id
) -> None:
    kubeconfig = target1.kubeconfig()
    kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(target2.ca_pem()).decode()
    body = add(service, cluster_id, json.dumps(kubeconfig))
    assert body["status"] == 400
    assert body["message"].startswith("无法获取集群信息: TLS error")


def test_rejected_credentials_are_reported(service: Service, target1: Cluster, cluster_id) -> None:
    kubeconfig = target1.kubeconfig()
    kubeconfig["users"][0]["user"]["token"] = "not-a-valid-token"
    body = add(service, cluster_id, json.dumps(kubeconfig))
    assert body["status"] == 400
    assert body["message"].startswith("无法获取集群信息: credentials rejected")


@pytest.mark.parametrize(
    "kubeconfig",
    [
        "clusters: [",
        "just a string",
        json.dumps({"apiVersion": "v1", "kind": "Config"}),
        json.dumps(
            {
                "current-context": "x",
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://127.0.0.1:1", "certificate-authority-data": "!!notbase64"},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        ),
    ],
    ids=["invalid-yaml", "scalar", "no-context", "bad-ca-data"],
)
def test_broken_kubeconfigs_are_400(service: Service, meta: Cluster, cluster_id, kubeconfig: str) -> None:
    body = add(service, cluster_id, kubeconfig)
    assert body["status"] == 400
    assert body["message"].startswith("无法获取集群信息: ")
    assert "Traceback" not in body["message"]
    assert_absent(meta, service, cluster_id)


def test_exec_plugin_kubeconfig_is_refused_naming_the_field(service: Service, target1: Cluster, cluster_id) -> None:
    kubeconfig = target1.kubeconfig()
    kubeconfig["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "touch"}}
    body = add(service, cluster_id, json.dumps(kubeconfig))
    assert body["status"] == 400
    assert "users[0].user.exec" in body["message"]


# list and get ---------------------------------------------------------------------------------------


def test_list_returns_documented_keys_and_never_a_kubeconfig(service: Service, target1: Cluster, cluster_id) -> None:
    text = kubeconfig_text(target1)
    add(service, cluster_id, text, displayName="d")
    item = service.listed(cluster_id)  # the other worker may answer before its watch has the Secret
    resp = service.call("GET", "/api/cluster/list")
    body = resp.json()
    assert body["status"] == 200 and body["message"] == "查询成功"
    assert list(item) == LIST_KEYS
    assert item["version"] == item["clusterVersion"] == "v1.36.3"
    assert item["status"] == item["clusterStatus"] == "Active"
    assert target1.tokens["admin"] not in resp.text
    assert "kubeconfig" not in resp.text


def test_list_of_an_empty_registry_is_an_empty_array(make_service) -> None:
    svc = make_service()
    assert svc.api("GET", "/api/cluster/list") == {"status": 200, "message": "查询成功", "data": {"items": []}}


@pytest.mark.parametrize("key", ["id", "clusterId", "clusterid", "cluster_id"])
def test_get_returns_the_item_with_its_kubeconfig(service: Service, target1: Cluster, cluster_id, key: str) -> None:
    text = kubeconfig_text(target1)
    add(service, cluster_id, text, city="上海")
    body = service.api("GET", f"/api/cluster/get?{key}={cluster_id}&timeStamp=1")
    assert body["status"] == 200 and body["message"] == "查询成功"
    item = body["data"]["item"]
    assert item["city"] == "上海"
    assert item["kubeconfig"] == text
    assert list(item) == [*LIST_KEYS, "kubeconfig"]


@pytest.mark.parametrize(
    ("query", "reason"), [("", "Missing data"), ("?id=Bad_ID", "DNS-1123"), ("?id=absent-x", "not found")]
)
def test_get_failures_are_400(service: Service, query: str, reason: str) -> None:
    body = service.api("GET", f"/api/cluster/get{query}")
    assert body["status"] == 400
    assert body["message"].startswith("获取集群详情失败: ")
    assert reason in body["message"]


# update ---------------------------------------------------------------------------------------------


def test_update_accepts_the_item_get_returned(service: Service, meta: Cluster, target1: Cluster, cluster_id) -> None:
    add(service, cluster_id, kubeconfig_text(target1), displayName="old")
    item = service.api("GET", f"/api/cluster/get?id={cluster_id}")["data"]["item"]
    item["displayName"] = "new"
    item["extraKeyTheServiceAdded"] = {"nested": True}
    assert service.api("POST", "/api/cluster/update", json=item) == {"status": 200, "message": "更新成功", "data": {}}
    annotations = secret_of(meta, service, cluster_id)[1]["metadata"]["annotations"]
    assert annotations["displayName"] == "new"
    assert "extraKeyTheServiceAdded" not in annotations


def test_update_without_kubeconfig_keeps_the_stored_one(
    service: Service, meta: Cluster, target1: Cluster, cluster_id
) -> None:
    text = kubeconfig_text(target1)
    add(service, cluster_id, text)
    body = service.api("POST", "/api/cluster/update", json={"id": cluster_id, "city": "广州", "kubeconfig": ""})
    assert body["status"] == 200
    secret = secret_of(meta, service, cluster_id)[1]
    assert base64.b64decode(secret["data"]["kubeconfig"]).decode() == text
    assert secret["metadata"]["annotations"]["city"] == "广州"


def test_update_can_change_the_kubeconfig(service: Service, meta: Cluster, target1: Cluster, cluster_id) -> None:
    add(service, cluster_id, kubeconfig_text(target1))
    new_text = kubeconfig_text(target1, "cert-admin")
    assert service.api("POST", "/api/cluster/update", json={"id": cluster_id, "kubeconfig": new_text})["status"] == 200
    secret = secret_of(meta, service, cluster_id)[1]
    assert base64.b64decode(secret["data"]["kubeconfig"]).decode() == new_text


def test_update_of_a_missing_id_is_400(service: Service, target1: Cluster, cluster_id) -> None:
    body = service.api("POST", "/api/cluster/update", json={"id": cluster_id, "kubeconfig": kubeconfig_text(target1)})
    assert body["status"] == 400
    assert body["message"].startswith("更新集群失败: ")
    assert "not found" in body["message"]


def test_bad_update_body_uses_the_update_bind_message(service: Service) -> None:
    body = service.api("POST", "/api/cluster/update", data=b"{", headers={"Content-Type": "application/json"})
    assert body["status"] == 400
    assert body["message"].startswith("更新集群的配置信息不完整: ")


def test_update_to_an_unreachable_server_keeps_the_record(
    service: Service, meta: Cluster, target1: Cluster, cluster_id
) -> None:
    text = kubeconfig_text(target1)
    add(service, cluster_id, text)
    dead = kubeconfig_text(target1, server=f"https://127.0.0.1:{free_port()}")
    body = service.api("POST", "/api/cluster/update", json={"id": cluster_id, "kubeconfig": dead})
    assert body["status"] == 400
    assert body["message"].startswith("无法获取集群信息: ")
    assert base64.b64decode(secret_of(meta, service, cluster_id)[1]["data"]["kubeconfig"]).decode() == text


# delete ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "how"),
    [("GET", "query-id"), ("GET", "query-clusterId"), ("POST", "json"), ("POST", "form"), ("DELETE", "query-id")],
)
def test_delete_removes_the_secret(service: Service, meta: Cluster, target1: Cluster, cluster_id, method, how) -> None:
    add(service, cluster_id, kubeconfig_text(target1))
    kwargs: dict = {}
    path = "/api/cluster/delete"
    if how.startswith("query-"):
        path += f"?{how.removeprefix('query-')}={cluster_id}"
    elif how == "json":
        kwargs["json"] = {"clusterId": cluster_id}
    else:
        kwargs["data"] = {"id": cluster_id}
    assert service.api(method, path, **kwargs) == {"status": 200, "message": "删除成功", "data": {}}
    assert_absent(meta, service, cluster_id)


def test_delete_binds_a_json_id_in_any_letter_case(service: Service, meta: Cluster, target1: Cluster, cluster_id):
    add(service, cluster_id, kubeconfig_text(target1))
    assert service.api("POST", "/api/cluster/delete", json={"ClusterID": cluster_id})["status"] == 200
    assert_absent(meta, service, cluster_id)


def test_delete_with_disagreeing_json_ids_is_400(service: Service, meta: Cluster, target1: Cluster, cluster_id):
    add(service, cluster_id, kubeconfig_text(target1))
    body = service.api("POST", "/api/cluster/delete", json={"id": cluster_id, "clusterId": "other-id"})
    assert body == {"status": 400, "message": "集群删除失败: id: conflicting values for id, clusterId", "data": {}}
    assert secret_of(meta, service, cluster_id)[0] == 200


@pytest.mark.parametrize(
    ("query", "reason"), [("", "Missing data"), ("?id=UPPER", "DNS-1123"), ("?id=absent-y", "not found")]
)
def test_delete_failures_are_400(service: Service, query: str, reason: str) -> None:
    body = service.api("GET", f"/api/cluster/delete{query}")
    assert body["status"] == 400
    assert body["message"].startswith("集群删除失败: ")
    assert reason in body["message"]


def test_delete_refuses_a_secret_that_is_not_a_cluster(service: Service, meta: Cluster) -> None:
    path = f"/api/v1/namespaces/{service.namespace}/secrets"
    meta.request("POST", path, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "not-a-cluster"}})
    body = service.api("GET", "/api/cluster/delete?id=not-a-cluster")
    assert body["status"] == 400
    assert meta.request("GET", f"{path}/not-a-cluster")[0] == 200


def test_a_host_name_server_is_pinned_to_its_checked_address(
    service: Service, meta: Cluster, target1: Cluster, cluster_id
) -> None:
    """The name is resolved once, checked, and connected to by address; TLS still verifies a name.

    The API server's generated certificate names kubernetes, kubernetes.default(.svc) and 127.0.0.1
    (not localhost), so the kubeconfig says which name to verify, as kubeconfigs behind a proxy do.
    """
    kubeconfig = target1.kubeconfig(server=f"https://localhost:{target1.port}")
    kubeconfig["clusters"][0]["cluster"]["tls-server-name"] = "kubernetes"
    text = json.dumps(kubeconfig)
    assert add(service, cluster_id, text)["status"] == 200
    stored = base64.b64decode(secret_of(meta, service, cluster_id)[1]["data"]["kubeconfig"]).decode()
    assert stored == text  # what the user gave is what is stored
