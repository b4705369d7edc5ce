"""The registry: cluster Secrets in the metadata namespace, reached through the metadata client."""

from __future__ import annotations

from typing import Any

from utils.kube import ACCEPT_METADATA_LIST, NotFound, secret_path
from utils.metadata import MetadataCluster

from .records import list_item


class ClusterRegistry:
    """Create, replace, read, delete and list the labelled cluster Secrets."""

    def __init__(self, metadata: MetadataCluster, label: str) -> None:
        """Use ``metadata``'s client and namespace; Secrets are selected by ``<label>=true``."""
        self.metadata = metadata
        self.label = label

    @property
    def namespace(self) -> str:
        """The metadata namespace."""
        return self.metadata.namespace

    @property
    def selector(self) -> str:
        """The label selector of cluster Secrets (the one the Go version uses)."""
        return f"{self.label}=true"

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a cluster Secret; ``AlreadyExists`` when the id is taken."""
        return self.metadata.client.request("POST", secret_path(self.namespace), body=body)

    def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a cluster Secret (optimistic: ``Conflict`` if it changed since it was read)."""
        return self.metadata.client.request("PUT", secret_path(self.namespace, name), body=body)

    def read(self, name: str) -> dict[str, Any]:
        """One cluster Secret, kubeconfig included; ``NotFound`` when absent or not labelled."""
        secret = self.metadata.client.request("GET", secret_path(self.namespace, name))
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get(self.label) != "true":
            raise NotFound(f'secrets "{name}" is not a registered cluster')
        return secret

    def delete(self, name: str) -> None:
        """Delete a cluster Secret; ``NotFound`` when absent."""
        secret = self.read(name)  # never delete a Secret that is not a cluster record
        uid = (secret.get("metadata") or {}).get("uid")
        # The UID precondition makes "read, then delete" atomic: a Secret replaced in between by
        # something that is not a cluster record is not deleted.
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
        self.metadata.client.request("DELETE", secret_path(self.namespace, name), body=options)

    def list_items(self) -> list[dict[str, str]]:
        """Every registered cluster as a list item, from a metadata-only LIST (no kubeconfigs)."""
        listing = self.metadata.client.request(
            "GET",
            secret_path(self.namespace),
            query={"labelSelector": self.selector},
            accept=ACCEPT_METADATA_LIST,
        )
        items = []
        for obj in listing.get("items") or []:
            meta = obj.get("metadata") or {}
            items.append(list_item(meta.get("name", ""), meta.get("annotations")))
        return items
