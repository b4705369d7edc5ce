"""Start-up: the metadata namespace, shared generated credentials, and a metadata cluster that fails."""

from __future__ import annotations

import base64
import time

import pytest

from controlplane.harness import Cluster
from tests.service import eventually, unique


def _readyz(svc) -> tuple[int, dict]:
    resp = svc.call("GET", "/readyz", auth=False)
    return resp.status_code, resp.json()


def test_bootstrap_creates_the_metadata_namespace(make_service, meta: Cluster) -> None:
    svc = make_service()
    status, ns = meta.request("GET", f"/api/v1/namespaces/{svc.namespace}")
    assert status == 200 and ns["status"]["phase"] == "Active"


def test_bootstrap_is_idempotent_on_an_existing_namespace(make_service, meta: Cluster) -> None:
    namespace = unique("krm-pre")
    assert meta.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    svc = make_service(namespace=namespace, workers=2)
    assert "created the metadata namespace" not in svc.log()
    assert svc.login()["status"] == 200


def test_generated_credentials_are_shared_by_replicas(make_service, meta: Cluster) -> None:
    namespace = unique("krm-gen")
    env = {"PASSWORD": None, "JWT_SIGN_KEY": None}
    first = make_service(namespace=namespace, env=env, workers=2)
    second = make_service(namespace=namespace, env=env, workers=1)
    status, secret = meta.request("GET", f"/api/v1/namespaces/{namespace}/secrets/krm-backend-auth")
    assert status == 200
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) >= 12
    token = first.login(password=password)["data"]["token"]
    assert second.api("GET", "/api/cluster/list", token=token)["status"] == 200
    for svc in (first, second):
        assert password not in svc.log()
        assert "get secret krm-backend-auth" in first.log() + second.log()


def test_unreachable_metadata_cluster_is_not_ready_then_recovers(make_service, target2: Cluster) -> None:
    target2.stop()
    try:
        svc = make_service(cluster=target2, wait_ready=False, env={"BOOTSTRAP_MAX_BACKOFF": "1"})
        assert svc.call("GET", "/healthz", auth=False).status_code == 200
        # The service answers before its first bootstrap attempt has ended: wait for that attempt's reason.
        status, body = eventually(lambda: (r := _readyz(svc))[1]["reason"] != "bootstrap has not run yet" and r)
        assert status == 503
        assert "connection refused" in body["reason"]
        from tests.test_auth_routes import go_token

        answer = svc.api("GET", "/api/cluster/list", token=go_token())
        assert answer["status"] == 503
        assert answer["message"].startswith("服务尚未就绪")
    finally:
        target2.start()
    svc.wait_http("/readyz", timeout=30)
    assert svc.login()["status"] == 200
    assert "Traceback" not in svc.log()


def test_metadata_outage_after_start_is_503_and_recovers(make_service, target2: Cluster) -> None:
    svc = make_service(cluster=target2)
    assert svc.api("GET", "/api/cluster/list")["status"] == 200
    target2.stop()
    try:
        started = time.monotonic()
        body = svc.api("GET", "/api/cluster/list")
        assert time.monotonic() - started < 8
        assert body["status"] == 503
        assert body["message"].startswith("查询失败: 元数据集群不可用")
        assert _readyz(svc)[0] == 503
    finally:
        target2.start()
    assert svc.api("GET", "/api/cluster/list")["status"] == 200
    assert _readyz(svc)[0] == 200


def test_forbidden_metadata_access_is_reported_not_crashed(make_service) -> None:
    svc = make_service(identity="limited", wait_ready=False)
    deadline = time.monotonic() + 10
    while "metadata cluster not usable" not in svc.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    status, body = _readyz(svc)
    assert status == 503
    assert "forbidden" in body["reason"]
    assert svc.call("GET", "/healthz", auth=False).status_code == 200
    assert "Traceback" not in svc.log()


@pytest.mark.parametrize("path_kind", ["missing", "garbage"])
def test_unusable_metadata_kubeconfig_is_reported(make_service, tmp_path, path_kind: str) -> None:
    path = tmp_path / "meta.kubeconfig"
    if path_kind == "garbage":
        path.write_text("clusters: [")
    svc = make_service(env={"METADATA_KUBECONFIG": str(path)}, wait_ready=False)
    deadline = time.monotonic() + 20
    while "metadata kubeconfig" not in str((answer := _readyz(svc))[1].get("reason")):
        assert time.monotonic() < deadline, answer  # polled: bootstrap reports on its first attempt
        time.sleep(0.1)
    assert answer[0] == 503
    assert "Traceback" not in svc.log()
