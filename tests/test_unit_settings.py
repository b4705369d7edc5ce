"""Unit tests of config/settings.py: Settings.from_env with an explicit env dict (no process environment)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.constants import DEFAULT_CLUSTER_LABEL
from config.settings import DEFAULT_METADATA_KUBECONFIG, Settings, SettingsError, parse_listen
from controllers.cluster import kubeconfig_policy

EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - what Go's ":8080" listens on; nothing binds here


def test_defaults_from_empty_env() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port) == (EVERY_INTERFACE, 8080)
    assert settings.log_level == "DEBUG"
    assert settings.jwt_sign_key is None
    assert settings.jwt_expire_minutes == 120
    assert settings.username == "admin"
    assert settings.password is None
    assert settings.metadata_namespace == "krm"
    assert settings.in_cluster is False
    assert settings.metadata_kubeconfig == DEFAULT_METADATA_KUBECONFIG
    assert settings.cluster_label == DEFAULT_CLUSTER_LABEL
    assert settings.kubeconfig_deny_cidrs == ()
    assert settings.kubeconfig_allow_cidrs == ()
    assert settings.kubeconfig_allow_exec == ()


def test_empty_env_does_not_read_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METADATA_NAMESPACE", "from-process")
    assert Settings.from_env({}).metadata_namespace == "krm"


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("8080", EVERY_INTERFACE, 8080),
        (":8080", EVERY_INTERFACE, 8080),
        ("127.0.0.1:9000", "127.0.0.1", 9000),
        ("[::1]:9000", "::1", 9000),
        (" :8081 ", EVERY_INTERFACE, 8081),
    ],
)
def test_port_accepted_forms(value: str, host: str, port: int) -> None:
    settings = Settings.from_env({"PORT": value})
    assert (settings.host, settings.port) == (host, port)


@pytest.mark.parametrize("value", ["abc", ":0", "70000", "127.0.0.1:", "", "65536", "1_000", "+80", "::1"])
def test_port_bad_value_raises_naming_port(value: str) -> None:
    with pytest.raises(SettingsError, match="PORT"):
        Settings.from_env({"PORT": value})


def test_parse_listen_bounds() -> None:
    assert parse_listen("1") == (EVERY_INTERFACE, 1)
    assert parse_listen("65535") == (EVERY_INTERFACE, 65535)


def test_settings_error_is_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_jwt_sign_key_read() -> None:
    assert Settings.from_env({"JWT_SIGN_KEY": "k1"}).jwt_sign_key == "k1"


def test_jwt_secret_alias() -> None:
    assert Settings.from_env({"JWT_SECRET": "k2"}).jwt_sign_key == "k2"


def test_jwt_sign_key_wins_over_alias() -> None:
    assert Settings.from_env({"JWT_SIGN_KEY": "k1", "JWT_SECRET": "k2"}).jwt_sign_key == "k1"


def test_empty_jwt_sign_key_falls_back_to_alias() -> None:
    assert Settings.from_env({"JWT_SIGN_KEY": "", "JWT_SECRET": "k2"}).jwt_sign_key == "k2"


def test_admin_user_name_alias() -> None:
    assert Settings.from_env({"ADMIN_USER_NAME": "root"}).username == "root"


def test_username_wins_over_alias() -> None:
    assert Settings.from_env({"USERNAME": "u1", "ADMIN_USER_NAME": "u2"}).username == "u1"


def test_admin_password_alias() -> None:
    assert Settings.from_env({"ADMIN_PASSWORD": "p2"}).password == "p2"


def test_password_wins_over_alias() -> None:
    assert Settings.from_env({"PASSWORD": "p1", "ADMIN_PASSWORD": "p2"}).password == "p1"


@pytest.mark.parametrize("value", ["debug", "DEBUG", " Debug "])
def test_log_level_debug(value: str) -> None:
    assert Settings.from_env({"LOG_LEVEL": value}).log_level == "DEBUG"


@pytest.mark.parametrize("value", ["info", "warning", "error", "anything", ""])
def test_log_level_other_is_info(value: str) -> None:
    assert Settings.from_env({"LOG_LEVEL": value}).log_level == "INFO"


def test_jwt_expire_time_read() -> None:
    assert Settings.from_env({"JWT_EXPIRE_TIME": "30"}).jwt_expire_minutes == 30


def test_jwt_expire_time_blank_is_default() -> None:
    assert Settings.from_env({"JWT_EXPIRE_TIME": "  "}).jwt_expire_minutes == 120


@pytest.mark.parametrize("value", ["abc", "1.5", "2h"])
def test_jwt_expire_time_not_integer_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match="JWT_EXPIRE_TIME"):
        Settings.from_env({"JWT_EXPIRE_TIME": value})


@pytest.mark.parametrize("value", ["0", "-5"])
def test_jwt_expire_time_below_one_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match=r"JWT_EXPIRE_TIME.*at least 1"):
        Settings.from_env({"JWT_EXPIRE_TIME": value})


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", " True "])
def test_in_cluster_true(value: str) -> None:
    assert Settings.from_env({"IN_CLUSTER": value}).in_cluster is True


@pytest.mark.parametrize("value", ["false", "False", "0", "no", ""])
def test_in_cluster_false(value: str) -> None:
    assert Settings.from_env({"IN_CLUSTER": value}).in_cluster is False


@pytest.mark.parametrize("value", ["maybe", "on", "2"])
def test_in_cluster_garbage_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match="IN_CLUSTER"):
        Settings.from_env({"IN_CLUSTER": value})


def test_metadata_namespace_read() -> None:
    assert Settings.from_env({"METADATA_NAMESPACE": "krm-prod"}).metadata_namespace == "krm-prod"


@pytest.mark.parametrize("value", ["Krm", "krm_ns", "-krm", "krm-", "a.b", "", "a" * 64])
def test_metadata_namespace_invalid_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match="METADATA_NAMESPACE"):
        Settings.from_env({"METADATA_NAMESPACE": value})


def test_metadata_namespace_63_chars_accepted() -> None:
    assert Settings.from_env({"METADATA_NAMESPACE": "a" * 63}).metadata_namespace == "a" * 63


@pytest.mark.parametrize("value", ["example.com/cluster", "cluster", "a.b.c/Name_1.x"])
def test_cluster_label_key_valid(value: str) -> None:
    assert Settings.from_env({"CLUSTER_LABEL_KEY": value}).cluster_label == value


@pytest.mark.parametrize("value", ["bad key", "/name", "Example.com/name", "example.com/", "a/b/c", "-x", ""])
def test_cluster_label_key_invalid_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match="CLUSTER_LABEL_KEY"):
        Settings.from_env({"CLUSTER_LABEL_KEY": value})


def test_cluster_label_key_name_over_63_chars_rejected() -> None:
    with pytest.raises(SettingsError, match="CLUSTER_LABEL_KEY"):
        Settings.from_env({"CLUSTER_LABEL_KEY": "example.com/" + "a" * 64})


def _subdomain(length: int) -> str:
    """A valid DNS-1123 subdomain of exactly ``length`` characters (labels of at most 63)."""
    labels = []
    remaining = length
    while remaining > 0:
        size = min(63, remaining)
        if remaining - size == 1:  # never leave a single character for "." alone
            size -= 1
        labels.append("a" * size)
        remaining -= size + 1
    text = ".".join(labels)
    assert len(text) == length
    return text


def test_cluster_label_key_longest_valid_accepted() -> None:
    # Kubernetes: prefix a DNS-1123 subdomain of at most 253 characters, name at most 63: 317 in all.
    key = _subdomain(253) + "/" + "n" * 63
    assert len(key) == 317
    assert Settings.from_env({"CLUSTER_LABEL_KEY": key}).cluster_label == key


def test_cluster_label_key_prefix_over_253_chars_rejected() -> None:
    # The prefix alone is over Kubernetes' 253-character limit, though the whole key is short.
    key = _subdomain(260) + "/x"
    with pytest.raises(SettingsError, match="CLUSTER_LABEL_KEY"):
        Settings.from_env({"CLUSTER_LABEL_KEY": key})


def test_kubeconfig_deny_cidrs_parsed_as_list() -> None:
    settings = Settings.from_env({"KUBECONFIG_DENY_CIDRS": " 10.0.0.0/8, ,fd00::/8 ,"})
    assert settings.kubeconfig_deny_cidrs == ("10.0.0.0/8", "fd00::/8")


@pytest.mark.parametrize("value", ["not-a-cidr", "10.0.0.0/33", "10.0.0.1/8", "300.0.0.0/8"])
def test_kubeconfig_deny_cidrs_bad_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match="KUBECONFIG_DENY_CIDRS"):
        Settings.from_env({"KUBECONFIG_DENY_CIDRS": value})


def test_kubeconfig_allow_cidrs_bad_rejected() -> None:
    with pytest.raises(SettingsError, match="KUBECONFIG_ALLOW_CIDRS"):
        Settings.from_env({"KUBECONFIG_ALLOW_CIDRS": "10.0.0.0/8,nope"})


def test_kubeconfig_policy_uses_configured_lists() -> None:
    settings = Settings.from_env({"KUBECONFIG_DENY_CIDRS": "127.0.0.2/32", "KUBECONFIG_ALLOW_CIDRS": "169.254.1.1/32"})
    policy = kubeconfig_policy(settings)
    assert not policy.address_allowed("127.0.0.2")
    assert policy.address_allowed("169.254.1.1")
    assert not policy.address_allowed("169.254.169.254")


def test_kubeconfig_allow_exec_parsed() -> None:
    settings = Settings.from_env({"KUBECONFIG_ALLOW_EXEC": "aws,gke-gcloud-auth-plugin"})
    assert kubeconfig_policy(settings).allowed_exec_commands == frozenset({"aws", "gke-gcloud-auth-plugin"})


@pytest.mark.parametrize("name", ["CLUSTER_CONNECT_TIMEOUT", "CLUSTER_READ_TIMEOUT", "BOOTSTRAP_MAX_BACKOFF"])
@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_seconds_bad_value_rejected(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_timeouts_read() -> None:
    settings = Settings.from_env({"CLUSTER_CONNECT_TIMEOUT": "0.5", "METADATA_READ_TIMEOUT": "2"})
    assert settings.target_connect_timeout == 0.5
    assert settings.metadata_read_timeout == 2.0


def test_max_body_bytes_below_minimum_rejected() -> None:
    with pytest.raises(SettingsError, match="MAX_BODY_BYTES"):
        Settings.from_env({"MAX_BODY_BYTES": "100"})


def test_metadata_kubeconfig_override() -> None:
    assert Settings.from_env({"METADATA_KUBECONFIG": "/tmp/x.kubeconfig"}).metadata_kubeconfig == Path(
        "/tmp/x.kubeconfig"
    )


def test_settings_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


SECRET_ENV = {
    "JWT_SIGN_KEY": "sign-key-value-4f9a1c",
    "PASSWORD": "password-value-8b2e7d",
    "USERNAME": "operator",
}


def test_safe_summary_never_contains_password_or_key() -> None:
    summary = Settings.from_env(SECRET_ENV).safe_summary()
    text = json.dumps(summary, ensure_ascii=False) + repr(summary)
    assert "sign-key-value-4f9a1c" not in text
    assert "password-value-8b2e7d" not in text


def test_safe_summary_says_configured() -> None:
    summary = Settings.from_env(SECRET_ENV).safe_summary()
    assert summary["password"] == "configured"
    assert summary["jwtSignKey"] == "configured"
    assert summary["username"] == "operator"


def test_safe_summary_says_generated_when_unset() -> None:
    summary = Settings.from_env({}).safe_summary()
    assert summary["password"] == "generated (Secret)"
    assert summary["jwtSignKey"] == "generated (Secret)"


def test_safe_summary_aliases_not_leaked() -> None:
    summary = Settings.from_env(
        {"JWT_SECRET": "alias-key-value-77", "ADMIN_PASSWORD": "alias-pw-value-88"}
    ).safe_summary()
    text = json.dumps(summary, ensure_ascii=False)
    assert "alias-key-value-77" not in text
    assert "alias-pw-value-88" not in text


def test_safe_summary_in_cluster_has_no_kubeconfig_path() -> None:
    assert Settings.from_env({"IN_CLUSTER": "true"}).safe_summary()["metadataKubeconfig"] is None


def test_repr_hides_password_and_key() -> None:
    text = repr(Settings.from_env(SECRET_ENV))
    assert "sign-key-value-4f9a1c" not in text
    assert "password-value-8b2e7d" not in text


def test_cluster_deadline_defaults_inside_the_frontend_budget() -> None:
    assert Settings.from_env({}).target_deadline == 1.5
    assert Settings.from_env({"CLUSTER_DEADLINE": "0.8"}).target_deadline == 0.8


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_cluster_deadline_bad_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match="CLUSTER_DEADLINE"):
        Settings.from_env({"CLUSTER_DEADLINE": value})


def test_kubeconfig_host_aliases_reach_the_policy() -> None:
    settings = Settings.from_env({"KUBECONFIG_HOST_ALIASES": "k8s.test.invalid=127.0.0.1, a.example=::1"})
    assert kubeconfig_policy(settings).host_aliases == (("k8s.test.invalid", "127.0.0.1"), ("a.example", "::1"))


@pytest.mark.parametrize("value", ["k8s.test.invalid", "k8s.test.invalid=nowhere", "=10.0.0.1"])
def test_kubeconfig_host_aliases_bad_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match="KUBECONFIG_HOST_ALIASES"):
        Settings.from_env({"KUBECONFIG_HOST_ALIASES": value})


def test_probe_shards_default_and_bounds() -> None:
    assert Settings.from_env({}).probe_shards == 16
    assert Settings.from_env({"PROBE_SHARDS": "1"}).probe_shards == 1
    assert Settings.from_env({"PROBE_SHARDS": "256"}).probe_shards == 256
    for value in ("0", "-3", "257", "four", "1.5"):
        with pytest.raises(SettingsError, match="PROBE_SHARDS"):
            Settings.from_env({"PROBE_SHARDS": value})


def test_probe_processes_default_and_bounds() -> None:
    assert Settings.from_env({}).probe_processes == 1
    assert Settings.from_env({"PROBE_PROCESSES": "2"}).probe_processes == 2
    assert Settings.from_env({"PROBE_PROCESSES": "16"}).probe_processes == 16  # one shard each
    for env in ({"PROBE_PROCESSES": "0"}, {"PROBE_PROCESSES": "two"}, {"PROBE_PROCESSES": "17"},
                {"PROBE_PROCESSES": "3", "PROBE_SHARDS": "2"}):  # fmt: skip
        with pytest.raises(SettingsError, match="PROBE_PROCESSES"):
            Settings.from_env(env)
