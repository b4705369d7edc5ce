"""Faults while the service runs: the metadata API server stops or freezes, a target hangs or dies and returns.

The metadata cluster of these tests is ``target2`` (never the shared ``meta``); whatever is stopped is
started again in a ``finally``. Time bounds are generous "no hang" bounds, not speed claims.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from controlplane.harness import Blackhole, Cluster
from tests.conftest import kubeconfig_text
from tests.service import Service, unique

NO_HANG = 8.0  # seconds: metadata connect 1 s + read 3 s, plus two busy cores
DOWN = "元数据集群不可用"


def timed(call: Callable[[], dict]) -> tuple[float, dict]:
    """(seconds, result) of one call."""
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def add(svc: Service, cluster_id: str, kubeconfig: str, **fields: Any) -> dict:
    """POST /api/cluster/add."""
    return svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig, **fields})


def snapshot(svc: Service, ids: list[str]) -> dict[str, dict]:
    """What ``get`` says of each id (the fields a user wrote, and the kubeconfig)."""
    result = {}
    for cluster_id in ids:
        body = svc.api("GET", f"/api/cluster/get?id={cluster_id}")
        assert body["status"] == 200, body
        item = body["data"]["item"]
        result[cluster_id] = {k: item[k] for k in ("id", "displayName", "city", "district", "kubeconfig")}
    return result


def wait_list_ok(svc: Service, bound: float = 30.0) -> float:
    """Poll list until it answers 200; seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if svc.api("GET", "/api/cluster/list")["status"] == 200:
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"list not back after {bound} s")


class Load:
    """Threads sending a mix of requests until stopped; every answer is recorded with its duration."""

    def __init__(self, svc: Service, fields: dict[str, dict], kubeconfig: str, threads: int = 4) -> None:
        """Prepare ``threads`` loops over list, get, add, update (rewriting ``fields`` as they are) and delete."""
        self.svc = svc
        self.fields = fields
        self.ids = list(fields)
        self.kubeconfig = kubeconfig
        self.results: list[tuple[str, float, int, dict]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)]

    def _loop(self, index: int) -> None:
        """One thread's requests."""
        token = self.svc.token()
        n = 0
        while not self._stop.is_set():
            n += 1
            op = ("list", "get", "add", "update", "delete")[(index + n) % 5]
            target = self.ids[n % len(self.ids)]
            request = {
                "list": ("GET", "/api/cluster/list", None),
                "get": ("GET", f"/api/cluster/get?id={target}", None),
                "add": ("POST", "/api/cluster/add", {"id": unique("load"), "kubeconfig": self.kubeconfig}),
                "update": ("POST", "/api/cluster/update", {"id": target, **self.fields[target]}),
                "delete": ("GET", f"/api/cluster/delete?id={unique('absent')}", None),
            }[op]
            started = time.monotonic()
            try:
                resp = self.svc.session.request(request[0], self.svc.url + request[1], json=request[2],
                                                headers={"Authorization": token}, timeout=30)  # fmt: skip
                self.results.append((op, time.monotonic() - started, resp.status_code, resp.json()))
            except Exception as exc:  # recorded, then asserted on: a hang or a broken answer fails the test
                self.errors.append(exc)

    def __enter__(self) -> Load:
        """Start the threads."""
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop and join the threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(40)


def check_answers(load: Load, allowed_statuses: set[int]) -> None:
    """Every answer came in time, as an envelope, with an allowed status (and a clear message when down)."""
    assert not load.errors, load.errors[:3]
    assert load.results
    for op, elapsed, http_status, body in load.results:
        assert http_status == 200, (op, body)
        assert list(body) == ["status", "message", "data"], (op, body)
        assert elapsed < NO_HANG, (op, elapsed, body)
        assert body["status"] in allowed_statuses, (op, body)
        if body["status"] == 503:
            assert DOWN in body["message"], (op, body)


@pytest.mark.timeout(240)
def test_metadata_outage_while_requests_run_then_recovery_with_every_registration(
    make_service, target1: Cluster, target2: Cluster
) -> None:
    svc = make_service(cluster=target2, workers=2)
    kubeconfig = kubeconfig_text(target1)
    fields = {unique("keep"): {"displayName": f"集群 {i}", "city": "北京"} for i in range(3)}
    ids = list(fields)
    for cluster_id, values in fields.items():
        assert add(svc, cluster_id, kubeconfig, **values)["status"] == 200
    before = snapshot(svc, ids)
    spare_token = svc.login()["data"]["token"]
    with Load(svc, fields, kubeconfig) as load:
        time.sleep(1.0)
        target2.stop()
        try:
            time.sleep(2.0)  # let the load run against the dead server
            status = svc.call("GET", "/readyz", auth=False)
            assert status.status_code == 503
            assert "metadata cluster" in status.json()["reason"]
            for path, body, prefix in [
                ("/api/cluster/add", {"id": unique("new"), "kubeconfig": kubeconfig}, "添加集群失败"),
                ("/api/cluster/update", {"id": ids[0], "displayName": "x"}, "更新集群失败"),
            ]:
                elapsed, answer = timed(functools.partial(svc.api, "POST", path, json=body))
                assert elapsed < NO_HANG
                assert answer["status"] == 503
                assert answer["message"].startswith(f"{prefix}: {DOWN}"), answer
            elapsed, answer = timed(lambda: svc.api("GET", f"/api/cluster/delete?id={ids[0]}"))
            assert elapsed < NO_HANG and answer["status"] == 503
            assert answer["message"].startswith(f"集群删除失败: {DOWN}")
            # Logout cannot be recorded for the other processes: said so, not pretended.
            answer = svc.api("GET", "/api/auth/logout", token=spare_token)
            assert answer["status"] == 503 and answer["message"].startswith(f"退出失败: {DOWN}")
            time.sleep(1.0)
        finally:
            target2.start()
        took = wait_list_ok(svc)
        time.sleep(1.0)  # some answers after the recovery too
    check_answers(load, {200, 400, 503})
    outage = [r for r in load.results if r[3]["status"] == 503]
    assert outage, "no request ran during the outage"
    assert took < 30
    assert svc.call("GET", "/readyz", auth=False).status_code == 200
    assert snapshot(svc, ids) == before  # every registration intact, nothing half-written
    assert add(svc, unique("after"), kubeconfig)["status"] == 200
    assert svc.api("GET", "/api/auth/logout", token=spare_token)["status"] == 200  # recorded now
    assert "Traceback" not in svc.log()


@pytest.mark.timeout(180)
def test_frozen_metadata_server_answers_within_the_timeout_then_recovers(
    make_service, target1: Cluster, target2: Cluster
) -> None:
    svc = make_service(cluster=target2, workers=1)
    cluster_id = unique("frozen")
    assert add(svc, cluster_id, kubeconfig_text(target1))["status"] == 200
    before = snapshot(svc, [cluster_id])
    process = target2.process.popen
    assert process is not None
    process.send_signal(signal.SIGSTOP)  # accepts connections (the kernel does), never answers
    try:
        # get answers the copy the (still open) watch last showed, as list does: no call to make.
        elapsed, current = timed(lambda: snapshot(svc, [cluster_id]))
        assert elapsed < NO_HANG and current == before
        elapsed, answer = timed(lambda: svc.api("GET", f"/api/cluster/delete?id={cluster_id}"))
        assert elapsed < NO_HANG, elapsed
        assert answer["status"] == 503, answer
        assert DOWN in answer["message"]
        elapsed, answer = timed(lambda: svc.api("POST", "/api/cluster/add", json={
            "id": unique("frozen"), "kubeconfig": kubeconfig_text(target1)}))  # fmt: skip
        assert elapsed < NO_HANG and answer["status"] == 503
        started = time.monotonic()
        assert svc.call("GET", "/readyz", auth=False).status_code == 503
        assert time.monotonic() - started < NO_HANG
    finally:
        process.send_signal(signal.SIGCONT)
    wait_list_ok(svc)
    assert snapshot(svc, [cluster_id]) == before
    assert svc.call("GET", "/readyz", auth=False).status_code == 200


@pytest.mark.timeout(120)
def test_hanging_target_does_not_block_other_requests(make_service, target1: Cluster) -> None:
    hang = 5.0  # connect and read bounds for targets on this service: each add below hangs this long
    svc = make_service(workers=1, env={"CLUSTER_CONNECT_TIMEOUT": str(hang), "CLUSTER_READ_TIMEOUT": str(hang),
                                       "CLUSTER_DEADLINE": str(hang)})  # fmt: skip
    known = unique("known")
    assert add(svc, known, kubeconfig_text(target1))["status"] == 200
    hole = Blackhole()
    hanging: list[tuple[float, dict]] = []
    try:
        threads = [
            threading.Thread(
                target=lambda: hanging.append(
                    timed(lambda: add(svc, unique("hang"), kubeconfig_text(target1, server=hole.url)))
                )
            )
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # the adds are now waiting on the blackhole
        others = []
        for _ in range(5):
            others.append(timed(lambda: svc.api("GET", "/api/cluster/list")))
            others.append(timed(lambda: svc.api("GET", f"/api/cluster/get?id={known}")))
        for thread in threads:
            thread.join(30)
    finally:
        hole.close()
    assert len(hanging) == 3
    for elapsed, answer in hanging:
        assert answer["status"] == 400 and answer["message"].startswith("无法获取集群信息: ")
        assert elapsed >= hang - 1.0  # they really hung
    assert hole.accepted, "the blackhole was never contacted"
    for elapsed, answer in others:
        assert answer["status"] == 200
        assert elapsed < hang / 2, elapsed  # answered while the adds were hanging, not after them


@pytest.mark.timeout(120)
def test_dead_target_then_returned_can_be_added_again(service: Service, target2: Cluster) -> None:
    registered, later = unique("dies"), unique("returns")
    assert add(service, registered, kubeconfig_text(target2), displayName="before")["status"] == 200
    target2.stop()
    try:
        elapsed, answer = timed(lambda: add(service, later, kubeconfig_text(target2)))
        assert elapsed < NO_HANG
        assert answer["status"] == 400
        assert answer["message"].startswith("无法获取集群信息: connection refused")
        # The registry keeps working for a cluster that is down.
        item = service.api("GET", f"/api/cluster/get?id={registered}")["data"]["item"]
        assert item["displayName"] == "before"
        ids = [i["id"] for i in service.api("GET", "/api/cluster/list")["data"]["items"]]
        assert registered in ids
        answer = service.api("POST", "/api/cluster/update", json={"id": registered, "displayName": "during"})
        assert answer["status"] == 400  # the stored kubeconfig is probed and refused
        assert service.api("GET", f"/api/cluster/get?id={registered}")["data"]["item"]["displayName"] == "before"
    finally:
        target2.start()
    assert add(service, later, kubeconfig_text(target2))["status"] == 200
    answer = service.api("POST", "/api/cluster/update", json={"id": registered, "displayName": "after"})
    assert answer["status"] == 200
    assert service.api("GET", f"/api/cluster/delete?id={registered}")["status"] == 200
