"""Request schemas of the resource routes: one per action, defined once, unknown keys ignored.

Keys are first renamed to their canonical spelling (``utils.binding``: Go's case-insensitive JSON
binding plus this port's aliases), then loaded strictly: a wrong JSON type is a 400 before any call.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from utils.binding import spelling_table

# Canonical field -> aliases. Case is ignored on top of these for JSON bodies (Go's encoding/json).
FIELDS: dict[str, tuple[str, ...]] = {
    "clusterId": ("clusterid", "cluster_id"),
    "nameSpace": (),  # "namespace" is the same key, case-insensitively
    "name": (),
    "item": (),
    "deleteList": (),
    "forceDelete": ("force",),
    "labelSelector": (),
    "fieldSelector": (),
    "method": (),
    "autoCreateService": (),
}
SPELLINGS = spelling_table(FIELDS)
# A GET query binds case-sensitively (Gin's form binding): exactly these keys.
QUERY_SPELLINGS: dict[str, str] = {
    "clusterId": "clusterId", "clusterid": "clusterId", "cluster_id": "clusterId",
    "nameSpace": "nameSpace", "namespace": "nameSpace",
    "name": "name", "labelSelector": "labelSelector", "fieldSelector": "fieldSelector", "method": "method",
    "forceDelete": "forceDelete", "ForceDelete": "forceDelete", "force": "forceDelete",
}  # fmt: skip
QUERY_BOOLEANS = {"true": True, "1": True, "false": False, "0": False, "": False}


class Text(fields.String):
    """A string field: ``null`` reads as ``""`` (Go's zero value); any other non-string fails."""

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        """``None`` becomes ``""``."""
        if value is None:
            return ""
        return super().deserialize(value, attr, data, **kwargs)


class StrictBool(fields.Field):
    """A JSON boolean: ``true``/``false`` (``null`` is false); numbers and strings fail, as in Go."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        """Only real booleans."""
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        """``None`` becomes ``False``."""
        if value is None:
            return False
        return super().deserialize(value, attr, data, **kwargs)


class _Base(Schema):
    """The cluster and the namespace, common to every action."""

    class Meta:
        unknown = EXCLUDE

    cluster_id = Text(data_key="clusterId", load_default="", metadata={
        "description": "the registered cluster's id (also `clusterid`, `cluster_id`)"})  # fmt: skip
    namespace = Text(data_key="nameSpace", load_default="", metadata={
        "description": "also `namespace`; empty: all namespaces (list) or `default` (single object)"})  # fmt: skip


class ListRequest(_Base):
    """list: selectors as the API server takes them (`""` = none)."""

    label_selector = Text(data_key="labelSelector", load_default="")
    field_selector = Text(data_key="fieldSelector", load_default="")


class GetRequest(_Base):
    """get: one object; `method=Copy` answers a copy cleaned for add."""

    name = Text(load_default="")
    method = Text(load_default="", metadata={"description": "`Copy`: a copy without identity, status, IPs"})


class WriteRequest(_Base):
    """add / update: the whole object; the route's apiVersion/kind are set, server fields dropped."""

    item = fields.Raw(load_default=None, allow_none=True, metadata={"type": "object"})
    name = Text(load_default="", metadata={"description": "ignored except on node and namespace routes"})
    auto_create_service = StrictBool(data_key="autoCreateService", load_default=False,
                                     metadata={"description": "accepted and ignored for now"})  # fmt: skip


class DeleteRequest(_Base):
    """delete: one name; `forceDelete` (also `ForceDelete`, `force`) sets a zero grace period."""

    name = Text(load_default="")
    force_delete = StrictBool(data_key="forceDelete", load_default=False)


class DeleteListRequest(_Base):
    """deletelist: up to 500 names, deleted 8 at a time."""

    delete_list = fields.List(fields.String(), data_key="deleteList", load_default=list)
    force_delete = StrictBool(data_key="forceDelete", load_default=False)


class NameRequest(_Base):
    """restart, namespace get/add/delete: a name."""

    name = Text(load_default="")


list_request = ListRequest()
get_request = GetRequest()
write_request = WriteRequest()
delete_request = DeleteRequest()
delete_list_request = DeleteListRequest()
name_request = NameRequest()
