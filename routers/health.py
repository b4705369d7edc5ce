"""/healthz (alive) and /readyz (metadata cluster answers, namespace exists): no token, no envelope."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response

from routers import backend
from utils import kube

bp = Blueprint("health", __name__)


def _json(status: int, body: dict) -> Response:
    """A plain JSON answer with a real HTTP status (probes read the code)."""
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


@bp.get("/healthz")
def healthz():
    """The process is alive."""
    return _json(200, {"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when bootstrap is done and the metadata namespace answers right now."""
    b = backend()
    if b.credentials is None:
        return _json(503, {"status": "not ready", "reason": b.bootstrap.last_error})
    try:
        # A short timeout: a probe must answer even when the metadata cluster hangs.
        b.metadata.client.request("GET", kube.namespace_path(b.settings.metadata_namespace),
                                  timeout=(1.0, 1.0))  # fmt: skip
    except kube.KubeError as exc:
        return _json(503, {"status": "not ready", "reason": f"metadata cluster: {exc}"})
    return _json(200, {"status": "ok"})
