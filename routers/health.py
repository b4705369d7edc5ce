"""/healthz (alive) and /readyz (metadata cluster answers, namespace exists): no token, no envelope."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response

from routers import backend

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
    reason = backend().bootstrap.readiness()
    if reason is not None:
        return _json(503, {"status": "not ready", "reason": reason})
    return _json(200, {"status": "ok"})
