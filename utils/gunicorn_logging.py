"""A gunicorn logger class that sends the master's, workers' and access logs to the JSON sink."""

from __future__ import annotations

import os
import re
from typing import Any

from gunicorn.glogging import Logger

from utils import logs
from utils.logs import InterceptHandler, setup_logging

# The atoms an access line reads when its format names no header, environ variable, time or user.
_LIGHT_ATOMS = frozenset("hlrsmUqHbBfaTDMLp")
_FORMAT_KEY = re.compile(r"%\(([^)]*)\)")


def light_atoms(resp: Any, environ: dict, request_time: Any) -> dict[str, Any]:
    """gunicorn's atoms without the per-header, per-environ-variable, time and user entries.

    ``Logger.atoms`` also copies every request and response header and every environ variable into
    the dict and formats the time: most of the cost of an access line, for atoms the configured
    format does not use.
    """
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    sent = getattr(resp, "sent", None)
    seconds, micros = request_time.seconds, request_time.microseconds
    return {
        "h": environ.get("REMOTE_ADDR", "-"),
        "l": "-",
        "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
        "s": status,
        "m": environ.get("REQUEST_METHOD"),
        "U": environ.get("PATH_INFO"),
        "q": environ.get("QUERY_STRING"),
        "H": environ.get("SERVER_PROTOCOL"),
        "b": str(sent) if sent is not None else "-",
        "B": sent,
        "f": environ.get("HTTP_REFERER", "-"),
        "a": environ.get("HTTP_USER_AGENT", "-"),
        "T": seconds,
        "D": seconds * 1000000 + micros,
        "M": seconds * 1000 + int(micros / 1000),
        "L": f"{seconds}.{micros:06d}",
        "p": f"<{os.getpid()}>",
    }


class JsonLogger(Logger):
    """gunicorn's logger with its handlers replaced by the loguru interception."""

    _light_format: tuple[str, bool] | None = None  # (access_log_format, it needs only light atoms)

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
        if self._light_format is None or self._light_format[0] != self.cfg.access_log_format:
            keys = set(_FORMAT_KEY.findall(self.cfg.access_log_format))
            self._light_format = (self.cfg.access_log_format, keys <= _LIGHT_ATOMS)
        if self._light_format[1]:
            atoms = light_atoms(resp, environ, request_time)
        else:
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
