"""The prober process: ``python -m controllers.prober_process``, started and restarted by the gunicorn master.

A process of its own, not a thread in a worker: probing 1,000 clusters is CPU work (TLS handshakes,
JSON) that, inside a worker, would hold the GIL against the requests that worker serves. Every
replica runs one; each probes the clusters of the shards it holds (see ``utils.shards``).
"""

from __future__ import annotations

import contextlib
import resource
import signal
import sys
import threading

from config.settings import Settings, SettingsError
from controllers.cluster import kubeconfig_policy
from controllers.cluster.prober import METADATA_WRITES, ClusterProber, ProbeSettings, SecretInformer
from utils import allocator, kube, logs
from utils.metadata import MetadataCluster
from utils.shards import ShardOwnership

# Shard i is the Lease krm-backend-prober-<i>; each prober's membership krm-backend-prober-member-<hash>.
PROBER_LEASE_PREFIX = "krm-backend-prober"


def build_prober(settings: Settings, metadata: MetadataCluster) -> tuple[ClusterProber, ShardOwnership]:
    """The prober and its share of the shards, from the settings."""
    ownership = ShardOwnership(
        lambda: metadata.client,
        settings.metadata_namespace,
        PROBER_LEASE_PREFIX,
        settings.probe_shards,
        lease_seconds=settings.lease_duration,
        renew_seconds=settings.lease_renew_interval,
        siblings=settings.probe_processes,  # started together by this replica's master: split at once
    )
    path, selector = kube.secret_path(settings.metadata_namespace), f"{settings.cluster_label}=true"
    informer = SecretInformer(lambda: metadata.client, path, selector, watch_seconds=settings.watch_timeout)
    prober = ClusterProber(
        lambda: metadata.client,
        settings.metadata_namespace,
        settings.cluster_label,
        ownership,
        kubeconfig_policy(settings),
        ProbeSettings(
            interval=settings.probe_interval,
            timeout=settings.probe_timeout,
            concurrency=settings.probe_concurrency,
            failure_threshold=settings.probe_failure_threshold,
            success_threshold=settings.probe_success_threshold,
            max_backoff=settings.probe_max_backoff,
            heartbeat=settings.probe_heartbeat,
            count=settings.probe_count,
            count_interval=settings.probe_count_interval,
            count_batch=settings.probe_count_batch,
            retry_timeout=settings.probe_retry_timeout,
            refresh=settings.probe_refresh,
            reconnect=settings.probe_reconnect,
        ),
        informer=informer,
    )
    ownership.healthy = prober.making_progress  # a stuck prober hands its shards to the other replicas
    return prober, ownership


def raise_open_files_limit() -> None:
    """Lift the soft limit on open files to the hard one (as Go's runtime does for its processes)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    """The prober process: hold a share of the shards and probe their clusters, until SIGTERM/SIGINT."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.stderr.write(f"krm-backend prober: invalid configuration: {exc}\n")
        return 2
    logs.setup_logging(settings.log_level)
    kube.sweep_stale_credential_dirs()  # credential files of processes that died (see utils.kube)
    raise_open_files_limit()  # one kept connection per healthy cluster (10,000 and more)
    allocator.tune()  # the LIST of every cluster Secret (at start, after a watch expiry) is megabytes at 10,000
    metadata = MetadataCluster(settings, pool_size=METADATA_WRITES + 3)  # the writes, the watch, a LIST, slack
    prober, ownership = build_prober(settings, metadata)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # The Leases live in the metadata namespace: until bootstrap (in the workers) has made it, taking
    # shards fails and is retried every renew interval, which is all the waiting needed.
    ownership.start()
    prober.start()
    logs.info({"identity": ownership.identity, "shards": settings.probe_shards}, "prober process started")
    stopping.wait()
    prober.stop()
    ownership.stop()  # releases the shards so the other replicas' probers take over at once
    metadata.close()
    logs.info({"identity": ownership.identity}, "prober process stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
