"""cluster/get served from the per-process Secret cache, over HTTP on the real control plane.

The cache is validated by the watch: a Secret changed or deleted by another process (here: straight
through the API, as another replica would) shows in ``get`` once the watch has delivered it, and a
process whose informer cannot list still answers ``get`` with one Secret GET each time. Bounds are
generous "eventually" bounds, never speed claims.
"""

from __future__ import annotations

import base64
import re

import requests

from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.service import Service, eventually, unique

NOT_FOUND_PREFIX = "获取集群详情失败: "


def add(svc: Service, cluster_id: str, kubeconfig: str, **fields) -> None:
    body = svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig, **fields})
    assert body["status"] == 200, body


def fresh_get(svc: Service, cluster_id: str) -> dict:
    """A get on a new connection, so that successive calls reach either worker."""
    resp = requests.get(f"{svc.url}/api/cluster/get", params={"id": cluster_id},
                        headers={"Authorization": svc.token()}, timeout=10)  # fmt: skip
    assert resp.status_code == 200, resp.text
    return resp.json()


def secret_reads(svc: Service) -> dict[str, float]:
    """``krm_cluster_secret_reads_total`` by source, over every worker."""
    text = svc.call("GET", "/metrics", auth=False).text
    found = re.findall(r'^krm_cluster_secret_reads_total\{source="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {source: float(value) for source, value in found}


def test_repeated_gets_of_an_unchanged_secret_need_no_api_call(
    service: Service, target1: Cluster, cluster_id: str
) -> None:
    text = kubeconfig_text(target1)
    add(service, cluster_id, text)
    # add went through one worker (it cached the Secret it wrote); the other reads it once.
    for _ in range(4):
        assert fresh_get(service, cluster_id)["data"]["item"]["kubeconfig"] == text
    before = secret_reads(service)
    for _ in range(20):
        item = service.api("GET", f"/api/cluster/get?id={cluster_id}")["data"]["item"]
        assert item["kubeconfig"] == text and item["id"] == cluster_id
    after = secret_reads(service)
    # 20 gets: at most a few from the API (a watch being renewed, the prober is off), the rest cached.
    assert after.get("cache", 0) - before.get("cache", 0) >= 15, (before, after)


def test_get_shows_a_kubeconfig_changed_by_another_process(
    service: Service, meta: Cluster, target1: Cluster, target2: Cluster, cluster_id: str
) -> None:
    add(service, cluster_id, kubeconfig_text(target1), city="old")
    for _ in range(4):  # both workers have the Secret cached
        assert fresh_get(service, cluster_id)["data"]["item"]["city"] == "old"
    path = f"/api/v1/namespaces/{service.namespace}/secrets/{cluster_id}"
    status, secret = meta.request("GET", path)
    assert status == 200
    new_text = kubeconfig_text(target2)
    secret["data"]["kubeconfig"] = base64.b64encode(new_text.encode()).decode()
    secret["metadata"]["annotations"]["city"] = "new"
    assert meta.request("PUT", path, secret)[0] == 200

    def both_workers_show_it() -> bool:
        items = [fresh_get(service, cluster_id)["data"]["item"] for _ in range(6)]
        return all(i["kubeconfig"] == new_text and i["city"] == "new" for i in items)

    eventually(both_workers_show_it, timeout=30)


def test_get_shows_a_data_only_change_by_another_process(
    service: Service, meta: Cluster, target1: Cluster, target2: Cluster, cluster_id: str
) -> None:
    """The annotations stay as they were: only the resourceVersion tells the kubeconfig changed."""
    add(service, cluster_id, kubeconfig_text(target1))
    for _ in range(4):
        fresh_get(service, cluster_id)
    path = f"/api/v1/namespaces/{service.namespace}/secrets/{cluster_id}"
    new_text = kubeconfig_text(target2)
    patch = {"data": {"kubeconfig": base64.b64encode(new_text.encode()).decode()}}
    status, _ = meta.request("PATCH", path, patch, content_type="application/merge-patch+json")
    assert status == 200
    eventually(lambda: all(fresh_get(service, cluster_id)["data"]["item"]["kubeconfig"] == new_text
                           for _ in range(6)), timeout=30)  # fmt: skip


def test_get_after_delete_is_the_contracts_not_found(service: Service, target1: Cluster, cluster_id: str) -> None:
    add(service, cluster_id, kubeconfig_text(target1))
    for _ in range(4):
        assert fresh_get(service, cluster_id)["status"] == 200
    assert service.api("GET", f"/api/cluster/delete?id={cluster_id}")["status"] == 200
    # The worker that deleted forgets at once; the other learns it from the watch.
    body = service.api("GET", f"/api/cluster/get?id={cluster_id}")
    assert body["status"] == 400 and body["message"].startswith(NOT_FOUND_PREFIX), body
    assert "not found" in body["message"]

    def gone_everywhere() -> bool:
        bodies = [fresh_get(service, cluster_id) for _ in range(6)]
        return all(b["status"] == 400 and b["message"].startswith(NOT_FOUND_PREFIX) for b in bodies)

    eventually(gone_everywhere, timeout=30)


def test_get_after_another_process_deletes_is_not_found(
    service: Service, meta: Cluster, target1: Cluster, cluster_id: str
) -> None:
    add(service, cluster_id, kubeconfig_text(target1))
    for _ in range(4):
        assert fresh_get(service, cluster_id)["status"] == 200
    path = f"/api/v1/namespaces/{service.namespace}/secrets/{cluster_id}"
    assert meta.request("DELETE", path)[0] == 200

    def gone_everywhere() -> bool:
        bodies = [fresh_get(service, cluster_id) for _ in range(6)]
        return all(b["status"] == 400 and "not found" in b["message"] for b in bodies)

    eventually(gone_everywhere, timeout=30)


def test_get_of_a_secret_that_lost_its_label_is_not_a_cluster(
    service: Service, meta: Cluster, target1: Cluster, cluster_id: str
) -> None:
    add(service, cluster_id, kubeconfig_text(target1))
    for _ in range(4):
        fresh_get(service, cluster_id)
    path = f"/api/v1/namespaces/{service.namespace}/secrets/{cluster_id}"
    patch = {"metadata": {"labels": {"kubeasy.com/cluster.metadata": None}}}
    assert meta.request("PATCH", path, patch, content_type="application/merge-patch+json")[0] == 200
    eventually(lambda: all("is not a registered cluster" in fresh_get(service, cluster_id)["message"]
                           for _ in range(6)), timeout=30)  # fmt: skip
    assert meta.request("DELETE", path)[0] == 200


def test_get_works_when_the_informer_cannot_list(make_service, meta: Cluster, target1: Cluster) -> None:
    """A metadata identity that may read and write Secrets but not list or watch them: the informer never
    syncs, so every get is one Secret GET, and its answers are the same."""
    namespace = unique("krm-nolist")
    assert meta.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    cluster_role = unique("krm-nolist-ns")
    rules = [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"], "resourceNames": [namespace]}]
    assert meta.request("POST", f"{rbac}/clusterroles", {"metadata": {"name": cluster_role}, "rules": rules})[0] == 201
    group = "rbac.authorization.k8s.io"
    binding = {"metadata": {"name": cluster_role}, "subjects": [{"kind": "User", "name": "limited"}],
               "roleRef": {"kind": "ClusterRole", "name": cluster_role, "apiGroup": group}}  # fmt: skip
    assert meta.request("POST", f"{rbac}/clusterrolebindings", binding)[0] == 201
    role = {
        "metadata": {"name": "secrets-no-list"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "update", "patch", "delete"]}
        ],
    }
    assert meta.request("POST", f"{rbac}/namespaces/{namespace}/roles", role)[0] == 201
    role_binding = {**binding, "metadata": {"name": "secrets-no-list"},
                    "roleRef": {"kind": "Role", "name": "secrets-no-list", "apiGroup": group}}  # fmt: skip
    assert meta.request("POST", f"{rbac}/namespaces/{namespace}/rolebindings", role_binding)[0] == 201
    try:
        svc = make_service(namespace=namespace, identity="limited")
        cluster_id = unique("c")
        text = kubeconfig_text(target1)
        add(svc, cluster_id, text, city="nolist")
        path = f"/api/v1/namespaces/{namespace}/secrets/{cluster_id}"
        for _ in range(3):
            item = svc.api("GET", f"/api/cluster/get?id={cluster_id}")["data"]["item"]
            assert item["kubeconfig"] == text and item["city"] == "nolist"
        # Changed by another process: the next get shows it (no watch to wait for: every get reads).
        secret = meta.request("GET", path)[1]
        secret["metadata"]["annotations"]["city"] = "changed"
        assert meta.request("PUT", path, secret)[0] == 200
        assert svc.api("GET", f"/api/cluster/get?id={cluster_id}")["data"]["item"]["city"] == "changed"
        assert secret_reads(svc).get("cache", 0) == 0
        assert meta.request("DELETE", path)[0] == 200
        body = svc.api("GET", f"/api/cluster/get?id={cluster_id}")
        assert body["status"] == 400 and body["message"].startswith(NOT_FOUND_PREFIX) and "not found" in body["message"]
        listed = svc.api("GET", "/api/cluster/list")  # the list may not LIST: the contract's failure
        assert listed["status"] != 200 and listed["message"].startswith("查询失败"), listed
    finally:
        meta.request("DELETE", f"{rbac}/clusterrolebindings/{cluster_role}")
        meta.request("DELETE", f"{rbac}/clusterroles/{cluster_role}")
