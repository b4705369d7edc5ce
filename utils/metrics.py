"""Prometheus metrics: HTTP requests per route, the registry, cluster health and probes.

Under gunicorn every worker is a process of its own. With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py
sets it before the workers start) each worker writes its samples to files in that directory and a scrape,
answered by whichever worker, adds up every worker's files. Without it (``flask run``, tests in one
process) the samples live in this process. Per-cluster values are not kept here: they are read from the
registry at scrape time, so every worker and replica reports the same values, and a deleted cluster's
series disappear at once (label removal does not work in multiprocess mode).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

# The samples of this process; in multiprocess mode they are also written to the shared directory.
_LOCAL = CollectorRegistry()

# Methods outside this set are counted as "other": a client choosing arbitrary methods must not be able to
# create series (routes are bounded the same way: the Flask rule template, or "unmatched").
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"

HTTP_REQUESTS = Counter(
    "krm_http_requests",
    "HTTP requests answered, by route template, method, HTTP status and envelope status (api_status, /api only).",
    ["route", "method", "code", "api_status"],
    registry=_LOCAL,
)
# Buckets around the frontend's 2 s budget: most answers take milliseconds, a slow cluster up to ~2.5 s.
HTTP_LATENCY = Histogram(
    "krm_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
    registry=_LOCAL,
)
PROBES = Counter(
    "krm_cluster_probes",
    "Health probes of registered clusters, by result reason (Healthy, Unreachable, Timeout, ...).",
    ["reason"],
    registry=_LOCAL,
)
PROBE_LATENCY = Histogram(
    "krm_cluster_probe_duration_seconds",
    "Time one health probe of a registered cluster took (all clusters together).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
    registry=_LOCAL,
)
CLIENT_BUILDS = Counter(
    "krm_cluster_clients_built",
    "Clients of registered clusters built by the platform's client cache (a new TLS connection each).",
    registry=_LOCAL,
)
SECRET_READS = Counter(
    "krm_cluster_secret_reads",
    "Cluster Secrets read for cluster/get, by source: cache (unchanged per the watch, no API call) or api.",
    ["source"],
    registry=_LOCAL,
)
# livesum: a scrape adds up the running workers' values (a dead worker's sessions died with it).
WS_SESSIONS = Gauge(
    "krm_ws_sessions",
    "WebSocket sessions (pod/log, pod/exec, tools/ping) open now, summed over the running workers.",
    ["kind"],
    multiprocess_mode="livesum",
    registry=_LOCAL,
)


def observe_client_build() -> None:
    """The client cache built a client for a registered cluster."""
    CLIENT_BUILDS.inc()


def observe_secret_read(source: str) -> None:
    """cluster/get read a cluster Secret from ``cache`` or the ``api``."""
    SECRET_READS.labels(source=source).inc()


def observe_ws_session(kind: str, delta: int) -> None:
    """A WebSocket session of ``kind`` (log, exec, ping) was admitted (+1) or ended (-1)."""
    WS_SESSIONS.labels(kind=kind).inc(delta)


def method_label(method: str) -> str:
    """The method as a label value, with anything unusual folded into ``other``."""
    return method if method in _METHODS else "other"


def observe_request(route: str, method: str, code: int, api_status: int | None, seconds: float | None) -> None:
    """Count one answered request and, when its start is known, its latency."""
    method = method_label(method)
    HTTP_REQUESTS.labels(route, method, str(code), "" if api_status is None else str(api_status)).inc()
    if seconds is not None:
        HTTP_LATENCY.labels(route, method).observe(seconds)


def observe_probe(reason: str, seconds: float) -> None:
    """The prober's hook: one probe of a registered cluster finished with ``reason`` after ``seconds``."""
    PROBES.labels(reason or "Unknown").inc()
    PROBE_LATENCY.observe(max(seconds, 0.0))


def multiprocess_dir() -> str | None:
    """The directory the workers share samples through, or None in single-process mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _rfc3339_seconds(value: str) -> float | None:
    """An RFC 3339 time (``2026-01-02T15:04:05Z``) as Unix seconds, or None."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


class RegistryCollector:
    """Registry size and per-cluster health, from the list items of this scrape (None: not readable)."""

    def __init__(self, items: list[dict[str, str]] | None) -> None:
        """Keep the items read for this scrape."""
        self.items = items

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges; only ``krm_registry_up 0`` when the registry could not be read."""
        up = GaugeMetricFamily("krm_registry_up", "1 when the cluster registry could be read for this scrape.")
        up.add_metric([], 0.0 if self.items is None else 1.0)
        yield up
        if self.items is None:
            return
        size = GaugeMetricFamily("krm_registered_clusters", "Clusters in the registry.")
        size.add_metric([], float(len(self.items)))
        yield size
        ready = GaugeMetricFamily(
            "krm_cluster_ready", "1 when a registered cluster's status is Active, else 0.", labels=["cluster"]
        )
        latency = GaugeMetricFamily(
            "krm_cluster_probe_latency_seconds",
            "Duration of the last health probe of a registered cluster.",
            labels=["cluster"],
        )
        probed = GaugeMetricFamily(
            "krm_cluster_last_probe_timestamp_seconds",
            "When a registered cluster was last probed (Unix time); a stale value means no prober runs.",
            labels=["cluster"],
        )
        for item in self.items:
            cluster = item.get("id", "")
            ready.add_metric([cluster], 1.0 if item.get("status") == "Active" else 0.0)
            latency_ms = item.get("probeLatencyMs", "")
            if latency_ms.isdigit():
                latency.add_metric([cluster], int(latency_ms) / 1000.0)
            when = _rfc3339_seconds(item.get("lastProbeTime", "")) if item.get("lastProbeTime") else None
            if when is not None:
                probed.add_metric([cluster], when)
        yield from (ready, latency, probed)


class _LocalCollector:
    """This process's own samples (single-process mode)."""

    def collect(self) -> Iterable[Metric]:
        """Everything registered in the local registry."""
        return _LOCAL.collect()


def exposition(items: list[dict[str, str]] | None, accept: str | None = None) -> tuple[bytes, str]:
    """Every metric (all workers' in multiprocess mode) and the content type, in the format ``accept`` asks.

    The Prometheus text format 0.0.4 unless the scraper asks for OpenMetrics (prometheus_client's negotiation).
    """
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_LocalCollector())
    registry.register(RegistryCollector(items))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
