"""Login and token checks, compatible with the Go backend's tokens and MD5-hashed credentials."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict

import jwt as pyjwt
from flask import current_app
from flask_jwt_extended import create_access_token, decode_token

from config.constants import MSG_BAD_LOGIN, MSG_BAD_TOKEN, MSG_NO_TOKEN
from controllers.errors import AuthFailed
from initcontroller import Credentials

ISSUER = "krm-backend"
__all__ = ["ISSUER", "Credentials", "credential_matches", "login", "token_from_header", "verify"]


def _md5_hex(value: str) -> str:
    """Upper-case MD5 hex, the form the official Go deployment stores."""
    return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest().upper()


def credential_matches(submitted: str, configured: str) -> bool:
    """Equal, or one side is the MD5 hex (any case) of the other; every comparison in constant time."""
    sub, conf = submitted.encode(), configured.encode()
    plain = hmac.compare_digest(sub, conf)
    hashed_submitted = hmac.compare_digest(_md5_hex(submitted).encode(), conf.upper())
    hashed_configured = hmac.compare_digest(sub.upper(), _md5_hex(configured).encode())
    return plain | hashed_submitted | hashed_configured


def login(credentials: Credentials, username: str, password: str) -> str:
    """A signed token for the admin, or ``AuthFailed`` with the Go message."""
    user_ok = credential_matches(username, credentials.username)
    password_ok = credential_matches(password, credentials.password)
    if not (user_ok & password_ok):
        raise AuthFailed(MSG_BAD_LOGIN)
    # The Go backend reads the `username` claim; sub and iss are the registered claims it sets too.
    return create_access_token(identity=credentials.username, additional_claims={"username": credentials.username})


def token_from_header(value: str | None) -> str:
    """The raw token from ``Authorization`` (the frontend sends it without ``Bearer ``)."""
    token = (value or "").strip()
    scheme, _, rest = token.partition(" ")
    if scheme.lower() == "bearer":  # "Bearer <token>", or a bare "Bearer" (proxies strip the space)
        token = rest.strip()
    if not token:
        raise AuthFailed(MSG_NO_TOKEN)
    return token


VERIFIED_TOKENS_MAX = 1024  # per process: tokens whose signature was checked, kept until they expire


class VerifiedTokens:
    """Claims of tokens this app verified, by the exact token text (LRU, bounded), each until its ``exp``.

    Checking a token's signature and claims costs more than the rest of a cached ``cluster/get``; the same
    token comes with every request of a session. A hit is the very string whose HS256 signature was
    verified with this app's key (fixed once bootstrap has run), so only expiry is checked again.
    Logouts are checked on every request by the caller, as before.
    """

    def __init__(self, max_entries: int = VERIFIED_TOKENS_MAX) -> None:
        """Keep at most ``max_entries`` tokens."""
        self.max_entries = max_entries
        self._claims: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, now: float) -> dict | None:
        """A copy of the claims of a verified, unexpired token; None otherwise."""
        with self._lock:
            claims = self._claims.get(token)
            if claims is None:
                return None
            if not claims["exp"] > now:  # as PyJWT (no leeway): expired at exp
                del self._claims[token]
                return None
            self._claims.move_to_end(token)
            return dict(claims)

    def put(self, token: str, claims: dict) -> None:
        """Remember a token just verified (only one with a numeric ``exp``)."""
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return
        with self._lock:
            self._claims[token] = dict(claims)
            self._claims.move_to_end(token)
            while len(self._claims) > self.max_entries:
                self._claims.popitem(last=False)


def verify(token: str) -> dict:
    """The claims of a valid token; ``AuthFailed`` for anything invalid, expired or tampered."""
    verified: VerifiedTokens = current_app.extensions.setdefault("krm.verified_tokens", VerifiedTokens())
    claims = verified.get(token, time.time())
    if claims is not None:
        return claims
    try:
        claims = decode_token(token)
    except (pyjwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise AuthFailed(MSG_BAD_TOKEN) from exc
    except Exception as exc:  # flask-jwt-extended's own errors (missing claims, ...)
        raise AuthFailed(MSG_BAD_TOKEN) from exc
    verified.put(token, claims)
    return claims
