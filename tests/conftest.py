"""Fixtures: one real control plane per test session (etcd + a metadata and two target clusters).

Living target clusters (controller manager, scheduler, kwok nodes) join the same control plane only
when a test asks for ``living1`` or ``living2``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.harness import Cluster, ControlPlane
from tests.service import Service, unique

# The platform tests' fixtures (platform_cluster, platform_id, namespace) live in a module of their own.
pytest_plugins = ["tests.platform_fixtures"]


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd plus kube-apiservers ``meta``, ``target1`` and ``target2``; logs kept if a start fails.

    Building or starting it never skips: a control plane that cannot be had fails the run.
    """
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    try:
        plane.start_etcd()
        for name in ("meta", "target1", "target2"):
            plane.add_cluster(name)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def meta(control_plane: ControlPlane) -> Cluster:
    """The metadata cluster."""
    return control_plane.clusters["meta"]


@pytest.fixture(scope="session")
def target1(control_plane: ControlPlane) -> Cluster:
    """A target cluster."""
    return control_plane.clusters["target1"]


@pytest.fixture(scope="session")
def target2(control_plane: ControlPlane) -> Cluster:
    """Another target cluster."""
    return control_plane.clusters["target2"]


@pytest.fixture(scope="session")
def living1(control_plane: ControlPlane) -> Cluster:
    """A living target cluster: Deployments roll out onto kwok's simulated Nodes, logs and exec work.

    Started the first time a test asks for it (about 10 s warm), then shared by the session: use unique
    namespaces and leave its Nodes and processes as you found them (fault tests use ``living2``).
    Poll with ``controlplane.harness.wait_for(predicate, timeout, what)``, never sleep.
    """
    return control_plane.add_cluster("living1", living=True)


@pytest.fixture(scope="session")
def living2(control_plane: ControlPlane) -> Cluster:
    """A second living target cluster, started only when a test asks for it; the one fault tests break."""
    return control_plane.add_cluster("living2", living=True)


@pytest.fixture(scope="session")
def service(meta: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service under gunicorn (two workers), shared by the route tests (unique ids per test)."""
    svc = Service(meta, tmp_path_factory.mktemp("service"), workers=2)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def cluster_id() -> str:
    """A fresh cluster id."""
    return unique("c")


def kubeconfig_text(cluster: Cluster, identity: str = "admin", server: str | None = None) -> str:
    """A kubeconfig as users paste it."""
    return json.dumps(cluster.kubeconfig(identity, server))


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    """A per-test scratch directory."""
    return tmp_path


@pytest.fixture
def make_service(meta: Cluster, tmp_path: Path) -> Iterator:
    """Start extra service processes with their own environment; all stopped at teardown."""
    started: list[Service] = []

    def start(env: dict[str, str] | None = None, wait_ready: bool = True, **kwargs) -> Service:
        svc = Service(kwargs.pop("cluster", meta), tmp_path, env=env, **kwargs)
        started.append(svc)
        return svc.start(wait_ready=wait_ready)

    try:
        yield start
    finally:
        for svc in started:
            svc.stop()
