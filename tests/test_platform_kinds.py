"""The generic routes of every kind, over HTTP against a real API server (contract-platform.md §1, §2.1).

For each kind with writes: add (with the frontend's junk in the item), see it listed, get, update,
restart where it applies, delete, deletelist, and the failure answers. Read-only kinds are created
directly through the API and then listed and read through the service.
"""

from __future__ import annotations

import base64
import copy
import functools
from dataclasses import dataclass, field
from typing import Any

import pytest

from controllers.resources.kinds import BY_PREFIX, Kind
from controlplane.harness import Cluster
from tests.platform_fixtures import api_request, gone_or_terminating, wait_for
from tests.service import Service, unique

IMAGE = "registry.example/app:1"


def pod_spec(app: str) -> dict[str, Any]:
    """A pod template spec that any API server accepts."""
    return {"containers": [{"name": "app", "image": IMAGE, "ports": [{"containerPort": 8080}]}]}


def template(app: str) -> dict[str, Any]:
    """A pod template labelled ``app``."""
    return {"metadata": {"labels": {"app": app}}, "spec": pod_spec(app)}


def manifest(prefix: str, name: str) -> dict[str, Any]:
    """A minimal valid object of the kind, as the frontend would post it (lower-case kind included)."""
    meta = {"name": name, "labels": {"app": name}}
    specs: dict[str, dict[str, Any]] = {
        "pod": {"spec": pod_spec(name)},
        "deployment": {"spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template(name)}},
        "statefulset": {
            "spec": {"serviceName": name, "selector": {"matchLabels": {"app": name}}, "template": template(name)}
        },
        "daemonset": {"spec": {"selector": {"matchLabels": {"app": name}}, "template": template(name)}},
        "cronjob": {
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {"spec": {"template": {"spec": {**pod_spec(name), "restartPolicy": "OnFailure"}}}},
            }
        },
        "service": {"spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}},
        "ingress": {
            "spec": {
                "rules": [
                    {
                        "host": f"{name}.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": name, "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            }
        },
        "configmap": {"data": {"key": "value"}},
        "secret": {"type": "Opaque", "data": {"password": base64.b64encode(b"s3cret").decode()}},
        "persistentvolume": {
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": f"/tmp/{name}"},
            }
        },
        "persistentvolumeclaim": {
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        },
    }
    return {"kind": prefix, "metadata": meta, **specs[prefix]}


@dataclass
class Case:
    """One kind under test: its row and how its update is checked."""

    prefix: str
    update_message: str
    restart: tuple[str, ...] = ()  # HTTP methods the frontend and Go use for restart
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        return BY_PREFIX[self.prefix]


WRITABLE = [
    Case("pod", ""),
    Case("deployment", "修改成功", ("GET", "POST")),
    Case("statefulset", "修改成功", ("GET", "POST")),
    Case("daemonset", "修改成功", ("POST", "GET")),
    Case("cronjob", "修改成功"),
    Case("service", "更新成功"),
    Case("ingress", "更新成功"),
    Case("configmap", "更新成功"),
    Case("secret", "更新成功"),
    Case("persistentvolume", "更新成功"),
    Case("persistentvolumeclaim", "更新成功"),
]


def object_path(kind: Kind, namespace: str, name: str) -> str:
    """The object's REST path on the cluster."""
    return kind.path(namespace if kind.namespaced else "", name)


def junk(item: dict[str, Any], cluster_id: str, namespace: str) -> dict[str, Any]:
    """What the frontend's items carry besides the object (§1.5)."""
    dirty = copy.deepcopy(item)
    dirty.update({"clusterId": cluster_id, "nameSpace": namespace, "status": {"phase": "Made-up"}})
    dirty["metadata"].update(
        {
            "resourceVersion": "1",
            "uid": "0d4d7a2e-0000-0000-0000-000000000000",
            "creationTimestamp": "2020-01-01T00:00:00Z",
            "selfLink": "/x",
            "managedFields": [{"manager": "kubectl"}],
        }
    )
    return dirty


def add(service: Service, prefix: str, cluster_id: str, namespace: str, item: dict[str, Any]) -> dict:
    """POST /api/<prefix>/add."""
    return service.api(
        "POST",
        f"/api/{prefix}/add",
        json={"clusterId": cluster_id, "nameSpace": namespace, "item": item, "autoCreateService": True},
    )


@pytest.mark.parametrize("case", WRITABLE, ids=lambda c: c.prefix)
def test_add_list_get_update_delete(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str, case: Case
) -> None:
    kind, name = case.kind, unique(case.prefix[:6])
    path = object_path(kind, namespace, name)
    try:
        body = add(
            service, case.prefix, platform_id, namespace, junk(manifest(case.prefix, name), platform_id, namespace)
        )
        assert body == {"status": 200, "message": "创建成功", "data": {}}
        status, created = api_request(platform_cluster, "GET", path)
        assert status == 200, created
        assert created["metadata"].get("creationTimestamp") != "2020-01-01T00:00:00Z"
        assert created["metadata"].get("uid") != "0d4d7a2e-0000-0000-0000-000000000000"
        if kind.namespaced:
            assert created["metadata"]["namespace"] == namespace

        listed = service.api(
            "GET",
            f"/api/{case.prefix}/list",
            params={"clusterId": platform_id, "nameSpace": namespace, "timestamp": "1"},
        )
        assert listed["status"] == 200 and listed["message"] == "查询成功", listed
        names = [i["metadata"]["name"] for i in listed["data"]["items"]]
        assert name in names
        if kind.namespaced:
            assert all(i["metadata"]["namespace"] == namespace for i in listed["data"]["items"])
            assert names == sorted(names)  # the server's order (etcd key order)

        got = service.api(
            "GET", f"/api/{case.prefix}/get", params={"clusterId": platform_id, "nameSpace": namespace, "name": name}
        )
        assert got["status"] == 200 and got["message"] == "查询详情成功", got
        item = got["data"]["item"]
        assert item["metadata"]["name"] == name
        assert item["kind"] == kind.kind and item["apiVersion"] == kind.api_version  # the server's object

        if case.update_message:
            stale = copy.deepcopy(item)  # a list row: resourceVersion of the read, status and all
            stale["metadata"]["labels"]["updated"] = "yes"
            stale["kind"] = case.prefix
            stale["metadata"]["resourceVersion"] = "1"  # stale: an unconditional replace ignores it
            if case.prefix == "configmap":
                stale["data"]["key"] = "changed"
            # The list pages' switches post with a lower-case "namespace" (§2.5).
            updated = service.api(
                "POST",
                f"/api/{case.prefix}/update",
                json={"clusterId": platform_id, "namespace": namespace, "item": stale, "autoCreateService": True},
            )
            assert updated == {"status": 200, "message": case.update_message, "data": {}}
            _, after = api_request(platform_cluster, "GET", path)
            assert after["metadata"]["labels"]["updated"] == "yes"
            if case.prefix == "configmap":
                assert after["data"]["key"] == "changed"

        for method in case.restart:
            params = {"clusterId": platform_id, "nameSpace": namespace, "name": name}
            if method == "GET":
                restarted = service.api("GET", f"/api/{case.prefix}/restart", params=params)
            else:
                restarted = service.api("POST", f"/api/{case.prefix}/restart", json=params)
            assert restarted == {"status": 200, "message": "重启成功", "data": {}}
            _, after = api_request(platform_cluster, "GET", path)
            stamp = after["spec"]["template"]["metadata"]["annotations"]["kubeeasy.com/restart"]
            assert len(stamp) == 19 and stamp[4] == "-" and stamp[10] == " " and stamp[16] == ":"

        deleted = service.api(
            "POST", f"/api/{case.prefix}/delete", json={"clusterId": platform_id, "nameSpace": namespace, "name": name}
        )
        assert deleted == {"status": 200, "message": "删除成功", "data": {}}
        wait_for(lambda: gone_or_terminating(platform_cluster, path), what=f"{case.prefix} {name} deleted")
    finally:
        api_request(platform_cluster, "DELETE", path)


@pytest.mark.parametrize("case", WRITABLE, ids=lambda c: c.prefix)
def test_failures_name_the_action_and_the_reason(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str, case: Case
) -> None:
    kind, name = case.kind, unique("missing")
    where = {"clusterId": platform_id, "nameSpace": namespace}
    got = service.api("GET", f"/api/{case.prefix}/get", params={**where, "name": name})
    assert got["status"] == 400 and got["data"] == {}
    assert got["message"] == f'查询失败: {kind.plural}{"." + kind.group if kind.group else ""} "{name}" not found'
    deleted = service.api("POST", f"/api/{case.prefix}/delete", json={**where, "name": name})
    assert (
        deleted["status"] == 400 and deleted["message"].startswith("删除失败: ") and "not found" in deleted["message"]
    )
    if case.update_message:
        updated = service.api("POST", f"/api/{case.prefix}/update", json={**where, "item": manifest(case.prefix, name)})
        if case.prefix == "service":
            # The Service API creates on update (AllowCreateOnUpdate): Go's PUT does the same.
            assert updated["status"] == 200, updated
            api_request(platform_cluster, "DELETE", object_path(kind, namespace, name))
        else:
            assert updated["status"] == 400 and updated["message"].startswith("更新失败: "), updated
    existing = unique("dup")
    path = object_path(kind, namespace, existing)
    try:
        assert add(service, case.prefix, platform_id, namespace, manifest(case.prefix, existing))["status"] == 200
        again = add(service, case.prefix, platform_id, namespace, manifest(case.prefix, existing))
        assert again["status"] == 400
        assert again["message"].startswith("创建失败: ") and "already exists" in again["message"]
    finally:
        api_request(platform_cluster, "DELETE", path)


@pytest.mark.parametrize("case", [c for c in WRITABLE if c.prefix != "persistentvolume"], ids=lambda c: c.prefix)
def test_deletelist_deletes_every_name_and_reports_the_failures(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str, case: Case
) -> None:
    kind = case.kind
    names = [unique(case.prefix[:5]) for _ in range(3)]
    missing = unique("missing")
    try:
        for name in names:
            assert add(service, case.prefix, platform_id, namespace, manifest(case.prefix, name))["status"] == 200
        body = service.api(
            "POST",
            f"/api/{case.prefix}/deletelist",
            json={"clusterId": platform_id, "nameSpace": namespace, "deleteList": names},
        )
        assert body == {"status": 200, "message": "删除成功", "data": {}}
        for name in names:
            wait_for(functools.partial(gone_or_terminating, platform_cluster, object_path(kind, namespace, name)))
        partial = [unique(case.prefix[:5])]
        assert add(service, case.prefix, platform_id, namespace, manifest(case.prefix, partial[0]))["status"] == 200
        body = service.api(
            "POST",
            f"/api/{case.prefix}/deletelist",
            json={
                "clusterId": platform_id,
                "nameSpace": namespace,
                "deleteList": [*partial, missing],
                "forceDelete": True,
            },
        )
        assert body["status"] == 400
        assert body["message"].startswith(f"删除失败: {missing}: ") and "not found" in body["message"]
        assert [f["name"] for f in body["data"]["failed"]] == [missing]
        wait_for(lambda: gone_or_terminating(platform_cluster, object_path(kind, namespace, partial[0])))
    finally:
        for name in names:
            api_request(platform_cluster, "DELETE", object_path(kind, namespace, name))


def test_persistentvolume_deletelist_and_aliases(service: Service, platform_cluster: Cluster, platform_id: str) -> None:
    kind = BY_PREFIX["persistentvolume"]
    names = [unique("pv"), unique("pv")]
    try:
        for name in names:
            # The PV page sends no namespace, or "" (§2.7); /pv/* is an alias of /persistentvolume/*.
            body = service.api(
                "POST",
                "/api/pv/add",
                json={"clusterId": platform_id, "nameSpace": "", "item": manifest("persistentvolume", name)},
            )
            assert body["status"] == 200, body
        listed = service.api("GET", "/api/pv/list", params={"clusterId": platform_id})
        assert set(names) <= {i["metadata"]["name"] for i in listed["data"]["items"]}
        body = service.api(
            "POST", "/api/persistentvolume/deletelist", json={"clusterId": platform_id, "deleteList": names}
        )
        assert body["message"] == "删除成功", body
        for name in names:
            wait_for(functools.partial(gone_or_terminating, platform_cluster, kind.path("", name)))
    finally:
        for name in names:
            api_request(platform_cluster, "DELETE", kind.path("", name))


def test_pvc_alias_serves_the_same_routes(service: Service, platform_id: str, namespace: str) -> None:
    name = unique("pvc")
    assert add(service, "pvc", platform_id, namespace, manifest("persistentvolumeclaim", name))["status"] == 200
    got = service.api("GET", "/api/pvc/get", params={"clusterId": platform_id, "nameSpace": namespace, "name": name})
    assert got["data"]["item"]["kind"] == "PersistentVolumeClaim"
    assert (
        service.api("POST", "/api/pvc/delete", json={"clusterId": platform_id, "nameSpace": namespace, "name": name})[
            "status"
        ]
        == 200
    )


def test_list_without_namespace_covers_all_namespaces(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str
) -> None:
    """The node page lists pods by node without a namespace (§1.3, §4 #11)."""
    node = unique("node")
    name = unique("pod")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**pod_spec(name), "nodeName": node},
    }
    status, created = api_request(platform_cluster, "POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert status == 201, created
    try:
        listed = service.api(
            "GET", "/api/pod/list", params={"clusterId": platform_id, "fieldSelector": f"spec.nodeName={node}"}
        )
        assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["data"]["items"]] == [
            (namespace, name)
        ]
        assert all("kind" not in i and "apiVersion" not in i for i in listed["data"]["items"])
    finally:
        api_request(platform_cluster, "DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0")


def test_pod_delete_is_graceful_unless_forced(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str
) -> None:
    """Go forces every delete; here a scheduled Pod gets its grace period unless ForceDelete (§1.9)."""
    names = [unique("pod"), unique("pod")]
    for name in names:
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {**pod_spec(name), "nodeName": "some-node"},
        }
        assert api_request(platform_cluster, "POST", f"/api/v1/namespaces/{namespace}/pods", pod)[0] == 201
    try:
        graceful = service.api(
            "POST", "/api/pod/delete", json={"clusterId": platform_id, "nameSpace": namespace, "name": names[0]}
        )
        assert graceful["status"] == 200
        status, pod = api_request(platform_cluster, "GET", f"/api/v1/namespaces/{namespace}/pods/{names[0]}")
        if status == 200:  # a bound Pod waits for its kubelet; a living cluster's kwok may be quicker
            assert pod["metadata"]["deletionTimestamp"] and pod["metadata"]["deletionGracePeriodSeconds"] > 0
        forced = service.api(
            "POST",
            "/api/pod/delete",
            json={"clusterId": platform_id, "nameSpace": namespace, "name": names[1], "ForceDelete": True},
        )
        assert forced["status"] == 200
        assert api_request(platform_cluster, "GET", f"/api/v1/namespaces/{namespace}/pods/{names[1]}")[0] == 404
    finally:
        for name in names:
            api_request(platform_cluster, "DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0")


def test_single_object_routes_default_to_the_default_namespace(
    service: Service, platform_cluster: Cluster, platform_id: str
) -> None:
    name = unique("cm")
    try:
        body = add(service, "configmap", platform_id, "", manifest("configmap", name))
        assert body["status"] == 200
        assert api_request(platform_cluster, "GET", f"/api/v1/namespaces/default/configmaps/{name}")[0] == 200
        got = service.api("GET", "/api/configmap/get", params={"clusterId": platform_id, "name": name})
        assert got["data"]["item"]["metadata"]["namespace"] == "default"
    finally:
        api_request(platform_cluster, "DELETE", f"/api/v1/namespaces/default/configmaps/{name}")


def test_add_uses_the_item_namespace_when_none_is_sent(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str
) -> None:
    name = unique("cm")
    item = manifest("configmap", name)
    item["metadata"]["namespace"] = namespace
    body = service.api("POST", "/api/configmap/add", json={"clusterId": platform_id, "item": item})
    assert body["status"] == 200, body
    assert api_request(platform_cluster, "GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")[0] == 200


def test_every_read_also_answers_post_json(service: Service, platform_id: str, namespace: str) -> None:
    """§1.1: every HTTP route accepts POST with the same fields; the query of a POST is ignored."""
    name = unique("cm")
    assert add(service, "configmap", platform_id, namespace, manifest("configmap", name))["status"] == 200
    listed = service.api(
        "POST", "/api/configmap/list?nameSpace=kube-system", json={"CLUSTERID": platform_id, "NameSpace": namespace}
    )
    assert [i["metadata"]["name"] for i in listed["data"]["items"]] == [name]
    got = service.api(
        "POST", "/api/configmap/get", json={"cluster_id": platform_id, "namespace": namespace, "name": name}
    )
    assert got["data"]["item"]["data"] == {"key": "value"}


def test_replicaset_list_by_the_rollback_selector(
    service: Service, platform_cluster: Cluster, platform_id: str, namespace: str
) -> None:
    """The rollback dialog lists ReplicaSets by the Deployment's matchLabels (§2.5)."""
    app = unique("app")
    names = []
    for revision in ("1", "2"):
        name = f"{app}-{revision}"
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "labels": {"app": app, "tier": "web"},
                "annotations": {"deployment.kubernetes.io/revision": revision},
            },
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": app}}, "template": template(app)},
        }
        status, body = api_request(platform_cluster, "POST", f"/apis/apps/v1/namespaces/{namespace}/replicasets", rs)
        assert status == 201, body
        names.append(name)
    other = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": unique("other"), "labels": {"app": "other"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}}, "template": template("other")},
    }
    assert api_request(platform_cluster, "POST", f"/apis/apps/v1/namespaces/{namespace}/replicasets", other)[0] == 201
    listed = service.api(
        "GET",
        "/api/replicaset/list",
        params={
            "clusterId": platform_id,
            "nameSpace": namespace,
            "labelSelector": f"app={app},tier=web",
            "fieldSelector": "",
        },
    )
    assert listed["status"] == 200
    assert [i["metadata"]["name"] for i in listed["data"]["items"]] == names
    got = service.api(
        "GET", "/api/replicaset/get", params={"clusterId": platform_id, "nameSpace": namespace, "name": names[0]}
    )
    assert got["data"]["item"]["apiVersion"] == "apps/v1"  # Go wrongly says v1 (§5 #19)


def test_ingressclass_and_storageclass_are_listed(
    service: Service, platform_cluster: Cluster, platform_id: str
) -> None:
    ingress_class, storage_class = unique("ic"), unique("sc")
    assert (
        api_request(
            platform_cluster,
            "POST",
            "/apis/networking.k8s.io/v1/ingressclasses",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {"name": ingress_class},
                "spec": {"controller": "example.com/ingress"},
            },
        )[0]
        == 201
    )
    assert (
        api_request(
            platform_cluster,
            "POST",
            "/apis/storage.k8s.io/v1/storageclasses",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": storage_class},
                "provisioner": "kubernetes.io/no-provisioner",
            },
        )[0]
        == 201
    )
    try:
        classes = service.api("GET", "/api/ingressclass/list", params={"clusterId": platform_id})
        assert ingress_class in [i["metadata"]["name"] for i in classes["data"]["items"]]
        storage = service.api("GET", "/api/storageclass/list", params={"clusterId": platform_id, "nameSpace": "x"})
        assert storage_class in [i["metadata"]["name"] for i in storage["data"]["items"]]
        got = service.api("GET", "/api/storageclass/get", params={"clusterId": platform_id, "name": storage_class})
        assert got["data"]["item"]["provisioner"] == "kubernetes.io/no-provisioner"
    finally:
        api_request(platform_cluster, "DELETE", f"/apis/networking.k8s.io/v1/ingressclasses/{ingress_class}")
        api_request(platform_cluster, "DELETE", f"/apis/storage.k8s.io/v1/storageclasses/{storage_class}")


def test_restart_of_a_missing_workload_is_not_found(service: Service, platform_id: str, namespace: str) -> None:
    body = service.api(
        "GET",
        "/api/deployment/restart",
        params={"clusterId": platform_id, "nameSpace": namespace, "name": unique("nope")},
    )
    assert body == {"status": 400, "message": "未找到资源", "data": {}}


def test_routes_not_in_the_table_are_404(service: Service, platform_id: str) -> None:
    for path in (
        "/api/pod/update",
        "/api/cronjob/restart",
        "/api/replicaset/add",
        "/api/storageclass/delete",
        "/api/ingressclass/get",
        "/api/node/delete",
    ):
        assert service.api("POST", path, json={"clusterId": platform_id})["status"] == 404, path
    # Writes are POST only: a GET of add is not allowed (the envelope says so).
    assert service.api("GET", "/api/deployment/add", params={"clusterId": platform_id})["status"] == 400
