"""Hostile and malformed requests, generated with hypothesis, against the shared service over real HTTP.

Every answer: no HTTP 500, no traceback; under /api always HTTP 200 with the envelope (status, message,
data in that order, data an object). Afterwards the registry (read directly from the metadata API
server) is exactly what it was. Requests are sent with http.client so that paths go out as written
(``../`` included: requests would normalise them).

Network safety: every server address in a generated kubeconfig is a loopback IP literal or is never
resolved (no host names at all, so no DNS query can leave the machine); port 1 refuses at once.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.constants import DEFAULT_CLUSTER_LABEL
from controlplane.harness import Cluster
from tests.conftest import kubeconfig_text
from tests.service import JWT_KEY, Service, unique
from tests.test_auth_routes import go_token

MAX_EXAMPLES = 250  # one request each: any route, any part hostile
KUBECONFIG_EXAMPLES = 100  # add/update bodies that get as far as the kubeconfig checks and the probe
API_STATUSES = {200, 400, 401, 404}

# --- values --------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
huge_text = st.builds(lambda ch, n: ch * n, st.characters(codec="utf-8"), st.integers(1_000, 60_000))
nasty_text = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\u202e",
        "null",
        "true",
        "[]",
        "{}",
        "../../etc/passwd",
        "..",
        ".",
        "%2e%2e%2f",
        "%00",
        "a/b",
        "a\\b",
        "集群",
        "ＡＢＣ",
        "e\u0301",
        "\ud7ff",
        "😀" * 10,
        "<script>alert(1)</script>",
        "' OR '1'='1",
        "${jndi:ldap://127.0.0.1:1/a}",
        "{{7*7}}",
        "\r\nX-Injected: 1",
        "a" * 254,
        "A" * 63,
    ]
)
texts = st.text(max_size=80) | nasty_text | huge_text


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, picked with the given weights."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


valid_ids = st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?\Z")
ids = weighted(
    (6, valid_ids),
    (2, nasty_text),
    (1, st.text(max_size=40)),  # mostly well-formed, to get further
    (1, st.sampled_from(["krm-backend-auth", "default-token", "kube-root-ca.crt"])),
)
short_texts = st.text(max_size=80) | nasty_text

LOOPBACK_OR_UNPARSABLE_SERVERS = [
    "https://127.0.0.1:1",
    "http://127.0.0.1:1",
    "https://127.0.0.2:1",
    "https://[::1]:1",
    "https://127.0.0.1:99999",
    "https://127.0.0.1:abc",
    "https://127.0.0.1:1/%2e%2e/",
    "https://u:p@127.0.0.1:1",
    "ftp://127.0.0.1:1",
    "file:///etc/passwd",
    "unix:///var/run/docker.sock",
    "",
    "   ",
    "https://",
    "https://[::1",
    "127.0.0.1:1",
]
HOSTILE_USERS = [
    {"token": "x"},
    {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
    {"client-certificate": "/etc/ssl/private/a.crt", "client-key": "/etc/ssl/private/a.key"},
    {"client-certificate-data": "!!!", "client-key-data": "bm90IGEga2V5"},
    {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "touch", "args": ["/tmp/krm-pwned"]}},
    {"exec": {"command": "sh", "args": ["-c", "id"], "env": [{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]}},
    {"auth-provider": {"name": "oidc", "config": {"id-token": "x", "idp-issuer-url": "https://127.0.0.1:1"}}},
    {"username": "admin", "password": "admin"},
    {},
]
HOSTILE_TEXTS = [
    "a: &a [*a, *a, *a]\nb: &b [*a, *a]\nc: [*b, *b, *b]",
    "!!python/object/apply:os.system ['touch /tmp/krm-pwned']",
    "{" * 3000 + "}" * 3000,
    "[" * 3000,
    "current-context: x\ncontexts: 5\n",
    "\t\x00\xff",
    "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: !!binary AAAA\n",
    "---\n---\n---\n",
]


@st.composite
def kubeconfigs(draw: st.DrawFn) -> Any:
    """A kubeconfig value: wrong types, random or hostile text, or a structure pointing only at loopback."""
    kind = draw(
        st.sampled_from(
            [
                "json",
                "text",
                "text",
                "hostile-text",
                "hostile-text",
                "structured",
                "structured",
                "structured",
                "structured-json",
                "structured-json",
            ]
        )
    )
    if kind == "json":
        return draw(json_values)
    if kind == "text":
        # No "server" key at all: random text can never name a host that would be resolved.
        return draw(texts.filter(lambda t: "server" not in t))
    if kind == "hostile-text":
        return draw(st.sampled_from(HOSTILE_TEXTS))
    cluster: dict[str, Any] = {"server": draw(st.sampled_from(LOOPBACK_OR_UNPARSABLE_SERVERS))}
    if draw(st.booleans()):
        cluster["certificate-authority-data"] = draw(st.sampled_from(["", "!!notbase64", "Y2E=", "x" * 5000]))
    if draw(st.booleans()):
        cluster[draw(st.sampled_from(["certificate-authority", "proxy-url", "insecure-skip-tls-verify"]))] = draw(
            st.sampled_from(["/etc/passwd", "http://127.0.0.1:1", True, 7])
        )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": draw(st.sampled_from(["c", "missing", "", None])),
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": draw(st.sampled_from(HOSTILE_USERS))}],
    }
    return json.dumps(config) if kind == "structured-json" else config_yaml(config)


def config_yaml(config: dict) -> str:
    """JSON is YAML; indenting makes it look like a pasted file."""
    return json.dumps(config, indent=2)


def tokens(valid: str) -> st.SearchStrategy[str | None]:
    """Authorization header values: none, garbage, forged, expired, or the valid one (dressed up or not)."""
    now = int(time.time())
    forged = [
        go_token(key="another-key-another-key-another-key"),
        go_token(exp=now - 60),
        go_token(nbf=now + 3600),
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZG1pbiJ9.",
        go_token()[:-2],
        valid + "x",
        "Bearer " + valid + " trailing",
        "x" * 4000,
    ]
    garbage = st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=200
    )
    # Mostly valid, so that most requests get past the token check to the validation behind it.
    return weighted(
        (5, st.just(valid)), (1, st.just("Bearer " + valid)), (1, st.none()), (2, st.sampled_from(forged)), (1, garbage)
    )


def encoded(value: Any) -> str:
    """A query value as text, percent-encoded (raw bytes would make the request line itself invalid)."""
    return quote(value if isinstance(value, str) else json.dumps(value), safe="")[:1500]


@st.composite
def hostile_requests(draw: st.DrawFn, valid: str, seeds: list[str]) -> dict[str, Any]:
    """One request: method, raw path (with query), headers, body."""
    token = draw(tokens(valid))
    authorized = token in (valid, "Bearer " + valid)
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = token
    family = draw(st.sampled_from(["body", "body", "id", "id", "list", "login", "logout", "path", "method"]))
    method, path, body = "GET", "/api/cluster/list", None
    if family == "body":
        method = draw(st.sampled_from(["POST"] * 8 + ["PUT", "GET"]))
        path = draw(st.sampled_from(["/api/cluster/add", "/api/cluster/update"]))
        cluster_id = draw(weighted((7, ids), (2, st.sampled_from(seeds)), (1, json_values)))
        document: Any = {"id": cluster_id}
        for key in ("displayName", "city", "district"):
            if draw(st.booleans()):
                document[key] = draw(weighted((8, short_texts), (1, texts), (1, json_values)))
        kubeconfig = draw(kubeconfigs())
        if cluster_id in seeds and authorized and path.endswith("update"):
            # An empty kubeconfig keeps the stored one (a legitimate edit): send a broken one instead.
            kubeconfig = kubeconfig if isinstance(kubeconfig, str) and kubeconfig.strip() else "clusters: ["
        document["kubeconfig"] = kubeconfig
        for alias in draw(
            st.lists(st.sampled_from(["clusterId", "clusterid", "cluster_id", "version", "status"]), max_size=2)
        ):
            document[alias] = draw(ids | json_values)
        if draw(st.sampled_from([False] * 19 + [True])):  # hypothesis favours the first choices
            document = draw(json_values)  # not an object at all
        shape = draw(st.sampled_from(["json"] * 6 + ["bytes", "form", "deep"]))
        if shape == "json":
            body = json.dumps(document, ensure_ascii=draw(st.booleans())).encode()
        elif shape == "bytes":
            body = draw(st.binary(max_size=300))
        elif shape == "form":
            body = f"id={encoded(cluster_id)}&kubeconfig={encoded(kubeconfig)}".encode()
        else:
            body = b'{"id":' + b"[" * 5000 + b"]" * 5000 + b"}"
        headers["Content-Type"] = draw(
            st.sampled_from(
                [
                    "application/json",
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "application/json; charset=latin-1",
                ]
            )
        )
    elif family == "id":
        method = draw(st.sampled_from(["GET", "POST", "DELETE"]))
        route = draw(st.sampled_from(["/api/cluster/get", "/api/cluster/delete"]))
        pool = ids if (authorized and route.endswith("delete")) else ids | st.sampled_from(seeds)
        value = draw(pool.filter(lambda v: v not in seeds) if authorized and route.endswith("delete") else pool)
        keys = draw(
            st.lists(
                st.sampled_from(["id", "clusterId", "clusterid", "cluster_id", "ID", "id[]"]), min_size=0, max_size=3
            )
        )
        path = route + ("?" + "&".join(f"{k}={encoded(value)}" for k in keys) if keys else "")
        if method != "GET" and draw(st.booleans()):
            body = json.dumps({k: value for k in keys or ["id"]}).encode()
            headers["Content-Type"] = "application/json"
    elif family == "list":
        query = draw(
            st.dictionaries(
                st.sampled_from(["timeStamp", "timestamp", "limit", "labelSelector", "continue", "watch", "id"]),
                texts,
                max_size=3,
            )
        )
        path = "/api/cluster/list" + ("?" + "&".join(f"{k}={encoded(v)}" for k, v in query.items()) if query else "")
    elif family == "login":
        method = draw(st.sampled_from(["POST", "POST", "GET", "PUT"]))
        path = "/api/auth/login"
        login: Any = {
            draw(st.sampled_from(["username", "userName", "user"])): draw(texts | json_values),
            "password": draw(texts | json_values),
        }
        if login.get("username") == "admin" or login.get("userName") == "admin":
            login["password"] = "not-the-password"  # never lock the shared service's admin out: see the limiter
            login["username"] = "admin-fuzz"
        body = json.dumps(login).encode() if draw(st.booleans()) else draw(st.binary(max_size=200))
    elif family == "logout":
        method = draw(st.sampled_from(["GET", "POST", "DELETE"]))
        path = "/api/auth/logout"
    elif family == "path":
        method = draw(st.sampled_from(["GET", "POST"]))
        path = draw(
            st.sampled_from(
                [
                    "/api",
                    "/api/",
                    "/api/cluster",
                    "/api/cluster/",
                    "/api/cluster/list/",
                    "/api/cluster/get/../list",
                    "/api/../healthz",
                    "/api/cluster/../../etc/passwd",
                    "/api/%2e%2e/%2e%2e/etc/passwd",
                    "/api/cluster%2flist",
                    "/api/auth/login/..",
                    "/api/cluster/add%00",
                    "/api/cluster/%E9%9B%86",
                    "/api/cluster/%ff%fe",
                    "/readyz/..",
                    "/healthz?x=1",
                    "/",
                    "/favicon.ico",
                    "/static/../app.py",
                    "/api/cluster/list;jsessionid=1",
                    "/api/cluster/list%20",
                    "/API/cluster/list",
                    "/api/./cluster/list",
                ]
            )
        )
        path += "/" + quote(draw(st.text(max_size=20)), safe="") if draw(st.booleans()) else ""
    else:
        method = draw(st.sampled_from(["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "FOO"]))
        path = draw(
            st.sampled_from(
                [
                    "/api/cluster/list",
                    "/api/cluster/add",
                    "/api/cluster/get?id=x",
                    "/api/auth/login",
                    "/api/auth/logout",
                    "/api/cluster/delete?id=x",
                    "/healthz",
                ]
            )
        )
    for _ in range(draw(st.integers(0, 2))):
        name = draw(
            st.sampled_from(
                [
                    "X-Forwarded-For",
                    "Origin",
                    "Accept",
                    "Accept-Encoding",
                    "Cookie",
                    "Host",
                    "Content-Encoding",
                    "Transfer-Encoding-Foo",
                    "X-Random",
                    "Referer",
                ]
            )
        )
        headers[name] = draw(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=100))
    if authorized and app_path(path).rstrip("/") == "/api/auth/logout":
        headers["Authorization"] = valid[:-4]  # the valid token would log the shared service out (HEAD too)
    # gunicorn refuses request lines over 4094 bytes itself (414, before the app): stay under it.
    return {"method": method, "path": path[:3500], "headers": headers, "body": body}


@st.composite
def kubeconfig_bodies(draw: st.DrawFn, valid: str, seeds: list[str]) -> dict[str, Any]:
    """An add or update that passes the token and body checks, so the hostile kubeconfig itself is tried."""
    path = draw(st.sampled_from(["/api/cluster/add", "/api/cluster/update"]))
    cluster_id = draw(st.sampled_from(seeds) if path.endswith("update") and draw(st.booleans()) else valid_ids)
    kubeconfig = draw(kubeconfigs().filter(lambda k: isinstance(k, str) and k.strip() != ""))
    document = {"id": cluster_id, "displayName": draw(st.text(max_size=30)), "kubeconfig": kubeconfig}
    return {
        "method": "POST",
        "path": path,
        "headers": {"Authorization": valid, "Content-Type": "application/json"},
        "body": json.dumps(document).encode(),
    }


def send(svc: Service, req: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Send one request exactly as generated; (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=15)
    try:
        conn.putrequest(req["method"], req["path"], skip_host="Host" in req["headers"], skip_accept_encoding=True)
        for name, value in req["headers"].items():
            conn.putheader(name, value.encode("latin-1"))
        body = req["body"]
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def app_path(raw: str) -> str:
    """The path as the app sees it (percent-decoded, query dropped)."""
    return unquote(raw.split("?", 1)[0], errors="replace")


def check(req: dict[str, Any], status: int, headers: dict[str, str], body: bytes) -> None:
    """The invariants every answer keeps."""
    where = f"{req['method']} {req['path'][:120]} -> {status} {body[:300]!r}"
    assert status != 500, where
    assert b"Traceback" not in body, where
    path = app_path(req["path"])
    if (path == "/api" or path.startswith("/api/")) and req["method"] not in ("HEAD", "OPTIONS"):
        assert status == 200, where
        assert headers.get("content-type") == "application/json; charset=utf-8", where
        envelope = json.loads(body)
        assert list(envelope) == ["status", "message", "data"], where
        assert envelope["status"] in API_STATUSES, where
        assert isinstance(envelope["message"], str) and envelope["message"], where
        assert isinstance(envelope["data"], dict), where
    else:
        assert status < 500 or (status == 503 and path.startswith("/readyz")), where


def registry(meta: Cluster, namespace: str) -> dict[str, Any]:
    """Every Secret name of the namespace, and the cluster Secrets' annotations and kubeconfigs."""
    status, body = meta.request("GET", f"/api/v1/namespaces/{namespace}/secrets")
    assert status == 200, body
    clusters = {}
    for item in body["items"]:
        if (item["metadata"].get("labels") or {}).get(DEFAULT_CLUSTER_LABEL) == "true":
            annotations = item["metadata"].get("annotations") or {}
            clusters[item["metadata"]["name"]] = (
                {k: annotations.get(k) for k in ("id", "displayName", "city", "district")},
                (item.get("data") or {}).get("kubeconfig"),
            )
    return {"names": sorted(i["metadata"]["name"] for i in body["items"]), "clusters": clusters}


@pytest.mark.timeout(300)
def test_hostile_requests_never_break_the_service_or_the_registry(
    service: Service, meta: Cluster, target1: Cluster
) -> None:
    seeds = [unique("fuzz-seed"), unique("fuzz-seed")]
    for seed in seeds:
        assert (
            service.api(
                "POST",
                "/api/cluster/add",
                json={"id": seed, "displayName": "seed", "kubeconfig": kubeconfig_text(target1)},
            )["status"]
            == 200
        )
    before = registry(meta, service.namespace)
    valid = service.token()
    sent: list[str] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(req=hostile_requests(valid, seeds))
    def one_request(req: dict[str, Any]) -> None:
        status, headers, body = send(service, req)
        check(req, status, headers, body)
        sent.append(f"{req['method']} {req['path'][:40]}")

    one_request()

    @settings(
        max_examples=KUBECONFIG_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(req=kubeconfig_bodies(valid, seeds))
    def one_kubeconfig(req: dict[str, Any]) -> None:
        status, headers, body = send(service, req)
        check(req, status, headers, body)
        answer = json.loads(body)
        assert answer["status"] == 400, answer  # nothing generated may ever be registered
        sent.append(answer["message"][:40])

    one_kubeconfig()
    assert len(sent) >= 200, len(sent)
    assert len(sent) >= 200, len(sent)
    assert registry(meta, service.namespace) == before
    assert service.api("GET", "/api/cluster/list", token=valid)["status"] == 200  # the token still works
    assert JWT_KEY not in service.log()
    assert "Traceback" not in service.log()
