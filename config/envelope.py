"""The response envelope every /api route answers with: HTTP 200, outcome in the body."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def envelope(status: int, message: str, data: dict[str, Any] | None = None) -> Response:
    """``{"status", "message", "data"}`` in that order, always HTTP 200, ``data`` always an object."""
    body = orjson.dumps({"status": status, "message": message, "data": data if data is not None else {}})
    return Response(body, status=200, content_type=JSON_CONTENT_TYPE)


def ok(message: str, data: dict[str, Any] | None = None) -> Response:
    """A success envelope."""
    return envelope(200, message, data)
