"""/api/pod/log and /api/pod/exec over WebSocket (contract-platform.md §3): the WebSocket plumbing.

``serve_ping`` is the same plumbing for /api/tools/ping (§2.9), which ``routers.composite`` registers
with the other tools routes.

The token check (subprotocol, else ``Authorization``) runs before any route (``routers._authenticate``)
and refuses the upgrade with the 401 envelope. Here: exec switched off → the 403 envelope; a GET
without upgrade headers → 400 ``需要WebSocket连接``; otherwise the upgrade (echoing the subprotocol
that validated), and everything after it is a text frame plus a close code (``controllers.terminal``).

Served by simple-websocket on the gunicorn thread that took the request: ``gunicorn.conf.py`` gives
each worker ``WS_MAX_SESSIONS`` threads beyond ``GUNICORN_THREADS``, so sessions never take the
threads of ordinary requests. flask-sock (the same author's Flask wrapper) is not used: its route
decorator upgrades before the view runs, with fixed options, so it can neither answer the 400/403
envelopes nor echo the per-request token.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from simple_websocket import ConnectionClosed, Server

from config.constants import MSG_BIND, MSG_FEATURE_DISABLED, MSG_WS_REQUIRED
from config.settings import Settings
from controllers import terminal
from controllers.errors import BadRequest, ServiceError
from controllers.resources.cleaning import valid_segment
from routers import is_websocket_upgrade, require_ready
from utils import logs

bp = Blueprint("terminal", __name__, url_prefix="/api")

MAX_FRAME_BYTES = 64 * 1024  # a browser frame larger than this closes the socket (1009)
QUERY_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
# Accepted spellings per field (§1.2); the first non-empty one counts, two that disagree are refused.
SPELLINGS = {
    "clusterId": ("clusterId", "clusterid", "cluster_id"),
    "nameSpace": ("nameSpace", "namespace"),
    "name": ("name",),
    "container": ("container",),
    "tailLines": ("tailLines",),
    "follow": ("follow",),
    "defaultCommand": ("defaultCommand",),
    "defaultComamnd": ("defaultComamnd",),
}


class _Server(Server):
    """simple-websocket's server, answering with the subprotocol that carried the valid token."""

    def __init__(self, environ: dict[str, Any], subprotocol: str | None, **options: Any) -> None:
        """Upgrade now (the 101 goes out before this returns)."""
        self._chosen = subprotocol
        super().__init__(environ, **options)

    def choose_subprotocol(self, request: Any) -> str | None:
        """Echo the validated token (browsers fail a socket whose offered subprotocol is not echoed)."""
        return self._chosen if self._chosen in request.subprotocols else None

    def _handle_events(self) -> bool:
        """simple-websocket's event handling; a connection it gives up on is marked closed, its reader woken.

        On a frame over ``max_message_size`` simple-websocket (1.1.0) wakes ``receive`` before its
        reader thread marks the connection closed; a ``receive`` that runs in between waits again,
        and nothing wakes it later, so the session would hang until its idle limit (the exec's
        upstream stream open all that time).
        """
        keep_going: bool = super()._handle_events()
        if not keep_going:
            self.connected = False
            self.event.set()
        return keep_going


class _Browser:
    """``controllers.terminal.Browser`` over a simple-websocket connection; sends are serialised."""

    def __init__(self, ws: _Server) -> None:
        """Wrap the upgraded connection."""
        self.ws = ws
        self._lock = threading.Lock()
        self._closed = False

    def send(self, data: str | bytes) -> None:
        """One text frame (``bytes``: one binary frame)."""
        with self._lock:
            if self._closed:
                raise terminal.BrowserGone()
            try:
                self.ws.send(data)
            except (ConnectionClosed, OSError):
                raise terminal.BrowserGone() from None

    def receive(self, timeout: float | None) -> str | bytes | None:
        """The next frame, None on timeout."""
        try:
            return self.ws.receive(timeout)
        except (ConnectionClosed, OSError):
            raise terminal.BrowserGone() from None

    def close(self, code: int, reason: str) -> None:
        """Close once, and wake a thread waiting in ``receive``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(ConnectionClosed, OSError):
                self.ws.close(code, reason)
        self.ws.event.set()

    def too_large(self) -> bool:
        """True when simple-websocket refused an oversized frame."""
        return self.ws.incoming_message_len > MAX_FRAME_BYTES


class _Upgraded(Response):
    """The reply after a WebSocket session: the connection is done, nothing more is written."""

    mode = "gunicorn"

    def __call__(self, environ: Any, start_response: Any) -> Any:
        """Gunicorn closes the connection on StopIteration (as flask-sock does); the dev server gets an empty reply."""
        if self.mode == "gunicorn":
            raise StopIteration()
        return super().__call__(environ, start_response)


def _field(args: Any, name: str) -> str:
    """One query field by any of its spellings; two spellings with different values are a bind error."""
    values = {args.get(key) for key in SPELLINGS[name] if args.get(key) not in (None, "")}
    if len(values) > 1:
        raise terminal.SessionRefused(f"{MSG_BIND}: {name}: 不同写法的取值不一致")
    return values.pop().strip() if values else ""


def _segment(name: str, value: str, required: bool = True) -> str:
    """A name that can be a REST path segment (§1.3)."""
    if not value and not required:
        return value
    if not value:
        raise terminal.SessionRefused(f"{MSG_BIND}: {name}: 不能为空")
    if not valid_segment(value):
        raise terminal.SessionRefused(f"{MSG_BIND}: {name}: {value[:100]!r} 不是有效的名称")
    return value


def _user() -> str:
    """Who the validated token names (for the audit line)."""
    claims = g.get("claims") or {}
    return str(claims.get("username") or claims.get("sub") or "")


def _target(args: Any) -> terminal.Target:
    """Cluster, namespace (default ``default``), pod and container from the query."""
    cluster_id = _field(args, "clusterId")
    if not cluster_id:
        raise terminal.SessionRefused(f"{MSG_BIND}: 缺少参数: clusterId")
    return terminal.Target(
        user=_user(),
        cluster_id=cluster_id,
        namespace=_segment("nameSpace", _field(args, "nameSpace") or "default"),
        pod=_segment("name", _field(args, "name")),
        container=_segment("container", _field(args, "container"), required=False),
    )


def _tail_lines(args: Any) -> int:
    """``tailLines``: default 100, at most 10,000 (more is cut to that)."""
    raw = _field(args, "tailLines")
    if not raw:
        return terminal.DEFAULT_TAIL_LINES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise terminal.SessionRefused(f"{MSG_BIND}: tailLines: 必须是0到{terminal.MAX_TAIL_LINES}之间的整数")
    return min(value, terminal.MAX_TAIL_LINES)


def _follow(args: Any) -> bool:
    """``follow``: default true."""
    raw = _field(args, "follow").lower()
    if raw and raw not in QUERY_BOOLEANS:
        raise terminal.SessionRefused(f"{MSG_BIND}: follow: 必须是 true、false、1 或 0")
    return QUERY_BOOLEANS.get(raw, True)


def _upgrade(settings: Settings) -> _Server:
    """The upgraded connection (the 101 sent), or the 400 envelope when this is no usable handshake."""
    if request.method != "GET" or not is_websocket_upgrade():
        raise BadRequest(MSG_WS_REQUIRED)
    try:
        return _Server(request.environ, g.get("ws_subprotocol"), ping_interval=settings.ws_ping_seconds,
                       max_message_size=MAX_FRAME_BYTES)  # fmt: skip
    except Exception as exc:  # a malformed handshake (no key, wrong version): nothing was upgraded
        logs.info({"path": request.path, "error": type(exc).__name__}, "websocket handshake refused")
        raise BadRequest(MSG_WS_REQUIRED) from None


def _after(ws: _Server) -> Response:
    """The view's return value once the session is over."""
    reply = _Upgraded()
    reply.mode = ws.mode
    return reply


def _serve(kind: str) -> Response:
    """Refuse, or upgrade and run the session on this thread until it ends."""
    settings = require_ready().settings
    if kind == "exec" and not settings.enable_pod_exec:
        raise ServiceError(MSG_FEATURE_DISABLED, 403)
    ws = _upgrade(settings)
    session_terminal: terminal.Terminal = current_app.extensions["krm.terminal"]
    browser = _Browser(ws)
    try:
        args = request.args
        target = _target(args)
        if kind == "log":
            tail, follow = _tail_lines(args), _follow(args)
        else:
            command = terminal.exec_command(_field(args, "defaultCommand"), _field(args, "defaultComamnd"))
    except terminal.SessionRefused as exc:
        logs.info({"path": request.path, "reason": exc.message}, "websocket request refused")
        with contextlib.suppress(terminal.BrowserGone):
            browser.send(exc.message)
        browser.close(exc.code, "bad request")
    else:
        if kind == "log":
            terminal.run_log(session_terminal, browser, target, tail, follow)
        else:
            terminal.run_exec(session_terminal, browser, target, command)
    return _after(ws)


def serve_ping() -> Response:
    """tools/ping: upgrade, then echo every frame with the time appended until the session ends."""
    ws = _upgrade(require_ready().settings)
    terminal.run_ping(current_app.extensions["krm.terminal"], _Browser(ws), _user())
    return _after(ws)


# Werkzeug matches a handshake only to a rule marked ``websocket`` (and a plain request only to one that
# is not), so each path has both: the plain one answers the 400 envelope.
@bp.route("/pod/log", methods=["GET", "POST"])
@bp.route("/pod/log", methods=["GET"], websocket=True, endpoint="pod_log")
def pod_log() -> Response:
    """Follow a pod's log: one text frame per line."""
    return _serve("log")


@bp.route("/pod/exec", methods=["GET", "POST"])
@bp.route("/pod/exec", methods=["GET"], websocket=True, endpoint="pod_exec")
def pod_exec() -> Response:
    """A terminal in a container."""
    return _serve("exec")
