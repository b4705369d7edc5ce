"""How the platform reaches a cluster: lookup answers, the client cache, budgets, permissions (§1.4, §1.8)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import time

from controlplane.harness import Blackhole, Cluster
from tests.conftest import kubeconfig_text
from tests.platform_fixtures import wait_for
from tests.service import Service, unique


def register(service: Service, cluster: Cluster, identity: str = "admin") -> str:
    """Register ``cluster`` under a fresh id."""
    cluster_id = unique("acc")
    body = service.api(
        "POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig_text(cluster, identity)}
    )
    assert body["status"] == 200, body
    return cluster_id


def rewrite_secret(
    meta: Cluster, service: Service, cluster_id: str, kubeconfig: dict | None = None, annotation: str | None = None
) -> None:
    """Change the cluster Secret behind the service's back (another replica, kubectl, the Go version)."""
    path = f"/api/v1/namespaces/{service.namespace}/secrets/{cluster_id}"
    status, secret = meta.request("GET", path)
    assert status == 200, secret
    if kubeconfig is not None:
        secret["data"]["kubeconfig"] = base64.b64encode(json.dumps(kubeconfig).encode()).decode()
    if annotation is not None:
        secret["metadata"]["annotations"]["note"] = annotation
    status, body = meta.request("PUT", path, secret)
    assert status == 200, body


def clients_built(service: Service) -> float:
    """``krm_cluster_clients_built_total`` over every worker."""
    text = service.call("GET", "/metrics", auth=False).text
    match = re.search(r"^krm_cluster_clients_built_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def secret_gets(meta: Cluster) -> float:
    """How many single-Secret GETs the metadata API server has answered (its own metrics)."""
    text = meta.request("GET", "/metrics")[1]["raw"]
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("apiserver_request_total{")
            and 'resource="secrets"' in line
            and 'verb="GET"' in line
            and 'scope="resource"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_missing_and_unknown_cluster_ids_are_named(service: Service) -> None:
    body = service.api("GET", "/api/pod/list", params={"nameSpace": "default"})
    assert body == {"status": 400, "message": "缺少参数: clusterId", "data": {"items": []}}
    body = service.api("GET", "/api/pod/get", params={"clusterId": "no-such-cluster", "name": "x"})
    assert body == {"status": 400, "message": "集群不存在: no-such-cluster", "data": {}}
    body = service.api("POST", "/api/deployment/restart", json={"clusterId": "Not_An_Id!", "name": "x"})
    assert body == {"status": 400, "message": "集群不存在: Not_An_Id!", "data": {}}


def test_clients_are_reused_without_reading_the_secret_each_request(
    service: Service, meta: Cluster, target1: Cluster
) -> None:
    cluster_id = register(service, target1)
    params = {"clusterId": cluster_id, "nameSpace": "kube-system"}
    for _ in range(4):  # both workers build their client (and read the Secret once each)
        assert service.api("GET", "/api/configmap/list", params=params)["status"] == 200
    built, gets = clients_built(service), secret_gets(meta)
    for _ in range(30):
        assert service.api("GET", "/api/configmap/list", params=params)["status"] == 200
    assert clients_built(service) - built <= 2  # a worker that had not served this cluster yet
    assert secret_gets(meta) - gets <= 2


def test_a_changed_kubeconfig_gets_a_new_client_and_a_deleted_cluster_none(
    service: Service, meta: Cluster, target1: Cluster
) -> None:
    cluster_id = register(service, target1)
    params = {"clusterId": cluster_id, "nameSpace": "kube-system"}
    for _ in range(4):
        assert service.api("GET", "/api/configmap/list", params=params)["status"] == 200
    built = clients_built(service)
    rewrite_secret(meta, service, cluster_id, annotation="only annotations changed")
    for _ in range(6):
        assert service.api("GET", "/api/configmap/list", params=params)["status"] == 200
    assert clients_built(service) == built  # same credentials: the client stays
    rewrite_secret(meta, service, cluster_id, kubeconfig=target1.kubeconfig("limited"))

    def forbidden() -> bool:
        body = service.api("GET", "/api/configmap/list", params=params)
        return body["status"] == 400 and "forbidden" in body["message"]

    wait_for(forbidden, what="the new kubeconfig in use")  # every worker, after its informer saw it
    assert clients_built(service) > built
    assert service.api("GET", "/api/cluster/delete", params={"id": cluster_id})["status"] == 200

    def unknown() -> bool:
        body = service.api("GET", "/api/configmap/list", params=params)
        return body["message"] == f"集群不存在: {cluster_id}"

    for _ in range(4):  # both workers
        wait_for(unknown, what="the deleted cluster unknown")


def test_a_limited_identity_gets_the_api_servers_403_naming_kind_and_namespace(
    service: Service, target1: Cluster
) -> None:
    cluster_id = register(service, target1, "limited")
    body = service.api("GET", "/api/deployment/list", params={"clusterId": cluster_id, "nameSpace": "team-a"})
    assert body["status"] == 400 and body["data"] == {"items": []}
    assert body["message"].startswith('查询失败: deployments.apps is forbidden: User "limited"')
    assert 'in the namespace "team-a"' in body["message"]
    body = service.api("POST", "/api/secret/get", json={"clusterId": cluster_id, "nameSpace": "team-a", "name": "db"})
    assert body["status"] == 400 and 'cannot get resource "secrets"' in body["message"] and "team-a" in body["message"]


def test_an_unreachable_cluster_is_named_fast(service: Service, meta: Cluster, target1: Cluster) -> None:
    cluster_id = register(service, target1)
    rewrite_secret(meta, service, cluster_id, kubeconfig=target1.kubeconfig(server="https://127.0.0.1:1"))

    def refused() -> dict | None:
        started = time.monotonic()
        body = service.api("GET", "/api/pod/list", params={"clusterId": cluster_id})
        assert time.monotonic() - started < 3
        return body if "127.0.0.1:1" in body["message"] else None

    body = wait_for(refused, what="the refusing server in use")
    assert body["status"] == 400 and body["data"] == {"items": []}
    assert body["message"].startswith(f"无法连接集群 {cluster_id}: connection refused")


def test_a_hanging_cluster_answers_within_the_budget(service: Service, meta: Cluster, target1: Cluster) -> None:
    hole = Blackhole()
    try:
        cluster_id = register(service, target1)
        rewrite_secret(meta, service, cluster_id, kubeconfig=target1.kubeconfig(server=hole.url))
        for _ in range(3):
            started = time.monotonic()
            body = service.api("GET", "/api/pod/get", params={"clusterId": cluster_id, "name": "x"})
            elapsed = time.monotonic() - started
            assert elapsed < 5.0, elapsed  # the frontend gives up after 5 s; the budget is 4.5 s
            if body["message"] == f"请求集群超时: {cluster_id}":
                break
        else:
            raise AssertionError(body)
        assert body == {"status": 400, "message": f"请求集群超时: {cluster_id}", "data": {}}
        service.api("GET", "/api/cluster/delete", params={"id": cluster_id})  # no new connections to the hole
    finally:
        # shutdown() wakes the accept thread (close() alone leaves it blocked, still accepting); then close
        # whatever it accepted last (an unclosed socket is a ResourceWarning, an error in this suite).
        with contextlib.suppress(OSError):
            hole.sock.shutdown(socket.SHUT_RDWR)
        hole.close()
        wait_for(lambda: not hole.thread.is_alive(), what="blackhole stopped")
        for conn in hole.accepted:
            conn.close()
