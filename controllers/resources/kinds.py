"""The kinds the platform serves: one row each (contract-platform.md §2.1).

A row says where the kind lives in the API (group, version, plural, scope), which actions its routes
offer, the update message, which top-level keys a posted item keeps (§1.5), and the URL aliases.
The generic controllers and the router registration are driven by this table: adding a kind is one
row plus its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from config.constants import MSG_MODIFY_OK, MSG_UPDATE_OK

LIST, GET, ADD, UPDATE, DELETE, DELETELIST, RESTART = "list", "get", "add", "update", "delete", "deletelist", "restart"
CRUD = (LIST, GET, ADD, UPDATE, DELETE, DELETELIST)
WORKLOAD = (*CRUD, RESTART)
SPEC = ("metadata", "spec")


@dataclass(frozen=True)
class Kind:
    """One Kubernetes kind as the platform serves it."""

    prefix: str  # the URL prefix: /api/<prefix>/<action>
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    actions: tuple[str, ...]
    update_message: str = MSG_UPDATE_OK
    keep: tuple[str, ...] = SPEC  # top-level keys of a posted item that reach the API server
    aliases: tuple[str, ...] = ()  # more URL prefixes for the same routes

    @property
    def api_version(self) -> str:
        """``apps/v1``, or ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The URL prefix and its aliases."""
        return (self.prefix, *self.aliases)

    def path(self, namespace: str = "", name: str | None = None, subresource: str = "") -> str:
        """The REST path of the collection (all namespaces when ``namespace`` is empty) or one object."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        return base + (f"/{subresource}" if subresource else "")


# fmt: off
KINDS: tuple[Kind, ...] = (
    Kind("namespace", "Namespace", "", "v1", "namespaces", False, (LIST, GET, ADD, UPDATE, DELETE)),
    Kind("node", "Node", "", "v1", "nodes", False, (LIST, GET, UPDATE), MSG_MODIFY_OK),
    Kind("pod", "Pod", "", "v1", "pods", True, (LIST, GET, ADD, DELETE, DELETELIST)),
    Kind("deployment", "Deployment", "apps", "v1", "deployments", True, WORKLOAD, MSG_MODIFY_OK),
    Kind("statefulset", "StatefulSet", "apps", "v1", "statefulsets", True, WORKLOAD, MSG_MODIFY_OK),
    Kind("daemonset", "DaemonSet", "apps", "v1", "daemonsets", True, WORKLOAD, MSG_MODIFY_OK),
    Kind("cronjob", "CronJob", "batch", "v1", "cronjobs", True, CRUD, MSG_MODIFY_OK),
    Kind("replicaset", "ReplicaSet", "apps", "v1", "replicasets", True, (LIST, GET)),
    Kind("service", "Service", "", "v1", "services", True, CRUD),
    Kind("ingress", "Ingress", "networking.k8s.io", "v1", "ingresses", True, CRUD),
    Kind("ingressclass", "IngressClass", "networking.k8s.io", "v1", "ingressclasses", False, (LIST,)),
    Kind("configmap", "ConfigMap", "", "v1", "configmaps", True, CRUD,
         keep=(*SPEC, "data", "binaryData", "immutable")),
    Kind("secret", "Secret", "", "v1", "secrets", True, CRUD,
         keep=(*SPEC, "data", "stringData", "type", "immutable")),
    Kind("persistentvolume", "PersistentVolume", "", "v1", "persistentvolumes", False, CRUD, aliases=("pv",)),
    Kind("persistentvolumeclaim", "PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", True, CRUD,
         aliases=("pvc",)),
    Kind("storageclass", "StorageClass", "storage.k8s.io", "v1", "storageclasses", False, (LIST, GET)),
)
# fmt: on

BY_PREFIX: dict[str, Kind] = {prefix: kind for kind in KINDS for prefix in kind.prefixes}
BY_KIND: dict[str, Kind] = {kind.kind: kind for kind in KINDS}


def kind(prefix: str) -> Kind:
    """The row of a URL prefix (``pv`` is ``persistentvolume``)."""
    return BY_PREFIX[prefix]
