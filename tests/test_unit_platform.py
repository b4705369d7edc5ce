"""Pure logic of the platform layer: the kind table, item and copy cleaning, binding, budgets, the cache's bounds."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from controllers.cluster.clients import ClusterClients
from controllers.errors import BadRequest
from controllers.resources import schemas
from controllers.resources.cleaning import clean_copy, clean_item, list_namespace, object_namespace, valid_segment
from controllers.resources.generic import delete_query
from controllers.resources.kinds import BY_PREFIX, KINDS
from controllers.resources.secrets import selectors
from utils import kube
from utils.binding import bind_keys
from utils.budget import Budget, BudgetExceeded
from utils.kubeconfig import KubeconfigPolicy

DEPLOYMENT, CONFIGMAP, SECRET, SERVICE = (BY_PREFIX[p] for p in ("deployment", "configmap", "secret", "service"))


def test_kind_paths_follow_group_scope_and_namespace() -> None:
    assert DEPLOYMENT.path("team", "web") == "/apis/apps/v1/namespaces/team/deployments/web"
    assert DEPLOYMENT.path("") == "/apis/apps/v1/deployments"  # a list over all namespaces
    assert BY_PREFIX["pv"].path("ignored", "v") == "/api/v1/persistentvolumes/v"
    assert BY_PREFIX["pvc"] is BY_PREFIX["persistentvolumeclaim"]
    assert CONFIGMAP.path("a b", "c%d") == "/api/v1/namespaces/a%20b/configmaps/c%25d"


def test_every_row_is_well_formed() -> None:
    prefixes = [p for k in KINDS for p in k.prefixes]
    assert len(prefixes) == len(set(prefixes))
    assert {k.kind for k in KINDS if "restart" in k.actions} == {"Deployment", "StatefulSet", "DaemonSet"}
    assert {k.prefix for k in KINDS if k.update_message == "修改成功"} == {
        "node", "deployment", "statefulset", "daemonset", "cronjob"}  # fmt: skip


@pytest.mark.parametrize(("value", "ok"), [("a", True), ("a.b-c", True), ("", False), (".", False), ("..", False),
                                           ("a/b", False), ("50%", False), ("...", True)])  # fmt: skip
def test_path_segments(value: str, ok: bool) -> None:
    assert valid_segment(value) is ok


def test_namespace_defaults() -> None:
    assert object_namespace(DEPLOYMENT, "") == "default"
    assert object_namespace(BY_PREFIX["node"], "x") == ""
    assert list_namespace(DEPLOYMENT, "") == ""
    assert list_namespace(BY_PREFIX["storageclass"], "team") == ""
    with pytest.raises(BadRequest, match="nameSpace"):
        object_namespace(DEPLOYMENT, "..")


def frontend_item() -> dict[str, Any]:
    """A row as the frontend posts it back (§1.5)."""
    return {
        "kind": "deployment", "apiVersion": "v1", "clusterId": "c", "nameSpace": "x", "status": {"replicas": 1},
        "metadata": {"name": "web", "namespace": "team", "resourceVersion": "7", "uid": "u", "generation": 3,
                     "creationTimestamp": "t", "managedFields": [{}], "selfLink": "/s", "labels": {"a": "1"},
                     "ownerReferences": [{"name": "o"}]},
        "spec": {"replicas": 2},
    }  # fmt: skip


def test_clean_item_on_add() -> None:
    body, namespace, name = clean_item(DEPLOYMENT, frontend_item(), "", adding=True)
    assert (namespace, name) == ("team", "web")
    assert body == {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2},
                    "metadata": {"name": "web", "namespace": "team", "labels": {"a": "1"},
                                 "ownerReferences": [{"name": "o"}]}}  # fmt: skip


def test_clean_item_on_update_keeps_identity_but_not_the_revision() -> None:
    body, namespace, _ = clean_item(DEPLOYMENT, frontend_item(), "override", adding=False)
    assert namespace == "override" and body["metadata"]["namespace"] == "override"
    assert "resourceVersion" not in body["metadata"] and body["metadata"]["uid"] == "u"
    assert "status" not in body and "clusterId" not in body


def test_clean_item_keeps_the_data_keys_of_configmaps_and_secrets() -> None:
    item = {"metadata": {"name": "s"}, "data": {"a": "b"}, "stringData": {"c": "d"}, "type": "Opaque",
            "immutable": True, "binaryData": {"e": "Zg=="}}  # fmt: skip
    secret, _, _ = clean_item(SECRET, item, "ns", adding=True)
    assert set(secret) == {"apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"}
    configmap, _, _ = clean_item(CONFIGMAP, item, "ns", adding=True)
    assert set(configmap) == {"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"}
    generated, _, name = clean_item(CONFIGMAP, {"metadata": {"generateName": "x-"}}, "ns", adding=True)
    assert name == "" and generated["metadata"]["generateName"] == "x-"


@pytest.mark.parametrize("item", [None, "x", [], 5, {"metadata": []}, {"metadata": {"name": ".."}},
                                  {"metadata": {"name": 1}}, {"metadata": {}}])  # fmt: skip
def test_clean_item_refuses(item: Any) -> None:
    with pytest.raises(BadRequest, match=r"^请求出错: "):
        clean_item(CONFIGMAP, item, "ns", adding=False)


def test_copy_cleaning_of_a_service() -> None:
    service: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {}},
               "metadata": {"name": "web", "namespace": "a", "uid": "u", "resourceVersion": "1",
                            "ownerReferences": [{}], "labels": {"app": "web"},
                            "annotations": {"deployment.kubernetes.io/revision": "3", "pv.kubernetes.io/bound": "y",
                                            "keep": "me"}},
               "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "healthCheckNodePort": 30001,
                        "ports": [{"port": 80, "nodePort": 30080}], "type": "NodePort"}}  # fmt: skip
    copy = clean_copy(SERVICE, service, "b")
    assert copy["metadata"] == {"name": "web", "namespace": "b", "labels": {"app": "web"},
                                "annotations": {"keep": "me"}}  # fmt: skip
    assert copy["spec"] == {"ports": [{"port": 80}], "type": "NodePort"}
    assert service["spec"]["ports"][0]["nodePort"] == 30080  # the source is untouched
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}}
    assert clean_copy(SERVICE, headless, "b")["spec"]["clusterIP"] == "None"


def test_copy_cleaning_of_volumes() -> None:
    pv = clean_copy(BY_PREFIX["pv"], {"metadata": {"name": "v"}, "spec": {"claimRef": {}, "capacity": {}}}, "x")
    assert pv["spec"] == {"capacity": {}} and "namespace" not in pv["metadata"]
    pvc = clean_copy(BY_PREFIX["pvc"], {"metadata": {"name": "c"}, "spec": {"volumeName": "v"}}, "x")
    assert pvc["spec"] == {} and pvc["metadata"]["namespace"] == "x"


@pytest.mark.parametrize(("label", "field", "expected"), [
    ("type=kubernetes.io/tls", "", ("", "type=kubernetes.io/tls")),
    ("type=kubernetes.io/tls", "type=Opaque", ("type=kubernetes.io/tls", "type=Opaque")),
    ("type=a,app=b", "", ("type=a,app=b", "")),
    ("app=web", "", ("app=web", "")),
    ("", "type=kubernetes.io/dockerconfigjson", ("", "type=kubernetes.io/dockerconfigjson")),
])  # fmt: skip
def test_secret_selector_rule(label: str, field: str, expected: tuple[str, str]) -> None:
    assert selectors(label, field) == expected


def test_delete_grace_only_when_forced() -> None:
    assert delete_query(False) == {"propagationPolicy": "Background"}
    assert delete_query(True) == {"propagationPolicy": "Background", "gracePeriodSeconds": "0"}


def test_binding_of_every_spelling() -> None:
    body = bind_keys({"ClusterID": "c", "NAMESPACE": "n", "ForceDelete": True, "timestamp": 1}, schemas.SPELLINGS)
    assert schemas.delete_request.load(body) == {"cluster_id": "c", "namespace": "n", "name": "",
                                                 "force_delete": True}  # fmt: skip
    assert schemas.delete_request.load(bind_keys({"cluster_id": "c", "force": False}, schemas.SPELLINGS))[
        "cluster_id"] == "c"  # fmt: skip
    assert schemas.write_request.load({"item": None, "autoCreateService": None})["auto_create_service"] is False
    with pytest.raises(Exception, match="boolean"):
        schemas.delete_request.load({"forceDelete": 1})


def test_budget_gives_two_seconds_to_connect_and_the_rest_to_read() -> None:
    budget = Budget(4.5, 2.0)
    connect, read = budget.timeout()
    assert connect == 2.0 and 4.4 < read <= 4.5
    short = Budget(0.01)
    with pytest.raises(BudgetExceeded):
        short.timeout()
    assert isinstance(BudgetExceeded("x"), kube.Timeout)


class FakeRegistry:
    """Secrets by id (the cache's view of the registry); no informer, so every lookup reads."""

    informer = None

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.reads = 0

    def put(self, cluster_id: str, server: str, revision: int) -> None:
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
                  "clusters": [{"name": "c", "cluster": {"server": server}}],
                  "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                  "users": [{"name": "u", "user": {"token": "t"}}]}  # fmt: skip
        import base64

        self.secrets[cluster_id] = {
            "metadata": {"resourceVersion": str(revision)},
            "data": {"kubeconfig": base64.b64encode(json.dumps(config).encode()).decode()},
        }

    def read(self, name: str, timeout: Any = None) -> dict[str, Any]:
        self.reads += 1
        if name not in self.secrets:
            raise kube.NotFound(f'secrets "{name}" not found')
        return self.secrets[name]


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    registry = FakeRegistry()
    clients = ClusterClients(registry, KubeconfigPolicy(), max_clients=2)  # type: ignore[arg-type]
    for i in range(3):
        registry.put(f"c{i}", "https://127.0.0.1:1", 1)
    for cluster_id in ("c0", "c1", "c0", "c2"):
        with clients.use(cluster_id, Budget(1)):
            pass
    assert len(clients) == 2 and clients.builds == 3  # c1 was the least recently used
    with clients.use("c1", Budget(1)):
        pass
    assert clients.builds == 4


def test_the_cache_keeps_a_client_while_only_annotations_change_and_drops_idle_ones() -> None:
    registry = FakeRegistry()
    now = [1000.0]
    clients = ClusterClients(registry, KubeconfigPolicy(), idle_seconds=60, clock=lambda: now[0])  # type: ignore[arg-type]
    registry.put("c", "https://127.0.0.1:1", 1)
    with clients.use("c", Budget(1)) as first:
        pass
    registry.secrets["c"]["metadata"]["resourceVersion"] = "2"
    with clients.use("c", Budget(1)) as second:
        assert second is first
    registry.put("c", "https://127.0.0.1:2", 3)
    with clients.use("c", Budget(1)) as third:
        assert third is not first
    now[0] += 61
    assert clients.sweep() == 1 and len(clients) == 0


def test_a_client_in_use_is_closed_only_after_its_last_user() -> None:
    registry = FakeRegistry()
    clients = ClusterClients(registry, KubeconfigPolicy())  # type: ignore[arg-type]
    registry.put("c", "https://127.0.0.1:1", 1)
    closed: list[str] = []
    with clients.use("c", Budget(1)) as client:
        client.close = lambda: closed.append("c")  # type: ignore[method-assign]
        clients.drop("c")
        assert closed == []
    assert closed == ["c"]


def test_unknown_and_missing_clusters() -> None:
    clients = ClusterClients(FakeRegistry(), KubeconfigPolicy())  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match=r"^缺少参数: clusterId$"), clients.use("", Budget(1)):
        pass
    with pytest.raises(BadRequest, match=r"^集群不存在: nope$"), clients.use("nope", Budget(1)):
        pass
    started = time.monotonic()
    with pytest.raises(BadRequest, match=r"^集群不存在: UPPER$"), clients.use("UPPER", Budget(1)):
        pass
    assert time.monotonic() - started < 0.5


def test_items_are_passed_through_raw() -> None:
    from config.envelope import ok_items
    from controllers.resources.generic import raw_items

    body = b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"a":",\\"items\\":"}]}\n'
    raw = raw_items(body)
    assert raw is not None
    assert json.loads(ok_items("m", raw).get_data())["data"] == {"items": [{"a": ',"items":'}]}
    null = raw_items(b'{"metadata":{},"items":null}')
    assert null is not None and null.body[null.start : null.end] == b"[]"
    assert raw_items(b'{"kind":"Status"}') is None


def test_a_raw_list_is_enveloped_without_parsing_and_reads_as_the_parsed_one() -> None:
    from config.envelope import RawItems, ok_items
    from controllers.resources.generic import raw_items

    body = (b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items": \n'
            b'[{"a":"}\\"]"},{"b":[1,2]}] \n}\n')  # fmt: skip
    raw = raw_items(body)
    assert isinstance(raw, RawItems) and raw.body is body  # no copy of the answer
    reply = ok_items("查询成功", raw)
    assert reply.content_type == "application/json; charset=utf-8"
    assert json.loads(reply.get_data()) == {"status": 200, "message": "查询成功",
                                            "data": {"items": [{"a": '}"]'}, {"b": [1, 2]}]}}  # fmt: skip
    assert reply.get_data() == ok_items("查询成功", json.loads(body)["items"]).get_data().replace(b" ", b"")
    null = raw_items(b'{"metadata":{},"items":null}\n')
    assert null is not None and json.loads(ok_items("m", null).get_data())["data"] == {"items": []}
    for broken in (b'{"kind":"Status"}', b'{"metadata":{},"items":{"a":1}}', b'{"items":[1]', b""):
        assert raw_items(broken) is None


def test_concurrent_requests_build_one_client_per_cluster() -> None:
    import threading

    registry = FakeRegistry()
    registry.put("c", "https://127.0.0.1:1", 1)
    clients = ClusterClients(registry, KubeconfigPolicy())  # type: ignore[arg-type]
    seen: list[object] = []
    barrier = threading.Barrier(8)

    def request() -> None:
        barrier.wait()
        with clients.use("c", Budget(5)) as client:
            seen.append(client)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clients.builds == 1 and len(seen) == 8 and len({id(c) for c in seen}) == 1


def test_unknown_ids_leave_nothing_behind() -> None:
    clients = ClusterClients(FakeRegistry(), KubeconfigPolicy())  # type: ignore[arg-type]
    for i in range(50):
        with pytest.raises(BadRequest), clients.use(f"made-up-{i}", Budget(1)):
            pass
    assert len(clients) == 0 and clients._build_locks == {}
