"""The krm-backend application factory, and ``app`` for ``gunicorn app:app`` / ``flask run``."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask_jwt_extended import JWTManager

import routers
from config.settings import Settings, SettingsError
from controllers.auth import ISSUER, Credentials, VerifiedTokens
from controllers.auth.limiter import LoginLimiter
from controllers.auth.revocation import RevocationList
from controllers.cluster import ClusterContext, kubeconfig_policy
from controllers.cluster.clients import ClientSweeper, ClusterClients
from controllers.cluster.registry import ClusterRegistry
from controllers.resources.generic import Platform
from controllers.terminal import SessionRegistry, Terminal, TerminalLimits
from initcontroller import Bootstrap
from utils import kube, logs
from utils.informer import MetadataInformer
from utils.metadata import MetadataCluster


@dataclass
class Backend:
    """Settings, the metadata cluster, the bootstrap state and the cluster controllers' context."""

    settings: Settings
    metadata: MetadataCluster
    bootstrap: Bootstrap
    clusters: ClusterContext
    informer: MetadataInformer | None = None
    # Defaults so that wiring without them (unit tests) still works: no revocations, default limits.
    revocations: RevocationList | None = None
    login_limiter: LoginLimiter = field(default_factory=LoginLimiter)
    # Tokens that verified, so that a request does not decode its token again (controllers.auth).
    verified_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)
    # The platform's per-cluster clients (None in wiring without the resource routes).
    cluster_clients: ClusterClients | None = None
    # WebSocket sessions of this process (pod/log, pod/exec); ended first on shutdown.
    sessions: SessionRegistry | None = None
    _sweeper: ClientSweeper | None = None

    @property
    def credentials(self) -> Credentials | None:
        """The admin login and signing key, once bootstrap has run."""
        return self.bootstrap.credentials

    def start_background(self) -> None:
        """Start the informers of the registry and the revocations (after bootstrap: they need the namespace)."""
        if self.informer is not None:
            self.informer.start()
        if self.revocations is not None:
            self.revocations.start()
        if self.cluster_clients is not None and self._sweeper is None:
            self._sweeper = ClientSweeper(self.cluster_clients)
            self._sweeper.start()

    def stop(self) -> None:
        """Stop background work (WebSocket sessions first: they get a close frame, not a dropped socket)."""
        if self.sessions is not None:
            self.sessions.shutdown(wait_seconds=2.0)
        self.bootstrap.stop()
        if self.informer is not None:
            self.informer.stop()
        if self.revocations is not None:
            self.revocations.stop()
        if self._sweeper is not None:
            self._sweeper.stop()
        if self.cluster_clients is not None:
            self.cluster_clients.close()


def create_app(settings: Settings | None = None, *, bootstrap: bool = True) -> Flask:
    """Build the app: settings, logging, metadata client, JWT, blueprints, then start bootstrap."""
    settings = settings or Settings.from_env()
    logs.setup_logging(settings.log_level)
    logs.register_secret(settings.password)
    logs.register_secret(settings.jwt_sign_key)
    kube.sweep_stale_credential_dirs()  # credential files of processes that died (see utils.kube)

    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],  # pinned: "none" or RS256 tokens are refused
        JWT_ACCESS_TOKEN_EXPIRES=dt.timedelta(minutes=settings.jwt_expire_minutes),
        JWT_IDENTITY_CLAIM="sub",
        JWT_ENCODE_ISSUER=ISSUER,
        JWT_ENCODE_NBF=True,
        JWT_TOKEN_LOCATION=["headers"],
        JWT_COOKIE_CSRF_PROTECT=False,  # header tokens only; no csrf claim in tokens
    )

    metadata = MetadataCluster(settings)
    informer = MetadataInformer(
        lambda: metadata.client,
        kube.secret_path(settings.metadata_namespace),
        f"{settings.cluster_label}=true",
        watch_seconds=settings.watch_timeout,
    )
    registry = ClusterRegistry(metadata, settings.cluster_label, informer, secret_cache_size=settings.secret_cache_size)
    clusters = ClusterContext(
        registry=registry,
        policy=kubeconfig_policy(settings),
        target_timeout=(settings.target_connect_timeout, settings.target_read_timeout),
        target_deadline=settings.target_deadline,
        max_kubeconfig_bytes=settings.max_kubeconfig_bytes,
    )
    cluster_clients = ClusterClients(
        registry,
        clusters.policy,
        max_clients=settings.client_cache_size,
        idle_seconds=settings.client_idle_seconds,
        pool_size=settings.client_pool_size,
    )
    app.extensions["krm.platform"] = Platform(
        clients=cluster_clients,
        budget_seconds=settings.route_budget,
        budget_long_seconds=settings.route_budget_long,
        connect_timeout=settings.route_connect_timeout,
        delete_list_max=settings.delete_list_max,
        delete_list_concurrency=settings.delete_list_concurrency,
        secret_list_data=settings.secret_list_data,
        protected_namespaces=settings.protected_namespaces,
        metadata_namespace=settings.metadata_namespace,
        metadata_uid=metadata.kube_system_uid,
    )
    app.extensions["krm.platform.max_body"] = settings.resource_max_body_bytes
    platform = app.extensions["krm.platform"]
    sessions = SessionRegistry(settings.ws_max_sessions)
    app.extensions["krm.terminal"] = Terminal(
        registry=sessions,
        limits=TerminalLimits(
            max_sessions=settings.ws_max_sessions,
            log_max_seconds=settings.log_max_seconds,
            exec_idle_seconds=settings.exec_idle_seconds,
            exec_max_seconds=settings.exec_max_seconds,
            budget_seconds=settings.route_budget,
        ),
        open_client=lambda cluster_id: platform.clients.use(cluster_id, platform.budget()),
    )
    boot = Bootstrap(settings, metadata)
    backend = Backend(
        settings,
        metadata,
        boot,
        clusters,
        informer,
        revocations=RevocationList(metadata, watch_seconds=settings.watch_timeout),
        login_limiter=LoginLimiter(settings.login_max_failures, settings.login_lockout_seconds),
        cluster_clients=cluster_clients,
        sessions=sessions,
    )
    # Watching and probing need the namespace (and the Leases live there): start them after bootstrap.
    boot.on_ready = lambda _credentials: backend.start_background()
    wiring: routers.Wiring = backend  # mypy checks that the routers get everything they read
    app.extensions["krm"] = wiring

    jwt = JWTManager(app)

    def signing_key(*_: Any) -> str:
        """The HS256 key (configured, or generated once and shared through a Secret)."""
        credentials = backend.credentials
        if credentials is None:
            raise ValueError("no signing key before bootstrap")
        return credentials.sign_key

    jwt.encode_key_loader(signing_key)
    jwt.decode_key_loader(signing_key)

    routers.register(app)
    logs.info(settings.safe_summary(), "krm-backend configured")
    if bootstrap:
        boot.start()
    return app


def __getattr__(name: str) -> Flask:
    """``app.app``: built on first access, so importing this module has no side effects."""
    if name == "app":
        try:
            settings = Settings.from_env()
        except SettingsError as exc:
            # A clear line instead of a traceback; 3 is gunicorn's "worker failed to boot": it halts.
            sys.stderr.write(f"krm-backend: invalid configuration: {exc}\n")
            raise SystemExit(3) from None
        application = create_app(settings)
        globals()["app"] = application
        return application
    raise AttributeError(name)
