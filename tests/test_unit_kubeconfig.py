"""Unit tests of utils/kubeconfig.py: parsing and the policy a user-supplied kubeconfig must pass.

Hosts are IP literals (never resolved, never contacted) or "localhost"; nothing here opens a connection.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from utils.kubeconfig import PINNED_HOST, KubeconfigPolicy, KubeconfigRejected, current_entries, parse_kubeconfig

YAML_TEXT = """\
apiVersion: v1
kind: Config
current-context: demo
clusters:
- name: demo
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: Y2E=
contexts:
- name: demo
  context:
    cluster: demo
    user: admin
users:
- name: admin
  user:
    token: abc
"""


def kubeconfig(server: str = "https://127.0.0.1:6443", user: dict[str, Any] | None = None) -> dict[str, Any]:
    """A minimal valid kubeconfig whose current context uses ``server`` and a user with ``user`` fields."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "demo",
        "clusters": [{"name": "demo", "cluster": {"server": server, "certificate-authority-data": "Y2E="}}],
        "contexts": [{"name": "demo", "context": {"cluster": "demo", "user": "admin"}}],
        "users": [{"name": "admin", "user": user or {"token": "abc"}}],
    }


def rejected(config: dict[str, Any], policy: KubeconfigPolicy | None = None) -> str:
    """The rejection message of ``config`` under ``policy`` (the default policy when None)."""
    with pytest.raises(KubeconfigRejected) as info:
        (policy or KubeconfigPolicy()).check(config)
    return str(info.value)


# --- parse_kubeconfig -------------------------------------------------------------------------------


def test_parse_yaml() -> None:
    parsed = parse_kubeconfig(YAML_TEXT)
    assert parsed["current-context"] == "demo"
    assert parsed["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"


def test_parse_json() -> None:
    assert parse_kubeconfig(json.dumps(kubeconfig())) == kubeconfig()


def test_parse_indented_json() -> None:
    assert parse_kubeconfig(json.dumps(kubeconfig(), indent=4)) == kubeconfig()


def test_parse_tab_indented_json() -> None:
    # Valid JSON (e.g. `jq --tab`); the contract accepts YAML or JSON, and client-go reads it.
    assert parse_kubeconfig(json.dumps(kubeconfig(), indent="\t")) == kubeconfig()


def test_parse_json_surrogate_pair_escape() -> None:
    # json.dumps escapes non-BMP characters as a surrogate pair: JSON reads it as one character.
    assert parse_kubeconfig(json.dumps({"current-context": "dev😀"})) == {"current-context": "dev😀"}


def test_parse_yaml_anchor_without_alias_is_plain_data() -> None:
    assert parse_kubeconfig("a: &x 1\nb: 2\n") == {"a": 1, "b": 2}


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"])
def test_parse_empty_rejected(text: str) -> None:
    with pytest.raises(KubeconfigRejected, match="empty"):
        parse_kubeconfig(text)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string", "42", "null", "[]"])
def test_parse_non_mapping_rejected(text: str) -> None:
    with pytest.raises(KubeconfigRejected, match="must be a YAML mapping"):
        parse_kubeconfig(text)


def test_parse_invalid_yaml_rejected_with_line() -> None:
    with pytest.raises(KubeconfigRejected, match=r"not valid YAML \(line 2\): mapping values are not allowed"):
        parse_kubeconfig("apiVersion: v1\nkind: a: b\n")


def test_parse_invalid_yaml_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse_kubeconfig("a: b: c")


def test_parse_billion_laughs_rejected() -> None:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        text += f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]\n"
    with pytest.raises(KubeconfigRejected, match="aliases are not allowed"):
        parse_kubeconfig(text)


def test_parse_single_alias_rejected() -> None:
    with pytest.raises(KubeconfigRejected, match="aliases are not allowed"):
        parse_kubeconfig("a: &x 1\nb: *x\n")


def test_parse_merge_key_rejected() -> None:
    with pytest.raises(KubeconfigRejected, match="aliases are not allowed"):
        parse_kubeconfig("base: &b {server: x}\ncluster:\n  <<: *b\n")


DEEP_BLOCK = "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(70)) + "  " * 70 + "v: 1\n"


@pytest.mark.parametrize("text", ["a: " + "[" * 65 + "]" * 65, DEEP_BLOCK], ids=["flow", "block"])
def test_parse_nesting_deeper_than_the_limit_rejected(text: str) -> None:
    with pytest.raises(KubeconfigRejected, match="nested deeper than 64 levels"):
        parse_kubeconfig(text)


def test_parse_nesting_at_the_limit_accepted() -> None:
    node = parse_kubeconfig("a: " + "[" * 63 + "]" * 63)["a"]  # the mapping and 63 lists: 64 levels
    lists = 1
    while node:
        node, lists = node[0], lists + 1
    assert lists == 63


@pytest.mark.parametrize("text", [YAML_TEXT, "a: 1\nb: [x, {c: 'd', e: null, f: 1.5, g: 0x1f, h: yes}]\n",
                                  "current-context: \"dev\\u00e9\"\nk: |\n  line1\n  line2\n"])  # fmt: skip
def test_the_c_parser_reads_what_the_python_parser_reads(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import utils.kubeconfig as module

    fast = parse_kubeconfig(text)
    monkeypatch.setattr(module, "_C_LOADER", None)
    assert parse_kubeconfig(text) == fast


def test_aliases_and_depth_are_refused_without_the_c_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import utils.kubeconfig as module

    monkeypatch.setattr(module, "_C_LOADER", None)
    with pytest.raises(KubeconfigRejected, match="aliases are not allowed"):
        parse_kubeconfig("a: &x 1\nb: *x\n")
    with pytest.raises(KubeconfigRejected, match="not valid YAML"):
        parse_kubeconfig("a: " + "[" * 5000 + "]" * 5000)


def test_parse_python_tags_rejected() -> None:
    with pytest.raises(KubeconfigRejected, match="not valid YAML"):
        parse_kubeconfig("a: !!python/object/apply:os.system ['true']\n")


# --- current_entries --------------------------------------------------------------------------------


def test_current_entries_paths() -> None:
    cluster, cluster_path, user, user_path = current_entries(kubeconfig())
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert cluster_path == "clusters[0].cluster"
    assert user == {"token": "abc"}
    assert user_path == "users[0].user"


def test_current_entries_context_without_user() -> None:
    config = kubeconfig()
    del config["contexts"][0]["context"]["user"]
    _, _, user, _ = current_entries(config)
    assert user == {}


# --- KubeconfigPolicy.check: structure ----------------------------------------------------------------


def test_valid_kubeconfig_accepted() -> None:
    KubeconfigPolicy().check(kubeconfig())


def test_valid_yaml_text_accepted() -> None:
    KubeconfigPolicy().check(parse_kubeconfig(YAML_TEXT))


def test_missing_current_context_rejected() -> None:
    config = kubeconfig()
    del config["current-context"]
    assert rejected(config).startswith("current-context: missing")


def test_empty_current_context_rejected() -> None:
    config = kubeconfig()
    config["current-context"] = ""
    assert rejected(config).startswith("current-context:")


def test_current_context_naming_missing_context_rejected() -> None:
    config = kubeconfig()
    config["current-context"] = "other"
    assert rejected(config) == "contexts: no entry named 'other'"


def test_context_naming_missing_cluster_rejected() -> None:
    config = kubeconfig()
    config["contexts"][0]["context"]["cluster"] = "nowhere"
    assert rejected(config) == "clusters: no entry named 'nowhere'"


def test_context_without_cluster_rejected() -> None:
    config = kubeconfig()
    del config["contexts"][0]["context"]["cluster"]
    assert rejected(config) == "contexts[0].context.cluster: missing"


def test_context_naming_missing_user_rejected() -> None:
    config = kubeconfig()
    config["contexts"][0]["context"]["user"] = "nobody"
    assert rejected(config) == "users: no entry named 'nobody'"


def test_clusters_not_a_list_rejected() -> None:
    config = kubeconfig()
    config["clusters"] = {"demo": {}}
    assert rejected(config) == "clusters: must be a list"


def test_cluster_entry_not_a_mapping_rejected() -> None:
    config = kubeconfig()
    config["clusters"][0]["cluster"] = "https://127.0.0.1"
    assert rejected(config) == "clusters[0].cluster: must be a mapping"


def test_missing_server_rejected() -> None:
    config = kubeconfig()
    del config["clusters"][0]["cluster"]["server"]
    assert rejected(config) == "clusters[0].cluster.server: missing server address"


def test_only_current_context_checked() -> None:
    config = kubeconfig()
    config["clusters"].append({"name": "meta", "cluster": {"server": "https://169.254.169.254"}})
    config["contexts"].append({"name": "meta", "context": {"cluster": "meta"}})
    KubeconfigPolicy().check(config)


def test_path_names_the_entry_index() -> None:
    config = kubeconfig()
    config["clusters"].insert(0, {"name": "first", "cluster": {"server": "https://127.0.0.1"}})
    config["clusters"][1]["cluster"]["proxy-url"] = "http://127.0.0.1:3128"
    assert rejected(config).startswith("clusters[1].cluster.proxy-url:")


# --- KubeconfigPolicy.check: what a kubeconfig may make the server do -----------------------------------


def test_exec_rejected() -> None:
    config = kubeconfig(user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}})
    message = rejected(config)
    assert message.startswith("users[0].user.exec:")
    assert "'aws'" in message


def test_exec_without_command_rejected() -> None:
    assert rejected(kubeconfig(user={"exec": {"args": ["x"]}})).startswith("users[0].user.exec:")


def test_exec_not_a_mapping_rejected() -> None:
    assert rejected(kubeconfig(user={"exec": "aws"})).startswith("users[0].user.exec:")


def test_exec_allowed_command_accepted() -> None:
    policy = KubeconfigPolicy.from_strings(exec_commands=["aws"])
    policy.check(kubeconfig(user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}}))


def test_exec_allowed_list_is_exact() -> None:
    policy = KubeconfigPolicy.from_strings(exec_commands=["aws"])
    assert rejected(kubeconfig(user={"exec": {"command": "/usr/bin/aws"}}), policy).startswith("users[0].user.exec:")


def test_auth_provider_rejected() -> None:
    message = rejected(kubeconfig(user={"auth-provider": {"name": "oidc", "config": {}}}))
    assert message.startswith("users[0].user.auth-provider:")


def test_token_file_rejected() -> None:
    message = rejected(kubeconfig(user={"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}))
    assert message.startswith("users[0].user.tokenFile:")
    assert "use token" in message


def test_client_certificate_path_rejected() -> None:
    message = rejected(kubeconfig(user={"client-certificate": "/etc/ssl/cert.pem"}))
    assert message.startswith("users[0].user.client-certificate:")
    assert "client-certificate-data" in message


def test_client_key_path_rejected() -> None:
    message = rejected(kubeconfig(user={"client-key": "/etc/ssl/key.pem"}))
    assert message.startswith("users[0].user.client-key:")
    assert "client-key-data" in message


def test_data_forms_accepted() -> None:
    KubeconfigPolicy().check(kubeconfig(user={"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"}))


def test_certificate_authority_path_rejected() -> None:
    config = kubeconfig()
    config["clusters"][0]["cluster"]["certificate-authority"] = "/etc/kubernetes/pki/ca.crt"
    message = rejected(config)
    assert message.startswith("clusters[0].cluster.certificate-authority:")
    assert "certificate-authority-data" in message


def test_proxy_url_rejected() -> None:
    config = kubeconfig()
    config["clusters"][0]["cluster"]["proxy-url"] = "http://127.0.0.1:3128"
    assert rejected(config).startswith("clusters[0].cluster.proxy-url:")


def test_policy_does_not_modify_kubeconfig() -> None:
    config = kubeconfig()
    before = copy.deepcopy(config)
    KubeconfigPolicy().check(config)
    assert config == before


# --- KubeconfigPolicy.check: server address ----------------------------------------------------------


@pytest.mark.parametrize("server", ["ftp://127.0.0.1", "127.0.0.1:6443", "unix:///var/run/k8s.sock", "https://"])
def test_server_not_http_url_rejected(server: str) -> None:
    assert rejected(kubeconfig(server)) == "clusters[0].cluster.server: must be an http(s) URL with a host"


def test_server_bad_port_rejected() -> None:
    assert rejected(kubeconfig("https://127.0.0.1:99999")) == "clusters[0].cluster.server: not a valid URL"


@pytest.mark.parametrize("server", ["https://127.0.0.1:6443", "http://127.0.0.1:8080", "https://[::1]:6443"])
def test_loopback_server_accepted(server: str) -> None:
    KubeconfigPolicy().check(kubeconfig(server))


@pytest.mark.parametrize("server", ["https://169.254.169.254", "http://169.254.169.254/latest/meta-data"])
def test_link_local_server_rejected(server: str) -> None:
    message = rejected(kubeconfig(server))
    assert message == "clusters[0].cluster.server: address 169.254.169.254 is in a denied range"


def test_ipv6_link_local_server_rejected() -> None:
    message = rejected(kubeconfig("https://[fe80::1]:6443"))
    assert message == "clusters[0].cluster.server: address fe80::1 is in a denied range"


def test_ipv4_mapped_ipv6_link_local_rejected() -> None:
    message = rejected(kubeconfig("https://[::ffff:169.254.169.254]:6443"))
    assert message.startswith("clusters[0].cluster.server: address")
    assert "denied range" in message


@pytest.mark.parametrize("server", ["https://0.0.0.0:6443", "https://[::]:6443"])
def test_unspecified_address_rejected(server: str) -> None:
    assert "denied range" in rejected(kubeconfig(server))


def test_configured_deny_range_rejects_loopback_address() -> None:
    policy = KubeconfigPolicy.from_strings(deny=["127.0.0.2/32"])
    message = rejected(kubeconfig("https://127.0.0.2:6443"), policy)
    assert message == "clusters[0].cluster.server: address 127.0.0.2 is in a denied range"


def test_configured_deny_range_leaves_other_loopback_allowed() -> None:
    KubeconfigPolicy.from_strings(deny=["127.0.0.2/32"]).check(kubeconfig("https://127.0.0.1:6443"))


def test_configured_deny_keeps_defaults() -> None:
    policy = KubeconfigPolicy.from_strings(deny=["127.0.0.2/32"])
    assert "denied range" in rejected(kubeconfig("https://169.254.169.254"), policy)


def test_allow_wins_over_deny() -> None:
    policy = KubeconfigPolicy.from_strings(deny=["127.0.0.0/8"], allow=["127.0.0.3/32"])
    policy.check(kubeconfig("https://127.0.0.3:6443"))
    assert "denied range" in rejected(kubeconfig("https://127.0.0.4:6443"), policy)


def test_allow_wins_over_default_deny() -> None:
    KubeconfigPolicy.from_strings(allow=["169.254.169.254/32"]).check(kubeconfig("https://169.254.169.254"))


def test_allow_applies_to_ipv4_mapped_address() -> None:
    policy = KubeconfigPolicy.from_strings(allow=["169.254.169.254/32"])
    policy.check(kubeconfig("https://[::ffff:169.254.169.254]:6443"))


def test_from_strings_bad_cidr_is_value_error() -> None:
    with pytest.raises(ValueError):
        KubeconfigPolicy.from_strings(deny=["not-a-cidr"])


def test_localhost_resolves_and_is_allowed() -> None:
    KubeconfigPolicy().check(kubeconfig("https://localhost:6443"))


def test_localhost_denied_when_loopback_denied() -> None:
    policy = KubeconfigPolicy.from_strings(deny=["127.0.0.0/8", "::1/128"])
    assert "denied range" in rejected(kubeconfig("https://localhost:6443"), policy)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("169.254.0.1", False),
        ("169.254.255.255", False),
        ("169.255.0.1", True),
        ("fe80::abcd", False),
        ("febf::1", False),
        ("fec0::1", True),
        ("0.1.2.3", False),
        ("::", False),
        ("::ffff:169.254.1.1", False),
        ("::ffff:127.0.0.1", True),
    ],
)
def test_address_allowed_default_ranges(address: str, allowed: bool) -> None:
    assert KubeconfigPolicy().address_allowed(address) is allowed


def _named_server_kubeconfig(server: str, **cluster_extra: str) -> dict:
    return {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": server, **cluster_extra}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }


def test_pin_connects_to_the_checked_address_and_verifies_the_name() -> None:
    original = _named_server_kubeconfig("https://localhost:6443")
    pinned = KubeconfigPolicy().pin(original)
    cluster = pinned["clusters"][0]["cluster"]
    assert cluster["server"] in ("https://127.0.0.1:6443", "https://[::1]:6443")
    assert cluster["tls-server-name"] == "localhost"
    assert original["clusters"][0]["cluster"] == {"server": "https://localhost:6443"}  # the input is untouched


def test_pin_keeps_an_explicit_tls_server_name_and_ip_literals() -> None:
    named = KubeconfigPolicy().pin(_named_server_kubeconfig("https://localhost:6443", **{"tls-server-name": "api"}))
    assert named["clusters"][0]["cluster"]["tls-server-name"] == "api"
    literal = KubeconfigPolicy().pin(_named_server_kubeconfig("https://127.0.0.1:6443"))
    assert literal["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:6443"}


def test_pin_refuses_what_check_refuses() -> None:
    policy = KubeconfigPolicy.from_strings(deny=["127.0.0.0/8", "::1/128"])
    with pytest.raises(KubeconfigRejected, match="denied range"):
        policy.pin(_named_server_kubeconfig("https://localhost:6443"))


# Pinning keeps the name for Host, SNI and the certificate, and the path prefix ------------------------------


def test_pin_connects_to_the_alias_address_and_keeps_name_and_path() -> None:
    policy = KubeconfigPolicy.from_strings(host_aliases=["Rancher.Example.COM=127.0.0.2"])
    config = kubeconfig("https://rancher.example.com/k8s/clusters/c-x1")
    cluster = current_entries(policy.pin(config))[0]
    assert cluster["server"] == "https://127.0.0.2/k8s/clusters/c-x1"
    assert cluster[PINNED_HOST] == "rancher.example.com"
    assert cluster["tls-server-name"] == "rancher.example.com"


def test_pin_keeps_a_port_in_the_host_and_an_explicit_tls_server_name() -> None:
    policy = KubeconfigPolicy.from_strings(host_aliases=["k8s.test.invalid=127.0.0.1"])
    config = kubeconfig("https://k8s.test.invalid:8443/prefix")
    config["clusters"][0]["cluster"]["tls-server-name"] = "api.internal"
    cluster = current_entries(policy.pin(config))[0]
    assert cluster["server"] == "https://127.0.0.1:8443/prefix"
    assert cluster[PINNED_HOST] == "k8s.test.invalid:8443"
    assert cluster["tls-server-name"] == "api.internal"


def test_pin_drops_a_pinned_host_the_user_wrote() -> None:
    config = kubeconfig("https://127.0.0.1:6443")
    config["clusters"][0]["cluster"][PINNED_HOST] = "elsewhere.example.com"
    assert PINNED_HOST not in current_entries(KubeconfigPolicy().pin(config))[0]


def test_an_alias_address_is_still_checked() -> None:
    policy = KubeconfigPolicy.from_strings(host_aliases=["meta.test.invalid=169.254.169.254"])
    assert "169.254.169.254 is in a denied range" in rejected(kubeconfig("https://meta.test.invalid"), policy)


@pytest.mark.parametrize("alias", ["no-equals", "=127.0.0.1", "name=not-an-ip", "127.0.0.1=127.0.0.1"])
def test_bad_host_aliases_are_refused(alias: str) -> None:
    with pytest.raises(ValueError, match=r"name=address|does not appear"):
        KubeconfigPolicy.from_strings(host_aliases=[alias])
