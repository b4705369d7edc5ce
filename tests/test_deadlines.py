"""Wall-clock deadlines: every call to a registered cluster ends by its deadline, whatever the server does.

Socket timeouts bound each wait for a byte; a server that drips bytes (``controlplane.harness.Dripper``,
each byte its own TLS record, faster than the read timeout) or an exec plugin that hangs never trips
them. Bounds below are generous "cut off, not hanging" bounds, not speed claims.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controlplane.harness import Blackhole, Cluster, Dripper, free_port, make_kubeconfig
from tests.conftest import kubeconfig_text
from tests.service import Service, unique
from utils import kube
from utils.leader import LeaderElector, lease_path

SOCKET = (1.0, 3.0)  # connect, read: the read timeout is far longer than the drip interval
CUT_OFF = 2.5  # seconds: a 1 s deadline plus two busy cores


def drip_kubeconfig(dripper: Dripper) -> dict:
    """A kubeconfig for the dripping server (it never looks at the token)."""
    return make_kubeconfig("dripper", dripper.url, dripper.ca_pem(), {"token": "drip"})


def exec_kubeconfig(server: str, command: str, args: list[str]) -> dict:
    """A kubeconfig whose credentials come from an exec plugin."""
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": command, "args": args}}
    return make_kubeconfig("exec", server, None, user)


@pytest.fixture(params=["headers", "body"])
def dripper(request: pytest.FixtureRequest) -> Iterator[Dripper]:
    """A server that drips its status line and headers, or its body, a byte every 0.25 s."""
    server = Dripper(phase=request.param, interval=0.25)
    try:
        yield server
    finally:
        server.close()


def elapsed_of(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    """(seconds, the exception raised or None)."""
    started = time.monotonic()
    try:
        call()
    except BaseException as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def sleeping(marker: str) -> list[int]:
    """Pids of processes whose command line contains ``marker``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                pids.append(int(entry))
    return pids


# The client, against real sockets ----------------------------------------------------------------------


def test_a_dripping_server_is_cut_off_at_the_call_deadline(dripper: Dripper) -> None:
    with kube.KubeClient.from_kubeconfig(drip_kubeconfig(dripper), SOCKET) as client:
        took, error = elapsed_of(lambda: client.request("GET", "/version", deadline=kube.deadline_in(1.0)))
    assert isinstance(error, kube.Timeout), error
    assert "deadline" in str(error)
    assert took < CUT_OFF
    assert dripper.sent >= 2  # it really was answering, one byte at a time


def test_every_call_has_a_deadline_even_when_none_is_given(dripper: Dripper) -> None:
    with kube.KubeClient.from_kubeconfig(drip_kubeconfig(dripper), (0.5, 1.0)) as client:  # total 1.5 s
        took, error = elapsed_of(lambda: client.version())
    assert isinstance(error, kube.Timeout), error
    assert took < CUT_OFF + 0.5


def test_a_client_deadline_bounds_all_its_calls_together(dripper: Dripper) -> None:
    deadline = kube.deadline_in(1.0)
    with kube.KubeClient.from_kubeconfig(drip_kubeconfig(dripper), SOCKET, deadline=deadline) as client:
        took, error = elapsed_of(lambda: client.request("GET", "/version"))
        assert isinstance(error, kube.Timeout), error
        took_again, error = elapsed_of(lambda: client.request("GET", "/readyz"))
    assert isinstance(error, kube.Timeout) and "before the call" in str(error)
    assert took < CUT_OFF and took_again < 0.5


def test_a_hanging_exec_plugin_is_killed_at_the_deadline() -> None:
    marker = f"{time.time_ns() % 1000}.123"  # a unique argument, to find the process
    kubeconfig = exec_kubeconfig("https://127.0.0.1:1", "sleep", [marker])
    took, error = elapsed_of(
        lambda: kube.KubeClient.from_kubeconfig(kubeconfig, SOCKET, deadline=kube.deadline_in(1.0))
    )
    assert isinstance(error, kube.Timeout) and "exec plugin 'sleep'" in str(error), error
    assert took < CUT_OFF
    assert sleeping(marker) == []  # killed, not left behind


def test_client_builds_run_in_parallel() -> None:
    """No process-wide lock around building clients: eight plugins of 0.6 s each take about 0.6 s together."""
    credential = '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}}'
    script = f"sleep 0.6; echo '{credential}'"
    kubeconfig = exec_kubeconfig("https://127.0.0.1:1", "sh", ["-c", script])
    clients: list[kube.KubeClient] = []
    threads = [threading.Thread(target=lambda: clients.append(kube.KubeClient.from_kubeconfig(kubeconfig, SOCKET)))
               for _ in range(8)]  # fmt: skip
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    took = time.monotonic() - started
    for client in clients:
        client.close()
    assert len(clients) == 8
    assert took < 8 * 0.6 * 0.75, took  # serialised they would need 4.8 s


# Over HTTP: add and update answer inside the frontend's budget --------------------------------------------


def unreachable_servers() -> dict[str, Callable[[], tuple[str, bytes | None, Callable[[], None]]]]:
    """Kinds of dead clusters: (server URL, CA, close)."""

    def drip(phase: str) -> Callable[[], tuple[str, bytes | None, Callable[[], None]]]:
        def make() -> tuple[str, bytes | None, Callable[[], None]]:
            server = Dripper(phase=phase, interval=0.25)
            return server.url, server.ca_pem(), server.close

        return make

    def hole() -> tuple[str, bytes | None, Callable[[], None]]:
        server = Blackhole()
        return server.url, None, server.close

    def refused() -> tuple[str, bytes | None, Callable[[], None]]:
        return f"https://127.0.0.1:{free_port()}", None, lambda: None

    return {"drips-headers": drip("headers"), "drips-body": drip("body"), "hangs": hole, "refuses": refused}


BUDGET_ENV = {"CLUSTER_DEADLINE": "1", "CLUSTER_CONNECT_TIMEOUT": "1", "CLUSTER_READ_TIMEOUT": "3",
              "PROBE_ENABLED": "false"}  # fmt: skip


@pytest.fixture(scope="module")
def budget_service(meta: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with a 1 s cluster budget (and per-socket read timeouts of 3 s, which it must not wait out)."""
    svc = Service(meta, tmp_path_factory.mktemp("budget"), env={**BUDGET_ENV, "KUBECONFIG_ALLOW_EXEC": "sleep"})
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.mark.parametrize("kind", list(unreachable_servers()))
def test_add_and_update_of_a_dead_cluster_answer_inside_two_seconds(
    budget_service: Service, target1: Cluster, kind: str
) -> None:
    svc = budget_service
    registered = unique("budget")
    assert svc.api("POST", "/api/cluster/add", json={"id": registered, "kubeconfig": kubeconfig_text(target1)})[
        "status"] == 200  # fmt: skip
    url, ca, close = unreachable_servers()[kind]()
    try:
        kubeconfig = make_kubeconfig("dead", url, ca, {"token": "t"})
        for path, cluster_id in (("/api/cluster/add", unique("dead")), ("/api/cluster/update", registered)):
            started = time.monotonic()
            answer = svc.api("POST", path, json={"id": cluster_id, "kubeconfig": json.dumps(kubeconfig)})
            took = time.monotonic() - started
            assert answer["status"] == 400 and answer["message"].startswith("无法获取集群信息: "), answer
            assert took < 2.0, (path, took)
    finally:
        close()
        svc.api("GET", f"/api/cluster/delete?id={registered}")


def test_add_with_a_hanging_exec_plugin_answers_inside_two_seconds(budget_service: Service, target1: Cluster) -> None:
    kubeconfig = exec_kubeconfig(target1.url, "sleep", ["31.7"])
    started = time.monotonic()
    answer = budget_service.api("POST", "/api/cluster/add", json={"id": unique("exec"), "kubeconfig": json.dumps(
        kubeconfig)})  # fmt: skip
    assert time.monotonic() - started < 2.0
    assert answer["status"] == 400 and "exec plugin 'sleep'" in answer["message"], answer


# The prober: a round never waits past a cluster's deadline; a stuck prober gives its Lease up ----------------


def test_a_dripping_cluster_times_out_in_its_probe_while_the_round_goes_on(
    make_service, meta: Cluster, target1: Cluster
) -> None:
    env = {"PROBE_ENABLED": "true", "PROBE_INTERVAL": "0.5", "PROBE_TIMEOUT": "1", "PROBE_HEARTBEAT": "1",
           "PROBE_FAILURE_THRESHOLD": "1",
           "PROBE_MAX_BACKOFF": "1", "LEASE_DURATION": "3", "LEASE_RENEW_INTERVAL": "1",
           "CLUSTER_READ_TIMEOUT": "3"}  # fmt: skip
    svc: Service = make_service(env=env)
    good = unique("good")
    assert svc.api("POST", "/api/cluster/add", json={"id": good, "kubeconfig": kubeconfig_text(target1)})[
        "status"] == 200  # fmt: skip
    dripper = Dripper(phase="headers", interval=0.25)
    try:
        slow = unique("drips")
        body = {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": slow, "labels": {"kubeasy.com/cluster.metadata": "true"},
                         "annotations": {"id": slow, "status": "Active"}},
            "stringData": {"kubeconfig": json.dumps(drip_kubeconfig(dripper))},
        }  # fmt: skip
        status, answer = meta.request("POST", f"/api/v1/namespaces/{svc.namespace}/secrets", body)
        assert status == 201, answer

        def items() -> dict[str, dict]:
            return {i["id"]: i for i in svc.api("GET", "/api/cluster/list")["data"]["items"]}

        seen: set[str] = set()

        def both_probed_repeatedly() -> bool:
            now = items()
            if now[slow].get("reason") != "Timeout":
                return False
            assert now[good]["reason"] == "Healthy", now[good]
            seen.add(now[good]["lastProbeTime"])
            return len(seen) >= 3

        started = time.monotonic()
        deadline = started + 40
        while not both_probed_repeatedly():
            assert time.monotonic() < deadline, items()
            time.sleep(0.3)
        assert "deadline" in items()[slow]["message"]
        assert dripper.connections >= 2  # probed more than once, each cut off
    finally:
        dripper.close()


def test_a_leader_that_makes_no_progress_gives_its_lease_up(meta: Cluster) -> None:
    namespace = unique("lease")
    assert meta.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    metadata = kube.KubeClient.from_kubeconfig(meta.kubeconfig(), (1.0, 3.0))
    progressing = [True]
    stuck = LeaderElector(lambda: metadata, namespace, "prober", lease_seconds=2, renew_seconds=0.2,
                          healthy=lambda: progressing[0])  # fmt: skip
    other = LeaderElector(lambda: metadata, namespace, "prober", lease_seconds=2, renew_seconds=0.2)

    def holder() -> str:
        status, lease = meta.request("GET", lease_path(namespace, "prober"))
        return str(lease.get("spec", {}).get("holderIdentity", "")) if status == 200 else ""

    def wait_for(expected: str) -> None:
        deadline = time.monotonic() + 20
        while holder() != expected:
            assert time.monotonic() < deadline, holder()
            time.sleep(0.1)

    try:
        stuck.start()
        wait_for(stuck.identity)
        other.start()
        progressing[0] = False  # e.g. a round blocked on the metadata cluster
        wait_for(other.identity)
        assert not stuck.is_leader
    finally:
        stuck.stop()
        other.stop()
        metadata.close()
