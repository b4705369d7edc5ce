"""The one layer between controllers and the Kubernetes API.

- ``KubeClient`` is an isolated client built from a kubeconfig dict (never the process-global default
  configuration, never the client library's kubeconfig loader and its module-global temp files), with
  no retries, a (connect, read) timeout on every socket wait and a wall-clock deadline on every call,
  speaking raw JSON (orjson) so that hot paths do not pay for the client's model deserialization.
- ``translate`` is the one place that turns ``ApiException``, urllib3 and TLS errors into a few domain
  errors whose messages are short, safe to show, and never contain headers or raw bodies.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import heapq
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import orjson
import urllib3
import urllib3.connection
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config
from kubernetes.config.config_exception import ConfigException
from urllib3.util.ssl_ import create_urllib3_context

from utils.kubeconfig import PINNED_HOST, KubeconfigRejected, current_entries

MAX_REASON = 300  # characters of an upstream message we pass on

# Metadata-only list (PartialObjectMetadataList): annotations without the kubeconfig payloads.
ACCEPT_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class KubeError(Exception):
    """A failed call to a Kubernetes API, with a short message that is safe to show a client."""

    reason = "Error"

    def __init__(self, message: str, status: int = 0) -> None:
        """Keep the safe message and the HTTP status (0 when no HTTP answer came)."""
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        """The safe message."""
        return self.message


class NotFound(KubeError):
    """404: the object does not exist."""

    reason = "NotFound"


class AlreadyExists(KubeError):
    """409 AlreadyExists: an object with that name exists."""

    reason = "AlreadyExists"


class Conflict(KubeError):
    """409 Conflict: the object changed since it was read."""

    reason = "Conflict"


class Unauthorized(KubeError):
    """401: the credentials were rejected."""

    reason = "Unauthorized"


class Forbidden(KubeError):
    """403: authenticated, but not allowed."""

    reason = "Forbidden"


class Invalid(KubeError):
    """400/422: the API server rejected the object."""

    reason = "Invalid"


class Unreachable(KubeError):
    """No connection: refused, reset, name not resolved."""

    reason = "Unreachable"


class Timeout(KubeError):
    """Connected (or tried to) but no answer within the timeout."""

    reason = "Timeout"


class TLSError(KubeError):
    """The TLS handshake or certificate verification failed."""

    reason = "TLSError"


class Unhealthy(KubeError):
    """The server answered with a 5xx or something that is not the Kubernetes API."""

    reason = "Unhealthy"


class BadKubeconfig(KubeError):
    """The kubeconfig cannot be turned into a client."""

    reason = "BadKubeconfig"


def _truncate(text: str, limit: int = MAX_REASON) -> str:
    """Untrusted text cut to a safe length, on one line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_message(exc: ApiException) -> str:
    """The ``message`` of a Kubernetes Status body, or the HTTP reason; never headers or raw bodies."""
    try:
        body = orjson.loads(exc.body) if exc.body else {}
        if isinstance(body, dict) and body.get("kind") == "Status" and body.get("message"):
            return _truncate(body["message"])
    except (orjson.JSONDecodeError, TypeError):
        pass
    return f"{exc.status} {_truncate(exc.reason or '', 60)}".strip()


def translate(exc: BaseException, server: str = "") -> KubeError:
    """Map any error of a Kubernetes call to a domain error with a safe message."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, AttributeError) and isinstance(exc.__context__, ApiException):
        # kubernetes 36 wraps transport errors (TLS, ...) in ApiException(status=0, body=None) and
        # then fails on ``e.body.decode()``: the real error is the context of that AttributeError.
        exc = exc.__context__
    where = f" ({server})" if server else ""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status == 0:  # the client wraps urllib3 SSLError and other transport errors this way
            reason = str(exc.reason or "")
            if "SSL" in reason or "CERTIFICATE" in reason.upper():
                return TLSError(f"TLS error{where}: {_tls_detail(reason)}")
            return Unreachable(f"cannot connect{where}")
        message = _status_message(exc)
        if status == 401:
            return Unauthorized(f"credentials rejected{where}: 401 Unauthorized", status)
        if status == 403:
            return Forbidden(message, status)
        if status == 404:
            return NotFound(message, status)
        if status == 409:
            body_reason = ""
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                body_reason = orjson.loads(exc.body).get("reason", "") if exc.body else ""
            return (AlreadyExists if body_reason == "AlreadyExists" else Conflict)(message, status)
        if status in (400, 422):
            return Invalid(message, status)
        if status == 429:
            return Unhealthy(f"too many requests{where}", status)
        return Unhealthy(f"server error{where}: {message}", status)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return translate(exc.reason, server)
    # NameResolutionError < NewConnectionError < ConnectTimeoutError in urllib3 2: most specific first.
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return Unreachable(f"host name not resolved{where}")
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        if "timed out" in str(exc):
            return Timeout(f"connection timed out{where}")
        return Unreachable(f"connection refused{where}")
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return Timeout(f"connection timed out{where}")
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return Timeout(f"no answer in time{where}")
    if isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        return TLSError(f"TLS error{where}: {_tls_detail(str(exc))}")
    if isinstance(exc, urllib3.exceptions.ProtocolError | urllib3.exceptions.HTTPError | OSError):
        return Unreachable(f"connection failed{where}")
    if isinstance(exc, orjson.JSONDecodeError | ValueError):
        return Unhealthy(f"not a Kubernetes API answer{where}")
    return KubeError(f"unexpected error{where}: {type(exc).__name__}")


def _tls_detail(text: str) -> str:
    """The useful part of an SSL error (e.g. 'certificate verify failed: self-signed certificate')."""
    for marker in ("certificate verify failed", "WRONG_VERSION_NUMBER", "wrong version number",
                   "handshake", "hostname mismatch", "EOF occurred"):  # fmt: skip
        if marker in text:
            start = text.index(marker)
            return _truncate(text[start:].split(")")[0].split("'")[0], 120)
    return "handshake failed"


# Credential files. The ssl module loads a client certificate and key only from files, so each one is
# written to a private 0600 file in a 0700 directory (memory-backed /dev/shm when writable), loaded into
# the client's SSLContext and unlinked at once: key material lives on disk for microseconds, never for
# the client's life. A process killed in between leaves its directory behind; its name carries the pid,
# and the first client built by any later process removes the directories of processes that are gone.
CREDENTIAL_DIR_PREFIX = "krm-kube-"
_ROOT_LOCK = threading.Lock()
_TEMP_ROOT: tuple[int, str] | None = None  # (pid, path): a forked child makes its own


def credential_base_dir() -> str:
    """Where credential directories are made: /dev/shm when writable, else the temporary directory."""
    shm = "/dev/shm"  # noqa: S108 - memory-backed; the directories inside are private (0700)
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


def sweep_stale_credential_dirs(base: str | None = None) -> list[str]:
    """Remove credential directories of this user whose process is gone; returns what was removed."""
    base = base or credential_base_dir()
    removed: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        match = re.fullmatch(rf"{CREDENTIAL_DIR_PREFIX}(\d+)-\w+", name)
        path = os.path.join(base, name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            if os.lstat(path).st_uid != os.getuid() or not os.path.isdir(path):
                continue
            os.kill(int(match.group(1)), 0)
            if not _is_zombie(int(match.group(1))):
                continue
        except ProcessLookupError:
            pass
        except OSError:
            continue  # alive under another user, or not ours to judge
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _is_zombie(pid: int) -> bool:
    """True when ``pid`` has exited but is not reaped yet (a killed worker whose parent died too)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _temp_root() -> str:
    """This process's private (0700) credential directory, made (and stale ones swept) on first use."""
    global _TEMP_ROOT
    with _ROOT_LOCK:
        if _TEMP_ROOT is None or _TEMP_ROOT[0] != os.getpid() or not os.path.isdir(_TEMP_ROOT[1]):
            sweep_stale_credential_dirs()
            path = tempfile.mkdtemp(prefix=f"{CREDENTIAL_DIR_PREFIX}{os.getpid()}-", dir=credential_base_dir())
            atexit.register(shutil.rmtree, path, ignore_errors=True)
            _TEMP_ROOT = (os.getpid(), path)
        return _TEMP_ROOT[1]


def _load_cert_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load a client certificate and key given as bytes: through a 0600 file that is unlinked at once."""
    fd, path = tempfile.mkstemp(dir=_temp_root(), suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert_pem.rstrip(b"\n") + b"\n" + key_pem)
        context.load_cert_chain(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _ssl_context(
    ca_pem: bytes | None,
    verify: bool,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    cert_files: tuple[str, str] | None = None,
) -> ssl.SSLContext:
    """A client SSLContext; the host name is checked by urllib3 against the name given to the pool."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE)
    context.check_hostname = False  # urllib3 matches assert_hostname itself (the pinned name)
    context.hostname_checks_common_name = False  # as client-go (Go 1.15+): SANs only
    if verify:
        if ca_pem:
            context.load_verify_locations(cadata=ca_pem.decode("ascii", errors="replace"))
        else:
            context.load_default_certs()
    if cert_pem and key_pem:
        _load_cert_chain(context, cert_pem, key_pem)
    elif cert_files:
        context.load_cert_chain(*cert_files)
    return context


# Wall-clock deadlines. Socket timeouts bound each wait for a byte, not a call: a server that drips one
# byte a second never trips them. Each call therefore runs under a guard that a watchdog thread fires at
# the deadline by shutting down the call's sockets, which wakes any blocked read (TLS included).
_local = threading.local()


class _CallGuard:
    """The connections one call uses, shut down if the call outlives its deadline."""

    def __init__(self, deadline: float) -> None:
        """Nothing is armed until ``_WATCHDOG.arm``."""
        self.deadline = deadline
        self.expired = False
        self.done = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def attach(self, connection: Any) -> None:
        """Count ``connection`` as used by this call."""
        with self._lock:
            if not self.done and connection not in self._connections:
                self._connections.append(connection)
            if self.expired:
                _shutdown(connection)

    def fire(self) -> bool:
        """Past the deadline: shut the call's sockets down; False once the call has finished."""
        with self._lock:
            if self.done:
                return False
            self.expired = True
            for connection in self._connections:
                _shutdown(connection)
            return True

    def finish(self) -> None:
        """The call is over (its connection may go back to the pool): never fire after this."""
        with self._lock:
            self.done = True
            self._connections.clear()


def _shutdown(connection: Any) -> None:
    """Shut the socket of a urllib3 connection down at the OS level (wakes a blocked recv or TLS read)."""
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, bypassing SSLSocket's


class _Watchdog:
    """One daemon thread per process that fires call guards at their deadlines."""

    RECHECK = 0.05  # a fired call still running (e.g. a socket that was connecting) is fired again

    def __init__(self) -> None:
        """Started lazily, again in a forked child."""
        self._pid = 0
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _CallGuard]] = []
        self._seq = 0

    def arm(self, guard: _CallGuard) -> None:
        """Fire ``guard`` at its deadline unless it finished before."""
        with self._cond:
            if self._pid != os.getpid():
                self._pid, self._heap = os.getpid(), []
                threading.Thread(target=self._run, name="kube-deadlines", daemon=True).start()
            self._seq += 1
            heapq.heappush(self._heap, (guard.deadline, self._seq, guard))
            # The thread sleeps until the earliest deadline in the heap: only a guard that is now the
            # earliest needs it awake. Waking it on every call (every request) made it compete for the
            # GIL with the call it guards, at the moment that call sends its request.
            if self._heap[0][2] is guard:
                self._cond.notify()

    def _run(self) -> None:
        """Sleep until the next deadline; fire what is due."""
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].done:
                        heapq.heappop(self._heap)  # finished calls: nothing to fire, no reason to wake
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, guard = heapq.heappop(self._heap)
            if guard.done:
                continue
            if guard.fire():
                with self._cond:
                    self._seq += 1
                    heapq.heappush(self._heap, (time.monotonic() + self.RECHECK, self._seq, guard))


_WATCHDOG = _Watchdog()


def _attach_current(connection: Any) -> None:
    """Count a connection as used by the call running in this thread, if it has a deadline."""
    guard = getattr(_local, "guard", None)
    if guard is not None:
        guard.attach(connection)


class _GuardedHTTPConnection(urllib3.connection.HTTPConnection):
    """A connection that joins the current call's deadline guard when it connects or sends."""

    def connect(self) -> None:
        """Join the guard first: a TLS handshake that drips is cut off too."""
        _attach_current(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Join the guard (a pooled connection is reused without connecting)."""
        _attach_current(self)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(urllib3.connection.HTTPSConnection):
    """The TLS variant of ``_GuardedHTTPConnection``; it also notes when the server's certificate expires."""

    def connect(self) -> None:
        """Join the guard first: a TLS handshake that drips is cut off too."""
        _attach_current(self)
        super().connect()
        # A kept connection is never verified again: its user (KubeClient.request) learns when the
        # certificate it was verified with stops being valid. Empty without verification.
        sock = self.sock
        with contextlib.suppress(AttributeError, ValueError, OSError):
            not_after = (sock.getpeercert() or {}).get("notAfter") if isinstance(sock, ssl.SSLSocket) else None
            if isinstance(not_after, str):
                _local.server_cert_expiry = ssl.cert_time_to_seconds(not_after)

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Join the guard (a pooled connection is reused without connecting)."""
        _attach_current(self)
        super().request(*args, **kwargs)


class _GuardedHTTPPool(urllib3.HTTPConnectionPool):
    """HTTP pool of guarded connections."""

    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.HTTPSConnectionPool):
    """HTTPS pool of guarded connections."""

    ConnectionCls = _GuardedHTTPSConnection


def deadline_in(seconds: float) -> float:
    """The absolute deadline (``time.monotonic()`` clock) ``seconds`` from now, for ``deadline=``."""
    return time.monotonic() + seconds


# Exec credential plugins (only commands the kubeconfig policy allows reach this). client-go waits for a
# plugin forever; here it gets what is left of the call's deadline and is killed (its whole process
# group) when that runs out.
EXEC_DEFAULT_SECONDS = 10.0  # a plugin run outside any call (none today) still ends
_EXEC_OUTPUT_LIMIT = 1024 * 1024


def run_exec_plugin(exec_config: dict[str, Any], deadline: float | None) -> dict[str, Any]:
    """Run an exec credential plugin; its ``ExecCredential.status`` (token and/or client certificate)."""
    command = exec_config.get("command")
    if not isinstance(command, str) or not command:
        raise BadKubeconfig("invalid kubeconfig: exec.command is missing")
    args = exec_config.get("args") or []
    env = dict(os.environ)
    for item in exec_config.get("env") or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            env[item["name"]] = str(item.get("value", ""))
    api_version = str(exec_config.get("apiVersion") or "client.authentication.k8s.io/v1")
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    )
    remaining = (deadline - time.monotonic()) if deadline is not None else EXEC_DEFAULT_SECONDS
    if remaining <= 0:
        raise Timeout(f"exec plugin {command!r} not started: deadline exceeded")
    try:
        proc = subprocess.Popen(
            [command, *map(str, args)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise BadKubeconfig(f"exec plugin {command!r} cannot be started: {exc.strerror}") from None
    try:
        out, _ = proc.communicate(timeout=remaining)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise Timeout(f"exec plugin {command!r} did not answer within the deadline") from None
    if proc.returncode != 0:
        raise Unauthorized(f"exec plugin {command!r} failed (exit {proc.returncode})")
    try:
        credential = orjson.loads(out[:_EXEC_OUTPUT_LIMIT])
        status = credential["status"]
        if not isinstance(status, dict):
            raise TypeError
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise Unauthorized(f"exec plugin {command!r} did not print an ExecCredential") from None
    return status


def _b64decode(value: Any, where: str) -> bytes:
    """A kubeconfig ``*-data`` field."""
    try:
        return base64.b64decode(str(value), validate=False)
    except (ValueError, TypeError):
        raise BadKubeconfig(f"invalid kubeconfig: {where} is not base64") from None


def _read_file(path: Any, where: str) -> bytes:
    """A file a (trusted) kubeconfig names."""
    try:
        with open(str(path), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise BadKubeconfig(f"invalid kubeconfig: cannot read {where} ({exc.strerror})") from None


def _pem_or_file(entry: dict[str, Any], key: str) -> bytes | None:
    """``<key>-data`` (base64) or the file ``<key>`` (allowed for operator kubeconfigs only: see the policy)."""
    if entry.get(f"{key}-data"):
        return _b64decode(entry[f"{key}-data"], f"{key}-data")
    if entry.get(key):
        return _read_file(entry[key], key)
    return None


class _ExecToken:
    """Token of an exec plugin, re-run when the ExecCredential's ``expirationTimestamp`` has passed."""

    def __init__(self, exec_config: dict[str, Any], status: dict[str, Any]) -> None:
        """Remember the plugin and its first answer."""
        self.exec_config = exec_config
        self._lock = threading.Lock()
        self._set(status)

    def _set(self, status: dict[str, Any]) -> None:
        """Take the token and expiry of an ExecCredential status."""
        self.token = str(status.get("token") or "")
        self.expires = _parse_time(status.get("expirationTimestamp"))

    def refresh(self, configuration: k8s_client.Configuration) -> None:
        """The client's ``refresh_api_key_hook``: re-run the plugin (within the call's deadline) once expired."""
        if self.expires is None or dt.datetime.now(dt.UTC) < self.expires:
            return
        with self._lock:
            if self.expires is not None and dt.datetime.now(dt.UTC) >= self.expires:
                guard = getattr(_local, "guard", None)
                self._set(run_exec_plugin(self.exec_config, guard.deadline if guard else None))
                configuration.api_key = {"BearerToken": self.token}


def _parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


# client-go re-reads the projected token every minute; the kubelet refreshes it at 80% of its life.
TOKEN_RELOAD_SECONDS = 60.0


class KubeClient:
    """An isolated API client for one cluster: bounded timeouts and deadlines, raw-JSON calls."""

    def __init__(
        self,
        configuration: k8s_client.Configuration,
        timeout: tuple[float, float],
        temp_dir: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        host_header: str | None = None,
        call_timeout: float | None = None,
        deadline: float | None = None,
    ) -> None:
        """Wrap a filled ``Configuration``; use ``from_kubeconfig`` or ``in_cluster`` to build one.

        ``call_timeout``: wall-clock bound of each call in seconds (default connect + read; ``math.inf``
        for none); ``deadline``: an absolute ``time.monotonic()`` time no call of this client outlives.
        """
        configuration.retries = False  # no hidden retries: a dead cluster costs one timeout, not four
        self.timeout = timeout
        self.call_timeout = sum(timeout) if call_timeout is None else call_timeout
        self.deadline = deadline
        self.host_header = host_header
        self.server = configuration.host
        if host_header:  # messages name the server as the kubeconfig wrote it, not the pinned address
            parts = urlsplit(configuration.host)
            self.server = urlunsplit(parts._replace(netloc=host_header))
        self._temp_dir = temp_dir
        self.ssl_context = ssl_context  # None: built by the pool manager from the configuration
        # When the certificate of the server's last verified connection expires (epoch seconds), if known.
        self.server_cert_expiry: float | None = None
        self.api = k8s_client.ApiClient(configuration)
        self.api.rest_client.pool_manager = _pool_manager(configuration, ssl_context, host_header)
        parts = urlsplit(configuration.host)  # requests go to the server's pool; its path prefixes theirs
        self._origin = urlunsplit(parts._replace(path="", query="", fragment=""))
        self._prefix = parts.path.rstrip("/")
        self._pool: urllib3.HTTPConnectionPool | None = None

    @classmethod
    def from_kubeconfig(
        cls,
        kubeconfig: dict,
        timeout: tuple[float, float],
        pool_size: int = 4,
        *,
        call_timeout: float | None = None,
        deadline: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> KubeClient:
        """Build a client from a kubeconfig dict (current context) without touching any global state.

        Credentials are read from the kubeconfig here (an exec plugin runs now, within ``deadline``);
        certificates and keys go straight into the client's SSLContext. ``ssl_context``: the context of a
        client built before from this same kubeconfig (its ``ssl_context``), used instead of decoding the
        certificates again (OpenSSL 3 decodes PEM slowly); ignored with an exec plugin, whose certificate
        may have changed since.
        """
        try:
            cluster, _, user, _ = current_entries(kubeconfig)
        except KubeconfigRejected as exc:
            raise BadKubeconfig(f"invalid kubeconfig: {_truncate(str(exc), 160)}") from None
        server = cluster.get("server")
        if not isinstance(server, str) or not server.strip().startswith(("https://", "http://")):
            raise BadKubeconfig("invalid kubeconfig: the cluster has no http(s) server address")
        if user.get("auth-provider"):
            raise BadKubeconfig("invalid kubeconfig: auth-provider plugins are not supported (use exec)")
        configuration = k8s_client.Configuration()
        configuration.host = server.strip().rstrip("/")
        configuration.connection_pool_maxsize = pool_size
        skip_verify = cluster.get("insecure-skip-tls-verify")
        configuration.verify_ssl = not (skip_verify is True or str(skip_verify).lower() == "true")
        configuration.tls_server_name = cluster.get("tls-server-name") or None
        configuration.proxy = cluster.get("proxy-url") or None
        host_header = cluster.get(PINNED_HOST) or None
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        cert_pem, key_pem = _pem_or_file(user, "client-certificate"), _pem_or_file(user, "client-key")
        token = user.get("token") or None
        if not token and user.get("tokenFile"):
            token = _read_file(user["tokenFile"], "tokenFile").decode(errors="replace").strip()
        exec_config = user.get("exec")
        if isinstance(exec_config, dict):
            status = run_exec_plugin(exec_config, _earliest(deadline, time.monotonic() + sum(timeout)))
            exec_token = _ExecToken(exec_config, status)
            if exec_token.token:
                token = exec_token.token
                configuration.refresh_api_key_hook = exec_token.refresh
            if status.get("clientCertificateData") and status.get("clientKeyData"):
                cert_pem, key_pem = str(status["clientCertificateData"]).encode(), str(status["clientKeyData"]).encode()
        if token:
            configuration.api_key = {"BearerToken": str(token)}
        elif user.get("username") and user.get("password"):
            configuration.username, configuration.password = str(user["username"]), str(user["password"])
        if bool(cert_pem) != bool(key_pem):
            raise BadKubeconfig("invalid kubeconfig: a client certificate needs its key (and the other way round)")
        try:
            context = None
            if configuration.host.startswith("https://"):
                if ssl_context is not None and not isinstance(exec_config, dict):
                    context = ssl_context
                else:
                    context = _ssl_context(_pem_or_file(cluster, "certificate-authority"),
                                           configuration.verify_ssl, cert_pem, key_pem)  # fmt: skip
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise BadKubeconfig(f"invalid kubeconfig: unusable certificate or key ({type(exc).__name__})") from None
        return cls(configuration, timeout, ssl_context=context, host_header=host_header,
                   call_timeout=call_timeout, deadline=deadline)  # fmt: skip

    @classmethod
    def in_cluster(
        cls,
        root: str,
        timeout: tuple[float, float],
        pool_size: int = 16,
        token_reload_seconds: float = TOKEN_RELOAD_SECONDS,
    ) -> KubeClient:
        """The pod's service account: token and CA under ``root``, server from the service env.

        The client library's ``InClusterConfigLoader`` reads them and re-reads the token once a minute
        (the kubelet rotates projected tokens, as client-go re-reads them); ``token_reload_seconds``
        other than that minute sets the loader's period (tests).
        """
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        if not host:
            raise BadKubeconfig("IN_CLUSTER=true but KUBERNETES_SERVICE_HOST is not set")
        token_path, ca_path = os.path.join(root, "token"), os.path.join(root, "ca.crt")
        if not os.path.isfile(token_path):
            raise BadKubeconfig(f"cannot read the service-account token {token_path}")
        if not os.path.isfile(ca_path):
            raise BadKubeconfig(f"cannot read the service-account CA certificate under {root}")
        environ = {"KUBERNETES_SERVICE_HOST": host,
                   "KUBERNETES_SERVICE_PORT": os.environ.get("KUBERNETES_SERVICE_PORT") or "443"}  # fmt: skip
        loader = incluster_config.InClusterConfigLoader(token_path, ca_path, try_refresh_token=True, environ=environ)
        if token_reload_seconds != TOKEN_RELOAD_SECONDS:  # no public setter; an attribute of our own loader
            loader._token_refresh_period = dt.timedelta(seconds=token_reload_seconds)
        configuration = k8s_client.Configuration()
        try:
            loader.load_and_set(configuration)
        except ConfigException as exc:
            raise BadKubeconfig(f"cannot use the service account under {root}: {_config_reason(exc)}") from None
        configuration.connection_pool_maxsize = pool_size
        try:
            context = _ssl_context(_read_file(ca_path, "ca.crt"), True)
        except (ssl.SSLError, ValueError) as exc:
            raise BadKubeconfig(f"the service-account CA certificate is unusable ({type(exc).__name__})") from None
        return cls(configuration, timeout, ssl_context=context, call_timeout=math.inf)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        accept: str = "application/json",
        content_type: str = "application/json",
        timeout: tuple[float, float] | float | None = None,
        raw: bool = False,
        deadline: float | None = None,
    ) -> Any:
        """One API call; returns the parsed JSON body (or the bytes with ``raw``), or raises ``KubeError``.

        ``timeout`` bounds each socket wait; the whole call (connect, TLS, headers, body, an exec
        plugin's refresh) ends by ``deadline`` (absolute, ``time.monotonic()``), the client's deadline
        and ``call_timeout`` from now, whichever comes first: then it raises ``Timeout``.
        """
        per_socket = timeout or self.timeout
        total = self.call_timeout
        if timeout is not None and not math.isinf(total):
            total = sum(timeout) if isinstance(timeout, tuple) else float(timeout)
        end = _earliest(deadline, self.deadline, time.monotonic() + total)
        guard = _CallGuard(end) if end is not None else None
        try:
            if guard is not None:
                remaining = guard.deadline - time.monotonic()
                if remaining <= 0:
                    raise Timeout(f"deadline exceeded before the call ({self.server})")
                per_socket = _cap(per_socket, remaining)
                _WATCHDOG.arm(guard)
            _local.guard = guard
            try:
                resp = self._call(method, path, query, body, accept, content_type, per_socket)
            finally:
                self._note_cert_expiry()
            data = _read_body(resp)
            if raw:
                return data
            return orjson.loads(data) if data else {}
        except Exception as exc:
            if guard is not None and guard.expired:
                raise Timeout(f"no complete answer before the deadline ({self.server})") from None
            raise translate(exc, self.server) from None
        finally:
            _local.guard = None
            if guard is not None:
                guard.finish()

    def _call(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        accept: str,
        content_type: str,
        timeout: tuple[float, float] | float | None,
    ) -> Any:
        """One request on the client's pool: the raw urllib3 response, or ``ApiException`` for a non-2xx.

        What the client library's ``call_api`` sends (its User-Agent, the bearer token through its
        refresh hook, a body serialized as it serializes one), without its generic layers: at 10,000
        clusters those were 30% of the prober's CPU per request (``benchmarks/probe_cost.py``).
        """
        configuration = self.api.configuration
        headers = {**self.api.default_headers, "Accept": accept, "Content-Type": content_type}
        if self.host_header:
            headers["Host"] = self.host_header  # the name a host-routed proxy or ingress routes on
        bearer = configuration.get_api_key_with_prefix("BearerToken")  # runs an exec plugin's refresh hook
        if bearer:
            headers["Authorization"] = bearer
        elif configuration.username:
            basic = f"{configuration.username}:{configuration.password or ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
        encoded: Any = body  # None, or text / bytes as given
        if body is not None and not isinstance(body, str | bytes):
            # As the client library does: its sanitizer (datetimes of a YAML document), then json.
            encoded = json.dumps(self.api.sanitize_for_serialization(body))
        target = self._prefix + path
        if query:
            target += "?" + urlencode(list(query.items()))
        per_socket = timeout or self.timeout
        if isinstance(per_socket, tuple):
            bounds = urllib3.Timeout(connect=per_socket[0], read=per_socket[1])
        else:
            bounds = urllib3.Timeout(total=per_socket)
        manager = self.api.rest_client.pool_manager
        options: dict[str, Any] = {"body": encoded, "headers": headers, "timeout": bounds, "retries": False,
                                   "redirect": False, "preload_content": False}  # fmt: skip
        if isinstance(manager, urllib3.ProxyManager):  # it decides between tunnel and forwarding per URL
            resp = manager.urlopen(method, self._origin + target, **options)
        else:
            if self._pool is None:
                self._pool = manager.connection_from_url(self._origin)
            resp = self._pool.urlopen(method, target, assert_same_host=False, **options)
        if not 200 <= resp.status <= 299:
            data = _read_body(resp)
            exc = ApiException(status=resp.status, reason=resp.reason)
            exc.body, exc.headers = data.decode("utf-8", errors="replace"), resp.headers
            raise exc
        return resp

    def _note_cert_expiry(self) -> None:
        """Take the expiry a connection made by this thread's call noted (see ``_GuardedHTTPSConnection``)."""
        if (expiry := _local.__dict__.pop("server_cert_expiry", None)) is not None:
            self.server_cert_expiry = expiry

    def watch(self, path: str, query: dict[str, Any], accept: str, read_timeout: float) -> Iterator[dict[str, Any]]:
        """Stream the events of a watch (one JSON object per line) until the server ends it.

        ``read_timeout`` bounds the silence between two chunks, so a partitioned server is noticed.
        A watch has no deadline: it is meant to stay open.
        """
        try:  # opened here, not on first iteration: a refused watch fails the call itself
            resp = self._call("GET", path, {**query, "watch": "1"}, None, accept, "application/json",
                              (self.timeout[0], read_timeout))  # fmt: skip
        except Exception as exc:
            raise translate(exc, self.server) from None
        finally:
            self._note_cert_expiry()
        return self._events(resp)

    def _events(self, resp: Any) -> Iterator[dict[str, Any]]:
        """The JSON lines of a streaming response, as dicts."""
        buffer = b""
        try:
            for chunk in resp.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield orjson.loads(line)
            if buffer.strip():
                yield orjson.loads(buffer)
        except Exception as exc:
            raise translate(exc, self.server) from None
        finally:
            resp.release_conn()

    def version(self, *, deadline: float | None = None) -> dict:
        """``GET /version``: the server's build info (gitVersion, ...)."""
        info = self.request("GET", "/version", deadline=deadline)
        if not isinstance(info, dict) or not isinstance(info.get("gitVersion"), str):
            raise Unhealthy(f"not a Kubernetes API answer ({self.server})")
        return info

    def close(self) -> None:
        """Release connections (and remove ``temp_dir``, if one was given)."""
        self._pool = None  # a call after this gets a new pool from the manager, as before the first one
        try:
            self.api.rest_client.pool_manager.clear()
            self.api.close()
        finally:
            if self._temp_dir:
                shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> KubeClient:
        """Use as a context manager to close it after one use."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close on leaving the block."""
        self.close()


def _read_body(resp: Any) -> bytes:
    """Read a response's whole body and give its connection back to the pool.

    The call's deadline guard is finished first, so it can never shut down a connection that another
    call has taken from the pool meanwhile; a body cut off (deadline, reset) closes the connection.
    """
    complete = False
    try:
        data: bytes = resp.read()
        complete = True
        return data
    finally:
        guard = getattr(_local, "guard", None)
        if guard is not None:
            guard.finish()
        if not complete:
            resp.close()
        resp.release_conn()


def _earliest(*deadlines: float | None) -> float | None:
    """The earliest of the finite deadlines given, or None."""
    finite = [d for d in deadlines if d is not None and not math.isinf(d)]
    return min(finite) if finite else None


def _cap(timeout: tuple[float, float] | float, remaining: float) -> tuple[float, float]:
    """Socket timeouts no longer than what is left of the deadline (at least a millisecond)."""
    connect, read = (timeout, timeout) if not isinstance(timeout, tuple) else timeout
    remaining = max(remaining, 0.001)
    return min(connect, remaining), min(read, remaining)


def _pool_manager(
    configuration: k8s_client.Configuration, context: ssl.SSLContext | None, host_header: str | None
) -> urllib3.PoolManager:
    """A urllib3 pool manager of deadline-guarded connections for the client's one server.

    With a pinned kubeconfig it connects to the checked address while TLS sends the original name
    (SNI) and the certificate must be valid for that name; the Host header is set per request.
    """
    kwargs: dict[str, Any] = {"num_pools": 2, "maxsize": configuration.connection_pool_maxsize or 4,
                              "retries": False, "block": False}  # fmt: skip
    if configuration.host.startswith("https://"):
        name = configuration.tls_server_name or (urlsplit(f"//{host_header}").hostname if host_header else None)
        if context is None:
            cert_files = (configuration.cert_file, configuration.key_file) if configuration.cert_file else None
            ca = _read_file(configuration.ssl_ca_cert, "ssl_ca_cert") if configuration.ssl_ca_cert else None
            context = _ssl_context(ca, configuration.verify_ssl, cert_files=cert_files)
        kwargs["ssl_context"] = context
        kwargs["cert_reqs"] = ssl.CERT_REQUIRED if configuration.verify_ssl else ssl.CERT_NONE
        if name:
            kwargs["server_hostname"] = name
        kwargs["assert_hostname"] = (name or None) if configuration.verify_ssl else False
    manager: urllib3.PoolManager
    if configuration.proxy:
        manager = urllib3.ProxyManager(configuration.proxy, **kwargs)
    else:
        manager = urllib3.PoolManager(**kwargs)
    manager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
    return manager


def _config_reason(exc: BaseException) -> str:
    """A short, safe reason for a kubeconfig the client library refused."""
    text = str(exc)
    # ConfigException messages name missing keys or contexts; they never carry credential values.
    if isinstance(exc, ConfigException) and text:
        return _truncate(text, 160)
    return type(exc).__name__


def secret_path(namespace: str, name: str | None = None) -> str:
    """The REST path of the Secrets collection of a namespace, or of one Secret."""
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"
    return path if name is None else f"{path}/{quote(name, safe='')}"


def namespace_path(name: str | None = None) -> str:
    """The REST path of the Namespaces collection, or of one Namespace."""
    return "/api/v1/namespaces" if name is None else f"/api/v1/namespaces/{quote(name, safe='')}"
