"""The one layer between controllers and the Kubernetes API.

- ``KubeClient`` is an isolated client built from a kubeconfig dict (never the process-global default
  configuration), with no retries and a (connect, read) timeout on every call, speaking raw JSON
  (orjson) so that hot paths do not pay for the client's model deserialization.
- ``translate`` is the one place that turns ``ApiException``, urllib3 and TLS errors into a few domain
  errors whose messages are short, safe to show, and never contain headers or raw bodies.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException

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


# The client writes *-data fields to temp files through a module-global cache keyed only by content;
# this lock plus a purge keeps each client's files private so closing one never breaks another.
_LOAD_LOCK = threading.Lock()
_TEMP_ROOT: str | None = None  # created lazily (after any fork) by _temp_root()


def _temp_root() -> str:
    """A private (0700) directory for credential files, preferring memory-backed /dev/shm."""
    global _TEMP_ROOT
    if _TEMP_ROOT is None or not os.path.isdir(_TEMP_ROOT):
        shm = "/dev/shm"  # noqa: S108 - memory-backed; mkdtemp makes a private 0700 directory inside
        base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
        _TEMP_ROOT = tempfile.mkdtemp(prefix=f"krm-kube-{os.getpid()}-", dir=base)
        atexit.register(shutil.rmtree, _TEMP_ROOT, ignore_errors=True)  # credentials do not outlive us
    return _TEMP_ROOT


# client-go re-reads the projected token every minute; the kubelet refreshes it at 80% of its life.
TOKEN_RELOAD_SECONDS = 60.0


class ServiceAccountToken:
    """The service-account token file, re-read at most every ``reload_seconds`` when a call needs it."""

    def __init__(self, path: str, reload_seconds: float) -> None:
        """Read the token now; ``BadKubeconfig`` when the file is missing or empty."""
        self.path = path
        self.reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self.token = self._read()
        self._read_at = time.monotonic()

    def _read(self) -> str:
        """The token in the file (stripped)."""
        try:
            with open(self.path) as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise BadKubeconfig(f"cannot read the service-account token {self.path}") from exc
        if not token:
            raise BadKubeconfig(f"the service-account token {self.path} is empty")
        return token

    def refresh(self, configuration: k8s_client.Configuration) -> None:
        """The client's ``refresh_api_key_hook``: swap in the current token once it is due."""
        if time.monotonic() - self._read_at < self.reload_seconds:
            return
        with self._lock:
            if time.monotonic() - self._read_at < self.reload_seconds:
                return
            self._read_at = time.monotonic()
            try:
                self.token = self._read()
            except BadKubeconfig:
                return  # keep the last good token; the kubelet swaps the file atomically, so this is rare
            configuration.api_key = {"BearerToken": self.token}


class KubeClient:
    """An isolated API client for one cluster, with bounded timeouts and raw-JSON calls."""

    def __init__(
        self,
        configuration: k8s_client.Configuration,
        timeout: tuple[float, float],
        temp_dir: str | None = None,
    ) -> None:
        """Wrap a filled ``Configuration``; use ``from_kubeconfig`` or ``in_cluster`` to build one."""
        configuration.retries = False  # no hidden retries: a dead cluster costs one timeout, not four
        self.server = configuration.host
        self.timeout = timeout
        self._temp_dir = temp_dir
        self.api = k8s_client.ApiClient(configuration)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: dict, timeout: tuple[float, float], pool_size: int = 4) -> KubeClient:
        """Build a client from a kubeconfig dict (current context) without touching global state."""
        configuration = k8s_client.Configuration()
        configuration.connection_pool_maxsize = pool_size
        temp_dir = tempfile.mkdtemp(dir=_temp_root())
        try:
            with _LOAD_LOCK:
                try:
                    kube_config.load_kube_config_from_dict(
                        kubeconfig,
                        client_configuration=configuration,
                        persist_config=False,
                        temp_file_path=temp_dir,
                    )
                finally:
                    for key, path in list(kube_config._temp_files.items()):
                        if path.startswith(temp_dir + os.sep):
                            del kube_config._temp_files[key]
        except (ConfigException, ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise BadKubeconfig(f"invalid kubeconfig: {_config_reason(exc)}") from exc
        except Exception as exc:
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise BadKubeconfig(f"invalid kubeconfig: {type(exc).__name__}") from exc
        if not configuration.host or not configuration.host.startswith(("https://", "http://")):
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise BadKubeconfig("invalid kubeconfig: the cluster has no http(s) server address")
        return cls(configuration, timeout, temp_dir)

    @classmethod
    def in_cluster(
        cls,
        root: str,
        timeout: tuple[float, float],
        pool_size: int = 16,
        token_reload_seconds: float = TOKEN_RELOAD_SECONDS,
    ) -> KubeClient:
        """The pod's service account: token and CA under ``root``, server from the service env.

        The token is re-read every ``token_reload_seconds``: the kubelet rotates projected tokens,
        and a client that keeps the first one fails once it expires (client-go re-reads it too).
        """
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise BadKubeconfig("IN_CLUSTER=true but KUBERNETES_SERVICE_HOST is not set")
        token_file = ServiceAccountToken(os.path.join(root, "token"), token_reload_seconds)
        ca_path = os.path.join(root, "ca.crt")
        if not os.path.isfile(ca_path):
            raise BadKubeconfig(f"cannot read the service-account CA certificate under {root}")
        configuration = k8s_client.Configuration()
        configuration.host = f"https://{host if ':' not in host else '[' + host + ']'}:{port}"
        configuration.ssl_ca_cert = ca_path
        configuration.api_key = {"BearerToken": token_file.token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        configuration.refresh_api_key_hook = token_file.refresh
        configuration.connection_pool_maxsize = pool_size
        return cls(configuration, timeout)

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
    ) -> Any:
        """One API call; returns the parsed JSON body (or the bytes with ``raw``), or raises ``KubeError``."""
        try:
            resp = self._call(method, path, query, body, accept, content_type, timeout)
            data = resp.data
            if raw:
                return data
            return orjson.loads(data) if data else {}
        except Exception as exc:
            raise translate(exc, self.server) from None

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
        """The client's ``call_api`` with our headers, auth and timeout; the raw urllib3 response."""
        return self.api.call_api(
            path, method,
            query_params=list((query or {}).items()),
            header_params={"Accept": accept, "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,  # raw bytes: orjson parses, the client's models are skipped
            _request_timeout=timeout or self.timeout,
        )  # fmt: skip

    def watch(self, path: str, query: dict[str, Any], accept: str, read_timeout: float) -> Iterator[dict[str, Any]]:
        """Stream the events of a watch (one JSON object per line) until the server ends it.

        ``read_timeout`` bounds the silence between two chunks, so a partitioned server is noticed.
        """
        try:  # opened here, not on first iteration: a refused watch fails the call itself
            resp = self._call("GET", path, {**query, "watch": "1"}, None, accept, "application/json",
                              (self.timeout[0], read_timeout))  # fmt: skip
        except Exception as exc:
            raise translate(exc, self.server) from None
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

    def version(self) -> dict:
        """``GET /version``: the server's build info (gitVersion, ...)."""
        info = self.request("GET", "/version")
        if not isinstance(info, dict) or not isinstance(info.get("gitVersion"), str):
            raise Unhealthy(f"not a Kubernetes API answer ({self.server})")
        return info

    def close(self) -> None:
        """Release connections and remove this client's credential files."""
        try:
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
