"""Start one etcd and several kube-apiservers on loopback, each a separate "cluster".

Every API server gets its own ``--etcd-prefix``, port and certificate directory on one shared etcd.
Per cluster the harness writes three kubeconfigs the way users write them (server URL plus
``certificate-authority-data``): ``admin`` (static token, group ``system:masters``), ``limited``
(authenticated, no RBAC grant, so every call is a 403) and ``cert-admin`` (a client certificate).

A bare cluster runs no controller manager: namespaces never finish deleting, so tests use unique names.
A **living** cluster (``ControlPlane.add_cluster(name, living=True)``) also runs kube-controller-manager,
kube-scheduler and kwok, so Deployments roll out onto simulated Nodes and pod logs and exec work through
the API server. How it is wired (see also the README, "Living target clusters"):

- **kwok** (the ``kwok`` controller, flags as kwokctl's binary runtime passes them:
  ``--manage-all-nodes=true --kubeconfig --config --tls-cert-file --tls-private-key-file --node-ip
  --node-name --node-port --server-address --node-lease-duration-seconds``) manages every Node and the
  pods bound to them, renews each Node's Lease, and serves the kubelet API (``/containerLogs``,
  ``/exec``, ...) with TLS on ``127.0.0.1:<kwok port>``. The default Stages kwokctl writes are copied
  in ``controlplane/kwok/stages.yaml``; the harness appends a ``ClusterLogs`` (every container prints
  ``<cluster dir>/living/logs/main.log``, container ``sidecar`` prints ``sidecar.log``; CRI log format,
  followed with fsnotify) and a ``ClusterExec`` (the exec'd command runs as a local process in
  ``<cluster dir>/living/exec``, the scratch working directory) and passes the file with ``--config``.
  The node-initialize stage gives every Node the address ``InternalIP=127.0.0.1`` (``--node-ip``),
  ``Hostname=localhost`` (``--node-name``) and ``daemonEndpoints.kubeletEndpoint.Port`` = kwok's port.
- **kube-apiserver**: kwokctl passes no kubelet flags at all, so the API server dials the node's
  preferred address without a client certificate and without verifying kwok's certificate (kwok
  authenticates nobody). The harness keeps that path and makes it stricter: kwok serves a certificate
  for ``127.0.0.1``/``localhost`` signed by a per-cluster kubelet CA that the API server verifies
  (``--kubelet-certificate-authority``), the API server presents a client certificate
  (``--kubelet-client-certificate/--kubelet-client-key``, which kwok accepts and ignores, as it would a
  kubelet's webhook-authorised one), and ``--kubelet-preferred-address-types=InternalIP,Hostname``
  picks 127.0.0.1 first.
- **kube-controller-manager**: its own client certificate (``system:kube-controller-manager``) and
  ``--use-service-account-credentials`` (each controller acts as its own service account, as kubeadm
  runs it), ``--service-account-private-key-file`` = the API server's signing key and ``--root-ca-file``
  = the API server's serving certificate (the serviceaccount, token and root-CA publisher controllers
  work), ``--controllers`` = every default controller minus those that need a cloud or a pod network,
  ``--node-monitor-grace-period`` short (``NODE_MONITOR_GRACE_PERIOD``) so a stopped kwok turns its Nodes
  NotReady within seconds, no leader election (one instance per cluster).
- **kube-scheduler**: its own client certificate (``system:kube-scheduler``), no leader election.
- Each part has its own log next to the API server's; ``Cluster.part(name)`` gives its ``Process``
  for the fault tools (``stop``, ``start``, ``freeze``, ``thaw``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import http.server
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane import build

LOOPBACK = "127.0.0.1"
T = TypeVar("T")
# The integration framework waits 10 s and envtest 20 s; two busy cores need more headroom.
START_TIMEOUT = 90.0
# Living clusters. kwok renews each Node's Lease every quarter of its duration (2 s here, as a kubelet
# does); the node lifecycle controller marks a Node NotReady once its Lease is older than the grace
# period. 10 s leaves four missed renewals of slack on two busy cores and keeps fault tests short.
NODE_LEASE_DURATION = 8
NODE_MONITOR_GRACE_PERIOD = 10
LIVING_NODES = 3
# Every default controller except those that need a cloud provider or a pod network (node IPAM, routes,
# service load balancers, cloud node lifecycle): they would only log errors here.
KCM_CONTROLLERS = (
    "*,-cloud-node-lifecycle-controller,-node-ipam-controller,-node-route-controller,-service-lb-controller"
)
LIVING_PARTS = ("kube-controller-manager", "kube-scheduler", "kwok")
KWOK_STAGES = Path(__file__).resolve().parent / "kwok" / "stages.yaml"


class ControlPlaneError(RuntimeError):
    """A process of the control plane did not start or stopped unexpectedly."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    """The last lines of a process log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for(predicate: Callable[[], T], timeout: float, what: str = "condition", interval: float = 0.2) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; raise after ``timeout`` s.

    Exceptions from the predicate count as "not yet" (a restarting server refuses connections); the
    last one, or the last falsy value, is named in the error.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise ControlPlaneError(f"{what}: not true after {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A private key as unencrypted PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@dataclass
class CertificateAuthority:
    """A throw-away CA that signs client certificates (CN = user, O = groups)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str) -> CertificateAuthority:
        """Make a self-signed CA valid for a day."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue_client(
        self, user: str, groups: tuple[str, ...] = (), valid_for: dt.timedelta = dt.timedelta(hours=12)
    ) -> tuple[bytes, bytes]:
        """A client certificate and key (PEM) for a user; ``valid_for`` may be negative (expired)."""
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        now = dt.datetime.now(dt.UTC)
        not_after = now + valid_for
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(now, not_after) - dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def issue_server(
        self, names: tuple[str, ...] = (), ips: tuple[str, ...] = (), valid_for: dt.timedelta = dt.timedelta(hours=12)
    ) -> tuple[bytes, bytes]:
        """A serving certificate and key (PEM) for DNS ``names`` and IP addresses ``ips``, valid from now."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or ips or ("server",))[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + valid_for)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def server_context(self, names: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> ssl.SSLContext:
        """A server-side SSLContext with a fresh certificate of this CA (loaded through a temporary file)."""
        cert, key = self.issue_server(names, ips)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.NamedTemporaryFile(suffix=".pem") as fh:
            fh.write(cert + key)
            fh.flush()
            context.load_cert_chain(fh.name)
        return context

    def pem(self) -> bytes:
        """The CA certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


class Process:
    """A child process with its log in a file, stopped with SIGTERM then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        """Remember how to start the process; nothing runs yet."""
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or start again) the process, appending to its log."""
        log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the process and wait for it to be gone."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self.popen = None

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its sockets (the kernel still accepts) but does nothing."""
        if self.popen is not None:
            self.popen.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: a frozen process carries on."""
        if self.popen is not None:
            self.popen.send_signal(signal.SIGCONT)

    def check(self) -> None:
        """Raise with the log's tail when the process has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise ControlPlaneError(
                f"{self.name} exited with {self.popen.returncode}; log {self.log_path}:\n{_tail(self.log_path)}"
            )


@dataclass
class LivingParts:
    """The processes that make a cluster live: controller manager, scheduler and kwok's nodes."""

    dir: Path
    controller_manager: Process
    scheduler: Process
    kwok: Process
    controller_manager_port: int
    scheduler_port: int
    kwok_port: int
    nodes: tuple[str, ...]
    log_files: dict[str, Path]  # container name ("" = any other container) -> the file it prints
    exec_dir: Path  # working directory of every exec'd command
    ready_seconds: float = 0.0  # how long the last start took until nodes Ready and components healthy

    def processes(self) -> dict[str, Process]:
        """Name -> process, in start order."""
        return {
            "kube-controller-manager": self.controller_manager,
            "kube-scheduler": self.scheduler,
            "kwok": self.kwok,
        }


def _healthz(port: int) -> bool:
    """True when a component's secure port answers ``/healthz`` with ``ok`` (self-signed, so unverified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the component generated its own certificate; only liveness matters
    try:
        with urllib.request.urlopen(f"https://{LOOPBACK}:{port}/healthz", context=ctx, timeout=2) as resp:
            return resp.status == 200 and resp.read().strip() == b"ok"
    except (OSError, ssl.SSLError):
        return False


@dataclass
class Cluster:
    """One kube-apiserver: a "cluster" with its own port, certificates and etcd prefix.

    When ``living`` is set the cluster also runs a controller manager, a scheduler and kwok; ``stop``
    and ``start`` then apply to all of them, ``part(name)`` to one.
    """

    name: str
    dir: Path
    port: int
    process: Process
    tokens: dict[str, str]
    client_ca: CertificateAuthority
    kubeconfig_paths: dict[str, Path] = field(default_factory=dict)
    living: LivingParts | None = None

    @property
    def url(self) -> str:
        """The API server's address."""
        return f"https://{LOOPBACK}:{self.port}"

    def ca_pem(self) -> bytes:
        """The serving CA: the self-signed certificate the API server generated in its cert dir."""
        return (self.dir / "certs" / "apiserver.crt").read_bytes()

    def kubeconfig(self, identity: str = "admin", server: str | None = None) -> dict:
        """A kubeconfig dict for ``admin``, ``limited`` or ``cert-admin`` (optionally another server)."""
        if identity == "cert-admin":
            cert, key = self.client_ca.issue_client("cert-admin", ("system:masters",))
            user = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
        else:
            user = {"token": self.tokens[identity]}
        return make_kubeconfig(self.name, server or self.url, self.ca_pem(), user)

    def kubeconfig_yaml(self, identity: str = "admin", server: str | None = None) -> str:
        """The same kubeconfig as text (JSON is valid YAML, and that is what users paste)."""
        return json.dumps(self.kubeconfig(identity, server), indent=2)

    def write_kubeconfigs(self) -> None:
        """Write admin, limited and cert-admin kubeconfigs next to the cluster's data."""
        for identity in ("admin", "limited", "cert-admin"):
            path = self.dir / f"{identity}.kubeconfig"
            path.write_text(self.kubeconfig_yaml(identity))
            path.chmod(0o600)
            self.kubeconfig_paths[identity] = path

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        identity: str = "admin",
        content_type: str = "application/json",
    ):
        """One raw API call with the admin (or limited) token; returns (status, parsed JSON body).

        ``content_type`` selects a PATCH flavour (``application/merge-patch+json``, ...).
        """
        ctx = ssl.create_default_context(cadata=self.ca_pem().decode())
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 - https to loopback
        req.add_header("Authorization", f"Bearer {self.tokens[identity]}")
        req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:  # noqa: S310
                return resp.status, _parse(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _parse(exc.read())

    def create(self, obj: dict) -> dict:
        """Create any object (its collection found by discovery, as kubectl does); return what was stored."""
        api_version = obj["apiVersion"]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        status, discovery = self.request("GET", base)
        if status != 200:
            raise ControlPlaneError(f"{self.name} does not serve {api_version}: HTTP {status}")
        resource = next((r for r in discovery["resources"] if r["kind"] == obj["kind"] and "/" not in r["name"]), None)
        if resource is None:
            raise ControlPlaneError(f"{self.name} has no kind {obj['kind']} in {api_version}")
        path = base
        if resource["namespaced"]:
            path += f"/namespaces/{obj['metadata'].get('namespace', 'default')}"
        status, body = self.request("POST", f"{path}/{resource['name']}", obj)
        if status != 201:
            raise ControlPlaneError(f"creating {obj['kind']} {obj['metadata']['name']}: HTTP {status} {body}")
        return body

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll /readyz with the admin token until it answers 200."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self.process.check()
            if (self.dir / "certs" / "apiserver.crt").exists():
                try:
                    status, body = self.request("GET", "/readyz")
                    if status == 200:
                        return
                    last = f"HTTP {status}: {body}"
                except (OSError, ssl.SSLError, ValueError) as exc:
                    last = str(exc)
            time.sleep(0.25)
        raise ControlPlaneError(
            f"{self.name} not ready after {timeout:.0f} s ({last}); log:\n{_tail(self.process.log_path)}"
        )

    def part(self, name: str) -> Process:
        """The process of one part: ``kube-apiserver`` or, when living, one of ``LIVING_PARTS``."""
        if name == "kube-apiserver":
            return self.process
        if self.living is None:
            raise ControlPlaneError(f"{self.name} is not a living cluster: it has no {name}")
        return self.living.processes()[name]

    def nodes_ready(self) -> dict[str, bool]:
        """Node name -> whether its Ready condition is True, as the API server has it now."""
        status, body = self.request("GET", "/api/v1/nodes")
        if status != 200:
            raise ControlPlaneError(f"listing nodes of {self.name}: HTTP {status}")
        ready = {}
        for node in body.get("items", []):
            conditions = node.get("status", {}).get("conditions") or []
            ready[node["metadata"]["name"]] = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
            )
        return ready

    def living_ready(self) -> bool:
        """True when every simulated Node is Ready and the controller manager and scheduler are healthy."""
        if self.living is None:
            return False
        for proc in self.living.processes().values():
            proc.check()
        if not (_healthz(self.living.controller_manager_port) and _healthz(self.living.scheduler_port)):
            return False
        ready = self.nodes_ready()
        return all(ready.get(node) for node in self.living.nodes)

    def wait_living_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Wait until ``living_ready``; return the seconds it took."""
        started = time.monotonic()
        wait_for(self.living_ready, timeout, f"living cluster {self.name} ready")
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop the API server and any living parts (the data stays in etcd)."""
        if self.living is not None:
            for proc in reversed(self.living.processes().values()):
                proc.stop()
        self.process.stop()

    def start(self) -> None:
        """Start the API server again on the same port, with the same data and certificates, then the rest."""
        if not self.process.running:
            self.process.start()
        self.wait_ready()
        if self.living is not None:
            started = time.monotonic()
            for proc in self.living.processes().values():
                if not proc.running:
                    proc.start()
            self.wait_living_ready()
            self.living.ready_seconds = time.monotonic() - started


def _parse(payload: bytes) -> dict:
    """A JSON body as a dict; plain text (``/readyz`` says ``ok``) as ``{"raw": text}``."""
    try:
        parsed = json.loads(payload or b"{}")
        return parsed if isinstance(parsed, dict) else {"raw": parsed}
    except ValueError:
        return {"raw": payload.decode(errors="replace")}


def _b64(data: bytes) -> str:
    """Base64 text, as kubeconfig ``*-data`` fields want it."""
    return base64.b64encode(data).decode()


def make_kubeconfig(name: str, server: str, ca_pem: bytes | None, user: dict) -> dict:
    """A one-context kubeconfig dict, shaped like the ones users paste."""
    cluster: dict = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = _b64(ca_pem)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": f"{name}-user", "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-user"}}],
        "current-context": name,
    }


def _node(name: str) -> dict:
    """A Node for kwok to simulate: labelled like a kubelet labels its own, with kwok's annotation."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
    }


class ControlPlane:
    """One etcd and any number of API servers under a working directory."""

    def __init__(self, root: Path | None = None, binaries: dict[str, Path] | None = None) -> None:
        """Prepare a control plane in ``root`` (a new temporary directory by default)."""
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="krm-controlplane-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.binaries = binaries or build.build_all()
        self.clusters: dict[str, Cluster] = {}
        self.etcd: Process | None = None
        self.etcd_url = ""
        self.failed = False

    def start_etcd(self) -> None:
        """Start the shared etcd on loopback and wait until it answers its health check."""
        client, peer = free_port(), free_port()
        data = self.root / "etcd"
        self.etcd_url = f"http://{LOOPBACK}:{client}"
        argv = [
            str(self.binaries["etcd"]), "--name=default", f"--data-dir={data}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://{LOOPBACK}:{peer}",
            f"--initial-advertise-peer-urls=http://{LOOPBACK}:{peer}",
            f"--initial-cluster=default=http://{LOOPBACK}:{peer}",
            "--unsafe-no-fsync", "--log-level=warn", "--listen-metrics-urls=",
        ]  # fmt: skip
        self.etcd = Process("etcd", argv, self.root / "etcd.log")
        self.etcd.start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.etcd.check()
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as resp:  # noqa: S310 - http only
                    if json.loads(resp.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise ControlPlaneError(f"etcd not healthy after {START_TIMEOUT:.0f} s:\n{_tail(self.etcd.log_path)}")

    def add_cluster(self, name: str, living: bool = False, nodes: int = LIVING_NODES) -> Cluster:
        """Start one more API server named ``name`` and wait until it is ready.

        ``living=True`` also starts a controller manager, a scheduler and kwok with ``nodes`` simulated
        Nodes, and waits until they are Ready (the binaries are built first if the cache lacks them).
        """
        if living:
            missing = tuple(t for t in build.LIVING_TOOLS if t.name not in self.binaries)
            self.binaries = {**self.binaries, **build.build_all(tools=missing)}
        if self.etcd is None:
            self.start_etcd()
        d = self.root / name
        (d / "certs").mkdir(parents=True, exist_ok=True)
        sa_key = d / "sa.key"
        sa_key.write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
        tokens = {"admin": secrets.token_hex(16), "limited": secrets.token_hex(16)}
        (d / "tokens.csv").write_text(
            f'{tokens["admin"]},admin,admin-uid,"system:masters"\n{tokens["limited"]},limited,limited-uid\n'
        )
        client_ca = CertificateAuthority.create(f"{name}-client-ca")
        (d / "client-ca.crt").write_bytes(client_ca.pem())
        port = free_port()
        argv = [
            str(self.binaries["kube-apiserver"]),
            f"--etcd-servers={self.etcd_url}", f"--etcd-prefix=/{name}/registry",
            f"--bind-address={LOOPBACK}", f"--advertise-address={LOOPBACK}", f"--secure-port={port}",
            f"--cert-dir={d / 'certs'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={sa_key}", f"--service-account-signing-key-file={sa_key}",
            "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC",
            f"--token-auth-file={d / 'tokens.csv'}", f"--client-ca-file={d / 'client-ca.crt'}",
            "--allow-privileged=true", "--disable-admission-plugins=ServiceAccount",
            "--endpoint-reconciler-type=none", "--profiling=false",
        ]  # fmt: skip
        if living:
            argv += self._kubelet_client_flags(d, client_ca)
        process = Process(f"kube-apiserver {name}", argv, d / "kube-apiserver.log")
        cluster = Cluster(name, d, port, process, tokens, client_ca)
        self.clusters[name] = cluster
        process.start()
        try:
            cluster.wait_ready()
        except ControlPlaneError:
            self.failed = True
            raise
        cluster.write_kubeconfigs()
        if living:
            try:
                self._start_living(cluster, nodes)
            except ControlPlaneError:
                self.failed = True
                raise
        return cluster

    @staticmethod
    def _kubelet_client_flags(d: Path, client_ca: CertificateAuthority) -> list[str]:
        """How the API server reaches kwok's kubelet API: verified TLS to 127.0.0.1, with a client cert."""
        kubelet_ca = CertificateAuthority.create(f"{d.name}-kubelet-ca")
        pki = d / "living" / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        (pki / "kubelet-ca.crt").write_bytes(kubelet_ca.pem())
        serving_cert, serving_key = kubelet_ca.issue_server(names=("localhost",), ips=(LOOPBACK,))
        (pki / "kwok.crt").write_bytes(serving_cert)
        (pki / "kwok.key").write_bytes(serving_key)
        client_cert, client_key = client_ca.issue_client("kube-apiserver-kubelet-client")
        (pki / "apiserver-kubelet-client.crt").write_bytes(client_cert)
        (pki / "apiserver-kubelet-client.key").write_bytes(client_key)
        return [
            f"--kubelet-certificate-authority={pki / 'kubelet-ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]

    def _component_kubeconfig(self, cluster: Cluster, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig file with a client certificate for one component (RBAC knows these users)."""
        cert, key = cluster.client_ca.issue_client(user, groups, valid_for=dt.timedelta(days=1))
        config = make_kubeconfig(
            cluster.name,
            cluster.url,
            cluster.ca_pem(),
            {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)},
        )
        path = cluster.dir / "living" / f"{user.replace(':', '-')}.kubeconfig"
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def _kwok_config(self, cluster: Cluster, living_dir: Path) -> tuple[Path, dict[str, Path], Path]:
        """kwok's ``--config``: the default Stages plus what pods print (ClusterLogs) and run (ClusterExec)."""
        logs = living_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        exec_dir = living_dir / "exec"
        exec_dir.mkdir(parents=True, exist_ok=True)
        log_files = {"": logs / "main.log", "sidecar": logs / "sidecar.log"}
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for container, path in log_files.items():
            # The CRI log format kubelets write: time, stream, P(artial)/F(ull) tag, text.
            who = container or "main"
            path.write_text(
                f"{now} stdout F [{who}] living cluster {cluster.name}: container started\n"
                f"{now} stdout F [{who}] serving on :8080\n"
            )
        documents = [
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterLogs",
                "metadata": {"name": "krm-logs"},
                "spec": {
                    "logs": [
                        {"containers": ["sidecar"], "logsFile": str(log_files["sidecar"]), "follow": True},
                        {"logsFile": str(log_files[""]), "follow": True},
                    ]
                },
            },
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterExec",
                "metadata": {"name": "krm-exec"},
                "spec": {
                    "execs": [
                        {
                            "local": {
                                "workDir": str(exec_dir),
                                "envs": [
                                    {"name": "KRM_LIVING_CLUSTER", "value": cluster.name},
                                    {"name": "HOME", "value": str(exec_dir)},
                                ],
                            }
                        }
                    ]
                },
            },
        ]
        # JSON documents are YAML; kwok reads a multi-document file.
        text = KWOK_STAGES.read_text() + "".join(f"---\n{json.dumps(doc, indent=2)}\n" for doc in documents)
        path = living_dir / "kwok.yaml"
        path.write_text(text)
        return path, log_files, exec_dir

    def _start_living(self, cluster: Cluster, nodes: int) -> None:
        """Create the Nodes, start controller manager, scheduler and kwok, wait until all is ready."""
        d = cluster.dir / "living"
        d.mkdir(parents=True, exist_ok=True)
        names = tuple(f"kwok-node-{i}" for i in range(1, nodes + 1))
        for node in names:
            status, body = cluster.request("POST", "/api/v1/nodes", _node(node))
            if status != 201:
                raise ControlPlaneError(f"creating node {node} in {cluster.name}: HTTP {status} {body}")
        kcm_port, scheduler_port, kwok_port = free_port(), free_port(), free_port()
        kcm_config = self._component_kubeconfig(cluster, "system:kube-controller-manager")
        scheduler_config = self._component_kubeconfig(cluster, "system:kube-scheduler")
        # kwokctl gives kwok the cluster's admin credentials: it writes Node and Pod status, Leases and
        # Events for every simulated kubelet, which the Node authorizer would only allow node by node.
        kwok_config = self._component_kubeconfig(cluster, "kwok-controller", ("system:masters",))
        kwok_yaml, log_files, exec_dir = self._kwok_config(cluster, d)
        pki = d / "pki"
        kcm = [
            str(self.binaries["kube-controller-manager"]), f"--kubeconfig={kcm_config}",
            f"--bind-address={LOOPBACK}", f"--secure-port={kcm_port}", f"--cert-dir={d / 'kcm-certs'}",
            "--leader-elect=false", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={cluster.dir / 'sa.key'}",
            f"--root-ca-file={cluster.dir / 'certs' / 'apiserver.crt'}",
            f"--controllers={KCM_CONTROLLERS}",
            "--node-monitor-period=1s", f"--node-monitor-grace-period={NODE_MONITOR_GRACE_PERIOD}s",
            "--kube-api-qps=100", "--kube-api-burst=200", "--profiling=false",
        ]  # fmt: skip
        scheduler = [
            str(self.binaries["kube-scheduler"]), f"--kubeconfig={scheduler_config}",
            f"--bind-address={LOOPBACK}", f"--secure-port={scheduler_port}",
            f"--cert-dir={d / 'scheduler-certs'}", "--leader-elect=false",
            "--kube-api-qps=100", "--kube-api-burst=200", "--profiling=false",
        ]  # fmt: skip
        kwok = [
            str(self.binaries["kwok"]), "--manage-all-nodes=true", f"--kubeconfig={kwok_config}",
            f"--config={kwok_yaml}", f"--tls-cert-file={pki / 'kwok.crt'}",
            f"--tls-private-key-file={pki / 'kwok.key'}", f"--node-ip={LOOPBACK}", "--node-name=localhost",
            f"--node-port={kwok_port}", f"--server-address={LOOPBACK}:{kwok_port}",
            f"--node-lease-duration-seconds={NODE_LEASE_DURATION}",
            # Pod IPs are only status fields here; keep them apart from the service range 10.0.0.0/24.
            "--cidr=10.244.0.0/16",
        ]  # fmt: skip
        cluster.living = LivingParts(
            dir=d,
            controller_manager=Process(
                f"kube-controller-manager {cluster.name}", kcm, d / "kube-controller-manager.log"
            ),
            scheduler=Process(f"kube-scheduler {cluster.name}", scheduler, d / "kube-scheduler.log"),
            kwok=Process(f"kwok {cluster.name}", kwok, d / "kwok.log"),
            controller_manager_port=kcm_port,
            scheduler_port=scheduler_port,
            kwok_port=kwok_port,
            nodes=names,
            log_files=log_files,
            exec_dir=exec_dir,
        )
        started = time.monotonic()
        for proc in cluster.living.processes().values():
            proc.start()
        try:
            cluster.wait_living_ready()
        except ControlPlaneError as exc:
            tails = "\n".join(
                f"--- {p.name} ({p.log_path}):\n{_tail(p.log_path, 15)}" for p in cluster.living.processes().values()
            )
            raise ControlPlaneError(f"{exc}\n{tails}") from exc
        cluster.living.ready_seconds = time.monotonic() - started

    def stop(self, keep: bool | None = None) -> None:
        """Stop every process; remove the working directory unless something failed (or ``keep``)."""
        for cluster in self.clusters.values():
            cluster.stop()
        if self.etcd is not None:
            self.etcd.stop()
        if keep is None:
            keep = self.failed
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


class Blackhole:
    """A loopback listener that accepts connections and never answers: a hanging cluster."""

    def __init__(self) -> None:
        """Listen on a free loopback port and accept in a daemon thread."""
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The hanging server's address."""
        return f"https://{LOOPBACK}:{self.port}"

    def _accept(self) -> None:
        """Accept and hold every connection until closed."""
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        """Stop listening and drop every held connection."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept thread; close() alone leaves it blocked
        self.sock.close()
        self.thread.join(5)
        for conn in self.accepted:
            conn.close()


class Dripper:
    """A TLS listener on loopback that answers every request one byte per ``interval``, forever.

    Each byte is its own TLS record, so a client's socket read timeout (longer than ``interval``)
    never fires: only a wall-clock deadline ends the call. ``phase="headers"`` drips the status line
    and headers; ``phase="body"`` sends the headers of a large JSON body at once and drips the body.
    """

    def __init__(self, phase: str = "headers", interval: float = 0.25) -> None:
        """Listen on a free loopback port with a certificate for 127.0.0.1 from a CA of its own."""
        self.phase = phase
        self.interval = interval
        self.ca = CertificateAuthority.create("dripper-ca")
        self.context = self.ca.server_context(ips=(LOOPBACK,))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.sent = 0  # bytes dripped so far, over all connections
        self.connections = 0
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="dripper", daemon=True).start()

    @property
    def url(self) -> str:
        """The dripping server's address."""
        return f"https://{LOOPBACK}:{self.port}"

    def ca_pem(self) -> bytes:
        """The CA a kubeconfig for this server trusts."""
        return self.ca.pem()

    def _accept(self) -> None:
        """Serve each connection in a thread of its own."""
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        """Handshake, read the request head, then drip until the client goes away or we close."""
        conn: socket.socket = raw
        try:
            raw.settimeout(10)
            conn = self.context.wrap_socket(raw, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.connections += 1
            if self.phase == "body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
                payload = b'{"gitVersion":"' + b"v" * 999_000
            else:
                payload = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Drip: " + b"d" * 999_000
            for byte in payload:
                if self._closed.wait(self.interval):
                    return
                conn.sendall(bytes([byte]))
                self.sent += 1
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        """Stop listening and dripping."""
        self._closed.set()
        self.sock.close()


class HostRoutingProxy:
    """A TLS-terminating reverse proxy on loopback that routes on the host name, like Rancher's.

    Requests whose SNI and ``Host`` name ``hostname`` and whose path starts with ``prefix`` go to the
    upstream API server with the prefix stripped (the client's Authorization passed on); anything else
    is answered 404. Its certificate (from a CA of its own) is valid for ``hostname`` only, so a client
    must send that name in SNI and verify the certificate for it.
    """

    def __init__(self, upstream: Cluster, hostname: str = "k8s.test.invalid",
                 prefix: str = "/k8s/clusters/c-test") -> None:  # fmt: skip
        """Start serving on a free loopback port in a daemon thread."""
        self.upstream = upstream
        self.hostname = hostname
        self.prefix = prefix
        self.ca = CertificateAuthority.create("proxy-ca")
        context = self.ca.server_context(names=(hostname,))
        self._context = context
        snis: dict[int, str | None] = {}

        def remember_sni(sock: ssl.SSLSocket | ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            snis[id(sock)] = name

        context.sni_callback = remember_sni
        self.routed: list[str] = []  # paths (upstream's) that were passed on
        self.refused: list[str] = []  # "sni host path" of what was answered 404
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                sni = snis.get(id(self.connection))
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if sni != proxy.hostname or host != proxy.hostname or not self.path.startswith(proxy.prefix + "/"):
                    proxy.refused.append(f"{sni} {host} {self.path}")
                    payload = b"404 page not found\n"
                    self.send_response(404)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                path = self.path[len(proxy.prefix) :]
                proxy.routed.append(path)
                upstream = http.client.HTTPSConnection(
                    LOOPBACK, proxy.upstream.port, timeout=10,
                    context=ssl.create_default_context(cadata=proxy.upstream.ca_pem().decode()),
                )  # fmt: skip
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() in
                               ("authorization", "accept", "content-type", "user-agent")}  # fmt: skip
                    upstream.request(self.command, path, body=body, headers=headers)
                    resp = upstream.getresponse()
                    payload = resp.read()
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.getheader("Content-Type") or "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                conn, addr = super().get_request()
                conn.settimeout(10)
                return context.wrap_socket(conn, server_side=True), addr

        self.server = Server((LOOPBACK, 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, name="host-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        """The server URL a kubeconfig for the proxied cluster carries (name, port and path prefix)."""
        return f"https://{self.hostname}:{self.port}{self.prefix}"

    def use_certificate(self, valid_for: dt.timedelta) -> None:
        """Serve new handshakes with a fresh certificate for the name, valid for ``valid_for`` from now.

        Connections already open keep the one they were made with (as a real server's do)."""
        cert, key = self.ca.issue_server(names=(self.hostname,), valid_for=valid_for)
        with tempfile.NamedTemporaryFile(suffix=".pem") as fh:
            fh.write(cert + key)
            fh.flush()
            self._context.load_cert_chain(fh.name)

    def kubeconfig(self, identity: str = "admin") -> dict:
        """A kubeconfig of the upstream cluster through this proxy, trusting the proxy's CA."""
        return make_kubeconfig(f"{self.upstream.name}-proxied", self.url, self.ca.pem(),
                               {"token": self.upstream.tokens[identity]})  # fmt: skip

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def start_default(root: Path, targets: int = 1, on_progress: Callable[[str], None] = print) -> ControlPlane:
    """A metadata cluster ``meta`` and ``targets`` target clusters, for the run command."""
    plane = ControlPlane(root)
    on_progress("starting etcd")
    plane.start_etcd()
    for name in ["meta"] + [f"demo{i}" if targets > 1 else "demo" for i in range(1, targets + 1)]:
        on_progress(f"starting kube-apiserver {name}")
        plane.add_cluster(name)
    return plane


def environment_summary() -> str:
    """One line naming the binaries in use, for logs."""
    return ", ".join(f"{t.name} {t.version()}" for t in build.TOOLS) + f" (cache {build.cache_dir()})"


if __name__ == "__main__":  # pragma: no cover - manual smoke run
    plane = start_default(Path(tempfile.mkdtemp(prefix="krm-cp-")))
    print({name: c.url for name, c in plane.clusters.items()})
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        plane.stop()
    os._exit(0)
