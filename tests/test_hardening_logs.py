"""No secret in the logs: a whole run on its own service at debug level, then its full log is searched."""

from __future__ import annotations

import base64
import json

from controlplane.harness import Cluster
from tests.service import ADMIN_PASSWORD, JWT_KEY

WRONG_PASSWORD = "hunter2-wrong-guess-for-the-log-test"


def pem_body_lines(pem: bytes) -> list[str]:
    """The base64 lines of a PEM block (any of them in a log would be a leak)."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]


def test_a_whole_run_logs_no_secret(make_service, meta: Cluster, target1: Cluster, target2: Cluster) -> None:
    svc = make_service(workers=2, env={"LOG_LEVEL": "debug"})
    token_config = target1.kubeconfig()
    cert_config = target2.kubeconfig("cert-admin")
    user = cert_config["users"][0]["user"]
    client_key_data, client_cert_data = user["client-key-data"], user["client-certificate-data"]
    ca_data = token_config["clusters"][0]["cluster"]["certificate-authority-data"]

    token = svc.login()["data"]["token"]
    assert (
        svc.api("POST", "/api/cluster/add", token=token, json={"id": "logs-a", "kubeconfig": json.dumps(token_config)})[
            "status"
        ]
        == 200
    )
    assert (
        svc.api("POST", "/api/cluster/add", token=token, json={"id": "logs-b", "kubeconfig": json.dumps(cert_config)})[
            "status"
        ]
        == 200
    )
    for cluster_id in ("logs-a", "logs-b"):
        assert svc.api("GET", f"/api/cluster/get?id={cluster_id}", token=token)["status"] == 200
    item = svc.api("GET", "/api/cluster/get?clusterId=logs-a", token=token)["data"]["item"]
    assert svc.api("POST", "/api/cluster/update", token=token, json={**item, "displayName": "x"})["status"] == 200
    assert (
        svc.api(
            "POST",
            "/api/cluster/update",
            token=token,
            json={"id": "logs-b", "kubeconfig": json.dumps(target2.kubeconfig("cert-admin"))},
        )["status"]
        == 200
    )
    assert svc.api("GET", "/api/cluster/list", headers={"Authorization": f"Bearer {token}"})["status"] == 200
    assert svc.login(password=WRONG_PASSWORD)["status"] == 401
    # Broken and refused kubeconfigs that carry real credentials: the reasons must not echo them.
    broken = json.dumps(token_config)[:-40] + f"\n  client-key-data: {client_key_data}\n  token: [ {{"
    assert (
        svc.api("POST", "/api/cluster/add", token=token, json={"id": "logs-c", "kubeconfig": broken})["status"] == 400
    )
    refused = dict(cert_config)
    refused["users"] = [
        {
            "name": cert_config["users"][0]["name"],
            "user": {**user, "tokenFile": "/etc/shadow", "token": target1.tokens["admin"]},
        }
    ]
    body = svc.api("POST", "/api/cluster/add", token=token, json={"id": "logs-d", "kubeconfig": json.dumps(refused)})
    assert body["status"] == 400
    bad_ca = json.loads(json.dumps(token_config))
    bad_ca["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(target2.ca_pem()).decode()
    assert (
        svc.api("POST", "/api/cluster/add", token=token, json={"id": "logs-e", "kubeconfig": json.dumps(bad_ca)})[
            "status"
        ]
        == 400
    )
    # A token where it does not belong (a query string ends up in the access log).
    svc.api("GET", f"/api/cluster/get?id=logs-a&token={token}", token=token)
    assert svc.api("GET", "/api/auth/logout", token=token)["status"] == 200
    assert svc.api("GET", "/api/cluster/list", token=token)["status"] == 401
    second = svc.login()["data"]["token"]
    assert svc.api("GET", "/api/cluster/delete?id=logs-a", token=second)["status"] == 200
    svc.stop()  # flush everything the workers wrote

    log = svc.log()
    for expected in ("login succeeded", "login failed", "cluster add done", "cluster update done", "token revoked"):
        assert expected in log, expected  # the run really was logged
    secrets = {
        "admin password": ADMIN_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "first token": token,
        "second token": second,
        "first token signature": token.split(".")[2],
        "JWT key": JWT_KEY,
        "target1 admin token": target1.tokens["admin"],
        "target2 admin token": target2.tokens["admin"],
        "meta admin token": meta.tokens["admin"],
        "certificate-authority-data": ca_data,
        "client-key-data": client_key_data,
        "client-certificate-data": client_cert_data,
    }
    for name, value in secrets.items():
        assert value not in log, f"{name} found in the log"
    for line in pem_body_lines(base64.b64decode(client_key_data)) + pem_body_lines(base64.b64decode(ca_data)):
        assert line not in log, "a PEM line found in the log"
    assert "Traceback" not in log
