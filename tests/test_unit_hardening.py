"""Unit tests of the hardening pieces that need no server: limiter, revocation keys, CORS, exec env, settings.

Addresses here are IP literals that are never contacted.
"""

from __future__ import annotations

import jwt
import pytest

from config.settings import Settings, SettingsError
from controllers.auth.limiter import LoginLimiter, lockout_message
from controllers.auth.revocation import NAME_PREFIX, _expiry, record_name, token_key
from controllers.errors import AuthFailed
from utils.kubeconfig import KubeconfigPolicy, KubeconfigRejected, parse_kubeconfig


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- LoginLimiter -----------------------------------------------------------------------------------


def test_limiter_locks_after_max_failures() -> None:
    clock = Clock()
    limiter = LoginLimiter(3, 60, clock=clock)
    assert limiter.failed("1.2.3.4", "admin") == 0
    assert limiter.failed("1.2.3.4", "admin") == 0
    assert limiter.failed("1.2.3.4", "admin") == 60
    with pytest.raises(AuthFailed) as info:
        limiter.check("1.2.3.4", "admin")
    assert info.value.status == 401
    assert "60 秒" in info.value.message


def test_limiter_failures_outside_the_window_are_forgotten() -> None:
    clock = Clock()
    limiter = LoginLimiter(3, 60, clock=clock)
    limiter.failed("c", "u")
    limiter.failed("c", "u")
    clock.now += 61
    assert limiter.failed("c", "u") == 0
    limiter.check("c", "u")


def test_limiter_lockout_ends() -> None:
    clock = Clock()
    limiter = LoginLimiter(1, 30, clock=clock)
    limiter.failed("c", "u")
    assert limiter.locked_for("c", "u") == 30
    clock.now += 30
    assert limiter.locked_for("c", "u") == 0
    limiter.check("c", "u")


def test_limiter_keys_are_client_and_username() -> None:
    limiter = LoginLimiter(1, 30, clock=Clock())
    limiter.failed("c", "u")
    limiter.check("c", "other")
    limiter.check("other", "u")


def test_limiter_success_resets() -> None:
    limiter = LoginLimiter(2, 30, clock=Clock())
    limiter.failed("c", "u")
    limiter.succeeded("c", "u")
    assert limiter.failed("c", "u") == 0


def test_limiter_disabled_with_zero() -> None:
    limiter = LoginLimiter(0, 30, clock=Clock())
    for _ in range(100):
        assert limiter.failed("c", "u") == 0
    limiter.check("c", "u")


def test_limiter_memory_is_bounded() -> None:
    limiter = LoginLimiter(5, 30, clock=Clock(), max_tracked=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}", "u")
    assert len(limiter._attempts) == 100


def test_lockout_message_rounds_up() -> None:
    assert lockout_message(0.2) == "登录失败次数过多,请稍后再试 (请 1 秒后重试)"


# --- revocation keys --------------------------------------------------------------------------------

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_token_key_is_a_sha256_hex_and_names_a_valid_secret() -> None:
    key = token_key(jwt.encode({"sub": "admin"}, "k" * 40, algorithm="HS256"))
    assert len(key) == 64 and int(key, 16) >= 0
    assert len(record_name(key)) <= 253 and record_name(key).startswith(NAME_PREFIX)


def test_token_key_ignores_spare_bits_of_the_signature() -> None:
    # PyJWT 2.15 refuses such spellings itself; the canonical key keeps that true whatever the library.
    token = jwt.encode({"sub": "admin"}, "k" * 40, algorithm="HS256")
    header, payload, signature = token.split(".")
    respelled = f"{header}.{payload}.{signature[:-1]}{ALPHABET[ALPHABET.index(signature[-1]) ^ 1]}"
    assert respelled != token
    assert token_key(respelled) == token_key(token)


def test_token_key_differs_per_token() -> None:
    one = jwt.encode({"sub": "admin", "iat": 1}, "k" * 40, algorithm="HS256")
    two = jwt.encode({"sub": "admin", "iat": 2}, "k" * 40, algorithm="HS256")
    assert token_key(one) != token_key(two)


@pytest.mark.parametrize("token", ["", "garbage", "a.b", "a.b.!!!", "é.é.é"])
def test_token_key_of_garbage_does_not_fail(token: str) -> None:
    assert len(token_key(token)) == 64


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "1e30"])
def test_unreadable_expiry_counts_as_the_longest_lifetime(value: str | None) -> None:
    assert _expiry(value, 100.0) > 100.0 + 300 * 24 * 3600


def test_expiry_read_as_seconds() -> None:
    assert _expiry("1700000000", 1699990000.0) == 1700000000.0


# --- CORS -------------------------------------------------------------------------------------------


def test_cors_origins_setting_parsed() -> None:
    settings = Settings.from_env({"CORS_ALLOW_ORIGINS": "https://a.example, http://localhost:5173"})
    assert settings.cors_allow_origins == ("https://a.example", "http://localhost:5173")


@pytest.mark.parametrize("value", ["ui.example.com", "https://ui.example.com/app", "ftp://x"])
def test_cors_bad_origin_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match="CORS_ALLOW_ORIGINS"):
        Settings.from_env({"CORS_ALLOW_ORIGINS": value})


def test_hardening_settings_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.login_max_failures == 5
    assert settings.login_lockout_seconds == 300
    assert settings.cors_allow_origins == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOGIN_MAX_FAILURES", "-1"), ("LOGIN_LOCKOUT_SECONDS", "0")],
)
def test_hardening_settings_bad_values_rejected(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


# --- exec plugin environment ------------------------------------------------------------------------


def exec_kubeconfig(env: object) -> dict:
    """A kubeconfig whose user runs the allowed ``echo`` with ``env``."""
    return {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [
            {
                "name": "u",
                "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "echo", "env": env}},
            }
        ],
    }


ECHO = KubeconfigPolicy.from_strings(exec_commands=["echo"])


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "ld_preload",
        "PATH",
        "PYTHONSTARTUP",
        "NODE_OPTIONS",
        "BASH_ENV",
        "DYLD_INSERT_LIBRARIES",
        "JAVA_TOOL_OPTIONS",
    ],
)
def test_exec_env_that_loads_code_is_rejected(name: str) -> None:
    with pytest.raises(KubeconfigRejected, match=r"users\[0\]\.user\.exec\.env\[0\]"):
        ECHO.check(exec_kubeconfig([{"name": name, "value": "/tmp/x"}]))


def test_exec_env_ordinary_variable_accepted() -> None:
    ECHO.check(exec_kubeconfig([{"name": "AWS_PROFILE", "value": "prod"}]))
    ECHO.check(exec_kubeconfig(None))


@pytest.mark.parametrize("env", ["LD_PRELOAD=/x", [{"value": "x"}], ["LD_PRELOAD"]])
def test_exec_env_malformed_rejected(env: object) -> None:
    with pytest.raises(KubeconfigRejected, match=r"exec\.env"):
        ECHO.check(exec_kubeconfig(env))


def test_link_local_literal_rejected_without_connecting() -> None:
    config = exec_kubeconfig(None)
    config["clusters"][0]["cluster"]["server"] = "https://169.254.169.254"
    with pytest.raises(KubeconfigRejected, match="denied range"):
        ECHO.check(config)


# --- kubeconfig parsing edge cases found by the fuzz suite ------------------------------------------


@pytest.mark.parametrize("text", ["1" * 5000, "a: " + "9" * 5000, '{"a": ' + "9" * 5000 + "}"])
def test_parse_huge_integer_is_rejected_not_crashed(text: str) -> None:
    with pytest.raises(KubeconfigRejected, match="not valid YAML"):
        parse_kubeconfig(text)
