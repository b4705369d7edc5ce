"""/api/auth and the token check, over HTTP on the real control plane (contract section 3)."""

from __future__ import annotations

import hashlib
import time

import jwt
import pytest

from tests.service import ADMIN_PASSWORD, JWT_KEY, Service

NO_TOKEN = {"status": 401, "message": "请求未携带token,请登录后尝试", "data": {}}
BAD_TOKEN = {"status": 401, "message": "Token验证未通过", "data": {}}
BAD_LOGIN = {"status": 401, "message": "用户名或密码错误", "data": {}}


def go_token(key: str = JWT_KEY, **overrides) -> str:
    """A token minted the way the Go backend mints it (jwt-go RegisteredClaims plus username)."""
    now = int(time.time())
    claims = {"username": "admin", "iss": "kubeasy", "sub": "admin", "exp": now + 600, "nbf": now, "iat": now}
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="HS256")


def test_login_returns_a_token_in_the_envelope(service: Service) -> None:
    body = service.login()
    assert body["status"] == 200
    assert body["message"] == "登录成功"
    assert isinstance(body["data"]["token"], str)


def test_token_carries_the_go_claims_signed_hs256(service: Service) -> None:
    token = service.login()["data"]["token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, JWT_KEY, algorithms=["HS256"])
    assert claims["username"] == "admin"
    assert claims["sub"] == "admin"
    assert claims["iss"]
    assert claims["exp"] - claims["iat"] == 120 * 60
    assert claims["nbf"] <= claims["iat"] + 1


def test_login_accepts_the_username_alias_of_the_vue_copy(service: Service) -> None:
    body = service.api("POST", "/api/auth/login", auth=False, json={"userName": "admin", "password": ADMIN_PASSWORD})
    assert body["status"] == 200


@pytest.mark.parametrize(
    ("user_key", "password_key"), [("UserName", "PassWord"), ("USERNAME", "PASSWORD"), ("username", "Password")]
)
def test_login_binds_keys_in_any_letter_case_as_go_does(service: Service, user_key: str, password_key: str) -> None:
    body = service.api("POST", "/api/auth/login", auth=False, json={user_key: "admin", password_key: ADMIN_PASSWORD})
    assert body["status"] == 200
    assert body["data"]["token"]


def test_login_with_disagreeing_spellings_of_a_key_is_401(service: Service) -> None:
    """Go would keep the last spelling; which one was meant is unknown, so the body is a bind error."""
    payload = {"username": "admin", "UserName": "root", "password": ADMIN_PASSWORD}
    assert service.api("POST", "/api/auth/login", auth=False, json=payload) == BAD_LOGIN


def test_login_with_agreeing_spellings_of_a_key_is_accepted(service: Service) -> None:
    payload = {"username": "admin", "UserName": "admin", "password": ADMIN_PASSWORD}
    assert service.api("POST", "/api/auth/login", auth=False, json=payload)["status"] == 200


@pytest.mark.parametrize("transform", [str.upper, str.lower])
def test_login_accepts_the_md5_hex_of_the_password(service: Service, transform) -> None:
    md5 = transform(hashlib.md5(ADMIN_PASSWORD.encode()).hexdigest())
    assert service.login(password=md5)["status"] == 200


def test_login_accepts_md5_configured_credentials(make_service) -> None:
    md5 = hashlib.md5(b"s3cret-plain").hexdigest().upper()
    svc = make_service(env={"USERNAME": hashlib.md5(b"admin").hexdigest().upper(), "PASSWORD": md5})
    assert svc.login("admin", "s3cret-plain")["status"] == 200
    assert svc.login("admin", "wrong")["data"] == {}


def test_wrong_password_is_401(service: Service) -> None:
    assert service.login(password="nope") == BAD_LOGIN


def test_wrong_username_is_401(service: Service) -> None:
    assert service.login(username="root") == BAD_LOGIN


@pytest.mark.parametrize("payload", [b"", b"{", b"[]", b'{"username": 1, "password": 2}', b'{"username": "admin"}'])
def test_malformed_login_body_is_401(service: Service, payload: bytes) -> None:
    assert service.api("POST", "/api/auth/login", auth=False, data=payload) == BAD_LOGIN


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_logout_needs_no_token(service: Service, method: str) -> None:
    assert service.api(method, "/api/auth/logout", auth=False) == {"status": 200, "message": "退出成功", "data": {}}


@pytest.mark.parametrize("header", [None, "", "Bearer ", "bearer"])
def test_missing_token_is_401(service: Service, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    assert service.api("GET", "/api/cluster/list", auth=False, headers=headers) == NO_TOKEN


def test_raw_and_bearer_tokens_are_both_accepted(service: Service) -> None:
    token = service.token()
    for header in (token, f"Bearer {token}"):
        assert service.api("GET", "/api/cluster/list", headers={"Authorization": header})["status"] == 200


def test_token_minted_by_the_go_backend_is_accepted(service: Service) -> None:
    assert service.api("GET", "/api/cluster/list", token=go_token())["status"] == 200


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        go_token(key="another-key-another-key-another-key"),
        go_token(exp=int(time.time()) - 60),
        go_token(nbf=int(time.time()) + 3600),
        jwt.encode({"sub": "admin", "username": "admin", "exp": int(time.time()) + 600}, None, algorithm="none"),  # type: ignore[arg-type]  # an unsigned token on purpose
        jwt.encode({"sub": "admin", "exp": int(time.time()) + 600}, JWT_KEY, algorithm="HS512"),
    ],
    ids=["garbage", "other-key", "expired", "not-yet-valid", "alg-none", "hs512"],
)
def test_invalid_tokens_are_401(service: Service, token: str) -> None:
    assert service.api("GET", "/api/cluster/list", token=token) == BAD_TOKEN


def test_tampered_token_is_401(service: Service) -> None:
    header, _payload, signature = service.token().split(".")
    forged = jwt.utils.base64url_encode(b'{"sub":"root","username":"root","exp":9999999999}').decode()
    assert service.api("GET", "/api/cluster/list", token=f"{header}.{forged}.{signature}") == BAD_TOKEN


def test_jwt_expire_time_sets_the_token_lifetime(make_service) -> None:
    svc = make_service(env={"JWT_EXPIRE_TIME": "1"})
    token = svc.login()["data"]["token"]
    claims = jwt.decode(token, JWT_KEY, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60


def test_unknown_api_route_is_404_with_a_token_and_401_without(service: Service) -> None:
    assert service.api("GET", "/api/cluster/nope")["status"] == 404
    assert service.api("GET", "/api/cluster/nope", auth=False) == NO_TOKEN


def test_health_endpoints_need_no_token(service: Service) -> None:
    assert service.call("GET", "/healthz", auth=False).json() == {"status": "ok"}
    assert service.call("GET", "/readyz", auth=False).status_code == 200


def test_unknown_query_parameters_are_ignored(service: Service) -> None:
    assert service.api("GET", "/api/cluster/list?timeStamp=1700000000000&timestamp=1")["status"] == 200
