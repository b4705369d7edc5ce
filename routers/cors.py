"""Optional CORS for /api with flask-cors: an allow-list of origins (``CORS_ALLOW_ORIGINS``).

Empty list (the default): flask-cors is not attached and no CORS header is ever sent. Otherwise a
preflight (``OPTIONS``, which the token check lets through) and every /api answer carry
``Access-Control-Allow-Origin`` for a listed origin only (echoed, with ``Vary: Origin``). Tokens travel
in the ``Authorization`` header, not in cookies, so credentials mode stays off.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

ALLOW_METHODS = ["GET", "POST", "DELETE", "OPTIONS"]
ALLOW_HEADERS = ["Authorization", "Content-Type"]
MAX_AGE_SECONDS = 600  # browsers cache a preflight this long (Chromium caps it at 7200)


def init_app(app: Flask) -> None:
    """Attach flask-cors to /api when origins are configured."""
    origins = list(app.extensions["krm"].settings.cors_allow_origins)
    if not origins:
        return
    CORS(
        app,
        resources={r"/api/*": {"origins": origins}},
        methods=ALLOW_METHODS,
        allow_headers=ALLOW_HEADERS,
        max_age=MAX_AGE_SECONDS,
        supports_credentials=False,
        vary_header=True,
    )
