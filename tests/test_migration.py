"""Secrets written the way the Go version writes them are read, updated and deleted here."""

from __future__ import annotations

import base64

from config.constants import HEALTH_KEYS
from controlplane.harness import Cluster, free_port
from tests.conftest import kubeconfig_text
from tests.service import Service, unique

LABEL = "kubeasy.com/cluster.metadata"


def go_secret(cluster_id: str, kubeconfig: str, label: str = LABEL, **annotations: str) -> dict:
    """A cluster Secret exactly as Go's addOrUpdate creates it (StringData is stored as data)."""
    values = {"id": cluster_id, "displayName": "Go 写的", "city": "北京", "district": "海淀",
              "version": "v1.30.2", "status": "Active"}  # fmt: skip
    values.update(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": cluster_id, "labels": {label: "true"}, "annotations": values},
        "stringData": {"kubeconfig": kubeconfig},
    }


def write_go_secret(meta: Cluster, namespace: str, body: dict) -> None:
    """Create the Secret directly through the Kubernetes API, as the Go backend would have."""
    status, answer = meta.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body)
    assert status == 201, answer


def test_go_written_cluster_is_listed_and_read(service: Service, meta: Cluster, target1: Cluster) -> None:
    cluster_id = unique("go")
    text = kubeconfig_text(target1)
    write_go_secret(meta, service.namespace, go_secret(cluster_id, text))
    item = service.listed(cluster_id)  # written by another process: wait for the watch
    assert item["displayName"] == "Go 写的" and item["version"] == "v1.30.2" and item["status"] == "Active"
    got = service.api("GET", f"/api/cluster/get?clusterId={cluster_id}")["data"]["item"]
    assert got["kubeconfig"] == text


def test_go_written_cluster_is_updated_in_place(service: Service, meta: Cluster, target1: Cluster) -> None:
    cluster_id = unique("go")
    write_go_secret(meta, service.namespace, go_secret(cluster_id, kubeconfig_text(target1)))
    item = service.api("GET", f"/api/cluster/get?id={cluster_id}")["data"]["item"]
    item["district"] = "朝阳"
    assert service.api("POST", "/api/cluster/update", json=item)["status"] == 200
    _, secret = meta.request("GET", f"/api/v1/namespaces/{service.namespace}/secrets/{cluster_id}")
    assert secret["metadata"]["labels"][LABEL] == "true"
    assert secret["metadata"]["annotations"]["district"] == "朝阳"
    assert secret["metadata"]["annotations"]["version"] == "v1.36.3"  # refreshed from the live cluster


def test_go_written_cluster_of_a_dead_server_can_be_deleted(service: Service, meta: Cluster, target1: Cluster) -> None:
    cluster_id = unique("go")
    dead = kubeconfig_text(target1, server=f"https://127.0.0.1:{free_port()}")
    write_go_secret(meta, service.namespace, go_secret(cluster_id, dead))
    assert service.api("GET", f"/api/cluster/delete?id={cluster_id}")["message"] == "删除成功"
    assert meta.request("GET", f"/api/v1/namespaces/{service.namespace}/secrets/{cluster_id}")[0] == 404


def test_cluster_version_annotation_of_another_go_copy_is_read_as_version(
    service: Service, meta: Cluster, target1: Cluster
) -> None:
    cluster_id = unique("go")
    body = go_secret(cluster_id, kubeconfig_text(target1))
    del body["metadata"]["annotations"]["version"]
    body["metadata"]["annotations"]["clusterVersion"] = "v1.29.9"
    write_go_secret(meta, service.namespace, body)
    item = service.listed(cluster_id)
    assert item["version"] == item["clusterVersion"] == "v1.29.9"


def test_foreign_annotations_are_not_listed(service: Service, meta: Cluster, target1: Cluster) -> None:
    cluster_id = unique("go")
    body = go_secret(cluster_id, kubeconfig_text(target1))
    body["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = '{"data":"secret"}'
    write_go_secret(meta, service.namespace, body)
    item = service.listed(cluster_id)
    assert "kubectl.kubernetes.io/last-applied-configuration" not in item


def test_unlabelled_secrets_are_not_clusters(service: Service, meta: Cluster) -> None:
    name = unique("plain")
    write_go_secret(meta, service.namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}})
    assert all(i["id"] != name for i in service.api("GET", "/api/cluster/list")["data"]["items"])
    assert service.api("GET", f"/api/cluster/get?id={name}")["status"] == 400


def test_a_migrating_team_can_set_its_label_key(make_service, meta: Cluster, target1: Cluster) -> None:
    svc = make_service(env={"CLUSTER_LABEL_KEY": "example.com/krm-cluster"})
    old_id, new_id = unique("go"), unique("py")
    write_go_secret(meta, svc.namespace, go_secret(old_id, kubeconfig_text(target1), label="example.com/krm-cluster"))
    write_go_secret(meta, svc.namespace, go_secret(unique("other"), kubeconfig_text(target1)))  # default label
    assert (
        svc.api("POST", "/api/cluster/add", json={"id": new_id, "kubeconfig": kubeconfig_text(target1)})["status"]
        == 200
    )
    ids = sorted(i["id"] for i in svc.api("GET", "/api/cluster/list")["data"]["items"])
    assert ids == sorted([old_id, new_id])
    _, secret = meta.request("GET", f"/api/v1/namespaces/{svc.namespace}/secrets/{new_id}")
    assert secret["metadata"]["labels"] == {"example.com/krm-cluster": "true"}


def test_written_secret_round_trips_through_a_go_style_reader(
    service: Service, meta: Cluster, target1: Cluster
) -> None:
    """What Go's list does: label-selected LIST, annotations as the item, data.kubeconfig as the config."""
    cluster_id = unique("py")
    text = kubeconfig_text(target1)
    service.api("POST", "/api/cluster/add", json={"id": cluster_id, "displayName": "x", "kubeconfig": text})
    status, listing = meta.request(
        "GET", f"/api/v1/namespaces/{service.namespace}/secrets?labelSelector={LABEL}%3Dtrue"
    )
    assert status == 200
    secret = next(s for s in listing["items"] if s["metadata"]["name"] == cluster_id)
    go_keys = {"id", "displayName", "city", "district", "version", "status"}
    assert set(secret["metadata"]["annotations"]) == go_keys | set(HEALTH_KEYS)
    assert secret["metadata"]["annotations"]["version"] == "v1.36.3"
    assert base64.b64decode(secret["data"]["kubeconfig"]).decode() == text
