"""Settings: one typed object built from the environment at startup (README lists every variable)."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from config.constants import DEFAULT_CLUSTER_LABEL

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_METADATA_KUBECONFIG = Path("config") / "meta.kubeconfig"

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ORIGIN = re.compile(r"^https?://[^/\s]+$")
# Every held shard is a Lease write per renew interval: past this, the renewals cost more than they buy.
MAX_PROBE_SHARDS = 256


class SettingsError(ValueError):
    """An environment variable has a value the service cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with units and reasons; built once by ``Settings.from_env``."""

    host: str = "0.0.0.0"  # noqa: S104 - Go's ":8080" listens on every interface
    port: int = 8080
    log_level: str = "DEBUG"  # Go: LOG_LEVEL=debug (the default) or anything else = info
    # None: generated once and kept in a Secret of the metadata namespace (never hard-coded).
    jwt_sign_key: str | None = field(default=None, repr=False)
    jwt_expire_minutes: int = 120
    username: str = "admin"
    password: str | None = field(default=None, repr=False)
    metadata_namespace: str = "krm"
    in_cluster: bool = False
    metadata_kubeconfig: Path = DEFAULT_METADATA_KUBECONFIG
    cluster_label: str = DEFAULT_CLUSTER_LABEL
    # Target clusters: the frontend gives up after 2 s, so connect + read stays under that for a
    # reachable cluster; a refusing or hanging one fails after at most connect + read seconds.
    target_connect_timeout: float = 1.0
    target_read_timeout: float = 1.5
    # Wall-clock budget of everything add/update asks a target cluster (name resolution, an exec
    # plugin, version, readyz, identity): the frontend's strictest timeout is 2 s, and the answer also
    # needs the metadata write and the HTTP round trip. Also the default bound of any one later call.
    target_deadline: float = 1.5
    # The metadata cluster is this service's database: a healthy one answers in milliseconds.
    metadata_connect_timeout: float = 1.0
    metadata_read_timeout: float = 3.0
    # Bootstrap retry: exponential backoff from 0.5 s up to this cap, forever (readiness says why).
    bootstrap_max_backoff: float = 15.0
    max_body_bytes: int = 2 * 1024 * 1024  # a JSON-escaped 512 KiB kubeconfig fits, a flood does not
    # A Secret holds at most 1 MiB; real kubeconfigs are 2-20 KB, multi-context ones rarely 100 KB.
    max_kubeconfig_bytes: int = 512 * 1024
    # Kubeconfig policy (utils/kubeconfig.py; built by controllers.cluster.kubeconfig_policy): extra
    # denied ranges, allowed exceptions, exec commands.
    kubeconfig_deny_cidrs: tuple[str, ...] = ()
    kubeconfig_allow_cidrs: tuple[str, ...] = ()
    kubeconfig_allow_exec: tuple[str, ...] = ()
    # name=address pairs used instead of DNS for kubeconfig servers (split-horizon names; the tests).
    kubeconfig_host_aliases: tuple[str, ...] = ()
    # Health probing (controllers/cluster/prober.py), in the spirit of Rancher (15 s, 5 s timeout).
    probe_enabled: bool = True
    probe_interval: float = 15.0  # seconds between rounds (+-10% jitter)
    # Wall-clock bound of one cluster's whole probe (resolution, exec plugin, all calls); also each
    # socket wait's (connect: min(2 s, this)). A round never waits on a cluster longer.
    probe_timeout: float = 5.0
    probe_concurrency: int = 128  # probes in flight: 10% of 10,000 clusters hanging fit in an interval
    probe_failure_threshold: int = 2  # consecutive failures before Active -> InActive
    probe_success_threshold: int = 1  # consecutive successes before InActive -> Active
    probe_max_backoff: float = 300.0  # a dead cluster is probed at least this often
    probe_heartbeat: float = 60.0  # lastProbeTime is rewritten at least this often when nothing changes
    # Each round also counts nodes, pods, namespaces, deployments, daemonsets (five LISTs with limit=1
    # per healthy cluster) for cluster/statics; off: the home page shows zeros, detail counts live.
    probe_count: bool = True
    probe_count_interval: float = 300.0  # ... at most this often per cluster (not every round)
    probe_count_batch: int = 500  # counts a round at least may make; more when the steady need is higher
    # The probe budget of a cluster whose last probe failed: a hanging cluster holds a slot this long.
    probe_retry_timeout: float = 1.5
    # A healthy cluster's client (one open connection) is kept between rounds and rebuilt this often:
    # its address re-resolved and re-checked, version and identity read again.
    probe_refresh: float = 300.0
    probe_reconnect: float = 1800.0
    # Clusters are divided among the replicas' probers in this many shards, each a Lease (utils/shards.py):
    # enough for a fair split among a handful of replicas, few enough that renewing them costs little
    # (one LIST and one write per held shard every renew interval).
    probe_shards: int = 16
    # Prober processes per replica, each a member of the shard sharing of its own (one core each at most).
    probe_processes: int = 1
    # The probers' Leases (shards and membership): client-go's defaults are 15 s / 10 s.
    lease_duration: float = 15.0
    lease_renew_interval: float = 5.0
    watch_timeout: int = 60  # seconds the server keeps one watch open before we re-watch
    # Root of the in-cluster service-account files (tests point it elsewhere).
    service_account_root: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount")
    # Failed logins per (client address, username) before a lockout, and the window and lockout
    # length; counted per worker process (0 disables the limit).
    login_max_failures: int = 5
    login_lockout_seconds: int = 300
    # Origins allowed to call /api from a browser (CORS); empty: no CORS headers at all.
    cors_allow_origins: tuple[str, ...] = ()
    # Platform routes (contract-platform.md §1.8): the frontend gives up after 5 s (10 s for detail and
    # copy, 20 s for statics); each budget ends half a second earlier so that our answer arrives first.
    route_budget: float = 4.5
    route_budget_long: float = 9.5
    route_budget_statics: float = 19.5
    # Connect timeout of each call to a registered cluster on those routes (the read gets the rest).
    route_connect_timeout: float = 2.0
    # Per-cluster client cache: how many clusters keep a client (LRU) and for how long an unused one
    # stays open; each client keeps up to ``client_pool_size`` connections to its API server.
    client_cache_size: int = 64
    # cluster/get: whole cluster Secrets kept per process (LRU) and served while the watch shows them unchanged.
    secret_cache_size: int = 256
    client_idle_seconds: float = 300.0
    client_pool_size: int = 8
    # Resource routes carry whole objects (a ConfigMap holds up to 1 MiB, JSON-escaped more).
    resource_max_body_bytes: int = 4 * 1024 * 1024
    delete_list_max: int = 500  # names per deletelist
    delete_list_concurrency: int = 8  # DELETEs in flight per deletelist
    # Namespaces namespace/delete refuses (plus the metadata namespace on the metadata cluster).
    protected_namespaces: tuple[str, ...] = (
        "kube-system", "kube-public", "kube-node-lease", "default", "kube-flannel",
    )  # fmt: skip
    # secret/list: "none" omits data/stringData from the items (the pages need neither); "full" is Go.
    secret_list_data: str = "none"  # noqa: S105 - a mode, not a password
    # tools/yaml creates anything the stored kubeconfig may create: an operator can turn it off (403).
    enable_tools_yaml: bool = True
    # WebSocket sessions (pod/log, pod/exec; contract-platform.md §3). Each session holds one gunicorn
    # thread, so gunicorn.conf.py adds this many threads to GUNICORN_THREADS: sessions never take the
    # threads of ordinary requests. Over the limit a session gets an error frame and close 1013.
    ws_max_sessions: int = 50
    # The frontend's nginx closes a proxied socket silent for 60 s: ping well inside that.
    ws_ping_seconds: float = 25.0
    log_max_seconds: float = 300.0  # Go's log stream stops after 5 min
    exec_idle_seconds: float = 1800.0  # no input from the browser for this long ends an exec
    exec_max_seconds: float = 14400.0  # an exec ends after 4 h whatever happens
    enable_pod_exec: bool = True  # false: pod/exec answers 403 功能已关闭 (§5 #21)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; raise ``SettingsError`` naming the variable on a bad value."""
        env = os.environ if env is None else env
        host, port = parse_listen(env.get("PORT", ":8080"))
        values = dict(
            host=host,
            port=port,
            log_level="DEBUG" if env.get("LOG_LEVEL", "debug").strip().lower() == "debug" else "INFO",
            jwt_sign_key=_first(env, "JWT_SIGN_KEY", "JWT_SECRET"),
            jwt_expire_minutes=_int(env, "JWT_EXPIRE_TIME", 120, minimum=1),
            username=_first(env, "USERNAME", "ADMIN_USER_NAME") or "admin",
            password=_first(env, "PASSWORD", "ADMIN_PASSWORD"),
            metadata_namespace=env.get("METADATA_NAMESPACE", "krm").strip(),
            in_cluster=_bool(env, "IN_CLUSTER"),
            metadata_kubeconfig=Path(env.get("METADATA_KUBECONFIG") or DEFAULT_METADATA_KUBECONFIG),
            cluster_label=env.get("CLUSTER_LABEL_KEY", DEFAULT_CLUSTER_LABEL).strip(),
            target_connect_timeout=_float(env, "CLUSTER_CONNECT_TIMEOUT", 1.0),
            target_read_timeout=_float(env, "CLUSTER_READ_TIMEOUT", 1.5),
            target_deadline=_float(env, "CLUSTER_DEADLINE", 1.5),
            metadata_connect_timeout=_float(env, "METADATA_CONNECT_TIMEOUT", 1.0),
            metadata_read_timeout=_float(env, "METADATA_READ_TIMEOUT", 3.0),
            bootstrap_max_backoff=_float(env, "BOOTSTRAP_MAX_BACKOFF", 15.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024),
            max_kubeconfig_bytes=_int(env, "MAX_KUBECONFIG_BYTES", 512 * 1024, minimum=1024),
            kubeconfig_deny_cidrs=_list(env, "KUBECONFIG_DENY_CIDRS"),
            kubeconfig_allow_cidrs=_list(env, "KUBECONFIG_ALLOW_CIDRS"),
            kubeconfig_allow_exec=_list(env, "KUBECONFIG_ALLOW_EXEC"),
            kubeconfig_host_aliases=_list(env, "KUBECONFIG_HOST_ALIASES"),
            probe_enabled=not env.get("PROBE_ENABLED") or _bool(env, "PROBE_ENABLED"),
            probe_interval=_float(env, "PROBE_INTERVAL", 15.0),
            probe_timeout=_float(env, "PROBE_TIMEOUT", 5.0),
            probe_concurrency=_int(env, "PROBE_CONCURRENCY", 128, minimum=1),
            probe_failure_threshold=_int(env, "PROBE_FAILURE_THRESHOLD", 2, minimum=1),
            probe_success_threshold=_int(env, "PROBE_SUCCESS_THRESHOLD", 1, minimum=1),
            probe_max_backoff=_float(env, "PROBE_MAX_BACKOFF", 300.0),
            probe_heartbeat=_float(env, "PROBE_HEARTBEAT", 60.0),
            probe_count=not env.get("PROBE_COUNT") or _bool(env, "PROBE_COUNT"),
            probe_shards=_int(env, "PROBE_SHARDS", 16, minimum=1),
            probe_processes=_int(env, "PROBE_PROCESSES", 1, minimum=1),
            probe_count_interval=_float(env, "PROBE_COUNT_INTERVAL", 300.0),
            probe_count_batch=_int(env, "PROBE_COUNT_BATCH", 500, minimum=1),
            probe_retry_timeout=_float(env, "PROBE_RETRY_TIMEOUT", 1.5),
            probe_refresh=_float(env, "PROBE_REFRESH", 300.0),
            probe_reconnect=_float(env, "PROBE_RECONNECT", 1800.0),
            lease_duration=_float(env, "LEASE_DURATION", 15.0),
            lease_renew_interval=_float(env, "LEASE_RENEW_INTERVAL", 5.0),
            watch_timeout=_int(env, "WATCH_TIMEOUT", 60, minimum=1),
            service_account_root=Path(
                env.get("SERVICE_ACCOUNT_ROOT") or "/var/run/secrets/kubernetes.io/serviceaccount"
            ),
            login_max_failures=_int(env, "LOGIN_MAX_FAILURES", 5, minimum=0),
            login_lockout_seconds=_int(env, "LOGIN_LOCKOUT_SECONDS", 300, minimum=1),
            cors_allow_origins=_list(env, "CORS_ALLOW_ORIGINS"),
            route_budget=_float(env, "ROUTE_BUDGET", 4.5),
            route_budget_long=_float(env, "ROUTE_BUDGET_LONG", 9.5),
            route_budget_statics=_float(env, "ROUTE_BUDGET_STATICS", 19.5),
            route_connect_timeout=_float(env, "ROUTE_CONNECT_TIMEOUT", 2.0),
            client_cache_size=_int(env, "CLIENT_CACHE_SIZE", 64, minimum=1),
            secret_cache_size=_int(env, "SECRET_CACHE_SIZE", 256, minimum=0),
            client_idle_seconds=_float(env, "CLIENT_IDLE_SECONDS", 300.0),
            client_pool_size=_int(env, "CLIENT_POOL_SIZE", 8, minimum=1),
            resource_max_body_bytes=_int(env, "RESOURCE_MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=1024),
            delete_list_max=_int(env, "DELETE_LIST_MAX", 500, minimum=1),
            delete_list_concurrency=_int(env, "DELETE_LIST_CONCURRENCY", 8, minimum=1),
            protected_namespaces=_list(env, "PROTECTED_NAMESPACES")
            if env.get("PROTECTED_NAMESPACES", "").strip()
            else cls.protected_namespaces,
            secret_list_data=env.get("SECRET_LIST_DATA", "none").strip().lower() or "none",
            enable_tools_yaml=not env.get("ENABLE_TOOLS_YAML") or _bool(env, "ENABLE_TOOLS_YAML"),
            ws_max_sessions=_int(env, "WS_MAX_SESSIONS", 50, minimum=1),
            ws_ping_seconds=_float(env, "WS_PING_SECONDS", 25.0),
            log_max_seconds=_float(env, "LOG_MAX_SECONDS", 300.0),
            exec_idle_seconds=_float(env, "EXEC_IDLE_SECONDS", 1800.0),
            exec_max_seconds=_float(env, "EXEC_MAX_SECONDS", 14400.0),
            enable_pod_exec=not env.get("ENABLE_POD_EXEC", "").strip() or _bool(env, "ENABLE_POD_EXEC"),
        )
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check values that must be well-formed before anything talks to Kubernetes."""
        if not _DNS_LABEL.match(self.metadata_namespace):
            raise SettingsError(f"METADATA_NAMESPACE={self.metadata_namespace!r} is not a DNS-1123 label")
        if not valid_label_key(self.cluster_label):
            raise SettingsError(f"CLUSTER_LABEL_KEY={self.cluster_label!r} is not a valid label key")
        if self.probe_shards > MAX_PROBE_SHARDS:
            raise SettingsError(f"PROBE_SHARDS={self.probe_shards} must be at most {MAX_PROBE_SHARDS}")
        if self.probe_processes > self.probe_shards:
            raise SettingsError(
                f"PROBE_PROCESSES={self.probe_processes} must be at most PROBE_SHARDS="
                f"{self.probe_shards}: a prober process without a shard has nothing to probe"
            )
        if self.lease_renew_interval >= self.lease_duration:
            raise SettingsError("LEASE_RENEW_INTERVAL must be shorter than LEASE_DURATION")
        for name, values in (("KUBECONFIG_DENY_CIDRS", self.kubeconfig_deny_cidrs),
                             ("KUBECONFIG_ALLOW_CIDRS", self.kubeconfig_allow_cidrs)):  # fmt: skip
            for value in values:
                try:
                    ipaddress.ip_network(value)
                except ValueError:
                    raise SettingsError(f"{name}: {value!r} is not a CIDR range") from None
        if self.secret_list_data not in ("none", "full"):
            raise SettingsError(f"SECRET_LIST_DATA={self.secret_list_data!r} must be none or full")
        for alias in self.kubeconfig_host_aliases:
            try:
                parse_host_alias(alias)
            except ValueError:
                raise SettingsError(f"KUBECONFIG_HOST_ALIASES: {alias!r} is not name=address") from None
        for origin in self.cors_allow_origins:
            # A browser sends the Origin as scheme://host[:port], nothing more; "*" allows any.
            if origin != "*" and not _ORIGIN.match(origin):
                raise SettingsError(f"CORS_ALLOW_ORIGINS: {origin!r} is not an origin like https://ui.example.com")

    def metadata_kubeconfig_path(self) -> Path:
        """The metadata kubeconfig: as given when absolute or present, else beside the project."""
        path = self.metadata_kubeconfig
        if path.is_absolute() or path.exists():
            return path
        return PROJECT_ROOT / path

    def safe_summary(self) -> dict[str, object]:
        """The settings for the start-up log line: no key, no password."""
        return {
            "listen": f"{self.host}:{self.port}",
            "logLevel": self.log_level,
            "jwtExpireMinutes": self.jwt_expire_minutes,
            "jwtSignKey": "configured" if self.jwt_sign_key else "generated (Secret)",
            "username": self.username,
            "password": "configured" if self.password else "generated (Secret)",
            "metadataNamespace": self.metadata_namespace,
            "inCluster": self.in_cluster,
            "metadataKubeconfig": None if self.in_cluster else str(self.metadata_kubeconfig_path()),
            "clusterLabel": self.cluster_label,
        }


def valid_label_key(key: str) -> bool:
    """A Kubernetes label key: optional DNS-subdomain prefix (<= 253) and '/', a name of <= 63."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (0 < len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix)):
        return False
    return _LABEL_NAME.match(name) is not None


def parse_listen(value: str) -> tuple[str, int]:
    """``8080``, ``:8080`` or ``host:port`` -> (host, port); Go's form needs the colon, ours not."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise SettingsError(f"PORT={value!r}: write an IPv6 host in brackets, e.g. [::1]:8080")
    host = host or "0.0.0.0"  # noqa: S104 - same as Go's ":8080"
    if not port_text.isdigit():
        raise SettingsError(f"PORT={value!r} is not a port, ':port' or 'host:port'")
    port = int(port_text)
    if not 0 < port < 65536:
        raise SettingsError(f"PORT={value!r}: the port must be between 1 and 65535")
    return host, port


def _first(env: Mapping[str, str], *names: str) -> str | None:
    """The first non-empty value among aliases."""
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """An integer variable with a lower bound."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number of seconds."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise SettingsError(f"{name}={raw!r} must be a finite number greater than 0")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list; blanks dropped."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _bool(env: Mapping[str, str], name: str) -> bool:
    """``true``/``1``/``yes`` -> True; unset, ``false``/``0``/``no`` -> False; anything else fails."""
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise SettingsError(f"{name}={raw!r} must be true or false")


_HOST_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def parse_host_alias(text: str) -> tuple[str, str]:
    """``name=address`` -> (lower-case name, address); ``ValueError`` when either part is bad."""
    name, sep, address = text.partition("=")
    name = name.strip().lower().rstrip(".")
    if not sep or not name or not _HOST_NAME.fullmatch(name) or _is_ip_literal(name):
        raise ValueError(f"{text!r} is not name=address")
    return name, str(ipaddress.ip_address(address.strip()))


def _is_ip_literal(text: str) -> bool:
    """True for an IPv4/IPv6 address (a host alias maps a name, never an address)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
