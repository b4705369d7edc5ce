"""Unit tests of controllers/auth (credentials, Authorization header) and controllers/schemas.py."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from marshmallow import ValidationError

from config.constants import MSG_NO_TOKEN
from controllers.auth import credential_matches, token_from_header
from controllers.errors import AuthFailed
from controllers.schemas import ID_MESSAGE, cluster_schema, describe_errors, login_schema, valid_cluster_id


def md5_hex(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()


# --- credential_matches -----------------------------------------------------------------------------


def test_credential_plain_equal() -> None:
    assert credential_matches("s3cret", "s3cret") is True


def test_credential_upper_md5_configured_plain_submitted() -> None:
    assert credential_matches("s3cret", md5_hex("s3cret").upper()) is True


def test_credential_lower_md5_configured_plain_submitted() -> None:
    assert credential_matches("s3cret", md5_hex("s3cret")) is True


def test_credential_lower_md5_submitted_plain_configured() -> None:
    assert credential_matches(md5_hex("s3cret"), "s3cret") is True


def test_credential_upper_md5_submitted_plain_configured() -> None:
    assert credential_matches(md5_hex("s3cret").upper(), "s3cret") is True


def test_credential_same_md5_both_sides() -> None:
    assert credential_matches(md5_hex("s3cret").upper(), md5_hex("s3cret").upper()) is True


def test_credential_wrong_plain() -> None:
    assert credential_matches("wrong", "s3cret") is False


def test_credential_wrong_md5_submitted() -> None:
    assert credential_matches(md5_hex("wrong"), "s3cret") is False


def test_credential_wrong_against_md5_configured() -> None:
    assert credential_matches("wrong", md5_hex("s3cret").upper()) is False


def test_credential_case_matters_for_plain() -> None:
    assert credential_matches("S3CRET", "s3cret") is False


def test_credential_empty_submitted() -> None:
    assert credential_matches("", "s3cret") is False


def test_credential_non_ascii() -> None:
    assert credential_matches("密码", "密码") is True
    assert credential_matches("密码", md5_hex("密码").upper()) is True


# --- token_from_header ------------------------------------------------------------------------------


def test_token_raw() -> None:
    assert token_from_header("abc.def.ghi") == "abc.def.ghi"


def test_token_bearer() -> None:
    assert token_from_header("Bearer abc.def.ghi") == "abc.def.ghi"


def test_token_bearer_lower_case() -> None:
    assert token_from_header("bearer abc.def.ghi") == "abc.def.ghi"


def test_token_surrounding_whitespace_stripped() -> None:
    assert token_from_header("  Bearer   abc.def.ghi  ") == "abc.def.ghi"


@pytest.mark.parametrize("value", ["", None, "Bearer ", "Bearer", "bearer   ", "   "])
def test_token_missing_raises_no_token(value: str | None) -> None:
    with pytest.raises(AuthFailed) as info:
        token_from_header(value)
    assert info.value.message == MSG_NO_TOKEN
    assert info.value.message == "请求未携带token,请登录后尝试"


def test_token_missing_is_status_401() -> None:
    with pytest.raises(AuthFailed) as info:
        token_from_header(None)
    assert info.value.status == 401


# --- cluster_schema ---------------------------------------------------------------------------------


BODY = {
    "id": "prod-bj-1",
    "displayName": "生产集群",
    "city": "北京",
    "district": "朝阳",
    "kubeconfig": "apiVersion: v1\nkind: Config\n",
}


def load_cluster(**changes: Any) -> dict[str, Any]:
    body = {**BODY, **changes}
    return cluster_schema.load({k: v for k, v in body.items() if v is not ...})


def cluster_errors(**changes: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as info:
        load_cluster(**changes)
    assert isinstance(info.value.messages, dict)
    return info.value.messages


def test_cluster_body_loaded() -> None:
    assert load_cluster() == {
        "id": "prod-bj-1",
        "display_name": "生产集群",
        "city": "北京",
        "district": "朝阳",
        "kubeconfig": "apiVersion: v1\nkind: Config\n",
    }


def test_cluster_echoed_item_keys_ignored() -> None:
    item = {
        **BODY,
        "version": "v1.36.3",
        "status": "Active",
        "clusterVersion": "v1.36.3",
        "clusterStatus": "Active",
        "createdAt": "2026-01-02",
    }
    assert cluster_schema.load(item) == load_cluster()


def test_cluster_optional_fields_default_empty() -> None:
    assert cluster_schema.load({"id": "x"}) == {
        "id": "x",
        "display_name": "",
        "city": "",
        "district": "",
        "kubeconfig": "",
    }


@pytest.mark.parametrize("alias", ["clusterId", "clusterid", "cluster_id"])
def test_cluster_id_aliases(alias: str) -> None:
    body = {k: v for k, v in BODY.items() if k != "id"}
    assert cluster_schema.load({**body, alias: "from-alias"})["id"] == "from-alias"


def test_cluster_id_and_a_disagreeing_alias_are_refused() -> None:
    """Go would keep one of them silently; which id was meant is unknown, so the body is a bind error."""
    with pytest.raises(ValidationError, match="conflicting values for id, clusterId"):
        cluster_schema.load({**BODY, "clusterId": "other"})


def test_cluster_empty_id_uses_alias() -> None:
    assert cluster_schema.load({**BODY, "id": "", "clusterId": "from-alias"})["id"] == "from-alias"


def test_cluster_missing_id_rejected() -> None:
    assert "id" in cluster_errors(id=...)


def test_cluster_null_display_name_is_empty() -> None:
    assert load_cluster(displayName=None)["display_name"] == ""


def test_cluster_null_city_is_empty() -> None:
    assert load_cluster(city=None)["city"] == ""


def test_cluster_null_kubeconfig_is_empty() -> None:
    assert load_cluster(kubeconfig=None)["kubeconfig"] == ""


def test_cluster_id_as_int_rejected() -> None:
    assert "id" in cluster_errors(id=123)


def test_cluster_city_as_list_rejected() -> None:
    assert "city" in cluster_errors(city=["北京"])


def test_cluster_display_name_as_object_rejected() -> None:
    assert "displayName" in cluster_errors(displayName={"zh": "x"})


def test_cluster_kubeconfig_as_object_rejected() -> None:
    assert "kubeconfig" in cluster_errors(kubeconfig={"apiVersion": "v1"})


@pytest.mark.parametrize(
    "cluster_id",
    ["Prod", "prod_bj", "a" * 254, "-prod", "prod-", ".prod", "prod..bj", "prod bj", "生产", "prod/bj"],
)
def test_cluster_invalid_id_rejected(cluster_id: str) -> None:
    errors = cluster_errors(id=cluster_id)
    assert ID_MESSAGE in errors["id"]


def test_cluster_253_char_id_accepted() -> None:
    assert load_cluster(id="a" * 253)["id"] == "a" * 253


@pytest.mark.parametrize("cluster_id", ["a", "0", "prod.bj-1", "1-2-3", "a.b.c"])
def test_cluster_valid_id_accepted(cluster_id: str) -> None:
    assert load_cluster(id=cluster_id)["id"] == cluster_id


def test_valid_cluster_id_function() -> None:
    assert valid_cluster_id("prod-bj-1") is True
    assert valid_cluster_id("") is False
    assert valid_cluster_id("a" * 254) is False


def test_cluster_display_name_256_chars_accepted() -> None:
    assert load_cluster(displayName="名" * 256)["display_name"] == "名" * 256


def test_cluster_display_name_over_256_chars_rejected() -> None:
    assert "displayName" in cluster_errors(displayName="名" * 257)


def test_cluster_city_over_256_chars_rejected() -> None:
    assert "city" in cluster_errors(city="x" * 257)


def test_cluster_body_not_a_mapping_rejected() -> None:
    with pytest.raises(ValidationError):
        cluster_schema.load(["prod-bj-1"])  # type: ignore[list-item]


# --- describe_errors --------------------------------------------------------------------------------


def test_describe_errors_field_messages() -> None:
    messages = {"id": ["Missing data for required field."], "city": ["Not a valid string."]}
    assert describe_errors(messages) == "id: Missing data for required field.; city: Not a valid string."


def test_describe_errors_schema_key_has_no_prefix() -> None:
    assert describe_errors({"_schema": ["Invalid input type."]}) == "Invalid input type."


def test_describe_errors_several_messages_joined_by_space() -> None:
    assert describe_errors({"id": ["first.", "second."]}) == "id: first. second."


def test_describe_errors_nested() -> None:
    assert describe_errors({"a": {"b": ["bad."]}}) == "a: b: bad."


def test_describe_errors_plain_string() -> None:
    assert describe_errors("just text") == "just text"


def test_describe_errors_of_real_validation_error() -> None:
    text = describe_errors(cluster_errors(id=123, city=["x"]))
    assert "id: Not a valid string." in text
    assert "city: Not a valid string." in text


def test_describe_errors_of_missing_id() -> None:
    assert describe_errors(cluster_errors(id=...)) == "id: Missing data for required field."


# --- login_schema -----------------------------------------------------------------------------------


def test_login_username() -> None:
    assert login_schema.load({"username": "admin", "password": "pw"}) == {"username": "admin", "password": "pw"}


def test_login_user_name_alias() -> None:
    assert login_schema.load({"userName": "admin", "password": "pw"}) == {"username": "admin", "password": "pw"}


def test_login_username_and_a_disagreeing_alias_are_refused() -> None:
    with pytest.raises(ValidationError, match="conflicting values for username, userName"):
        login_schema.load({"username": "a", "userName": "b", "password": "pw"})


def test_login_unknown_keys_ignored() -> None:
    assert login_schema.load({"username": "admin", "password": "pw", "captcha": "1234"}) == {
        "username": "admin",
        "password": "pw",
    }


@pytest.mark.parametrize(
    "body",
    [{"password": "pw"}, {"username": "admin"}, {"username": "", "password": "pw"}, {"username": "a", "password": ""}],
)
def test_login_missing_or_empty_rejected(body: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        login_schema.load(body)


def test_login_password_as_int_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        login_schema.load({"username": "admin", "password": 123456})
    assert "password" in info.value.messages
