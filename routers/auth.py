"""/api/auth: login and logout."""

from __future__ import annotations

import orjson
from flask import Blueprint, request
from marshmallow import ValidationError

from config.constants import MSG_BAD_LOGIN, MSG_LOGIN_OK, MSG_LOGOUT_OK
from config.envelope import ok
from controllers import auth
from controllers.errors import AuthFailed
from controllers.schemas import login_schema
from routers import require_ready
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
    try:
        token = auth.login(b.credentials, data["username"], data["password"])  # type: ignore[arg-type]
    except AuthFailed:
        logs.warning({"username": data["username"][:64], "client": request.remote_addr}, "login failed")
        raise
    logs.info({"username": data["username"][:64], "client": request.remote_addr}, "login succeeded")
    return ok(MSG_LOGIN_OK, {"token": token})


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """Go's logout is stateless: the client drops its token."""
    return ok(MSG_LOGOUT_OK)
