"""Go-compatible binding of JSON keys: any letter case of a known field, plus declared aliases.

Go's ``encoding/json`` matches object keys to struct fields case-insensitively, so bodies written for
the Go service send ``UserName``, ``PassWord``, ``kubeConfig`` or ``ForceDelete``. ``bind_keys`` renames
every spelling of a known field to its canonical name. Where Go silently keeps the last of two
spellings, this port refuses a body whose spellings of one field disagree: which one the sender meant
cannot be known, and guessing could act on the wrong object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ConflictingKeys(ValueError):
    """Two spellings of one field carry different values."""

    def __init__(self, field: str, spellings: list[str]) -> None:
        """Name the field and the keys that disagree."""
        self.field = field
        self.spellings = spellings
        super().__init__(f"{field}: conflicting values for {', '.join(spellings)}")


def _empty(value: Any) -> bool:
    """``null`` and ``""`` count as absent (Go's zero value), so they never conflict with a value."""
    return value is None or value == ""


def spelling_table(fields: Mapping[str, Iterable[str]] | Iterable[str]) -> dict[str, str]:
    """Case-folded spelling -> canonical name, for canonical names and their aliases."""
    table: dict[str, str] = {}
    items = fields.items() if isinstance(fields, Mapping) else ((name, ()) for name in fields)
    for canonical, aliases in items:
        for spelling in (canonical, *aliases):
            table[spelling.casefold()] = canonical
    return table


def bind_keys(body: Mapping[str, Any], table: Mapping[str, str]) -> dict[str, Any]:
    """``body`` with every known spelling renamed to its canonical key (see ``spelling_table``).

    Unknown keys are kept as they are. A field given under several spellings takes the one value they
    share (empty ones ignored); different non-empty values raise ``ConflictingKeys``.
    """
    out: dict[str, Any] = {}
    seen: dict[str, list[str]] = {}
    for key, value in body.items():
        canonical = table.get(key.casefold()) if isinstance(key, str) else None
        if canonical is None:
            if key not in out:
                out[key] = value
            continue
        seen.setdefault(canonical, []).append(key)
        if canonical not in out or _empty(out[canonical]):
            out[canonical] = value
        elif not _empty(value) and value != out[canonical]:
            raise ConflictingKeys(canonical, seen[canonical])
    return out
