"""The kubeconfig policy and the size limits, over HTTP through /api/cluster/add and update.

Every server address here is on loopback (127.0.0.0/8 or localhost): even if the address guard were
broken, no packet would leave the machine. Denied addresses are loopback ones denied by configuration.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket

import pytest

from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.service import Service

CLUSTER_INFO = "无法获取集群信息: "


def add(svc: Service, cluster_id: str, kubeconfig: str, **fields) -> dict:
    """POST /api/cluster/add."""
    return svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig, **fields})


def stored(meta: Cluster, svc: Service, cluster_id: str) -> tuple[int, dict]:
    """The cluster Secret as the metadata API server has it."""
    return meta.request("GET", f"/api/v1/namespaces/{svc.namespace}/secrets/{cluster_id}")


def with_user(target: Cluster, user: dict) -> str:
    """target's kubeconfig with another user entry."""
    config = target.kubeconfig()
    config["users"][0]["user"] = user
    return json.dumps(config)


def with_cluster_fields(target: Cluster, **fields) -> str:
    """target's kubeconfig with extra cluster fields."""
    config = target.kubeconfig()
    config["clusters"][0]["cluster"].update(fields)
    return json.dumps(config)


# the kubeconfig policy ------------------------------------------------------------------------------

REJECTIONS: dict[str, tuple[dict, str]] = {
    "exec": (
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "touch", "args": ["/tmp/pwned"]}},
        "users[0].user.exec",
    ),
    "auth-provider": ({"auth-provider": {"name": "oidc", "config": {"id-token": "x"}}}, "users[0].user.auth-provider"),
    "tokenFile": ({"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}, "users[0].user.tokenFile"),
    "client-certificate": (
        {"client-certificate": "/etc/ssl/private/client.crt", "client-key-data": "eA=="},
        "users[0].user.client-certificate",
    ),
    "client-key": (
        {"client-certificate-data": "eA==", "client-key": "/etc/ssl/private/client.key"},
        "users[0].user.client-key",
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_user_fields_the_policy_refuses_are_named(
    service: Service, meta: Cluster, target1: Cluster, cluster_id, case: str
) -> None:
    user, field = REJECTIONS[case]
    body = add(service, cluster_id, with_user(target1, user))
    assert body["status"] == 400
    assert body["message"].startswith(CLUSTER_INFO)
    assert field in body["message"], body
    assert stored(meta, service, cluster_id)[0] == 404


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"certificate-authority": "/etc/ssl/certs/ca-certificates.crt"}, "clusters[0].cluster.certificate-authority"),
        ({"proxy-url": "http://127.0.0.1:3128"}, "clusters[0].cluster.proxy-url"),
    ],
    ids=["certificate-authority", "proxy-url"],
)
def test_cluster_fields_the_policy_refuses_are_named(
    service: Service, meta: Cluster, target1: Cluster, cluster_id, fields: dict, field: str
) -> None:
    body = add(service, cluster_id, with_cluster_fields(target1, **fields))
    assert body["status"] == 400
    assert body["message"].startswith(CLUSTER_INFO)
    assert field in body["message"], body
    assert stored(meta, service, cluster_id)[0] == 404


def test_update_applies_the_policy_and_keeps_the_record(
    service: Service, meta: Cluster, target1: Cluster, cluster_id
) -> None:
    original = kubeconfig_text(target1)
    assert add(service, cluster_id, original)["status"] == 200
    body = service.api(
        "POST",
        "/api/cluster/update",
        json={"id": cluster_id, "kubeconfig": with_user(target1, {"tokenFile": "/etc/shadow"})},
    )
    assert body["status"] == 400
    assert "users[0].user.tokenFile" in body["message"]
    secret = stored(meta, service, cluster_id)[1]
    assert base64.b64decode(secret["data"]["kubeconfig"]).decode() == original


def echo_exec_user(target: Cluster) -> dict:
    """An exec plugin that runs ``echo`` to print an ExecCredential with the admin token (harmless)."""
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": target.tokens["admin"]},
    }
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "echo",
            "args": [json.dumps(credential)],
            "interactiveMode": "Never",
        }
    }


def test_exec_plugin_is_refused_by_default(service: Service, target1: Cluster, cluster_id) -> None:
    body = add(service, cluster_id, with_user(target1, echo_exec_user(target1)))
    assert body["status"] == 400
    assert "users[0].user.exec: exec plugins are not allowed (command 'echo')" in body["message"]


def test_exec_plugin_allowed_by_name_is_used(make_service, meta: Cluster, target1: Cluster, cluster_id) -> None:
    svc = make_service(env={"KUBECONFIG_ALLOW_EXEC": "echo"})
    assert add(svc, cluster_id, with_user(target1, echo_exec_user(target1))) == {
        "status": 200,
        "message": "添加成功",
        "data": {},
    }
    assert stored(meta, svc, cluster_id)[1]["metadata"]["annotations"]["version"] == "v1.36.3"
    other = dict(echo_exec_user(target1))
    other["exec"] = {**other["exec"], "command": "touch", "args": ["/tmp/pwned"]}
    body = add(svc, cluster_id + "-2", with_user(target1, other))
    assert "users[0].user.exec: exec plugins are not allowed (command 'touch')" in body["message"]
    preload = {"exec": {**echo_exec_user(target1)["exec"], "env": [{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]}}
    body = add(svc, cluster_id + "-3", with_user(target1, preload))
    assert "users[0].user.exec.env[0]" in body["message"]


def test_denied_loopback_address_is_refused_naming_the_server(
    make_service, meta: Cluster, target1: Cluster, cluster_id
) -> None:
    svc = make_service(env={"KUBECONFIG_DENY_CIDRS": "127.0.0.2/32"})
    # 127.0.0.2 is loopback and nothing listens there on this port: a broken guard still sends nothing out.
    body = add(svc, cluster_id, kubeconfig_text(target1, server=f"https://127.0.0.2:{target1.port}"))
    assert body["status"] == 400
    assert "clusters[0].cluster.server: address 127.0.0.2 is in a denied range" in body["message"]
    assert stored(meta, svc, cluster_id)[0] == 404
    assert add(svc, cluster_id, kubeconfig_text(target1))["status"] == 200  # 127.0.0.1 is still allowed


def test_denied_range_applies_to_resolved_host_names(make_service, target1: Cluster, cluster_id) -> None:
    svc = make_service(env={"KUBECONFIG_DENY_CIDRS": "127.0.0.0/8,::1/128"})
    body = add(svc, cluster_id, kubeconfig_text(target1, server=f"https://localhost:{target1.port}"))
    assert body["status"] == 400
    assert "clusters[0].cluster.server: address" in body["message"]
    assert "is in a denied range" in body["message"]


def test_allowed_range_wins_over_a_denied_one(make_service, target1: Cluster, cluster_id) -> None:
    svc = make_service(env={"KUBECONFIG_DENY_CIDRS": "127.0.0.0/8", "KUBECONFIG_ALLOW_CIDRS": "127.0.0.1/32"})
    assert add(svc, cluster_id, kubeconfig_text(target1))["status"] == 200
    body = add(svc, cluster_id + "-b", kubeconfig_text(target1, server=f"https://127.0.0.3:{target1.port}"))
    assert "address 127.0.0.3 is in a denied range" in body["message"]


def two_contexts(target: Cluster, current: str) -> str:
    """A kubeconfig with a good context and a bad one (exec, token file, a refused loopback port)."""
    config = target.kubeconfig()
    config["clusters"].append({"name": "bad", "cluster": {"server": "https://127.0.0.2:1", "proxy-url": "http://x"}})
    config["users"].append(
        {"name": "bad-user", "user": {"tokenFile": "/etc/shadow", "exec": {"command": "touch", "apiVersion": "v1"}}}
    )
    config["contexts"].append({"name": "bad", "context": {"cluster": "bad", "user": "bad-user"}})
    config["current-context"] = current
    return json.dumps(config)


def test_multi_context_kubeconfig_uses_the_current_context(
    service: Service, meta: Cluster, target1: Cluster, cluster_id
) -> None:
    text = two_contexts(target1, current=target1.name)
    assert add(service, cluster_id, text)["status"] == 200
    secret = stored(meta, service, cluster_id)[1]
    assert secret["metadata"]["annotations"]["status"] == "Active"
    assert base64.b64decode(secret["data"]["kubeconfig"]).decode() == text  # stored as given


def test_multi_context_kubeconfig_with_a_bad_current_context_is_refused(
    service: Service, target1: Cluster, cluster_id
) -> None:
    body = add(service, cluster_id, two_contexts(target1, current="bad"))
    assert body["status"] == 400
    assert "clusters[1].cluster.proxy-url" in body["message"]


# limits ---------------------------------------------------------------------------------------------


def test_body_over_the_limit_is_400_request_too_large(service: Service, cluster_id) -> None:
    payload = json.dumps({"id": cluster_id, "kubeconfig": "x" * (2 * 1024 * 1024)}).encode()
    body = service.api("POST", "/api/cluster/add", data=payload, headers={"Content-Type": "application/json"})
    assert body == {"status": 400, "message": "请求体过大", "data": {}}
    assert service.api("GET", "/api/cluster/list")["status"] == 200  # the service carries on


def test_chunked_body_over_the_limit_is_400_request_too_large(service: Service) -> None:
    def chunks():
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MiB in all, no Content-Length

    body = service.api("POST", "/api/cluster/add", data=chunks(), headers={"Content-Type": "application/json"})
    assert body["status"] == 400
    assert body["message"] in ("请求体过大", "添加集群的配置信息不完整: request body is not valid JSON")


def test_configured_body_limit_is_honoured(make_service) -> None:
    svc = make_service(env={"MAX_BODY_BYTES": "4096"})
    body = svc.api("POST", "/api/cluster/add", json={"id": "x", "kubeconfig": "y" * 5000})
    assert body == {"status": 400, "message": "请求体过大", "data": {}}
    assert svc.api("POST", "/api/auth/login", auth=False, json={"username": "admin", "password": "p" * 5000}) == {
        "status": 400,
        "message": "请求体过大",
        "data": {},
    }


def test_kubeconfig_over_the_limit_is_a_clear_400(service: Service, meta: Cluster, cluster_id) -> None:
    body = add(service, cluster_id, "a" * (512 * 1024 + 1))
    assert body["status"] == 400
    assert body["message"] == "添加集群的配置信息不完整: kubeconfig: larger than 524288 bytes"
    assert stored(meta, service, cluster_id)[0] == 404


def test_kubeconfig_limit_counts_bytes_not_characters(service: Service, cluster_id) -> None:
    body = add(service, cluster_id, "集" * (512 * 1024 // 3 + 1))  # 3 bytes each in UTF-8
    assert body["message"].endswith("kubeconfig: larger than 524288 bytes")


def test_update_with_an_oversized_kubeconfig_is_a_clear_400(service: Service, target1: Cluster, cluster_id) -> None:
    assert add(service, cluster_id, kubeconfig_text(target1))["status"] == 200
    body = service.api("POST", "/api/cluster/update", json={"id": cluster_id, "kubeconfig": "a" * (600 * 1024)})
    assert body["message"] == "更新集群的配置信息不完整: kubeconfig: larger than 524288 bytes"


@pytest.mark.parametrize("field", ["displayName", "city", "district"])
def test_text_field_over_256_characters_is_400(
    service: Service, meta: Cluster, target1: Cluster, cluster_id, field: str
) -> None:
    body = add(service, cluster_id, kubeconfig_text(target1), **{field: "名" * 257})
    assert body["status"] == 400
    assert body["message"] == f"添加集群的配置信息不完整: {field}: Longer than maximum length 256."
    assert stored(meta, service, cluster_id)[0] == 404


def test_text_field_of_256_characters_is_kept_whole(
    service: Service, meta: Cluster, target1: Cluster, cluster_id
) -> None:
    assert add(service, cluster_id, kubeconfig_text(target1), displayName="名" * 256)["status"] == 200
    assert stored(meta, service, cluster_id)[1]["metadata"]["annotations"]["displayName"] == "名" * 256


def test_overlong_login_fields_are_a_failed_login(service: Service) -> None:
    body = service.api("POST", "/api/auth/login", auth=False, json={"username": "a" * 257, "password": "x"})
    assert body == {"status": 401, "message": "用户名或密码错误", "data": {}}


# malformed HTTP: answered by gunicorn before the app, never a 5xx, and the service carries on ---------


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /api/cluster/list HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /api/cluster/list HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/cluster/add HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"GET /api/cluster/list HTTP/1.1\r\nHost: x\r\nExpect: 100-nope\r\n\r\n",
        b"GET /api/cluster/list HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
    ],
    ids=["request-line", "version", "huge-header", "huge-url", "two-lengths", "expect", "header-name"],
)
def test_malformed_http_is_refused_without_a_5xx(service: Service, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        with contextlib.suppress(OSError):
            while not answer.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4") or answer == b"", status_line
    assert service.api("GET", "/api/cluster/list")["status"] == 200


@pytest.mark.parametrize("path", ["/api/cluster/add", "/api/cluster/update", "/api/cluster/delete", "/api/auth/login"])
def test_malformed_chunked_body_is_a_400_envelope(service: Service, path: str) -> None:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {service.token()}\r\n"
    raw = head.encode() + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 20:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 200 OK"), head_part
    envelope = json.loads(body[: int(head_part.split(b"Content-Length: ")[1].split(b"\r\n")[0])])
    assert envelope == {"status": 400, "message": "请求体格式错误", "data": {}}
