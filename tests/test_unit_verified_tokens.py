"""Unit tests of the verified-token cache behind every authenticated request (controllers.auth.verify)."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from flask_jwt_extended import JWTManager, create_access_token

from controllers.auth import VerifiedTokens, verify
from controllers.errors import AuthFailed


def make_app(key: str) -> Flask:
    app = Flask(__name__)
    app.config.update(JWT_SECRET_KEY=key, JWT_ALGORITHM="HS256", JWT_DECODE_ALGORITHMS=["HS256"])
    JWTManager(app)
    return app


def token_of(app: Flask, minutes: float = 5) -> str:
    with app.app_context():
        return create_access_token(identity="admin", expires_delta=dt.timedelta(minutes=minutes))


def test_a_verified_token_is_kept_until_its_expiry() -> None:
    cache = VerifiedTokens(4)
    cache.put("t", {"sub": "admin", "exp": 100})
    got = cache.get("t", 99.5)
    assert got == {"sub": "admin", "exp": 100}
    got["sub"] = "changed"  # callers get copies
    assert cache.get("t", 99.5) == {"sub": "admin", "exp": 100}
    assert cache.get("t", 100) is None  # expired at exp, as PyJWT without leeway
    assert cache.get("t", 50) is None  # and dropped


def test_only_tokens_with_a_numeric_expiry_are_kept_and_the_cache_is_bounded() -> None:
    cache = VerifiedTokens(2)
    cache.put("no-exp", {"sub": "admin"})
    cache.put("bool-exp", {"sub": "admin", "exp": True})
    assert cache.get("no-exp", 0) is None and cache.get("bool-exp", 0) is None
    for name in ("a", "b", "c"):
        cache.put(name, {"exp": 10})
    assert cache.get("a", 0) is None and cache.get("b", 0) is not None and cache.get("c", 0) is not None


def test_verify_caches_per_app_so_another_key_still_refuses_the_token() -> None:
    first, second = make_app("k1" * 32), make_app("k2" * 32)
    token = token_of(first)
    with first.app_context():
        assert verify(token)["sub"] == "admin"
        assert verify(token)["sub"] == "admin"  # from the cache
        assert token in first.extensions["krm.verified_tokens"]._claims
    with second.app_context(), pytest.raises(AuthFailed):
        verify(token)


def test_tampered_and_expired_tokens_are_refused_and_never_cached() -> None:
    app = make_app("k1" * 32)
    token = token_of(app)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    expired = token_of(app, minutes=-1)
    with app.app_context():
        for bad in (tampered, expired, "not-a-token"):
            with pytest.raises(AuthFailed):
                verify(bad)
            with pytest.raises(AuthFailed):
                verify(bad)
        assert app.extensions.get("krm.verified_tokens") is None or not app.extensions["krm.verified_tokens"]._claims
