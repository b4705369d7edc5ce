"""Auth hardening over HTTP: logout revocation across processes, failed-login lockout, optional CORS."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from controllers.auth.revocation import EXPIRES_ANNOTATION, NAME_PREFIX, REVOCATION_LABEL, token_key
from controlplane.harness import Cluster
from tests.service import ADMIN_PASSWORD, JWT_KEY, Service, unique
from tests.test_auth_routes import BAD_LOGIN, BAD_TOKEN, go_token

LOGOUT_OK = {"status": 200, "message": "退出成功", "data": {}}
LOCKED = "登录失败次数过多,请稍后再试"


def list_status(svc: Service, token: str) -> dict:
    """GET /api/cluster/list with ``token``; the envelope."""
    return svc.api("GET", "/api/cluster/list", token=token)


def wait_refused(svc: Service, token: str, bound: float = 8.0) -> float:
    """Poll until ``token`` is refused; the seconds it took (fails after ``bound``)."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if list_status(svc, token) == BAD_TOKEN:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"token still accepted after {bound} s")


def revocation_records(meta: Cluster, namespace: str) -> list[dict]:
    """The revocation Secrets of a namespace, read directly from the metadata API server."""
    status, body = meta.request(
        "GET", f"/api/v1/namespaces/{namespace}/secrets?labelSelector={REVOCATION_LABEL}%3Dtrue"
    )
    assert status == 200, body
    return body["items"]


def create_record(meta: Cluster, namespace: str, key: str, expires_at: int) -> None:
    """Write a revocation record the way another replica would."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": NAME_PREFIX + key,
            "labels": {REVOCATION_LABEL: "true"},
            "annotations": {EXPIRES_ANNOTATION: str(expires_at)},
        },
    }
    status, answer = meta.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body)
    assert status == 201, answer


# logout ---------------------------------------------------------------------------------------------


def test_logout_refuses_the_token_at_once_in_the_same_process(make_service) -> None:
    svc = make_service(workers=1)
    token = svc.login()["data"]["token"]
    assert list_status(svc, token)["status"] == 200
    assert svc.api("GET", "/api/auth/logout", token=token) == LOGOUT_OK
    assert list_status(svc, token) == BAD_TOKEN
    fresh = svc.login()["data"]["token"]
    assert list_status(svc, fresh)["status"] == 200  # only the logged-out token is refused


def test_logout_on_one_replica_is_refused_by_another_shortly_after(make_service) -> None:
    namespace = unique("krm-rev")
    first = make_service(namespace=namespace, workers=1)
    second = make_service(namespace=namespace, workers=2)
    token = first.login()["data"]["token"]
    assert list_status(second, token)["status"] == 200
    assert first.api("POST", "/api/auth/logout", headers={"Authorization": f"Bearer {token}"}) == LOGOUT_OK
    took = wait_refused(second, token)
    assert took < 8  # refresh every 1 s by default; the bound only proves "no hang", not speed
    for _ in range(6):  # every worker of the second service, whichever answers
        assert list_status(second, token) == BAD_TOKEN


def test_revocation_record_holds_a_hash_and_the_expiry_never_the_token(make_service, meta: Cluster) -> None:
    svc = make_service(workers=1)
    token = svc.login()["data"]["token"]
    assert svc.api("GET", "/api/auth/logout", token=token) == LOGOUT_OK
    records = revocation_records(meta, svc.namespace)
    assert len(records) == 1
    record = records[0]
    assert record["metadata"]["name"] == NAME_PREFIX + token_key(token)
    exp = jwt.decode(token, JWT_KEY, algorithms=["HS256"])["exp"]
    assert record["metadata"]["annotations"][EXPIRES_ANNOTATION] == str(exp)
    assert not record.get("data")
    text = json.dumps(record)
    assert token not in text
    assert token.split(".")[2] not in text


def test_a_revocation_written_elsewhere_is_honoured(make_service, meta: Cluster) -> None:
    namespace = unique("krm-rev")
    assert meta.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    token = go_token()
    create_record(meta, namespace, token_key(token), int(time.time()) + 600)
    svc = make_service(namespace=namespace, workers=1)
    wait_refused(svc, token)
    assert list_status(svc, go_token(sub="admin2"))["status"] == 200


def test_expired_revocation_records_are_cleaned_up(make_service, meta: Cluster) -> None:
    namespace = unique("krm-rev")
    assert meta.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
    live, dead = "a" * 64, "b" * 64
    create_record(meta, namespace, live, int(time.time()) + 3600)
    create_record(meta, namespace, dead, int(time.time()) - 3600)
    make_service(namespace=namespace, workers=1)
    deadline = time.monotonic() + 10
    names = {r["metadata"]["name"] for r in revocation_records(meta, namespace)}
    while NAME_PREFIX + dead in names and time.monotonic() < deadline:
        time.sleep(0.2)
        names = {r["metadata"]["name"] for r in revocation_records(meta, namespace)}
    assert names == {NAME_PREFIX + live}


def test_logging_out_twice_is_fine(make_service) -> None:
    svc = make_service(workers=1)
    token = svc.login()["data"]["token"]
    assert svc.api("GET", "/api/auth/logout", token=token) == LOGOUT_OK
    assert svc.api("GET", "/api/auth/logout", token=token) == LOGOUT_OK


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "Bearer not.a.jwt", go_token(key="another-key-another-key-another-key")],
    ids=["none", "empty", "garbage", "bad-bearer", "other-key"],
)
def test_logout_without_a_valid_token_still_succeeds(service: Service, meta: Cluster, header: str | None) -> None:
    before = len(revocation_records(meta, service.namespace))
    headers = {} if header is None else {"Authorization": header}
    assert service.api("GET", "/api/auth/logout", auth=False, headers=headers) == LOGOUT_OK
    assert len(revocation_records(meta, service.namespace)) == before  # nothing recorded for a dead token


def test_logout_of_an_expired_token_succeeds(service: Service) -> None:
    expired = go_token(exp=int(time.time()) - 60)
    assert service.api("GET", "/api/auth/logout", token=expired) == LOGOUT_OK


# failed-login lockout -------------------------------------------------------------------------------


def test_repeated_failed_logins_lock_the_client_out(make_service) -> None:
    svc = make_service(workers=1, env={"LOGIN_MAX_FAILURES": "3", "LOGIN_LOCKOUT_SECONDS": "300"})
    assert svc.login(password="wrong-1") == BAD_LOGIN
    assert svc.login(password="wrong-2") == BAD_LOGIN
    third = svc.login(password="wrong-3")
    assert third["status"] == 401
    assert third["message"].startswith(LOCKED)
    locked = svc.login()  # the right password does not help while locked out
    assert locked["status"] == 401 and locked["data"] == {}
    assert locked["message"].startswith(LOCKED)
    assert "秒后重试" in locked["message"]
    wait = int(locked["message"].split("请 ")[1].split(" 秒")[0])
    assert 0 < wait <= 300
    assert "too many failed logins" in svc.log()


def test_lockout_is_per_username(make_service) -> None:
    svc = make_service(workers=1, env={"LOGIN_MAX_FAILURES": "2"})
    for _ in range(2):
        svc.login(username="mallory", password="x")
    assert svc.login(username="mallory", password="x")["message"].startswith(LOCKED)
    assert svc.login()["status"] == 200


def test_successful_login_resets_the_count(make_service) -> None:
    svc = make_service(workers=1, env={"LOGIN_MAX_FAILURES": "3"})
    for _ in range(3):
        assert svc.login(password="wrong") == BAD_LOGIN
        assert svc.login(password="wrong") == BAD_LOGIN
        assert svc.login()["status"] == 200


def test_lockout_ends_after_its_time(make_service) -> None:
    svc = make_service(workers=1, env={"LOGIN_MAX_FAILURES": "2", "LOGIN_LOCKOUT_SECONDS": "2"})
    svc.login(password="wrong")
    assert svc.login(password="wrong")["message"].startswith(LOCKED)
    assert svc.login()["message"].startswith(LOCKED)
    # Polled, not slept: the lock ends after 2 s; a correct login while locked does not extend it.
    deadline = time.monotonic() + 15
    while svc.login()["status"] != 200:
        assert time.monotonic() < deadline, "the lockout did not end"
        time.sleep(0.2)


def test_lockout_can_be_disabled(make_service) -> None:
    svc = make_service(workers=1, env={"LOGIN_MAX_FAILURES": "0"})
    for _ in range(8):
        assert svc.login(password="wrong") == BAD_LOGIN
    assert svc.login(password=ADMIN_PASSWORD)["status"] == 200


def test_malformed_login_bodies_do_not_count(make_service) -> None:
    svc = make_service(workers=1, env={"LOGIN_MAX_FAILURES": "2"})
    for _ in range(4):
        svc.api("POST", "/api/auth/login", auth=False, json={"username": "admin"})
    assert svc.login()["status"] == 200


# CORS -----------------------------------------------------------------------------------------------

UI = "https://ui.example.com"
PREFLIGHT = {
    "Origin": UI,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture(scope="module")
def cors_service(meta: Cluster, tmp_path_factory: pytest.TempPathFactory):
    """A service with CORS for two origins."""
    svc = Service(meta, tmp_path_factory.mktemp("cors"), env={"CORS_ALLOW_ORIGINS": f"{UI}, http://localhost:5173"})
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.mark.parametrize("path", ["/api/cluster/add", "/api/cluster/list", "/api/auth/login", "/api/cluster/nope"])
def test_preflight_is_answered_without_a_token(cors_service: Service, path: str) -> None:
    resp = cors_service.call("OPTIONS", path, auth=False, headers=PREFLIGHT)
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == UI
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "Origin" in resp.headers["Vary"]


def test_preflight_from_another_origin_gets_no_allow_header(cors_service: Service) -> None:
    resp = cors_service.call(
        "OPTIONS", "/api/cluster/list", auth=False, headers={**PREFLIGHT, "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Access-Control-Allow-Headers" not in resp.headers


def test_real_request_from_an_allowed_origin_carries_the_allow_header(cors_service: Service) -> None:
    resp = cors_service.call("GET", "/api/cluster/list", headers={"Origin": "http://localhost:5173"})
    assert resp.json()["status"] == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"


def test_a_401_to_an_allowed_origin_is_readable_by_the_browser(cors_service: Service) -> None:
    resp = cors_service.call("GET", "/api/cluster/list", auth=False, headers={"Origin": UI})
    assert resp.json()["status"] == 401  # the frontend must see it to go back to /login
    assert resp.headers["Access-Control-Allow-Origin"] == UI


def test_real_request_from_another_origin_has_no_allow_header(cors_service: Service) -> None:
    resp = cors_service.call("GET", "/api/cluster/list", headers={"Origin": "https://evil.example"})
    assert resp.json()["status"] == 200  # CORS is the browser's check; the server only withholds the header
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_no_cors_headers_by_default(service: Service) -> None:
    resp = service.call("OPTIONS", "/api/cluster/list", auth=False, headers=PREFLIGHT)
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = service.call("GET", "/api/cluster/list", headers={"Origin": UI})
    assert "Access-Control-Allow-Origin" not in resp.headers
