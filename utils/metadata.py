"""Access to the metadata cluster: one lazily built, thread-safe client per process."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import yaml

from config.settings import Settings
from utils.kube import BadKubeconfig, KubeClient, KubeError


class MetadataCluster:
    """The cluster whose namespace holds the registry; its client is built on first use.

    Built lazily so that no connection pool exists before gunicorn forks its workers.
    """

    def __init__(self, settings: Settings, pool_size: int = 16) -> None:
        """Remember how to reach the metadata cluster; nothing is read or contacted yet.

        ``pool_size``: connections kept open (the prober writes from all its probe threads at once).
        """
        self.settings = settings
        self.pool_size = pool_size
        self._client: KubeClient | None = None
        self._lock = threading.Lock()
        self._kube_system_uid = ""

    @property
    def namespace(self) -> str:
        """The namespace of the cluster Secrets."""
        return self.settings.metadata_namespace

    @property
    def client(self) -> KubeClient:
        """The client; raises ``BadKubeconfig`` when the kubeconfig is missing or unusable."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build()
        return self._client

    def _build(self) -> KubeClient:
        """Build the client from the service account or the metadata kubeconfig file."""
        s = self.settings
        timeout = (s.metadata_connect_timeout, s.metadata_read_timeout)
        if s.in_cluster:
            return KubeClient.in_cluster(str(s.service_account_root), timeout, pool_size=self.pool_size)
        path: Path = s.metadata_kubeconfig_path()
        try:
            kubeconfig = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise BadKubeconfig(f"cannot read the metadata kubeconfig {path}: {exc.strerror}") from None
        except yaml.YAMLError:
            raise BadKubeconfig(f"the metadata kubeconfig {path} is not valid YAML") from None
        if not isinstance(kubeconfig, dict):
            raise BadKubeconfig(f"the metadata kubeconfig {path} is not a kubeconfig")
        # No wall-clock bound per call: this is the service's own database, whose LISTs grow with the
        # registry; a frozen one is noticed by the read timeout, a dripping one by the prober's watchdog.
        return KubeClient.from_kubeconfig(kubeconfig, timeout, pool_size=self.pool_size, call_timeout=math.inf)

    def kube_system_uid(self) -> str:
        """The UID of the metadata cluster's ``kube-system`` namespace (its identity); "" if unreadable.

        Read once and kept: a cluster's identity does not change while the process runs.
        """
        if not self._kube_system_uid:
            try:
                namespace = self.client.request("GET", "/api/v1/namespaces/kube-system")
            except KubeError:
                return ""
            self._kube_system_uid = str((namespace.get("metadata") or {}).get("uid") or "")
        return self._kube_system_uid

    def close(self) -> None:
        """Close the client if one was built."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
