"""Living target clusters: workloads roll out on kwok's Nodes, logs and exec go through the API server.

Everything runs against the real processes (kube-apiserver, kube-controller-manager, kube-scheduler,
kwok); waits poll with generous bounds because two shared cores make every step's latency vary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s_client
from kubernetes.config import kube_config
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from controlplane.harness import NODE_MONITOR_GRACE_PERIOD, Cluster, wait_for
from tests.service import unique

ROLLOUT = 90.0  # seconds: create -> schedule -> Running for a few pods, with room for a busy machine


def _api_client(cluster: Cluster, tmp: Path) -> k8s_client.ApiClient:
    """An ApiClient of its own for one cluster (stream() swaps call_api on the instance it is given)."""
    configuration = k8s_client.Configuration()
    kube_config.load_kube_config_from_dict(
        cluster.kubeconfig("admin"), client_configuration=configuration, persist_config=False, temp_file_path=str(tmp)
    )
    return k8s_client.ApiClient(configuration)


@pytest.fixture
def core(living1: Cluster, tmp_path: Path) -> Iterator[k8s_client.CoreV1Api]:
    """CoreV1Api on a dedicated client for living1."""
    api = _api_client(living1, tmp_path)
    try:
        yield k8s_client.CoreV1Api(api)
    finally:
        api.close()


@pytest.fixture
def namespace(living1: Cluster) -> Iterator[str]:
    """A fresh namespace in living1, deleted afterwards (the namespace controller finalises it)."""
    name = unique("live")
    status, body = living1.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    try:
        yield name
    finally:
        living1.request("DELETE", f"/api/v1/namespaces/{name}")


def _deployment(name: str, replicas: int, containers: tuple[str, ...] = ("app",)) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": c, "image": "registry.invalid/demo:1"} for c in containers]},
            },
        },
    }


def _pods(cluster: Cluster, ns: str, app: str) -> list[dict]:
    status, body = cluster.request("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=app%3D{app}")
    assert status == 200, body
    return body["items"]


def _running(cluster: Cluster, ns: str, app: str, count: int) -> list[dict] | None:
    """The pods of ``app`` when exactly ``count`` exist, none terminating, all Running on kwok Nodes."""
    pods = _pods(cluster, ns, app)
    assert cluster.living is not None
    if len(pods) != count or any(p["metadata"].get("deletionTimestamp") for p in pods):
        return None
    if all(p["status"].get("phase") == "Running" and p["spec"].get("nodeName") in cluster.living.nodes for p in pods):
        return pods
    return None


def _replicasets(cluster: Cluster, ns: str, app: str) -> list[dict]:
    status, body = cluster.request("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=app%3D{app}")
    assert status == 200, body
    return body["items"]


def _create_deployment(cluster: Cluster, ns: str, name: str, replicas: int, **kwargs) -> list[dict]:
    status, body = cluster.request(
        "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", _deployment(name, replicas, **kwargs)
    )
    assert status == 201, body
    pods = wait_for(lambda: _running(cluster, ns, name, replicas), ROLLOUT, f"{replicas} pods of {name} Running")
    assert pods is not None  # wait_for returns the first truthy answer
    return pods


def _patch(cluster: Cluster, path: str, patch: dict) -> None:
    """A merge PATCH that must succeed."""
    status, body = cluster.request("PATCH", path, patch, content_type="application/merge-patch+json")
    assert status == 200, body


def _last_log_text(path: Path) -> str:
    """The text of the last CRI log line in a file (after time, stream and tag)."""
    return path.read_text().splitlines()[-1].split(" ", 3)[3]


def _read_log(core: k8s_client.CoreV1Api, name: str, namespace: str, **params) -> str:
    """A pod log as text (client 36 turns the deserialised body into ``str(bytes)``: read the raw body)."""
    resp = core.read_namespaced_pod_log(name, namespace, _preload_content=False, _request_timeout=30, **params)
    return resp.data.decode()


def test_living_cluster_has_ready_simulated_nodes_and_healthy_components(living1: Cluster) -> None:
    assert living1.living is not None
    assert living1.living_ready()
    ready = living1.nodes_ready()
    assert set(living1.living.nodes) <= set(ready)
    status, node = living1.request("GET", f"/api/v1/nodes/{living1.living.nodes[0]}")
    assert status == 200
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == "127.0.0.1"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == living1.living.kwok_port


@pytest.mark.timeout(240)
def test_deployment_rolls_out_and_a_restart_rolls_a_new_replicaset(living1: Cluster, namespace: str) -> None:
    pods = _create_deployment(living1, namespace, "web", 2)
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in pods} == {"ReplicaSet"}
    (first,) = _replicasets(living1, namespace, "web")
    _patch(
        living1,
        f"/apis/apps/v1/namespaces/{namespace}/deployments/web",
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": unique("now")}}}}},
    )

    def rolled() -> bool:
        sets = _replicasets(living1, namespace, "web")
        new = [rs for rs in sets if rs["metadata"]["uid"] != first["metadata"]["uid"]]
        old = [rs for rs in sets if rs["metadata"]["uid"] == first["metadata"]["uid"]]
        if len(new) != 1 or not old or old[0]["spec"]["replicas"] != 0:
            return False
        running = _running(living1, namespace, "web", 2)
        owner = new[0]["metadata"]["name"]
        return bool(running) and all(p["metadata"]["ownerReferences"][0]["name"] == owner for p in running or [])

    wait_for(rolled, ROLLOUT, "a new ReplicaSet owns both Running pods, the old one is scaled to 0")
    status, deployment = living1.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert status == 200
    assert deployment["status"].get("updatedReplicas") == 2
    assert deployment["status"].get("availableReplicas") == 2


@pytest.mark.timeout(240)
def test_scaled_down_deployment_loses_pods(living1: Cluster, namespace: str) -> None:
    _create_deployment(living1, namespace, "scale", 3)
    _patch(living1, f"/apis/apps/v1/namespaces/{namespace}/deployments/scale", {"spec": {"replicas": 1}})
    # kwok's pod-delete stage finishes the deletion a kubelet would: the pods are gone, not Terminating.
    wait_for(lambda: len(_pods(living1, namespace, "scale")) == 1, ROLLOUT, "scaled down to one pod")


@pytest.mark.timeout(240)
def test_deleted_namespace_is_finalised(living1: Cluster) -> None:
    name = unique("gone")
    assert living1.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    _create_deployment(living1, name, "doomed", 1)
    configmap = {"metadata": {"name": "cm"}, "data": {"k": "v"}}
    assert living1.request("POST", f"/api/v1/namespaces/{name}/configmaps", configmap)[0] == 201
    assert living1.request("DELETE", f"/api/v1/namespaces/{name}")[0] == 200
    wait_for(lambda: living1.request("GET", f"/api/v1/namespaces/{name}")[0] == 404, ROLLOUT, "namespace gone")


@pytest.mark.timeout(240)
def test_pod_log_with_tail_lines_and_container_through_the_api_server(
    living1: Cluster, namespace: str, core: k8s_client.CoreV1Api
) -> None:
    (pod,) = _create_deployment(living1, namespace, "logs", 1, containers=("app", "sidecar"))
    name = pod["metadata"]["name"]
    assert living1.living is not None
    last = _read_log(core, name, namespace, container="app", tail_lines=1)
    assert last == _last_log_text(living1.living.log_files[""]) + "\n"
    sidecar = _read_log(core, name, namespace, container="sidecar")
    assert sidecar.splitlines() == [
        f"[sidecar] living cluster {living1.name}: container started",
        "[sidecar] serving on :8080",
    ]


@pytest.mark.timeout(240)
def test_pod_log_follow_streams_a_line_written_later(
    living1: Cluster, namespace: str, core: k8s_client.CoreV1Api
) -> None:
    assert living1.living is not None
    (pod,) = _create_deployment(living1, namespace, "follow", 1)
    resp = core.read_namespaced_pod_log(
        # tailLines=1, not 0: the answer's headers travel with the first line, so with nothing to send
        # the call would not return before the line it waits for is written.
        pod["metadata"]["name"], namespace, container="app", follow=True, tail_lines=1,
        _preload_content=False, _request_timeout=(10, 60),
    )  # fmt: skip
    try:
        marker = unique("followed")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        with living1.living.log_files[""].open("a") as log:
            log.write(f"{stamp} stdout F {marker}\n")
        seen = b""
        for chunk in resp.stream(64):
            seen += chunk
            if marker.encode() in seen:
                break
        assert f"{marker}\n".encode() in seen
    finally:
        resp.release_conn()


@pytest.mark.timeout(240)
def test_exec_round_trip_over_websocket(living1: Cluster, namespace: str, tmp_path: Path) -> None:
    assert living1.living is not None
    (pod,) = _create_deployment(living1, namespace, "exec", 1)
    name = pod["metadata"]["name"]
    api = _api_client(living1, tmp_path)  # stream() patches the client it is given: never share it
    try:
        core = k8s_client.CoreV1Api(api)
        out = stream(
            core.connect_get_namespaced_pod_exec, name, namespace, container="app",
            command=["sh", "-c", "echo hello from $KRM_LIVING_CLUSTER; pwd"],
            stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False,
        )  # fmt: skip
        out.run_forever(timeout=60)
        assert out.read_stdout() == f"hello from {living1.name}\n{living1.living.exec_dir}\n"
        assert out.returncode == 0
        out.close()

        failing = stream(
            core.connect_get_namespaced_pod_exec, name, namespace, command=["sh", "-c", "echo on-stderr >&2; exit 3"],
            stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False,
        )  # fmt: skip
        failing.run_forever(timeout=60)
        assert failing.read_stderr() == "on-stderr\n"
        # kwok v0.8.0 reports a failed command as a Failure status naming the exit status, without the
        # ExitCode cause a kubelet adds (so the client's ``returncode`` cannot parse it): read it raw.
        error = json.loads(failing.read_channel(ERROR_CHANNEL))
        assert error["status"] == "Failure"
        assert "exit status 3" in error["message"]
        failing.close()
    finally:
        api.close()


@pytest.mark.timeout(240)
def test_exec_with_stdin_and_tty_round_trip(living1: Cluster, namespace: str, tmp_path: Path) -> None:
    (pod,) = _create_deployment(living1, namespace, "tty", 1)
    api = _api_client(living1, tmp_path)
    try:
        session = stream(
            k8s_client.CoreV1Api(api).connect_get_namespaced_pod_exec, pod["metadata"]["name"], namespace,
            command=["sh"], stdin=True, stdout=True, stderr=True, tty=True, _preload_content=False,
        )  # fmt: skip
        marker = unique("typed")
        session.write_stdin(f"echo {marker}-$((6*7))\n")
        seen = ""

        def echoed() -> bool:
            nonlocal seen
            session.update(timeout=1)
            seen += session.read_stdout(timeout=0) or ""
            return f"{marker}-42" in seen

        wait_for(echoed, 60, "the shell's answer through the TTY", interval=0)
        session.write_stdin("exit 0\n")
        wait_for(lambda: (session.update(timeout=1), not session.is_open())[1], 60, "the session closes", interval=0)
        assert session.returncode == 0
        session.close()  # the socket of an ended session stays open until closed (ResourceWarning)
    finally:
        api.close()


@pytest.mark.timeout(240)
def test_stopped_kwok_turns_nodes_not_ready_and_back_ready_after_start(living2: Cluster) -> None:
    assert living2.living is not None
    assert all(living2.nodes_ready()[n] for n in living2.living.nodes)
    kwok = living2.part("kwok")
    kwok.stop()
    stopped = time.monotonic()
    try:
        wait_for(
            lambda: not any(living2.nodes_ready()[n] for n in living2.living.nodes),  # type: ignore[union-attr]
            NODE_MONITOR_GRACE_PERIOD + 60, "every node NotReady after kwok stopped",
        )  # fmt: skip
        not_ready_after = time.monotonic() - stopped
        # The node lifecycle controller notices a Lease older than the grace period; allow its monitor
        # period and a busy machine on top, but it must not take the default 40-50 s.
        assert not_ready_after < NODE_MONITOR_GRACE_PERIOD + 20, not_ready_after
        print(f"nodes NotReady {not_ready_after:.1f} s after kwok stopped")
    finally:
        kwok.start()
    wait_for(living2.living_ready, 90, "nodes Ready again after kwok started")


@pytest.mark.timeout(240)
def test_frozen_scheduler_leaves_new_pods_pending_until_thawed(living2: Cluster) -> None:
    ns = unique("frozen")
    assert living2.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    scheduler = living2.part("kube-scheduler")
    scheduler.freeze()
    try:
        status, body = living2.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", _deployment("wait", 1))
        assert status == 201, body
        wait_for(lambda: len(_pods(living2, ns, "wait")) == 1, ROLLOUT, "the ReplicaSet created its pod")
        (pod,) = _pods(living2, ns, "wait")
        assert not pod["spec"].get("nodeName")  # nobody scheduled it
    finally:
        scheduler.thaw()
    wait_for(lambda: _running(living2, ns, "wait", 1), ROLLOUT, "the pod runs once the scheduler is back")
    living2.request("DELETE", f"/api/v1/namespaces/{ns}")
