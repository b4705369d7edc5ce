"""Clusters divided among replicas: a fixed number of shards, each held by a Lease, shared out fairly.

A cluster's shard is a stable hash of its id modulo the shard count, the same in every replica. Shard
``i`` is the Lease ``<prefix>-<i>`` in the metadata namespace (``utils.leader.Lease``: compare-and-swap
writes, observed-time expiry, release by emptying the holder). Every replica also renews a *member*
Lease of its own, so each knows how many replicas are alive, and holds at most ``ceil(shards / alive)``
shards and, once settled, at least ``floor(shards / alive)``: one that holds more while another alive
replica holds fewer releases the extras, which the one short of its share takes (see ``plan``). A
shard is released only after the write under way into one of its clusters ends (``Lease.guard``). A
dead replica's shards and member Lease expire after the lease duration and are taken by the others. A
shard free for a whole lease duration is taken by anyone, over its share if need be, so no shard stays
unheld while a replica is alive. The processes one replica starts together (``PROBE_PROCESSES``) share by
at least their count for their first lease duration, before they see each other's membership.

All of it runs in one loop, every renew interval, on one LIST of the Leases and a write per Lease
renewed or taken.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from typing import Any

from utils import kube, logs
from utils.leader import Lease, LeaseView, Ownership, lease_path

LEASE_LABEL = "krm-backend/prober-lease"  # "shard" or "member": the Leases one LIST reads


def shard_of(key: str, shards: int) -> int:
    """The shard of ``key`` (a cluster id): sha256 of it, modulo ``shards`` (stable across processes)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % shards


def fair_share(shards: int, alive: int) -> int:
    """The most shards one of ``alive`` replicas holds: ceil(shards / alive)."""
    return math.ceil(shards / max(alive, 1))


def preference(identity: str, shard: int) -> bytes:
    """Rank of ``shard`` for ``identity`` (lower first): replicas try different free shards first."""
    return hashlib.sha256(f"{identity}/{shard}".encode()).digest()


def plan(me: str, holders: Sequence[str], members: Collection[str], overdue: Collection[int] = (),
         assumed: int = 1) -> tuple[list[int], list[int]]:  # fmt: skip
    """What ``me`` releases and tries to acquire, in order.

    ``holders[i]``: the live holder of shard ``i`` ("" when free); ``members``: the live replicas
    (``me`` counts whatever it says); ``overdue``: free shards that have stayed free for a lease
    duration, taken even over the fair share; ``assumed``: the fewest members to share by (the processes
    started together with ``me``, before their memberships are seen). Settled, every replica holds
    ``floor`` or ``ceil`` of shards / replicas: one over the ceiling releases what the others are short
    of it, one over the floor what the others are short of the floor, and while another is short of the
    floor, one at or above it leaves free shards to it. Nothing is freed that nobody would take.
    """
    alive = set(members) | {me}
    sharing = max(len(alive), assumed)
    cap, floor = fair_share(len(holders), sharing), len(holders) // sharing
    counts = Counter(h for h in holders if h)
    others = [counts[m] for m in alive if m != me]
    short_of_cap = sum(max(cap - n, 0) for n in others)
    short_of_floor = sum(max(floor - n, 0) for n in others)
    mine = sorted((i for i, h in enumerate(holders) if h == me), key=lambda i: preference(me, i))
    extra = max(min(len(mine) - cap, short_of_cap), min(len(mine) - floor, short_of_floor), 0)
    release = mine[len(mine) - extra :]
    kept = len(mine) - extra
    room = 0 if kept >= floor and short_of_floor else max(cap - kept, 0)
    free = sorted((i for i, h in enumerate(holders) if not h), key=lambda i: preference(me, i))
    acquire = free[:room] + [i for i in free[room:] if i in overdue]
    return release, acquire


def member_lease_name(prefix: str, identity: str) -> str:
    """The member Lease of ``identity`` (a hash: identities carry host names, which need not be DNS names)."""
    return f"{prefix}-member-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


class ShardOwnership(Ownership):
    """This process's share of the shards; see the module docstring."""

    thread_name = "shard-leases"

    def __init__(
        self,
        client: Callable[[], kube.KubeClient],
        namespace: str,
        prefix: str,
        shards: int,
        lease_seconds: float = 15.0,
        renew_seconds: float = 5.0,
        identity: str | None = None,
        healthy: Callable[[], bool] | None = None,
        siblings: int = 1,
    ) -> None:
        """Configure; nothing runs until ``start``.

        ``healthy``: see ``Ownership``; while it says False this process releases its shards and its
        membership, so the others take over. ``siblings``: how many members start together with this
        one (``PROBE_PROCESSES``, this one included). For a lease duration after its first cycle this
        one shares by at least that many, so processes started at once split the shards at once
        instead of the first to cycle taking them all and handing them over later; the share of a
        sibling that never shows up stays free and is taken as overdue after a lease duration.
        """
        super().__init__(client, namespace, lease_seconds, renew_seconds, identity, healthy)
        self.prefix = prefix
        self._shards = [
            Lease(client, namespace, f"{prefix}-{i}", self.identity, lease_seconds, {LEASE_LABEL: "shard"})
            for i in range(shards)
        ]
        self._member = Lease(client, namespace, member_lease_name(prefix, self.identity), self.identity,
                             lease_seconds, {LEASE_LABEL: "member"})  # fmt: skip
        self._others: dict[str, LeaseView] = {}  # other replicas' member Leases, by name
        self._free_since: dict[int, float] = {}
        self.siblings = max(siblings, 1)
        self._joined: float | None = None  # the first cycle (monotonic)
        self.members = 1  # live replicas at the last cycle (this one included)

    # Ownership --------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether any shard is held."""
        return any(lease.held for lease in self._shards)

    @property
    def shards(self) -> tuple[int, ...]:
        """The shards held now."""
        return tuple(i for i, lease in enumerate(self._shards) if lease.held)

    def tenure(self, key: str) -> int:
        """The tenure of the shard of ``key`` (0: not held)."""
        return self._shards[shard_of(key, len(self._shards))].tenure

    def recording(self, key: str) -> AbstractContextManager[int]:
        """The tenure of the shard of ``key``, which is not released until the block ends."""
        return self._shards[shard_of(key, len(self._shards))].guard()

    # The loop -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop campaigning; release every shard and leave, so the others take over at once."""
        super().stop()
        if self._thread is not None:
            self._thread.join(self.renew_seconds)  # a cycle in progress ends first: nothing renewed after this
        self._leave()

    def _leave(self) -> None:
        """Release every held shard, then the membership (deleted; released if it cannot be)."""
        for lease in self._shards:
            lease.release(self.renew_seconds)
        if self._member.held:
            try:  # a replica that leaves for good leaves no Lease behind
                self._client().request("DELETE", lease_path(self.namespace, self._member.name))
                self._member.forget()
            except kube.KubeError:
                self._member.release(0)

    def _run(self) -> None:
        """One cycle every renew interval."""
        while not self._stop.is_set():
            held = len(self.shards)
            if self.healthy is not None and not self.healthy():
                if held or self._member.held:
                    logs.warning({"identity": self.identity, "shards": held}, "no progress: giving the shards up")
                    self._leave()
            else:
                try:
                    self.cycle()
                except kube.KubeError as exc:
                    logs.debug({"identity": self.identity, "error": str(exc)}, "shard leases not renewed")
                except Exception as exc:  # a bug must not end the loop: held shards would lapse for good
                    logs.error({"identity": self.identity, "error": f"{type(exc).__name__}: {exc}"},
                               "shard leases cycle failed")  # fmt: skip
            if len(self.shards) != held:
                logs.info({"identity": self.identity, "shards": len(self.shards), "members": self.members},
                          "probe shards changed")  # fmt: skip
            self._stop.wait(self.renew_seconds)

    def cycle(self) -> None:
        """Renew membership and held shards, release extras, take free shards up to the fair share."""
        started = time.monotonic()
        client = self._client()
        listing = client.request("GET", lease_path(self.namespace), query={"labelSelector": LEASE_LABEL})
        items = listing.get("items") or []
        leases: dict[str, dict[str, Any]] = {i["metadata"]["name"]: i for i in items if i.get("metadata")}
        # Membership first: the others count this replica before it takes anything.
        self._member.acquire_or_renew(leases.get(self._member.name), started)
        members = {self.identity} | self._live_members(leases)
        self.members = len(members)
        holders: list[str] = []
        for lease in self._shards:
            current = leases.get(lease.name)
            holder = lease.view.live_holder(current)
            mine = current is not None and (current.get("spec") or {}).get("holderIdentity") == self.identity
            if mine or lease.held:  # renew: ours by the Lease, or by our own count
                if lease.acquire_or_renew(current, started):
                    holder = self.identity
                elif holder in ("", self.identity):
                    holder = "?"  # lost to a write in between: neither free nor ours until the next read
            holders.append(holder)
        now = time.monotonic()
        for i, holder in enumerate(holders):
            if holder:
                self._free_since.pop(i, None)
            else:
                self._free_since.setdefault(i, now)
        overdue = {i for i, since in self._free_since.items() if now - since >= self.lease_seconds}
        if self._joined is None:
            self._joined = started
        assumed = self.siblings if started - self._joined < self.lease_seconds else 1
        release, acquire = plan(self.identity, holders, members, overdue, assumed)
        for i in release:  # no round records into it once this returns (see Lease.release)
            self._shards[i].release(self.renew_seconds)
        gained = False
        for i in acquire:
            lease = self._shards[i]
            if lease.acquire_or_renew(leases.get(lease.name), started):
                gained = True
                self._free_since.pop(i, None)
        if gained:
            self._gained.set()

    def _live_members(self, leases: dict[str, dict[str, Any]]) -> set[str]:
        """The other replicas whose member Lease is live; the dead ones' Leases are deleted."""
        live: set[str] = set()
        names = {name for name, lease in leases.items()
                 if (lease["metadata"].get("labels") or {}).get(LEASE_LABEL) == "member"}  # fmt: skip
        for name in list(self._others):
            if name not in names:
                del self._others[name]
        for name in names - {self._member.name}:
            view = self._others.setdefault(name, LeaseView(self.lease_seconds))
            holder = view.live_holder(leases[name])
            if holder:
                live.add(holder)
                continue
            # Expired or handed over: gone. Deleted on the version read, so a renewal meanwhile wins.
            version = leases[name]["metadata"].get("resourceVersion")
            with contextlib.suppress(kube.KubeError):  # someone else deleted it, or it was renewed meanwhile
                self._client().request("DELETE", lease_path(self.namespace, name),
                                       body={"preconditions": {"resourceVersion": version}})  # fmt: skip
            self._others.pop(name, None)
        return live
