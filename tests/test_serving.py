"""gunicorn as production runs it: settings from the environment, graceful shutdown, JSON access log."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path

import requests

from controlplane.harness import Blackhole, Cluster
from tests.conftest import kubeconfig_text
from tests.service import Service, unique


def worker_pids(svc: Service) -> list[int]:
    """The gunicorn workers: the children of the master process."""
    assert svc.process is not None
    pid = svc.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def json_lines(text: str) -> list[dict]:
    """Every line of a log, parsed; fails on a line that is not JSON."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_workers_come_from_the_environment(service: Service) -> None:
    assert len(worker_pids(service)) == 2  # GUNICORN_WORKERS=2 in the fixture


def test_access_log_is_a_json_line_per_request(service: Service) -> None:
    marker = uuid.uuid4().hex
    assert service.call("GET", f"/healthz?marker={marker}", auth=False).status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and marker not in service.log():
        time.sleep(0.05)
    (line,) = [entry for entry in json_lines(service.log()) if marker in entry["msg"]]
    assert line["level"] == "info"
    assert time.strptime(line["time"], "%Y-%m-%d %H:%M:%S")
    assert f"GET /healthz?marker={marker} HTTP/1.1" in line["msg"]
    assert line["logger"] == "gunicorn.access"
    assert line["method"] == "GET" and line["path"] == "/healthz" and line["status"] == 200
    assert isinstance(line["durationMs"], int | float)


def test_sigterm_lets_an_in_flight_request_finish(make_service, target1: Cluster) -> None:
    svc = make_service(env={"CLUSTER_CONNECT_TIMEOUT": "3", "CLUSTER_READ_TIMEOUT": "3", "CLUSTER_DEADLINE": "3",
                            "GUNICORN_GRACEFUL_TIMEOUT": "15"})  # fmt: skip
    token = svc.token()
    hole = Blackhole()  # accepts and never answers: the add below waits for its timeout, ~3 s
    answers: list[requests.Response] = []
    body = {"id": unique("slow"), "kubeconfig": kubeconfig_text(target1, server=hole.url)}
    request = threading.Thread(
        target=lambda: answers.append(svc.call("POST", "/api/cluster/add", token=token, json=body, timeout=30))
    )
    try:
        request.start()
        deadline = time.monotonic() + 10
        while not hole.accepted and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hole.accepted, "the add request should be waiting on the hanging cluster"
        assert svc.process is not None
        svc.process.terminate()  # SIGTERM to the master, as the kubelet sends it
        stopped = time.monotonic()
        request.join(30)
        answered = time.monotonic()
        assert svc.process.wait(30) == 0
    finally:
        hole.close()
    (answer,) = answers
    assert answer.status_code == 200
    assert answer.json()["status"] == 400 and answer.json()["message"].startswith("无法获取集群信息")
    assert answered - stopped > 1.0, "the answer came after SIGTERM: the request was in flight"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", svc.port)) != 0, "a stopped service accepts no connection"
    log = svc.log()
    entries = json_lines(log)  # every line, gunicorn's own included, is JSON
    assert any(e["msg"] == "Handling signal: term" for e in entries)
    assert any(e.get("path") == "/api/cluster/add" and e.get("status") == 200 for e in entries)
