"""The README's first command: a local control plane plus the service on 127.0.0.1:8080.

Starts etcd and two kube-apiservers (``meta``: the metadata cluster; ``demo``: a cluster to register)
under ``run/`` in the project, serves the app with gunicorn against ``meta``, prints the login and the
path of the demo cluster's kubeconfig, and tears everything down on Ctrl-C. Each run starts empty.

``demo`` is a living cluster (controller manager, scheduler, kwok with three simulated Nodes) holding
the sample namespace of ``controlplane/demo/sample.yaml``: a Deployment, StatefulSet, DaemonSet,
CronJob, Services, an Ingress, a ConfigMap, a Secret, a PVC bound to its PV and a StorageClass.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from config.settings import parse_listen
from controlplane import build
from controlplane.harness import Cluster, ControlPlane, ControlPlaneError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = Path(__file__).resolve().parent / "demo" / "sample.yaml"


def create_sample(cluster: Cluster) -> list[str]:
    """Create every object of the sample manifest in ``cluster``; return ``Kind namespace/name`` lines."""
    created = []
    for obj in yaml.safe_load_all(SAMPLE.read_text()):
        if not obj:
            continue
        cluster.create(obj)
        meta = obj["metadata"]
        where = f"{meta['namespace']}/" if "namespace" in meta else ""
        created.append(f"{obj['kind']} {where}{meta['name']}")
    return created


def _pod_phases(cluster: Cluster, namespace: str) -> dict[str, int]:
    """How many pods of a namespace are in each phase."""
    _, body = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods")
    phases: dict[str, int] = {}
    for pod in body.get("items", []):
        phase = pod.get("status", {}).get("phase", "Unknown")
        phases[phase] = phases.get(phase, 0) + 1
    return phases


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until the service's /readyz answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not become ready in time")


def main() -> int:
    """Build, start, serve, print how to log in; stop everything on Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default=os.environ.get("PORT", "127.0.0.1:8080"))
    parser.add_argument("--namespace", default=os.environ.get("METADATA_NAMESPACE", "krm"))
    args = parser.parse_args()

    run_dir = PROJECT_ROOT / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    started = time.monotonic()
    try:
        binaries = build.build_all(lambda msg: print(msg, flush=True))
        plane = ControlPlane(run_dir / "controlplane", binaries)
        print("starting etcd, kube-apiserver meta, and the living cluster demo ...", flush=True)
        plane.start_etcd()
        meta = plane.add_cluster("meta")
        demo = plane.add_cluster("demo", living=True)
        assert demo.living is not None
        print(
            f"demo is living: kube-controller-manager, kube-scheduler, kwok with nodes {', '.join(demo.living.nodes)}"
            f" (ready {demo.living.ready_seconds:.1f} s after its API server)",
            flush=True,
        )
        sample = create_sample(demo)
    except (build.BuildError, ControlPlaneError) as exc:
        print(f"could not start the local control plane: {exc}", file=sys.stderr)
        return 1
    env = {**os.environ, "PORT": args.listen, "METADATA_NAMESPACE": args.namespace,
           "METADATA_KUBECONFIG": str(meta.kubeconfig_paths["admin"])}  # fmt: skip
    log_path = run_dir / "service.log"
    with log_path.open("ab") as log:
        service = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def shutdown(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    try:
        host, port = parse_listen(args.listen)
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
        _wait_ready(url, service)
        username = os.environ.get("USERNAME") or os.environ.get("ADMIN_USER_NAME") or "admin"
        password = os.environ.get("PASSWORD") or os.environ.get("ADMIN_PASSWORD")
        if not password:
            _, secret = meta.request("GET", f"/api/v1/namespaces/{args.namespace}/secrets/krm-backend-auth")
            password = base64.b64decode(secret["data"]["password"]).decode()
        print(
            f"\nkrm-backend is serving on {url} (ready after {time.monotonic() - started:.0f} s)\n"
            f"  login:               POST {url}/api/auth/login  username={username}  password={password}\n"
            f"  demo kubeconfig:     {demo.kubeconfig_paths['admin']}\n"
            f"  demo sample objects: {'; '.join(sample)}\n"
            f"  demo sample pods:    {_pod_phases(demo, 'sample')} (pod logs print {demo.living.log_files['']};"
            f" exec runs in {demo.living.exec_dir})\n"
            f"  demo process logs:   {demo.living.dir}\n"
            f"  metadata kubeconfig: {meta.kubeconfig_paths['admin']}\n"
            f"  service log:         {log_path}\n"
            "Ctrl-C stops the service and the control plane.",
            flush=True,
        )
        service.wait()
        return service.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        if service.poll() is None:
            service.terminate()
            try:
                service.wait(20)
            except subprocess.TimeoutExpired:
                service.kill()
        plane.stop(keep=True)


if __name__ == "__main__":
    sys.exit(main())
