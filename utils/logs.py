"""Structured logging: JSON lines on stdout with the Go (logrus) keys, through loguru.

``logs.info({"clusterId": "x"}, "cluster added")`` writes
``{"level":"info","msg":"cluster added","time":"2026-01-02 15:04:05","func":...,"file":...,"clusterId":"x"}``.
Stdlib loggers (werkzeug, gunicorn, urllib3) are routed into the same sink. Values registered with
``register_secret`` and anything shaped like a JWT or a bearer token are masked before writing.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from typing import Any, TextIO

import orjson
from loguru import logger

_LEVELS = {"TRACE": "debug", "DEBUG": "debug", "INFO": "info", "SUCCESS": "info",
           "WARNING": "warning", "ERROR": "error", "CRITICAL": "fatal"}  # fmt: skip
_RESERVED = ("level", "msg", "time", "func", "file")
_MASK = "***"
# A JWT (three base64url parts) or an Authorization value: never worth logging.
_TOKEN_PATTERN = re.compile(
    r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
)
# Copy-on-write: writers replace the whole tuple under the lock, readers take one reference without it,
# so a line being masked never sees the collection change under it (a set would raise "changed size
# during iteration", and loguru would then print the unmasked record to stderr). Longest first, so a
# secret that contains another is masked whole.
_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()
_FALLBACK_LINE = '{"level":"error","msg":"a log record could not be written (its content is withheld)"}\n'


def register_secret(value: str | None) -> None:
    """Mask every later occurrence of ``value`` (a password, a signing key) in log lines."""
    global _secrets
    if value and len(value) >= 4:
        with _secrets_lock:
            if value not in _secrets:
                _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with registered secrets and token-shaped strings masked."""
    text = _TOKEN_PATTERN.sub(_MASK, text)
    for value in _secrets:  # one snapshot of the tuple
        if value in text:
            text = text.replace(value, _MASK)
    return text


def _redact_value(value: Any) -> Any:
    """Mask secrets inside a log field value (strings only; other values are formatted first)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


def format_record(record: dict[str, Any]) -> bytes:
    """One loguru record as a Go-style JSON line."""
    line: dict[str, Any] = {
        "level": _LEVELS.get(record["level"].name, record["level"].name.lower()),
        "msg": redact(record["message"]),
        "time": record["time"].strftime("%Y-%m-%d %H:%M:%S"),
        "func": f"{record['name']}.{record['function']}",
        "file": f"{record['file'].path}:{record['line']}",
    }
    caller = record["extra"].get("_caller")
    if caller:  # a stdlib record: its own caller, not the logging machinery's
        line.update(caller)
    for key, value in record["extra"].items():
        if key == "_caller":
            continue
        line[key if key not in _RESERVED else f"fields.{key}"] = _redact_value(value)
    if record["exception"] is not None and record["exception"].type is not None:
        line["error"] = redact(f"{record['exception'].type.__name__}: {record['exception'].value}")
    return orjson.dumps(line) + b"\n"


class _Sink:
    """Writes formatted lines to a text stream (stdout by default)."""

    def __init__(self, stream: TextIO) -> None:
        """Remember the stream."""
        self.stream = stream

    def write(self, message: Any) -> None:
        """Format and write one record; loguru serialises calls to a sink.

        Never raises: loguru's answer to a failing sink is to print the raw record on stderr, unmasked.
        """
        try:
            line = format_record(message.record).decode()
        except Exception:
            line = _FALLBACK_LINE
        try:
            self.stream.write(line)
            self.stream.flush()
        except Exception:  # noqa: S110 - nowhere left to report to; never the record itself
            pass


class InterceptHandler(logging.Handler):
    """Send stdlib log records to loguru (the recipe from loguru's documentation)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one record with its level and the original caller."""
        try:
            try:
                level: str | int = logger.level(record.levelname).name
            except ValueError:
                level = record.levelno
            caller = {"func": f"{record.module}.{record.funcName}", "file": f"{record.pathname}:{record.lineno}"}
            message = record.getMessage()
            logger.bind(logger=record.name, _caller=caller).opt(exception=record.exc_info).log(level, message)
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """The stdlib's default prints the unmasked message on stderr: write the withheld line instead."""
        with contextlib.suppress(Exception):
            sys.stdout.write(_FALLBACK_LINE)


def setup_logging(level: str = "DEBUG", stream: TextIO | None = None) -> None:
    """Replace every loguru sink with the JSON sink and route stdlib loggers into it."""
    logger.remove()
    logger.add(_Sink(stream or sys.stdout), level=level, format="{message}", backtrace=False,
               diagnose=False)  # fmt: skip
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in ("werkzeug", "gunicorn", "gunicorn.error", "gunicorn.access", "urllib3", "kubernetes"):
        std = logging.getLogger(name)
        std.handlers = []
        std.propagate = True
    # urllib3 logs every retry and connection at DEBUG with URLs; warnings are what matter.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)


def _log(level: str, fields: dict[str, Any] | None, msg: str) -> None:
    """Log ``msg`` with ``fields`` attached, attributed to the caller of the public helper."""
    logger.opt(depth=2).bind(**(fields or {})).log(level, msg)


def debug(fields: dict[str, Any] | None, msg: str) -> None:
    """Go's ``logs.Debug(fields, msg)``."""
    _log("DEBUG", fields, msg)


def info(fields: dict[str, Any] | None, msg: str) -> None:
    """Go's ``logs.Info(fields, msg)``."""
    _log("INFO", fields, msg)


def warning(fields: dict[str, Any] | None, msg: str) -> None:
    """Go's ``logs.Warning(fields, msg)``."""
    _log("WARNING", fields, msg)


def error(fields: dict[str, Any] | None, msg: str) -> None:
    """Go's ``logs.Error(fields, msg)``."""
    _log("ERROR", fields, msg)
