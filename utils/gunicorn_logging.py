"""A gunicorn logger class that sends the master's, workers' and access logs to the JSON sink."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from utils import logs
from utils.logs import InterceptHandler, setup_logging


class JsonLogger(Logger):
    """gunicorn's logger with its handlers replaced by the loguru interception."""

    def setup(self, cfg: Any) -> None:
        """Let gunicorn configure levels, then route both of its loggers into the JSON sink."""
        super().setup(cfg)
        level = "DEBUG" if os.environ.get("LOG_LEVEL", "debug").strip().lower() == "debug" else "INFO"
        setup_logging(level)
        for log in (self.error_log, self.access_log):
            log.handlers = [InterceptHandler()]
            log.propagate = False

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        """One JSON line per request: gunicorn's formatted line as ``msg``, and its parts as fields.

        Collectors then filter on ``status`` or ``path`` without parsing the message. Headers are not
        logged (the token travels in ``Authorization``).
        """
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        try:
            message = self.cfg.access_log_format % self.atoms_wrapper_class(atoms)
        except (TypeError, ValueError, KeyError):
            message = str(atoms["r"])
        status = str(atoms["s"])
        fields = {
            "logger": "gunicorn.access",
            "remote": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],
            "status": int(status) if status.isdigit() else status,
            "bytes": atoms["B"],
            "durationMs": round(request_time.total_seconds() * 1000, 1),
            "userAgent": atoms["a"],
        }
        logs.info(fields, message)
