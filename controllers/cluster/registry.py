"""The registry: cluster Secrets in the metadata namespace, reached through the metadata client.

Reads of the list come from the process's informer (LIST+WATCH of metadata) while it is usable,
and from a metadata-only LIST otherwise; this process's own writes are applied to the informer at
once, so a client never misses what it just wrote.

``get`` reads a whole Secret (the kubeconfig). Those are kept in a small per-process LRU
(``SecretCache``, in memory only) and served again while the informer, with a watch open, shows the
same uid and a resourceVersion no newer than the cached copy's: no API call for a Secret that has not
changed. A metadata-only watch cannot tell an annotation change (the prober's results) from a data
change, so any new resourceVersion is read again once; this process's own writes refill the cache
from the API's answer and its deletes empty it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import orjson

from utils import metrics
from utils.informer import MetadataInformer
from utils.kube import ACCEPT_METADATA_LIST, NotFound, secret_path
from utils.metadata import MetadataCluster

from .records import list_item, mark_duplicates


def _revision(meta: dict[str, Any]) -> int:
    """A resourceVersion as a number (etcd revision); -1 when absent or opaque (never trusted)."""
    try:
        return int(meta.get("resourceVersion") or "")
    except ValueError:
        return -1


class SecretCache:
    """Whole cluster Secrets by name (least recently used dropped first), each with its uid and revision.

    Process memory only: nothing here is logged, written or returned except to ``get``'s caller.
    """

    def __init__(self, max_entries: int = 256) -> None:
        """Keep at most ``max_entries`` Secrets (0: keep none)."""
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, int, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def lookup(self, name: str, uid: str, revision: int) -> dict[str, Any] | None:
        """The cached Secret if it is the object ``uid`` at ``revision`` or newer (the watch may lag a read)."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or not uid or entry[0] != uid or revision < 0 or entry[1] < revision:
                self.misses += 1
                return None
            self._entries.move_to_end(name)
            self.hits += 1
            return entry[2]

    def store(self, secret: dict[str, Any]) -> None:
        """Keep a Secret just read or written (unless an entry of the same object is newer)."""
        meta = secret.get("metadata") or {}
        name, uid, revision = meta.get("name"), meta.get("uid"), _revision(meta)
        if not name or not uid or revision < 0 or self.max_entries <= 0:
            return
        with self._lock:
            current = self._entries.get(name)
            if current is not None and current[0] == uid and current[1] > revision:
                return
            self._entries[name] = (uid, revision, secret)
            self._entries.move_to_end(name)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, name: str) -> None:
        """Drop a Secret (deleted, or about to be replaced)."""
        with self._lock:
            self._entries.pop(name, None)

    def __len__(self) -> int:
        """How many Secrets are cached."""
        with self._lock:
            return len(self._entries)


def _compact_json(item: dict[str, str]) -> bytes:
    """``orjson.dumps(item)`` in a bytes object of its own size: orjson's answer keeps its whole
    output buffer (about 8 KiB for a 400-byte item), which at 10,000 items is 80 MiB per process."""
    return bytes(memoryview(orjson.dumps(item)))


def _trimmed(secret: dict[str, Any]) -> dict[str, Any]:
    """What ``get`` reads of a Secret: metadata without managedFields, type and data."""
    meta = dict(secret.get("metadata") or {})
    meta.pop("managedFields", None)
    return {**secret, "metadata": meta}


class _Rendered:
    """The list as of one informer generation: items, an index by id, and the items' JSON."""

    def __init__(self, generation: int, items: list[dict[str, str]], parts: list[bytes]) -> None:
        self.generation = generation
        self.items = items
        self.by_id = {item["id"]: item for item in items}
        self.json = orjson.Fragment(b"[" + b",".join(parts) + b"]")


class ClusterRegistry:
    """Create, replace, read, delete and list the labelled cluster Secrets."""

    def __init__(
        self,
        metadata: MetadataCluster,
        label: str,
        informer: MetadataInformer | None = None,
        secret_cache_size: int = 256,
    ) -> None:
        """Use ``metadata``'s client and namespace; Secrets are selected by ``<label>=true``."""
        self.metadata = metadata
        self.label = label
        self.informer = informer
        self.secrets = SecretCache(secret_cache_size)
        self._rendered: _Rendered | None = None
        # name -> (revision, item without duplicateOf, its JSON): only changed Secrets are rendered again.
        self._item_cache: dict[str, tuple[int, dict[str, str], bytes]] = {}
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
        """Apply a Secret this process just wrote to the informer and the Secret cache (read-your-writes)."""
        if isinstance(secret, dict) and secret.get("metadata"):
            trimmed = _trimmed(secret)
            self.secrets.store(trimmed)
            if self.informer is not None:
                self.informer.upsert(dict(trimmed["metadata"]))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a cluster Secret; ``AlreadyExists`` when the id is taken."""
        secret = self.metadata.client.request("POST", secret_path(self.namespace), body=body)
        self._remember(secret)
        return secret

    def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a cluster Secret (optimistic: ``Conflict`` if it changed since it was read)."""
        self.secrets.forget(name)  # whatever the answer, the cached copy may be outdated now
        secret = self.metadata.client.request("PUT", secret_path(self.namespace, name), body=body)
        self._remember(secret)
        return secret

    def read(self, name: str, timeout: tuple[float, float] | None = None) -> dict[str, Any]:
        """One cluster Secret, kubeconfig included, from the API; ``NotFound`` when absent or not labelled."""
        secret = self.metadata.client.request("GET", secret_path(self.namespace, name), timeout=timeout)
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get(self.label) != "true":
            self.secrets.forget(name)
            raise NotFound(f'secrets "{name}" is not a registered cluster')
        return secret

    def read_current(self, name: str) -> dict[str, Any]:
        """One cluster Secret as ``read`` answers it, without an API call when the watch shows it unchanged.

        The cached copy is used only while the informer's watch is open (``healthy``) and it holds the
        same object (uid) at a revision no newer than the copy's; otherwise the Secret is read and cached.
        """
        informer = self.informer
        if informer is not None and informer.healthy:
            meta = informer.get(name)
            if meta is not None:
                cached = self.secrets.lookup(name, str(meta.get("uid") or ""), _revision(meta))
                if cached is not None:
                    metrics.observe_secret_read("cache")
                    return cached
        metrics.observe_secret_read("api")
        secret = _trimmed(self.read(name))
        self.secrets.store(secret)
        return secret

    def delete(self, name: str) -> None:
        """Delete a cluster Secret; ``NotFound`` when absent."""
        secret = self.read(name)  # never delete a Secret that is not a cluster record
        meta = secret.get("metadata") or {}
        # The UID precondition makes "read, then delete" atomic: a Secret replaced in between by
        # something that is not a cluster record is not deleted.
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": meta.get("uid")}}
        self.secrets.forget(name)
        self.metadata.client.request("DELETE", secret_path(self.namespace, name), body=options)
        self.secrets.forget(name)  # a get racing the delete may have cached it again
        if self.informer is not None:
            self.informer.remove(name, max(_revision(meta), 0))

    def list_items(self) -> list[dict[str, str]]:
        """Every registered cluster as a list item (no kubeconfigs), from the informer when usable.

        The items are shared between callers until the next change: read them, do not modify them.
        """
        rendered = self._current()
        if rendered is not None:
            return rendered.items
        return self._render(self._list_metadata())

    def list_json(self) -> orjson.Fragment:
        """The same items as a JSON array (serialised once per change; embedded as is in the answer)."""
        rendered = self._current()
        if rendered is not None:
            return rendered.json
        items = self._render(self._list_metadata())
        return orjson.Fragment(orjson.dumps(items))

    def item(self, name: str) -> dict[str, str] | None:
        """One cluster's list item (``duplicateOf`` set), or None if it is not registered."""
        rendered = self._current()
        if rendered is not None:
            return rendered.by_id.get(name)
        return next((i for i in self.list_items() if i["id"] == name), None)

    def _item_cache_items(self) -> list[dict[str, str]]:
        """The cached base items (tests: they never carry duplicateOf)."""
        return [entry[1] for entry in self._item_cache.values()]

    def _current(self) -> _Rendered | None:
        """The rendering of the informer's copy (made again only when it changed); None if not usable."""
        informer = self.informer
        if informer is None or not informer.usable:
            return None
        rendered = self._rendered
        if rendered is not None and rendered.generation == informer.generation:
            return rendered
        with self._render_lock:
            generation, metas = informer.snapshot()
            rendered = self._rendered
            if rendered is None or rendered.generation != generation:
                rendered = self._rendered = self._render_incrementally(generation, metas)
            return rendered

    def _render_incrementally(self, generation: int, metas: list[dict[str, Any]]) -> _Rendered:
        """Render the copy, reusing the items of Secrets whose revision is unchanged (render lock held)."""
        cache = self._item_cache
        fresh: dict[str, tuple[int, dict[str, str], bytes]] = {}
        items: list[dict[str, str]] = []
        parts: list[bytes] = []
        by_uid: dict[str, list[str]] = {}
        for meta in metas:
            name = meta.get("name", "")
            revision = _revision(meta)
            entry = cache.get(name)
            if entry is None or entry[0] != revision or revision < 0:
                item = list_item(name, meta.get("annotations"))
                entry = (revision, item, _compact_json(item))
            fresh[name] = entry
            items.append(entry[1])
            parts.append(entry[2])
            if entry[1]["clusterUID"]:
                by_uid.setdefault(entry[1]["clusterUID"], []).append(entry[1]["id"])
        self._item_cache = fresh  # deleted Secrets' items go with the old dict
        shared = {uid for uid, ids in by_uid.items() if len(ids) > 1}
        if shared:
            # Only items of clusters registered more than once get duplicateOf: copies, so the cached
            # base items (duplicateOf "") stay as they are for the next rendering.
            marked = mark_duplicates([dict(item) for item in items if item["clusterUID"] in shared])
            positions = {id(item): i for i, item in enumerate(items)}
            originals = [item for item in items if item["clusterUID"] in shared]
            for original, copy in zip(originals, marked, strict=True):
                i = positions[id(original)]
                items[i] = copy
                parts[i] = _compact_json(copy)
        return _Rendered(generation, items, parts)

    def _list_metadata(self) -> list[dict[str, Any]]:
        """Every cluster Secret's metadata by a metadata-only LIST (the informer is not usable)."""
        listing = self.metadata.client.request(
            "GET",
            secret_path(self.namespace),
            query={"labelSelector": self.selector},
            accept=ACCEPT_METADATA_LIST,
        )
        return [obj.get("metadata") or {} for obj in listing.get("items") or []]

    @staticmethod
    def _render(metas: list[dict[str, Any]]) -> list[dict[str, str]]:
        """List items from Secret metadata, with duplicates marked."""
        return mark_duplicates([list_item(m.get("name", ""), m.get("annotations")) for m in metas])
