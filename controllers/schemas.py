"""Request schemas: one per request body, defined once, unknown keys ignored, keys bound as Go binds them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from utils.binding import ConflictingKeys, bind_keys, spelling_table

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


class BoundSchema(Schema):
    """A request body bound like Go's ``encoding/json``: any letter case of a field's key, plus aliases.

    Subclasses list extra spellings in ``aliases`` (canonical key -> alias keys). Two spellings of one
    field with different values are a ``ValidationError`` naming both (see ``utils.binding``).
    """

    class Meta:
        unknown = EXCLUDE

    aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build the spelling table once per schema instance, from the declared fields' keys."""
        super().__init__(*args, **kwargs)
        keys = [f.data_key or name for name, f in self.load_fields.items()]
        self._spellings = spelling_table({key: self.aliases.get(key, ()) for key in keys})

    @pre_load
    def _bind_keys(self, data: Any, **_: Any) -> Any:
        """Rename every known spelling to the field's key; non-objects are left to marshmallow's type error."""
        if not isinstance(data, Mapping):
            return data
        try:
            return bind_keys(data, self._spellings)
        except ConflictingKeys as exc:
            raise ValidationError(str(exc)) from None


class ClusterSchema(BoundSchema):
    """The add/update body; read-only keys a client echoes back (version, status, ...) are ignored."""

    aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {"id": ID_ALIASES[1:]}

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


class LoginSchema(BoundSchema):
    """The login body; ``userName`` (like any letter case) is accepted for ``username``."""

    username = fields.String(required=True, validate=validate.Length(min=1, max=256))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


_ID_SPELLINGS = spelling_table({"id": ID_ALIASES[1:]})


def bind_id_keys(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with every spelling of the cluster id renamed to ``id`` (delete by JSON body).

    Raises ``ConflictingKeys`` when two spellings carry different ids.
    """
    return bind_keys(body, _ID_SPELLINGS)


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
