"""Run the service as it runs in production (gunicorn, real HTTP) against a local control plane (tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from controlplane.harness import Cluster, free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "Pa55-word-for-tests"
JWT_KEY = "a-test-signing-key-that-is-long-enough-for-hs256-and-hs512-0123456789"


def unique(prefix: str) -> str:
    """A fresh DNS-1123 name, so tests never collide (namespaces never finish deleting here)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Service:
    """One gunicorn process serving the app on a free loopback port, its log in a file."""

    def __init__(
        self,
        meta: Cluster,
        tmp: Path,
        namespace: str | None = None,
        env: Mapping[str, str | None] | None = None,
        workers: int = 1,
        identity: str = "admin",
    ) -> None:
        """Configure; nothing runs until ``start``."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.namespace = namespace or unique("krm-test")
        self.log_path = tmp / f"service-{self.port}.log"
        kubeconfig = meta.kubeconfig_paths[identity]
        merged: dict[str, str | None] = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("USERNAME", "PASSWORD", "JWT_"))},
            "PORT": f"127.0.0.1:{self.port}",
            "METADATA_KUBECONFIG": str(kubeconfig),
            "METADATA_NAMESPACE": self.namespace,
            "USERNAME": "admin",
            "PASSWORD": ADMIN_PASSWORD,
            "JWT_SIGN_KEY": JWT_KEY,
            "LOG_LEVEL": "debug",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_THREADS": "8",
            "GUNICORN_GRACEFUL_TIMEOUT": "3",
            # Probing costs CPU every round on a shared machine: off unless a test asks for it.
            "PROBE_ENABLED": "false",
            **(env or {}),
        }
        self.env: dict[str, str] = {k: v for k, v in merged.items() if v is not None}  # None: unset
        self.process: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self._token: str | None = None

    def start(self, wait_ready: bool = True) -> Service:
        """Start gunicorn; by default wait until /readyz answers 200."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"],
            cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        self.wait_http(path="/healthz")
        if wait_ready:
            self.wait_http(path="/readyz")
        return self

    def wait_http(self, path: str = "/readyz", timeout: float = 60.0) -> None:
        """Poll ``path`` until it answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.url + path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"service not answering 200 on {path} after {timeout} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then kill."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        self.session.close()

    def log(self) -> str:
        """Everything the service wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # HTTP helpers -------------------------------------------------------------------------------

    def call(self, method: str, path: str, token: str | None = None, auth: bool = True,
             timeout: float = 10.0, **kwargs: Any) -> requests.Response:  # fmt: skip
        """One HTTP request; with ``auth`` and no token, uses a session token from a real login."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth and "Authorization" not in headers:
            headers["Authorization"] = token or self.token()
        return self.session.request(method, self.url + path, headers=headers, timeout=timeout, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> dict:
        """An /api call that must answer HTTP 200 with the envelope; returns the body."""
        resp = self.call(method, path, **kwargs)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        body = resp.json()
        assert list(body) == ["status", "message", "data"], body
        assert isinstance(body["data"], dict)
        return body

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> dict:
        """POST /api/auth/login; returns the envelope."""
        return self.api("POST", "/api/auth/login", auth=False, json={"username": username, "password": password})

    def listed(self, cluster_id: str, timeout: float = 10.0) -> dict:
        """The list item of ``cluster_id``, polled for: a worker that did not write the Secret sees it only
        once its watch delivers it (milliseconds, but not at once)."""
        deadline = time.monotonic() + timeout
        while True:
            items = self.api("GET", "/api/cluster/list")["data"]["items"]
            found = next((i for i in items if i["id"] == cluster_id), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{cluster_id} not listed within {timeout} s")
            time.sleep(0.05)

    def token(self) -> str:
        """A token from a real login (cached per service)."""
        if self._token is None:
            body = self.login()
            assert body["status"] == 200, body
            self._token = body["data"]["token"]
        return self._token
