"""Live health, the watch-fed cache, identity and credential expiry (probing shared out: test_prober_shards)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from controllers.cluster.prober import ProbeSettings, ProbeState, advance
from controlplane.harness import Cluster, make_kubeconfig
from tests.conftest import kubeconfig_text
from tests.service import Service, eventually, unique

# Fast probing and leasing so transitions happen within seconds in tests.
FAST = {
    "PROBE_ENABLED": "true",
    "PROBE_INTERVAL": "0.5",
    "PROBE_TIMEOUT": "1",
    "PROBE_FAILURE_THRESHOLD": "2",
    "PROBE_MAX_BACKOFF": "1",
    "PROBE_HEARTBEAT": "1",
    "LEASE_DURATION": "3",
    "LEASE_RENEW_INTERVAL": "1",
}


def item(svc: Service, cluster_id: str) -> Any:
    """The list item of a cluster, or None."""
    items = svc.api("GET", "/api/cluster/list")["data"]["items"]
    return next((i for i in items if i["id"] == cluster_id), None)


def add(svc: Service, cluster_id: str, kubeconfig: str) -> dict:
    """Register a cluster; returns the envelope."""
    return svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig})


# The threshold state machine (pure logic) -------------------------------------------------------------


def _state() -> ProbeState:
    return ProbeState(uid="u", digest="d", status="Active", transition="")


def test_one_failure_below_the_threshold_does_not_flip_the_status() -> None:
    state, settings = _state(), ProbeSettings(interval=10, failure_threshold=3)
    advance(state, False, settings, now=100.0)
    advance(state, False, settings, now=110.0)
    assert state.status == "Active"
    advance(state, True, settings, now=120.0)
    advance(state, False, settings, now=130.0)
    assert state.status == "Active"  # the success reset the count: no flapping


def test_consistent_failures_flip_to_inactive_and_back_off() -> None:
    state, settings = _state(), ProbeSettings(interval=10, failure_threshold=2, max_backoff=35)
    advance(state, False, settings, now=0.0)
    advance(state, False, settings, now=10.0)
    assert state.status == "InActive" and state.transition
    assert state.next_at == 20.0
    advance(state, False, settings, now=20.0)
    assert state.next_at == 40.0
    advance(state, False, settings, now=40.0)
    assert state.next_at == 75.0  # capped by max_backoff
    advance(state, True, settings, now=75.0)
    assert state.status == "Active" and state.next_at == 0.0


def test_success_threshold_delays_recovery() -> None:
    state, settings = _state(), ProbeSettings(failure_threshold=1, success_threshold=2)
    advance(state, False, settings, now=0.0)
    advance(state, True, settings, now=1.0)
    assert state.status == "InActive"
    advance(state, True, settings, now=2.0)
    assert state.status == "Active"


# Over HTTP on the real control plane --------------------------------------------------------------------


def test_status_follows_a_target_that_stops_and_starts_again(make_service, target2: Cluster) -> None:
    svc = make_service(env=FAST)
    cluster_id = unique("live")
    assert add(svc, cluster_id, kubeconfig_text(target2))["status"] == 200
    assert item(svc, cluster_id)["status"] == "Active"
    target2.stop()
    try:
        down = eventually(lambda: (i := item(svc, cluster_id)) and i["status"] == "InActive" and i)
        assert down["reason"] in ("Unreachable", "Timeout")
        assert down["message"] and down["lastTransitionTime"] and down["lastProbeTime"]
        assert down["clusterStatus"] == "InActive"
    finally:
        target2.start()
    up = eventually(lambda: (i := item(svc, cluster_id)) and i["status"] == "Active" and i)
    assert up["reason"] == "Healthy"
    assert up["version"] == "v1.36.3"
    assert int(up["probeLatencyMs"]) >= 0


def test_a_write_through_one_process_is_seen_by_another(make_service, target1: Cluster) -> None:
    namespace = unique("krm-cache")
    writer = make_service(namespace=namespace, env={"PROBE_ENABLED": "false"})
    reader = make_service(namespace=namespace, env={"PROBE_ENABLED": "false"})
    reader.api("GET", "/api/cluster/list")
    cluster_id = unique("seen")
    add(writer, cluster_id, kubeconfig_text(target1))
    eventually(lambda: item(reader, cluster_id), timeout=5, interval=0.01)  # the bound is the assertion
    writer.api("GET", f"/api/cluster/delete?id={cluster_id}")
    eventually(lambda: item(reader, cluster_id) is None, timeout=5, interval=0.01)
    assert item(writer, cluster_id) is None  # read-your-writes in the writer itself


def test_the_cache_resumes_after_a_metadata_outage(make_service, target2: Cluster, target1: Cluster) -> None:
    svc = make_service(cluster=target2, env={"PROBE_ENABLED": "false"})
    assert svc.api("GET", "/api/cluster/list")["data"]["items"] == []
    target2.stop()
    target2.start()
    svc.wait_http("/readyz", timeout=30)
    cluster_id = unique("after")
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": cluster_id, "labels": {"kubeasy.com/cluster.metadata": "true"},
                     "annotations": {"id": cluster_id, "status": "Active"}},
        "stringData": {"kubeconfig": kubeconfig_text(target1)},
    }  # fmt: skip
    assert target2.request("POST", f"/api/v1/namespaces/{svc.namespace}/secrets", body)[0] == 201
    eventually(lambda: item(svc, cluster_id), timeout=10)


def test_update_pointing_at_another_cluster_is_refused(service: Service, target1: Cluster, target2: Cluster) -> None:
    cluster_id = unique("ident")
    add(service, cluster_id, kubeconfig_text(target1))
    other = service.api("POST", "/api/cluster/update", json={"id": cluster_id, "kubeconfig": kubeconfig_text(target2)})
    assert other["status"] == 400
    assert "different cluster" in other["message"]
    same = service.api(
        "POST", "/api/cluster/update", json={"id": cluster_id, "kubeconfig": kubeconfig_text(target1, "cert-admin")}
    )
    assert same["status"] == 200


def test_a_cluster_registered_twice_is_shown_as_such(make_service, target1: Cluster, target2: Cluster) -> None:
    svc = make_service(env={"PROBE_ENABLED": "false"})
    a, b, c = unique("dup-a"), unique("dup-b"), unique("solo")
    add(svc, a, kubeconfig_text(target1))
    add(svc, b, kubeconfig_text(target1, "cert-admin"))
    add(svc, c, kubeconfig_text(target2))
    assert item(svc, a)["duplicateOf"] == b
    assert item(svc, b)["duplicateOf"] == a
    assert item(svc, c)["duplicateOf"] == ""
    assert svc.api("GET", f"/api/cluster/get?id={a}")["data"]["item"]["duplicateOf"] == b


def _cert_kubeconfig(cluster: Cluster, valid_for: dt.timedelta) -> str:
    cert, key = cluster.client_ca.issue_client("cert-admin", ("system:masters",), valid_for=valid_for)
    import base64

    user = {
        "client-certificate-data": base64.b64encode(cert).decode(),
        "client-key-data": base64.b64encode(key).decode(),
    }
    return json.dumps(make_kubeconfig(cluster.name, cluster.url, cluster.ca_pem(), user))


def test_credential_expiry_is_shown(service: Service, target1: Cluster) -> None:
    cluster_id = unique("exp")
    add(service, cluster_id, _cert_kubeconfig(target1, dt.timedelta(hours=1)))
    expiry = dt.datetime.strptime(service.listed(cluster_id)["credentialExpiry"], "%Y-%m-%dT%H:%M:%SZ")
    remaining = expiry.replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=58) < remaining <= dt.timedelta(hours=1)


def test_expired_credentials_are_the_reason(make_service, target1: Cluster) -> None:
    svc = make_service(env=FAST)
    cluster_id = unique("expiring")
    assert add(svc, cluster_id, _cert_kubeconfig(target1, dt.timedelta(seconds=6)))["status"] == 200
    # reason is the last probe's; status flips once the failure threshold is reached.
    down = eventually(
        lambda: (
            (i := item(svc, cluster_id)) and i["reason"] == "CredentialsExpired" and i["status"] == "InActive" and i
        ),
        timeout=30,
    )
    assert "expired" in down["message"]


def test_add_with_expired_credentials_says_so(service: Service, target1: Cluster) -> None:
    body = add(service, unique("expired"), _cert_kubeconfig(target1, dt.timedelta(seconds=-60)))
    assert body["status"] == 400
    assert "expired" in body["message"]
