"""namespace/* with its protections and Go's texts (§2.2), node/* with the field-scoped update (§2.3)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.platform_fixtures import api_request, gone_or_terminating, wait_for
from tests.service import Service, unique

# namespace -------------------------------------------------------------------------------------------


def test_namespace_list_and_get(service: Service, platform_id: str, namespace: str) -> None:
    listed = service.api("GET", "/api/namespace/list", params={"clusterId": platform_id})
    assert listed["status"] == 200 and listed["message"] == "查询ns列表成功"
    names = [i["metadata"]["name"] for i in listed["data"]["items"]]
    assert {"kube-system", namespace} <= set(names) and names == sorted(names)
    got = service.api("GET", "/api/namespace/get", params={"clusterId": platform_id, "name": namespace})
    assert got["message"] == "查询ns详情成功" and got["data"]["item"]["metadata"]["name"] == namespace
    missing = service.api("GET", "/api/namespace/get", params={"clusterId": platform_id, "name": "nope-x"})
    assert missing == {"status": 400, "message": '查询失败: namespaces "nope-x" not found', "data": {}}


def test_namespace_add_checks_the_name_and_reports_go_texts(
    service: Service, platform_cluster: Cluster, platform_id: str
) -> None:
    name = unique("ns")
    try:
        body = service.api("POST", "/api/namespace/add", json={"clusterId": platform_id, "name": name})
        assert body == {"status": 200, "message": f"创建ns: {name}成功", "data": {}}
        assert api_request(platform_cluster, "GET", f"/api/v1/namespaces/{name}")[0] == 200
        again = service.api("POST", "/api/namespace/add", json={"clusterId": platform_id, "name": name})
        assert again == {"status": 400, "data": {}, "message": f'创建ns: {name}失败 namespaces "{name}" already exists'}
        for bad in ("Upper", "a_b", "a.b", "-a", "x" * 64, ""):
            body = service.api("POST", "/api/namespace/add", json={"clusterId": platform_id, "name": bad})
            assert body["status"] == 400 and body["message"].startswith("请求出错: name: "), (bad, body)
    finally:
        api_request(platform_cluster, "DELETE", f"/api/v1/namespaces/{name}")


def test_namespace_update_replaces_labels_and_annotations_on_a_fresh_read(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str
) -> None:
    got = service.api("GET", "/api/namespace/get", params={"clusterId": platform_id, "name": namespace})
    item = got["data"]["item"]
    item["metadata"]["labels"] = {"team": "a"}
    item["metadata"]["annotations"] = {"owner": "ops"}
    item["metadata"]["resourceVersion"] = "1"  # stale: Go would get a 409 here
    body = service.api(
        "POST", "/api/namespace/update", json={"clusterId": platform_id, "name": namespace, "item": item}
    )
    assert body == {"status": 200, "message": f"更新ns: {namespace}成功", "data": {}}
    _, stored = api_request(platform_cluster, "GET", f"/api/v1/namespaces/{namespace}")
    assert stored["metadata"]["labels"]["team"] == "a"
    assert stored["metadata"]["annotations"] == {"owner": "ops"}
    assert stored["spec"]["finalizers"] == ["kubernetes"]  # the rest is the server's, untouched


@pytest.mark.parametrize("protected", ["kube-system", "default", "kube-public", "kube-node-lease"])
def test_protected_namespaces_are_refused(
    service: Service, platform_cluster: Cluster, platform_id: str, protected: str
) -> None:
    body = service.api("GET", "/api/namespace/delete", params={"clusterId": platform_id, "name": protected})
    assert body == {"status": 400, "message": f"删除被保护的ns: {protected}失败", "data": {}}
    _, stored = api_request(platform_cluster, "GET", f"/api/v1/namespaces/{protected}")
    assert not stored["metadata"].get("deletionTimestamp")


def test_the_metadata_namespace_is_protected_only_on_the_metadata_cluster(
    service: Service, meta: Cluster, platform_cluster: Cluster, platform_id: str
) -> None:
    meta_id = unique("meta")
    assert (
        service.api("POST", "/api/cluster/add", json={"id": meta_id, "kubeconfig": kubeconfig_text(meta)})["status"]
        == 200
    )
    body = service.api("POST", "/api/namespace/delete", json={"clusterId": meta_id, "name": service.namespace})
    assert body == {"status": 400, "message": f"删除被保护的ns: {service.namespace}失败", "data": {}}
    assert api_request(meta, "GET", f"/api/v1/namespaces/{service.namespace}")[0] == 200
    # The same name on another cluster is an ordinary namespace.
    same = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": service.namespace}}
    assert api_request(platform_cluster, "POST", "/api/v1/namespaces", same)[0] == 201
    body = service.api("GET", "/api/namespace/delete", params={"clusterId": platform_id, "name": service.namespace})
    assert body == {"status": 200, "message": f"删除ns: {service.namespace}成功", "data": {}}


def test_namespace_delete_by_get_and_post(service: Service, platform_cluster: Cluster, platform_id: str) -> None:
    names = [unique("ns"), unique("ns")]
    for name in names:
        assert (
            api_request(
                platform_cluster,
                "POST",
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            )[0]
            == 201
        )
    body = service.api("GET", "/api/namespace/delete", params={"clusterId": platform_id, "name": names[0]})
    assert body == {"status": 200, "message": f"删除ns: {names[0]}成功", "data": {}}
    body = service.api("POST", "/api/namespace/delete", json={"clusterId": platform_id, "name": names[1]})
    assert body == {"status": 200, "message": f"删除ns: {names[1]}成功", "data": {}}
    for name in names:
        wait_for(functools.partial(gone_or_terminating, platform_cluster, f"/api/v1/namespaces/{name}"))
    missing = unique("ns")
    body = service.api("GET", "/api/namespace/delete", params={"clusterId": platform_id, "name": missing})
    assert body == {"status": 400, "message": f'删除ns: {missing}失败namespaces "{missing}" not found', "data": {}}


# node ------------------------------------------------------------------------------------------------


@pytest.fixture
def node(platform_cluster: Cluster) -> Iterator[str]:
    """A Node object (no kubelet behind it on a bare cluster), deleted afterwards."""
    name = unique("node")
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"zone": "a"}},
        "spec": {"taints": [{"key": "existing", "value": "1", "effect": "PreferNoSchedule"}]},
    }
    status, created = api_request(platform_cluster, "POST", "/api/v1/nodes", body)
    assert status == 201, created
    try:
        yield name
    finally:
        api_request(platform_cluster, "DELETE", f"/api/v1/nodes/{name}")


def test_node_list_and_get(service: Service, platform_id: str, node: str) -> None:
    listed = service.api("GET", "/api/node/list", params={"clusterId": platform_id})
    assert listed["message"] == "查询成功" and node in [i["metadata"]["name"] for i in listed["data"]["items"]]
    got = service.api("GET", "/api/node/get", params={"clusterId": platform_id, "name": node})
    assert got["message"] == "查询详情成功" and got["data"]["item"]["metadata"]["labels"]["zone"] == "a"


def test_node_update_changes_only_labels_taints_and_unschedulable(
    service: Service, platform_cluster: Cluster, platform_id: str, node: str
) -> None:
    loaded = service.api("GET", "/api/node/get", params={"clusterId": platform_id, "name": node})["data"]["item"]

    # Meanwhile a controller writes to the Node (an annotation and its own label): Go's blind PUT undoes it.
    # That write races the node lifecycle controller too: read-modify-write until it is not in conflict.
    def controller_writes() -> bool:
        _, fresh = api_request(platform_cluster, "GET", f"/api/v1/nodes/{node}")
        fresh["metadata"].setdefault("annotations", {})["controller"] = "was-here"
        fresh["spec"]["podCIDR"] = "10.244.1.0/24"
        status, answer = api_request(platform_cluster, "PUT", f"/api/v1/nodes/{node}", fresh)
        assert status in (200, 409), answer
        return status == 200

    wait_for(controller_writes, what="the controller's write to the Node")
    # The page's 禁止调度 switch: a control-plane NoSchedule taint, plus an edited label.
    loaded["metadata"]["labels"]["role"] = "db"
    loaded["spec"]["taints"].append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    loaded["spec"]["unschedulable"] = True
    body = service.api("POST", "/api/node/update", json={"clusterId": platform_id, "name": node, "item": loaded})
    assert body == {"status": 200, "message": "修改成功", "data": {}}
    _, stored = api_request(platform_cluster, "GET", f"/api/v1/nodes/{node}")
    assert stored["metadata"]["labels"]["role"] == "db"
    # The admission plugin adds a not-ready taint at creation: the page posts back what it loaded. The node
    # lifecycle controller may add its own (node.kubernetes.io/unschedulable) right after the update.
    # node.kubernetes.io/* taints belong to the node lifecycle controller, which may remove or re-add them.
    posted = {t["key"] for t in loaded["spec"]["taints"] if not t["key"].startswith("node.kubernetes.io/")}
    assert posted <= {t["key"] for t in stored["spec"]["taints"]}
    assert "node-role.kubernetes.io/control-plane" in [t["key"] for t in stored["spec"]["taints"]]
    assert stored["spec"]["unschedulable"] is True
    assert stored["metadata"]["annotations"]["controller"] == "was-here"
    assert stored["spec"]["podCIDR"] == "10.244.1.0/24"


def test_node_update_of_a_missing_node_fails(service: Service, platform_id: str) -> None:
    name = unique("node")
    item = {"metadata": {"name": name, "labels": {}}, "spec": {}}
    body = service.api("POST", "/api/node/update", json={"clusterId": platform_id, "item": item})
    assert body == {"status": 400, "message": f'更新失败: nodes "{name}" not found', "data": {}}
    body = service.api("POST", "/api/node/update", json={"clusterId": platform_id, "item": {"spec": {"taints": 5}}})
    assert body["status"] == 400 and body["message"].startswith("请求出错: ")
