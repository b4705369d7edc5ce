"""The metadata informer against a real API server: follows changes, relists after compaction (410)."""

from __future__ import annotations

import json
import time

import pytest

from controlplane.harness import Cluster
from tests.service import unique
from utils import kube
from utils.informer import MetadataInformer, _Expired

LABEL = "krm.test/informer"


def _client(cluster: Cluster) -> kube.KubeClient:
    return kube.KubeClient.from_kubeconfig(cluster.kubeconfig(), (1.0, 3.0))


def _secret(name: str, note: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": {LABEL: "true"}, "annotations": {"note": note}},
            "stringData": {"kubeconfig": "secret-payload"}}  # fmt: skip


def _annotations(informer: MetadataInformer, name: str) -> dict:
    """The cached annotations of one object (fails when it is not cached)."""
    cached = informer.get(name)
    assert cached is not None, name
    return cached["annotations"]


def _eventually(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("informer did not converge")


@pytest.fixture
def namespace(meta: Cluster) -> str:
    name = unique("inf")
    assert meta.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    return name


def test_informer_follows_adds_updates_and_deletes(meta: Cluster, namespace: str) -> None:
    client = _client(meta)
    informer = MetadataInformer(lambda: client, kube.secret_path(namespace), f"{LABEL}=true", watch_seconds=2)
    informer.start()
    try:
        assert informer.wait_healthy(10)
        path = f"/api/v1/namespaces/{namespace}/secrets"
        assert meta.request("POST", path, _secret("one", "v1"))[0] == 201
        _eventually(lambda: (m := informer.get("one")) is not None and m["annotations"]["note"] == "v1")
        patch_path = f"{path}/one"
        client.request("PATCH", patch_path, body={"metadata": {"annotations": {"note": "v2"}}},
                       content_type="application/merge-patch+json")  # fmt: skip
        _eventually(lambda: _annotations(informer, "one")["note"] == "v2")
        time.sleep(2.5)  # the watch expires (watch_seconds=2) and is renewed without losing events
        assert meta.request("DELETE", patch_path)[0] == 200
        _eventually(lambda: informer.get("one") is None)
        assert "data" not in json.dumps(informer.snapshot()[1])  # metadata only, never the payload
    finally:
        informer.stop()
        client.close()


class _ScriptedClient:
    """A stand-in that replays watch events: a pure unit test of the informer's event handling."""

    def __init__(self, events: list[dict]) -> None:
        self.events = events

    def watch(self, *_args, **_kwargs):
        return iter(self.events)


def _meta(name: str, rv: int, note: str = "") -> dict:
    return {"name": name, "resourceVersion": str(rv), "annotations": {"note": note}}


def test_watch_error_410_means_relist() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
    informer = MetadataInformer(lambda: _ScriptedClient([gone]), "/p", "l=true")  # type: ignore[arg-type,return-value]
    with pytest.raises(_Expired):
        informer._watch("5")
    assert not informer.healthy


def test_stale_events_do_not_undo_newer_local_writes() -> None:
    events = [
        {"type": "MODIFIED", "object": {"metadata": _meta("a", 10, "old")}},
        {"type": "ADDED", "object": {"metadata": _meta("b", 12, "b")}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "30"}}},
    ]
    informer = MetadataInformer(lambda: _ScriptedClient(events), "/p", "l=true")  # type: ignore[arg-type,return-value]
    informer.upsert(_meta("a", 20, "new"))  # this process wrote revision 20 first
    informer.remove("b", revision=15)  # and deleted b at revision 15
    assert informer._watch("1") == "30"
    assert _annotations(informer, "a")["note"] == "new"
    assert informer.get("b") is None
    informer.upsert(_meta("b", 40, "re-created"))  # a newer object of the same name is accepted
    assert _annotations(informer, "b")["note"] == "re-created"
