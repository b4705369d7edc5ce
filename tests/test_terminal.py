"""pod/log and pod/exec over real WebSockets (websocket-client) against gunicorn and a living cluster."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from controlplane.harness import Cluster, wait_for
from tests.conftest import kubeconfig_text
from tests.service import Service, unique


@pytest.fixture(scope="module")
def living_id(service: Service, living1: Cluster) -> str:
    """``living1`` registered with the shared service."""
    cluster_id = unique("term")
    body = service.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig_text(living1)})
    assert body["status"] == 200, body
    return cluster_id


@pytest.fixture(scope="module")
def running_pod(living1: Cluster) -> Iterator[tuple[str, str]]:
    """(namespace, pod): a Pod that kwok runs on one of its Nodes."""
    namespace, pod = unique("term"), "shell"
    ns_body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    status, body = living1.request("POST", "/api/v1/namespaces", ns_body)
    assert status == 201, body
    spec = {"containers": [{"name": "main", "image": "busybox"}, {"name": "sidecar", "image": "busybox"}]}
    pod_body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": spec}
    status, body = living1.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod_body)
    assert status == 201, body

    def running() -> bool:
        _, obj = living1.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}")
        return (obj.get("status") or {}).get("phase") == "Running"

    wait_for(running, 60, "pod running")
    try:
        yield namespace, pod
    finally:
        living1.request("DELETE", f"/api/v1/namespaces/{namespace}")


def ws_url(service: Service, route: str, **query: str) -> str:
    """The WebSocket URL of a route with its query."""
    from urllib.parse import urlencode

    return f"ws://127.0.0.1:{service.port}/api/pod/{route}?{urlencode(query)}"


def connect(service: Service, route: str, token: str | None = None, **query: str) -> websocket.WebSocket:
    """A browser-like connection: the token as the only subprotocol."""
    ws = websocket.WebSocket()
    ws.connect(ws_url(service, route, **query), subprotocols=[token or service.token()], timeout=20)
    return ws


def frames_until_close(ws: websocket.WebSocket, limit: float = 30.0) -> tuple[list[str], int | None, str]:
    """Every text frame until the server closes; (texts, close code, close reason)."""
    texts: list[str] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            ws.shutdown()
            return texts, code, data[2:].decode("utf-8", "replace")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            texts.append(data.decode("utf-8"))
    raise AssertionError(f"no close within {limit} s; got {texts[-5:]}")


def open_sessions(svc: Service) -> dict[str, float]:
    """The service's krm_ws_sessions gauge by kind (0 values left out)."""
    from prometheus_client.parser import text_string_to_metric_families

    resp = svc.call("GET", "/metrics", auth=False)
    assert resp.status_code == 200, resp.text
    return {sample.labels["kind"]: sample.value for family in text_string_to_metric_families(resp.text)
            for sample in family.samples if sample.name == "krm_ws_sessions" and sample.value}  # fmt: skip


def longrunning(cluster: Cluster, subresource: str) -> float:
    """The API server's own count of open long-running requests on pods/<subresource>."""
    import requests

    ca = cluster.dir / "metrics-ca.pem"
    ca.write_bytes(cluster.ca_pem())
    resp = requests.get(cluster.url + "/metrics", headers={"Authorization": f"Bearer {cluster.tokens['admin']}"},
                        verify=str(ca), timeout=10)  # fmt: skip
    total = 0.0
    for line in resp.text.splitlines():
        if line.startswith("apiserver_longrunning_requests{") and 'resource="pods"' in line \
                and f'subresource="{subresource}"' in line:  # fmt: skip
            total += float(line.rsplit(" ", 1)[1])
    return total


def upstream_connections(svc: Service, port: int) -> int:
    """Established TCP connections from the service's worker processes to ``port`` (the kernel's view)."""
    assert svc.process is not None
    master = svc.process.pid
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(entry)
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            parts = line.split()
            if int(parts[2].split(":")[1], 16) == port and parts[3] == "01" and parts[9] in inodes:
                count += 1
    return count


def append_log(cluster: Cluster, text: str) -> None:
    """Make every container of the living cluster print ``text`` (the CRI log file kwok follows)."""
    assert cluster.living is not None
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with cluster.living.log_files[""].open("a") as fh:
        fh.write(f"{now} stdout F {text}\n")


def audit_lines(service: Service, session_kind: str) -> list[dict[str, Any]]:
    """The service's audit lines of pod/<kind> sessions."""
    found = []
    for line in service.log().splitlines():
        if f'"action":"pod/{session_kind}"' in line:
            found.append(json.loads(line))
    return found


# Refusals before the upgrade -------------------------------------------------------------------


def test_get_without_upgrade_is_400(service: Service) -> None:
    """A plain GET answers the envelope 400 需要WebSocket连接."""
    body = service.api("GET", "/api/pod/log", params={"clusterId": "x", "name": "p"})
    assert (body["status"], body["message"]) == (400, "需要WebSocket连接")


def test_bad_token_in_subprotocol_refuses_upgrade(service: Service) -> None:
    """A bad token offered as subprotocol: no upgrade, the 401 envelope."""
    ws = websocket.WebSocket()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        ws.connect(ws_url(service, "exec", clusterId="x", name="p"), subprotocols=["not-a-token"], timeout=10)
    ws.shutdown()
    assert info.value.status_code == 200
    assert json.loads(info.value.resp_body or b"")["status"] == 401


def test_logged_out_null_subprotocol_is_missing_token(service: Service) -> None:
    """The logged-out frontend offers ``null``: 401 请求未携带token."""
    ws = websocket.WebSocket()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        ws.connect(ws_url(service, "log", clusterId="x", name="p"), subprotocols=["null"], timeout=10)
    ws.shutdown()
    assert json.loads(info.value.resp_body or b"") == {
        "status": 401,
        "message": "请求未携带token,请登录后尝试",
        "data": {},
    }


def test_exec_disabled_is_403(make_service: Any) -> None:
    """ENABLE_POD_EXEC=false: the exec upgrade is refused with 403 功能已关闭."""
    svc = make_service(env={"ENABLE_POD_EXEC": "false", "PROBE_ENABLED": "false"})
    ws = websocket.WebSocket()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        ws.connect(ws_url(svc, "exec", clusterId="x", name="p"), subprotocols=[svc.token()], timeout=10)
    ws.shutdown()
    assert json.loads(info.value.resp_body or b"")["status"] == 403
    assert json.loads(info.value.resp_body or b"")["message"] == "功能已关闭"


# Refusals after the upgrade --------------------------------------------------------------------


def test_token_is_echoed_and_unknown_cluster_closes_1008(service: Service) -> None:
    """The validated token is echoed; an unregistered cluster: one text frame, close 1008."""
    token = service.token()
    ws = connect(service, "log", token, clusterId="no-such-cluster", name="p")
    headers = ws.getheaders()
    assert headers is not None and headers["sec-websocket-protocol"] == token  # exact (getsubprotocol() lower-cases)
    texts, code, _ = frames_until_close(ws)
    assert code == 1008
    assert texts and "集群不存在" in texts[0]


def test_missing_cluster_id_closes_1008(service: Service) -> None:
    """A bind error after the upgrade: text frame 请求出错 and 1008."""
    texts, code, _ = frames_until_close(connect(service, "exec", name="p"))
    assert code == 1008 and texts[0].startswith("请求出错")


def test_unknown_pod_and_container_close_1008(service: Service, living_id: str, running_pod: tuple[str, str]) -> None:
    """An unknown Pod or container: the reason in a text frame, close 1008."""
    namespace, pod = running_pod
    texts, code, _ = frames_until_close(connect(service, "log", clusterId=living_id, nameSpace=namespace,
                                                name="nope"))  # fmt: skip
    assert code == 1008 and "Pod不存在" in texts[0]
    texts, code, _ = frames_until_close(connect(service, "exec", clusterId=living_id, nameSpace=namespace,
                                                name=pod, container="nope"))  # fmt: skip
    assert code == 1008 and "容器不存在" in texts[0]


def test_pending_pod_closes_1008(service: Service, living1: Cluster, living_id: str) -> None:
    """A Pod that is not running (unschedulable here): Pod未运行, close 1008."""
    namespace = unique("pend")
    living1.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": namespace}})  # fmt: skip
    try:
        spec = {"nodeSelector": {"no-such-label": "x"}, "containers": [{"name": "main", "image": "busybox"}]}
        pod_body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
        status, body = living1.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod_body)
        assert status == 201, body
        texts, code, _ = frames_until_close(connect(service, "exec", clusterId=living_id, nameSpace=namespace,
                                                    name="p"))  # fmt: skip
        assert code == 1008 and "Pod未运行" in texts[0]
    finally:
        living1.request("DELETE", f"/api/v1/namespaces/{namespace}")


# Log -------------------------------------------------------------------------------------------


def test_log_sends_lines_and_follows(service: Service, living1: Cluster, living_id: str,
                                     running_pod: tuple[str, str]) -> None:  # fmt: skip
    """History lines arrive one per frame, then lines written later; browser close cancels upstream."""
    namespace, pod = running_pod
    ws = connect(service, "log", clusterId=living_id, nameSpace=namespace, name=pod, container="main")
    ws.settimeout(20)
    first = ws.recv()
    assert isinstance(first, str) and "\n" not in first
    wait_for(lambda: longrunning(living1, "log") >= 1, 20, "log stream open on the API server")
    marker = f"follow-{uuid.uuid4().hex[:8]}"
    append_log(living1, marker)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if marker in ws.recv():
            break
    else:
        raise AssertionError("followed line not received")
    ws.close()
    ws.shutdown()
    wait_for(lambda: longrunning(living1, "log") == 0, 20, "upstream log stream closed")
    wait_for(lambda: any(a.get("endReason") == "client closed" for a in audit_lines(service, "log")), 10, "audit end")


def test_log_long_line_split_and_invalid_utf8_replaced(service: Service, living1: Cluster, living_id: str,
                                                       running_pod: tuple[str, str]) -> None:  # fmt: skip
    """A line over 64 KiB comes in pieces; every frame is valid UTF-8."""
    namespace, pod = running_pod
    marker = uuid.uuid4().hex[:8]
    append_log(living1, f"long-{marker}-" + "é" * 40_000)
    ws = connect(service, "log", clusterId=living_id, nameSpace=namespace, name=pod, tailLines="5",
                 follow="false")  # fmt: skip
    texts, code, _ = frames_until_close(ws)
    assert code == 1000
    pieces = [t for t in texts if marker in t or set(t) == {"é"}]
    assert len(pieces) >= 2 and all(len(p.encode()) <= 65536 for p in pieces)


# Exec ------------------------------------------------------------------------------------------


def exec_output(ws: websocket.WebSocket, until: str, limit: float = 20) -> str:
    """Terminal output until ``until`` appears."""
    out = ""
    deadline = time.monotonic() + limit
    ws.settimeout(limit)
    while until not in out:
        if time.monotonic() > deadline:
            raise AssertionError(f"{until!r} not in output {out[-300:]!r}")
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_TEXT:
            out += data.decode()
    return out


def test_exec_round_trip_exit_code(service: Service, living_id: str, running_pod: tuple[str, str]) -> None:
    """echo through the shell, resize accepted, exit 3 ends the session with close 1000 and the code."""
    namespace, pod = running_pod
    ws = connect(service, "exec", clusterId=living_id, nameSpace=namespace, name=pod, defaultComamnd="/bin/sh")
    ws.send(json.dumps({"messageType": "resize", "rows": 40, "cols": 120}))
    ws.send(json.dumps({"messageType": "input", "data": "echo hello-$((6*7))\n"}))
    assert "hello-42" in exec_output(ws, "hello-42")
    ws.send(json.dumps({"messageType": "unknown"}))  # ignored
    ws.send_binary(b"exit 3\n")
    texts, code, reason = frames_until_close(ws)
    assert code == 1000 and "3" in reason, (code, reason, texts[-3:])
    ends = wait_for(lambda: [a for a in audit_lines(service, "exec") if "exitCode" in a], 10, "audit end")
    assert ends[-1]["exitCode"] == 3 and ends[-1]["command"] == "/bin/sh"
    assert all("hello" not in json.dumps(a) for a in audit_lines(service, "exec"))


def test_exec_missing_shell_written_then_closed(service: Service, living_id: str,
                                               running_pod: tuple[str, str]) -> None:  # fmt: skip
    """A command that does not exist: the error in the terminal, then the close."""
    namespace, pod = running_pod
    ws = connect(service, "exec", clusterId=living_id, nameSpace=namespace, name=pod,
                 defaultCommand="/no/such/shell")  # fmt: skip
    texts, code, _ = frames_until_close(ws)
    assert code in (1008, 1011) and texts, (code, texts)
    assert re.search("执行命令失败|no such file|not found", "".join(texts))


def test_exec_browser_close_cancels_upstream(service: Service, living1: Cluster, living_id: str,
                                             running_pod: tuple[str, str]) -> None:  # fmt: skip
    """Closing the browser closes the exec's own connection to the API server at once."""
    namespace, pod = running_pod
    before = upstream_connections(service, living1.port)
    ws = connect(service, "exec", clusterId=living_id, nameSpace=namespace, name=pod, defaultCommand="/bin/sh")
    ws.send(json.dumps({"messageType": "input", "data": "echo ready\n"}))
    exec_output(ws, "ready")
    during = wait_for(lambda: upstream_connections(service, living1.port) >= before + 1 and
                      upstream_connections(service, living1.port), 20, "exec connection open")  # fmt: skip
    ws.close()
    ws.shutdown()
    wait_for(lambda: upstream_connections(service, living1.port) <= during - 1, 20, "exec connection closed")
    wait_for(lambda: any(a.get("endReason") == "client closed" for a in audit_lines(service, "exec")), 10, "audit")


def test_session_limit_closes_1013(make_service: Any, living1: Cluster, running_pod: tuple[str, str]) -> None:
    """WS_MAX_SESSIONS=1 in one worker: a second session gets the error frame and close 1013."""
    svc = make_service(env={"WS_MAX_SESSIONS": "1", "PROBE_ENABLED": "false"}, workers=1)
    cluster_id = unique("lim")
    added = svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig_text(living1)})
    assert added["status"] == 200, added
    namespace, pod = running_pod
    held = connect(svc, "exec", clusterId=cluster_id, nameSpace=namespace, name=pod, defaultCommand="/bin/sh")
    held.send(json.dumps({"messageType": "input", "data": "echo held\n"}))
    exec_output(held, "held")
    texts, code, _ = frames_until_close(connect(svc, "log", clusterId=cluster_id, nameSpace=namespace, name=pod))
    assert code == 1013 and "会话数已达上限" in texts[0]
    # Ordinary requests still have their threads.
    assert svc.api("GET", "/api/cluster/list")["status"] == 200
    assert open_sessions(svc) == {"exec": 1.0}
    held.close()
    held.shutdown()
    # The browser close ends the session: the process's count returns to 0.
    wait_for(lambda: sum(open_sessions(svc).values()) == 0, 20, "session count back to 0")


def test_shutdown_closes_sessions_1001(make_service: Any, living1: Cluster, running_pod: tuple[str, str]) -> None:
    """SIGTERM: open sessions get close 1001 and the worker exits inside the grace period."""
    svc = make_service(env={"PROBE_ENABLED": "false", "GUNICORN_GRACEFUL_TIMEOUT": "20"}, workers=1)
    cluster_id = unique("stop")
    added = svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig_text(living1)})
    assert added["status"] == 200, added
    namespace, pod = running_pod
    ws = connect(svc, "exec", clusterId=cluster_id, nameSpace=namespace, name=pod, defaultCommand="/bin/sh")
    ws.send(json.dumps({"messageType": "input", "data": "echo up\n"}))
    exec_output(ws, "up")
    assert svc.process is not None
    started = time.monotonic()
    svc.process.terminate()
    _, code, _ = frames_until_close(ws)
    assert code == 1001
    # Inside the grace period (20 s) plus a margin for a busy machine; the sessions end at once.
    svc.process.wait(30)
    assert time.monotonic() - started < 25


def test_idle_and_max_duration_end_sessions(make_service: Any, living1: Cluster, running_pod: tuple[str, str]) -> None:
    """EXEC_IDLE_SECONDS ends an exec without input; LOG_MAX_SECONDS ends a log follow; both close 1000."""
    svc = make_service(env={"EXEC_IDLE_SECONDS": "2", "LOG_MAX_SECONDS": "2", "PROBE_ENABLED": "false"}, workers=1)
    cluster_id = unique("idle")
    added = svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig_text(living1)})
    assert added["status"] == 200, added
    namespace, pod = running_pod
    texts, code, reason = frames_until_close(connect(svc, "exec", clusterId=cluster_id, nameSpace=namespace,
                                                     name=pod, defaultCommand="/bin/sh"))  # fmt: skip
    assert (code, reason) == (1000, "idle timeout") and "会话空闲超时" in "".join(texts)
    texts, code, reason = frames_until_close(connect(svc, "log", clusterId=cluster_id, nameSpace=namespace, name=pod))
    assert (code, reason) == (1000, "max duration") and texts[-1] == "日志跟踪时长已达上限"

    # The end line is written after the close goes out (once the pump has stopped): poll for it.
    def ends() -> set[str]:
        return {a.get("endReason", "") for a in audit_lines(svc, "exec") + audit_lines(svc, "log")}

    wait_for(lambda: {"idle timeout", "max duration"} <= ends(), 20, "both end lines")


def test_log_without_history_waits_for_the_first_line(service: Service, living1: Cluster, living_id: str,
                                                      running_pod: tuple[str, str]) -> None:  # fmt: skip
    """tailLines=0: nothing to send yet (the API server may hold its headers), then the next line arrives."""
    namespace, pod = running_pod
    ws = connect(service, "log", clusterId=living_id, nameSpace=namespace, name=pod, tailLines="0")
    wait_for(lambda: longrunning(living1, "log") >= 1, 20, "log stream open on the API server")
    # Longer than the connect timeout: the wait for the first line must neither time out nor close.
    quiet_until = time.monotonic() + 3
    ws.settimeout(0.5)
    while time.monotonic() < quiet_until:
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            opcode, _ = ws.recv_data(control_frame=True)
            assert opcode != websocket.ABNF.OPCODE_CLOSE, "closed while waiting for the first line"
    marker = f"late-{uuid.uuid4().hex[:8]}"
    append_log(living1, marker)
    ws.settimeout(20)
    assert marker in ws.recv()
    ws.close()
    ws.shutdown()
