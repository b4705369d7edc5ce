"""``KubeClient.request`` against a real API server: what it sends and how answers come back.

Requests go to the client's urllib3 pool directly (not through the client library's ``call_api``), so
these pin down what ``call_api`` did for us: bodies serialized as it serialized them (datetimes of a YAML
document as ISO strings), query parameters, content types, and non-2xx answers turned into the domain
errors with the Status message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import yaml

from controlplane.harness import Cluster
from tests.service import unique
from utils import kube


@pytest.fixture
def client(target1: Cluster) -> Iterator[kube.KubeClient]:
    """A client of target1 and a namespace of its own."""
    with kube.KubeClient.from_kubeconfig(target1.kubeconfig(), (2.0, 10.0)) as made:
        namespace = unique("kube-client")
        made.request("POST", kube.namespace_path(), body={"metadata": {"name": namespace}})
        made.namespace = namespace  # type: ignore[attr-defined]
        try:
            yield made
        finally:
            made.request("DELETE", kube.namespace_path(namespace))


def test_a_yaml_document_with_a_timestamp_is_sent_as_the_client_library_sent_it(client: kube.KubeClient) -> None:
    namespace = client.namespace  # type: ignore[attr-defined]
    document = yaml.safe_load(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stamped\n  annotations:\n    at: 2026-01-02T03:04:05Z\n"
        "data:\n  k: v\n"
    )
    assert isinstance(document["metadata"]["annotations"]["at"], dt.datetime)  # what PyYAML gives
    created = client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=document)
    assert created["metadata"]["annotations"]["at"] == "2026-01-02T03:04:05+00:00"
    patched = client.request("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/stamped",
                             body={"data": {"k": "w"}}, content_type="application/merge-patch+json")  # fmt: skip
    assert patched["data"] == {"k": "w"}
    listed = client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps",
                            query={"fieldSelector": "metadata.name=stamped", "limit": 1})  # fmt: skip
    assert [item["metadata"]["name"] for item in listed["items"]] == ["stamped"]
    raw = client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/stamped", raw=True)
    assert isinstance(raw, bytes) and b'"stamped"' in raw


def test_answers_other_than_2xx_become_domain_errors_with_the_status_message(client: kube.KubeClient) -> None:
    namespace = client.namespace  # type: ignore[attr-defined]
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"metadata": {"name": "once"}, "data": {"k": "v"}}
    client.request("POST", path, body=body)
    with pytest.raises(kube.AlreadyExists) as exists:
        client.request("POST", path, body=body)
    assert exists.value.status == 409 and '"once" already exists' in exists.value.message
    with pytest.raises(kube.NotFound) as missing:
        client.request("GET", f"{path}/never")
    assert missing.value.status == 404 and '"never" not found' in missing.value.message
    with pytest.raises(kube.Invalid) as invalid:
        client.request("POST", path, body={"metadata": {"name": "Not_A_Name"}})
    assert invalid.value.status == 422
    # The connection is still usable after each refused request (the error bodies were read).
    assert client.request("GET", f"{path}/once")["data"] == {"k": "v"}
