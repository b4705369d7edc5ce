"""Leader election with a ``coordination.k8s.io/v1`` Lease, the way client-go's leaderelection does it.

Every process runs an elector; exactly one holds the Lease at a time. Expiry is judged by the local
clock from the moment this process last saw the Lease change (client-go's ``observedTime``), so
clock skew between replicas does not matter. A holder that cannot renew for a whole lease duration
stops acting as leader before anyone else can take over.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from utils import kube, logs
from utils.background import BackgroundLoop


def _now_micro() -> str:
    """The Lease's MicroTime format."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_path(namespace: str, name: str | None = None) -> str:
    """REST path of the Leases of a namespace, or of one Lease."""
    base = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}/leases"
    return base if name is None else f"{base}/{quote(name, safe='')}"


def default_identity() -> str:
    """host_pid_random: unique per process, readable in the Lease."""
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


class LeaderElector(BackgroundLoop):
    """Acquire and renew a Lease; ``is_leader`` says whether this process may act."""

    thread_name = "leader-election"

    def __init__(
        self,
        client: Callable[[], kube.KubeClient],
        namespace: str,
        name: str,
        lease_seconds: float = 15.0,
        renew_seconds: float = 5.0,
        identity: str | None = None,
        healthy: Callable[[], bool] | None = None,
    ) -> None:
        """Configure; nothing runs until ``start``.

        ``healthy``: whether the work the Lease guards makes progress; while it says False this process
        releases the Lease (if it holds it) and does not campaign, so another one takes over.
        """
        super().__init__()
        self._client = client
        self.namespace = namespace
        self.name = name
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.identity = identity or default_identity()
        self._leader_until = 0.0  # monotonic deadline of our own leadership
        self._observed: tuple[Any, Any] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self.healthy = healthy

    @property
    def is_leader(self) -> bool:
        """True while our last successful renewal is younger than the lease duration."""
        return time.monotonic() < self._leader_until

    def stop(self) -> None:
        """Stop campaigning and, if leading, release the Lease so another process takes over at once."""
        super().stop()
        self.release()

    def release(self) -> None:
        """If leading, stop and hand the Lease over (holder emptied, 1 s duration)."""
        if self.is_leader:
            self._leader_until = 0.0
            try:
                lease = self._client().request("GET", lease_path(self.namespace, self.name))
                if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                    lease["spec"]["holderIdentity"] = ""
                    lease["spec"]["leaseDurationSeconds"] = 1
                    self._client().request("PUT", lease_path(self.namespace, self.name), body=lease)
            except kube.KubeError:
                pass  # it expires by itself

    def _run(self) -> None:
        """Try to acquire or renew every renew interval (followers retry at the same pace)."""
        while not self._stop.is_set():
            was_leader = self.is_leader
            if self.healthy is not None and not self.healthy():
                if was_leader:
                    logs.warning({"lease": self.name, "identity": self.identity},
                                 "no progress: giving the Lease up")  # fmt: skip
                    self.release()
                self._stop.wait(self.renew_seconds)
                continue
            try:
                self.try_acquire_or_renew()
            except kube.KubeError as exc:
                logs.debug({"lease": self.name, "error": str(exc)}, "lease not renewed")
            if self.is_leader and not was_leader:
                logs.info({"lease": self.name, "identity": self.identity}, "became leader")
            elif was_leader and not self.is_leader:
                logs.warning({"lease": self.name, "identity": self.identity}, "lost leadership")
            self._stop.wait(self.renew_seconds)

    def try_acquire_or_renew(self) -> bool:
        """One round; True when this process holds the Lease afterwards."""
        client = self._client()
        started = time.monotonic()
        spec_mine = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(max(1, round(self.lease_seconds))),
            "renewTime": _now_micro(),
        }
        try:
            lease = client.request("GET", lease_path(self.namespace, self.name))
        except kube.NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**spec_mine, "acquireTime": spec_mine["renewTime"], "leaseTransitions": 0},
            }
            try:
                client.request("POST", lease_path(self.namespace), body=body)
            except (kube.AlreadyExists, kube.Conflict):
                return False
            self._leader_until = started + self.lease_seconds
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        observed = (holder, spec.get("renewTime"))
        if observed != self._observed:
            self._observed, self._observed_at = observed, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_seconds)
        if holder and holder != self.identity and time.monotonic() < self._observed_at + duration:
            self._leader_until = 0.0
            return False  # someone else holds a lease that has not expired from our point of view
        new_spec = {**spec, **spec_mine}
        if holder != self.identity:
            new_spec["acquireTime"] = spec_mine["renewTime"]
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease["spec"] = new_spec
        try:  # the resourceVersion in the body makes this a compare-and-swap
            client.request("PUT", lease_path(self.namespace, self.name), body=lease)
        except kube.Conflict:
            return False
        self._leader_until = started + self.lease_seconds
        return True

    def holder(self) -> str:
        """The current holder's identity as the Lease says (for status pages and tests)."""
        try:
            lease = self._client().request("GET", lease_path(self.namespace, self.name))
        except kube.KubeError:
            return ""
        return str((lease.get("spec") or {}).get("holderIdentity") or "")
