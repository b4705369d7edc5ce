"""Parsing a user-supplied kubeconfig and the policy it must pass before it is stored or used.

A kubeconfig is code-like input: with the client library's defaults it can make this server run
programs (``exec``, ``auth-provider``), read the server's own files (``tokenFile``, certificate and key
paths) and send requests anywhere (cloud metadata addresses). The policy, applied to the context that
is used (``current-context``), rejects all of that by default; each rejection names the field.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from cryptography import x509

from config.settings import parse_host_alias

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Link-local (where cloud metadata services live: 169.254.169.254, fd00:ec2::254 is handled by the
# operator's list) and "this network"; operators extend with KUBECONFIG_DENY_CIDRS.
DEFAULT_DENIED = ("169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128")
# Environment variables that change which code a program loads or runs (preloads, search paths,
# interpreter start-up hooks): an allowed exec command must not be turned into another program.
_CODE_LOADING_ENV = re.compile(
    r"^(LD_|DYLD_|PYTHON|PERL|RUBY|NODE_|GCONV_PATH$|PATH$|BASH_ENV$|ENV$|SHELLOPTS$|BASHOPTS$|IFS$"
    r"|JAVA_TOOL_OPTIONS$|_JAVA_OPTIONS$|JDK_JAVA_OPTIONS$|OPENSSL_CONF$|OPENSSL_MODULES$)",
    re.IGNORECASE,
)
RESOLVE_TIMEOUT = 1.0  # seconds; a name that does not resolve in time is refused, not waited for
# Key that ``pin`` adds to the cluster entry of its copy (never stored): the server's host[:port] as
# written, which the client sends as Host and SNI and verifies the certificate for (utils.kube).
PINNED_HOST = "krm-backend/pinned-host"


class KubeconfigRejected(ValueError):
    """The kubeconfig is malformed or not allowed; the message names the field."""


class _NoAliasLoader(yaml.SafeLoader):
    """A safe YAML loader without anchors/aliases (no kubeconfig needs them; "billion laughs" does)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse alias nodes."""
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, _NO_ALIASES)
        return super().compose_node(parent, index)


_NO_ALIASES = "YAML aliases are not allowed in a kubeconfig"
# libyaml's parser (PyYAML's C extension, in its wheels): a kubeconfig of a few KiB (base64 certificates)
# loads in ~0.1 ms instead of ~2 ms with the pure-Python loader, on every add, client build and first probe.
_C_LOADER: Any = getattr(yaml, "CSafeLoader", None)
# No kubeconfig nests deeper than ~6 levels. The C composer recurses on the C stack without Python's
# recursion limit, so the depth is checked on the (non-recursive) event stream before it composes.
MAX_YAML_DEPTH = 64
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _load_yaml(text: str) -> Any:
    """Safe-load one YAML document: no aliases, at most ``MAX_YAML_DEPTH`` levels; C parser when present."""
    if _C_LOADER is None:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    depth = 0
    for event in yaml.parse(text, Loader=_C_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, _NO_ALIASES)
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise KubeconfigRejected(f"kubeconfig is not valid YAML: nested deeper than {MAX_YAML_DEPTH} levels")
        elif isinstance(event, _CLOSE):
            depth -= 1
    return yaml.load(text, Loader=_C_LOADER)  # noqa: S506 - CSafeLoader: the safe constructor


def parse_kubeconfig(text: str) -> dict[str, Any]:
    """YAML (or JSON) text to a dict; raises ``KubeconfigRejected`` with a short reason."""
    if not text or not text.strip():
        raise KubeconfigRejected("kubeconfig is empty")
    if text.lstrip().startswith("{"):
        # JSON first: PyYAML is not a JSON superset (tabs, surrogate-pair escapes), client-go's is.
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            if not isinstance(data, dict):
                raise KubeconfigRejected("kubeconfig must be a mapping (apiVersion, clusters, users, ...)")
            return data
    try:
        data = _load_yaml(text)
    except KubeconfigRejected:
        raise
    except yaml.MarkedYAMLError as exc:
        where = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
        raise KubeconfigRejected(f"kubeconfig is not valid YAML{where}: {exc.problem}") from None
    except (yaml.YAMLError, RecursionError, ValueError):
        # ValueError: a scalar the constructor cannot build, e.g. an integer of more than 4300 digits.
        raise KubeconfigRejected("kubeconfig is not valid YAML") from None
    if not isinstance(data, dict):
        raise KubeconfigRejected("kubeconfig must be a YAML mapping (apiVersion, clusters, users, ...)")
    return data


@dataclass(frozen=True)
class KubeconfigPolicy:
    """What a user-supplied kubeconfig may make this server do."""

    denied_networks: tuple[IPNetwork, ...] = field(
        default_factory=lambda: tuple(ipaddress.ip_network(c) for c in DEFAULT_DENIED)
    )
    allowed_networks: tuple[IPNetwork, ...] = ()  # exceptions that win over the denied list
    allowed_exec_commands: frozenset[str] = frozenset()  # exact ``exec.command`` values
    # (name, address) pairs resolved without DNS, like curl's --resolve; the address is still checked.
    host_aliases: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_strings(cls, deny: Iterable[str] = (), allow: Iterable[str] = (), exec_commands: Iterable[str] = (),
                     host_aliases: Iterable[str] = ()) -> KubeconfigPolicy:  # fmt: skip
        """Build from CIDR strings (added to the defaults), command names and ``name=address`` aliases.

        Raises ``ValueError`` on a bad range or alias.
        """
        denied = tuple(ipaddress.ip_network(c) for c in (*DEFAULT_DENIED, *deny))
        allowed = tuple(ipaddress.ip_network(c) for c in allow)
        return cls(denied, allowed, frozenset(exec_commands), tuple(parse_host_alias(a) for a in host_aliases))

    def address_allowed(self, address: str) -> bool:
        """True when an IP address is not in a denied range (or is in an allowed one)."""
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed_networks):
            return True
        return not any(ip in net for net in self.denied_networks)

    def pin(self, kubeconfig: dict[str, Any], deadline: float | None = None) -> dict[str, Any]:
        """``check``, then a copy that connects to the address that was checked.

        Without this, the client would resolve the host name again when it connects, and a name that
        resolves to an allowed address at check time and a denied one a moment later (DNS rebinding)
        would get through. Everything but the address stays the name's: the copy's ``server`` keeps
        its path (``/k8s/clusters/c-xxx`` behind Rancher), and ``PINNED_HOST`` tells the client to send
        the name in Host and SNI and to verify the certificate for it (``tls-server-name``, if given,
        still decides SNI and verification), so host-routed proxies and ingresses route as usual.
        ``deadline`` (``time.monotonic()``) also bounds the name resolution.
        """
        addresses = self.check(kubeconfig, deadline)
        pinned = copy.deepcopy(kubeconfig)
        cluster = current_entries(pinned)[0]
        cluster.pop(PINNED_HOST, None)  # only pin() sets it
        parts = urlsplit(str(cluster["server"]).strip())
        host = parts.hostname or ""
        if not addresses or _is_ip(host):
            return pinned
        address = addresses[0]
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        cluster["server"] = urlunsplit(parts._replace(netloc=netloc))
        cluster[PINNED_HOST] = f"{host}:{parts.port}" if parts.port else host
        cluster.setdefault("tls-server-name", host)
        return pinned

    def check(self, kubeconfig: dict[str, Any], deadline: float | None = None) -> list[str]:
        """Raise ``KubeconfigRejected`` naming the first field the policy does not allow.

        Returns the server's checked addresses.
        """
        cluster, cluster_path, user, user_path = current_entries(kubeconfig)
        if cluster.get("certificate-authority"):
            raise KubeconfigRejected(f"{cluster_path}.certificate-authority: file paths are not allowed, "
                                     "use certificate-authority-data")  # fmt: skip
        if cluster.get("proxy-url"):
            raise KubeconfigRejected(f"{cluster_path}.proxy-url: proxies are not allowed")
        for key in ("tokenFile", "client-certificate", "client-key"):
            if user.get(key):
                hint = {"tokenFile": "token"}.get(key, f"{key}-data")
                raise KubeconfigRejected(f"{user_path}.{key}: file paths are not allowed, use {hint}")
        if user.get("auth-provider"):
            raise KubeconfigRejected(f"{user_path}.auth-provider: auth-provider plugins are not allowed")
        exec_config = user.get("exec")
        if exec_config:
            command = exec_config.get("command") if isinstance(exec_config, dict) else None
            if not isinstance(command, str) or command not in self.allowed_exec_commands:
                raise KubeconfigRejected(
                    f"{user_path}.exec: exec plugins are not allowed"
                    + (f" (command {command!r})" if isinstance(command, str) else "")
                )
            _check_exec_env(exec_config.get("env"), f"{user_path}.exec.env")
        return self.check_server(cluster.get("server"), f"{cluster_path}.server", deadline)

    def check_server(self, server: Any, where: str, deadline: float | None = None) -> list[str]:
        """The server URL must be http(s) with a host whose every address is allowed."""
        if not isinstance(server, str) or not server.strip():
            raise KubeconfigRejected(f"{where}: missing server address")
        try:
            parts = urlsplit(server.strip())
            host, port = parts.hostname, parts.port
        except ValueError:
            raise KubeconfigRejected(f"{where}: not a valid URL") from None
        if parts.scheme not in ("https", "http") or not host:
            raise KubeconfigRejected(f"{where}: must be an http(s) URL with a host")
        alias = next((addr for name, addr in self.host_aliases if name == host.lower().rstrip(".")), None)
        if alias is not None:
            addresses = [alias]
        else:
            addresses = _resolve(host, port or (443 if parts.scheme == "https" else 80), where, deadline)
        for address in addresses:
            if not self.address_allowed(address):
                raise KubeconfigRejected(f"{where}: address {address} is in a denied range")
        return addresses


def _check_exec_env(env: Any, where: str) -> None:
    """An allowed exec command still must not get variables that make it load or run other code."""
    if env is None:
        return
    if not isinstance(env, list):
        raise KubeconfigRejected(f"{where}: must be a list of name/value pairs")
    for index, item in enumerate(env):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise KubeconfigRejected(f"{where}[{index}].name: missing")
        if _CODE_LOADING_ENV.match(name):
            raise KubeconfigRejected(f"{where}[{index}]: variable {name[:64]!r} is not allowed for exec plugins")


def current_entries(kubeconfig: dict[str, Any]) -> tuple[dict, str, dict, str]:
    """The cluster and user of ``current-context`` (with their paths for messages)."""
    context_name = kubeconfig.get("current-context")
    if not isinstance(context_name, str) or not context_name:
        raise KubeconfigRejected("current-context: missing (the current context is the one used)")
    context = _named(kubeconfig, "contexts", context_name, "context")
    cluster_name, user_name = context[0].get("cluster"), context[0].get("user")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise KubeconfigRejected(f"{context[1]}.cluster: missing")
    cluster, cluster_path = _named(kubeconfig, "clusters", cluster_name, "cluster")
    user: dict = {}
    user_path = "users[?].user"
    if user_name:
        user, user_path = _named(kubeconfig, "users", str(user_name), "user")
    return cluster, cluster_path, user, user_path


def _named(kubeconfig: dict[str, Any], section: str, name: str, inner: str) -> tuple[dict, str]:
    """The ``inner`` mapping of the entry called ``name`` in a kubeconfig list section."""
    entries = kubeconfig.get(section)
    if not isinstance(entries, list):
        raise KubeconfigRejected(f"{section}: must be a list")
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(inner)
            path = f"{section}[{index}].{inner}"
            if not isinstance(value, dict):
                raise KubeconfigRejected(f"{path}: must be a mapping")
            return value, path
    raise KubeconfigRejected(f"{section}: no entry named {name!r}")


def _is_ip(host: str) -> bool:
    """True for an IP literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int, where: str, deadline: float | None = None) -> list[str]:
    """Every address of ``host`` (an IP literal is itself), bounded in time (and by ``deadline``)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    result: list[str] = []
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            result.extend(str(info[4][0]) for info in infos)
        except OSError as exc:
            failure.append(exc)

    thread = threading.Thread(target=lookup, name="kubeconfig-resolve", daemon=True)
    thread.start()
    wait = RESOLVE_TIMEOUT if deadline is None else max(0.0, min(RESOLVE_TIMEOUT, deadline - time.monotonic()))
    thread.join(wait)
    if thread.is_alive():
        raise KubeconfigRejected(f"{where}: host name {host!r} did not resolve in time")
    if failure or not result:
        raise KubeconfigRejected(f"{where}: host name {host!r} does not resolve")
    return result


def credential_expiry(kubeconfig: dict[str, Any]) -> dt.datetime | None:
    """When the current user's credentials stop working: client certificate notAfter or a JWT's exp."""
    try:
        _, _, user, _ = current_entries(kubeconfig)
    except KubeconfigRejected:
        return None
    expiries: list[dt.datetime] = []
    cert_data = user.get("client-certificate-data")
    if isinstance(cert_data, str) and cert_data:
        try:
            cert = x509.load_pem_x509_certificate(base64.b64decode(cert_data))
            expiries.append(cert.not_valid_after_utc)
        except (ValueError, TypeError):
            pass
    token = user.get("token")
    if isinstance(token, str) and token.count(".") == 2:
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            if isinstance(claims, dict) and isinstance(claims.get("exp"), int | float):
                expiries.append(dt.datetime.fromtimestamp(claims["exp"], dt.UTC))
        except (ValueError, TypeError, OverflowError):
            pass
    return min(expiries) if expiries else None
