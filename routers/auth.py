"""/api/auth: login and logout."""

from __future__ import annotations

import orjson
from flask import Blueprint, request
from marshmallow import ValidationError

from config.constants import MSG_BAD_LOGIN, MSG_LOGIN_OK, MSG_LOGOUT_OK
from config.envelope import ok
from controllers import auth
from controllers.auth import revocation
from controllers.auth.limiter import lockout_message
from controllers.errors import AuthFailed
from controllers.schemas import login_schema
from routers import backend, require_ready
from utils import logs

bp = Blueprint("auth", __name__, url_prefix="/api/auth")


@bp.post("/login")
def login():
    """Exchange the admin's username and password for a token."""
    b = require_ready()
    try:
        data = login_schema.load(orjson.loads(request.get_data() or b"null"))
    except (orjson.JSONDecodeError, ValidationError, TypeError):
        raise AuthFailed(MSG_BAD_LOGIN) from None
    client, username = request.remote_addr or "", data["username"]
    fields = {"username": username[:64], "client": client}
    b.login_limiter.check(client, username)  # locked out: refused before the password is looked at
    try:
        token = auth.login(b.credentials, username, data["password"])  # type: ignore[arg-type]
    except AuthFailed:
        logs.warning(fields, "login failed")
        locked = b.login_limiter.failed(client, username)
        if locked:
            logs.warning({**fields, "lockoutSeconds": locked}, "too many failed logins; locked out")
            raise AuthFailed(lockout_message(locked)) from None
        raise
    b.login_limiter.succeeded(client, username)
    logs.info(fields, "login succeeded")
    return ok(MSG_LOGIN_OK, {"token": token})


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """Revoke the presented token everywhere until it expires; no or a dead token is still a success (Go)."""
    b = backend()
    try:
        token = auth.token_from_header(request.headers.get("Authorization"))
        if b.credentials is None or b.revocations is None:
            return ok(MSG_LOGOUT_OK)  # before bootstrap no token can be valid
        claims = auth.verify(token, b.verified_tokens)
    except AuthFailed:
        return ok(MSG_LOGOUT_OK)
    revocation.logout(b.revocations, token, claims)
    return ok(MSG_LOGOUT_OK)
