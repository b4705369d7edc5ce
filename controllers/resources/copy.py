"""namespace/copy: chosen objects of one namespace into another, in this or another cluster (§2.8).

Go copies in map order with only ``resourceVersion`` cleared (so Service copies collide on their
cluster IPs and owner references get copies garbage-collected), skips StatefulSets silently and
answers ``复制成功`` whatever happened. Here the objects are cleaned for copying (``clean_copy``,
shared with ``get?method=Copy``), created in dependency order (config first, then what uses it),
service-account token Secrets are skipped (the target cluster mints its own), every object gets a
result, and anything not done within the route's budget is reported as not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.constants import MSG_COPY_SKIPPED_SA_TOKEN, MSG_NOT_RUN_TIMEOUT
from utils import kube
from utils.budget import Budget

from .cleaning import clean_copy, valid_segment
from .kinds import BY_KIND, Kind

ORDER = ("ConfigMap", "Secret", "Service", "Deployment", "StatefulSet", "DaemonSet", "CronJob")
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"  # noqa: S105 - a Secret type, not a secret
OK, FAILED, SKIPPED = "ok", "failed", "skipped"
MAX_OBJECTS = 500  # a copy is a page's worth of checkboxes, not a migration tool


class CopyRefused(ValueError):
    """The request cannot be carried out at all (bad names, unknown kinds); nothing was sent."""


class NamespaceProblem(Exception):
    """The source namespace is missing, or the target one is missing / cannot be created."""

    def __init__(self, message: str, cause: kube.KubeError | None = None) -> None:
        """Keep the message and the Kubernetes error behind it (if any)."""
        super().__init__(message)
        self.message = message
        self.cause = cause


@dataclass
class CopyResult:
    """What happened to one object."""

    kind: str
    name: str
    status: str
    message: str = ""

    def as_dict(self) -> dict[str, str]:
        """The reply's shape: ``{kind, name, status, message}``."""
        return {"kind": self.kind, "name": self.name, "status": self.status, "message": self.message}


def plan(resources: Mapping[str, Any]) -> list[tuple[Kind, str]]:
    """The (kind, name) pairs to copy, in copy order, duplicates dropped; ``CopyRefused`` on bad input."""
    if not isinstance(resources, Mapping):
        raise CopyRefused("toResources: 必须是对象 {Kind: [名称]}")
    unknown = [k for k in resources if k not in ORDER]
    if unknown:
        raise CopyRefused(f"toResources: 不支持的类型 {', '.join(sorted(str(k) for k in unknown))[:200]}"
                          f" (支持: {', '.join(ORDER)})")  # fmt: skip
    pairs: list[tuple[Kind, str]] = []
    for kind_name in ORDER:
        names = resources.get(kind_name) or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CopyRefused(f"toResources.{kind_name}: 必须是名称列表")
        for name in dict.fromkeys(names):
            if not valid_segment(name):
                raise CopyRefused(f"toResources.{kind_name}: {name[:100]!r} 不是有效的名称")
            pairs.append((BY_KIND[kind_name], name))
    if len(pairs) > MAX_OBJECTS:
        raise CopyRefused(f"toResources: 最多 {MAX_OBJECTS} 个对象, 收到 {len(pairs)} 个")
    return pairs


def namespace_path(name: str) -> str:
    """The REST path of one namespace."""
    return BY_KIND["Namespace"].path("", name)


def check_source(source: kube.KubeClient, namespace: str, budget: Budget) -> None:
    """The source namespace must exist (``NamespaceProblem`` otherwise)."""
    try:
        source.request("GET", namespace_path(namespace), timeout=budget.timeout())
    except kube.NotFound as exc:
        raise NamespaceProblem(f"源命名空间不存在: {namespace}", exc) from None


def ensure_target(target: kube.KubeClient, namespace: str, create: bool, budget: Budget) -> bool:
    """The target namespace exists afterwards; with ``create`` it is created unless it exists already.

    Returns True when it was created by this call.
    """
    if create:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        try:
            target.request("POST", BY_KIND["Namespace"].path(), body=body, timeout=budget.timeout())
            return True
        except kube.AlreadyExists:
            return False  # Go fails the whole copy here; an existing namespace is what was asked for
    try:
        target.request("GET", namespace_path(namespace), timeout=budget.timeout())
    except kube.NotFound as exc:
        raise NamespaceProblem(f"目标命名空间不存在: {namespace} (可选择创建命名空间)", exc) from None
    return False


def copy_objects(
    source: kube.KubeClient,
    target: kube.KubeClient,
    source_namespace: str,
    target_namespace: str,
    pairs: list[tuple[Kind, str]],
    budget: Budget,
) -> list[CopyResult]:
    """GET each object from the source, clean it, create it in the target; one result per object.

    Sequential on purpose: the order is a dependency order (a Deployment's ConfigMap exists before
    its pods start), and one failing object never stops the others. Once the budget is spent, every
    object left is reported ``未执行(超时)`` without a call.
    """
    results: list[CopyResult] = []
    for kind, name in pairs:
        try:
            timeout = budget.timeout()
        except kube.Timeout:
            results.append(CopyResult(kind.kind, name, FAILED, MSG_NOT_RUN_TIMEOUT))
            continue
        try:
            obj = source.request("GET", kind.path(source_namespace, name), timeout=timeout)
            if kind.kind == "Secret" and obj.get("type") == SA_TOKEN_TYPE:
                results.append(CopyResult(kind.kind, name, SKIPPED, MSG_COPY_SKIPPED_SA_TOKEN))
                continue
            body = clean_copy(kind, obj, target_namespace)
            body["apiVersion"], body["kind"] = kind.api_version, kind.kind
            target.request("POST", kind.path(target_namespace), body=body, timeout=budget.timeout())
        except kube.KubeError as exc:
            message = MSG_NOT_RUN_TIMEOUT if exc.reason == "Timeout" and budget.remaining() <= 0 else exc.message
            results.append(CopyResult(kind.kind, name, FAILED, message))
            continue
        results.append(CopyResult(kind.kind, name, OK))
    return results


def summary(results: list[CopyResult]) -> tuple[int, str]:
    """The failed count and ``<Kind>/<name>: <reason>; …`` of the failures (at most 20 named)."""
    failed = [r for r in results if r.status == FAILED]
    text = "; ".join(f"{r.kind}/{r.name}: {r.message}" for r in failed[:20])
    if len(failed) > 20:
        text += f"; … (+{len(failed) - 20})"
    return len(failed), text
