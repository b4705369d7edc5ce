"""Live health of every registered cluster, probed off the request path, each cluster by one replica.

Each replica's prober owns a share of the clusters (``utils.leader.Ownership``: the shards it holds,
see ``utils.shards``). Each round it takes the cluster Secrets from its watch-fed copy (``SecretInformer``:
one LIST at start and after a watch expiry, then only the changes; a LIST of every Secret when the copy
is not usable), probes the ones it owns that are due
with bounded concurrency and a per-probe timeout, and writes what changed back into the Secrets'
annotations, where every worker and replica reads it (through its informer). A status flips
only after ``failure_threshold`` (or ``success_threshold``) consistent results, and a dead cluster is
probed less and less often (exponential backoff up to ``max_backoff``).

What a probe costs decides how many clusters one process can watch (10,000 at a 30 s interval on two cores
is the target). So a healthy cluster keeps its client, and with it one open connection, between rounds: a
steady probe is one ``GET /readyz`` on that connection, no TLS handshake, no resolution. The full probe
(resolve and check the address, ``/version``, ``/readyz``, ``kube-system``) runs the first time (unless
the Secret records a healthy result kept current by a live prober or the registration: then only the
address check and ``/readyz``, see ``recorded_health``), after any failure, after the kubeconfig changed
and every half to whole ``refresh`` seconds (a renamed address, a changed policy, an upgraded version,
revoked read rights are seen then): on the kept connection while the checked address is the same, on a new
one when it is not. A new connection, whose TLS handshake verifies the server's certificate again, is also
made every half to whole ``reconnect`` seconds and as soon as the certificate the kept one was verified
with expires. Each share is drawn per cluster, so that clusters probed first together are not all
refreshed or reconnected in one round. Credentials are still proven every round: the API server answers a
request carrying rejected credentials with 401, on ``/readyz`` too. Counting (five small LISTs) runs every
``count_interval``, not every round, and yields to new connections (``run_round``). A cluster whose last
probe failed gets ``retry_timeout`` instead of ``timeout``, so hanging clusters hold a slot briefly, and
results are written by the probing thread itself, so the first round's writes (every cluster new) run in
parallel too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from config.constants import (
    COUNT_KEYS,
    KUBECONFIG_KEY,
    REASON_CREDENTIALS_EXPIRED,
    REASON_HEALTHY,
    REASON_IDENTITY_UNKNOWN,
    STATUS_ACTIVE,
    STATUS_INACTIVE,
)
from controllers.cluster.statistics import count_annotations
from utils import kube, logs, metrics
from utils.background import BackgroundLoop
from utils.informer import Informer
from utils.kubeconfig import KubeconfigPolicy, KubeconfigRejected, credential_expiry, parse_kubeconfig
from utils.leader import Ownership

from .records import stored_kubeconfig

KUBE_SYSTEM = "/api/v1/namespaces/kube-system"
METADATA_WRITES = 16  # Secret patches in flight at once (the prober process pools as many connections)
# Annotations whose change is written at once; anything else waits for the heartbeat.
# Counts (cluster/statics) are tracked too: written when they change, or with the heartbeat.
_TRACKED = ("status", "reason", "message", "version", *COUNT_KEYS, "countError")
# A 403 for this user is a request without accepted credentials (anonymous auth), not a scoped identity.
_ANONYMOUS = 'User "system:anonymous"'
_REPORTED_REASONS = {"Unreachable", "Timeout", "TLSError", "Unauthorized", "Forbidden", "BadKubeconfig"}


def utc_now() -> str:
    """Now as RFC 3339 UTC with seconds, the annotations' time format."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ProbeResult:
    """One probe: a reason (``Healthy`` when all is well), a short message, and what was learnt."""

    reason: str
    message: str = ""
    version: str = ""
    uid: str = ""
    latency_ms: int = 0
    counts: dict[str, str] = field(default_factory=dict)  # annotations of statistics.count_annotations

    @property
    def healthy(self) -> bool:
        """True when the cluster counts as up: reachable, authenticated and ready (identity may be unknown)."""
        return self.reason in (REASON_HEALTHY, REASON_IDENTITY_UNKNOWN)


def probe_cluster(
    client: kube.KubeClient, expiry: dt.datetime | None = None, known: ProbeResult | None = None
) -> ProbeResult:
    """Ask /version, /readyz and the kube-system namespace (identity; proves the credentials work).

    ``known``: the healthy result of the full probe on this same client; then only ``/readyz`` is
    asked (rejected credentials get 401 there too) and the rest is taken from ``known``.
    """
    started = time.monotonic()
    version = known.version if known is not None else ""

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        if known is None:
            version = str(client.version()["gitVersion"])
        if client.request("GET", "/readyz", raw=True).strip() != b"ok":
            return ProbeResult("Unhealthy", "readyz did not answer ok", version, "", elapsed())
        if known is not None:
            return ProbeResult(known.reason, known.message, version, known.uid, elapsed())
        try:
            namespace = client.request("GET", KUBE_SYSTEM)
        except kube.Forbidden as exc:
            if _ANONYMOUS in exc.message:
                raise kube.Unauthorized("credentials not accepted: the cluster sees an anonymous user", 403) from None
            # Least-privilege credentials: the cluster is up, only its identity (pinning, duplicates) is unknown.
            message = f"reachable, but these credentials may not read namespace kube-system: identity unknown ({exc})"
            return ProbeResult(REASON_IDENTITY_UNKNOWN, message, version, "", elapsed())
        uid = str((namespace.get("metadata") or {}).get("uid") or "")
    except kube.KubeError as exc:
        reason = exc.reason if exc.reason in _REPORTED_REASONS else "Unhealthy"
        message = exc.message
        if expiry is not None and expiry <= dt.datetime.now(dt.UTC) and reason in ("Unauthorized", "TLSError"):
            reason, message = REASON_CREDENTIALS_EXPIRED, f"credentials expired at {expiry:%Y-%m-%dT%H:%M:%SZ}"
        return ProbeResult(reason, message, version, "", elapsed())
    return ProbeResult(REASON_HEALTHY, "", version, uid, elapsed())


@dataclass
class ProbeState:
    """What the leader remembers of one cluster between rounds."""

    uid: str  # the Secret's UID: a re-created Secret starts afresh
    digest: str  # hash of the kubeconfig: a changed kubeconfig gets a new client and fresh counters
    status: str
    transition: str
    kubeconfig: dict[str, Any] | None = None
    expiry: dt.datetime | None = None
    failures: int = 0
    successes: int = 0
    next_at: float = 0.0
    written: dict[str, str] = field(default_factory=dict)
    written_at: float = 0.0
    error: str = ""  # a kubeconfig that cannot be used at all
    client: kube.KubeClient | None = None  # kept while healthy: one open connection (see the module doc)
    pinned: dict[str, Any] | None = None  # the checked kubeconfig the kept client was built from
    connected_at: float = 0.0  # when the kept client was built (monotonic)
    refreshed_at: float = 0.0  # when the address was last checked and the full probe run (monotonic)
    # The address is checked again and the full probe runs after refresh x this, and the client is rebuilt
    # after reconnect x its share (each 0.5-1, drawn anew each time): clusters registered or taken over
    # together do not all get their full probe, or their new connection, in the same round.
    refresh_share: float = 1.0
    reconnect_share: float = 1.0
    # The TLS context of this kubeconfig's last client, reused by the next one (a refresh, a retry after a
    # failure): decoding its certificates again cost 14% of the prober's time at 10,000 clusters.
    ssl_context: ssl.SSLContext | None = None
    known: ProbeResult | None = None  # that full probe's healthy result
    # The healthy result the Secret recorded from a recent probe (another process's, or the registration's),
    # for this process's first probe: it asks /readyz only on its new connection (see recorded_health).
    recorded: ProbeResult | None = None
    counted_at: float | None = None  # last count (monotonic); None: never

    def close_client(self) -> None:
        """Close the kept client: the next probe connects afresh and runs the full probe."""
        client, self.client, self.known, self.pinned = self.client, None, None, None
        if client is not None:
            client.close()


@dataclass(frozen=True)
class ProbeSettings:
    """Intervals, timeouts and thresholds of the prober (seconds)."""

    interval: float = 15.0
    timeout: float = 5.0
    concurrency: int = 128
    failure_threshold: int = 2
    success_threshold: int = 1
    max_backoff: float = 300.0
    heartbeat: float = 60.0
    count: bool = True  # also count nodes, pods, namespaces, deployments, daemonsets (cluster/statics)
    count_interval: float = 300.0  # ... at most this often per cluster
    count_batch: int = 500  # counts per round at least allowed (see count_cap): health first, counts follow
    retry_timeout: float = 1.5  # the probe budget of a cluster whose last probe failed (<= timeout)
    refresh: float = 300.0  # a kept client's address is checked again and its full probe run this often
    reconnect: float = 1800.0  # ... and the client rebuilt (a new connection, TLS verified again) this often


# Enough doublings for any max_backoff a setting can give (interval * 2 ** 62 is far past a year);
# bounding the exponent keeps the float finite however long a cluster has been dead.
MAX_BACKOFF_DOUBLINGS = 62


def backoff_seconds(failures: int, settings: ProbeSettings) -> float:
    """How long a cluster that failed ``failures`` times in a row waits for its next probe (bounded)."""
    doublings = min(max(failures - settings.failure_threshold, 0), MAX_BACKOFF_DOUBLINGS)
    return min(settings.interval * 2.0**doublings, settings.max_backoff)


def advance(state: ProbeState, healthy: bool, settings: ProbeSettings, now: float) -> None:
    """Count a probe result; flip the status only after enough consistent results; back off the dead.

    The counters saturate (they only matter up to their threshold plus the backoff's doublings), so a
    cluster dead or healthy for years keeps small numbers.
    """
    if healthy:
        state.successes, state.failures = min(state.successes + 1, settings.success_threshold), 0
        if state.status != STATUS_ACTIVE and state.successes >= settings.success_threshold:
            state.status, state.transition = STATUS_ACTIVE, utc_now()
        state.next_at = 0.0
        return
    saturated = settings.failure_threshold + MAX_BACKOFF_DOUBLINGS
    state.failures, state.successes = min(state.failures + 1, saturated), 0
    if state.failures >= settings.failure_threshold:
        if state.status != STATUS_INACTIVE:
            state.status, state.transition = STATUS_INACTIVE, utc_now()
        state.next_at = now + backoff_seconds(state.failures, settings)


def count_cap(owned: int, settings: ProbeSettings) -> int:
    """How many clusters a round may count: ``count_batch``, or twice the steady need if that is more.

    The steady need is ``owned * interval / count_interval`` per round (each cluster once per count
    interval), so the cap never holds counting back for long; it only spreads a burst, e.g. 10,000
    clusters never counted (a first start, migrated Secrets), over a few rounds instead of making the
    first health round wait for 10,000 x 5 counting LISTs. Clusters never counted go first.
    """
    steady = owned * settings.interval / settings.count_interval if settings.count_interval > 0 else owned
    return max(settings.count_batch, math.ceil(2 * steady))


def count_due(state: ProbeState, now: float, settings: ProbeSettings) -> bool:
    """Whether the cluster's count is due (never counted, or counted a count interval ago)."""
    return state.counted_at is None or now - state.counted_at >= settings.count_interval


def _recorded_at(recorded: str, now: float) -> float | None:
    """The monotonic time of a recorded ``countedAt`` or ``lastProbeTime`` (RFC 3339), so a new owner
    (a restart, a shard moved to another replica) neither counts again what was counted recently nor
    writes a heartbeat that was written recently; None when absent, unreadable or in the future."""
    try:
        taken = dt.datetime.strptime(recorded, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    age = (dt.datetime.now(dt.UTC) - taken).total_seconds()
    return now - age if age >= 0 else None


def recorded_health(
    annotations: dict[str, str], probed: float | None, now: float, settings: ProbeSettings
) -> ProbeResult | None:
    """The healthy result a cluster's Secret records, if a live prober (or the registration) kept it current.

    A process that starts, or takes a shard over, finds each cluster's last result in its Secret. When
    that says Active and healthy, with a version and (unless the identity is unknown) the cluster's UID,
    and was written within ``heartbeat + 2 x interval`` (so it was kept current: an unchanged result is
    rewritten every heartbeat), the new process's first probe asks ``/readyz`` only, on its new
    connection (the credentials and readiness proven as in every round), and takes version and identity
    from the record until its first full probe, drawn within one ``refresh`` period. A restart of 10,000
    healthy clusters then costs one request per cluster instead of three. Anything else (no record, an
    old one, a failure) gets the full probe at once. ``probed``: the record's ``lastProbeTime`` on the
    monotonic clock (``_recorded_at``), read once by the caller.
    """
    status = annotations.get("status") or annotations.get("clusterStatus") or ""
    reason = annotations.get("reason", "")
    version = annotations.get("version") or annotations.get("clusterVersion") or ""
    uid = annotations.get("clusterUID", "") if reason == REASON_HEALTHY else ""
    if status != STATUS_ACTIVE or not version or reason not in (REASON_HEALTHY, REASON_IDENTITY_UNKNOWN):
        return None
    if reason == REASON_HEALTHY and not uid:
        return None  # registered before identities were recorded: the full probe reads it
    if probed is None or now - probed > settings.heartbeat + 2 * settings.interval:
        return None
    return ProbeResult(reason, annotations.get("message", ""), version, uid)


def _certificate_expired(client: kube.KubeClient) -> bool:
    """Whether the certificate the kept connection was verified with has expired since."""
    return client.server_cert_expiry is not None and time.time() >= client.server_cert_expiry


def _cluster_step_failed(name: str, step: str, exc: Exception) -> None:
    """Log a per-cluster step that failed unexpectedly; the round goes on with the other clusters."""
    logs.error({"clusterId": name, "error": f"{type(exc).__name__}: {exc}"}, f"prober could not {step}")


class SecretInformer(Informer):
    """The cluster Secrets as the prober reads them: name, uid, revision, annotations and the kubeconfig.

    The rest of a Secret (labels, other data keys, ``managedFields``) is dropped: 10,000 are held.
    """

    thread_name = "prober-informer"

    def keep(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The parts of a Secret the prober reads."""
        meta = obj.get("metadata") or {}
        kept = {key: meta[key] for key in ("name", "uid", "resourceVersion", "annotations") if key in meta}
        data = obj.get("data") or {}
        return {"metadata": kept, "data": {KUBECONFIG_KEY: data[KUBECONFIG_KEY]} if KUBECONFIG_KEY in data else {}}


class ClusterProber(BackgroundLoop):
    """Runs probe rounds over the clusters this process owns; see the module docstring."""

    thread_name = "prober"

    def __init__(
        self,
        metadata: Callable[[], kube.KubeClient],
        namespace: str,
        label: str,
        ownership: Ownership,
        policy: KubeconfigPolicy,
        settings: ProbeSettings,
        on_result: Callable[[str, ProbeResult, str], None] | None = None,
        informer: Informer | None = None,
    ) -> None:
        """Configure; nothing runs until ``start``.

        ``ownership``: which clusters are this process's (a ``ShardOwnership``, or a ``LeaderElector``
        whose leader owns them all). ``informer``: the cluster Secrets' watch-fed copy (a
        ``SecretInformer``), started and stopped with the prober; without one every round LISTs them.
        """
        super().__init__()
        self._metadata = metadata
        self.namespace = namespace
        self.selector = f"{label}=true"
        self.ownership = ownership
        self.policy = policy
        self.settings = settings
        self.on_result = on_result
        self.informer = informer
        self._states: dict[str, ProbeState] = {}
        self._tenures: dict[str, int] = {}  # the ownership tenure each state was learnt under
        self._pool: ThreadPoolExecutor | None = None
        # Writes to the metadata cluster in flight at once: it is the service's database, shared with
        # every worker's watch; more parallel PATCHes only queue there.
        self._writes = threading.BoundedSemaphore(METADATA_WRITES)
        self.rounds = 0
        self.last_round_seconds = 0.0
        self.progress_at = time.monotonic()  # last round start/end or finished probe (see making_progress)

    def start(self) -> None:
        """Start the informer, then the rounds."""
        if self.informer is not None:
            self.informer.start()
        super().start()

    def stop(self) -> None:
        """Stop after the current round and close every client."""
        super().stop()
        if self.informer is not None:
            self.informer.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._drop_states()

    @property
    def stall_seconds(self) -> float:
        """How long without any progress means stuck: two intervals plus two probe budgets, and slack."""
        return 2 * self.settings.interval + 2 * self.settings.timeout + 10.0

    def making_progress(self) -> bool:
        """False when nothing finished for ``stall_seconds``: the ownership then gives its shards up."""
        return time.monotonic() - self.progress_at < self.stall_seconds

    def _run(self) -> None:
        """A round every interval (+-10% jitter so replicas' timers do not align), and one at once on a gain.

        Clusters that came to this process (a shard taken over) are probed without waiting out the
        interval: the gap in their health is the handover's, not the handover's plus an interval.
        """
        while not self._stop.is_set():
            started = time.monotonic()
            self.progress_at = started
            if self.ownership.active:
                try:
                    self.run_round()
                except kube.KubeError as exc:
                    logs.warning({"error": str(exc)}, "probe round skipped: metadata cluster not usable")
                except Exception as exc:  # a bug must not stop probing for good
                    logs.error({"error": f"{type(exc).__name__}: {exc}"}, "probe round failed")
            else:
                self._drop_states()  # a process owning nothing keeps no clients open
            next_round = started + self.settings.interval * random.uniform(0.9, 1.1)  # noqa: S311
            self._stop.wait(0.2)
            while not self._stop.is_set() and (remaining := next_round - time.monotonic()) > 0:
                if self.ownership.wait_for_gain(min(remaining, 1.0)):
                    break

    def run_round(self) -> int:
        """Probe every cluster this process owns that is due; return how many were probed."""
        started = time.monotonic()
        shards = self.ownership.shards
        listed = self._cluster_secrets()
        tenures = {name: tenure for name in listed if (tenure := self.ownership.tenure(name))}
        secrets = {name: listed[name] for name in tenures}
        for name in list(self._states):
            # Gone, or no longer ours, or ours again after another replica had it: what we knew is stale.
            if tenures.get(name) != self._tenures.get(name):
                self._forget(name)
        self._tenures = tenures
        now = time.monotonic()
        due: list[tuple[str, dict[str, Any], ProbeState]] = []
        # Every per-cluster step is isolated: one cluster's failure (a bug, a refused write) is logged
        # with its id and never stops the round for the others.
        for name, secret in secrets.items():
            try:
                state = self._state_for(name, secret)
            except Exception as exc:
                _cluster_step_failed(name, "read its Secret", exc)
                continue
            if state.next_at <= now:
                due.append((name, secret, state))
        # Counting is capped per round (count_cap), never-counted clusters first, then the longest due, and
        # yields to health: each cluster this round connects to anew takes one count off the cap, so a
        # round of thousands of new connections (a first start, a restart, shards taken over) counts none.
        counting: set[str] = set()
        if self.settings.count:
            wanting = [(name, state) for name, _, state in due if count_due(state, now, self.settings)]
            wanting.sort(key=lambda i: -math.inf if i[1].counted_at is None else i[1].counted_at)
            connecting = sum(1 for _, _, state in due if state.client is None)
            counting = {name for name, _ in wanting[: max(count_cap(len(secrets), self.settings) - connecting, 0)]}
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="probe")
        work = lambda i: self._probe_and_record(i[0], i[1], i[2], tenures[i[0]], i[0] in counting)  # noqa: E731
        for _ in self._pool.map(work, due):
            pass
        self.rounds += 1
        self.progress_at = time.monotonic()
        self.last_round_seconds = time.monotonic() - started
        logs.debug({"identity": self.ownership.identity, "clusters": len(listed), "owned": len(secrets),
                    "probed": len(due), "shards": len(shards), "shardIds": ",".join(map(str, shards)),
                    "seconds": round(self.last_round_seconds, 3)},
                   "probe round done")  # fmt: skip
        return len(due)

    def _cluster_secrets(self) -> dict[str, dict[str, Any]]:
        """Every cluster Secret by name: the informer's copy while it is usable (waited for up to a probe
        timeout, e.g. at start), else one LIST (which fails, skipping the round, if the cluster is down)."""
        informer = self.informer
        if informer is not None and (informer.usable or informer.wait_healthy(self.settings.timeout)):
            return informer.items()
        listing = self._metadata().request("GET", kube.secret_path(self.namespace),
                                           query={"labelSelector": self.selector})  # fmt: skip
        return {s["metadata"]["name"]: s for s in listing.get("items") or [] if s.get("metadata", {}).get("name")}

    def _state_for(self, name: str, secret: dict[str, Any]) -> ProbeState:
        """The remembered state, rebuilt when the Secret or its kubeconfig changed."""
        meta = secret.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        text = stored_kubeconfig(secret)
        digest = hashlib.sha256(text.encode()).hexdigest()
        state = self._states.get(name)
        if state is not None and state.uid == meta.get("uid") and state.digest == digest:
            return state
        now = time.monotonic()
        probed = _recorded_at(annotations.get("lastProbeTime", ""), now)
        if state is not None:
            state.close_client()  # the kubeconfig changed (or the Secret was re-created)
        state = ProbeState(
            uid=str(meta.get("uid") or ""),
            digest=digest,
            status=annotations.get("status") or annotations.get("clusterStatus") or STATUS_ACTIVE,
            transition=annotations.get("lastTransitionTime", ""),
            written={k: annotations.get(k, "") for k in _TRACKED},
            # What the Secret shows was written at its lastProbeTime: an unchanged result is written
            # again one heartbeat after that, not at once (a restart rewrote every Secret before).
            written_at=probed or 0.0,
            counted_at=_recorded_at(annotations.get("countedAt", ""), now),
            recorded=recorded_health(annotations, probed, now, self.settings) if state is None else None,
        )
        try:  # the policy is applied by pin() at every probe, so an operator's new rule takes effect
            state.kubeconfig = parse_kubeconfig(text)
            state.expiry = credential_expiry(state.kubeconfig)
        except KubeconfigRejected as exc:
            state.error = str(exc)
        self._states[name] = state
        return state

    def _probe_and_record(
        self, name: str, secret: dict[str, Any], state: ProbeState, tenure: int, count: bool | None = None
    ) -> None:
        """Probe one cluster and record the result (runs in the pool; each step isolated).

        ``tenure``: the ownership tenure the round began with; the result is recorded only under it.
        ``count``: whether to count it too (the round's choice); None: when its count is due.
        """
        if not self.ownership.owns(name):
            return  # its shard was released meanwhile (rebalancing, a stall): the probe does not start
        result = self._probe_isolated(name, state, count)
        if result is None:
            return  # the probe itself broke: nothing honest to record this round
        # The shard is not released while the write is under way: one replica writes a cluster's
        # health at a time, and never under a tenure other than the round's.
        with self.ownership.recording(name) as current:
            if current != tenure:
                return
            try:
                self._record(name, secret, state, result)
            except Exception as exc:
                _cluster_step_failed(name, "record the probe result", exc)
        self.progress_at = time.monotonic()

    def _probe_isolated(self, name: str, state: ProbeState, count: bool | None = None) -> ProbeResult | None:
        """``_probe``, with an unexpected exception logged for this cluster instead of ending the round."""
        try:
            return self._probe(state, count)
        except Exception as exc:
            _cluster_step_failed(name, "probe", exc)
            return None

    def _probe(self, state: ProbeState, count: bool | None = None) -> ProbeResult:
        """One probe of one cluster (runs in the pool), on its kept client or a new one.

        ``count``: also count it (when healthy); None: when its count is due (``count_due``).
        """
        if state.kubeconfig is None:
            return ProbeResult("BadKubeconfig", state.error)
        s = self.settings
        now = time.monotonic()
        recorded, state.recorded = state.recorded, None  # used by this process's first probe only
        # One wall-clock budget for the whole probe (resolution, exec plugin, every call): a cluster
        # that drips bytes or a plugin that hangs never holds the round longer. A cluster that failed
        # last time gets the shorter retry budget: a hanging one holds its slot for that long only.
        budget = s.timeout if state.failures == 0 else min(s.timeout, s.retry_timeout)
        timeout = (min(2.0, budget), budget)
        deadline = kube.deadline_in(budget)
        client = state.client
        if client is not None and (now - state.connected_at >= s.reconnect * state.reconnect_share
                                   or _certificate_expired(client)):  # fmt: skip
            state.close_client()  # a new connection: the server's certificate is verified again
            client = None
        if client is None or now - state.refreshed_at >= s.refresh * state.refresh_share:
            try:  # the name is resolved and checked now, then not resolved again until the next refresh
                pinned = self.policy.pin(state.kubeconfig, deadline)
                if client is not None and pinned != state.pinned:
                    state.close_client()  # another address (or policy): connect to the one just checked
                    client = None
                if client is None:
                    client = kube.KubeClient.from_kubeconfig(pinned, timeout, pool_size=1, deadline=deadline,
                                                             ssl_context=state.ssl_context)  # fmt: skip
                    state.client, state.pinned, state.connected_at = client, pinned, now
                    state.ssl_context = client.ssl_context
                    state.reconnect_share = random.uniform(0.5, 1.0)  # noqa: S311
                state.refreshed_at = now
                if recorded is not None:
                    # This process's first probe, of a cluster recorded healthy: /readyz on the new
                    # connection; the full probes of a restart's clusters spread over one refresh period.
                    state.known, state.refresh_share = recorded, random.uniform(0.0, 1.0)  # noqa: S311
                else:  # the full probe (version, identity) on the kept connection or the new one
                    state.known, state.refresh_share = None, random.uniform(0.5, 1.0)  # noqa: S311
            except KubeconfigRejected as exc:
                state.close_client()
                client, result = None, ProbeResult("BadKubeconfig", str(exc))
            except kube.KubeError as exc:
                state.close_client()
                client = None
                result = ProbeResult(exc.reason if exc.reason in _REPORTED_REASONS else "Unhealthy", exc.message)
        if client is not None:
            client.deadline = deadline  # this probe's budget, for every call on the kept client
            result = probe_cluster(client, state.expiry, state.known)
            if not result.healthy:
                state.close_client()
            elif state.known is None:
                state.known = ProbeResult(result.reason, result.message, result.version, result.uid)
            # Counts on the same client and within the probe's deadline; failures stay in countError.
            due = count_due(state, now, s) if count is None else count
            if s.count and result.healthy and due:
                result.counts = count_annotations(client, timeout, utc_now())
                # The first count is at once; the next one at a random point of the interval's second
                # half, after that every interval: clusters registered together spread over the rounds.
                first = state.counted_at is None
                state.counted_at = now - random.uniform(0, s.count_interval / 2) if first else now  # noqa: S311
        if s.count and not result.healthy:
            result.counts = {"countError": result.reason}
            state.counted_at = None  # counted again as soon as it is back
        self.progress_at = time.monotonic()
        metrics.observe_probe(result.reason, result.latency_ms / 1000)
        return result

    def _record(self, name: str, secret: dict[str, Any], state: ProbeState, result: ProbeResult) -> None:
        """Apply thresholds and backoff; write the annotations that changed (or a heartbeat)."""
        now = time.monotonic()
        s = self.settings
        advance(state, result.healthy, s, now)
        if self.on_result is not None:
            self.on_result(name, result, state.status)
        annotations = {
            "status": state.status,
            "reason": result.reason,
            "message": result.message,
            "lastProbeTime": utc_now(),
            "probeLatencyMs": str(result.latency_ms),
        }
        if state.transition:
            annotations["lastTransitionTime"] = state.transition
        if result.version:
            annotations["version"] = result.version
        annotations.update(result.counts)
        current_uid = ((secret.get("metadata") or {}).get("annotations") or {}).get("clusterUID", "")
        if result.uid and not current_uid:
            annotations["clusterUID"] = result.uid  # registered before identities were recorded
        tracked = {k: annotations[k] for k in _TRACKED if k in annotations}
        changed = any(state.written.get(k, "") != v for k, v in tracked.items())
        if not changed and "clusterUID" not in annotations and now - state.written_at < s.heartbeat:
            return
        # The UID in the patch is a precondition: results never land on a re-created Secret.
        patch = {"metadata": {"uid": state.uid, "annotations": annotations}}
        try:
            with self._writes:
                self._metadata().request("PATCH", kube.secret_path(self.namespace, name), body=patch,
                                         content_type="application/merge-patch+json")  # fmt: skip
        except (kube.NotFound, kube.Conflict):
            self._forget(name)
            return
        except kube.KubeError as exc:
            logs.warning({"clusterId": name, "error": str(exc)}, "probe result not written")
            return
        state.written.update(tracked)
        state.written_at = now
        if changed:
            logs.info({"clusterId": name, "status": state.status, "reason": result.reason,
                       "latencyMs": result.latency_ms}, "cluster health changed")  # fmt: skip

    def _forget(self, name: str) -> None:
        """Drop a cluster's state (and close its kept client)."""
        state = self._states.pop(name, None)
        if state is not None:
            state.close_client()

    def _drop_states(self) -> None:
        """Forget everything and close every kept client (used when this process is not the leader)."""
        states, self._states = self._states, {}
        for state in states.values():
            state.close_client()
