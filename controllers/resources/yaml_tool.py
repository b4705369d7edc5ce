"""tools/yaml: create, update or apply a multi-document YAML stream (contract-platform.md §2.9).

Go splits the text on every ``---`` (inside values too), guesses the resource as ``lower(kind)+"s"``
and answers 200 even when everything failed. Here the text is read by a safe YAML stream loader
(no language tags, no anchors or aliases, bounded size and document count), each kind is resolved
through the cluster's discovery documents (cached per client, so CRDs work and the scope is known),
and any failed document makes the reply a 400 with one line per document.
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import yaml

from config.constants import (
    FIELD_MANAGER,
    MSG_CREATE_OK,
    MSG_NOT_RUN_TIMEOUT,
    MSG_UPDATE_OK,
    MSG_YAML_BAD_METHOD,
    MSG_YAML_EMPTY,
    MSG_YAML_TOO_LARGE,
    MSG_YAML_TOO_MANY,
)
from controllers.errors import BadRequest
from utils import kube
from utils.budget import Budget, BudgetExceeded

MAX_YAML_BYTES = 2 * 1024 * 1024
MAX_DOCUMENTS = 100
CREATE, UPDATE, APPLY = "Create", "Update", "Apply"
METHODS = (CREATE, UPDATE, APPLY)
DEFAULT_NAMESPACE = "default"
# A kind missing from a cached discovery document is looked up again after this long: a CRD created
# a moment ago must work, a typo must not cost a discovery call per document.
DISCOVERY_RETRY_SECONDS = 2.0
DISCOVERY_TTL_SECONDS = 300.0


class YamlRefused(ValueError):
    """The YAML text cannot be read at all (syntax, aliases, tags, limits)."""


class _StrictLoader(yaml.SafeLoader):
    """The safe loader without anchors and aliases ("billion laughs"); unknown tags already fail."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse alias nodes and anchored nodes."""
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not allowed", self.peek_event().start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "YAML anchors are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def parse_documents(text: str, max_bytes: int = MAX_YAML_BYTES, max_documents: int = MAX_DOCUMENTS) -> list[Any]:
    """Every document of the stream (``None`` for an empty one), or ``YamlRefused`` naming the problem.

    The whole stream is read before anything is sent: a stream broken in its third document applies
    nothing rather than the first two.
    """
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise YamlRefused(f"{MSG_YAML_TOO_LARGE}: 最多 {max_bytes} 字节")
    documents: list[Any] = []
    loader = _StrictLoader(text)
    try:
        while loader.check_data():
            if len(documents) >= max_documents:
                raise YamlRefused(f"{MSG_YAML_TOO_MANY}: 最多 {max_documents} 个")
            documents.append(loader.get_data())
    except YamlRefused:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise YamlRefused(f"第{len(documents) + 1}项yaml数据序列化: {exc.problem or exc.context}{where}") from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise YamlRefused(f"第{len(documents) + 1}项yaml数据序列化: {type(exc).__name__}") from None
    finally:
        loader.dispose()
    if not any(doc is not None for doc in documents):
        raise YamlRefused(MSG_YAML_EMPTY)
    return documents


@dataclass(frozen=True)
class Resource:
    """Where a kind lives: its REST plural and whether it is namespaced."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str, name: str | None = None) -> str:
        """The collection (or one object) path of this resource."""
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base if name is None else f"{base}/{quote(name, safe='')}"


class Discovery:
    """Kinds of one cluster by group/version, from its discovery documents, cached per client."""

    def __init__(self) -> None:
        """An empty cache; entries are per client and go away with it."""
        self._cache: weakref.WeakKeyDictionary[kube.KubeClient, dict[str, tuple[float, dict[str, Resource]]]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def resolve(self, client: kube.KubeClient, api_version: str, kind: str, budget: Budget) -> Resource | None:
        """The resource of ``apiVersion``/``kind`` in this cluster, or None when the cluster has no such kind."""
        with self._lock:
            known = self._cache.setdefault(client, {}).get(api_version)
        now = time.monotonic()
        if known is not None:
            fetched_at, kinds = known
            fresh = now - fetched_at < DISCOVERY_TTL_SECONDS
            if kind in kinds and fresh:
                return kinds[kind]
            if now - fetched_at < DISCOVERY_RETRY_SECONDS:
                return kinds.get(kind)
        kinds = self._fetch(client, api_version, budget)
        with self._lock:
            self._cache.setdefault(client, {})[api_version] = (time.monotonic(), kinds)
        return kinds.get(kind)

    @staticmethod
    def _fetch(client: kube.KubeClient, api_version: str, budget: Budget) -> dict[str, Resource]:
        """One discovery document: ``/api/v1`` or ``/apis/<group>/<version>``; a 404 means no such group."""
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            listing = client.request("GET", path, timeout=budget.timeout())
        except kube.NotFound:
            return {}
        kinds: dict[str, Resource] = {}
        for entry in listing.get("resources") or [] if isinstance(listing, dict) else []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or "/" in name or not entry.get("kind"):
                continue  # subresources (deployments/scale, pods/log) are not kinds one creates
            kinds.setdefault(str(entry["kind"]), Resource(api_version, str(entry["kind"]), name,
                                                          bool(entry.get("namespaced"))))  # fmt: skip
        return kinds


DISCOVERY = Discovery()  # shared by every request of this process; entries die with their clients


def check_method(method: str) -> str:
    """``Create`` when empty; ``不支持的method: <m>`` (400) for anything but Create, Update, Apply."""
    method = method or CREATE
    if method not in METHODS:
        raise BadRequest(html.escape(f"{MSG_YAML_BAD_METHOD}: {method[:100]}", quote=False))
    return method


def run_yaml(
    client: kube.KubeClient,
    text: str,
    method: str,
    namespace: str,
    budget: Budget,
    discovery: Discovery = DISCOVERY,
) -> str:
    """Apply every document with ``method``; return the success message or raise a 400 with the lines.

    Lines are Go's: ``第<i>项yaml数据<创建|更新>成功`` / ``…失败: <reason>`` / ``第<i>项yaml数据序列化: <err>``,
    numbered from 1 over the documents of the stream (empty ones count but get no line). The message
    is HTML-escaped: the frontend renders it as HTML.
    """
    method = check_method(method)
    try:
        documents = parse_documents(text)
    except YamlRefused as exc:
        raise BadRequest(html.escape(str(exc), quote=False)) from None
    verb = "更新" if method == UPDATE else "创建"
    lines: list[str] = []
    failed = 0
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        try:
            obj = _decode(document)
        except ValueError as exc:
            failed += 1
            lines.append(f"第{index}项yaml数据序列化: {exc}")
            continue
        try:
            _apply_one(client, obj, method, namespace, budget, discovery)
        except kube.KubeError as exc:
            failed += 1
            reason = MSG_NOT_RUN_TIMEOUT if isinstance(exc, BudgetExceeded) else exc.message
            lines.append(f"第{index}项yaml数据{verb}失败: {reason}")
            continue
        lines.append(f"第{index}项yaml数据{verb}成功")
    if failed:
        raise BadRequest(html.escape("\n".join(lines), quote=False))
    return MSG_UPDATE_OK if method == UPDATE else MSG_CREATE_OK


def _decode(document: Any) -> dict[str, Any]:
    """A document as a Kubernetes object; ``ValueError`` with Go-like texts when it is not one."""
    if not isinstance(document, dict):
        raise ValueError("Object 'Kind' is missing in the document: it is not a mapping")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        raise ValueError("Object 'Kind' is missing")
    if not isinstance(api_version, str) or not api_version or api_version.count("/") > 1:
        raise ValueError("Object 'apiVersion' is missing or invalid")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise ValueError("Object 'metadata' is missing or not a mapping")
    name = metadata.get("name")
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "%" in name:
        raise ValueError("metadata.name is missing or not a valid name")
    namespace = metadata.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or "/" in namespace or "%" in namespace):
        raise ValueError("metadata.namespace is not a valid name")
    # Orjson refuses what JSON cannot carry (dates the YAML loader built, huge integers): say so here.
    try:
        return orjson.loads(orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ValueError(f"not representable as JSON: {exc}") from None


def _apply_one(
    client: kube.KubeClient, obj: dict[str, Any], method: str, namespace: str, budget: Budget, discovery: Discovery
) -> None:
    """Send one object; raises ``KubeError`` with the API's message on failure."""
    timeout = budget.timeout  # BudgetExceeded once spent: nothing more is sent
    timeout()
    resource = discovery.resolve(client, obj["apiVersion"], obj["kind"], budget)
    if resource is None:
        raise kube.NotFound(f'the server does not serve kind "{obj["kind"]}" in "{obj["apiVersion"]}"')
    meta = obj["metadata"]
    meta.pop("managedFields", None)
    if resource.namespaced:
        ns = meta.get("namespace") or namespace or DEFAULT_NAMESPACE
        if ns in (".", "..") or "/" in ns or "%" in ns:
            raise kube.Invalid(f"namespace {ns[:100]!r} is not a valid name")
        meta["namespace"] = ns
    else:
        ns = ""
        meta.pop("namespace", None)
    name = meta["name"]
    if method == UPDATE:
        if obj["kind"] == "Secret" and obj["apiVersion"] == "v1":
            _keep_stored_secret(client, resource, ns, name, obj, timeout())
        client.request("PUT", resource.path(ns, name), body=obj, timeout=timeout())
        return
    created_from = {k: v for k, v in meta.items() if k not in ("resourceVersion", "uid", "creationTimestamp")}
    obj["metadata"] = created_from  # a pasted `get` result carries the source's identity: never create with it
    try:
        client.request("POST", resource.path(ns), body=obj, timeout=timeout())
    except kube.AlreadyExists:
        if method != APPLY:
            raise
        # Server-side apply: this service owns the fields it sent, forced over other managers, so
        # the result is what the user pasted (kubectl apply --server-side --force-conflicts).
        # The client JSON-encodes the body for this content type too; JSON is valid YAML.
        client.request("PATCH", resource.path(ns, name), body=obj,
                       query={"fieldManager": FIELD_MANAGER, "force": "true"},
                       content_type="application/apply-patch+yaml", timeout=timeout())  # fmt: skip


def _keep_stored_secret(
    client: kube.KubeClient, resource: Resource, ns: str, name: str, obj: dict[str, Any], timeout: tuple[float, float]
) -> None:
    """§2.7: an Update without ``data``/``stringData`` keeps the stored data, one without ``type`` the type.

    The secret list omits data, so a dialog that posts a listed Secret back must not wipe it.
    """
    if ("data" in obj or "stringData" in obj) and "type" in obj:
        return
    try:
        stored = client.request("GET", resource.path(ns, name), timeout=timeout)
    except kube.NotFound:
        return  # the PUT reports the missing object
    if "data" not in obj and "stringData" not in obj and stored.get("data"):
        obj["data"] = stored["data"]
    if "type" not in obj and stored.get("type"):
        obj["type"] = stored["type"]
