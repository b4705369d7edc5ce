"""The harness itself: real API servers, pinned version, identities, isolation, restart."""

from __future__ import annotations

import base64

from controlplane import build
from controlplane.harness import Cluster
from tests.service import unique


def _secret(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"k": base64.b64encode(value.encode()).decode()}}  # fmt: skip


def test_version_is_the_pinned_release(meta: Cluster) -> None:
    status, info = meta.request("GET", "/version")
    assert status == 200
    assert info["gitVersion"] == build.KUBE_APISERVER.version()
    assert info["gitVersion"].startswith("v1.")


def test_admin_can_create_read_and_delete_a_secret(meta: Cluster) -> None:
    name = unique("s")
    path = "/api/v1/namespaces/default/secrets"
    assert meta.request("POST", path, _secret(name, "hello"))[0] == 201
    status, got = meta.request("GET", f"{path}/{name}")
    assert status == 200
    assert base64.b64decode(got["data"]["k"]) == b"hello"
    assert meta.request("DELETE", f"{path}/{name}")[0] == 200
    assert meta.request("GET", f"{path}/{name}")[0] == 404


def test_limited_identity_is_forbidden(meta: Cluster) -> None:
    status, body = meta.request("GET", "/api/v1/namespaces/default/secrets", identity="limited")
    assert status == 403
    assert body["reason"] == "Forbidden"


def test_clusters_do_not_see_each_others_objects(target1: Cluster, target2: Cluster) -> None:
    name = unique("s")
    path = "/api/v1/namespaces/default/secrets"
    assert target1.request("POST", path, _secret(name, "only-in-target1"))[0] == 201
    try:
        assert target2.request("GET", f"{path}/{name}")[0] == 404
    finally:
        target1.request("DELETE", f"{path}/{name}")


def test_stopped_api_server_restarts_on_its_port_with_its_data(target2: Cluster) -> None:
    name = unique("s")
    path = "/api/v1/namespaces/default/secrets"
    port = target2.port
    assert target2.request("POST", path, _secret(name, "survives"))[0] == 201
    target2.stop()
    assert not target2.process.running
    target2.start()
    assert target2.port == port
    status, got = target2.request("GET", f"{path}/{name}")
    assert status == 200
    assert base64.b64decode(got["data"]["k"]) == b"survives"
    target2.request("DELETE", f"{path}/{name}")
