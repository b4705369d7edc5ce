"""Least-privilege credentials are not "down": over HTTP on the real control plane.

The harness's ``limited`` identity is authenticated but has no RBAC grant: the default discovery roles
still let it read ``/version`` and ``/readyz``, and ``GET /api/v1/namespaces/kube-system`` is a 403.
Such a cluster is up (``Active``) with its identity unknown; ``InActive`` is for clusters that cannot be
reached or do not accept the credentials.
"""

from __future__ import annotations

import datetime as dt
import json

from controlplane.harness import Cluster, make_kubeconfig
from tests.conftest import kubeconfig_text
from tests.service import Service, unique
from tests.test_health import FAST, add, eventually

ADDED_OK = {"status": 200, "message": "添加成功", "data": {}}


def detail(svc: Service, cluster_id: str) -> dict:
    """The cluster as ``get`` reads it from its Secret (no cache involved)."""
    body = svc.api("GET", f"/api/cluster/get?id={cluster_id}")
    assert body["status"] == 200, body
    return body["data"]["item"]


def anonymous_kubeconfig(cluster: Cluster) -> str:
    """A kubeconfig without any credentials: the API server treats its requests as ``system:anonymous``."""
    return json.dumps(make_kubeconfig(cluster.name, cluster.url, cluster.ca_pem(), {}))


def _probe_time(item: dict) -> dt.datetime:
    return dt.datetime.strptime(item["lastProbeTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def test_the_limited_identity_reads_discovery_but_not_kube_system(target1: Cluster) -> None:
    """What the rest of this file relies on, checked on the test API server itself."""
    assert target1.request("GET", "/version", identity="limited")[0] == 200
    assert target1.request("GET", "/readyz", identity="limited")[0] == 200
    assert target1.request("GET", "/api/v1/namespaces/kube-system", identity="limited")[0] == 403


def test_add_with_least_privilege_credentials_is_active_with_identity_unknown(
    service: Service, target1: Cluster, cluster_id: str
) -> None:
    assert add(service, cluster_id, kubeconfig_text(target1, "limited")) == ADDED_OK
    item = detail(service, cluster_id)
    assert item["status"] == item["clusterStatus"] == "Active"
    assert item["version"] == "v1.36.3"
    assert item["reason"] == "IdentityUnknown"
    assert "may not read namespace kube-system" in item["message"]
    assert item["clusterUID"] == ""


def test_the_list_shows_a_least_privilege_cluster_as_active(
    service: Service, target1: Cluster, cluster_id: str
) -> None:
    add(service, cluster_id, kubeconfig_text(target1, "limited"))
    # Another worker may serve the list: wait for its watch to deliver the new Secret.
    items = eventually(
        lambda: [i for i in service.api("GET", "/api/cluster/list")["data"]["items"] if i["id"] == cluster_id]
    )
    assert isinstance(items, list)
    assert (items[0]["status"], items[0]["reason"], items[0]["duplicateOf"]) == ("Active", "IdentityUnknown", "")


def test_the_prober_keeps_a_least_privilege_cluster_active(make_service, target1: Cluster) -> None:
    svc = make_service(env=FAST)
    cluster_id = unique("limited")
    assert add(svc, cluster_id, kubeconfig_text(target1, "limited")) == ADDED_OK
    added = _probe_time(detail(svc, cluster_id))
    # Rounds every 0.5 s, failure threshold 2, heartbeat 1 s: three seconds of probing would have flipped it.
    probed = eventually(
        lambda: (i := detail(svc, cluster_id)) and _probe_time(i) >= added + dt.timedelta(seconds=3) and i,
        timeout=30,
    )
    assert isinstance(probed, dict)
    assert (probed["status"], probed["reason"]) == ("Active", "IdentityUnknown")
    assert "probe result not written" not in svc.log()


def test_anonymous_credentials_are_inactive_as_not_authenticated(
    service: Service, target1: Cluster, cluster_id: str
) -> None:
    """No credentials: /version answers (public), but the cluster does not know who is asking."""
    assert add(service, cluster_id, anonymous_kubeconfig(target1)) == ADDED_OK
    item = detail(service, cluster_id)
    assert (item["status"], item["reason"]) == ("InActive", "Unauthorized")
    assert "anonymous" in item["message"]


def test_update_with_least_privilege_credentials_keeps_the_registered_identity(
    service: Service, target1: Cluster, cluster_id: str
) -> None:
    """Identity pinning is skipped (not failed) when the new credentials cannot read kube-system."""
    add(service, cluster_id, kubeconfig_text(target1))
    registered = detail(service, cluster_id)["clusterUID"]
    assert registered
    body = service.api(
        "POST", "/api/cluster/update", json={"id": cluster_id, "kubeconfig": kubeconfig_text(target1, "limited")}
    )
    assert body == {"status": 200, "message": "更新成功", "data": {}}
    item = detail(service, cluster_id)
    assert (item["status"], item["reason"], item["clusterUID"]) == ("Active", "IdentityUnknown", registered)


def test_least_privilege_registrations_of_one_cluster_are_not_marked_duplicates(
    service: Service, target1: Cluster
) -> None:
    """Duplicate detection needs the identity: without it the ids are simply not compared."""
    first, second = unique("lp-a"), unique("lp-b")
    assert add(service, first, kubeconfig_text(target1, "limited")) == ADDED_OK
    assert add(service, second, kubeconfig_text(target1, "limited")) == ADDED_OK
    assert detail(service, first)["duplicateOf"] == ""
    assert detail(service, second)["duplicateOf"] == ""
