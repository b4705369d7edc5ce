"""Cluster controllers: add, update, delete, get and list, with Go's shared ``add_or_update``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.constants import (
    MSG_ADD_FAILED,
    MSG_BIND_ADD,
    MSG_BIND_UPDATE,
    MSG_CLUSTER_INFO,
    MSG_DELETE_FAILED,
    MSG_GET_FAILED,
    MSG_LIST_FAILED,
    MSG_UPDATE_FAILED,
    STATUS_ACTIVE,
)
from controllers.errors import BadRequest, from_metadata
from controllers.schemas import ID_MESSAGE, valid_cluster_id
from utils import kube, logs
from utils.kubeconfig import KubeconfigPolicy, KubeconfigRejected, parse_kubeconfig

from .records import ClusterRecord, list_item, secret_body, stored_kubeconfig
from .registry import ClusterRegistry

ADD, UPDATE = "add", "update"


@dataclass(frozen=True)
class ClusterContext:
    """What the cluster controllers need: the registry and how to treat target clusters."""

    registry: ClusterRegistry
    policy: KubeconfigPolicy
    target_timeout: tuple[float, float]
    max_kubeconfig_bytes: int


def probe_version(kubeconfig: dict[str, Any], timeout: tuple[float, float]) -> str:
    """Ask a target cluster for its version (``GET /version``), bounded by ``timeout``."""
    with kube.KubeClient.from_kubeconfig(kubeconfig, timeout, pool_size=1) as client:
        return str(client.version()["gitVersion"])


def add_or_update(ctx: ClusterContext, method: str, data: dict[str, Any]) -> ClusterRecord:
    """Go's ``addOrUpdate``: check the kubeconfig, ask the cluster its version, write the Secret.

    ``data`` is a loaded ``ClusterSchema``. On update an empty kubeconfig keeps the stored one, so an
    edit of the display fields never loses credentials; update reads first for that reason and to
    replace optimistically (resourceVersion), so a concurrent edit is reported, not overwritten.
    """
    bind_msg, fail_msg = (MSG_BIND_ADD, MSG_ADD_FAILED) if method == ADD else (MSG_BIND_UPDATE, MSG_UPDATE_FAILED)
    cluster_id: str = data["id"]
    kubeconfig_text: str = data.get("kubeconfig") or ""
    existing = None
    if method == UPDATE:
        try:
            existing = ctx.registry.read(cluster_id)
        except kube.KubeError as exc:
            raise from_metadata(fail_msg, exc) from None
        if not kubeconfig_text.strip():
            kubeconfig_text = stored_kubeconfig(existing)
    if not kubeconfig_text.strip():
        raise BadRequest(f"{bind_msg}: kubeconfig: Missing data for required field.")
    if len(kubeconfig_text.encode()) > ctx.max_kubeconfig_bytes:
        raise BadRequest(f"{bind_msg}: kubeconfig: larger than {ctx.max_kubeconfig_bytes} bytes")
    try:
        kubeconfig = parse_kubeconfig(kubeconfig_text)
        ctx.policy.check(kubeconfig)
        version = probe_version(kubeconfig, ctx.target_timeout)
    except (KubeconfigRejected, kube.KubeError) as exc:
        logs.info({"clusterId": cluster_id, "method": method, "reason": str(exc)}, "cluster not reachable")
        raise BadRequest(f"{MSG_CLUSTER_INFO}: {exc}") from None
    record = ClusterRecord(
        id=cluster_id,
        display_name=data.get("display_name", ""),
        city=data.get("city", ""),
        district=data.get("district", ""),
        version=version,
        status=STATUS_ACTIVE,
    )
    body = secret_body(record, kubeconfig_text, ctx.registry.namespace, ctx.registry.label, existing)
    try:
        if method == ADD:
            ctx.registry.create(body)
        else:
            ctx.registry.replace(cluster_id, body)
    except kube.KubeError as exc:
        raise from_metadata(fail_msg, exc) from None
    logs.info({"clusterId": cluster_id, "method": method, "version": version}, f"cluster {method} done")
    return record


def add(ctx: ClusterContext, data: dict[str, Any]) -> ClusterRecord:
    """Register a new cluster."""
    return add_or_update(ctx, ADD, data)


def update(ctx: ClusterContext, data: dict[str, Any]) -> ClusterRecord:
    """Change a registered cluster (display fields and/or kubeconfig)."""
    return add_or_update(ctx, UPDATE, data)


def _checked_id(cluster_id: str | None, prefix: str) -> str:
    """A cluster id from a query or form, checked before any call."""
    if not cluster_id:
        raise BadRequest(f"{prefix}: id: Missing data for required field.")
    if not valid_cluster_id(cluster_id):
        raise BadRequest(f"{prefix}: id: {ID_MESSAGE}")
    return cluster_id


def delete(ctx: ClusterContext, cluster_id: str | None) -> None:
    """Remove a cluster from the registry; never contacts the cluster itself."""
    cluster_id = _checked_id(cluster_id, MSG_DELETE_FAILED)
    try:
        ctx.registry.delete(cluster_id)
    except kube.KubeError as exc:
        raise from_metadata(MSG_DELETE_FAILED, exc) from None
    logs.info({"clusterId": cluster_id}, "cluster deleted")


def get(ctx: ClusterContext, cluster_id: str | None) -> dict[str, str]:
    """One cluster: its list item plus the kubeconfig (the edit form posts it back)."""
    cluster_id = _checked_id(cluster_id, MSG_GET_FAILED)
    try:
        secret = ctx.registry.read(cluster_id)
    except kube.KubeError as exc:
        raise from_metadata(MSG_GET_FAILED, exc) from None
    item = list_item(cluster_id, (secret.get("metadata") or {}).get("annotations"))
    item["kubeconfig"] = stored_kubeconfig(secret)
    return item


def list_clusters(ctx: ClusterContext) -> list[dict[str, str]]:
    """Every registered cluster (annotations only, never a kubeconfig)."""
    try:
        return ctx.registry.list_items()
    except kube.KubeError as exc:
        raise from_metadata(MSG_LIST_FAILED, exc) from None
