"""Unit tests of the registry's caches: the Secret cache behind cluster/get, the incremental list
rendering, and the informer serving its old copy while it relists. No API server: the tests of the
same over HTTP are in ``test_cluster_get_cache.py`` and ``test_informer.py``."""

from __future__ import annotations

import base64
import threading
from typing import Any

import orjson
import pytest

from controllers.cluster.records import list_item, mark_duplicates
from controllers.cluster.registry import ClusterRegistry, SecretCache
from utils import kube
from utils.informer import MetadataInformer

LABEL = "krm.test/cluster"


def secret(name: str, uid: str, rv: int, kubeconfig: str = "kc", **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": uid, "resourceVersion": str(rv), "labels": {LABEL: "true"},
                     "annotations": {"id": name, **annotations}, "managedFields": [{"manager": "x"}]},
        "data": {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()},
    }  # fmt: skip


# SecretCache ------------------------------------------------------------------------------------


def test_a_cached_secret_is_served_for_its_uid_at_its_revision() -> None:
    cache = SecretCache(4)
    assert cache.lookup("a", "u1", 5) is None
    cache.store(secret("a", "u1", 5))
    assert cache.lookup("a", "u1", 5) is not None
    assert cache.lookup("a", "u1", 4) is not None  # the watch lags a read this process made
    assert cache.lookup("a", "u1", 6) is None  # changed since: read again
    assert cache.lookup("a", "u2", 5) is None  # deleted and created again under the same name
    assert cache.lookup("a", "", 5) is None
    assert cache.lookup("a", "u1", -1) is None  # an opaque revision is never trusted


def test_an_older_read_does_not_replace_a_newer_copy_of_the_same_object() -> None:
    cache = SecretCache(4)
    cache.store(secret("a", "u1", 9, "new"))
    cache.store(secret("a", "u1", 7, "old"))
    got = cache.lookup("a", "u1", 9)
    assert got is not None and got["data"]["kubeconfig"] == base64.b64encode(b"new").decode()
    cache.store(secret("a", "u2", 3, "recreated"))  # another object: replaces whatever its revision
    assert cache.lookup("a", "u2", 3) is not None and cache.lookup("a", "u1", 9) is None


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = SecretCache(2)
    cache.store(secret("a", "ua", 1))
    cache.store(secret("b", "ub", 1))
    assert cache.lookup("a", "ua", 1) is not None  # a is now the most recently used
    cache.store(secret("c", "uc", 1))
    assert len(cache) == 2
    assert cache.lookup("b", "ub", 1) is None and cache.lookup("a", "ua", 1) is not None
    cache.forget("a")
    assert cache.lookup("a", "ua", 1) is None


def test_size_zero_keeps_nothing_and_secrets_without_identity_are_not_kept() -> None:
    off = SecretCache(0)
    off.store(secret("a", "ua", 1))
    assert len(off) == 0
    cache = SecretCache(4)
    nameless = secret("a", "", 1)
    cache.store(nameless)
    opaque = secret("b", "ub", 1)
    opaque["metadata"]["resourceVersion"] = "not-a-number"
    cache.store(opaque)
    assert len(cache) == 0


# The registry's read_current, with a scripted metadata client -----------------------------------


class FakeApi:
    """The metadata cluster's Secrets in a dict; counts GETs."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.gets = 0
        self.rv = 100

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        name = path.rsplit("/", 1)[1] if path.count("/") > 5 else ""
        if method == "GET":
            self.gets += 1
            if name not in self.secrets:
                raise kube.NotFound(f'secrets "{name}" not found')
            return orjson.loads(orjson.dumps(self.secrets[name]))
        if method in ("POST", "PUT"):
            body = kwargs["body"]
            self.rv += 1
            stored = secret(body["metadata"]["name"], f"uid-{body['metadata']['name']}", self.rv,
                            body["stringData"]["kubeconfig"])  # fmt: skip
            self.secrets[stored["metadata"]["name"]] = stored
            return orjson.loads(orjson.dumps(stored))
        if method == "DELETE":
            self.secrets.pop(name, None)
            return {}
        raise AssertionError(method)


class FakeMetadata:
    namespace = "krm"

    def __init__(self) -> None:
        self.client = FakeApi()


def synced_informer() -> MetadataInformer:
    informer = MetadataInformer(lambda: None, "/p", f"{LABEL}=true")  # type: ignore[arg-type,return-value]
    informer._listed.set()
    informer._healthy.set()
    return informer


def body(name: str, kubeconfig: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "stringData": {"kubeconfig": kubeconfig}}


def registry(informer: MetadataInformer | None) -> tuple[ClusterRegistry, FakeApi]:
    metadata = FakeMetadata()
    return ClusterRegistry(metadata, LABEL, informer, secret_cache_size=8), metadata.client  # type: ignore[arg-type]


def test_read_current_reads_once_then_serves_the_copy_while_the_watch_shows_it_unchanged() -> None:
    informer = synced_informer()
    reg, api = registry(informer)
    api.secrets["a"] = secret("a", "uid-a", 10, "kc-a")
    informer.upsert(dict(api.secrets["a"]["metadata"]))
    first = reg.read_current("a")
    assert api.gets == 1 and "managedFields" not in first["metadata"]
    assert reg.read_current("a") is first and api.gets == 1
    # Another process changed it: the watch shows a newer revision, so the next get reads again.
    api.secrets["a"] = secret("a", "uid-a", 11, "kc-a2")
    informer.upsert(dict(api.secrets["a"]["metadata"]))
    assert reg.read_current("a")["data"] == api.secrets["a"]["data"] and api.gets == 2
    assert reg.read_current("a")["data"] == api.secrets["a"]["data"] and api.gets == 2


def test_read_current_asks_the_api_when_the_watch_is_not_open() -> None:
    informer = synced_informer()
    reg, api = registry(informer)
    api.secrets["a"] = secret("a", "uid-a", 10)
    informer.upsert(dict(api.secrets["a"]["metadata"]))
    reg.read_current("a")
    informer._healthy.clear()  # a watch being renewed, or a failed one
    reg.read_current("a")
    reg.read_current("a")
    assert api.gets == 3
    reg_without, api_without = registry(None)
    api_without.secrets["a"] = secret("a", "uid-a", 10)
    reg_without.read_current("a")
    reg_without.read_current("a")
    assert api_without.gets == 2


def test_a_name_the_informer_does_not_hold_is_read_and_not_found_is_the_apis() -> None:
    reg, api = registry(synced_informer())
    with pytest.raises(kube.NotFound, match='secrets "nope" not found'):
        reg.read_current("nope")
    assert api.gets == 1


def test_this_processs_writes_fill_the_cache_and_its_deletes_empty_it() -> None:
    informer = synced_informer()
    reg, api = registry(informer)
    reg.create(body("a", "created"))
    got = reg.read_current("a")
    assert api.gets == 0 and base64.b64decode(got["data"]["kubeconfig"]) == b"created"
    reg.replace("a", body("a", "replaced"))
    assert base64.b64decode(reg.read_current("a")["data"]["kubeconfig"]) == b"replaced" and api.gets == 0
    reg.delete("a")  # reads the Secret first (never deletes what is not a cluster record)
    gets = api.gets
    with pytest.raises(kube.NotFound):
        reg.read_current("a")
    assert api.gets == gets + 1 and len(reg.secrets) == 0


def test_a_secret_without_the_label_is_not_a_cluster_and_is_not_cached() -> None:
    reg, api = registry(synced_informer())
    api.secrets["a"] = secret("a", "uid-a", 10)
    api.secrets["a"]["metadata"]["labels"] = {}
    with pytest.raises(kube.NotFound, match="not a registered cluster"):
        reg.read_current("a")
    assert len(reg.secrets) == 0


# Incremental list rendering ---------------------------------------------------------------------


def meta(name: str, rv: int, uid: str = "", **annotations: str) -> dict[str, Any]:
    return {"name": name, "resourceVersion": str(rv),
            "annotations": {"id": name, "clusterUID": uid, "displayName": name.upper(), **annotations}}  # fmt: skip


def full_render(informer: MetadataInformer) -> list[dict[str, str]]:
    return mark_duplicates([list_item(m["name"], m.get("annotations")) for m in informer.snapshot()[1]])


def test_the_incremental_rendering_equals_a_full_one_through_changes() -> None:
    informer = synced_informer()
    reg, _ = registry(informer)
    for i in range(30):
        informer.upsert(meta(f"c{i:02d}", 10 + i, uid="shared" if i % 3 == 0 else f"u{i}"))
    assert reg.list_items() == full_render(informer)
    assert orjson.loads(orjson.dumps(reg.list_json())) == full_render(informer)
    rendered = reg.list_items()
    assert reg.list_items() is rendered  # nothing changed: the same rendering
    informer.upsert(meta("c01", 100, uid="shared", city="x"))  # joins the duplicates
    informer.upsert(meta("c03", 101, uid="alone"))  # leaves them
    informer.remove("c06")
    informer.upsert(meta("new", 102))
    assert reg.list_items() == full_render(informer)
    assert orjson.loads(orjson.dumps({"items": reg.list_json()}))["items"] == full_render(informer)
    assert reg.item("c01") == next(i for i in full_render(informer) if i["id"] == "c01")
    assert reg.item("c06") is None
    assert all(i["duplicateOf"] == "" for i in reg._item_cache_items())  # the cached bases stay unmarked


def test_the_list_falls_back_to_a_metadata_list_when_the_informer_is_not_usable() -> None:
    informer = MetadataInformer(lambda: None, "/p", "l=true")  # type: ignore[arg-type,return-value]
    calls: list[dict[str, Any]] = []

    class Api:
        def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            return {"items": [{"metadata": meta("a", 1)}]}

    metadata = FakeMetadata()
    metadata.client = Api()  # type: ignore[assignment]
    reg = ClusterRegistry(metadata, LABEL, informer)  # type: ignore[arg-type]
    assert [i["id"] for i in reg.list_items()] == ["a"]
    assert orjson.loads(orjson.dumps(reg.list_json()))[0]["id"] == "a"
    assert len(calls) == 2 and calls[0]["accept"] == kube.ACCEPT_METADATA_LIST


# The informer keeps serving while it relists ----------------------------------------------------


class RelistClient:
    """LIST answers from ``lists`` (each may wait on an event first); WATCH replays ``watches``."""

    def __init__(self, lists: list[tuple[threading.Event | None, list[dict]]], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.listing = threading.Event()

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        gate, metas = self.lists.pop(0)
        if gate is not None:
            self.listing.set()
            assert gate.wait(10)
        return {"metadata": {"resourceVersion": "50"}, "items": [{"metadata": m} for m in metas]}

    def watch(self, *_args: Any, **_kwargs: Any) -> Any:
        step = self.watches.pop(0) if self.watches else kube.Unhealthy("no more watches")
        if isinstance(step, Exception):
            raise step
        return iter(step) if isinstance(step, list) else step


def test_a_relist_after_410_keeps_serving_the_old_copy_and_swaps_at_once() -> None:
    gate, hold = threading.Event(), threading.Event()

    def open_watch() -> Any:
        hold.wait(10)  # a watch that stays open (until the test ends)
        yield from ()

    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
    client = RelistClient(
        lists=[(None, [meta("a", 1), meta("b", 2)]), (gate, [meta("a", 3), meta("c", 4)])],
        watches=[[gone], open_watch()],
    )
    informer = MetadataInformer(lambda: client, "/p", "l=true", max_backoff=0.05)  # type: ignore[arg-type,return-value]
    reg = ClusterRegistry(FakeMetadata(), LABEL, informer)  # type: ignore[arg-type]
    informer.start()
    try:
        assert client.listing.wait(10)  # the relist is under way (and held)
        assert informer.usable and not informer.healthy
        assert [i["id"] for i in reg.list_items()] == ["a", "b"]  # the old copy, no API call
        gate.set()
        deadline = threading.Event()
        for _ in range(200):
            if [i["id"] for i in reg.list_items()] == ["a", "c"]:
                break
            deadline.wait(0.05)
        assert [i["id"] for i in reg.list_items()] == ["a", "c"]
    finally:
        hold.set()
        informer.stop()


def test_a_failed_watch_makes_the_copy_unusable() -> None:
    client = RelistClient(lists=[(None, [meta("a", 1)])], watches=[kube.Unhealthy("connection refused")])
    informer = MetadataInformer(lambda: client, "/p", "l=true", max_backoff=0.05)  # type: ignore[arg-type,return-value]
    reg = ClusterRegistry(FakeMetadata(), LABEL, informer)  # type: ignore[arg-type]
    informer.start()
    try:
        for _ in range(200):  # listed, then the watch fails and every relist fails too
            if informer.last_error and not informer.usable:
                break
            threading.Event().wait(0.02)
        assert not informer.usable and not informer.healthy
        with pytest.raises(kube.NotFound):  # the list asks the API itself (here: a fake that has nothing)
            reg.list_items()
    finally:
        informer.stop()


def test_the_informer_keeps_no_managed_fields() -> None:
    informer = synced_informer()
    informer.upsert({**meta("a", 1), "managedFields": [{"manager": "m"}]})
    cached = informer.get("a")
    assert cached is not None and "managedFields" not in cached
