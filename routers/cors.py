"""Optional CORS for /api: an allow-list of origins (``CORS_ALLOW_ORIGINS``), preflights answered.

Empty list (the default): no CORS header is ever sent, as before. Otherwise a preflight (``OPTIONS``
with ``Access-Control-Request-Method``) on any /api path is answered 204 without a token, with the
allow headers only for a listed origin; real answers carry ``Access-Control-Allow-Origin`` for a
listed origin. Tokens travel in the ``Authorization`` header, not in cookies, so no credentials mode.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
MAX_AGE_SECONDS = "600"  # browsers cache a preflight this long (Chromium caps it at 7200)


def _origins() -> tuple[str, ...]:
    """The configured allow-list."""
    return current_app.extensions["krm"].settings.cors_allow_origins


def allowed_origin(origin: str | None, origins: tuple[str, ...]) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin``, or None when it is not allowed."""
    if not origin or not origins:
        return None
    if origin in origins:
        return origin
    return "*" if "*" in origins else None


def _is_api() -> bool:
    """CORS applies to /api only (probes and the rest are not for browsers)."""
    return request.path == "/api" or request.path.startswith("/api/")


def _preflight() -> Response | None:
    """Answer a preflight before the token check and routing (it carries no token)."""
    origins = _origins()
    if not origins or request.method != "OPTIONS" or not _is_api():
        return None
    if "Access-Control-Request-Method" not in request.headers:
        return None  # a plain OPTIONS request: routing answers it as before
    response = Response(status=204)
    allow = allowed_origin(request.headers.get("Origin"), origins)
    if allow is not None:
        response.headers["Access-Control-Allow-Origin"] = allow
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = MAX_AGE_SECONDS
    response.vary.add("Origin")
    return response


def _allow_header(response: Response) -> Response:
    """Add ``Access-Control-Allow-Origin`` to /api answers for a listed origin."""
    origins = _origins()
    if origins and _is_api() and "Access-Control-Allow-Origin" not in response.headers:
        allow = allowed_origin(request.headers.get("Origin"), origins)
        if allow is not None:
            response.headers["Access-Control-Allow-Origin"] = allow
        response.vary.add("Origin")
    return response


def init_app(app: Flask) -> None:
    """Register the preflight answer (before the token check) and the allow header."""
    app.before_request(_preflight)
    app.after_request(_allow_header)
