"""``coordination.k8s.io/v1`` Leases the way client-go's leaderelection uses them, and leader election on one.

A ``Lease`` is one named Lease as one process sees it: acquired and renewed with a compare-and-swap,
released by emptying its holder. Expiry is judged by the local clock from the moment this process last
saw the Lease change (client-go's ``observedTime``), so clock skew between replicas does not matter. A
holder that cannot renew for a whole lease duration stops acting as holder before anyone else can take
over. ``LeaderElector`` campaigns for one Lease; ``utils.shards`` holds a share of several.

Both tell the prober which clusters are this process's to probe through ``Ownership``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
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


class LeaseView:
    """Who holds a Lease, by observed-time expiry: a holder whose renewal has not changed for a duration is gone."""

    def __init__(self, default_seconds: float) -> None:
        """``default_seconds``: the duration assumed when the Lease names none."""
        self.default_seconds = default_seconds
        self._observed: tuple[Any, Any] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0

    def live_holder(self, lease: dict[str, Any] | None) -> str:
        """The holder of ``lease`` (as just read) while it has not expired from our point of view, else ""."""
        if lease is None:
            return ""
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        observed = (holder, spec.get("renewTime"))
        if observed != self._observed:
            self._observed, self._observed_at = observed, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.default_seconds)
        return holder if holder and time.monotonic() < self._observed_at + duration else ""


class Lease:
    """One named Lease held (or wanted) by ``identity``; see the module docstring."""

    def __init__(
        self,
        client: Callable[[], kube.KubeClient],
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = 15.0,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Configure; nothing is read or written until a method is called."""
        self._client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.labels = labels or {}
        self.view = LeaseView(lease_seconds)
        self._until = 0.0  # monotonic deadline of our own holding
        self._terms = 0  # how many times this process acquired the Lease (see ``tenure``)
        self._writers = 0  # ``guard`` blocks in progress
        self._cond = threading.Condition()

    @property
    def held(self) -> bool:
        """True while our last successful renewal is younger than the lease duration."""
        return time.monotonic() < self._until

    @property
    def tenure(self) -> int:
        """0 when not held; otherwise a number that changes each time the Lease is acquired anew."""
        return self._terms if self.held else 0

    @contextlib.contextmanager
    def guard(self) -> Iterator[int]:
        """The tenure, with ``release`` held back until the block ends (a write in it is never cut in two)."""
        with self._cond:
            tenure = self.tenure
            if tenure:
                self._writers += 1
        try:
            yield tenure
        finally:
            if tenure:
                with self._cond:
                    self._writers -= 1
                    self._cond.notify_all()

    def release(self, wait: float | None = None) -> None:
        """If held: stop holding at once, let running ``guard`` blocks end (at most ``wait`` s), hand over.

        Handing over empties the holder (1 s duration), so another process may take the Lease at once.
        """
        with self._cond:
            if not self.held:
                return
            self._until = 0.0
            self._cond.wait_for(lambda: self._writers == 0, self.lease_seconds if wait is None else wait)
        try:
            lease = self._client().request("GET", lease_path(self.namespace, self.name))
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                self._client().request("PUT", lease_path(self.namespace, self.name), body=lease)
        except kube.KubeError:
            pass  # it expires by itself

    def forget(self) -> None:
        """Stop holding without writing anything (the Lease was deleted)."""
        self._until = 0.0

    def try_acquire_or_renew(self) -> bool:
        """Read the Lease, then ``acquire_or_renew``; True when this process holds it afterwards."""
        started = time.monotonic()
        try:
            lease = self._client().request("GET", lease_path(self.namespace, self.name))
        except kube.NotFound:
            lease = None
        return self.acquire_or_renew(lease, started)

    def acquire_or_renew(self, lease: dict[str, Any] | None, started: float) -> bool:
        """Take or renew ``lease`` as read at ``started`` (None: it does not exist); True when held afterwards.

        Refused while another holder's Lease has not expired from our point of view. The write carries
        the resourceVersion that was read, so two processes never both win.
        """
        client = self._client()
        spec_mine = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(max(1, round(self.lease_seconds))),
            "renewTime": _now_micro(),
        }
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels},
                "spec": {**spec_mine, "acquireTime": spec_mine["renewTime"], "leaseTransitions": 0},
            }
            try:
                client.request("POST", lease_path(self.namespace), body=body)
            except (kube.AlreadyExists, kube.Conflict):
                return False
            self._held_from(started)
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        live = self.view.live_holder(lease)
        if live and live != self.identity:
            self._until = 0.0
            return False  # someone else holds a lease that has not expired from our point of view
        new_spec = {**spec, **spec_mine}
        if holder != self.identity:
            new_spec["acquireTime"] = spec_mine["renewTime"]
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease = {**lease, "spec": new_spec}
        try:  # the resourceVersion in the body makes this a compare-and-swap
            client.request("PUT", lease_path(self.namespace, self.name), body=lease)
        except kube.Conflict:
            return False
        self._held_from(started)
        return True

    def _held_from(self, started: float) -> None:
        """Record a successful write begun at ``started``; a new tenure if the Lease was not held."""
        with self._cond:
            if not self.held:
                self._terms += 1
            self._until = started + self.lease_seconds

    def holder(self) -> str:
        """The current holder's identity as the Lease says (for status pages and tests)."""
        try:
            lease = self._client().request("GET", lease_path(self.namespace, self.name))
        except kube.KubeError:
            return ""
        return str((lease.get("spec") or {}).get("holderIdentity") or "")


class Ownership(BackgroundLoop):
    """Which clusters are this process's to probe, as the prober asks (``LeaderElector``, ``ShardOwnership``).

    A loop that keeps Leases. ``key`` is a cluster's id (its Secret's name). A key is owned under a
    *tenure*: a number that stays the same while this process keeps the key and changes when it is lost
    and acquired again, so what the prober learnt under an old tenure is never taken for current.
    """

    def __init__(
        self,
        client: Callable[[], kube.KubeClient],
        namespace: str,
        lease_seconds: float,
        renew_seconds: float,
        identity: str | None,
        healthy: Callable[[], bool] | None,
    ) -> None:
        """Configure; nothing runs until ``start``.

        ``healthy``: whether the work the Leases guard makes progress; while it says False this process
        releases what it holds and does not campaign, so others take over.
        """
        super().__init__()
        self._client = client
        self.namespace = namespace
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.identity = identity or default_identity()
        self.healthy = healthy
        self._gained = threading.Event()

    @property
    def active(self) -> bool:
        """Whether this process owns anything at all (no rounds run otherwise)."""
        raise NotImplementedError

    @property
    def shards(self) -> tuple[int, ...]:
        """The shards held now (for the round's log line)."""
        raise NotImplementedError

    def tenure(self, key: str) -> int:
        """0 when ``key`` is not ours; otherwise the tenure under which it is."""
        raise NotImplementedError

    def owns(self, key: str) -> bool:
        """Whether ``key`` is ours now."""
        return self.tenure(key) != 0

    def recording(self, key: str) -> AbstractContextManager[int]:
        """The tenure of ``key`` (0: not ours), kept until the block ends: it is not released meanwhile."""
        raise NotImplementedError

    def wait_for_gain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for this process to gain keys; True (once per gain) when it did."""
        if self._gained.wait(timeout):
            self._gained.clear()
            return True
        return False


class LeaderElector(Ownership):
    """Acquire and renew one Lease; ``is_leader`` says whether this process may act (it owns every key)."""

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
        """Configure; nothing runs until ``start`` (``healthy``: see ``Ownership``)."""
        super().__init__(client, namespace, lease_seconds, renew_seconds, identity, healthy)
        self.name = name
        self.lease = Lease(client, namespace, name, self.identity, lease_seconds)

    @property
    def is_leader(self) -> bool:
        """True while our last successful renewal is younger than the lease duration."""
        return self.lease.held

    @property
    def active(self) -> bool:
        """The leader owns everything."""
        return self.is_leader

    @property
    def shards(self) -> tuple[int, ...]:
        """One shard, the whole: ``(0,)`` while leading."""
        return (0,) if self.is_leader else ()

    def tenure(self, key: str) -> int:
        """The leadership's tenure, for every key."""
        return self.lease.tenure

    def recording(self, key: str) -> AbstractContextManager[int]:
        """The leadership's tenure, not released until the block ends."""
        return self.lease.guard()

    def stop(self) -> None:
        """Stop campaigning and, if leading, release the Lease so another process takes over at once."""
        super().stop()
        self.release()

    def release(self) -> None:
        """If leading, stop and hand the Lease over (holder emptied, 1 s duration)."""
        self.lease.release()

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
                self._gained.set()
            elif was_leader and not self.is_leader:
                logs.warning({"lease": self.name, "identity": self.identity}, "lost leadership")
            self._stop.wait(self.renew_seconds)

    def try_acquire_or_renew(self) -> bool:
        """One round; True when this process holds the Lease afterwards."""
        return self.lease.try_acquire_or_renew()

    def holder(self) -> str:
        """The current holder's identity as the Lease says (for status pages and tests)."""
        return self.lease.holder()
