"""A gunicorn logger class that sends the master's, workers' and access logs to the JSON sink."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

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
