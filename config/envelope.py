"""The response envelope every /api route answers with: HTTP 200, outcome in the body."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class RawItems:
    """A JSON array lying in ``body[start:end]`` (a LIST answer's ``items``), written out without a copy.

    ``ok_items`` joins the envelope around it in one pass: the reply of a 5,000-Pod list costs one copy
    of the answer instead of three (slice, ``orjson.Fragment``, serialised envelope).
    """

    body: bytes
    start: int
    end: int


def ok_items(message: str, items: RawItems | list[Any]) -> Response:
    """A success envelope whose ``data`` is ``{"items": items}``."""
    if not isinstance(items, RawItems):
        return ok(message, {"items": items})
    head = orjson.dumps({"status": 200, "message": message, "data": {"items": orjson.Fragment(b"0")}})
    assert head.endswith(b"0}}")
    body = b"".join((head[:-3], memoryview(items.body)[items.start : items.end], b"}}"))
    return Response(body, status=200, content_type=JSON_CONTENT_TYPE)
