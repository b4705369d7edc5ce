"""IN_CLUSTER=true: a real ServiceAccount token (TokenRequest API) and the metadata cluster's CA, as a pod has them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.kustomize import (
    by_kind,
    call,
    in_cluster_env,
    render,
    service_account_token,
    write_service_account_root,
)
from tests.service import ADMIN_PASSWORD, Service, unique
from utils import kube


def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (the cache serves writes shortly after)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def readiness_reason(svc: Service, expected: str) -> str:
    """The reason /readyz gives once it contains ``expected`` (bootstrap runs in the background)."""

    def matching() -> str:
        reason = str(svc.call("GET", "/readyz", auth=False).json().get("reason", ""))
        return reason if expected in reason else ""

    return str(eventually(matching, timeout=15.0))


def settle(svc: Service, answers: int = 8, timeout: float = 30.0) -> None:
    """Wait for ``answers`` ready answers in a row on fresh connections.

    Each gunicorn worker bootstraps on its own, so one ready answer says nothing of the other workers.
    """
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while in_a_row < answers:
        assert time.monotonic() < deadline, "workers not ready in time"
        ready = svc.call("GET", "/readyz", auth=False, headers={"Connection": "close"}).status_code == 200
        in_a_row = in_a_row + 1 if ready else 0
        if not ready:
            time.sleep(0.1)


def end_to_end(svc: Service, target: Cluster, password: str = ADMIN_PASSWORD) -> None:
    """Log in, add a cluster by its kubeconfig, list, get, update, delete and log out: all must succeed."""
    settle(svc)
    login = svc.login(password=password)
    assert login["status"] == 200, login
    token = login["data"]["token"]
    cluster_id = unique("e2e")

    def ids() -> set[str]:
        return {item["id"] for item in svc.api("GET", "/api/cluster/list", token=token)["data"]["items"]}

    added = svc.api("POST", "/api/cluster/add", token=token, json={
        "id": cluster_id, "displayName": "端到端", "city": "北京", "kubeconfig": kubeconfig_text(target),
    })  # fmt: skip
    assert added == {"status": 200, "message": "添加成功", "data": {}}
    assert eventually(lambda: cluster_id in ids())
    item = svc.api("GET", f"/api/cluster/get?clusterId={cluster_id}", token=token)["data"]["item"]
    assert item["status"] == "Active" and item["version"] == "v1.36.3" and item["kubeconfig"]
    updated = svc.api("POST", "/api/cluster/update", token=token, json={**item, "displayName": "改名"})
    assert updated == {"status": 200, "message": "更新成功", "data": {}}
    assert eventually(
        lambda: (
            svc.api("GET", f"/api/cluster/get?id={cluster_id}", token=token)["data"]["item"]["displayName"] == "改名"
        )
    )
    deleted = svc.api("POST", "/api/cluster/delete", token=token, json={"id": cluster_id})
    assert deleted == {"status": 200, "message": "删除成功", "data": {}}
    assert eventually(lambda: cluster_id not in ids())
    assert svc.api("POST", "/api/auth/logout", token=token)["status"] == 200


def grant_manifest_role(meta: Cluster, namespace: str) -> str:
    """The ServiceAccount, Role and RoleBinding of deploy/, created in ``namespace``; returns the account."""
    objects = render(namespace=namespace)
    for kind, plural, prefix in (("ServiceAccount", "serviceaccounts", "/api/v1"),
                                 ("Role", "roles", "/apis/rbac.authorization.k8s.io/v1"),
                                 ("RoleBinding", "rolebindings", "/apis/rbac.authorization.k8s.io/v1")):  # fmt: skip
        for obj in by_kind(objects, kind):
            status, body, _ = call(meta, "POST", f"{prefix}/namespaces/{namespace}/{plural}", obj)
            assert status == 201, body
    return str(by_kind(objects, "ServiceAccount")[0]["metadata"]["name"])


def test_in_cluster_mode_passes_end_to_end_with_the_manifest_role(
    meta: Cluster, target1: Cluster, make_service, tmp_path: Path
) -> None:
    namespace = unique("krm-ic")
    assert call(meta, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    account = grant_manifest_role(meta, namespace)
    root = write_service_account_root(tmp_path / "sa", meta, service_account_token(meta, namespace, account))
    svc = make_service(namespace=namespace, env={**in_cluster_env(meta, root), "PROBE_ENABLED": "true"}, workers=2)
    end_to_end(svc, target1)
    log = svc.log()
    assert '"inCluster":true' in log
    assert "forbidden" not in log.lower()


def test_a_rotated_service_account_token_is_picked_up(
    meta: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = unique("krm-rot")
    assert call(meta, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    account = grant_manifest_role(meta, namespace)
    # Tokens bound to a Secret die with it: that is how a rotated-out token is made invalid here.
    uids = {}
    for name in ("bound-a", "bound-b"):
        status, secret, _ = call(meta, "POST", f"/api/v1/namespaces/{namespace}/secrets", {"metadata": {"name": name}})
        assert status == 201, secret
        uids[name] = secret["metadata"]["uid"]

    def bound_to(name: str) -> dict[str, str]:
        return {"kind": "Secret", "name": name, "uid": uids[name]}

    token_a = service_account_token(meta, namespace, account, bound=bound_to("bound-a"))
    root = write_service_account_root(tmp_path / "sa", meta, token_a)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(meta.port))
    reloading = kube.KubeClient.in_cluster(str(root), (1.0, 3.0), token_reload_seconds=0.2)
    keeping = kube.KubeClient.in_cluster(str(root), (1.0, 3.0), token_reload_seconds=3600)
    path = kube.namespace_path(namespace)
    try:
        for client in (reloading, keeping):
            assert client.request("GET", path)["metadata"]["name"] == namespace
        token_b = service_account_token(meta, namespace, account, bound=bound_to("bound-b"))
        (root / "token").write_text(token_b)  # what the kubelet does before the old token expires
        assert call(meta, "DELETE", f"/api/v1/namespaces/{namespace}/secrets/bound-a")[0] == 200

        def rejected() -> bool:
            try:
                keeping.request("GET", path)
            except kube.Unauthorized:
                return True
            return False

        assert eventually(rejected), "the old token should stop working once its Secret is gone"
        time.sleep(0.3)
        assert reloading.request("GET", path)["metadata"]["name"] == namespace
    finally:
        reloading.close()
        keeping.close()


def test_a_namespace_it_may_not_read_is_reported_and_never_created(meta: Cluster, make_service, tmp_path: Path) -> None:
    home = unique("krm-home")
    assert call(meta, "POST", "/api/v1/namespaces", {"metadata": {"name": home}})[0] == 201
    account = grant_manifest_role(meta, home)
    root = write_service_account_root(tmp_path / "sa", meta, service_account_token(meta, home, account))
    elsewhere = unique("krm-missing")
    svc = make_service(namespace=elsewhere, env=in_cluster_env(meta, root), wait_ready=False)
    svc.wait_http("/healthz")
    assert "forbidden" in readiness_reason(svc, "forbidden")
    assert svc.call("GET", "/readyz", auth=False).status_code == 503
    assert call(meta, "GET", f"/api/v1/namespaces/{elsewhere}")[0] == 404  # a 403 is never taken for "create it"
    assert "Traceback" not in svc.log()


def test_a_wrong_ca_is_a_tls_error_on_readiness(meta: Cluster, target1: Cluster, make_service, tmp_path: Path) -> None:
    namespace = unique("krm-ca")
    assert call(meta, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    account = grant_manifest_role(meta, namespace)
    root = write_service_account_root(tmp_path / "sa", meta, service_account_token(meta, namespace, account))
    (root / "ca.crt").write_bytes(target1.ca_pem())  # another cluster's CA: the server is not trusted
    svc = make_service(namespace=namespace, env=in_cluster_env(meta, root), wait_ready=False)
    svc.wait_http("/healthz")
    assert "certificate verify failed" in readiness_reason(svc, "TLS error")


@pytest.mark.parametrize(
    ("missing", "message"),
    [("token", "cannot read the service-account token"), ("ca.crt", "cannot read the service-account CA")],
)
def test_missing_service_account_files_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str, message: str
) -> None:
    (tmp_path / "token").write_text("t0ken")
    (tmp_path / "ca.crt").write_text("not read before the first call")
    (tmp_path / missing).unlink()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    with pytest.raises(kube.BadKubeconfig, match=message):
        kube.KubeClient.in_cluster(str(tmp_path), (1.0, 1.0))


def test_in_cluster_needs_the_service_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(kube.BadKubeconfig, match="KUBERNETES_SERVICE_HOST"):
        kube.KubeClient.in_cluster(str(tmp_path), (1.0, 1.0))
