"""Unit tests of the per-request shortcuts (docs/benchmarks.md, "Platform: the fixed cost of a request"):
the memory of verified tokens, the deadline watchdog's wake-ups, the light access-log atoms and the
throttled worker heartbeat. Each must keep the behaviour of the path it shortens."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask
from gunicorn.config import Config
from gunicorn.glogging import Logger

from app import create_app
from config.settings import Settings
from controllers.auth import VerifiedTokens, verify
from controllers.errors import AuthFailed
from initcontroller import Credentials
from utils import gunicorn_worker, kube
from utils.gunicorn_logging import JsonLogger, light_atoms

KEY = "a-unit-test-signing-key-that-is-long-enough-for-hs256-0123456789"


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    """The app with a signing key as bootstrap would set it (nothing is contacted)."""
    application = create_app(Settings(), bootstrap=False)
    application.extensions["krm"].bootstrap.credentials = Credentials("admin", "pw", KEY)
    with application.app_context():
        yield application


def token(seconds: float = 600, key: str = KEY, **claims: Any) -> str:
    """An HS256 token like the login's, expiring ``seconds`` from now."""
    now = int(time.time())
    body = {"sub": "admin", "username": "admin", "iat": now, "nbf": now, "exp": now + seconds, **claims}
    return pyjwt.encode(body, key, algorithm="HS256")


# --- verified tokens -------------------------------------------------------------------------------


def test_a_verified_token_is_answered_from_memory(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    memo = VerifiedTokens()
    good = token()
    first = verify(good, memo)
    monkeypatch.setattr("controllers.auth.decode_token", lambda _t: pytest.fail("decoded again"))
    assert verify(good, memo) == first
    assert first["username"] == "admin"


def test_a_remembered_token_is_refused_once_expired(app: Flask) -> None:
    clock = [time.time()]
    memo = VerifiedTokens(clock=lambda: clock[0])
    short = token(seconds=60)
    verify(short, memo)
    clock[0] += 61
    assert memo.get(short, leeway=0) is None
    assert len(memo) == 0


def test_expiry_of_a_remembered_token_counts_the_decoders_leeway(app: Flask) -> None:
    clock = [time.time()]
    memo = VerifiedTokens(clock=lambda: clock[0])
    short = token(seconds=60)
    verify(short, memo)
    clock[0] += 65
    assert memo.get(short, leeway=10) is not None
    assert memo.get(short, leeway=0) is None


def test_an_expired_token_is_refused_with_the_memory(app: Flask) -> None:
    with pytest.raises(AuthFailed):
        verify(token(seconds=-5), VerifiedTokens())


def test_tampered_and_foreign_tokens_are_refused_and_never_remembered(app: Flask) -> None:
    memo = VerifiedTokens()
    good = token()
    verify(good, memo)
    header, payload, signature = good.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    for bad in (tampered, token(key="another-key-that-is-long-enough-for-hs256-0123456789"), "not.a.token"):
        with pytest.raises(AuthFailed):
            verify(bad, memo)
    assert len(memo) == 1


def test_the_memory_is_bounded(app: Flask) -> None:
    memo = VerifiedTokens(max_tokens=3)
    tokens = [token(jti=str(i)) for i in range(5)]
    for t in tokens:
        verify(t, memo)
    assert len(memo) == 3
    assert memo.get(tokens[0], leeway=0) is None
    assert memo.get(tokens[-1], leeway=0) is not None


def test_claims_from_memory_are_a_copy(app: Flask) -> None:
    memo = VerifiedTokens()
    good = token()
    verify(good, memo)["username"] = "someone-else"
    assert verify(good, memo)["username"] == "admin"


# --- the deadline watchdog -------------------------------------------------------------------------


class _Sock:
    """A stand-in connection whose shutdown is recorded."""

    def __init__(self) -> None:
        self.sock = None
        self.fired_at: float | None = None


def guarded(deadline_in: float) -> tuple[kube._CallGuard, _Sock]:
    """A guard with one connection attached; ``fire`` stamps the connection."""
    guard = kube._CallGuard(time.monotonic() + deadline_in)
    conn = _Sock()
    guard.attach(conn)
    original = guard.fire

    def fire() -> bool:
        if conn.fired_at is None:
            conn.fired_at = time.monotonic()
        return original()

    guard.fire = fire  # type: ignore[method-assign]
    return guard, conn


def test_watchdog_fires_an_earlier_deadline_armed_after_a_later_one() -> None:
    dog = kube._Watchdog()
    late, late_conn = guarded(5.0)
    dog.arm(late)
    early, early_conn = guarded(0.2)
    started = time.monotonic()
    dog.arm(early)
    deadline = started + 3.0
    while early_conn.fired_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert early_conn.fired_at is not None and early_conn.fired_at - started < 1.0
    assert late_conn.fired_at is None
    late.finish()
    early.finish()


def test_watchdog_fires_a_deadline_while_later_calls_come_and_finish() -> None:
    dog = kube._Watchdog()
    first, first_conn = guarded(0.3)
    started = time.monotonic()
    dog.arm(first)
    for _ in range(50):  # later calls that finish at once: they must not delay the first one's firing
        later, _ = guarded(4.0)
        dog.arm(later)
        later.finish()
    while first_conn.fired_at is None and time.monotonic() < started + 3.0:
        time.sleep(0.01)
    assert first_conn.fired_at is not None and 0.25 <= first_conn.fired_at - started < 1.0
    first.finish()


def test_watchdog_forgets_finished_calls_when_it_wakes() -> None:
    dog = kube._Watchdog()
    first, _ = guarded(0.1)
    dog.arm(first)
    first.finish()
    for _ in range(20):
        later, _ = guarded(0.15)
        dog.arm(later)
        later.finish()
    time.sleep(0.5)
    with dog._cond:
        assert dog._heap == []


# --- access log atoms ------------------------------------------------------------------------------


def fake_exchange() -> tuple[Any, Any, dict, dt.timedelta]:
    """A response, request, environ and duration as gunicorn passes them to ``access``."""
    resp = SimpleNamespace(status="200 OK", sent=1863, headers=[("Content-Type", "application/json")])
    req = SimpleNamespace(headers=[("AUTHORIZATION", "secret-token"), ("USER-AGENT", "ua/1")])
    environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "GET", "RAW_URI": "/api/pod/get?name=x",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/api/pod/get", "QUERY_STRING": "name=x",
               "HTTP_USER_AGENT": "ua/1"}  # fmt: skip
    return resp, req, environ, dt.timedelta(microseconds=3456)


def test_light_atoms_are_gunicorns_atoms_for_every_key_they_hold() -> None:
    resp, req, environ, took = fake_exchange()
    full = Logger(Config()).atoms(resp, req, environ, took)
    light = light_atoms(resp, environ, took)
    assert {k: full[k] for k in light} == light


def test_the_access_line_is_the_same_with_light_atoms(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[tuple[dict, str]] = []
    monkeypatch.setattr("utils.logs.info", lambda fields, msg: lines.append((fields, msg)))
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s %(b)s %(M)sms')
    logger = JsonLogger.__new__(JsonLogger)
    logger.cfg = cfg
    logger._access_log_enabled = True
    resp, req, environ, took = fake_exchange()
    logger.access(resp, req, environ, took)
    cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s %(b)s %(M)sms %({user-agent}i)s')  # needs full atoms
    logger.access(resp, req, environ, took)
    assert lines[0][1] == '127.0.0.1 "GET /api/pod/get?name=x HTTP/1.1" 200 1863 3ms'
    assert lines[1][1] == lines[0][1] + " ua/1"
    assert lines[0][0] == lines[1][0]
    assert lines[0][0]["status"] == 200 and lines[0][0]["path"] == "/api/pod/get"


# --- worker heartbeat ------------------------------------------------------------------------------


def test_worker_heartbeat_is_touched_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    touches: list[float] = []
    monkeypatch.setattr("gunicorn.workers.gthread.ThreadWorker.notify", lambda self: touches.append(1))
    clock = [100.0]
    monkeypatch.setattr(gunicorn_worker.time, "monotonic", lambda: clock[0])
    worker = gunicorn_worker.Worker.__new__(gunicorn_worker.Worker)
    for _ in range(10):
        worker.notify()
    assert len(touches) == 1
    clock[0] += gunicorn_worker.HEARTBEAT_SECONDS
    worker.notify()
    assert len(touches) == 2
