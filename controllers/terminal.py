"""WebSocket sessions (contract-platform.md §3, §2.9): pod log follow, exec and the tools/ping echo.

The browser side is a ``Browser`` (the router wraps its WebSocket in one), so this module knows no
WebSocket library. A session runs on the thread that serves its request, plus (log, exec) one pump
thread that copies the upstream stream to the browser; ``SessionRegistry`` bounds how many run in a
process and ends them all on shutdown. Every session writes an audit line when it starts and one when
it ends (user, cluster, namespace, pod, container, command, duration, end reason), never its input or output.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from config.constants import (
    MSG_CLUSTER_TIMEOUT,
    MSG_CLUSTER_UNREACHABLE,
    MSG_CONTAINER_NOT_FOUND,
    MSG_EXEC_FAILED,
    MSG_INTERNAL,
    MSG_LOG_ENDED,
    MSG_LOG_FAILED,
    MSG_LOG_MAX,
    MSG_POD_NOT_FOUND,
    MSG_POD_NOT_RUNNING,
    MSG_POD_QUERY_FAILED,
    MSG_SERVER_STOPPING,
    MSG_SESSION_IDLE,
    MSG_SESSION_MAX,
    MSG_UPSTREAM_CLOSED,
    MSG_WS_TOO_MANY,
)
from controllers.errors import ServiceError
from utils import kube, logs, metrics, upstream

# WebSocket close codes (RFC 6455 §7.4.1).
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_INTERNAL, CLOSE_TRY_AGAIN = 1000, 1001, 1008, 1011, 1013

# Session kinds (the metrics label) and the action each one audits as.
KIND_LOG, KIND_EXEC, KIND_PING = "log", "exec", "ping"
ACTIONS = {KIND_LOG: "pod/log", KIND_EXEC: "pod/exec", KIND_PING: "tools/ping"}

# End reasons in the audit line.
END_CLIENT = "client closed"
END_EXITED = "process exited"
END_EXEC_ERROR = "exec error"
END_STREAM_ENDED = "stream ended"
END_LOG_MAX = "max duration"
END_IDLE = "idle timeout"
END_MAX = "max duration"
END_SHUTDOWN = "server shutdown"
END_BAD_INPUT = "bad input"
END_UPSTREAM = "upstream error"
END_FRAME_TOO_LARGE = "frame too large"

MAX_LINE_BYTES = 64 * 1024  # a log line longer than this is sent in pieces of at most this size
DEFAULT_TAIL_LINES = 100
MAX_TAIL_LINES = 10_000
DEFAULT_COMMAND = "/bin/bash"  # Go's default; the frontend's first exec misspells the parameter
TERMINAL_SIZE_MAX = 65535
PUMP_JOIN_SECONDS = 5.0  # a cancelled upstream returns within milliseconds; this only bounds a bug
STREAM_HEADERS_SECONDS = 10.0  # the API server answers a log or exec request once the kubelet does


class BrowserGone(Exception):
    """The browser closed the WebSocket (or the connection broke)."""


class Browser(Protocol):
    """The browser side of a session, as the router provides it."""

    def send(self, data: str | bytes) -> None:
        """One text frame (``bytes``: one binary frame); raises ``BrowserGone`` when the socket is closed."""

    def receive(self, timeout: float | None) -> str | bytes | None:
        """The next frame (None on timeout); raises ``BrowserGone`` when the socket is closed."""

    def close(self, code: int, reason: str) -> None:
        """Close with ``code`` (idempotent); wakes a thread blocked in ``receive``."""

    def too_large(self) -> bool:
        """True when the socket was closed because a frame exceeded the size limit."""


class SessionRefused(Exception):
    """A session that cannot start: ``message`` is sent as a text frame, then the close ``code``."""

    def __init__(self, message: str, code: int = CLOSE_POLICY, reason: str = END_BAD_INPUT) -> None:
        """Keep the message, the close code and the audit end reason."""
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class TerminalLimits:
    """Bounds of sessions (settings, see the README)."""

    max_sessions: int = 50
    log_max_seconds: float = 300.0
    exec_idle_seconds: float = 1800.0
    exec_max_seconds: float = 14400.0
    budget_seconds: float = 4.5  # the cluster lookup and the Pod read before a session starts


@dataclass(frozen=True)
class Target:
    """What a session is opened on, as bound from the request."""

    user: str
    cluster_id: str
    namespace: str
    pod: str
    container: str = ""


@dataclass(eq=False)
class Session:
    """One running session: who, where, what, and how it ends."""

    kind: str
    target: Target
    command: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = field(default_factory=time.monotonic)
    end_reason: str = ""
    exit_code: int | None = None
    container: str = ""
    browser: Browser | None = None
    _stop_hooks: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)

    def on_stop(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the session stops (at once if it already has)."""
        with self._lock:
            if not self.stopped.is_set():
                self._stop_hooks.append(hook)
                return
        hook()

    def stop(self, reason: str, code: int = CLOSE_NORMAL, message: str = "", notice: str = "") -> bool:
        """End the session once: record why, cancel upstream, send ``notice``, close the browser.

        Returns False when it had already stopped (the first reason wins).
        """
        with self._lock:
            if self.stopped.is_set():
                return False
            self.end_reason = reason
            self.stopped.set()
            hooks, self._stop_hooks = self._stop_hooks, []
        for hook in hooks:  # upstream first, so nothing more is sent to the browser after the notice
            with contextlib.suppress(Exception):
                hook()
        if self.browser is not None:
            if notice:
                with contextlib.suppress(BrowserGone):
                    self.browser.send(notice)
            self.browser.close(code, message)
        return True

    @property
    def action(self) -> str:
        """What the audit line calls this session: ``pod/log``, ``pod/exec`` or ``tools/ping``."""
        return ACTIONS[self.kind]

    def audit_fields(self) -> dict[str, Any]:
        """The audit line's fields: never input, output or the token (a ping has no cluster or Pod)."""
        fields: dict[str, Any] = {"audit": True, "action": self.action, "sessionId": self.id, "user": self.target.user}
        if self.kind == KIND_PING:
            return fields
        return {**fields, "clusterId": self.target.cluster_id, "namespace": self.target.namespace,
                "pod": self.target.pod, "container": self.container or self.target.container,
                "command": self.command}  # fmt: skip


class SessionRegistry:
    """The sessions of this process: at most ``max_sessions``, all ended by ``shutdown``."""

    def __init__(self, max_sessions: int) -> None:
        """An empty registry."""
        self.max_sessions = max_sessions
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()
        self._closing = False

    def admit(self, session: Session) -> bool:
        """Count ``session`` in; False when the process is at its limit or shutting down."""
        with self._lock:
            if self._closing or len(self._sessions) >= self.max_sessions:
                return False
            self._sessions.add(session)
        metrics.observe_ws_session(session.kind, 1)
        return True

    def release(self, session: Session) -> None:
        """Count a finished session out."""
        with self._lock:
            if session not in self._sessions:
                return
            self._sessions.discard(session)
        metrics.observe_ws_session(session.kind, -1)

    def count(self) -> int:
        """Sessions running now."""
        with self._lock:
            return len(self._sessions)

    def shutdown(self, wait_seconds: float = 0.0) -> int:
        """Refuse new sessions and end every running one (close 1001); returns how many were running.

        With ``wait_seconds``, wait that long at most for their threads to finish.
        """
        with self._lock:
            self._closing = True
            sessions = list(self._sessions)
        for session in sessions:
            session.stop(END_SHUTDOWN, CLOSE_GOING_AWAY, "server shutdown", notice=f"{MSG_SERVER_STOPPING}\r\n")
        deadline = time.monotonic() + wait_seconds
        while wait_seconds and self.count() and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(sessions)


# The cluster's client for the duration of a block (the platform's cache), by cluster id.
OpenClient = Callable[[str], AbstractContextManager[kube.KubeClient]]


@dataclass(frozen=True)
class Terminal:
    """What the session controllers need: the registry, the limits and the cluster clients."""

    registry: SessionRegistry
    limits: TerminalLimits
    open_client: OpenClient


def _cluster_failure(exc: ServiceError) -> SessionRefused:
    """A failed cluster lookup: unreachable or timed out is upstream (1011), the rest bad input."""
    upstream_fault = exc.status >= 500 or exc.message.startswith((MSG_CLUSTER_UNREACHABLE, MSG_CLUSTER_TIMEOUT))
    if upstream_fault:
        return SessionRefused(exc.message, CLOSE_INTERNAL, END_UPSTREAM)
    return SessionRefused(exc.message)


def _kube_failure(prefix: str, exc: kube.KubeError, cluster_id: str) -> SessionRefused:
    """A failed call: what the API refused is bad input (1008); transport and 5xx are upstream (1011)."""
    if isinstance(exc, kube.Timeout):
        return SessionRefused(f"{MSG_CLUSTER_TIMEOUT}: {cluster_id}", CLOSE_INTERNAL, END_UPSTREAM)
    if isinstance(exc, kube.Unreachable | kube.TLSError | kube.BadKubeconfig | kube.Unhealthy):
        return SessionRefused(f"{MSG_CLUSTER_UNREACHABLE} {cluster_id}: {exc.message}", CLOSE_INTERNAL, END_UPSTREAM)
    return SessionRefused(f"{prefix}: {exc.message}")


def _choose_container(pod: dict[str, Any], target: Target) -> str:
    """The requested container, checked against the Pod; the first one when none was named."""
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    if not target.container:
        if not names:
            raise SessionRefused(f"{MSG_CONTAINER_NOT_FOUND}: {target.pod}")
        return names[0]
    if target.container not in names:
        raise SessionRefused(f"{MSG_CONTAINER_NOT_FOUND}: {target.container} (Pod {target.pod}: {', '.join(names)})")
    return target.container


def _running(pod: dict[str, Any], container: str, target: Target, allow_finished: bool) -> None:
    """Refuse a Pod that has nothing to show: not running (exec), or never started (log)."""
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    if phase == "Running":
        return
    if allow_finished and phase in ("Succeeded", "Failed"):
        return  # a finished container still has its log
    raise SessionRefused(f"{MSG_POD_NOT_RUNNING}: {target.namespace}/{target.pod} ({phase})")


@contextlib.contextmanager
def _pod(terminal: Terminal, target: Target) -> Iterator[tuple[kube.KubeClient, dict[str, Any]]]:
    """The cluster's client and the Pod, or ``SessionRefused`` with the contract's reason."""
    deadline = time.monotonic() + terminal.limits.budget_seconds
    try:
        with terminal.open_client(target.cluster_id) as client:
            left = max(0.05, deadline - time.monotonic())
            try:
                pod = client.request("GET", upstream.pod_path(target.namespace, target.pod),
                                     timeout=(min(2.0, left), left))  # fmt: skip
            except kube.NotFound:
                raise SessionRefused(f"{MSG_POD_NOT_FOUND}: {target.namespace}/{target.pod}") from None
            except kube.KubeError as exc:
                raise _kube_failure(MSG_POD_QUERY_FAILED, exc, target.cluster_id) from None
            yield client, pod
    except ServiceError as exc:
        raise _cluster_failure(exc) from None
    except kube.KubeError as exc:
        raise _kube_failure(MSG_POD_QUERY_FAILED, exc, target.cluster_id) from None


def _begin(terminal: Terminal, session: Session, browser: Browser) -> bool:
    """Admit the session and write its start line; False (after the error frame, close 1013) when full."""
    session.browser = browser
    if not terminal.registry.admit(session):
        logs.warning({**session.audit_fields(), "limit": terminal.registry.max_sessions}, "terminal session refused")
        with contextlib.suppress(BrowserGone):
            browser.send(f"{MSG_WS_TOO_MANY} ({terminal.registry.max_sessions})")
        browser.close(CLOSE_TRY_AGAIN, "too many sessions")
        return False
    logs.info(session.audit_fields(), f"{session.action.replace('/', ' ')} session start")
    return True


def _end(terminal: Terminal, session: Session) -> None:
    """Count the session out and write its end line."""
    terminal.registry.release(session)
    fields = {**session.audit_fields(), "durationSeconds": round(time.monotonic() - session.started, 3),
              "endReason": session.end_reason}  # fmt: skip
    if session.exit_code is not None:
        fields["exitCode"] = session.exit_code
    logs.info(fields, f"{session.action.replace('/', ' ')} session end")


def _refuse(session: Session, exc: SessionRefused) -> None:
    """Tell the browser why the session cannot go on (one text frame), then close with the code."""
    session.stop(exc.reason, exc.code, _close_reason(exc.message), notice=exc.message)


def _close_reason(text: str) -> str:
    """A close frame's reason: at most 123 bytes of UTF-8, cut at a character boundary."""
    data = text.encode()[:123]
    return data.decode("utf-8", "ignore")


def _wait_browser(session: Session, browser: Browser, deadline: float) -> None:
    """Until the session stops or ``deadline``: drop what the browser sends, notice when it closes."""
    while not session.stopped.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            browser.receive(left)
        except BrowserGone:
            session.stop(END_FRAME_TOO_LARGE if browser.too_large() else END_CLIENT)
            return


def _read_within_limits(session: Session, browser: Browser, limits: TerminalLimits,
                        on_frame: Callable[[str | bytes], bool], notice: Callable[[str], str]) -> None:  # fmt: skip
    """Hand each browser frame to ``on_frame`` until the session stops, the browser closes, or a limit ends it.

    The limits are ``EXEC_IDLE_SECONDS`` since the last frame ``on_frame`` counted as input (it returns
    True) and ``EXEC_MAX_SECONDS`` in all; each is told to the browser (``notice`` shapes the text) before
    the close 1000.
    """
    ends_at = session.started + limits.exec_max_seconds
    last_input = time.monotonic()
    while not session.stopped.is_set():
        now = time.monotonic()
        if now >= ends_at:
            session.stop(END_MAX, CLOSE_NORMAL, "max duration", notice=notice(MSG_SESSION_MAX))
            return
        if now - last_input >= limits.exec_idle_seconds:
            session.stop(END_IDLE, CLOSE_NORMAL, "idle timeout", notice=notice(MSG_SESSION_IDLE))
            return
        try:
            frame = browser.receive(min(ends_at, last_input + limits.exec_idle_seconds) - now)
            if frame is not None and on_frame(frame):
                last_input = time.monotonic()
        except BrowserGone:
            session.stop(END_FRAME_TOO_LARGE if browser.too_large() else END_CLIENT)
            return


def _terminal_line(text: str) -> str:
    """A notice written into a terminal: on a line of its own, whatever the shell left on the current one."""
    return f"\r\n{text}\r\n"


# Log ------------------------------------------------------------------------------------------


def split_lines(buffer: bytes, final: bool = False) -> tuple[list[str], bytes]:
    """Complete lines of ``buffer`` as text (newline and a trailing CR dropped), and the rest.

    Lines longer than ``MAX_LINE_BYTES`` come in pieces cut at a character boundary; invalid UTF-8
    is replaced, so every piece is a valid text frame.
    """
    lines: list[str] = []
    while True:
        cut = buffer.find(b"\n", 0, MAX_LINE_BYTES + 1)
        if cut >= 0:
            line, buffer = buffer[:cut], buffer[cut + 1 :]
            lines.append(line.removesuffix(b"\r").decode("utf-8", "replace"))
            continue
        if len(buffer) > MAX_LINE_BYTES:
            end = MAX_LINE_BYTES
            # Back off over UTF-8 continuation bytes (10xxxxxx), at most 3: never split a character.
            while end > MAX_LINE_BYTES - 3 and (buffer[end] & 0xC0) == 0x80:
                end -= 1
            lines.append(buffer[:end].decode("utf-8", "replace"))
            buffer = buffer[end:]
            continue
        break
    if final and buffer:
        lines.append(buffer.removesuffix(b"\r").decode("utf-8", "replace"))
        buffer = b""
    return lines, buffer


def _pump_log(session: Session, stream: upstream.LogStream, browser: Browser) -> None:
    """Open the log, then copy it to the browser, one text frame per line, until it ends or the session stops."""
    try:
        stream.open()
    except kube.KubeError as exc:
        if not session.stopped.is_set():
            _refuse(session, _kube_failure(MSG_LOG_FAILED, exc, session.target.cluster_id))
        return
    buffer = b""
    try:
        for chunk in stream.chunks():
            lines, buffer = split_lines(buffer + chunk)
            for line in lines:
                browser.send(line)
        lines, buffer = split_lines(buffer, final=True)
        for line in lines:
            browser.send(line)
    except BrowserGone:
        session.stop(END_CLIENT)
        return
    except kube.KubeError as exc:
        session.stop(END_UPSTREAM, CLOSE_INTERNAL, "upstream error", notice=f"{MSG_UPSTREAM_CLOSED}: {exc.message}")
        return
    session.stop(END_STREAM_ENDED, CLOSE_NORMAL, "log stream ended", notice=MSG_LOG_ENDED)


def _internal_error(session: Session, exc: Exception, notice: str) -> None:
    """An unexpected failure: logged with its type, the browser told, the session ended as upstream."""
    logs.error({"sessionId": session.id, "error": f"{type(exc).__name__}: {exc}"}, f"{session.kind} session failed")
    session.stop(END_UPSTREAM, CLOSE_INTERNAL, "internal error", notice=notice)


def _finish(terminal: Terminal, session: Session, pump: threading.Thread | None) -> None:
    """End the session (the browser's doing unless a reason was set), wait for its pump, write the end audit."""
    session.stop(END_CLIENT)
    if pump is not None:
        pump.join(PUMP_JOIN_SECONDS)
    _end(terminal, session)


def run_log(terminal: Terminal, browser: Browser, target: Target, tail_lines: int, follow: bool = True) -> None:
    """A pod log session: the last ``tail_lines`` lines, then (with ``follow``) new ones as they come.

    Ends when the browser closes, the log ends, or after ``LOG_MAX_SECONDS``.
    """
    session = Session(KIND_LOG, target)
    if not _begin(terminal, session, browser):
        return
    pump: threading.Thread | None = None
    try:
        with _pod(terminal, target) as (client, pod):
            session.container = _choose_container(pod, target)
            _running(pod, session.container, target, allow_finished=True)
            query: dict[str, Any] = {"container": session.container, "tailLines": tail_lines}
            if follow:
                query["follow"] = "true"
            stream = upstream.LogStream(client, target.namespace, target.pod, query, 2.0)
        session.on_stop(stream.close)
        pump = threading.Thread(target=_pump_log, args=(session, stream, browser), name=f"log-{session.id}",
                                daemon=True)  # fmt: skip
        pump.start()
        _wait_browser(session, browser, session.started + terminal.limits.log_max_seconds)
        session.stop(END_LOG_MAX, CLOSE_NORMAL, "max duration", notice=MSG_LOG_MAX)
    except SessionRefused as exc:
        _refuse(session, exc)
    except Exception as exc:
        _internal_error(session, exc, MSG_LOG_FAILED)
    finally:
        _finish(terminal, session, pump)


# Exec -----------------------------------------------------------------------------------------


def clamp_size(value: Any) -> int | None:
    """A terminal dimension from a resize frame: 1..65535, None for 0 or anything not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = int(value)
    if number <= 0:
        return None
    return min(number, TERMINAL_SIZE_MAX)


def _pump_exec(session: Session, stream: upstream.ExecStream, browser: Browser) -> None:
    """Copy the process's output to the browser as valid UTF-8 text, then end the session.

    Output is decoded incrementally: a character split between two messages is held back until its
    last byte arrives, invalid bytes become U+FFFD.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    failure = ""
    got_status = False
    try:
        while True:
            message = stream.receive()
            if message is None:
                break
            channel, payload = message
            if channel in (upstream.CHANNEL_STDOUT, upstream.CHANNEL_STDERR):
                text = decoder.decode(payload)
                if text:
                    browser.send(text)
            elif channel == upstream.CHANNEL_ERROR and payload:
                got_status = True
                session.exit_code, failure = upstream.exec_status(payload)
        rest = decoder.decode(b"", final=True)
        if rest:
            browser.send(rest)
    except BrowserGone:
        session.stop(END_CLIENT)
        return
    if session.stopped.is_set():
        return  # cancelled from this side (browser gone, limits, shutdown): not the process's end
    if failure:
        session.stop(END_EXEC_ERROR, CLOSE_POLICY, "exec failed", notice=f"\r\n{MSG_EXEC_FAILED}: {failure}\r\n")
    elif got_status:
        code = session.exit_code if session.exit_code is not None else 0
        session.stop(END_EXITED, CLOSE_NORMAL, f"exit code {code}")
    else:
        session.stop(END_UPSTREAM, CLOSE_INTERNAL, "upstream closed", notice=f"\r\n{MSG_UPSTREAM_CLOSED}\r\n")


def handle_input(stream: upstream.ExecStream, frame: str | bytes, session_id: str) -> bool:
    """Pass one browser frame on: input to stdin, resize to the TTY; False when it was ignored."""
    if isinstance(frame, bytes):
        stream.stdin(frame)  # xterm's attach addon sends raw binary input
        return True
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        message = None
    kind = message.get("messageType") if isinstance(message, dict) else None
    if kind == "input" and isinstance(message, dict) and isinstance(message.get("data"), str):
        stream.stdin(message["data"].encode("utf-8", "surrogatepass"))
        return True
    if kind == "resize" and isinstance(message, dict):
        rows, cols = clamp_size(message.get("rows")), clamp_size(message.get("cols"))
        if rows is not None and cols is not None:
            stream.resize(rows, cols)
            return True
    # Never the content: it may be a keystroke.
    logs.debug({"sessionId": session_id, "messageType": str(kind)[:40], "bytes": len(frame)}, "exec frame ignored")
    return False


def run_exec(terminal: Terminal, browser: Browser, target: Target, command: str) -> None:
    """An exec session: ``command`` in the container with a TTY, the browser as its terminal.

    Ends when the process exits (output flushed, close 1000), the browser closes (the exec is
    cancelled), or on ``EXEC_IDLE_SECONDS`` without input / ``EXEC_MAX_SECONDS`` in all.
    """
    session = Session(KIND_EXEC, target, command=command)
    if not _begin(terminal, session, browser):
        return
    pump: threading.Thread | None = None
    try:
        with _pod(terminal, target) as (client, pod):
            session.container = _choose_container(pod, target)
            _running(pod, session.container, target, allow_finished=False)
            try:
                stream = upstream.open_exec(client, target.namespace, target.pod, session.container, [command],
                                            STREAM_HEADERS_SECONDS)  # fmt: skip
            except kube.KubeError as exc:
                raise _kube_failure(MSG_EXEC_FAILED, exc, target.cluster_id) from None
        session.on_stop(stream.close)
        pump = threading.Thread(target=_pump_exec, args=(session, stream, browser), name=f"exec-{session.id}",
                                daemon=True)  # fmt: skip
        pump.start()
        _read_within_limits(session, browser, terminal.limits, lambda frame: handle_input(stream, frame, session.id),
                            _terminal_line)  # fmt: skip
    except SessionRefused as exc:
        _refuse(session, exc)
    except Exception as exc:
        _internal_error(session, exc, MSG_EXEC_FAILED)
    finally:
        _finish(terminal, session, pump)


def exec_command(default_command: str | None, misspelled: str | None) -> str:
    """``defaultCommand``, else ``defaultComamnd`` (sic, the frontend's first exec), else ``/bin/bash``."""
    return (default_command or "").strip() or (misspelled or "").strip() or DEFAULT_COMMAND


# Ping -----------------------------------------------------------------------------------------


def echo_time(now: dt.datetime | None = None) -> str:
    """The time a ping appends: RFC 3339 in UTC with milliseconds, e.g. ``2026-12-02T03:13:25.123Z``.

    Go appends ``2006-01-02 15:04:02`` (sic: the day of the month where the seconds belong, local time,
    no zone): a stamp that repeats within a minute and cannot be compared across servers.
    """
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def echo(frame: str | bytes, now: dt.datetime | None = None) -> str | bytes:
    """One frame's echo: the frame, one space, the time; a binary frame is answered in binary (as Go does).

    Go glues the time to the message; the space lets a client split the reply at its last space.
    """
    stamp = echo_time(now)
    if isinstance(frame, bytes):
        return frame + b" " + stamp.encode("ascii")
    return f"{frame} {stamp}"


def _echo_to(browser: Browser) -> Callable[[str | bytes], bool]:
    """The ping's frame handler: answer at once; every frame counts as input for the idle limit."""

    def handle(frame: str | bytes) -> bool:
        browser.send(echo(frame))
        return True

    return handle


def run_ping(terminal: Terminal, browser: Browser, user: str) -> None:
    """A tools/ping session: every frame echoed with the time appended.

    Counted and bounded like an exec (``WS_MAX_SESSIONS``, ``EXEC_IDLE_SECONDS`` without a frame,
    ``EXEC_MAX_SECONDS`` in all, 64 KiB frames); ends when the browser closes or a limit is reached.
    """
    session = Session(KIND_PING, Target(user=user, cluster_id="", namespace="", pod=""))
    if not _begin(terminal, session, browser):
        return
    try:
        _read_within_limits(session, browser, terminal.limits, _echo_to(browser), str)
    except Exception as exc:
        _internal_error(session, exc, MSG_INTERNAL)
    finally:
        _finish(terminal, session, None)
