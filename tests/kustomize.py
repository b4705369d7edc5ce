"""Render deploy/ as ``kubectl kustomize`` would, and apply objects server-side to a test API server.

The kustomization holds plain resources and a ``namespace:`` only (no patches, generators or labels), so
this loader is exact for it; anything else in a kustomization.yaml makes it fail instead of guessing.
"""

from __future__ import annotations

import base64
import copy
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from controlplane.harness import Cluster

DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy"
SUPPORTED_KEYS = frozenset({"apiVersion", "kind", "namespace", "resources"})
# Kinds this repository might ship that have no namespace (kustomize's list is longer; these suffice).
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass"})
FIELD_MANAGER = "krm-test"


def render(directory: Path = DEPLOY_DIR, namespace: str | None = None) -> list[dict[str, Any]]:
    """The objects of a kustomization, Namespaces first (as kustomize orders them).

    ``namespace`` moves everything to another namespace the way the README's overlay does: kustomize's
    ``namespace:`` on namespaced objects and on the ServiceAccount subjects of bindings (its name-reference
    transformer), plus the overlay's patch that renames the Namespace object.
    """
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_KEYS
    if unsupported:
        raise ValueError(f"this loader does not implement {sorted(unsupported)}: keep deploy/ plain")
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        path = directory / resource
        if not path.is_file():
            raise ValueError(f"{resource}: only files are supported, not bases or remote resources")
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    base = kustomization.get("namespace")
    if base:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = base
    if namespace is not None:
        objects = _relocate(objects, base, namespace)
    return sorted(objects, key=lambda obj: obj["kind"] != "Namespace")


def _relocate(objects: list[dict[str, Any]], old: str | None, new: str) -> list[dict[str, Any]]:
    """The objects moved from namespace ``old`` to ``new`` (see ``render``)."""
    objects = copy.deepcopy(objects)
    accounts = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace" and meta["name"] == old:
            meta["name"] = new
        elif obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = new
        for subject in obj.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and subject.get("name") in accounts:
                subject["namespace"] = new
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The objects of one kind."""
    return [obj for obj in objects if obj["kind"] == kind]


def call(
    cluster: Cluster,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any], list[str]]:
    """One API call (admin unless ``token``): (HTTP status, JSON body, the answer's Warning headers)."""
    ctx = ssl.create_default_context(cadata=cluster.ca_pem().decode())
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(cluster.url + path, data=data, method=method)  # noqa: S310 - https to loopback
    req.add_header("Authorization", f"Bearer {token or cluster.tokens['admin']}")
    req.add_header("Content-Type", content_type)
    req.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"{}"), resp.headers.get_all("Warning") or []
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            parsed = json.loads(payload or b"{}")
        except ValueError:
            parsed = {"raw": payload.decode(errors="replace")}
        return exc.code, parsed, exc.headers.get_all("Warning") or []


def resource_path(cluster: Cluster, obj: dict[str, Any]) -> str:
    """The REST path of an object, found through API discovery (plural name, namespaced or not)."""
    api_version = obj["apiVersion"]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    status, listing, _ = call(cluster, "GET", prefix)
    assert status == 200, listing
    for resource in listing["resources"]:
        if resource["kind"] == obj["kind"] and "/" not in resource["name"]:
            name = obj["metadata"]["name"]
            if resource["namespaced"]:
                return f"{prefix}/namespaces/{obj['metadata']['namespace']}/{resource['name']}/{name}"
            return f"{prefix}/{resource['name']}/{name}"
    raise LookupError(f"{api_version} {obj['kind']} is not served")


def apply(cluster: Cluster, obj: dict[str, Any]) -> tuple[int, dict[str, Any], list[str]]:
    """Server-side apply of one object, as ``kubectl apply --server-side --force-conflicts`` does."""
    path = resource_path(cluster, obj) + f"?fieldManager={FIELD_MANAGER}&force=true"
    return call(cluster, "PATCH", path, obj, content_type="application/apply-patch+yaml")


def service_account_token(
    cluster: Cluster, namespace: str, account: str, seconds: int = 3600, bound: dict[str, str] | None = None
) -> str:
    """A real token of a ServiceAccount through the TokenRequest API (optionally bound to an object)."""
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if bound:
        spec["boundObjectRef"] = {"apiVersion": "v1", **bound}
    status, answer, _ = call(
        cluster, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )  # fmt: skip
    assert status == 201, answer
    return str(answer["status"]["token"])


def write_service_account_root(root: Path, cluster: Cluster, token: str) -> Path:
    """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount: token and ca.crt."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "token").write_text(token)
    (root / "ca.crt").write_bytes(cluster.ca_pem())
    return root


def in_cluster_env(cluster: Cluster, root: Path) -> dict[str, str | None]:
    """The environment of a pod of ``cluster`` with its service account under ``root`` (no kubeconfig)."""
    return {
        "IN_CLUSTER": "true",
        "SERVICE_ACCOUNT_ROOT": str(root),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(cluster.port),
        "METADATA_KUBECONFIG": None,
    }


def secret_value(cluster: Cluster, namespace: str, name: str, key: str) -> str:
    """One decoded value of a Secret, read as admin."""
    status, secret, _ = call(cluster, "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
    assert status == 200, secret
    return base64.b64decode(secret["data"][key]).decode()
