"""Logout revocations shared by every worker and replica through the metadata cluster.

A logged-out token is remembered as one small labelled Secret per token, named by a hash of the
token (never the token itself) and annotated with the token's expiry. Each process follows the set
with the same LIST+WATCH informer as the registry (``utils.informer``), so a token logged out on one
worker or replica is refused everywhere as soon as the watch delivers the record (milliseconds), and
immediately by the process that handled the logout. While the metadata cluster is unreachable the
last known set stays in force. Records whose token has expired anyway are deleted by whichever
process notices first.

Why a Secret and not a ConfigMap: the service account already may read and write Secrets in the
metadata namespace (the registry lives there), so revocation needs no extra RBAC grant.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt as pyjwt

from config.constants import MSG_LOGOUT_FAILED
from controllers.errors import from_metadata
from utils import kube, logs
from utils.background import BackgroundLoop
from utils.informer import MetadataInformer
from utils.metadata import MetadataCluster

REVOCATION_LABEL = "krm-backend/token-revocation"
EXPIRES_ANNOTATION = "krm-backend/expires-at"  # Unix seconds: the revoked token's own ``exp``
NAME_PREFIX = "krm-token-revoked-"
# A record outlives its token by this much, so a replica whose clock is behind still refuses it.
CLEANUP_GRACE_SECONDS = 120.0
CLEANUP_INTERVAL_SECONDS = 60.0
# An expiry further away than this is not believed (tokens live minutes to hours, never years).
MAX_LIFETIME_SECONDS = 366 * 24 * 3600.0


def token_key(token: str) -> str:
    """The SHA-256 hex of a token whose signature segment is re-encoded canonically.

    PyJWT decodes base64url leniently (ignored trailing bits, stray characters), so several spellings
    of one signature verify alike; hashing the canonical spelling makes them one revocation. The
    header and payload segments are signed as written, so their spelling cannot vary.
    """
    parts = token.split(".")
    if len(parts) == 3:
        try:
            signature = pyjwt.utils.base64url_decode(parts[2])
            parts[2] = pyjwt.utils.base64url_encode(signature).decode()
        except (ValueError, TypeError):
            pass  # not base64: the token cannot verify anyway; hash it as given
    return hashlib.sha256(".".join(parts).encode()).hexdigest()


def record_name(key: str) -> str:
    """The Secret name of a revocation (a DNS-1123 subdomain: prefix + 64 hex digits)."""
    return NAME_PREFIX + key


class RevocationList(BackgroundLoop):
    """The revoked tokens: local additions, plus every process's records followed by a watch."""

    thread_name = "revocations"

    def __init__(
        self,
        metadata: MetadataCluster,
        clock: Callable[[], float] = time.time,
        watch_seconds: int = 60,
    ) -> None:
        """Remember where records live; nothing is read until ``start``."""
        super().__init__()
        self.metadata = metadata
        self.clock = clock
        self.informer = MetadataInformer(
            lambda: metadata.client,
            kube.secret_path(metadata.namespace),
            f"{REVOCATION_LABEL}=true",
            watch_seconds=watch_seconds,
        )
        self._local: dict[str, float] = {}  # revoked by this process: key -> expiry
        self._lock = threading.Lock()

    def is_revoked(self, token: str) -> bool:
        """True when ``token`` was logged out (here, or anywhere the watch has told us about)."""
        key = token_key(token)
        now = self.clock()
        with self._lock:
            expiry = self._local.get(key)
        if expiry is None:
            meta = self.informer.get(record_name(key))
            if meta is not None:
                expiry = _expiry((meta.get("annotations") or {}).get(EXPIRES_ANNOTATION), now)
        return expiry is not None and expiry + CLEANUP_GRACE_SECONDS > now

    def revoke(self, token: str, expires_at: float) -> None:
        """Refuse ``token`` from now on in this process, then record it for every other one.

        Raises ``KubeError`` when the record cannot be written; the local refusal stays in force.
        """
        key = token_key(token)
        with self._lock:
            self._local[key] = expires_at
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": record_name(key),
                "namespace": self.metadata.namespace,
                "labels": {REVOCATION_LABEL: "true", "app.kubernetes.io/name": "krm-backend"},
                "annotations": {EXPIRES_ANNOTATION: str(int(expires_at))},
            },
        }
        # AlreadyExists: logged out twice, or by another process first; the record is there either way.
        with contextlib.suppress(kube.AlreadyExists):
            self.metadata.client.request("POST", kube.secret_path(self.metadata.namespace), body=body)

    def start(self) -> None:
        """Follow the records (after bootstrap: the namespace must exist) and clean up now and then."""
        self.informer.start()
        super().start()

    def stop(self) -> None:
        """Stop following and cleaning."""
        self.informer.stop()
        super().stop()

    def _run(self) -> None:
        """Once the records are loaded, then every minute or so (with jitter, so workers do not align),
        delete records of expired tokens."""
        delay = 0.0
        while not self._stop.wait(delay):
            if self.informer.wait_healthy(1.0):
                try:
                    self.clean_up()
                except kube.KubeError as exc:
                    logs.debug({"error": str(exc)}, "token revocations not cleaned up")
                delay = CLEANUP_INTERVAL_SECONDS * random.uniform(0.8, 1.2)  # noqa: S311

    def clean_up(self) -> None:
        """Forget local entries and delete records whose token has expired anyway. Raises ``KubeError``."""
        now = self.clock()
        with self._lock:
            self._local = {k: v for k, v in self._local.items() if v + CLEANUP_GRACE_SECONDS > now}
        for meta in self.informer.snapshot()[1]:
            name = str(meta.get("name", ""))
            expiry = _expiry((meta.get("annotations") or {}).get(EXPIRES_ANNOTATION), now)
            if name.startswith(NAME_PREFIX) and expiry + CLEANUP_GRACE_SECONDS <= now:
                with contextlib.suppress(kube.NotFound):  # two processes deleting one record is harmless
                    self.metadata.client.request("DELETE", kube.secret_path(self.metadata.namespace, name))
                self.informer.remove(name)
                logs.debug({"record": name[: len(NAME_PREFIX) + 12]}, "expired token revocation removed")


def _expiry(value: Any, now: float) -> float:
    """An expiry annotation as seconds; a missing or absurd one counts as the longest lifetime."""
    try:
        expiry = float(value)
    except (TypeError, ValueError):
        return now + MAX_LIFETIME_SECONDS
    if expiry != expiry or expiry > now + MAX_LIFETIME_SECONDS:  # NaN or years away
        return now + MAX_LIFETIME_SECONDS
    return expiry


def logout(revocations: RevocationList, token: str, claims: dict[str, Any]) -> None:
    """Revoke a valid token until its ``exp``; a record that cannot be stored is reported (503/400)."""
    expires_at = float(claims.get("exp") or 0) or revocations.clock() + MAX_LIFETIME_SECONDS
    try:
        revocations.revoke(token, expires_at)
    except kube.KubeError as exc:
        logs.error({"error": str(exc)}, "logout not recorded for other processes")
        raise from_metadata(MSG_LOGOUT_FAILED, exc) from None
    logs.info({"username": str(claims.get("username") or claims.get("sub") or "")[:64],
               "revocation": token_key(token)[:12]}, "token revoked")  # fmt: skip
