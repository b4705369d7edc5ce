"""GET /metrics over HTTP: requests per route template across gunicorn workers, registry and cluster health."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.service import Service, unique
from tests.test_in_cluster import eventually, settle
from tests.test_serving import worker_pids
from utils import metrics


def scrape(svc: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    resp = svc.call("GET", "/metrics", auth=False)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(resp.text)
        for sample in family.samples
    }


def requests_of(samples: dict, route: str, **labels: str) -> float:
    """The request counter of one route (summed over the labels not given)."""
    return sum(
        value
        for (name, keys), value in samples.items()
        if name == "krm_http_requests_total"
        and dict(keys)["route"] == route
        and all(dict(keys)[k] == v for k, v in labels.items())
    )


def test_metrics_need_no_token(service: Service) -> None:
    samples = scrape(service)
    assert ("krm_registry_up", ()) in samples


def test_requests_are_counted_per_route_template_by_every_worker(make_service, tmp_path: Path) -> None:
    svc = make_service(workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")})
    settle(svc)
    token = svc.token()
    seen: dict[str, int] = {}  # envelope status -> count (a worker still bootstrapping answers 503)
    for _ in range(10):  # fresh connections, so both workers take some
        resp = svc.call("GET", "/api/cluster/list", token=token, headers={"Connection": "close"})
        assert resp.status_code == 200
        status = str(resp.json()["status"])
        seen[status] = seen.get(status, 0) + 1
    stray = f"/api/{uuid.uuid4().hex}"
    assert svc.api("GET", stray, token=token)["status"] == 404
    assert svc.api("GET", "/api/cluster/get?id=NOT_AN_ID", token=token)["status"] == 400
    # Replace every worker: what a scrape reports now can only come from the shared files.
    for pid in worker_pids(svc):
        os.kill(pid, signal.SIGKILL)
    svc.wait_http("/readyz")
    assert eventually(lambda: len(worker_pids(svc)) == 2)
    text = svc.call("GET", "/metrics", auth=False).text
    samples = scrape(svc)
    for status, count in seen.items():
        assert requests_of(samples, "/api/cluster/list", method="GET", code="200", api_status=status) == count
    assert requests_of(samples, "/api/cluster/get", api_status="400") == 1
    assert requests_of(samples, metrics.UNMATCHED_ROUTE, api_status="404") == 1
    assert stray not in text, "raw paths never become label values"
    timed = ("krm_http_request_duration_seconds_count", (("method", "GET"), ("route", "/api/cluster/list")))
    assert samples[timed] == 10


def test_registry_size_and_per_cluster_health_are_exported(
    make_service, meta: Cluster, target1: Cluster, tmp_path: Path
) -> None:
    svc = make_service(
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "PROBE_INTERVAL": "1", "PROBE_ENABLED": "true"}
    )
    live = unique("live")
    assert (
        svc.api("POST", "/api/cluster/add", json={"id": live, "kubeconfig": kubeconfig_text(target1)})["status"] == 200
    )
    # A record as the Go version (or a prober that found the cluster down) leaves it: InActive.
    down = unique("down")
    status, body = meta.request("POST", f"/api/v1/namespaces/{svc.namespace}/secrets", {
        "metadata": {"name": down, "labels": {"kubeasy.com/cluster.metadata": "true"},
                     "annotations": {"id": down, "status": "InActive", "version": "v1.30.0"}},
    })  # fmt: skip
    assert status == 201, body

    def both_listed() -> dict | None:
        samples = scrape(svc)
        return samples if samples.get(("krm_registered_clusters", ())) == 2 else None

    samples = eventually(both_listed)
    assert samples, "both clusters should be counted"
    assert samples[("krm_registry_up", ())] == 1
    assert samples[("krm_cluster_ready", (("cluster", live),))] == 1
    assert samples[("krm_cluster_ready", (("cluster", down),))] == 0

    def probed() -> dict | None:
        samples = scrape(svc)
        return samples if ("krm_cluster_probe_latency_seconds", (("cluster", live),)) in samples else None

    samples = eventually(probed, timeout=20)
    assert samples, "the prober's latency shows up once it has probed the cluster"
    assert 0 <= samples[("krm_cluster_probe_latency_seconds", (("cluster", live),))] < 5
    assert abs(samples[("krm_cluster_last_probe_timestamp_seconds", (("cluster", live),))] - time.time()) < 60

    assert svc.api("GET", f"/api/cluster/delete?id={down}")["status"] == 200
    gone = eventually(lambda: ("krm_cluster_ready", (("cluster", down),)) not in scrape(svc))
    assert gone, "a deleted cluster's series disappear with it"


def exposed(reason: str) -> float:
    """This process's probe counter for ``reason``, as the exposition shows it."""
    text = metrics.exposition(None)[0].decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "krm_cluster_probes_total" and sample.labels == {"reason": reason}
    )


def test_the_probe_hook_counts_probes_by_reason() -> None:
    before = exposed("Timeout")
    metrics.observe_probe("Timeout", 5.0)
    assert exposed("Timeout") == before + 1


def test_an_unreadable_registry_is_reported_not_zero() -> None:
    text = metrics.exposition(None)[0].decode()
    assert "krm_registry_up 0.0" in text
    assert "krm_registered_clusters" not in text  # unknown, not zero, when the registry cannot be read
