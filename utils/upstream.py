"""Long-lived streams to a cluster's API server: a pod's log (HTTP, chunked) and exec (WebSocket).

Each stream gets a connection of its own, made from the cluster's ``KubeClient``: the same address
(pinned by the kubeconfig policy), TLS settings, server name and credentials as the client's pool,
but outside the pool. So a stream that lives for hours never holds a pooled connection, the client's
per-call deadlines do not cut it, and cancelling it (``shutdown`` from another thread) cannot break
a connection that ordinary requests reuse. ``kubernetes.stream`` is not used: it swaps ``call_api``
on the ``ApiClient`` it is given, which breaks every concurrent request of a shared client.

Exec speaks the Kubernetes WebSocket channel protocol (``v5.channel.k8s.io``, else ``v4``): every
binary message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson
import urllib3
import websocket
from urllib3.connection import HTTPConnection, HTTPSConnection

from utils import kube

CHANNEL_STDIN, CHANNEL_STDOUT, CHANNEL_STDERR, CHANNEL_ERROR, CHANNEL_RESIZE = 0, 1, 2, 3, 4
CHANNEL_CLOSE = 255  # v5.channel.k8s.io: [255, n] closes the stream of channel n
# A runtime that reports a non-zero exit as an error text rather than NonZeroExitCode (kwok's local
# exec: "... cmd wait: /bin/sh : exit status 3"; containerd: "... exit code 3").
_EXIT_TEXT = re.compile(r"exit (?:status|code) (\d+)\s*$")
EXEC_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
# urllib3 connection arguments that a client's pool manager may carry (TLS, server name, sockets).
_CONNECTION_KEYS = frozenset({
    "cert_reqs", "assert_hostname", "assert_fingerprint", "server_hostname", "ssl_context", "ca_certs",
    "ca_cert_dir", "ca_cert_data", "ssl_minimum_version", "ssl_maximum_version", "ssl_version",
    "cert_file", "key_file", "key_password", "socket_options",
})  # fmt: skip
_HTTPS_ONLY = _CONNECTION_KEYS - {"socket_options"}


def pod_path(namespace: str, name: str, subresource: str = "") -> str:
    """The REST path of a Pod, or of one of its subresources (log, exec)."""
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
    return f"{path}/{subresource}" if subresource else path


class _Endpoint:
    """Where and how the client's pool connects: address, base path, TLS arguments, headers."""

    def __init__(self, client: kube.KubeClient) -> None:
        """Read them from the client (nothing is sent)."""
        configuration = client.api.configuration
        parts = urlsplit(configuration.host)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.server = client.server
        kwargs = dict(getattr(client.api.rest_client.pool_manager, "connection_pool_kw", {}) or {})
        self.connection_kwargs = {k: v for k, v in kwargs.items() if k in (_HTTPS_ONLY if self.https else
                                                                           {"socket_options"})}  # fmt: skip
        headers: dict[str, str] = {}
        # The client's own auth (and its token refresh hook): the same credentials as every request.
        client.api.update_params_for_auth(headers, [], ["BearerToken"])
        if configuration.username and configuration.password and "authorization" not in {k.lower() for k in headers}:
            headers["Authorization"] = configuration.get_basic_auth_token()
        self.auth_headers = headers
        # A pinned server keeps its name in the Host header (host-routed proxies), when the client says so.
        self.host_header: str | None = getattr(client, "host_header", None)

    def connection(self, connect_timeout: float) -> HTTPConnection:
        """A fresh, unconnected urllib3 connection with the client's TLS settings."""
        cls = HTTPSConnection if self.https else HTTPConnection
        return cls(self.host, self.port, timeout=connect_timeout, **self.connection_kwargs)


def _status_reason(body: bytes | str | None, fallback: str) -> str:
    """The ``message`` of a Kubernetes Status body, else ``fallback``."""
    with contextlib.suppress(orjson.JSONDecodeError, TypeError, ValueError):
        data = orjson.loads(body or b"")
        if isinstance(data, dict) and data.get("message"):
            return " ".join(str(data["message"]).split())[:1000]
    return fallback


def _http_error(status: int, body: bytes | str | None, server: str) -> kube.KubeError:
    """An error answer of the API server as a domain error (the ``translate`` classes)."""
    message = _status_reason(body, f"{status} from {server}")
    if status == 401:
        return kube.Unauthorized(f"credentials rejected ({server}): 401 Unauthorized", status)
    if status == 403:
        return kube.Forbidden(message, status)
    if status == 404:
        return kube.NotFound(message, status)
    if status in (400, 422):
        return kube.Invalid(message, status)
    return kube.Unhealthy(f"server error ({server}): {message}", status)


class LogStream:
    """``GET pods/<name>/log?follow=…``: opened by ``open``, read by ``chunks``, cancelled by ``close``.

    Any of them may run on another thread than ``close``: a reader blocked in the wait for the answer or
    for the next chunk returns at once when ``close`` shuts the socket down.
    """

    def __init__(self, client: kube.KubeClient, namespace: str, name: str, query: dict[str, Any],
                 connect_timeout: float) -> None:  # fmt: skip
        """Prepare the request from the client's settings (nothing is sent yet)."""
        endpoint = _Endpoint(client)
        self._server = endpoint.server
        self._url = f"{endpoint.base_path}{pod_path(namespace, name, 'log')}?{urlencode(query)}"
        self._headers = {"Accept": "*/*", **endpoint.auth_headers}
        if endpoint.host_header:
            self._headers["Host"] = endpoint.host_header
        self._connection = endpoint.connection(connect_timeout)
        self._response: Any = None
        self._lock = threading.Lock()
        self.closed = False

    def open(self) -> None:
        """Connect (bounded by the connect timeout), send, and wait for the answer without a limit.

        The API server answers when the kubelet does, and a followed log that has nothing to show yet may
        send its headers only with the first line; the session's own limits and ``close`` bound the wait.
        """
        try:
            self._connection.connect()
            self._connection.timeout = None  # urllib3 applies it to the socket in getresponse
            if self._connection.sock is not None:
                self._connection.sock.settimeout(None)
            self._connection.request("GET", self._url, headers=self._headers, preload_content=False)
            response = self._connection.getresponse()
            if response.status != 200:
                raise _http_error(response.status, response.read(65536), self._server)
            self._response = response
        except kube.KubeError:
            self.close()
            raise
        except Exception as exc:
            closed = self.closed
            self.close()
            if closed:
                raise kube.Unreachable("log stream cancelled") from None
            raise kube.translate(exc, self._server) from None

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives (each chunk as the server flushed it); ends when the stream ends."""
        try:
            yield from self._response.stream(amt=65536, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError):
            if not self.closed:
                raise kube.Unreachable(f"log stream broken ({self._server})") from None

    def close(self) -> None:
        """Cancel the stream now: shut the socket down (unblocks a reader), then close it."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        sock = getattr(self._connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._connection.close()


class ExecStream:
    """An exec over the WebSocket channel protocol; send and receive may run on two threads."""

    def __init__(self, ws: websocket.WebSocket, connection: HTTPConnection) -> None:
        """Wrap an open WebSocket; use ``open_exec``."""
        self._ws = ws
        self._connection = connection
        self._lock = threading.Lock()
        self.protocol = ws.getsubprotocol() or ""
        self.closed = False

    def receive(self) -> tuple[int, bytes] | None:
        """The next message as (channel, payload); None once the server closed the stream."""
        while True:
            try:
                opcode, data = self._ws.recv_data()
            except (websocket.WebSocketException, OSError, ValueError, AttributeError):
                return None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return None
            if isinstance(data, str):
                data = data.encode()
            if data:
                return data[0], bytes(data[1:])

    def stdin(self, data: bytes) -> None:
        """Write to the process's stdin (no-op once closed)."""
        self._send(bytes([CHANNEL_STDIN]) + data)

    def resize(self, rows: int, cols: int) -> None:
        """Tell the TTY its new size."""
        self._send(bytes([CHANNEL_RESIZE]) + orjson.dumps({"Width": cols, "Height": rows}))

    def _send(self, payload: bytes) -> None:
        """One binary message; a closed stream drops it (the reader notices the end)."""
        if self.closed:
            return
        with contextlib.suppress(websocket.WebSocketException, OSError):
            self._ws.send_binary(payload)

    def close(self) -> None:
        """End the exec now: a close frame if possible, then the socket shut down and closed."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        with contextlib.suppress(Exception):
            if self._ws.sock is not None:
                self._ws.sock.settimeout(1.0)
            if self.protocol.startswith("v5."):
                self._ws.send_binary(bytes([CHANNEL_CLOSE, CHANNEL_STDIN]))  # v5: stdin is done
            self._ws.send_close()
        with contextlib.suppress(Exception):
            self._ws.abort()  # shuts the socket down: a reader blocked in recv returns at once
        with contextlib.suppress(Exception):
            self._ws.shutdown()
        with contextlib.suppress(Exception):
            self._connection.close()


def open_exec(client: kube.KubeClient, namespace: str, name: str, container: str, command: list[str],
              timeout: float) -> ExecStream:  # fmt: skip
    """Start ``command`` in the container with stdin, stdout, stderr and a TTY; ``timeout`` bounds the setup."""
    endpoint = _Endpoint(client)
    params: list[tuple[str, str]] = [("command", part) for part in command]
    params += [("container", container), ("stdin", "true"), ("stdout", "true"), ("stderr", "true"),
               ("tty", "true")]  # fmt: skip
    path = f"{endpoint.base_path}{pod_path(namespace, name, 'exec')}?{urlencode(params)}"
    scheme = "wss" if endpoint.https else "ws"
    # The URL only frames the request on the socket connected below (the checked address); the name a
    # host-routed proxy routes on goes in the Host header.
    address = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    url = f"{scheme}://{address}:{endpoint.port}{path}"
    connection = endpoint.connection(timeout)
    try:
        connection.connect()  # TCP + TLS with the client's verification (pinned address, server name)
        sock = connection.sock
        if sock is None:
            raise kube.Unreachable(f"cannot connect ({endpoint.server})")
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        ws.connect(url, socket=sock, timeout=timeout, subprotocols=EXEC_PROTOCOLS, suppress_origin=True,
                   header=[f"{k}: {v}" for k, v in endpoint.auth_headers.items()],
                   host=endpoint.host_header or f"{endpoint.host}:{endpoint.port}")  # fmt: skip
        if ws.sock is not None:
            ws.sock.settimeout(None)  # an idle shell is silent for as long as the user thinks
    except websocket.WebSocketBadStatusException as exc:
        connection.close()
        raise _http_error(exc.status_code, getattr(exc, "resp_body", None), endpoint.server) from None
    except kube.KubeError:
        connection.close()
        raise
    except Exception as exc:
        connection.close()
        if isinstance(exc, websocket.WebSocketTimeoutException):
            raise kube.Timeout(f"no answer in time ({endpoint.server})") from None
        if isinstance(exc, websocket.WebSocketException):
            raise kube.Unhealthy(f"exec handshake failed ({endpoint.server})") from None
        raise kube.translate(exc, endpoint.server) from None
    return ExecStream(ws, connection)


def exec_status(payload: bytes) -> tuple[int | None, str]:
    """The error channel's Status: (exit code, "") on exit; (None, message) when the exec failed."""
    try:
        status = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, payload.decode("utf-8", "replace")[:1000]
    if not isinstance(status, dict):
        return None, str(status)[:1000]
    if status.get("status") == "Success":
        return 0, ""
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                with contextlib.suppress(TypeError, ValueError):
                    return int(str(cause.get("message"))), ""
        return 1, ""
    message = " ".join(str(status.get("message") or "exec failed").split())[:1000]
    exited = _EXIT_TEXT.search(message)
    if exited and "executable file not found" not in message and "no such file" not in message:
        return int(exited.group(1)), ""
    return None, message
