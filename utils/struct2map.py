"""Go's ``Struct2Map``: a record to a flat ``dict[str, str]`` keyed by its JSON names."""

from __future__ import annotations

import dataclasses
from typing import Any


def json_name(field: dataclasses.Field) -> str:
    """The wire name of a dataclass field: ``metadata["json"]`` when set, else the field name."""
    return str(field.metadata.get("json", field.name))


def _to_text(value: Any) -> str:
    """Format a value the way Go's ``fmt.Sprintf("%v")`` does for the types records hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def struct_to_map(record: Any) -> dict[str, str]:
    """Every field of a dataclass instance as ``{json name: text}``, in declaration order."""
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError(f"struct_to_map needs a dataclass instance, not {type(record).__name__}")
    return {json_name(f): _to_text(getattr(record, f.name)) for f in dataclasses.fields(record)}
