"""The per-process wiring that routers hand to controllers."""

from __future__ import annotations

from dataclasses import dataclass, field

from config.settings import Settings
from controllers.auth import Credentials
from controllers.auth.limiter import LoginLimiter
from controllers.auth.revocation import RevocationList
from controllers.cluster import ClusterContext
from controllers.cluster.clients import ClientSweeper, ClusterClients
from controllers.terminal import SessionRegistry
from initcontroller import Bootstrap
from utils.informer import MetadataInformer
from utils.metadata import MetadataCluster


@dataclass
class Backend:
    """Settings, the metadata cluster, the bootstrap state and the cluster controllers' context."""

    settings: Settings
    metadata: MetadataCluster
    bootstrap: Bootstrap
    clusters: ClusterContext
    informer: MetadataInformer | None = None
    # Defaults so that wiring without them (unit tests) still works: no revocations, default limits.
    revocations: RevocationList | None = None
    login_limiter: LoginLimiter = field(default_factory=LoginLimiter)
    # The platform's per-cluster clients (None in wiring without the resource routes).
    cluster_clients: ClusterClients | None = None
    # WebSocket sessions of this process (pod/log, pod/exec); ended first on shutdown.
    sessions: SessionRegistry | None = None
    _sweeper: ClientSweeper | None = None

    @property
    def credentials(self) -> Credentials | None:
        """The admin login and signing key, once bootstrap has run."""
        return self.bootstrap.credentials

    def start_background(self) -> None:
        """Start the informers of the registry and the revocations (after bootstrap: they need the namespace)."""
        if self.informer is not None:
            self.informer.start()
        if self.revocations is not None:
            self.revocations.start()
        if self.cluster_clients is not None and self._sweeper is None:
            self._sweeper = ClientSweeper(self.cluster_clients)
            self._sweeper.start()

    def stop(self) -> None:
        """Stop background work (WebSocket sessions first: they get a close frame, not a dropped socket)."""
        if self.sessions is not None:
            self.sessions.shutdown(wait_seconds=2.0)
        self.bootstrap.stop()
        if self.informer is not None:
            self.informer.stop()
        if self.revocations is not None:
            self.revocations.stop()
        if self._sweeper is not None:
            self._sweeper.stop()
        if self.cluster_clients is not None:
            self.cluster_clients.close()
