"""Fixtures of the platform tests: the target cluster, its registration, and scratch namespaces.

``platform_cluster`` is a "living" cluster (controllers, scheduler and kwok nodes): Deployments get their
ReplicaSets and Pods, Pods run on simulated Nodes, deleted namespaces are finalised. The tests therefore
never assume that nothing else acts on the cluster: unique names, no "nothing else exists" assertions,
cleanup in ``finally``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.service import Service, unique


@pytest.fixture(scope="session")
def platform_cluster(living1: Cluster) -> Cluster:
    """The cluster the platform routes act on: the living target cluster."""
    return living1


@pytest.fixture(scope="session")
def platform_id(service: Service, platform_cluster: Cluster) -> str:
    """``platform_cluster`` registered with the shared service (admin kubeconfig)."""
    cluster_id = unique("plat")
    body = service.api("POST", "/api/cluster/add",
                       json={"id": cluster_id, "kubeconfig": kubeconfig_text(platform_cluster)})  # fmt: skip
    assert body["status"] == 200, body
    return cluster_id


def api_request(cluster: Cluster, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """One direct call to the cluster (admin), to set up and to check what the service did."""
    return cluster.request(method, path, body)


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {timeout} s (last: {value!r})")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def gone_or_terminating(cluster: Cluster, path: str) -> bool:
    """The object is deleted, or being deleted (finalizers wait for controllers a bare cluster lacks)."""
    status, obj = api_request(cluster, "GET", path)
    return status == 404 or (status == 200 and bool(obj.get("metadata", {}).get("deletionTimestamp")))


@pytest.fixture
def namespace(platform_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace on the platform cluster, deleted afterwards (it may stay Terminating)."""
    name = unique("ns")
    status, body = api_request(platform_cluster, "POST", "/api/v1/namespaces",
                               {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})  # fmt: skip
    assert status == 201, body
    try:
        yield name
    finally:
        api_request(platform_cluster, "DELETE", f"/api/v1/namespaces/{name}")
