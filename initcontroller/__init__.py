"""Bootstrap: what must exist in the metadata cluster before the first request is served."""

from __future__ import annotations

import base64
import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from config.settings import Settings
from utils import kube, logs
from utils.background import BackgroundLoop
from utils.metadata import MetadataCluster


@dataclass(frozen=True)
class Credentials:
    """The admin login and the token signing key, known once bootstrap has run."""

    username: str
    password: str = field(repr=False)
    sign_key: str = field(repr=False)


AUTH_SECRET_NAME = "krm-backend-auth"  # noqa: S105 - generated signing key and initial password, shared by replicas
AUTH_KEY_SIGN_KEY = "jwt-sign-key"
AUTH_KEY_PASSWORD = "password"  # noqa: S105 - a key name, not a password


def ensure_metadata_namespace(client: kube.KubeClient, namespace: str) -> bool:
    """Make sure the namespace exists; create it only on NotFound. True when this call created it."""
    try:
        ns = client.request("GET", kube.namespace_path(namespace))
    except kube.NotFound:
        pass
    else:
        if (ns.get("status") or {}).get("phase") == "Terminating":
            raise kube.Invalid(f'namespace "{namespace}" is being deleted')
        return False
    try:
        client.request("POST", kube.namespace_path(), body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace},
        })  # fmt: skip
    except kube.AlreadyExists:
        return False  # another worker or replica created it first
    return True


def _decoded(secret: dict, key: str) -> str | None:
    """A string value of a Secret's data, or None."""
    value = (secret.get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value else None


def ensure_credentials(client: kube.KubeClient, settings: Settings) -> Credentials:
    """The configured signing key and password, or the generated ones kept in a shared Secret.

    Several workers and replicas start at once: the first Create wins and everyone reads its values.
    """
    if settings.jwt_sign_key and settings.password:
        return Credentials(settings.username, settings.password, settings.jwt_sign_key)
    path = kube.secret_path(settings.metadata_namespace, AUTH_SECRET_NAME)
    where = f"Secret {settings.metadata_namespace}/{AUTH_SECRET_NAME}"
    try:
        stored = client.request("GET", path)
    except kube.NotFound:
        generated = {AUTH_KEY_SIGN_KEY: secrets.token_urlsafe(48), AUTH_KEY_PASSWORD: secrets.token_urlsafe(12)}
        for value in generated.values():
            logs.register_secret(value)  # masked from here on, before anything could log them
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": AUTH_SECRET_NAME, "namespace": settings.metadata_namespace,
                         "labels": {"app.kubernetes.io/name": "krm-backend"}},
            "stringData": generated,
        }  # fmt: skip
        try:
            stored = client.request("POST", kube.secret_path(settings.metadata_namespace), body=body)
            if not settings.password:
                logs.warning({"secret": where, "key": AUTH_KEY_PASSWORD},
                             f"generated the initial admin password; read it with: kubectl -n "
                             f"{settings.metadata_namespace} get secret {AUTH_SECRET_NAME} "
                             f"-o jsonpath='{{.data.{AUTH_KEY_PASSWORD}}}' | base64 -d")  # fmt: skip
        except kube.AlreadyExists:
            stored = client.request("GET", path)
    sign_key = settings.jwt_sign_key or _decoded(stored, AUTH_KEY_SIGN_KEY)
    password = settings.password or _decoded(stored, AUTH_KEY_PASSWORD)
    logs.register_secret(sign_key)
    logs.register_secret(password)
    if not sign_key or not password:
        raise kube.Invalid(f"{where} lacks {AUTH_KEY_SIGN_KEY} or {AUTH_KEY_PASSWORD}")
    if not settings.password:
        logs.info({"secret": where, "key": AUTH_KEY_PASSWORD, "username": settings.username},
                  "admin password is the generated one")  # fmt: skip
    return Credentials(settings.username, password, sign_key)


class Bootstrap(BackgroundLoop):
    """Runs the bootstrap until it succeeds, with exponential backoff; readiness reads its state."""

    thread_name = "bootstrap"

    def __init__(self, settings: Settings, metadata: MetadataCluster,
                 on_ready: Callable[[Credentials], None] | None = None) -> None:  # fmt: skip
        """Prepare; nothing runs until ``run_once`` or ``start``."""
        super().__init__()
        self.settings = settings
        self.metadata = metadata
        self.on_ready = on_ready
        self.credentials: Credentials | None = None
        self.last_error = "bootstrap has not run yet"
        self.done = threading.Event()

    def run_once(self) -> Credentials:
        """One attempt: namespace, then credentials. Raises ``KubeError`` on failure."""
        client = self.metadata.client
        namespace = self.settings.metadata_namespace
        if ensure_metadata_namespace(client, namespace):
            logs.info({"namespace": namespace}, "created the metadata namespace")
        credentials = ensure_credentials(client, self.settings)
        logs.register_secret(credentials.password)
        logs.register_secret(credentials.sign_key)
        self.credentials = credentials
        self.last_error = ""
        if self.on_ready:
            self.on_ready(credentials)
        self.done.set()
        logs.info({"namespace": namespace, "server": client.server}, "metadata cluster ready")
        return credentials

    def _run(self) -> None:
        """Retry ``run_once`` with backoff (0.5 s doubling up to the cap, with jitter) until it works."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                self.run_once()
                return
            except kube.KubeError as exc:
                self.last_error = str(exc)
                if isinstance(exc, kube.BadKubeconfig):
                    self.metadata.close()  # re-read the file next time (it may be fixed meanwhile)
                logs.error({"reason": exc.reason, "error": str(exc), "retryIn": round(delay, 1)},
                           "metadata cluster not usable; will retry")  # fmt: skip
            self._stop.wait(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, self.settings.bootstrap_max_backoff)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the bootstrap; True when done."""
        return self.done.wait(timeout)

    def readiness(self) -> str | None:
        """``None`` when bootstrap is done and the metadata namespace answers right now; else why not."""
        if self.credentials is None:
            return self.last_error
        try:
            # A short timeout: a readiness probe must answer even when the metadata cluster hangs.
            self.metadata.client.request("GET", kube.namespace_path(self.settings.metadata_namespace),
                                         timeout=(1.0, 1.0))  # fmt: skip
        except kube.KubeError as exc:
            return f"metadata cluster: {exc}"
        return None
