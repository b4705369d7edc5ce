"""Hostile requests to the resource routes, generated with hypothesis (derandomized, bounded), over real HTTP.

Every answer keeps the envelope invariants of ``tests/test_fuzz.py`` (no HTTP 500, no traceback, the
envelope under /api), and the seed objects on the target cluster are exactly what they were: nothing
generated deletes, replaces or half-writes them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers.resources.kinds import KINDS
from controllers.resources.schemas import FIELDS
from controlplane.harness import Cluster
from tests.platform_fixtures import api_request
from tests.service import Service, unique
from tests.test_fuzz import check, encoded, json_values, nasty_text, send, short_texts, weighted

EXAMPLES = 200
ROUTES = [(prefix, action) for kind in KINDS for prefix in kind.prefixes for action in kind.actions]
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SPELLINGS = [*FIELDS, "namespace", "NAMESPACE", "ForceDelete", "force", "clusterid", "cluster_id", "CLUSTERID"]


def hostile_items(seed_names: list[str]) -> st.SearchStrategy[Any]:
    """Items: wrong types, foreign kinds, broken metadata, hostile names (never a seed's name)."""
    names = weighted((3, nasty_text), (1, json_values), (1, st.text(max_size=30))).filter(lambda n: n not in seed_names)
    metadata = st.fixed_dictionaries({}, optional={
        "name": names, "namespace": short_texts | json_values, "labels": json_values,
        "resourceVersion": short_texts, "managedFields": json_values, "generateName": nasty_text,
    })  # fmt: skip
    structured = st.fixed_dictionaries({"metadata": metadata | json_values}, optional={
        "kind": st.sampled_from(["deployment", "Secret", "Namespace", "ClusterRoleBinding", ""]) | json_values,
        "apiVersion": short_texts, "spec": json_values, "data": json_values, "status": json_values,
        "stringData": json_values, "type": short_texts,
    })  # fmt: skip
    return weighted((4, structured), (1, json_values), (1, st.sampled_from(["", "null", "[]", "x" * 5000])))


@st.composite
def platform_requests(draw: st.DrawFn, token: str, cluster_id: str, namespace: str, seeds: list[str]) -> dict:
    """One request to a resource route, hostile in any of its parts."""
    prefix, action = draw(st.sampled_from(ROUTES))
    path = f"/api/{prefix}/{action}"
    fields: dict[str, Any] = {}
    fields["clusterId"] = draw(weighted((8, st.just(cluster_id)), (1, nasty_text), (1, json_values)))
    destructive = action in ("delete", "deletelist", "update", "add", "restart")
    fields["nameSpace"] = draw(weighted((6, st.just(namespace)), (2, nasty_text.filter(bool)), (1, json_values)))
    name_pool = weighted((4, nasty_text), (1, json_values), (1, st.text(max_size=20)))
    if prefix == "namespace" and action in ("add", "delete"):
        name_pool = name_pool.filter(lambda n: not (isinstance(n, str) and _DNS_LABEL.match(n)))
    elif destructive:
        name_pool = name_pool.filter(lambda n: n not in seeds)
    for key in draw(st.lists(st.sampled_from(["name", "item", "deleteList", "forceDelete", "labelSelector",
                                              "fieldSelector", "method", "autoCreateService"]),
                             unique=True, max_size=4)):  # fmt: skip
        if key == "name":
            fields[key] = draw(name_pool)
        elif key == "item":
            fields[key] = draw(hostile_items(seeds))
        elif key == "deleteList":
            fields[key] = draw(weighted((3, st.lists(name_pool, max_size=6)), (1, json_values),
                                        (1, st.just([f"n{i}" for i in range(600)]))))  # fmt: skip
        else:
            fields[key] = draw(weighted((3, short_texts), (1, json_values), (1, st.booleans())))
    for alias in draw(st.lists(st.sampled_from(SPELLINGS), max_size=2)):
        fields[alias] = draw(short_texts | json_values)
    if fields.get("nameSpace") == "" or (isinstance(fields.get("namespace"), str) and destructive):
        fields["nameSpace"] = namespace  # never write into "default" or another real namespace
        fields.pop("namespace", None)
        fields.pop("NAMESPACE", None)
    headers = {"Authorization": token}
    method = draw(st.sampled_from(["GET", "POST", "POST", "PUT"]))
    body = None
    if method == "GET":
        query = "&".join(f"{encoded(k)}={encoded(v)}" for k, v in fields.items() if not isinstance(v, dict))
        path += "?" + query
    else:
        shape = draw(st.sampled_from(["json"] * 6 + ["bytes", "deep", "array"]))
        if shape == "json":
            body = json.dumps(fields).encode()
        elif shape == "bytes":
            body = draw(st.binary(max_size=200))
        elif shape == "deep":
            body = b'{"item":' + b"[" * 5000 + b"]" * 5000 + b"}"
        else:
            body = json.dumps([fields]).encode()
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "text/plain",
                                                        "application/x-www-form-urlencoded"]))  # fmt: skip
    return {"method": method, "path": path[:3500], "headers": headers, "body": body}


def fingerprint(item: dict[str, Any]) -> str:
    """What a request through the service could change in an object, and the cluster's controllers do not.

    The living cluster's controllers write status, their own ``*kubernetes.io/*`` annotations (the
    Deployment's revision) and a Pod's ``spec.nodeName`` (the scheduler) at their own pace, so a
    resourceVersion would change under the test; the uid, labels, other annotations and the rest of the
    object would not.
    """
    meta = item["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if "kubernetes.io/" not in k}
    body = {k: v for k, v in item.items() if k not in ("metadata", "status")}
    if isinstance(body.get("spec"), dict):
        body["spec"] = {k: v for k, v in body["spec"].items() if k != "nodeName"}
    return json.dumps([meta.get("uid"), meta.get("labels"), annotations, body], sort_keys=True)


def seed_state(cluster: Cluster, namespace: str) -> dict[str, str]:
    """(kind/name -> fingerprint) of the seed objects (not those a controller made, e.g. a ReplicaSet's pods)."""
    state = {}
    for base, plural in [("/api/v1", p) for p in ("configmaps", "secrets", "services", "pods")] + [
        ("/apis/apps/v1", "deployments")
    ]:
        status, listing = api_request(cluster, "GET", f"{base}/namespaces/{namespace}/{plural}")
        assert status == 200, listing
        for item in listing["items"]:
            if not item["metadata"].get("ownerReferences"):
                state[f"{plural}/{item['metadata']['name']}"] = fingerprint(item)
    return state


@pytest.mark.timeout(300)
def test_hostile_requests_to_resource_routes(service: Service, platform_cluster: Cluster, platform_id: str,
                                             namespace: str) -> None:  # fmt: skip
    seeds = [unique("seed"), unique("seed")]
    for name in seeds:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}}
        assert api_request(platform_cluster, "POST", f"/api/v1/namespaces/{namespace}/configmaps", cm)[0] == 201
        dep = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        }
        assert api_request(platform_cluster, "POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", dep)[0] == 201
    before = seed_state(platform_cluster, namespace)
    token = service.token()
    sent: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(req=platform_requests(token, platform_id, namespace, seeds))
    def one(req: dict[str, Any]) -> None:
        status, headers, body = send(service, req)
        check(req, status, headers, body)
        sent.append(req["path"][:40])

    one()
    assert len(sent) >= 150, len(sent)
    after = seed_state(platform_cluster, namespace)
    assert {k: v for k, v in after.items() if k in before} == before
    assert "Traceback" not in service.log()
