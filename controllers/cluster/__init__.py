"""Cluster controllers: add, update, delete, get and list, with Go's shared ``add_or_update``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson

from config.constants import (
    MSG_ADD_FAILED,
    MSG_BIND_ADD,
    MSG_BIND_UPDATE,
    MSG_CLUSTER_INFO,
    MSG_DELETE_FAILED,
    MSG_GET_FAILED,
    MSG_LIST_FAILED,
    MSG_UPDATE_FAILED,
    REASON_CREDENTIALS_EXPIRED,
    STATUS_ACTIVE,
    STATUS_INACTIVE,
)
from config.settings import Settings
from controllers.errors import BadRequest, from_metadata
from controllers.schemas import ID_MESSAGE, valid_cluster_id
from utils import kube, logs
from utils.kubeconfig import KubeconfigPolicy, KubeconfigRejected, credential_expiry, parse_kubeconfig

from .prober import ProbeResult, probe_cluster, utc_now
from .records import ClusterHealth, ClusterRecord, list_item, secret_body, stored_kubeconfig
from .registry import ClusterRegistry

ADD, UPDATE = "add", "update"


@dataclass(frozen=True)
class ClusterContext:
    """What the cluster controllers need: the registry and how to treat target clusters."""

    registry: ClusterRegistry
    policy: KubeconfigPolicy
    target_timeout: tuple[float, float]
    max_kubeconfig_bytes: int
    # Seconds add/update may spend on the target cluster in all (see Settings.target_deadline).
    target_deadline: float = 1.5


def kubeconfig_policy(settings: Settings) -> KubeconfigPolicy:
    """The policy user-supplied kubeconfigs must pass, from the settings (validated there)."""
    return KubeconfigPolicy.from_strings(
        settings.kubeconfig_deny_cidrs, settings.kubeconfig_allow_cidrs, settings.kubeconfig_allow_exec,
        settings.kubeconfig_host_aliases,
    )  # fmt: skip


def inspect_target(
    kubeconfig: dict[str, Any],
    timeout: tuple[float, float],
    expiry: dt.datetime | None,
    deadline: float | None = None,
) -> ProbeResult:
    """Ask a target cluster for its version, health and identity, bounded by ``timeout`` per socket wait
    and, in all (exec plugin and every call), by ``deadline`` (``time.monotonic()``).

    Raises ``KubeError`` only when the version cannot be had (Go's step 2); anything after that is
    recorded as the cluster's health instead of failing the registration.
    """
    with kube.KubeClient.from_kubeconfig(kubeconfig, timeout, pool_size=1, deadline=deadline) as client:
        result = probe_cluster(client, expiry)
    if not result.version:
        expired = result.reason == REASON_CREDENTIALS_EXPIRED
        raise kube.KubeError(f"{result.message} ({result.reason})" if expired else result.message)
    return result


def add_or_update(ctx: ClusterContext, method: str, data: dict[str, Any]) -> ClusterRecord:
    """Go's ``addOrUpdate``: check the kubeconfig, ask the cluster its version, write the Secret.

    ``data`` is a loaded ``ClusterSchema``. On update an empty kubeconfig keeps the stored one, so an
    edit of the display fields never loses credentials; update reads first for that reason, to refuse
    a kubeconfig of another cluster (kube-system UID), and to replace optimistically (resourceVersion).
    """
    bind_msg, fail_msg = (MSG_BIND_ADD, MSG_ADD_FAILED) if method == ADD else (MSG_BIND_UPDATE, MSG_UPDATE_FAILED)
    cluster_id: str = data["id"]
    sent_kubeconfig: str = data.get("kubeconfig") or ""
    existing = None
    if method == UPDATE:
        existing = _read_for_update(ctx, cluster_id)
    kubeconfig_text = sent_kubeconfig if sent_kubeconfig.strip() else stored_kubeconfig(existing or {})
    if not kubeconfig_text.strip():
        raise BadRequest(f"{bind_msg}: kubeconfig: Missing data for required field.")
    if len(kubeconfig_text.encode()) > ctx.max_kubeconfig_bytes:
        raise BadRequest(f"{bind_msg}: kubeconfig: larger than {ctx.max_kubeconfig_bytes} bytes")
    try:
        kubeconfig = parse_kubeconfig(kubeconfig_text)
        expiry = credential_expiry(kubeconfig)
        # One budget for all of it, so the answer comes inside the frontend's timeout (README).
        deadline = kube.deadline_in(ctx.target_deadline)
        probe = inspect_target(ctx.policy.pin(kubeconfig, deadline), ctx.target_timeout, expiry, deadline)
    except (KubeconfigRejected, kube.KubeError) as exc:
        logs.info({"clusterId": cluster_id, "method": method, "reason": str(exc)}, "cluster not reachable")
        raise BadRequest(f"{MSG_CLUSTER_INFO}: {exc}") from None
    for attempt in range(3):
        if existing is not None:
            registered_uid = ((existing.get("metadata") or {}).get("annotations") or {}).get("clusterUID", "")
            if registered_uid and probe.uid and registered_uid != probe.uid:
                raise BadRequest(f"{fail_msg}: the kubeconfig points at a different cluster "
                                 f"(kube-system UID {probe.uid}, registered {registered_uid})")  # fmt: skip
            if registered_uid and not probe.uid and attempt == 0:
                logs.info({"clusterId": cluster_id, "reason": probe.reason},
                          "identity not checked: the kubeconfig may not read kube-system")  # fmt: skip
        record, body = _build(ctx, data, expiry, kubeconfig_text, probe, existing)
        try:
            if method == ADD:
                ctx.registry.create(body)
            else:
                ctx.registry.replace(cluster_id, body)
            break
        except kube.Conflict:
            # The prober (or another editor) patched the Secret since we read it: re-read and
            # re-apply this request's fields on top, unless it is the last attempt.
            if method == ADD or attempt == 2:
                raise from_metadata(fail_msg, kube.Conflict("the cluster was changed meanwhile; retry")) from None
            existing = _read_for_update(ctx, cluster_id)
            if not sent_kubeconfig.strip():
                kubeconfig_text = stored_kubeconfig(existing)
        except kube.KubeError as exc:
            raise from_metadata(fail_msg, exc) from None
    logs.info({"clusterId": cluster_id, "method": method, "version": record.version, "status": record.status,
               "reason": probe.reason}, f"cluster {method} done")  # fmt: skip
    return record


def _read_for_update(ctx: ClusterContext, cluster_id: str) -> dict[str, Any]:
    """The stored Secret of a cluster being updated."""
    try:
        return ctx.registry.read(cluster_id)
    except kube.KubeError as exc:
        raise from_metadata(MSG_UPDATE_FAILED, exc) from None


def _build(
    ctx: ClusterContext,
    data: dict[str, Any],
    expiry: dt.datetime | None,
    kubeconfig_text: str,
    probe: ProbeResult,
    existing: dict[str, Any] | None,
) -> tuple[ClusterRecord, dict[str, Any]]:
    """The record and the Secret body for this request."""
    now = utc_now()
    status = STATUS_ACTIVE if probe.healthy else STATUS_INACTIVE
    old = ((existing or {}).get("metadata") or {}).get("annotations") or {}
    record = ClusterRecord(
        id=data["id"],
        display_name=data.get("display_name", ""),
        city=data.get("city", ""),
        district=data.get("district", ""),
        version=probe.version,
        status=status,
    )
    health = ClusterHealth(
        reason=probe.reason,
        message=probe.message,
        last_probe_time=now,
        last_transition_time=old.get("lastTransitionTime", now) if old.get("status") == status else now,
        probe_latency_ms=str(probe.latency_ms),
        cluster_uid=probe.uid or old.get("clusterUID", ""),
        credential_expiry=f"{expiry:%Y-%m-%dT%H:%M:%SZ}" if expiry else "",
    )
    body = secret_body(record, kubeconfig_text, ctx.registry.namespace, ctx.registry.label, existing, health)
    return record, body


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
    """One cluster: its list item plus the kubeconfig (the edit form posts it back).

    The Secret comes from the registry's cache when the watch shows it unchanged (no API call).
    """
    cluster_id = _checked_id(cluster_id, MSG_GET_FAILED)
    try:
        secret = ctx.registry.read_current(cluster_id)
    except kube.KubeError as exc:
        raise from_metadata(MSG_GET_FAILED, exc) from None
    item = list_item(cluster_id, (secret.get("metadata") or {}).get("annotations"))
    if item["clusterUID"]:
        # duplicateOf needs every record: take it from the list (served from the informer's copy).
        try:
            listed = ctx.registry.item(cluster_id)
            item["duplicateOf"] = (listed or item)["duplicateOf"]
        except kube.KubeError:
            pass
    item["kubeconfig"] = stored_kubeconfig(secret)
    return item


def list_clusters(ctx: ClusterContext) -> list[dict[str, str]]:
    """Every registered cluster (annotations only, never a kubeconfig)."""
    try:
        return ctx.registry.list_items()
    except kube.KubeError as exc:
        raise from_metadata(MSG_LIST_FAILED, exc) from None


def list_clusters_json(ctx: ClusterContext) -> orjson.Fragment:
    """The same as a JSON array, serialised once per change of the registry (the list route's answer)."""
    try:
        return ctx.registry.list_json()
    except kube.KubeError as exc:
        raise from_metadata(MSG_LIST_FAILED, exc) from None
