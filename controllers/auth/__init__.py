"""Login and token checks, compatible with the Go backend's tokens and MD5-hashed credentials."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import jwt as pyjwt
from flask_jwt_extended import create_access_token, decode_token
from flask_jwt_extended.config import config as jwt_config

from config.constants import MSG_BAD_LOGIN, MSG_BAD_TOKEN, MSG_NO_TOKEN
from controllers.errors import AuthFailed
from initcontroller import Credentials

ISSUER = "krm-backend"
__all__ = ["ISSUER", "Credentials", "VerifiedTokens", "credential_matches", "login", "token_from_header", "verify"]


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


class VerifiedTokens:
    """Tokens that verified, with their claims, until they expire: ``verify`` answers those from memory.

    flask-jwt-extended decodes a token three times per request (twice unverified, to pick the key,
    then verified), and PyJWT checks every base64 character in Python: about a millisecond per request
    on the 2-core machine, more than the rest of a small request (docs/benchmarks.md). A token that
    verified once stays valid, byte for byte, until its ``exp``: the signature, ``nbf`` and ``iat``
    cannot change, and the signing key is fixed once bootstrap has run. So only ``exp`` is checked
    again on every hit (with the decoder's leeway). Only tokens that verified are remembered: a forged
    or tampered token is decoded in full every time and cannot fill the memory; at most ``max_tokens``
    stay (least recently used first out). Revocation is not cached here: the caller checks it on every
    request.
    """

    def __init__(self, max_tokens: int = 1024, clock: Callable[[], float] = time.time) -> None:
        """An empty memory of at most ``max_tokens`` tokens; ``clock`` gives Unix seconds (tests)."""
        self.max_tokens = max_tokens
        self.clock = clock
        self._claims: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, leeway: float) -> dict | None:
        """The claims of a remembered token that has not expired (a copy), else None."""
        with self._lock:
            claims = self._claims.get(token)
            if claims is None:
                return None
            exp = claims.get("exp")
            if isinstance(exp, int | float) and self.clock() >= exp + leeway:
                del self._claims[token]  # expired: the full decode says so, with its own error
                return None
            self._claims.move_to_end(token)
            return dict(claims)

    def put(self, token: str, claims: dict) -> None:
        """Remember a token that verified (a copy of its claims)."""
        with self._lock:
            self._claims[token] = dict(claims)
            self._claims.move_to_end(token)
            while len(self._claims) > self.max_tokens:
                self._claims.popitem(last=False)

    def __len__(self) -> int:
        """How many tokens are remembered."""
        with self._lock:
            return len(self._claims)


def _leeway_seconds() -> float:
    """``JWT_DECODE_LEEWAY`` in seconds (flask-jwt-extended accepts seconds or a timedelta)."""
    leeway = jwt_config.leeway
    return leeway.total_seconds() if isinstance(leeway, dt.timedelta) else float(leeway or 0)


def verify(token: str, verified: VerifiedTokens | None = None) -> dict:
    """The claims of a valid token; ``AuthFailed`` for anything invalid, expired or tampered.

    With ``verified``, a token that verified before and has not expired is not decoded again.
    """
    if verified is not None:
        claims = verified.get(token, _leeway_seconds())
        if claims is not None:
            return claims
    try:
        claims = decode_token(token)
    except (pyjwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise AuthFailed(MSG_BAD_TOKEN) from exc
    except Exception as exc:  # flask-jwt-extended's own errors (missing claims, ...)
        raise AuthFailed(MSG_BAD_TOKEN) from exc
    if verified is not None:
        verified.put(token, claims)
    return claims
