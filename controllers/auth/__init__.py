"""Login and token checks, compatible with the Go backend's tokens and MD5-hashed credentials."""

from __future__ import annotations

import hashlib
import hmac

import jwt as pyjwt
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


def verify(token: str) -> dict:
    """The claims of a valid token; ``AuthFailed`` for anything invalid, expired or tampered."""
    try:
        claims = decode_token(token)
    except (pyjwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise AuthFailed(MSG_BAD_TOKEN) from exc
    except Exception as exc:  # flask-jwt-extended's own errors (missing claims, ...)
        raise AuthFailed(MSG_BAD_TOKEN) from exc
    return claims
