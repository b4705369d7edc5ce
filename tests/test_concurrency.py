"""Concurrent adds, updates and deletes through two gunicorn workers end in exactly the expected registry.

8 threads x 20 operations. Each thread owns some ids (their end state is known exactly) and all
threads fight over a few shared ids (exactly one add wins each; the stored record is one that a
successful request wrote, never a mix). The result is read directly from the metadata API server.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest

from config.constants import DEFAULT_CLUSTER_LABEL
from controlplane.harness import Cluster
from tests.service import Service

THREADS = 8
OWN = 6  # ids per thread: add all, update all, delete the first half
SHARED = 3  # ids every thread tries to add; the first two are also updated by everyone


def kubeconfig_for(target: Cluster, cluster_id: str, writer: str) -> str:
    """target's admin kubeconfig, made unique per id and writer (so a mixed record would show)."""
    config = target.kubeconfig()
    config["preferences"] = {"extensions": [{"name": "writer", "extension": {"id": cluster_id, "by": writer}}]}
    return json.dumps(config)


def registry(meta: Cluster, namespace: str) -> dict[str, tuple[dict, dict]]:
    """Every cluster Secret: name -> (annotations, decoded kubeconfig)."""
    status, body = meta.request(
        "GET", f"/api/v1/namespaces/{namespace}/secrets?labelSelector={DEFAULT_CLUSTER_LABEL}%3Dtrue"
    )
    assert status == 200, body
    return {
        item["metadata"]["name"]: (
            item["metadata"].get("annotations") or {},
            json.loads(base64.b64decode(item["data"]["kubeconfig"])),
        )
        for item in body["items"]
    }


def warm_up(svc: Service, token: str) -> None:
    """Wait until every worker has finished its bootstrap (/readyz only proved that one has)."""
    deadline = time.monotonic() + 30
    streak = 0
    while streak < 20:
        assert time.monotonic() < deadline, "workers not ready"
        # A new connection each time: a kept-alive one would always reach the same worker.
        body = svc.api("GET", "/api/cluster/list", headers={"Authorization": token, "Connection": "close"})
        ok = body["status"] == 200
        streak = streak + 1 if ok else 0
        if not ok:
            time.sleep(0.1)


@pytest.mark.timeout(240)
def test_concurrent_writes_end_in_exactly_the_expected_registry(make_service, meta: Cluster, target1: Cluster) -> None:
    svc: Service = make_service(workers=2)
    token = svc.token()
    warm_up(svc, token)
    shared = [f"shared-{k}" for k in range(SHARED)]
    outcomes: dict[tuple[str, str, str], dict[str, Any]] = {}  # (thread, op, id) -> envelope
    failures: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def call(path: str, body: dict | None = None) -> dict:
        if body is None:
            return svc.api("GET", path, token=token)
        return svc.api("POST", path, token=token, json=body)

    def worker(t: int) -> None:
        name = f"t{t}"
        own = [f"own-{t}-{i}" for i in range(OWN)]
        try:
            barrier.wait(30)  # start together, to make the races real
            ops = 0
            for cluster_id in own:
                outcomes[(name, "add", cluster_id)] = call("/api/cluster/add", {
                    "id": cluster_id, "displayName": f"{cluster_id} v0",
                    "kubeconfig": kubeconfig_for(target1, cluster_id, name)})  # fmt: skip
                ops += 1
            for cluster_id in shared:
                outcomes[(name, "add", cluster_id)] = call("/api/cluster/add", {
                    "id": cluster_id, "displayName": f"{cluster_id} by {name}",
                    "kubeconfig": kubeconfig_for(target1, cluster_id, name)})  # fmt: skip
                ops += 1
            for cluster_id in own:
                outcomes[(name, "update", cluster_id)] = call("/api/cluster/update", {
                    "id": cluster_id, "displayName": f"{cluster_id} v1", "city": name,
                    "kubeconfig": kubeconfig_for(target1, cluster_id, name + "-v1")})  # fmt: skip
                ops += 1
            for cluster_id in shared[:2]:
                outcomes[(name, "update", cluster_id)] = call("/api/cluster/update", {
                    "id": cluster_id, "displayName": f"{cluster_id} updated by {name}",
                    "kubeconfig": kubeconfig_for(target1, cluster_id, name + "-update")})  # fmt: skip
                ops += 1
            for cluster_id in own[: OWN // 2]:
                outcomes[(name, "delete", cluster_id)] = call(f"/api/cluster/delete?id={cluster_id}")
                ops += 1
            assert ops == 20
        except BaseException as exc:  # re-raised below with the others
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not failures, failures[:3]
    assert len(outcomes) == THREADS * 20

    # Every answer is an envelope; own ids never fail; shared ids fail only the documented ways.
    for (writer, op, cluster_id), body in outcomes.items():
        if cluster_id.startswith("own-"):
            assert body["status"] == 200, (writer, op, cluster_id, body)
        elif op == "add" and body["status"] != 200:
            assert body["status"] == 400 and body["message"].startswith("添加集群失败: "), body
            assert "already exists" in body["message"], body
        elif op == "update" and body["status"] != 200:
            # A concurrent writer changed it between read and replace: reported, never silently lost.
            assert body["status"] == 400 and body["message"].startswith("更新集群失败: "), body

    result = registry(meta, svc.namespace)
    expected_names = {f"own-{t}-{i}" for t in range(THREADS) for i in range(OWN // 2, OWN)} | set(shared)
    assert set(result) == expected_names

    for t in range(THREADS):
        for i in range(OWN // 2, OWN):
            cluster_id = f"own-{t}-{i}"
            annotations, kubeconfig = result[cluster_id]
            assert annotations["id"] == cluster_id
            assert annotations["displayName"] == f"{cluster_id} v1"
            assert annotations["city"] == f"t{t}"
            assert annotations["status"] == "Active"
            assert kubeconfig["preferences"]["extensions"][0]["extension"] == {"id": cluster_id, "by": f"t{t}-v1"}

    for k, cluster_id in enumerate(shared):
        add_winners = [
            w for (w, op, c), b in outcomes.items() if c == cluster_id and op == "add" and b["status"] == 200
        ]
        assert len(add_winners) == 1, (cluster_id, add_winners)
        updaters = [
            w for (w, op, c), b in outcomes.items() if c == cluster_id and op == "update" and b["status"] == 200
        ]
        annotations, kubeconfig = result[cluster_id]
        writer = kubeconfig["preferences"]["extensions"][0]["extension"]["by"]
        assert kubeconfig["preferences"]["extensions"][0]["extension"]["id"] == cluster_id
        # The stored record is exactly one successful write: its annotations and kubeconfig agree.
        if writer.endswith("-update"):
            assert k < 2 and writer[: -len("-update")] in updaters
            assert annotations["displayName"] == f"{cluster_id} updated by {writer[: -len('-update')]}"
        else:
            assert not updaters, (cluster_id, updaters, writer)  # a successful update cannot be lost
            assert writer == add_winners[0]
            assert annotations["displayName"] == f"{cluster_id} by {writer}"
