"""Deployments, StatefulSets and DaemonSets: restart (§2.5)."""

from __future__ import annotations

from config.constants import MSG_RESTART_FAILED, MSG_RESTART_NOT_FOUND, RESTART_ANNOTATION
from controllers.errors import BadRequest
from utils import kube

from .cleaning import check_segment, object_namespace
from .generic import Platform, audit, failure, local_time
from .kinds import Kind


def restart(platform: Platform, kind: Kind, cluster_id: str, namespace: str, name: str, user: str) -> str:
    """Roll the workload: a merge PATCH of the pod template's restart annotation; returns the value set.

    A PATCH instead of Go's read-modify-PUT: nothing else of the object is touched, so no edit made in
    between is lost, and the value has seconds (Go's layout repeats the day where seconds belong, so
    a second restart within a minute changed nothing).
    """
    ns = object_namespace(kind, namespace)
    check_segment("name", name)
    stamp = local_time()
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: stamp}}}}}
    budget = platform.budget()
    try:
        with platform.clients.use(cluster_id, budget) as client:
            client.request("PATCH", kind.path(ns, name), body=patch, content_type="application/merge-patch+json",
                           timeout=budget.timeout(), deadline=budget.deadline)  # fmt: skip
    except kube.NotFound:
        raise BadRequest(MSG_RESTART_NOT_FOUND) from None
    except kube.KubeError as exc:
        raise failure(cluster_id, MSG_RESTART_FAILED, exc) from None
    audit("restart", user, cluster_id, kind, ns, name, value=stamp)
    return stamp
