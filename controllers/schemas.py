"""Request schemas: one per request body, defined once, unknown keys ignored."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, pre_load, validate

# Secret names are DNS-1123 subdomains: lower-case alphanumerics, '-' and '.', at most 253 characters.
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ID_MESSAGE = ("must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
              "starting and ending with a letter or digit, at most 253 characters")  # fmt: skip
MAX_TEXT = 256  # displayName, city, district: free text shown in a table
ID_ALIASES = ("id", "clusterId", "clusterid", "cluster_id")
USERNAME_ALIASES = ("username", "userName")


def valid_cluster_id(value: str) -> bool:
    """True when ``value`` can be a Secret name."""
    return 0 < len(value) <= 253 and DNS1123_SUBDOMAIN.match(value) is not None


class _Text(fields.String):
    """A free-text field: ``null`` reads as empty (as Go's zero value), other non-strings fail."""

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        """``None`` becomes ``""`` before marshmallow's own null handling would keep it as ``None``."""
        if value is None:
            return ""
        return super().deserialize(value, attr, data, **kwargs)


def _strip_aliases(data: Any, canonical: str, aliases: tuple[str, ...]) -> Any:
    """Copy the first present alias to ``canonical`` (the Vue copies disagree on key names)."""
    if isinstance(data, dict) and data.get(canonical) in (None, ""):
        for alias in aliases:
            if data.get(alias) not in (None, ""):
                data = {**data, canonical: data[alias]}
                break
    return data


class ClusterSchema(Schema):
    """The add/update body; read-only keys a client echoes back (version, status, ...) are ignored."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=253, error=ID_MESSAGE),
            validate.Regexp(DNS1123_SUBDOMAIN, error=ID_MESSAGE),
        ],
    )
    display_name = _Text(data_key="displayName", load_default="", allow_none=True,
                         validate=validate.Length(max=MAX_TEXT))  # fmt: skip
    city = _Text(load_default="", allow_none=True, validate=validate.Length(max=MAX_TEXT))
    district = _Text(load_default="", allow_none=True, validate=validate.Length(max=MAX_TEXT))
    kubeconfig = _Text(load_default="", allow_none=True)

    @pre_load
    def _aliases(self, data: Any, **_: Any) -> Any:
        """Accept ``clusterId`` and friends for ``id``."""
        return _strip_aliases(data, "id", ID_ALIASES[1:])


class LoginSchema(Schema):
    """The login body; ``userName`` is accepted for ``username``."""

    class Meta:
        unknown = EXCLUDE

    username = fields.String(required=True, validate=validate.Length(min=1, max=256))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))

    @pre_load
    def _aliases(self, data: Any, **_: Any) -> Any:
        """Accept ``userName`` for ``username``."""
        return _strip_aliases(data, "username", USERNAME_ALIASES[1:])


cluster_schema = ClusterSchema()
login_schema = LoginSchema()


def describe_errors(messages: Any) -> str:
    """marshmallow's error dict as one line: ``id: Missing data for required field.; city: ...``."""
    if isinstance(messages, dict):
        parts = []
        for key, value in messages.items():
            text = describe_errors(value)
            parts.append(text if key == "_schema" else f"{key}: {text}")
        return "; ".join(parts)
    if isinstance(messages, list):
        return " ".join(describe_errors(m) for m in messages)
    return str(messages)
