"""Blueprints: HTTP in, envelope out. ``register`` attaches them and the error handlers."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import orjson
from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException

from config.constants import (
    MSG_BAD_BODY,
    MSG_BAD_TOKEN,
    MSG_INTERNAL,
    MSG_METHOD_NOT_ALLOWED,
    MSG_NOT_FOUND,
    MSG_NOT_READY,
    MSG_TOO_LARGE,
)
from config.envelope import envelope
from config.settings import Settings
from controllers import auth as auth_controller
from controllers.auth.limiter import LoginLimiter
from controllers.auth.revocation import RevocationList
from controllers.cluster import ClusterContext
from controllers.errors import AuthFailed, BadRequest, ServiceError, Unavailable
from initcontroller import Bootstrap, Credentials
from utils import logs

BOOTSTRAP_GRACE_SECONDS = 1.0
PUBLIC_API = frozenset({"/api/auth/login", "/api/auth/logout"})


class Wiring(Protocol):
    """What routers read of the app's wiring (``app.Backend``, built by the factory; routers never build it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def bootstrap(self) -> Bootstrap: ...

    @property
    def clusters(self) -> ClusterContext: ...

    @property
    def revocations(self) -> RevocationList | None: ...

    @property
    def login_limiter(self) -> LoginLimiter: ...

    @property
    def verified_tokens(self) -> auth_controller.VerifiedTokens: ...

    @property
    def credentials(self) -> Credentials | None: ...


def backend() -> Wiring:
    """This app's wiring."""
    return current_app.extensions["krm"]


def json_body(bind_message: str) -> dict[str, Any]:
    """The request body as a JSON object (whatever the Content-Type, as Gin's ShouldBindJSON)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest(f"{bind_message}: request body is empty")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(f"{bind_message}: request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{bind_message}: request body must be a JSON object")
    return data


def require_ready() -> Wiring:
    """The backend once bootstrap is done; ``Unavailable`` before."""
    b = backend()
    if b.credentials is None:
        # Another worker may have answered /readyz while this one (forked at the same time) finishes
        # its own bootstrap, normally within milliseconds: wait that long rather than fail the request.
        b.bootstrap.wait(BOOTSTRAP_GRACE_SECONDS)
    if b.credentials is None:
        raise Unavailable(f"{MSG_NOT_READY} ({b.bootstrap.last_error})")
    return b


def _authenticate() -> None:
    """Every /api route but login and logout needs a valid token (CORS preflights pass)."""
    if not request.path.startswith("/api/") or request.method == "OPTIONS":
        return
    if request.path.rstrip("/") in PUBLIC_API:
        return
    if is_websocket_upgrade() and _offered_subprotocols():
        b = require_ready()
        offered = _offered_subprotocols()
        for candidate in offered:
            # The browser offers the token as its only subprotocol (§3.1); the one that validates is echoed.
            with contextlib.suppress(AuthFailed):
                g.claims = _valid_claims(b, candidate)
                g.ws_subprotocol = candidate
                return
        if not request.headers.get("Authorization", "").strip():
            raise AuthFailed(MSG_BAD_TOKEN)
    token = auth_controller.token_from_header(request.headers.get("Authorization"))
    g.claims = _valid_claims(require_ready(), token)


def _valid_claims(b: Wiring, token: str) -> dict:
    """The claims of a token that is valid and not logged out; ``AuthFailed`` otherwise."""
    claims = auth_controller.verify(token, b.verified_tokens)
    if b.revocations is not None and b.revocations.is_revoked(token):
        raise AuthFailed(MSG_BAD_TOKEN)  # logged out: same answer as any other dead token
    return claims


def is_websocket_upgrade() -> bool:
    """True for a WebSocket handshake (Go reads the subprotocol whenever both headers say so)."""
    connection = {part.strip().lower() for part in request.headers.get("Connection", "").split(",")}
    return "upgrade" in connection and request.headers.get("Upgrade", "").strip().lower() == "websocket"


def _offered_subprotocols() -> list[str]:
    """The subprotocols a handshake offers; the logged-out frontend's ``null`` counts as none."""
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in header.split(",") if p.strip() and p.strip() != "null"]


def _is_api() -> bool:
    """True for requests under /api (they get the envelope, always HTTP 200)."""
    return request.path == "/api" or request.path.startswith("/api/")


def _service_error(exc: ServiceError):
    """A domain error as the envelope."""
    if exc.status >= 500:
        logs.error({"path": request.path, "status": exc.status, "error": exc.message}, "request failed")
    return envelope(exc.status, exc.message, exc.data)


def _http_error(exc: HTTPException):
    """Routing errors: the envelope under /api, plain JSON elsewhere."""
    code = exc.code or 500
    if _is_api():
        if code == 404:
            return envelope(404, MSG_NOT_FOUND)
        if code == 405:
            return envelope(400, MSG_METHOD_NOT_ALLOWED)
        if code == 413:
            _drain_body()
            return envelope(400, MSG_TOO_LARGE)
        return envelope(400 if code < 500 else 500, exc.description or exc.name)
    return current_app.response_class(
        orjson.dumps({"status": code, "message": exc.name}), status=code, mimetype="application/json"
    )


# An oversized body is read and dropped up to this size before answering: a client still sending
# when the server closes gets a connection reset instead of the 400 (gunicorn itself drains 64 KiB).
DRAIN_LIMIT = 16 * 1024 * 1024


def _drain_body() -> None:
    """Read and drop the rest of an oversized request body (bounded) so the client reads the answer."""
    length = request.content_length
    if length is not None and length > DRAIN_LIMIT:
        return  # not worth reading: the connection is closed after the answer anyway
    stream = request.environ.get("wsgi.input")
    left = DRAIN_LIMIT
    try:
        while stream is not None and left > 0:
            chunk = stream.read(min(65536, left))
            if not chunk:
                break
            left -= len(chunk)
    except Exception:  # noqa: S110 - best effort: a broken body only means the connection closes
        pass


def _unexpected(exc: Exception):
    """Anything else: logged with its type, answered without a traceback."""
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if type(exc).__module__.startswith("gunicorn.http"):
        # The server failed to read the body the client framed (bad chunk, truncated): the client's fault.
        logs.info({"path": request.path, "error": type(exc).__name__}, "malformed request body")
        if _is_api():
            return envelope(400, MSG_BAD_BODY)
        return current_app.response_class(
            orjson.dumps({"status": 400, "message": MSG_BAD_BODY}), status=400, mimetype="application/json"
        )
    logs.error({"path": request.path, "error": f"{type(exc).__name__}: {exc}"}, "unexpected error")
    if _is_api():
        return envelope(500, MSG_INTERNAL)
    return current_app.response_class(
        orjson.dumps({"status": 500, "message": MSG_INTERNAL}), status=500, mimetype="application/json"
    )


def register(app: Flask) -> None:
    """Attach the blueprints, the token check and the error handlers."""
    from routers import cors, metrics
    from routers.auth import bp as auth_bp
    from routers.cluster import bp as cluster_bp
    from routers.composite import bp as composite_bp
    from routers.health import bp as health_bp
    from routers.openapi import bp as openapi_bp
    from routers.resources import bp as resources_bp
    from routers.terminal import bp as terminal_bp

    metrics.instrument(app)  # first, so that its timer starts before any other before-request work
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(cluster_bp)
    app.register_blueprint(resources_bp)
    app.register_blueprint(composite_bp)
    app.register_blueprint(terminal_bp)
    cors.init_app(app)  # its preflight answer runs before the token check
    app.before_request(_authenticate)
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


__all__ = ["AuthFailed", "Wiring", "backend", "is_websocket_upgrade", "json_body", "register", "require_ready"]
