"""The registry: cluster Secrets in the metadata namespace, reached through the metadata client.

Reads of the list come from the process's informer (LIST+WATCH of metadata) while it is current,
and from a metadata-only LIST otherwise; this process's own writes are applied to the informer at
once, so a client never misses what it just wrote.
"""

from __future__ import annotations

import threading
from typing import Any

from utils.informer import MetadataInformer
from utils.kube import ACCEPT_METADATA_LIST, NotFound, secret_path
from utils.metadata import MetadataCluster

from .records import list_item, mark_duplicates


class ClusterRegistry:
    """Create, replace, read, delete and list the labelled cluster Secrets."""

    def __init__(self, metadata: MetadataCluster, label: str, informer: MetadataInformer | None = None) -> None:
        """Use ``metadata``'s client and namespace; Secrets are selected by ``<label>=true``."""
        self.metadata = metadata
        self.label = label
        self.informer = informer
        self._rendered: tuple[int, list[dict[str, str]]] | None = None
        self._render_lock = threading.Lock()

    @property
    def namespace(self) -> str:
        """The metadata namespace."""
        return self.metadata.namespace

    @property
    def selector(self) -> str:
        """The label selector of cluster Secrets (the one the Go version uses)."""
        return f"{self.label}=true"

    def _remember(self, secret: dict[str, Any]) -> None:
        """Apply a Secret this process just wrote to the informer (read-your-writes)."""
        if self.informer is not None and isinstance(secret, dict) and secret.get("metadata"):
            meta = dict(secret["metadata"])
            meta.pop("managedFields", None)
            self.informer.upsert(meta)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a cluster Secret; ``AlreadyExists`` when the id is taken."""
        secret = self.metadata.client.request("POST", secret_path(self.namespace), body=body)
        self._remember(secret)
        return secret

    def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a cluster Secret (optimistic: ``Conflict`` if it changed since it was read)."""
        secret = self.metadata.client.request("PUT", secret_path(self.namespace, name), body=body)
        self._remember(secret)
        return secret

    def read(self, name: str, timeout: tuple[float, float] | None = None) -> dict[str, Any]:
        """One cluster Secret, kubeconfig included; ``NotFound`` when absent or not labelled."""
        secret = self.metadata.client.request("GET", secret_path(self.namespace, name), timeout=timeout)
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get(self.label) != "true":
            raise NotFound(f'secrets "{name}" is not a registered cluster')
        return secret

    def delete(self, name: str) -> None:
        """Delete a cluster Secret; ``NotFound`` when absent."""
        secret = self.read(name)  # never delete a Secret that is not a cluster record
        meta = secret.get("metadata") or {}
        # The UID precondition makes "read, then delete" atomic: a Secret replaced in between by
        # something that is not a cluster record is not deleted.
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": meta.get("uid")}}
        self.metadata.client.request("DELETE", secret_path(self.namespace, name), body=options)
        if self.informer is not None:
            try:
                revision = int(meta.get("resourceVersion") or 0)
            except ValueError:
                revision = 0
            self.informer.remove(name, revision)

    def list_items(self) -> list[dict[str, str]]:
        """Every registered cluster as a list item (no kubeconfigs), from the informer when current."""
        if self.informer is not None and self.informer.healthy:
            generation, metas = self.informer.snapshot()
            with self._render_lock:
                if self._rendered is None or self._rendered[0] != generation:
                    self._rendered = (generation, self._render(metas))
                return self._rendered[1]
        listing = self.metadata.client.request(
            "GET",
            secret_path(self.namespace),
            query={"labelSelector": self.selector},
            accept=ACCEPT_METADATA_LIST,
        )
        return self._render([obj.get("metadata") or {} for obj in listing.get("items") or []])

    @staticmethod
    def _render(metas: list[dict[str, Any]]) -> list[dict[str, str]]:
        """List items from Secret metadata, with duplicates marked."""
        return mark_duplicates([list_item(m.get("name", ""), m.get("annotations")) for m in metas])
