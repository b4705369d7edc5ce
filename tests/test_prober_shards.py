"""Probing shared among replicas: shard Leases on the real metadata cluster, then service processes, one killed."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.service import Service, eventually, unique
from utils import kube
from utils.background import BackgroundLoop
from utils.leader import Lease, lease_path
from utils.shards import LEASE_LABEL, ShardOwnership, shard_of

# In-process shard Leases, on the real metadata cluster ------------------------------------------------


@pytest.fixture
def lease_namespace(meta: Cluster) -> Iterator[tuple[kube.KubeClient, str]]:
    """A fresh namespace for Leases, and a metadata client."""
    namespace = unique("shards")
    assert meta.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    client = kube.KubeClient.from_kubeconfig(meta.kubeconfig(), (1.0, 3.0))
    try:
        yield client, namespace
    finally:
        client.close()


def _ownership(client: kube.KubeClient, namespace: str, shards: int = 4) -> ShardOwnership:
    return ShardOwnership(lambda: client, namespace, "probers", shards, lease_seconds=2, renew_seconds=0.2)


def _stored_holders(client: kube.KubeClient, namespace: str) -> dict[str, str]:
    listing = client.request("GET", lease_path(namespace), query={"labelSelector": LEASE_LABEL})
    return {i["metadata"]["name"]: i["spec"].get("holderIdentity") or "" for i in listing["items"]}


def test_one_replica_holds_every_shard_and_a_joining_one_gets_half(
    lease_namespace: tuple[kube.KubeClient, str],
) -> None:
    client, namespace = lease_namespace
    first, second = _ownership(client, namespace), _ownership(client, namespace)
    try:
        first.start()
        eventually(lambda: first.shards == (0, 1, 2, 3))
        second.start()
        eventually(lambda: len(first.shards) == 2 and len(second.shards) == 2, timeout=30)
        assert not set(first.shards) & set(second.shards)
        stored = _stored_holders(client, namespace)
        assert Counter(h for name, h in stored.items() if "member" not in name) == {
            first.identity: 2, second.identity: 2}  # fmt: skip
        second.stop()  # hands its shards over and leaves: the first takes them without waiting for expiry
        eventually(lambda: first.shards == (0, 1, 2, 3), timeout=30)
    finally:
        first.stop()
        second.stop()
    stored = _stored_holders(client, namespace)
    assert not any("member" in name for name in stored), stored  # membership Leases are deleted on leaving
    assert set(stored.values()) == {""}  # every shard handed back


def test_processes_started_together_split_the_shards_at_once(lease_namespace: tuple[kube.KubeClient, str]) -> None:
    """Siblings (PROBE_PROCESSES of one replica) share by their count from the start: no take-all, no handover."""
    client, namespace = lease_namespace

    def sibling() -> ShardOwnership:
        return ShardOwnership(lambda: client, namespace, "probers", 4, lease_seconds=30, renew_seconds=0.2,
                              siblings=2)  # fmt: skip

    first, second = sibling(), sibling()
    try:
        first.start()
        eventually(lambda: len(first.shards) == 2)  # half: the other half is left to its sibling
        taken = first.shards
        second.start()
        eventually(lambda: len(second.shards) == 2, timeout=30)
        assert not set(taken) & set(second.shards)
        assert first.shards == taken  # nothing was handed over
    finally:
        first.stop()
        second.stop()


def test_a_dead_replicas_shards_are_taken_over_after_the_lease_duration(
    lease_namespace: tuple[kube.KubeClient, str],
) -> None:
    client, namespace = lease_namespace
    survivor, dying = _ownership(client, namespace), _ownership(client, namespace)
    try:
        survivor.start()
        dying.start()
        eventually(lambda: len(survivor.shards) == 2 and len(dying.shards) == 2, timeout=30)
        BackgroundLoop.stop(dying)  # its loop ends and nothing is released, as when a process is killed
        eventually(lambda: survivor.shards == (0, 1, 2, 3), timeout=30)
        assert survivor.members == 1  # the dead one's membership expired too (and its Lease was deleted)
        members = [name for name in _stored_holders(client, namespace) if "member" in name]
        assert len(members) == 1, members
    finally:
        survivor.stop()


def test_a_stalled_replica_gives_its_shards_up(lease_namespace: tuple[kube.KubeClient, str]) -> None:
    client, namespace = lease_namespace
    progressing = [True]
    stalled, other = _ownership(client, namespace), _ownership(client, namespace)
    stalled.healthy = lambda: progressing[0]
    try:
        stalled.start()
        eventually(lambda: stalled.shards == (0, 1, 2, 3))
        other.start()
        eventually(lambda: len(other.shards) == 2, timeout=30)
        progressing[0] = False  # e.g. its rounds blocked: it releases everything and leaves
        eventually(lambda: other.shards == (0, 1, 2, 3), timeout=30)
        assert not stalled.active and other.members == 1
    finally:
        stalled.stop()
        other.stop()


def test_a_shard_is_released_only_after_the_write_under_way(lease_namespace: tuple[kube.KubeClient, str]) -> None:
    client, namespace = lease_namespace
    lease = Lease(lambda: client, namespace, "guarded", "me", lease_seconds=5)
    assert lease.try_acquire_or_renew()
    with lease.guard() as tenure:
        assert tenure
        releasing = threading.Thread(target=lease.release)
        releasing.start()
        eventually(lambda: not lease.held)  # no new record starts once the release has begun ...
        with lease.guard() as late:
            assert late == 0
        time.sleep(0.3)
        assert releasing.is_alive() and lease.holder() == "me"  # ... but the one under way finishes first
    releasing.join(10)
    assert lease.holder() == ""


def test_a_lease_acquired_again_has_a_new_tenure(lease_namespace: tuple[kube.KubeClient, str]) -> None:
    client, namespace = lease_namespace
    lease = Lease(lambda: client, namespace, "tenured", "me", lease_seconds=5)
    assert lease.tenure == 0 and lease.try_acquire_or_renew()
    first = lease.tenure
    assert lease.try_acquire_or_renew() and lease.tenure == first  # a renewal keeps it
    lease.release()
    assert lease.tenure == 0 and lease.try_acquire_or_renew() and lease.tenure not in (0, first)


# Service processes against one metadata cluster ---------------------------------------------------------

SHARDS = 6
SHARDED = {
    "PROBE_ENABLED": "true",
    "PROBE_INTERVAL": "1",
    "PROBE_TIMEOUT": "2",
    "PROBE_HEARTBEAT": "1",  # every probe writes lastProbeTime
    "PROBE_COUNT": "false",
    "PROBE_SHARDS": str(SHARDS),
    "LEASE_DURATION": "4",
    "LEASE_RENEW_INTERVAL": "1",
}


def _identity(svc: Service) -> str:
    """The identity of the service's last started prober process."""
    found = _identities(svc)
    return found[-1] if found else ""


def _identities(svc: Service) -> list[str]:
    """The identities of the service's prober processes alive now (an identity is host_pid_random)."""
    found = re.findall(r'"msg":"prober process started".*?"identity":"([^"]+)"', svc.log())
    return [identity for identity in found if _is_prober(int(identity.split("_")[-2]))]


def _is_prober(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"controllers.prober_process" in f.read()
    except OSError:
        return False


def _shard_holders(meta: Cluster, namespace: str) -> dict[int, str]:
    status, listing = meta.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases")
    assert status == 200, listing
    holders = {}
    for lease in listing["items"]:
        name = lease["metadata"]["name"]
        if (suffix := name.removeprefix("krm-backend-prober-")).isdigit():
            holders[int(suffix)] = lease["spec"].get("holderIdentity") or ""
    return holders


def _settled(meta: Cluster, namespace: str, services: list[Service]) -> dict[str, set[int]]:
    """Shards by identity once every shard is held by the services' live probers, an equal share each; else {}."""
    identities = {identity for svc in services for identity in _identities(svc)}
    holders = _shard_holders(meta, namespace)
    by_identity: dict[str, set[int]] = {}
    for shard, holder in holders.items():
        by_identity.setdefault(holder, set()).add(shard)
    fair = SHARDS // max(len(identities), 1)
    if len(holders) == SHARDS and set(by_identity) == identities and all(
            len(s) == fair for s in by_identity.values()):  # fmt: skip
        return by_identity
    return {}


def _rounds(svc: Service, since: int) -> list[dict[str, Any]]:
    """The service's "probe round done" lines written after offset ``since`` of its log."""
    lines = svc.log()[since:].splitlines()
    return [json.loads(line) for line in lines if '"msg":"probe round done"' in line]


def _last_probes(meta: Cluster, namespace: str, ids: list[str]) -> dict[str, str]:
    probes = {}
    for cluster_id in ids:
        status, secret = meta.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{cluster_id}")
        assert status == 200, secret
        probes[cluster_id] = (secret["metadata"].get("annotations") or {}).get("lastProbeTime", "")
    return probes


def _all_probed_after(meta: Cluster, namespace: str, ids: list[str], moment: dt.datetime) -> bool:
    """Whether every cluster's lastProbeTime (whole seconds) is later than the second ``moment`` fell in."""
    after = (moment + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return all(probe >= after for probe in _last_probes(meta, namespace, ids).values())


def _each_cluster_probed_by_one(services: list[Service], offsets: list[int], ids: list[str]) -> bool:
    """From the round lines since ``offsets``: each live prober's latest rounds cover disjoint shards, all of
    them, and probed exactly the clusters of its own shards (``owned``), so each cluster by one prober."""
    by_identity: dict[str, list[dict[str, Any]]] = {}
    for svc, offset in zip(services, offsets, strict=True):
        live = set(_identities(svc))
        for line in _rounds(svc, offset):
            if line["identity"] in live:
                by_identity.setdefault(line["identity"], []).append(line)
    if {identity for svc in services for identity in _identities(svc)} != set(by_identity):
        return False  # a live prober has not logged a round yet
    latest: list[dict[str, Any]] = []
    for rounds in by_identity.values():
        if len(rounds) < 3:
            return False
        if len({r["shardIds"] for r in rounds[-2:]}) != 1:
            return False  # still moving
        latest.append(rounds[-1])
    # A snapshot: around a rebalance (a busy machine can delay a renewal past the lease) one process's
    # latest round may predate it and another's follow it, so an inconsistent view is polled again.
    shard_sets = [{int(i) for i in r["shardIds"].split(",") if i} for r in latest]
    if sum(len(s) for s in shard_sets) != SHARDS or set().union(*shard_sets) != set(range(SHARDS)):
        return False
    return all(line["clusters"] == len(ids) and line["owned"] == sum(1 for i in ids if shard_of(i, SHARDS) in shards)
               for shards, line in zip(shard_sets, latest, strict=True))  # fmt: skip


# Three services, a kill, a restart and a stop, each waited for with its own bound: more than the
# suite's default 120 s on a busy machine.
@pytest.mark.timeout(480)
def test_replicas_share_the_probing_and_survive_one_killed(make_service, meta: Cluster, target1: Cluster) -> None:
    namespace = unique("krm-shards")
    services = [make_service(namespace=namespace, env=SHARDED) for _ in range(3)]
    ids = [unique(f"s{i}") for i in range(12)]
    for cluster_id in ids:
        answer = services[0].api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig_text(
            target1)})  # fmt: skip
        assert answer["status"] == 200, answer

    # All running: two shards each, and each cluster probed by exactly one of them every round.
    eventually(lambda: _settled(meta, namespace, services), timeout=60)
    offsets = [len(svc.log()) for svc in services]
    eventually(lambda: _each_cluster_probed_by_one(services, offsets, ids), timeout=60)

    # SIGKILL one prober: its shards move to the others after the lease duration, every cluster probed.
    victim = services[2]
    dead = _identity(victim)
    os.kill(int(dead.split("_")[-2]), signal.SIGKILL)
    killed_at, killed = time.monotonic(), dt.datetime.now(dt.UTC)
    eventually(lambda: _all_probed_after(meta, namespace, ids, killed), timeout=60, interval=0.5)
    gap = time.monotonic() - killed_at
    # Lease duration (4 s) + interval (1 s), plus the observation and renewal cycles and a busy machine.
    assert gap < 30, gap
    print(f"every cluster probed again {gap:.1f} s after the SIGKILL")  # shown with -s (README figures)

    # The master restarts its prober: a new identity joins and gets its share; still one prober a cluster.
    eventually(lambda: _identity(victim) not in ("", dead), timeout=60)
    eventually(lambda: _settled(meta, namespace, services), timeout=60)
    offsets = [len(svc.log()) for svc in services]
    eventually(lambda: _each_cluster_probed_by_one(services, offsets, ids), timeout=60)

    # A replica that stops hands its shards over at once; the two left probe everything.
    leaving = services.pop(1)
    leaving.stop()
    stopped_at, stopped = time.monotonic(), dt.datetime.now(dt.UTC)
    eventually(lambda: _settled(meta, namespace, services), timeout=60)
    eventually(lambda: _all_probed_after(meta, namespace, ids, stopped), timeout=60, interval=0.5)
    print(f"shards settled and every cluster probed again {time.monotonic() - stopped_at:.1f} s after the stop")
    offsets = [len(svc.log()) for svc in services]
    eventually(lambda: _each_cluster_probed_by_one(services, offsets, ids), timeout=60)


@pytest.mark.timeout(480)
def test_prober_processes_of_one_replica_share_the_probing_and_one_killed_is_restarted(
    make_service, meta: Cluster, target1: Cluster
) -> None:
    namespace = unique("krm-procs")
    # Three probers in all: two processes of the first service (PROBE_PROCESSES=2), one of the second.
    services = [make_service(namespace=namespace, env={**SHARDED, "PROBE_PROCESSES": "2"}),
                make_service(namespace=namespace, env=SHARDED)]  # fmt: skip
    ids = [unique(f"p{i}") for i in range(12)]
    for cluster_id in ids:
        answer = services[0].api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig_text(
            target1)})  # fmt: skip
        assert answer["status"] == 200, answer
    eventually(lambda: len(_identities(services[0])) == 2, timeout=60)
    eventually(lambda: _settled(meta, namespace, services), timeout=60)
    held = _settled(meta, namespace, services)
    assert len(held) == 3 and all(len(shards) == SHARDS // 3 for shards in held.values()), held
    offsets = [len(svc.log()) for svc in services]
    eventually(lambda: _each_cluster_probed_by_one(services, offsets, ids), timeout=60)

    # SIGKILL one of the two: the other probers take its shards; its supervisor starts it again, and
    # the new process gets its share back.
    first, second = _identities(services[0])
    os.kill(int(first.split("_")[-2]), signal.SIGKILL)
    killed = dt.datetime.now(dt.UTC)
    eventually(lambda: _all_probed_after(meta, namespace, ids, killed), timeout=60, interval=0.5)
    eventually(lambda: len(_identities(services[0])) == 2 and first not in _identities(services[0]), timeout=60)
    assert second in _identities(services[0])  # the other process of that replica was not touched
    eventually(lambda: len(_settled(meta, namespace, services)) == 3, timeout=60)
    offsets = [len(svc.log()) for svc in services]
    eventually(lambda: _each_cluster_probed_by_one(services, offsets, ids), timeout=60)

    # A graceful stop of that service ends both its probers, which hand their shards over.
    leaving = services.pop(0)
    leaving.stop()
    assert not _identities(leaving)
    eventually(lambda: _settled(meta, namespace, services), timeout=60)
    assert len(_settled(meta, namespace, services)) == 1
