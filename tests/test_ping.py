"""tools/ping over real WebSockets (websocket-client) against gunicorn: the echo, its time, refusals, limits."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
import websocket

from controllers.terminal import echo, echo_time
from controlplane.harness import wait_for
from tests.service import Service
from tests.test_terminal import frames_until_close, open_sessions

# RFC 3339, UTC, exactly three fraction digits: what the port appends (Go's layout has the day for the seconds).
ECHO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
MAX_FRAME_BYTES = 64 * 1024


def ping_url(service: Service) -> str:
    """The WebSocket URL of tools/ping."""
    return f"ws://127.0.0.1:{service.port}/api/tools/ping"


def connect(service: Service, token: str | None = None) -> websocket.WebSocket:
    """A browser-like connection: the token as the only subprotocol."""
    ws = websocket.WebSocket()
    ws.connect(ping_url(service), subprotocols=[token or service.token()], timeout=20)
    return ws


def refused(service: Service, **options: Any) -> dict[str, Any]:
    """The envelope of a handshake the server refuses (it answers JSON instead of 101)."""
    ws = websocket.WebSocket()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        ws.connect(ping_url(service), timeout=10, **options)
    ws.shutdown()
    assert info.value.status_code == 200
    return json.loads(info.value.resp_body or b"")


def echoed_time(reply: str, sent: str) -> dt.datetime:
    """The time a reply appends to ``sent``, parsed; the reply must be ``<sent> <time>``."""
    head, _, stamp = reply.rpartition(" ")
    assert head == sent, reply
    assert ECHO_TIME.fullmatch(stamp), stamp
    return dt.datetime.fromisoformat(stamp)


def ping_audit(service: Service) -> list[dict[str, Any]]:
    """The service's audit lines of tools/ping sessions."""
    return [json.loads(line) for line in service.log().splitlines() if '"action":"tools/ping"' in line]


def test_echo_time_is_utc_with_milliseconds() -> None:
    """A local time (Beijing here) is written in UTC, its fraction cut to milliseconds, with ``Z``."""
    beijing = dt.datetime(2026, 12, 2, 11, 4, 5, 678_999, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert echo_time(beijing) == "2026-12-02T03:04:05.678Z"
    assert echo("a b", beijing) == "a b 2026-12-02T03:04:05.678Z"
    assert echo(b"\x00", beijing) == b"\x00 2026-12-02T03:04:05.678Z"


def test_ping_echoes_text_with_rfc3339_utc_time(service: Service) -> None:
    """Each text frame comes back as ``<frame> <time>``, the time RFC 3339 UTC with milliseconds, now."""
    token = service.token()
    ws = connect(service, token)
    headers = ws.getheaders()
    assert headers is not None and headers["sec-websocket-protocol"] == token
    ws.settimeout(20)
    for sent in ("hello", "你好 world", ""):
        before = dt.datetime.now(dt.UTC)
        ws.send(sent)
        reply = ws.recv()
        after = dt.datetime.now(dt.UTC)
        assert isinstance(reply, str)
        stamp = echoed_time(reply, sent)
        assert stamp.utcoffset() == dt.timedelta(0)
        # Same machine, same clock: the stamp lies between send and receive (milliseconds truncated).
        assert before - dt.timedelta(milliseconds=1) <= stamp <= after, (before, stamp, after)
    ws.close()
    ws.shutdown()


def test_ping_echoes_binary_as_binary(service: Service) -> None:
    """A binary frame comes back as a binary frame: the bytes, a space, the time in ASCII."""
    ws = connect(service)
    ws.settimeout(20)
    payload = bytes(range(256))
    ws.send_binary(payload)
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_BINARY
    assert data[: len(payload) + 1] == payload + b" "
    assert ECHO_TIME.fullmatch(data[len(payload) + 1 :].decode("ascii"))
    ws.close()
    ws.shutdown()


def test_ping_without_token_refuses_upgrade(service: Service) -> None:
    """No subprotocol and no Authorization, or the logged-out ``null``: no upgrade, 401 请求未携带token."""
    missing = {"status": 401, "message": "请求未携带token,请登录后尝试", "data": {}}
    assert refused(service) == missing
    assert refused(service, subprotocols=["null"]) == missing


def test_ping_bad_token_refuses_upgrade(service: Service) -> None:
    """A bad token offered as subprotocol: no upgrade, the 401 envelope."""
    assert refused(service, subprotocols=["not-a-token"])["status"] == 401


def test_ping_plain_get_is_400(service: Service) -> None:
    """A GET (or POST) without upgrade headers answers the envelope 400 需要WebSocket连接."""
    for method in ("GET", "POST"):
        body = service.api(method, "/api/tools/ping")
        assert (body["status"], body["message"]) == (400, "需要WebSocket连接"), method


def test_ping_frame_over_64_kib_closes_1009(service: Service) -> None:
    """A frame larger than the WebSocket frame limit closes the socket (1009), audited as frame too large."""
    ws = connect(service)
    ws.send("x" * (MAX_FRAME_BYTES + 1))
    texts, code, _ = frames_until_close(ws)
    assert code == 1009 and texts == []
    wait_for(lambda: any(a.get("endReason") == "frame too large" for a in ping_audit(service)), 20, "audit end")


def test_ping_counts_as_a_session(make_service: Any) -> None:
    """WS_MAX_SESSIONS=1: a held ping fills the worker; the next one gets the error frame and close 1013."""
    svc = make_service(env={"WS_MAX_SESSIONS": "1", "PROBE_ENABLED": "false"}, workers=1)
    held = connect(svc)
    held.settimeout(20)
    held.send("held")
    assert str(held.recv()).startswith("held ")  # answered: the session is admitted
    assert open_sessions(svc) == {"ping": 1.0}
    texts, code, _ = frames_until_close(connect(svc))
    assert code == 1013 and "会话数已达上限" in texts[0]
    held.close()
    held.shutdown()
    wait_for(lambda: sum(open_sessions(svc).values()) == 0, 20, "session count back to 0")
    ends = wait_for(lambda: [a for a in ping_audit(svc) if "endReason" in a], 20, "audit end")
    assert ends[-1]["endReason"] == "client closed" and ends[-1]["user"] == "admin"
    assert not {"clusterId", "pod", "command"} & set(ends[-1])


def test_ping_idle_timeout_closes_1000(make_service: Any) -> None:
    """EXEC_IDLE_SECONDS without a frame ends a ping: the notice, then close 1000 ``idle timeout``."""
    svc = make_service(env={"EXEC_IDLE_SECONDS": "2", "PROBE_ENABLED": "false"}, workers=1)
    ws = connect(svc)
    ws.settimeout(20)
    ws.send("one")
    assert str(ws.recv()).startswith("one ")
    texts, code, reason = frames_until_close(ws)
    assert (code, reason) == (1000, "idle timeout") and texts == ["会话空闲超时, 已断开"]
    wait_for(lambda: any(a.get("endReason") == "idle timeout" for a in ping_audit(svc)), 20, "audit end")
