"""Unit tests of utils/logs.py: Go-style JSON lines (logrus keys) through loguru, and masking."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loguru import logger

from utils import logs

TIME_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
STD_LOGGERS = ("", "werkzeug", "gunicorn", "gunicorn.error", "gunicorn.access", "urllib3", "kubernetes")
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VybmFtZSI6ImFkbWluIn0.c2lnbmF0dXJlLXBhcnQ"


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loguru sinks, stdlib loggers and registered secrets as they were, after the test."""
    saved = {name: logging.getLogger(name) for name in STD_LOGGERS}
    state = {name: (list(std.handlers), std.level, std.propagate) for name, std in saved.items()}
    monkeypatch.setattr(logs, "_secrets", ())
    try:
        yield
    finally:
        logger.remove()
        logger.add(sys.stderr)  # loguru's own default sink
        for name, std in saved.items():
            std.handlers, level, std.propagate = state[name]
            std.setLevel(level)


@pytest.fixture
def stream(restore_logging: None) -> io.StringIO:
    """JSON logging at DEBUG into a StringIO."""
    out = io.StringIO()
    logs.setup_logging("DEBUG", stream=out)
    return out


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written so far, parsed (each must be one JSON object)."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def only_line(stream: io.StringIO) -> dict[str, Any]:
    """The single line written so far."""
    written = lines(stream)
    assert len(written) == 1, written
    return written[0]


def test_info_writes_one_json_line(stream: io.StringIO) -> None:
    logs.info({"clusterId": "x"}, "cluster added")
    assert stream.getvalue().count("\n") == 1
    assert isinstance(only_line(stream), dict)


def test_info_line_has_go_keys(stream: io.StringIO) -> None:
    logs.info({"clusterId": "x"}, "cluster added")
    assert {"level", "msg", "time", "func", "file", "clusterId"} <= set(only_line(stream))


def test_info_line_values(stream: io.StringIO) -> None:
    logs.info({"clusterId": "x"}, "cluster added")
    line = only_line(stream)
    assert line["level"] == "info"
    assert line["msg"] == "cluster added"
    assert line["clusterId"] == "x"


def test_keys_start_with_level_msg_time(stream: io.StringIO) -> None:
    logs.info({"clusterId": "x"}, "m")
    assert list(only_line(stream))[:5] == ["level", "msg", "time", "func", "file"]


def test_time_format(stream: io.StringIO) -> None:
    logs.info(None, "m")
    assert TIME_FORMAT.match(only_line(stream)["time"])


def test_func_and_file_name_the_caller(stream: io.StringIO) -> None:
    logs.info(None, "m")
    line = only_line(stream)
    assert line["func"].endswith("test_func_and_file_name_the_caller")
    assert re.search(r"test_unit_logs\.py:\d+$", line["file"])


@pytest.mark.parametrize(
    ("log", "level"),
    [(logs.debug, "debug"), (logs.info, "info"), (logs.warning, "warning"), (logs.error, "error")],
)
def test_level_names(stream: io.StringIO, log: Callable[[dict[str, Any] | None, str], None], level: str) -> None:
    log(None, "m")
    assert only_line(stream)["level"] == level


def test_none_fields_accepted(stream: io.StringIO) -> None:
    logs.info(None, "m")
    assert set(only_line(stream)) == {"level", "msg", "time", "func", "file"}


def test_field_types_kept(stream: io.StringIO) -> None:
    logs.info({"count": 3, "ok": True, "ratio": 0.5, "nothing": None}, "m")
    line = only_line(stream)
    assert (line["count"], line["ok"], line["ratio"], line["nothing"]) == (3, True, 0.5, None)


def test_braces_in_message_not_formatted(stream: io.StringIO) -> None:
    logs.info({"a": "b"}, "value {a} {0}")
    assert only_line(stream)["msg"] == "value {a} {0}"


@pytest.mark.usefixtures("restore_logging")
def test_info_level_drops_debug() -> None:
    out = io.StringIO()
    logs.setup_logging("INFO", stream=out)
    logs.debug(None, "hidden")
    logs.info(None, "shown")
    assert [line["msg"] for line in lines(out)] == ["shown"]


def test_stdlib_logger_goes_to_same_stream(stream: io.StringIO) -> None:
    logging.getLogger("werkzeug").warning("GET %s %d", "/api/x", 404)
    line = only_line(stream)
    assert line["level"] == "warning"
    assert line["msg"] == "GET /api/x 404"
    assert TIME_FORMAT.match(line["time"])


def test_stdlib_logger_name_and_caller(stream: io.StringIO) -> None:
    logging.getLogger("werkzeug").warning("w")
    line = only_line(stream)
    assert line["logger"] == "werkzeug"
    assert line["func"].endswith("test_stdlib_logger_name_and_caller")
    assert re.search(r"test_unit_logs\.py:\d+$", line["file"])


@pytest.mark.parametrize(
    ("method", "level"), [("debug", "debug"), ("info", "info"), ("warning", "warning"), ("error", "error")]
)
def test_stdlib_level_names(stream: io.StringIO, method: str, level: str) -> None:
    getattr(logging.getLogger("gunicorn.error"), method)("m")
    assert only_line(stream)["level"] == level


def test_stdlib_exception_has_error_field(stream: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("werkzeug").exception("failed")
    line = only_line(stream)
    assert line["level"] == "error"
    assert line["error"] == "RuntimeError: boom"


def test_urllib3_debug_suppressed(stream: io.StringIO) -> None:
    logging.getLogger("urllib3").debug("Starting new HTTPS connection")
    assert stream.getvalue() == ""


def test_registered_secret_masked_in_msg(stream: io.StringIO) -> None:
    logs.register_secret("hunter2-secret")
    logs.info(None, "password is hunter2-secret here")
    line = only_line(stream)
    assert "hunter2-secret" not in stream.getvalue()
    assert line["msg"] == "password is *** here"


def test_registered_secret_masked_in_fields(stream: io.StringIO) -> None:
    logs.register_secret("hunter2-secret")
    logs.info({"body": '{"password": "hunter2-secret"}', "nested": {"p": "hunter2-secret"}}, "m")
    assert "hunter2-secret" not in stream.getvalue()
    assert "***" in only_line(stream)["body"]


def test_registered_secret_masked_in_stdlib_line(stream: io.StringIO) -> None:
    logs.register_secret("hunter2-secret")
    logging.getLogger("werkzeug").info("login with hunter2-secret")
    assert "hunter2-secret" not in stream.getvalue()


def test_short_secret_not_registered(stream: io.StringIO) -> None:
    logs.register_secret("abc")
    logs.register_secret(None)
    logs.info(None, "abc")
    assert only_line(stream)["msg"] == "abc"


def test_jwt_masked_in_msg(stream: io.StringIO) -> None:
    logs.info(None, f"token {JWT} issued")
    assert JWT not in stream.getvalue()
    assert only_line(stream)["msg"] == "token *** issued"


def test_jwt_masked_in_field(stream: io.StringIO) -> None:
    logs.info({"authorization": JWT}, "m")
    assert JWT not in stream.getvalue()
    assert only_line(stream)["authorization"] == "***"


@pytest.mark.parametrize("header", ["Bearer xyz0123456789abc", "bearer xyz0123456789abc", "BEARER  xyz0123456789abc"])
def test_bearer_value_masked(stream: io.StringIO, header: str) -> None:
    logs.info({"header": header}, f"Authorization: {header}")
    assert "xyz0123456789abc" not in stream.getvalue()
    assert only_line(stream)["header"] == "***"


def test_ordinary_text_not_masked(stream: io.StringIO) -> None:
    logs.info({"note": "bearer of bad news"}, "eyJ is not a token")
    line = only_line(stream)
    assert line["msg"] == "eyJ is not a token"
    assert line["note"] == "bearer of bad news"


@pytest.mark.parametrize("key", ["msg", "level", "time", "func", "file"])
def test_reserved_field_does_not_overwrite(stream: io.StringIO, key: str) -> None:
    logs.warning({key: "spoofed"}, "real message")
    line = only_line(stream)
    assert line[key] != "spoofed"
    assert line[f"fields.{key}"] == "spoofed"


def test_reserved_msg_field_keeps_real_message(stream: io.StringIO) -> None:
    logs.warning({"msg": "spoofed", "level": "debug"}, "real message")
    line = only_line(stream)
    assert line["msg"] == "real message"
    assert line["level"] == "warning"


def test_setup_logging_again_replaces_sink(stream: io.StringIO) -> None:
    second = io.StringIO()
    logs.setup_logging("DEBUG", stream=second)
    logs.info(None, "m")
    assert stream.getvalue() == ""
    assert only_line(second)["msg"] == "m"


def test_masking_is_race_free_while_secrets_are_registered(stream: io.StringIO, capfd: pytest.CaptureFixture) -> None:
    """Threads log a registered secret while others register more: no line unmasked, nothing on stderr."""
    import threading

    logs.register_secret("the-first-secret-value")
    stop = threading.Event()
    errors: list[BaseException] = []

    def register() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            logs.register_secret(f"later-secret-{n:06d}")

    def log() -> None:
        try:
            for i in range(300):
                logs.info({"field": "the-first-secret-value"}, f"line {i} the-first-secret-value")
                logging.getLogger("werkzeug").info("stdlib the-first-secret-value %d", i)
        except BaseException as exc:
            errors.append(exc)

    registrar = threading.Thread(target=register)
    loggers = [threading.Thread(target=log) for _ in range(4)]
    registrar.start()
    for thread in loggers:
        thread.start()
    for thread in loggers:
        thread.join(60)
    stop.set()
    registrar.join(10)
    assert not errors
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 * 300 * 2
    assert all("the-first-secret-value" not in line for line in lines)
    captured = capfd.readouterr()
    assert "the-first-secret-value" not in captured.err + captured.out
    assert "Logging error" not in captured.err


def test_a_record_that_cannot_be_formatted_is_withheld_not_printed(
    stream: io.StringIO, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs.register_secret("hunter2-secret")

    def broken(record: dict) -> bytes:
        raise RuntimeError("formatter bug")

    monkeypatch.setattr(logs, "format_record", broken)
    logs.info({"password": "hunter2-secret"}, "with hunter2-secret")
    assert json.loads(stream.getvalue())["msg"].startswith("a log record could not be written")
    captured = capfd.readouterr()
    assert "hunter2-secret" not in captured.err + captured.out + stream.getvalue()
