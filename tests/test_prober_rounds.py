"""Probe rounds: bounded backoff (pure logic) and per-cluster isolation over the real control plane."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
import requests

from controllers.cluster.prober import (
    MAX_BACKOFF_DOUBLINGS,
    ClusterProber,
    ProbeResult,
    ProbeSettings,
    ProbeState,
    SecretInformer,
    _recorded_at,
    advance,
    backoff_seconds,
    count_cap,
    recorded_health,
)
from controlplane.harness import Blackhole, Cluster, HostRoutingProxy
from tests.conftest import kubeconfig_text
from tests.service import eventually, unique
from utils import kube
from utils.kubeconfig import KubeconfigPolicy
from utils.leader import LeaderElector, Lease, Ownership
from utils.shards import shard_of

LABEL = "kubeasy.com/cluster.metadata"
MERGE_PATCH = "application/merge-patch+json"
HUGE = pytest.mark.parametrize(
    "failures", [10**6, 2**31, 2**63, 2**64, 2**1000], ids=["1e6", "2^31", "2^63", "2^64", "2^1000"]
)


def _state(failures: int = 0) -> ProbeState:
    return ProbeState(uid="u", digest="d", status="InActive", transition="", failures=failures)


# Backoff (pure logic) -----------------------------------------------------------------------------------


@HUGE
def test_backoff_of_a_cluster_dead_for_any_time_is_the_cap(failures: int) -> None:
    settings = ProbeSettings(interval=15, max_backoff=300)
    assert backoff_seconds(failures, settings) == 300.0


@HUGE
def test_one_more_failure_after_a_huge_count_backs_off_by_the_cap(failures: int) -> None:
    settings = ProbeSettings(interval=15, failure_threshold=2, max_backoff=300)
    state = _state(failures)
    advance(state, False, settings, now=1000.0)
    assert state.next_at == 1300.0
    assert state.status == "InActive"
    assert state.failures <= settings.failure_threshold + MAX_BACKOFF_DOUBLINGS  # the counter saturates


def test_counters_stay_bounded_over_a_long_outage_and_recovery() -> None:
    settings = ProbeSettings(interval=1, failure_threshold=2, success_threshold=3, max_backoff=60)
    state = _state()
    for round_ in range(10_000):
        advance(state, False, settings, now=float(round_))
    assert state.failures == settings.failure_threshold + MAX_BACKOFF_DOUBLINGS
    assert state.next_at == 9_999.0 + 60.0
    for round_ in range(10_000):
        advance(state, True, settings, now=float(round_))
    assert state.status == "Active" and state.failures == 0
    assert state.successes == settings.success_threshold


def test_extreme_settings_never_overflow() -> None:
    """Even an interval near the float limit gives a finite wait: the exponent is bounded, not the product."""
    settings = ProbeSettings(interval=1e300, failure_threshold=1, max_backoff=1e308)
    wait = backoff_seconds(10**6, settings)
    assert math.isfinite(wait) and wait == 1e308


def test_backoff_still_doubles_below_the_cap() -> None:
    settings = ProbeSettings(interval=10, failure_threshold=2, max_backoff=1000)
    assert [backoff_seconds(f, settings) for f in (0, 1, 2, 3, 4, 5)] == [10, 10, 10, 20, 40, 80]


# Per-cluster isolation, over the real control plane -------------------------------------------------


@pytest.fixture
def registry_namespace(meta: Cluster) -> Iterator[str]:
    """A fresh metadata namespace for one round's Secrets."""
    namespace = unique("krm-round")
    assert meta.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    yield namespace
    # No controller manager runs, so the namespace would stay Terminating: delete the Secrets instead.
    meta.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets?labelSelector={LABEL}%3Dtrue")


def _register(meta: Cluster, namespace: str, name: str, kubeconfig: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {LABEL: "true"}, "annotations": {"id": name, "status": "Active"}},
        "stringData": {"kubeconfig": kubeconfig},
    }
    assert meta.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body)[0] == 201


def _annotations(meta: Cluster, namespace: str, name: str) -> dict[str, str]:
    status, secret = meta.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
    assert status == 200, secret
    return secret["metadata"].get("annotations") or {}


@pytest.fixture
def refused_write(meta: Cluster, registry_namespace: str) -> Iterator[str]:
    """A Secret name whose updates the metadata API server refuses (a ValidatingAdmissionPolicy)."""
    name = "b-refused-write"
    policy = f"deny-{registry_namespace}"
    base = "/apis/admissionregistration.k8s.io/v1"
    spec = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                "operations": ["UPDATE"], "resources": ["secrets"]}]},
        "validations": [{"expression": f"object.metadata.name != '{name}'", "message": "write refused by the test"}],
    }  # fmt: skip
    binding = {
        "policyName": policy,
        "validationActions": ["Deny"],
        "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": registry_namespace}}},
    }
    created = meta.request("POST", f"{base}/validatingadmissionpolicies", {"metadata": {"name": policy}, "spec": spec})
    assert created[0] == 201, created
    created = meta.request("POST", f"{base}/validatingadmissionpolicybindings",
                           {"metadata": {"name": policy}, "spec": binding})  # fmt: skip
    assert created[0] == 201, created
    try:
        yield name
    finally:
        meta.request("DELETE", f"{base}/validatingadmissionpolicybindings/{policy}")
        meta.request("DELETE", f"{base}/validatingadmissionpolicies/{policy}")


def _wait_until_refused(meta: Cluster, namespace: str, name: str, timeout: float = 30.0) -> None:
    """Poll until the API server enforces the policy (it loads policies asynchronously)."""
    path = f"/api/v1/namespaces/{namespace}/secrets/{name}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, secret = meta.request("GET", path)
        assert status == 200, secret
        if meta.request("PUT", path, secret)[0] in (403, 422):
            return
        time.sleep(0.2)
    raise AssertionError(f"the admission policy was not enforced within {timeout} s")


def test_one_clusters_failures_never_stop_the_round_for_the_others(
    meta: Cluster, target1: Cluster, target2: Cluster, registry_namespace: str, refused_write: str
) -> None:
    """A hook that raises for one cluster and a refused Secret write for another; the rest are recorded."""
    namespace = registry_namespace
    names = {"broken": "a-broken-hook", "refused": refused_write, "ok1": "c-healthy", "ok2": "d-healthy"}
    for key, name in names.items():
        _register(meta, namespace, name, kubeconfig_text(target2 if key == "ok2" else target1))
    _wait_until_refused(meta, namespace, refused_write)

    def on_result(name: str, _result: ProbeResult, _status: str) -> None:
        if name == names["broken"]:
            raise RuntimeError("injected failure in one cluster's record")

    client = kube.KubeClient.from_kubeconfig(meta.kubeconfig(), (1.0, 5.0))
    elector = LeaderElector(lambda: client, namespace, unique("lease"))  # not started: run_round is called directly
    assert elector.try_acquire_or_renew()  # only the Lease holder records results
    prober = ClusterProber(lambda: client, namespace, LABEL, elector, KubeconfigPolicy(),
                           ProbeSettings(timeout=3), on_result=on_result)  # fmt: skip
    try:
        assert prober.run_round() == 4  # every cluster was probed, and the round returned
    finally:
        prober.stop()
        client.close()
    for key in ("ok1", "ok2"):
        recorded = _annotations(meta, namespace, names[key])
        assert recorded["reason"] == "Healthy", recorded
        assert recorded["version"] == "v1.36.3"
        assert recorded["lastProbeTime"]
    for key in ("broken", "refused"):
        assert "lastProbeTime" not in _annotations(meta, namespace, names[key])


class _HalfOwned(Ownership):
    """Owns the clusters of shard 0 of 2 under one Lease (the rest belong to another replica)."""

    def __init__(self, client: kube.KubeClient, namespace: str) -> None:
        super().__init__(lambda: client, namespace, 15.0, 5.0, None, None)
        self.lease = Lease(lambda: client, namespace, unique("half"), self.identity)

    @property
    def active(self) -> bool:
        return self.lease.held

    @property
    def shards(self) -> tuple[int, ...]:
        return (0,) if self.lease.held else ()

    def tenure(self, key: str) -> int:
        return self.lease.tenure if shard_of(key, 2) == 0 else 0

    def recording(self, key: str) -> AbstractContextManager[int]:
        return self.lease.guard()


def test_a_round_probes_and_records_only_the_clusters_this_process_owns(
    meta: Cluster, target1: Cluster, registry_namespace: str
) -> None:
    names = [f"owned-{i}" for i in range(8)]
    for name in names:
        _register(meta, registry_namespace, name, kubeconfig_text(target1))
    mine = [n for n in names if shard_of(n, 2) == 0]
    assert 0 < len(mine) < len(names)
    client = kube.KubeClient.from_kubeconfig(meta.kubeconfig(), (1.0, 5.0))
    ownership = _HalfOwned(client, registry_namespace)
    assert ownership.lease.try_acquire_or_renew()
    prober = ClusterProber(lambda: client, registry_namespace, LABEL, ownership, KubeconfigPolicy(),
                           ProbeSettings(timeout=3, count=False))  # fmt: skip
    try:
        assert prober.run_round() == len(mine)
        for name in names:
            probed = "lastProbeTime" in _annotations(meta, registry_namespace, name)
            assert probed == (name in mine), name
        ownership.lease.release()  # lost: a round now probes nothing
        assert not ownership.active and ownership.tenure(mine[0]) == 0
        assert prober.run_round() == 0
    finally:
        prober.stop()
        client.close()


# What a round costs (a kept connection, the short retry budget, counting less often) -----------------


def _connections_made(client: kube.KubeClient) -> int:
    """TLS connections the client's pools have opened so far (urllib3 counts them)."""
    pools = client.api.rest_client.pool_manager.pools
    return sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118 (not a dict)


@pytest.fixture
def round_prober(meta: Cluster, registry_namespace: str) -> Iterator[Callable[..., ClusterProber]]:
    """Build in-process probers for the round's namespace, as the Lease holder; all stopped afterwards."""
    client = kube.KubeClient.from_kubeconfig(meta.kubeconfig(), (1.0, 5.0))
    elector = LeaderElector(lambda: client, registry_namespace, unique("lease"))
    assert elector.try_acquire_or_renew()
    made: list[ClusterProber] = []

    def build(
        settings: ProbeSettings,
        on_result: Callable[[str, ProbeResult, str], None] | None = None,
        policy: KubeconfigPolicy | None = None,
        informer: bool = False,
    ) -> ClusterProber:
        watched = SecretInformer(lambda: client, kube.secret_path(registry_namespace), f"{LABEL}=true",
                                 watch_seconds=5) if informer else None  # fmt: skip
        prober = ClusterProber(lambda: client, registry_namespace, LABEL, elector, policy or KubeconfigPolicy(),
                               settings, on_result=on_result, informer=watched)  # fmt: skip
        made.append(prober)
        return prober

    try:
        yield build
    finally:
        for prober in made:
            prober.stop()
        client.close()


def test_the_counting_cap_is_the_batch_or_twice_the_steady_need() -> None:
    settings = ProbeSettings(interval=30, count_interval=300, count_batch=500)
    assert count_cap(1_000, settings) == 500  # steady need 100 a round: the batch
    assert count_cap(10_000, settings) == 2_000  # steady need 1,000 a round: twice that
    assert count_cap(10_001, settings) == 2_001  # rounded up, never below the need
    assert count_cap(0, settings) == 500
    assert count_cap(7, ProbeSettings(interval=30, count_interval=0, count_batch=1)) == 14  # every round


def test_a_burst_of_uncounted_clusters_is_counted_over_rounds_never_counted_first(
    meta: Cluster, target1: Cluster, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    """Five clusters never counted and a cap of two a round: every round probes all five, counts two,
    but the first: its five new connections take the cap (health first)."""
    names = [f"burst-{i}" for i in range(5)]
    for name in names:
        _register(meta, registry_namespace, name, kubeconfig_text(target1))
    # count_interval large: the steady need (5 x 1 / 3600 a round) is far below the batch of 2.
    prober = round_prober(ProbeSettings(timeout=5, refresh=3600, count_interval=3600, heartbeat=3600,
                                        interval=1, count_batch=2))  # fmt: skip
    counted_after: list[int] = []
    for _ in range(4):
        assert prober.run_round() == 5  # health is never held back
        annotations = {name: _annotations(meta, registry_namespace, name) for name in names}
        assert all(a["reason"] == "Healthy" for a in annotations.values()), annotations
        counted_after.append(sum(1 for a in annotations.values() if a.get("countedAt")))
    assert counted_after == [0, 2, 4, 5]
    # Each count is kept: a counted cluster is not counted again before its interval.
    assert all(prober._states[name].counted_at is not None for name in names)
    # Their kept clients are rebuilt after a share of the refresh period drawn per client, so clusters
    # first probed together are not all rebuilt (a full probe each) in the same later round.
    shares = [prober._states[name].refresh_share for name in names]
    assert all(0.5 <= share <= 1.0 for share in shares) and len(set(shares)) == len(shares), shares


def test_a_healthy_cluster_keeps_one_connection_and_is_counted_once_per_count_interval(
    meta: Cluster, target1: Cluster, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    _register(meta, registry_namespace, "kept", kubeconfig_text(target1))
    prober = round_prober(ProbeSettings(timeout=5, refresh=3600, count_interval=3600, heartbeat=3600))
    assert prober.run_round() == 1
    state = prober._states["kept"]
    first_client, counted = state.client, _annotations(meta, registry_namespace, "kept")
    assert first_client is not None and counted["reason"] == "Healthy" and counted["countedAt"]
    assert counted["namespaceCount"] != "" and counted["clusterUID"]
    for _ in range(3):
        assert prober.run_round() == 1
    assert state.client is first_client and _connections_made(first_client) == 1  # no new TLS handshake
    assert state.counted_at is not None and _annotations(meta, registry_namespace, "kept")["countedAt"] == counted[
        "countedAt"]  # fmt: skip
    # Past the refresh period the address is checked again and the full probe runs: on the same
    # connection, the address being the same (see the proxied test below for what is asked).
    prober.settings = dataclasses.replace(prober.settings, refresh=1e-9)
    assert prober.run_round() == 1
    assert state.client is first_client and _connections_made(first_client) == 1
    assert state.known is not None and state.known.uid == counted["clusterUID"]  # identity read again
    # Past the reconnect period the client is rebuilt: a new connection, its certificate verified again.
    prober.settings = dataclasses.replace(prober.settings, refresh=3600, reconnect=1e-9)
    assert prober.run_round() == 1
    assert state.client is not None and state.client is not first_client
    assert _annotations(meta, registry_namespace, "kept")["reason"] == "Healthy"
    # The new client reuses the TLS context of the same kubeconfig (no second decoding of its certificates).
    assert first_client.ssl_context is not None and state.client.ssl_context is first_client.ssl_context
    assert _connections_made(state.client) == 1  # a new connection all the same: a full handshake
    assert 0.5 <= state.reconnect_share <= 1.0


PROXIED = "k8s.test.invalid"
PROXIED_SETTINGS = ProbeSettings(timeout=5, refresh=3600, count=False, heartbeat=3600, failure_threshold=1)


@pytest.fixture
def proxy(target1: Cluster) -> Iterator[HostRoutingProxy]:
    """target1 behind a host-routed proxy that records the paths it passes on."""
    server = HostRoutingProxy(target1, PROXIED)
    try:
        yield server
    finally:
        server.close()


def _proxied_prober(meta: Cluster, namespace: str, name: str, proxy: HostRoutingProxy,
                    round_prober: Callable[..., ClusterProber]) -> ClusterProber:  # fmt: skip
    """A prober of one cluster registered through the proxy, its name resolving to loopback."""
    _register(meta, namespace, name, json.dumps(proxy.kubeconfig()))
    policy = KubeconfigPolicy.from_strings(host_aliases=[f"{PROXIED}=127.0.0.1"])
    return round_prober(PROXIED_SETTINGS, policy=policy)


def test_a_refresh_checks_the_address_and_keeps_the_connection_only_while_it_is_the_same(
    meta: Cluster, proxy: HostRoutingProxy, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    """Behind a host-routed proxy (which records what it passes on): what each probe asks, on which connection."""
    prober = _proxied_prober(meta, registry_namespace, "proxied", proxy, round_prober)
    full = ["/version", "/readyz", "/api/v1/namespaces/kube-system"]
    assert prober.run_round() == 1
    assert proxy.routed == full
    state = prober._states["proxied"]
    kept = state.client
    assert kept is not None and _connections_made(kept) == 1
    assert prober.run_round() == 1 and proxy.routed[3:] == ["/readyz"]  # steady: one request
    # A refresh with the name resolving to the same address: the full probe on the kept connection.
    prober.settings = dataclasses.replace(PROXIED_SETTINGS, refresh=1e-9)
    assert prober.run_round() == 1 and proxy.routed[4:] == full
    assert state.client is kept and _connections_made(kept) == 1
    assert _annotations(meta, registry_namespace, "proxied")["reason"] == "Healthy"
    # The name now resolves elsewhere (nothing listens on 127.0.0.2 at that port): the kept connection
    # is dropped and the probe goes to the address just checked.
    prober.policy = KubeconfigPolicy.from_strings(host_aliases=[f"{PROXIED}=127.0.0.2"])
    assert prober.run_round() == 1
    assert len(proxy.routed) == 7 and state.client is None
    recorded = _annotations(meta, registry_namespace, "proxied")
    assert recorded["reason"] == "Unreachable" and "127.0.0.2" not in recorded["message"], recorded


def test_a_new_process_asks_readyz_only_of_a_cluster_recorded_healthy_and_current(
    meta: Cluster, proxy: HostRoutingProxy, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    """A restart (or a shard taken over) after another process kept the record current: one request each."""
    full = ["/version", "/readyz", "/api/v1/namespaces/kube-system"]
    first = _proxied_prober(meta, registry_namespace, "recorded", proxy, round_prober)
    assert first.run_round() == 1 and proxy.routed == full
    recorded = _annotations(meta, registry_namespace, "recorded")
    assert recorded["reason"] == "Healthy" and recorded["clusterUID"] and recorded["version"]
    policy = KubeconfigPolicy.from_strings(host_aliases=[f"{PROXIED}=127.0.0.1"])
    restarted = round_prober(PROXIED_SETTINGS, policy=policy)
    sent = _seen_requests(restarted)
    assert restarted.run_round() == 1
    assert proxy.routed[3:] == ["/readyz"]  # on its own new connection, the credentials proven
    state = restarted._states["recorded"]
    assert state.client is not None and state.client is not first._states["recorded"].client
    assert state.known is not None and (state.known.uid, state.known.version) == (recorded["clusterUID"],
                                                                                recorded["version"])  # fmt: skip
    assert [method for method, _ in sent] == ["GET"]  # the same health: nothing written
    assert _annotations(meta, registry_namespace, "recorded")["lastProbeTime"] == recorded["lastProbeTime"]
    assert 0.0 <= state.refresh_share <= 1.0
    # Its first full probe comes within one refresh period, on the kept connection.
    restarted.settings = dataclasses.replace(PROXIED_SETTINGS, refresh=1e-9)
    assert restarted.run_round() == 1 and proxy.routed[4:] == full
    # A record older than heartbeat + 2 intervals (here: any age) was not kept current: a full probe.
    stale = round_prober(dataclasses.replace(PROXIED_SETTINGS, heartbeat=0.0, interval=0.0), policy=policy)
    assert stale.run_round() == 1 and proxy.routed[7:] == full


def test_a_record_stands_in_for_the_full_probe_only_when_healthy_complete_and_current() -> None:
    settings = ProbeSettings(interval=30, heartbeat=60)
    now = time.monotonic()

    def ago(seconds: float) -> str:
        return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def from_record(annotations: dict[str, str], now: float, settings: ProbeSettings) -> ProbeResult | None:
        """As the prober calls it: the record's lastProbeTime read on the monotonic clock first."""
        return recorded_health(annotations, _recorded_at(annotations.get("lastProbeTime", ""), now), now, settings)

    healthy = {"status": "Active", "reason": "Healthy", "version": "v1.36.3", "clusterUID": "uid-1",
               "message": "", "lastProbeTime": ago(100)}  # fmt: skip
    result = from_record(healthy, now, settings)
    assert result is not None and (result.reason, result.version, result.uid) == ("Healthy", "v1.36.3", "uid-1")
    # The Go version's names of status and version are read as well.
    go_names = {"clusterStatus": "Active", "reason": "Healthy", "clusterVersion": "v1.30.0", "clusterUID": "u",
                "lastProbeTime": ago(5)}  # fmt: skip
    assert (from_record(go_names, now, settings) or ProbeResult("")).version == "v1.30.0"
    unknown = {**healthy, "reason": "IdentityUnknown", "clusterUID": "", "message": "may not read kube-system"}
    result = from_record(unknown, now, settings)
    assert result is not None and result.reason == "IdentityUnknown" and result.message == unknown["message"]
    for change in ({"lastProbeTime": ago(121)}, {"lastProbeTime": ""}, {"lastProbeTime": "yesterday"},
                   {"status": "InActive"}, {"reason": "Unreachable"}, {"reason": ""}, {"version": ""},
                   {"clusterUID": ""}):  # fmt: skip
        assert from_record({**healthy, **change}, now, settings) is None, change


def test_a_kept_connection_is_replaced_once_the_certificate_it_was_verified_with_expires(
    meta: Cluster, proxy: HostRoutingProxy, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    prober = _proxied_prober(meta, registry_namespace, "expiring", proxy, round_prober)
    # Room for a busy machine's first probe; the test then waits the certificate out.
    proxy.use_certificate(valid_for=dt.timedelta(seconds=12))
    assert prober.run_round() == 1
    client = prober._states["expiring"].client
    assert client is not None and client.server_cert_expiry is not None
    assert time.time() - 60 < client.server_cert_expiry <= time.time() + 13
    assert prober.run_round() == 1 and prober._states["expiring"].client is client  # still valid: kept
    deadline = time.monotonic() + 60
    while time.time() < client.server_cert_expiry + 1:
        assert time.monotonic() < deadline, "the certificate did not expire"
        time.sleep(0.2)
    # The kept connection still works (it is not verified again), but the prober connects afresh:
    # the handshake now meets the expired certificate, as every new client of the cluster would.
    assert prober.run_round() == 1
    recorded = _annotations(meta, registry_namespace, "expiring")
    assert recorded["reason"] == "TLSError" and "expired" in recorded["message"], recorded


def test_rejected_credentials_are_seen_on_the_kept_connection(
    meta: Cluster, target1: Cluster, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    # The premise: the API server answers /readyz with 401 to a request whose credentials it rejects.
    verify = str(target1.dir / "certs" / "apiserver.crt")
    refused = requests.get(f"{target1.url}/readyz", headers={"Authorization": "Bearer revoked"}, verify=verify,
                           timeout=10)  # fmt: skip
    assert refused.status_code == 401
    _register(meta, registry_namespace, "revoked", kubeconfig_text(target1))
    seen: list[ProbeResult] = []
    prober = round_prober(ProbeSettings(timeout=5, failure_threshold=1),
                          on_result=lambda _name, result, _status: seen.append(result))  # fmt: skip
    assert prober.run_round() == 1 and seen[-1].reason == "Healthy"
    kept = prober._states["revoked"].client
    assert kept is not None
    kept.api.configuration.api_key = {"BearerToken": "revoked"}  # the token is revoked while the connection lives
    assert prober.run_round() == 1
    assert seen[-1].reason == "Unauthorized", seen[-1]
    recorded = _annotations(meta, registry_namespace, "revoked")
    assert recorded["status"] == "InActive" and recorded["reason"] == "Unauthorized"
    assert prober._states["revoked"].client is None  # dropped: the next probe connects afresh


def test_a_cluster_that_failed_is_retried_with_the_shorter_budget(
    meta: Cluster, target1: Cluster, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    hole = Blackhole()
    try:
        _register(meta, registry_namespace, "hanging", kubeconfig_text(target1, server=hole.url))
        seen: list[ProbeResult] = []
        settings = ProbeSettings(timeout=4, retry_timeout=0.3, failure_threshold=5)  # no backoff yet
        prober = round_prober(settings, on_result=lambda _name, result, _status: seen.append(result))
        assert prober.run_round() == 1 and prober.run_round() == 1
    finally:
        hole.close()
    first, retry = seen
    assert first.reason == retry.reason == "Timeout", seen
    # The first probe waits its whole connect bound (2 s: the TLS handshake never completes); the
    # retry ends at its 0.3 s budget, with room for a busy machine.
    assert first.latency_ms >= 1900
    assert retry.latency_ms < first.latency_ms - 500


def test_a_new_leader_reads_recorded_counts_as_fresh_only_when_they_are() -> None:
    now = 1000.0
    recent = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    taken = _recorded_at(recent, now)
    assert taken is not None and 960 <= taken <= 971  # about 30 s ago on the monotonic clock
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for value in ("", "yesterday", "2026-13-01T00:00:00Z", future):
        assert _recorded_at(value, now) is None


def _seen_requests(prober: ClusterProber) -> list[tuple[str, str]]:
    """From now on, the (method, path) of every request the prober sends to the metadata cluster."""
    sent: list[tuple[str, str]] = []
    real = prober._metadata()

    class Seen:
        def request(self, method: str, path: str, **kwargs: Any) -> Any:
            sent.append((method, path))
            return real.request(method, path, **kwargs)

    prober._metadata = lambda: Seen()  # type: ignore[assignment,return-value]
    return sent


def test_a_restarted_prober_writes_only_what_changed_or_a_due_heartbeat(
    meta: Cluster, target1: Cluster, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    """A new process (a restart, a moved shard) reads lastProbeTime: unchanged results are not rewritten."""
    _register(meta, registry_namespace, "steady", kubeconfig_text(target1))
    settings = ProbeSettings(timeout=5, refresh=3600, count_interval=3600, heartbeat=3600)
    assert round_prober(settings).run_round() == 1
    assert _annotations(meta, registry_namespace, "steady")["reason"] == "Healthy"

    def methods_of_a_round(prober: ClusterProber) -> list[str]:
        """The requests a round sends to the metadata cluster (the real one, seen on the way)."""
        sent = _seen_requests(prober)
        assert prober.run_round() == 1
        return [method for method, _ in sent]

    # Same health, counted and probed within the heartbeat: the round lists the Secrets and writes nothing.
    assert methods_of_a_round(round_prober(settings)) == ["GET"]
    # A heartbeat that is due (recorded longer ago than the heartbeat) is written by the new process.
    assert methods_of_a_round(round_prober(dataclasses.replace(settings, heartbeat=1e-9))) == ["GET", "PATCH"]


def test_rounds_read_the_watched_copy_and_see_added_changed_and_deleted_clusters(
    meta: Cluster, target1: Cluster, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    """With its informer a round sends no LIST: a cluster added, changed or deleted reaches it by the watch."""
    _register(meta, registry_namespace, "early", kubeconfig_text(target1))
    prober = round_prober(ProbeSettings(timeout=5, failure_threshold=1, count=False, heartbeat=3600), informer=True)
    informer = prober.informer
    assert informer is not None
    informer.start()
    sent = _seen_requests(prober)
    assert prober.run_round() == 1  # the first round waits for the informer's LIST
    assert _annotations(meta, registry_namespace, "early")["reason"] == "Healthy"
    stored = informer.get("early")
    assert stored is not None and set(stored) == {"metadata", "data"} and set(stored["data"]) == {"kubeconfig"}
    assert "labels" not in stored["metadata"] and "managedFields" not in stored["metadata"]

    _register(meta, registry_namespace, "late", kubeconfig_text(target1))
    eventually(lambda: informer.get("late") is not None)
    assert prober.run_round() == 2
    assert _annotations(meta, registry_namespace, "late")["reason"] == "Healthy"

    # A changed kubeconfig (now pointing at a port that refuses) is probed as the new one.
    refused = kubeconfig_text(target1).replace(target1.url, "https://127.0.0.1:9")
    assert refused != kubeconfig_text(target1)
    path = f"/api/v1/namespaces/{registry_namespace}/secrets/late"
    status, _ = meta.request("PATCH", path, {"stringData": {"kubeconfig": refused}}, content_type=MERGE_PATCH)
    assert status == 200
    eventually(lambda: _round_and_reason(prober, meta, registry_namespace, "late") == "Unreachable")

    status, _ = meta.request("DELETE", f"/api/v1/namespaces/{registry_namespace}/secrets/late")
    assert status == 200
    eventually(lambda: informer.get("late") is None)
    assert prober.run_round() == 1 and "late" not in prober._states
    assert all(method == "PATCH" for method, _ in sent), sent  # results written; nothing listed


def _round_and_reason(prober: ClusterProber, meta: Cluster, namespace: str, name: str) -> str:
    prober.run_round()
    return _annotations(meta, namespace, name).get("reason", "")


def test_a_round_lists_the_secrets_while_the_watched_copy_is_not_usable(
    meta: Cluster, target1: Cluster, registry_namespace: str, round_prober: Callable[..., ClusterProber]
) -> None:
    """An informer that has no copy (never listed, or its watch failed) leaves the round to one LIST."""
    _register(meta, registry_namespace, "listed", kubeconfig_text(target1))
    prober = round_prober(ProbeSettings(timeout=0.5, count=False, heartbeat=3600), informer=True)
    sent = _seen_requests(prober)  # the informer is not started: it never becomes usable
    assert prober.run_round() == 1
    assert sent[0] == ("GET", kube.secret_path(registry_namespace)), sent
    assert _annotations(meta, registry_namespace, "listed")["reason"] == "Healthy"
