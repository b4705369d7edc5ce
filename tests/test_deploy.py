"""deploy/ (Kustomize): what the manifests say, and the service running with exactly their permissions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from controlplane.harness import Cluster
from tests.kustomize import (
    DEPLOY_DIR,
    apply,
    by_kind,
    call,
    in_cluster_env,
    render,
    resource_path,
    secret_value,
    service_account_token,
    write_service_account_root,
)
from tests.service import unique
from tests.test_health import eventually
from tests.test_in_cluster import end_to_end

README = DEPLOY_DIR.parent / "README.md"
ROLE_RULES = [
    {"apiGroups": [""], "resources": ["secrets"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
]  # fmt: skip


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The service's container in the Deployment."""
    (deployment,) = by_kind(objects, "Deployment")
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    return main


def documented_variables() -> set[str]:
    """The variables of the README's configuration table."""
    names: set[str] = set()
    for line in README.read_text().splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def pod_env(objects: list[dict[str, Any]], namespace: str) -> dict[str, str]:
    """The container's environment as the kubelet resolves it (the pod's namespace for the fieldRef)."""
    env = {}
    for var in container(objects)["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, var
            env[var["name"]] = namespace
    return env


def test_manifests_are_the_resources_a_deployment_needs() -> None:
    objects = render()
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == ["Deployment", "Namespace", "PodDisruptionBudget", "Role", "RoleBinding", "Service",
                     "ServiceAccount"]  # fmt: skip
    assert objects[0]["kind"] == "Namespace" and objects[0]["metadata"]["name"] == "krm"
    assert all(obj["metadata"].get("namespace") == "krm" for obj in objects if obj["kind"] != "Namespace")
    (deployment,) = by_kind(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind(objects, "ServiceAccount")[0]["metadata"]["name"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert by_kind(objects, "Service")[0]["spec"]["selector"].items() <= labels.items()


def test_the_pod_is_probed_and_hardened() -> None:
    objects = render()
    pod = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
    main = container(objects)
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["command"] == ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert set(main["resources"]["requests"]) == {"cpu", "memory"}
    assert set(main["resources"]["limits"]) == {"cpu", "memory"}
    # The only writable path: gunicorn, the metrics files and credential temp files all live under /tmp.
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert mounts == {"/tmp": "tmp"}
    assert {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}} in pod["volumes"]
    assert pod_env(objects, "krm")["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    # Shutdown: the grace period covers the preStop pause plus gunicorn's graceful timeout (20 s default).
    assert pod["terminationGracePeriodSeconds"] >= main["lifecycle"]["preStop"]["sleep"]["seconds"] + 20


def test_every_variable_the_manifests_set_is_in_the_readme_table() -> None:
    objects = render()
    assert set(pod_env(objects, "krm")) <= documented_variables()
    assert pod_env(objects, "krm")["IN_CLUSTER"] == "true"
    (env_from,) = container(objects)["envFrom"]
    assert env_from["secretRef"]["optional"] is True


def test_the_role_grants_only_what_the_service_uses_and_only_in_its_namespace() -> None:
    objects = render()
    assert not by_kind(objects, "ClusterRole") and not by_kind(objects, "ClusterRoleBinding")
    (role,) = by_kind(objects, "Role")
    assert role["rules"] == ROLE_RULES
    assert not any("resourceNames" in rule or "*" in str(rule) for rule in role["rules"])
    (binding,) = by_kind(objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}  # fmt: skip
    account = by_kind(objects, "ServiceAccount")[0]["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                    "namespace": account["namespace"]}]  # fmt: skip


def test_manifests_apply_server_side_and_the_service_passes_end_to_end_with_their_permissions(
    meta: Cluster, target1: Cluster, make_service, tmp_path: Path
) -> None:
    namespace = unique("krm-deploy")
    objects = render(namespace=namespace)
    for obj in objects:
        status, body, warnings = apply(meta, obj)
        assert status in (200, 201), (obj["kind"], body)
        # The namespace enforces the "restricted" Pod Security profile: the Deployment must pass it.
        assert warnings == [], (obj["kind"], warnings)
    for obj in objects:  # accepted and stored as written; applying again changes nothing
        status, stored, _ = call(meta, "GET", resource_path(meta, obj))
        assert status == 200, stored
        assert apply(meta, obj)[1]["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    (deployment,) = by_kind(objects, "Deployment")
    assert call(meta, "GET", resource_path(meta, deployment))[1]["spec"]["replicas"] == 2

    account = by_kind(objects, "ServiceAccount")[0]["metadata"]["name"]
    token = service_account_token(meta, namespace, account)
    root = write_service_account_root(tmp_path / "sa", meta, token)
    env: dict[str, str | None] = {**pod_env(objects, namespace), **in_cluster_env(meta, root)}
    env.pop("PORT")  # the test picks a free loopback port
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    env["PROBE_ENABLED"] = "true"  # the prober's Lease must be writable with the Role
    # No krm-backend-env Secret (it is optional): the service generates the password into krm-backend-auth.
    env.update({"PASSWORD": None, "JWT_SIGN_KEY": None})
    svc = make_service(namespace=namespace, env=env, workers=2)
    password = secret_value(meta, namespace, "krm-backend-auth", "password")
    end_to_end(svc, target1, password=password)
    assert "forbidden" not in svc.log().lower()
    leases_path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    # The prober process takes its shards on its own schedule: wait for them instead of assuming they are
    # there. One replica holds all 16 (the default PROBE_SHARDS), beside its membership Lease.
    def shards_held() -> int:
        status, leases, _ = call(meta, "GET", leases_path)
        return sum(1 for i in leases["items"] if i["metadata"]["name"].removeprefix("krm-backend-prober-").isdigit()
                   and i["spec"].get("holderIdentity")) if status == 200 else 0  # fmt: skip

    eventually(lambda: shards_held() == 16, timeout=30)

    # Nothing beyond the namespace: the same token is refused everywhere else.
    outside = [
        ("GET", "/api/v1/namespaces/default/secrets"),
        ("GET", "/api/v1/namespaces/default"),
        ("GET", "/api/v1/namespaces"),
        ("POST", "/api/v1/namespaces"),
        ("GET", "/api/v1/secrets"),
        ("GET", f"/api/v1/namespaces/{namespace}/pods"),
        ("GET", f"/api/v1/namespaces/{namespace}/configmaps"),
        ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
    ]
    for method, path in outside:
        payload = {"metadata": {"name": unique("nope")}} if method == "POST" else None
        assert call(meta, method, path, payload, token=token)[0] == 403, (method, path)
    assert call(meta, "GET", f"/api/v1/namespaces/{namespace}", token=token)[0] == 200
