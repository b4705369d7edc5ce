"""Go's case-insensitive JSON key binding (utils.binding): pure logic."""

from __future__ import annotations

import pytest

from utils.binding import ConflictingKeys, bind_keys, spelling_table

TABLE = spelling_table({"username": ("userName",), "password": (), "id": ("clusterId", "cluster_id")})


def test_any_letter_case_binds_to_the_canonical_key() -> None:
    """``UserName``, ``PASSWORD`` and ``ClusterID`` are the fields Go would bind them to."""
    assert bind_keys({"UserName": "a", "PASSWORD": "b", "ClusterID": "c"}, TABLE) == {
        "username": "a",
        "password": "b",
        "id": "c",
    }


def test_unknown_keys_are_kept_unchanged() -> None:
    """Keys that name no field pass through (the schemas ignore them)."""
    assert bind_keys({"timeStamp": 1, "Extra": None}, TABLE) == {"timeStamp": 1, "Extra": None}


def test_same_value_under_two_spellings_is_accepted() -> None:
    """Two spellings that agree are one field."""
    assert bind_keys({"id": "x", "clusterId": "x"}, TABLE) == {"id": "x"}


def test_an_empty_spelling_gives_way_to_a_value() -> None:
    """``null`` or ``""`` under one spelling does not conflict with a value under another."""
    assert bind_keys({"id": "", "clusterId": "x"}, TABLE) == {"id": "x"}
    assert bind_keys({"clusterId": "x", "id": None}, TABLE) == {"id": "x"}


def test_disagreeing_spellings_are_refused_naming_both() -> None:
    """``username`` and ``UserName`` with different values: the sender's intent is unknown."""
    with pytest.raises(ConflictingKeys) as info:
        bind_keys({"username": "a", "UserName": "b"}, TABLE)
    assert info.value.field == "username"
    assert str(info.value) == "username: conflicting values for username, UserName"


def test_non_string_keys_are_not_folded() -> None:
    """JSON keys are strings; anything else (a dict built in code) is passed through."""
    assert bind_keys({1: "a"}, TABLE) == {1: "a"}  # type: ignore[dict-item]
