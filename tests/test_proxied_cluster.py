"""Clusters behind a host-routed proxy (Rancher's ``https://rancher.example.com/k8s/clusters/c-xxx``).

``HostRoutingProxy`` terminates TLS with a certificate for ``k8s.test.invalid`` only and answers 404
unless SNI and Host name it and the path has its prefix. The name resolves to 127.0.0.1 through
``KUBECONFIG_HOST_ALIASES`` (the policy's resolver), never through /etc/hosts. The DNS-rebinding
defence connects to the checked address and must still send the name in Host and SNI, verify the
certificate for it and keep the path prefix: for add, update, every probe and any later call.
"""

from __future__ import annotations

import functools
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from controlplane.harness import Cluster, HostRoutingProxy, make_kubeconfig
from tests.service import Service, eventually, unique
from utils import kube
from utils.kubeconfig import PINNED_HOST, KubeconfigPolicy

NAME = "k8s.test.invalid"
FAST = {"PROBE_ENABLED": "true", "PROBE_INTERVAL": "0.5", "PROBE_TIMEOUT": "2", "PROBE_HEARTBEAT": "1",
        "LEASE_DURATION": "3",
        "LEASE_RENEW_INTERVAL": "1"}  # fmt: skip


@pytest.fixture(scope="module")
def proxy(target1: Cluster) -> Iterator[HostRoutingProxy]:
    """target1 behind the proxy, as ``https://k8s.test.invalid:<port>/k8s/clusters/c-test``."""
    server = HostRoutingProxy(target1, NAME)
    try:
        yield server
    finally:
        server.close()


def policy() -> KubeconfigPolicy:
    """The default policy, with the test name resolving to loopback."""
    return KubeconfigPolicy.from_strings(host_aliases=[f"{NAME}=127.0.0.1"])


# Probe rounds on a busy machine: a longer default than the shared helper's.
eventually = functools.partial(eventually, timeout=30.0)


def test_the_proxy_answers_404_to_requests_for_its_address(proxy: HostRoutingProxy) -> None:
    """What the old pinning did (connect and say Host: 127.0.0.1, no SNI name) gets nowhere."""
    context = ssl.create_default_context(cadata=proxy.ca.pem().decode())
    context.check_hostname = False
    request = urllib.request.Request(f"https://127.0.0.1:{proxy.port}{proxy.prefix}/version")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, context=context, timeout=10)  # noqa: S310 - loopback
    info.value.close()
    assert info.value.code == 404


def test_a_pinned_client_reaches_the_cluster_through_the_proxy(proxy: HostRoutingProxy, target1: Cluster) -> None:
    pinned = policy().pin(proxy.kubeconfig())
    cluster = pinned["clusters"][0]["cluster"]
    assert cluster["server"] == f"https://127.0.0.1:{proxy.port}/k8s/clusters/c-test"  # checked address, same path
    assert cluster[PINNED_HOST] == f"{NAME}:{proxy.port}"
    before = len(proxy.routed)
    with kube.KubeClient.from_kubeconfig(pinned, (1.0, 3.0)) as client:
        assert client.version()["gitVersion"] == "v1.36.3"
        namespace = unique("via-proxy")
        client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
        assert client.request("GET", kube.namespace_path(namespace))["metadata"]["name"] == namespace
        assert NAME in client.server  # messages name the server as written
    assert proxy.routed[before:] == ["/version", "/api/v1/namespaces", f"/api/v1/namespaces/{namespace}"]
    assert target1.request("GET", f"/api/v1/namespaces/{namespace}")[0] == 200  # it really reached target1


def test_the_certificate_must_be_valid_for_the_name(proxy: HostRoutingProxy) -> None:
    """Another name for the same address: the proxy's certificate does not carry it, so no connection."""
    other = "other.test.invalid"
    kubeconfig = make_kubeconfig("other", f"https://{other}:{proxy.port}{proxy.prefix}", proxy.ca.pem(),
                                 {"token": "t"})  # fmt: skip
    pinned = KubeconfigPolicy.from_strings(host_aliases=[f"{other}=127.0.0.1"]).pin(kubeconfig)
    with kube.KubeClient.from_kubeconfig(pinned, (1.0, 3.0)) as client, pytest.raises(kube.TLSError):
        client.version()


def test_add_update_and_probes_go_through_the_proxy(make_service, proxy: HostRoutingProxy, target1: Cluster) -> None:
    svc: Service = make_service(env={**FAST, "KUBECONFIG_HOST_ALIASES": f"{NAME}=127.0.0.1"})
    cluster_id = unique("rancher")
    text = json.dumps(proxy.kubeconfig())
    refused_before = len(proxy.refused)
    start = len(proxy.routed)
    answer = svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": text, "displayName": "r"})
    assert answer["status"] == 200, answer
    assert proxy.routed[start : start + 3] == ["/version", "/readyz", "/api/v1/namespaces/kube-system"]
    status, kube_system = target1.request("GET", "/api/v1/namespaces/kube-system")
    assert status == 200
    item = svc.api("GET", f"/api/cluster/get?id={cluster_id}")["data"]["item"]
    assert item["status"] == "Active" and item["reason"] == "Healthy" and item["version"] == "v1.36.3"
    assert item["clusterUID"] == kube_system["metadata"]["uid"]
    answer = svc.api("POST", "/api/cluster/update", json={"id": cluster_id, "kubeconfig": text, "displayName": "r2"})
    assert answer["status"] == 200, answer
    # The prober (its own process) reaches it the same way: rounds keep rewriting lastProbeTime.
    seen = {item["lastProbeTime"]}

    def probed_again() -> bool:
        got = svc.api("GET", f"/api/cluster/get?id={cluster_id}")["data"]["item"]
        assert got["reason"] == "Healthy", got
        seen.add(got["lastProbeTime"])
        # add, update and at least two probes through the proxy, the later ones written (heartbeat)
        return len(seen) >= 3 and proxy.routed.count("/readyz") >= 4

    eventually(probed_again)
    assert proxy.refused[refused_before:] == []
    assert svc.api("GET", f"/api/cluster/delete?id={cluster_id}")["status"] == 200
