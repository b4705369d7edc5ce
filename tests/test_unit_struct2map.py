"""Unit tests of utils/struct2map.py (Go's Struct2Map) and controllers/cluster/records.py (the Secret shape)."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from config.constants import ANNOTATION_KEYS, ITEM_KEYS
from controllers.cluster.records import ClusterRecord, list_item, mark_duplicates, secret_body, stored_kubeconfig
from utils.struct2map import json_name, struct_to_map


@dataclass
class Sample:
    name: str
    display_name: str = field(default="", metadata={"json": "displayName"})
    note: str | None = None
    enabled: bool = True
    disabled: bool = False
    count: int = 0


# --- struct_to_map --------------------------------------------------------------------------------


def test_struct_to_map_uses_json_metadata_names() -> None:
    result = struct_to_map(Sample(name="a", display_name="A"))
    assert "displayName" in result
    assert "display_name" not in result
    assert result["displayName"] == "A"


def test_struct_to_map_field_name_without_metadata() -> None:
    assert struct_to_map(Sample(name="a"))["name"] == "a"


def test_struct_to_map_none_is_empty_string() -> None:
    assert struct_to_map(Sample(name="a", note=None))["note"] == ""


def test_struct_to_map_bools_are_lower_case() -> None:
    result = struct_to_map(Sample(name="a", enabled=True, disabled=False))
    assert result["enabled"] == "true"
    assert result["disabled"] == "false"


def test_struct_to_map_ints_are_decimal_text() -> None:
    assert struct_to_map(Sample(name="a", count=42))["count"] == "42"
    assert struct_to_map(Sample(name="a", count=-7))["count"] == "-7"


def test_struct_to_map_values_are_all_strings() -> None:
    assert all(isinstance(value, str) for value in struct_to_map(Sample(name="a", note=None)).values())


def test_struct_to_map_keeps_declaration_order() -> None:
    assert list(struct_to_map(Sample(name="a"))) == ["name", "displayName", "note", "enabled", "disabled", "count"]


@pytest.mark.parametrize("value", [{"a": 1}, "text", 3, None, object()])
def test_struct_to_map_rejects_non_dataclass(value: Any) -> None:
    with pytest.raises(TypeError):
        struct_to_map(value)


def test_struct_to_map_rejects_dataclass_class() -> None:
    with pytest.raises(TypeError, match="instance"):
        struct_to_map(Sample)


def test_json_name_prefers_metadata() -> None:
    fields = {f.name: f for f in Sample.__dataclass_fields__.values()}
    assert json_name(fields["display_name"]) == "displayName"
    assert json_name(fields["count"]) == "count"


# --- ClusterRecord.annotations ----------------------------------------------------------------------


def _record(**overrides: str) -> ClusterRecord:
    values = {
        "id": "prod-bj-1",
        "display_name": "生产集群",
        "city": "北京",
        "district": "朝阳",
        "version": "v1.36.3",
        "status": "Active",
    }
    values.update(overrides)
    return ClusterRecord(**values)


def test_record_annotations_keys_exactly_go_keys_in_order() -> None:
    assert list(_record().annotations()) == ["id", "displayName", "city", "district", "version", "status"]


def test_record_annotation_keys_match_constants() -> None:
    assert tuple(_record().annotations()) == ANNOTATION_KEYS


def test_record_annotations_values() -> None:
    assert _record().annotations() == {
        "id": "prod-bj-1",
        "displayName": "生产集群",
        "city": "北京",
        "district": "朝阳",
        "version": "v1.36.3",
        "status": "Active",
    }


def test_record_defaults_are_empty_strings() -> None:
    assert ClusterRecord(id="x").annotations() == {
        "id": "x",
        "displayName": "",
        "city": "",
        "district": "",
        "version": "",
        "status": "",
    }


# --- list_item ----------------------------------------------------------------------------------


DOCUMENTED_ITEM_KEYS = set(ITEM_KEYS)  # Go's six, the two mirrors, health fields, duplicateOf


def test_list_item_has_documented_keys_only() -> None:
    item = list_item("prod-bj-1", _record().annotations())
    assert set(item) == DOCUMENTED_ITEM_KEYS


def test_list_item_drops_foreign_annotations() -> None:
    annotations = {
        **_record().annotations(),
        "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Secret"}',
        "owner": "team-a",
    }
    item = list_item("prod-bj-1", annotations)
    assert "kubectl.kubernetes.io/last-applied-configuration" not in item
    assert "owner" not in item


def test_list_item_values_from_annotations() -> None:
    item = list_item("prod-bj-1", _record().annotations())
    assert item["id"] == "prod-bj-1"
    assert item["displayName"] == "生产集群"
    assert item["city"] == "北京"
    assert item["district"] == "朝阳"
    assert item["version"] == "v1.36.3"
    assert item["status"] == "Active"


def test_list_item_mirrors_version_and_status() -> None:
    item = list_item("prod-bj-1", _record(version="v1.30.0", status="InActive").annotations())
    assert item["clusterVersion"] == "v1.30.0"
    assert item["clusterStatus"] == "InActive"


def test_list_item_reads_go_copy_cluster_version() -> None:
    item = list_item("old", {"id": "old", "clusterVersion": "v1.28.1", "status": "Active"})
    assert item["version"] == "v1.28.1"
    assert item["clusterVersion"] == "v1.28.1"


def test_list_item_version_wins_over_cluster_version() -> None:
    item = list_item("c", {"id": "c", "version": "v1.36.3", "clusterVersion": "v1.20.0"})
    assert item["version"] == "v1.36.3"
    assert item["clusterVersion"] == "v1.36.3"


def test_list_item_reads_cluster_status_fallback() -> None:
    item = list_item("old", {"id": "old", "clusterStatus": "Active"})
    assert item["status"] == "Active"
    assert item["clusterStatus"] == "Active"


def test_list_item_id_falls_back_to_secret_name() -> None:
    assert list_item("secret-name", {"displayName": "x"})["id"] == "secret-name"


def test_list_item_empty_id_falls_back_to_secret_name() -> None:
    assert list_item("secret-name", {"id": ""})["id"] == "secret-name"


def test_list_item_annotation_id_wins_over_name() -> None:
    assert list_item("secret-name", {"id": "annotated"})["id"] == "annotated"


def test_list_item_without_annotations() -> None:
    item = list_item("bare", None)
    assert item["id"] == "bare"
    assert set(item) == DOCUMENTED_ITEM_KEYS
    assert all(item[key] == "" for key in DOCUMENTED_ITEM_KEYS - {"id"})


def test_list_item_values_are_strings() -> None:
    assert all(isinstance(value, str) for value in list_item("x", {"id": "x"}).values())


# --- stored_kubeconfig ----------------------------------------------------------------------------


KUBECONFIG = "apiVersion: v1\nkind: Config\ncurrent-context: 集群\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_stored_kubeconfig_decodes_base64() -> None:
    assert stored_kubeconfig({"data": {"kubeconfig": _b64(KUBECONFIG)}}) == KUBECONFIG


def test_stored_kubeconfig_missing_key() -> None:
    assert stored_kubeconfig({"data": {"other": _b64("x")}}) == ""


def test_stored_kubeconfig_missing_data() -> None:
    assert stored_kubeconfig({"metadata": {"name": "x"}}) == ""


def test_stored_kubeconfig_null_data() -> None:
    assert stored_kubeconfig({"data": None}) == ""


def test_stored_kubeconfig_invalid_base64() -> None:
    assert stored_kubeconfig({"data": {"kubeconfig": "not base64!!"}}) == ""


def test_stored_kubeconfig_not_utf8() -> None:
    assert stored_kubeconfig({"data": {"kubeconfig": base64.b64encode(b"\xff\xfe\x00").decode()}}) == ""


# --- secret_body ----------------------------------------------------------------------------------


LABEL = "kubeasy.com/cluster.metadata"


def test_secret_body_shape() -> None:
    body = secret_body(_record(), KUBECONFIG, "krm", LABEL)
    assert body["apiVersion"] == "v1"
    assert body["kind"] == "Secret"
    assert body["type"] == "Opaque"
    assert body["metadata"]["name"] == "prod-bj-1"
    assert body["metadata"]["namespace"] == "krm"
    assert body["metadata"]["labels"] == {LABEL: "true"}
    assert body["metadata"]["annotations"] == _record().annotations()
    assert body["stringData"] == {"kubeconfig": KUBECONFIG}


def test_secret_body_new_has_no_data_or_resource_version() -> None:
    body = secret_body(_record(), KUBECONFIG, "krm", LABEL)
    assert "data" not in body
    assert "resourceVersion" not in body["metadata"]


def test_secret_body_uses_configured_label() -> None:
    body = secret_body(_record(), KUBECONFIG, "krm", "example.com/cluster")
    assert body["metadata"]["labels"] == {"example.com/cluster": "true"}


def _existing() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "prod-bj-1",
            "namespace": "krm",
            "resourceVersion": "4711",
            "labels": {LABEL: "true", "team": "infra"},
            "annotations": {
                "id": "prod-bj-1",
                "displayName": "old name",
                "version": "v1.20.0",
                "note": "keep me",
            },
        },
        "type": "Opaque",
        "data": {"kubeconfig": _b64("old: config\n"), "extra": _b64("keep")},
    }


def test_secret_body_update_keeps_foreign_labels() -> None:
    body = secret_body(_record(), KUBECONFIG, "krm", LABEL, _existing())
    assert body["metadata"]["labels"] == {LABEL: "true", "team": "infra"}


def test_secret_body_update_keeps_foreign_annotations() -> None:
    body = secret_body(_record(), KUBECONFIG, "krm", LABEL, _existing())
    assert body["metadata"]["annotations"]["note"] == "keep me"


def test_secret_body_update_overwrites_record_annotations() -> None:
    body = secret_body(_record(), KUBECONFIG, "krm", LABEL, _existing())
    annotations = body["metadata"]["annotations"]
    assert annotations["displayName"] == "生产集群"
    assert annotations["version"] == "v1.36.3"
    assert annotations["status"] == "Active"


def test_secret_body_update_keeps_foreign_data_keys() -> None:
    body = secret_body(_record(), KUBECONFIG, "krm", LABEL, _existing())
    assert body["data"] == {"extra": _b64("keep")}


def test_secret_body_update_drops_old_data_kubeconfig() -> None:
    body = secret_body(_record(), KUBECONFIG, "krm", LABEL, _existing())
    assert "kubeconfig" not in body.get("data", {})
    assert body["stringData"] == {"kubeconfig": KUBECONFIG}


def test_secret_body_update_without_other_data_has_no_data() -> None:
    existing = _existing()
    existing["data"] = {"kubeconfig": _b64("old: config\n")}
    body = secret_body(_record(), KUBECONFIG, "krm", LABEL, existing)
    assert "data" not in body


def test_secret_body_update_carries_resource_version() -> None:
    body = secret_body(_record(), KUBECONFIG, "krm", LABEL, _existing())
    assert body["metadata"]["resourceVersion"] == "4711"


def test_secret_body_update_does_not_modify_existing() -> None:
    existing = _existing()
    before = copy.deepcopy(existing)
    secret_body(_record(), KUBECONFIG, "krm", LABEL, existing)
    assert existing == before


def test_secret_body_update_keeps_existing_type() -> None:
    existing = _existing()
    existing["type"] = "example.com/cluster"
    assert secret_body(_record(), KUBECONFIG, "krm", LABEL, existing)["type"] == "example.com/cluster"


def test_duplicates_name_each_other() -> None:
    items = [{"id": i, "clusterUID": u, "duplicateOf": ""} for i, u in (("a", "x"), ("b", "x"), ("c", ""), ("d", "y"))]
    assert [i["duplicateOf"] for i in mark_duplicates(items)] == ["b", "a", "", ""]


def test_duplicates_of_a_cluster_under_many_ids_are_capped() -> None:
    items = [{"id": f"c{n:03d}", "clusterUID": "same", "duplicateOf": ""} for n in range(300)]
    first, last = mark_duplicates(items)[0], items[-1]
    assert first["duplicateOf"] == "c001,c002,c003,c004,c005,+294"
    assert last["duplicateOf"] == "c000,c001,c002,c003,c004,+294"
