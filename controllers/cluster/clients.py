"""The per-cluster client cache: a registered cluster's ``KubeClient``, built once and reused.

Go builds a clientset, and so a TLS connection, on every request. Here a client is built from the
cluster Secret's kubeconfig, through the kubeconfig policy (the same ``pin`` that add/update and the
prober apply), and kept per process, keyed by (cluster id, Secret resourceVersion):

- a request whose cluster the informer shows unchanged reuses the client without any metadata call;
- a Secret that changed is read again (one GET); a changed kubeconfig gets a new client, a change of
  annotations only (the prober's heartbeat) keeps the client under the new revision;
- a deleted cluster's client is dropped; at most ``max_clients`` stay open (least recently used
  first out), and one unused for ``idle_seconds`` is closed;
- builds run outside the cache's lock, one per cluster at a time; a client in use when it is
  replaced or evicted is closed when its last user is done.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from config.constants import (
    MSG_CLUSTER_TIMEOUT,
    MSG_CLUSTER_UNREACHABLE,
    MSG_METADATA_UNAVAILABLE,
    MSG_MISSING_CLUSTER,
    MSG_UNKNOWN_CLUSTER,
)
from controllers.errors import BadRequest, from_metadata
from controllers.schemas import valid_cluster_id
from utils import kube, logs, metrics
from utils.background import BackgroundLoop
from utils.budget import Budget
from utils.kubeconfig import KubeconfigPolicy, KubeconfigRejected, parse_kubeconfig

from .records import stored_kubeconfig
from .registry import ClusterRegistry

SWEEP_INTERVAL = 30.0  # seconds between sweeps of idle and deleted clients


def _revision(value: Any) -> int:
    """A resourceVersion as a number (etcd revision); -1 when absent or opaque."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


@dataclass(eq=False)
class _Entry:
    """One cached client and who is using it."""

    cluster_id: str
    revision: int
    digest: str
    client: kube.KubeClient
    last_used: float
    users: int = 0
    retired: bool = False


def unreachable(cluster_id: str, reason: str) -> BadRequest:
    """``无法连接集群 <id>: <reason>`` (§1.4)."""
    return BadRequest(f"{MSG_CLUSTER_UNREACHABLE} {cluster_id}: {reason}")


def timed_out(cluster_id: str) -> BadRequest:
    """``请求集群超时: <id>`` (§1.8)."""
    return BadRequest(f"{MSG_CLUSTER_TIMEOUT}: {cluster_id}")


class ClusterClients:
    """Clients of registered clusters, per process; see the module docstring."""

    def __init__(
        self,
        registry: ClusterRegistry,
        policy: KubeconfigPolicy,
        *,
        max_clients: int = 64,
        idle_seconds: float = 300.0,
        pool_size: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Configure; no client is built until a request needs one."""
        self.registry = registry
        self.policy = policy
        self.max_clients = max_clients
        self.idle_seconds = idle_seconds
        self.pool_size = pool_size
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._last_sweep = clock()
        self.builds = 0  # clients built by this process (tests and the benchmark read it)

    # The public API ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def use(self, cluster_id: str, budget: Budget) -> Iterator[kube.KubeClient]:
        """The client of ``cluster_id`` for the duration of the block, within ``budget``.

        Raises ``BadRequest`` with the contract's messages: missing id, unknown cluster, a kubeconfig
        that cannot be used, time out; ``Unavailable`` when the registry cannot be read.
        """
        entry = self._acquire(cluster_id, budget)
        try:
            yield entry.client
        finally:
            self._release(entry)

    def sweep(self) -> int:
        """Close clients idle for ``idle_seconds`` and those of deleted clusters; return how many."""
        now = self._clock()
        informer = self.registry.informer
        listed = informer is not None and informer.healthy
        retired = []
        with self._lock:
            self._last_sweep = now
            for cluster_id, entry in list(self._entries.items()):
                idle = entry.users == 0 and now - entry.last_used > self.idle_seconds
                deleted = listed and informer is not None and informer.get(cluster_id) is None
                if idle or deleted:
                    del self._entries[cluster_id]
                    retired.append(entry)
        for entry in retired:
            self._retire(entry)
        return len(retired)

    def drop(self, cluster_id: str) -> None:
        """Close the client of a cluster (it was deleted, or its Secret is gone)."""
        with self._lock:
            entry = self._entries.pop(cluster_id, None)
        if entry is not None:
            self._retire(entry)

    def close(self) -> None:
        """Close every client (shutdown)."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            self._retire(entry)

    def __len__(self) -> int:
        """How many clients are open."""
        with self._lock:
            return len(self._entries)

    # Lookup and build -------------------------------------------------------------------------

    def _known_revision(self, cluster_id: str) -> int | None:
        """The Secret's revision as the informer has it; None when the informer cannot tell."""
        informer = self.registry.informer
        if informer is None or not informer.healthy:
            return None
        meta = informer.get(cluster_id)
        return None if meta is None else _revision(meta.get("resourceVersion"))

    def _reuse(self, cluster_id: str, revision: int | None) -> _Entry | None:
        """The cached entry if the informer shows its Secret unchanged (then marked in use)."""
        if revision is None or revision < 0:
            return None
        with self._lock:
            entry = self._entries.get(cluster_id)
            # The cache may be ahead of a lagging informer (it read the Secret itself): still current.
            if entry is None or entry.retired or entry.revision < revision:
                return None
            entry.users += 1
            entry.last_used = self._clock()
            self._entries.move_to_end(cluster_id)
            return entry

    def _acquire(self, cluster_id: str, budget: Budget) -> _Entry:
        """Find or build the entry of ``cluster_id`` and mark it in use."""
        if not cluster_id:
            raise BadRequest(MSG_MISSING_CLUSTER)
        if not valid_cluster_id(cluster_id):
            # Not a possible Secret name, so not a registered cluster: no call needed to know.
            raise BadRequest(f"{MSG_UNKNOWN_CLUSTER}: {cluster_id[:253]}")
        if self._clock() - self._last_sweep > SWEEP_INTERVAL:
            self.sweep()
        entry = self._reuse(cluster_id, self._known_revision(cluster_id))
        if entry is not None:
            return entry
        with self._lock:
            build_lock = self._build_locks.setdefault(cluster_id, threading.Lock())
        if not build_lock.acquire(timeout=max(budget.remaining(), 0.0)):
            raise timed_out(cluster_id)  # another request is building this client and still is
        try:
            entry = self._reuse(cluster_id, self._known_revision(cluster_id))
            if entry is not None:
                return entry
            return self._refresh(cluster_id, budget)
        finally:
            build_lock.release()
            with self._lock:
                # Unknown ids (a flood of made-up ones) must not leave a lock each behind.
                if cluster_id not in self._entries and not build_lock.locked():
                    self._build_locks.pop(cluster_id, None)

    def _refresh(self, cluster_id: str, budget: Budget) -> _Entry:
        """Read the cluster Secret; reuse the client if its kubeconfig is unchanged, else build one."""
        try:
            secret = self.registry.read(cluster_id, timeout=budget.timeout())
        except kube.NotFound:
            self.drop(cluster_id)
            raise BadRequest(f"{MSG_UNKNOWN_CLUSTER}: {cluster_id}") from None
        except kube.Timeout:
            raise timed_out(cluster_id) from None
        except kube.KubeError as exc:
            raise from_metadata(MSG_METADATA_UNAVAILABLE, exc) from None
        revision = _revision((secret.get("metadata") or {}).get("resourceVersion"))
        text = stored_kubeconfig(secret)
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self._lock:
            entry = self._entries.get(cluster_id)
            if entry is not None and not entry.retired and entry.digest == digest:
                # Only the annotations changed (the prober's results): same credentials, same client.
                entry.revision = max(entry.revision, revision)
                entry.users += 1
                entry.last_used = self._clock()
                self._entries.move_to_end(cluster_id)
                return entry
        client = self._build(cluster_id, text, budget)
        new = _Entry(cluster_id, revision, digest, client, self._clock(), users=1)
        with self._lock:
            old = self._entries.pop(cluster_id, None)
            self._entries[cluster_id] = new
            evicted = [old] if old is not None else []
            while len(self._entries) > self.max_clients:
                _, oldest = self._entries.popitem(last=False)
                evicted.append(oldest)
            self.builds += 1
        metrics.observe_client_build()
        for entry in evicted:
            self._retire(entry)
        logs.debug({"clusterId": cluster_id, "revision": revision}, "cluster client built")
        return new

    def _build(self, cluster_id: str, text: str, budget: Budget) -> kube.KubeClient:
        """A client for the kubeconfig text, through the kubeconfig policy (checked and pinned)."""
        try:
            kubeconfig = parse_kubeconfig(text)
            pinned = self.policy.pin(kubeconfig, deadline=budget.deadline)
            # No client-wide deadline: the client is cached; every call passes its request's deadline.
            return kube.KubeClient.from_kubeconfig(pinned, budget.timeout(), pool_size=self.pool_size)
        except KubeconfigRejected as exc:
            raise unreachable(cluster_id, str(exc)) from None
        except kube.Timeout:
            raise timed_out(cluster_id) from None
        except kube.KubeError as exc:
            raise unreachable(cluster_id, exc.message) from None

    def _release(self, entry: _Entry) -> None:
        """A user is done; close the client if it was retired meanwhile and nobody else uses it."""
        with self._lock:
            entry.users -= 1
            entry.last_used = self._clock()
            close = entry.retired and entry.users == 0
        if close:
            entry.client.close()

    def _retire(self, entry: _Entry) -> None:
        """Take an entry out of service: close it now, or when its last user releases it."""
        with self._lock:
            entry.retired = True
            close = entry.users == 0
        if close:
            entry.client.close()


class ClientSweeper(BackgroundLoop):
    """Closes idle clients even when no request comes to trigger a sweep."""

    thread_name = "client-sweeper"

    def __init__(self, clients: ClusterClients, interval: float = SWEEP_INTERVAL) -> None:
        """Sweep ``clients`` every ``interval`` seconds once started."""
        super().__init__()
        self.clients = clients
        self.interval = interval

    def _run(self) -> None:
        """Sweep until stopped; a failure is logged and the loop goes on."""
        while not self._stop.wait(self.interval):
            try:
                self.clients.sweep()
            except Exception as exc:  # a bug must not end the sweeping silently
                logs.error({"error": f"{type(exc).__name__}: {exc}"}, "client sweep failed")
