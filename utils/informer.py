"""Informers: LIST then WATCH of labelled objects, kept in memory, resumed on failure.

Each process keeps its own copy, fed by the metadata cluster; the Secrets stay the only truth, so
workers and replicas converge within the watch latency. ``MetadataInformer`` (the workers) holds only
metadata (annotations, labels, resourceVersion, uid): kubeconfigs are fetched when a cluster is
actually used. ``Informer`` holds whole objects (the prober, which needs every kubeconfig each round).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

from utils import kube, logs
from utils.background import BackgroundLoop

ACCEPT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


def _rv(meta: dict[str, Any]) -> int:
    """A resourceVersion as a number for ordering (etcd revisions); 0 when absent or opaque."""
    try:
        return int(meta.get("resourceVersion") or 0)
    except ValueError:
        return 0


class Informer(BackgroundLoop):
    """Every object matching a label selector under ``path``, kept current (``managedFields`` dropped).

    What is stored of an object is ``keep(object)``; subclasses choose (``MetadataInformer``: its metadata).
    """

    thread_name = "informer"
    list_accept = "application/json"
    watch_accept = "application/json"

    def __init__(
        self,
        client: Callable[[], kube.KubeClient],
        path: str,
        selector: str,
        watch_seconds: int = 60,
        max_backoff: float = 10.0,
    ) -> None:
        """Configure; nothing runs until ``start``. ``client`` returns the (lazily built) client."""
        super().__init__()
        self._client = client
        self.path = path
        self.selector = selector
        # The server ends each watch after about this long; we re-watch from the last revision.
        self.watch_seconds = watch_seconds
        self.max_backoff = max_backoff
        self._items: dict[str, dict[str, Any]] = {}
        self._deleted: dict[str, int] = {}  # name -> revision of a delete this process made
        self._lock = threading.Lock()
        self._healthy = threading.Event()
        # Set once a LIST is loaded; cleared only by a failure. While a watch is renewed (its normal end,
        # or a relist after 410 Gone) the copy is still served: it was current a moment ago.
        self._listed = threading.Event()
        self._sorted: tuple[int, list[str]] = (-1, [])
        self.generation = 0  # bumped on every change, so readers can cache what they derive
        self.last_error = "not started"

    @property
    def healthy(self) -> bool:
        """True while the copy is known to be current (listed, and a watch is open)."""
        return self._healthy.is_set()

    @property
    def usable(self) -> bool:
        """True while the copy may be served: listed, and no failure since (a watch being renewed,
        or a relist after 410 Gone, keeps the old copy until the new one is swapped in)."""
        return self._listed.is_set()

    def wait_healthy(self, timeout: float) -> bool:
        """Wait until the first LIST has been loaded."""
        return self._healthy.wait(timeout)

    def keep(self, obj: dict[str, Any]) -> dict[str, Any]:
        """What is stored of a listed or watched object: the object, without its ``managedFields``."""
        (obj.get("metadata") or {}).pop("managedFields", None)  # never read, and most of an object's metadata
        return obj

    def metadata(self, stored: dict[str, Any]) -> dict[str, Any]:
        """The metadata of a stored object."""
        return stored.get("metadata") or {}

    def snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """(generation, every stored object sorted by name)."""
        with self._lock:
            if self._sorted[0] != self.generation:
                self._sorted = (self.generation, sorted(self._items))
            return self.generation, [self._items[name] for name in self._sorted[1]]

    def items(self) -> dict[str, dict[str, Any]]:
        """The stored objects by name: a copy of the index (the objects are shared: read them, never change them)."""
        with self._lock:
            return dict(self._items)

    def get(self, name: str) -> dict[str, Any] | None:
        """One stored object, if present."""
        with self._lock:
            return self._items.get(name)

    def upsert(self, stored: dict[str, Any]) -> None:
        """Store an object (as ``keep`` gives it: a watch event, or this process's own write) unless the
        copy is newer.

        Revisions order the two sources: a late event never undoes a newer write or delete of ours.
        """
        meta = self.metadata(stored)
        name = meta.get("name")
        if not name:
            return
        meta.pop("managedFields", None)
        revision = _rv(meta)
        with self._lock:
            current = self._items.get(name)
            if current is not None and _rv(self.metadata(current)) >= revision > 0:
                return
            if revision and self._deleted.get(name, 0) >= revision:
                return
            self._deleted.pop(name, None)
            self._items[name] = stored
            self.generation += 1

    def remove(self, name: str, revision: int = 0) -> None:
        """Forget an object this process just deleted."""
        with self._lock:
            if self._items.pop(name, None) is not None:
                self.generation += 1
            if revision:
                self._deleted[name] = revision

    def _run(self) -> None:
        """LIST, then WATCH from the list's revision; relist on 410 Gone or any failure, with backoff."""
        delay = 0.2
        revision = ""
        while not self._stop.is_set():
            try:
                if not revision:
                    revision = self._list()
                revision = self._watch(revision)
                delay = 0.2
                continue
            except _Expired:
                revision = ""  # compacted: relist (normal after etcd compaction or a long outage)
                continue
            except kube.KubeError as exc:
                self._healthy.clear()
                self._listed.clear()
                self.last_error = str(exc)
                revision = ""
                logs.warning({"path": self.path, "error": str(exc), "retryIn": round(delay, 1)}, "watch interrupted")
            except Exception as exc:  # a bug must not kill the thread silently
                self._healthy.clear()
                self._listed.clear()
                self.last_error = f"{type(exc).__name__}: {exc}"
                revision = ""
                logs.error({"path": self.path, "error": self.last_error}, "informer failed; relisting")
            self._stop.wait(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            delay = min(delay * 2, self.max_backoff)

    def _list(self) -> str:
        """Replace the copy with a fresh LIST; return its revision."""
        listing = self._client().request(
            "GET", self.path, query={"labelSelector": self.selector}, accept=self.list_accept
        )
        items = {}
        for obj in listing.get("items") or []:
            stored = self.keep(obj)
            name = self.metadata(stored).get("name")
            if name:
                items[name] = stored
        # Built aside and swapped in at once: readers keep the old copy while the LIST runs.
        with self._lock:
            self._items = items
            self._deleted.clear()
            self.generation += 1
        self.last_error = ""
        self._listed.set()
        self._healthy.set()
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, revision: str) -> str:
        """Apply watch events until the server closes the stream; return the last revision seen."""
        query = {
            "labelSelector": self.selector,
            "resourceVersion": revision,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        # The read timeout is the longest silence we accept: the server ends the watch (or sends a
        # bookmark) well before it, so hitting it means the metadata cluster stopped answering.
        events = self._client().watch(self.path, query, self.watch_accept, read_timeout=self.watch_seconds + 30)
        self._healthy.set()
        try:
            for event in events:
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired()
                    raise kube.Unhealthy(f"watch error: {str(obj.get('message', ''))[:200]}")
                obj = self.keep(obj)  # a BOOKMARK too: its metadata carries the revision
                meta = self.metadata(obj)
                if meta.get("resourceVersion"):
                    revision = str(meta["resourceVersion"])
                if kind in ("ADDED", "MODIFIED"):
                    self.upsert(obj)
                elif kind == "DELETED":
                    with self._lock:
                        if self._items.pop(meta.get("name", ""), None) is not None:
                            self.generation += 1
        finally:
            # Until the next watch is open the copy may fall behind: readers that must be current
            # (``healthy``) ask the API; the list keeps serving it (``usable``) unless renewal fails.
            self._healthy.clear()
        return revision


class MetadataInformer(Informer):
    """The metadata of every object matching a label selector under ``path``, kept current."""

    list_accept = kube.ACCEPT_METADATA_LIST
    watch_accept = ACCEPT_METADATA

    def keep(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Only the metadata."""
        meta = obj.get("metadata") or {}
        meta.pop("managedFields", None)
        return meta

    def metadata(self, stored: dict[str, Any]) -> dict[str, Any]:
        """A stored object is its metadata."""
        return stored


class _Expired(Exception):
    """The watch's revision was compacted away (410 Gone): relist."""
