"""GET /metrics (Prometheus text format, no token) and the per-request instrumentation.

Not for the public: it names every registered cluster. Expose it to the cluster's Prometheus only (the
manifests annotate the pods for scraping; an Ingress should route /api only).
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from controllers import cluster
from controllers.errors import ServiceError
from routers import backend
from utils import metrics

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():
    """Every metric in the Prometheus text format."""
    body, content_type = metrics.exposition(_registry_items(), request.headers.get("Accept"))
    return Response(body, status=200, content_type=content_type)


def _registry_items() -> list[dict[str, str]] | None:
    """The registered clusters as list items, or None before bootstrap or when they cannot be read."""
    b = backend()
    if b.credentials is None:
        return None
    try:
        return cluster.list_clusters(b.clusters)
    except ServiceError:
        return None


def envelope_status(response: Response) -> int | None:
    """The envelope's ``status`` of an /api answer, read from the first bytes of the body.

    The contract fixes the key order (``status`` first) and the envelope is written compactly, so the
    body starts with ``{"status":NNN``; reading 13 bytes avoids parsing a 1,000-item list per request.
    """
    if response.is_streamed or response.mimetype != "application/json":
        return None
    head = response.get_data()[:13]
    if head.startswith(b'{"status":') and head[10:13].isdigit():
        return int(head[10:13])
    return None


def _start_timer() -> None:
    """Remember when the request started (the first before-request function)."""
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    """Count the answered request by its route template (bounded cardinality, never the raw path)."""
    started = g.get("metrics_started")
    seconds = time.perf_counter() - started if started is not None else None
    rule = request.url_rule
    route = rule.rule if rule is not None else metrics.UNMATCHED_ROUTE
    api_status = envelope_status(response) if request.path.startswith("/api") else None
    metrics.observe_request(route, request.method, response.status_code, api_status, seconds)
    return response


def instrument(app: Flask) -> None:
    """Time and count every request; call before any other ``before_request`` is registered."""
    app.before_request(_start_timer)
    app.after_request(_observe)
