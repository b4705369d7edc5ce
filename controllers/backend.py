"""The per-process wiring that routers hand to controllers."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from controllers.auth import Credentials
from controllers.cluster import ClusterContext
from initcontroller import Bootstrap
from utils.metadata import MetadataCluster


@dataclass
class Backend:
    """Settings, the metadata cluster, the bootstrap state and the cluster controllers' context."""

    settings: Settings
    metadata: MetadataCluster
    bootstrap: Bootstrap
    clusters: ClusterContext

    @property
    def credentials(self) -> Credentials | None:
        """The admin login and signing key, once bootstrap has run."""
        return self.bootstrap.credentials
