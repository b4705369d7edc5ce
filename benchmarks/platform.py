"""Benchmark: the platform's resource routes against the bare API calls they wrap, in the same run.

Run: ``.venv/bin/python -m benchmarks.platform`` (``--pods 5000`` by default; about ten minutes on two
cores). It starts its own etcd and two API servers (meta + one target). The target is **living**
(``ControlPlane.add_cluster(living=True)``): a controller manager, a scheduler and kwok simulating 100
Nodes, so the Nodes carry a kubelet's status, the Pods (``--pods`` in one namespace, bound to the
Nodes, plus a tenth of that spread over 10 more namespaces) are set Running by kwok, and 500 Deployments
(in a namespace of their own) roll out. ``--bare`` runs the same against a bare API server instead
(Nodes and objects created directly, no controllers: the runs before 2026-12-02's evening). It serves
the app with gunicorn (2 workers, prober off so that it does not compete for the two cores), registers
the target and measures, p50/p99:

- ``pod/list`` of one namespace and of all namespaces vs the bare LIST;
- ``deployment/list`` (500) and ``node/list`` (100) vs the bare LIST;
- ``pod/get`` vs the bare GET on a kept-alive connection (the service reuses its client);
- the RSS of each worker after the big lists.

Both sides use the same HTTP client (urllib3, one kept-alive connection) and parse the JSON they
receive with orjson, so the ratio is the service's own overhead: HTTP in, token check, client lookup,
the call, the envelope out. Two reference rows repeat ``pod/get`` and ``node/list`` with ``requests`` as
the service's client, as the runs before 2026-12-02 measured (``requests`` costs the client itself
about 1.5 ms per call here). Each row also reports the workers' CPU time per service request (from
``/proc``), which a busy shared machine disturbs much less than latency. Figures go to
``benchmarks/results/platform-<date>.json``; a summary is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import orjson
import requests
import urllib3

from benchmarks.registry import RESULTS, BareApi, percentiles, timed, worker_rss_mib
from controlplane.harness import Cluster, ControlPlane
from controlplane.service import Service


def create_all(cluster: Cluster, bodies: list[tuple[str, dict]], threads: int = 8) -> None:
    """POST every (path, body) through the admin identity, ``threads`` at a time."""

    def one(item: tuple[str, dict]) -> None:
        status, body = cluster.request("POST", item[0], item[1])
        assert status == 201, body

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, bodies))


def pod(name: str, namespace: str, node: str) -> dict:
    """A Pod bound by hand to a (simulated) node, so that it looks scheduled."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
            "labels": {"app": name.rsplit("-", 1)[0], "bench": "yes"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.example/app:1",
                     "ports": [{"containerPort": 8080}], "resources": {"requests": {"cpu": "10m"}}}]}}  # fmt: skip


def deployment(name: str) -> dict:
    """A Deployment."""
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}}}  # fmt: skip


def node(name: str) -> dict:
    """A Node object."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "topology.kubernetes.io/zone": "zone-a"}}}  # fmt: skip


def workers_cpu_seconds(master_pid: int) -> float:
    """User + system CPU time of every gunicorn worker (children of the master), in seconds."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == master_pid:
            total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def wait_for(what: str, check: Callable[[], int], want: int, timeout: float = 900.0) -> float:
    """Poll ``check`` until it reaches ``want`` (bounded); the seconds it took."""
    started = time.monotonic()
    last = -1
    while (got := check()) < want:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{what}: {got} of {want} after {timeout:.0f} s")
        if got != last:
            print(f"  {what}: {got} of {want}", flush=True)
            last = got
        time.sleep(2)
    return round(time.monotonic() - started, 1)


def running_pods(cluster: Cluster) -> int:
    """How many Pods of the cluster kwok has set Running (a field-selected LIST, in pages of 2,000)."""
    bare = BareApi(cluster)
    running, token = 0, ""
    while True:
        page = bare.get(
            "/api/v1/pods?limit=2000&fieldSelector=status.phase%3DRunning" + (f"&continue={token}" if token else "")
        )
        assert isinstance(page, dict)
        running += len(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return running


def available_deployments(cluster: Cluster, namespace_name: str) -> int:
    """How many Deployments of the namespace have their replica available."""
    listing = BareApi(cluster).get(f"/apis/apps/v1/namespaces/{namespace_name}/deployments")
    assert isinstance(listing, dict)
    return sum(1 for d in listing.get("items") or [] if (d.get("status") or {}).get("availableReplicas") == 1)


def namespace(name: str) -> tuple[str, dict]:
    """A Namespace create."""
    return "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description="platform benchmark (see module docstring)")
    parser.add_argument("--tag", default="", help="appended to the result file's name (a second run of a day)")
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=30, help="samples of each big list")
    parser.add_argument("--get-samples", type=int, default=300)
    parser.add_argument("--bare", action="store_true", help="a bare API server instead of a living cluster")
    args = parser.parse_args(argv)
    living = not args.bare
    root = Path(tempfile.mkdtemp(prefix="krm-bench-platform-"))
    plane = ControlPlane(root / "controlplane")
    results: dict = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "pods": args.pods,
        "living": living,
    }
    svc = None
    try:
        plane.start_etcd()
        meta = plane.add_cluster("meta")
        started = time.monotonic()
        target = plane.add_cluster("target", living=living, nodes=100)
        create_all(target, [namespace("bench"), namespace("apps"), *[namespace(f"other-{i}") for i in range(10)]])
        if living:
            nodes = list(target.living.nodes) if target.living is not None else []
        else:
            nodes = [f"node-{i:03d}" for i in range(100)]
            create_all(target, [("/api/v1/nodes", node(name)) for name in nodes])
        pods = [("/api/v1/namespaces/bench/pods", pod(f"web-{i:05d}", "bench", nodes[i % len(nodes)]))
                for i in range(args.pods)]  # fmt: skip
        pods += [(f"/api/v1/namespaces/other-{i % 10}/pods", pod(f"api-{i:05d}", f"other-{i % 10}", nodes[0]))
                 for i in range(args.pods // 10)]  # fmt: skip
        create_all(target, pods)
        create_all(target, [("/apis/apps/v1/namespaces/apps/deployments", deployment(f"dep-{i:03d}"))
                            for i in range(500)])  # fmt: skip
        if living:  # wait for the cluster to settle: every Pod Running, every Deployment rolled out
            results["deployments_available_seconds"] = wait_for(
                "deployments available", lambda: available_deployments(target, "apps"), 500
            )
            results["pods_running_seconds"] = wait_for("pods running", lambda: running_pods(target),
                                                       len(pods) + 500)  # fmt: skip
        results["setup_seconds"] = round(time.monotonic() - started, 1)
        print(f"created {len(pods)} pods, 500 deployments, {len(nodes)} nodes (living: {living}) in "
              f"{results['setup_seconds']} s", flush=True)  # fmt: skip

        svc = Service(meta, root, workers=2, env={"PROBE_ENABLED": "false"})
        svc.start()
        token = svc.token()
        kubeconfig = json.dumps(target.kubeconfig())
        body = svc.api("POST", "/api/cluster/add", json={"id": "bench", "kubeconfig": kubeconfig})
        assert body["status"] == 200, body
        session = requests.Session()
        session.headers["Authorization"] = token
        pool = urllib3.PoolManager(maxsize=4)  # the bare side's client (BareApi): urllib3, kept alive
        bare = BareApi(target)
        bare_meta = BareApi(meta)

        def through(path: str, **params: str) -> None:
            query = urlencode({"clusterId": "bench", **params})
            resp = pool.request("GET", f"{svc.url}{path}?{query}", headers={"Authorization": token}, timeout=30)
            answer = orjson.loads(resp.data)
            assert answer["status"] == 200, answer["message"]

        def through_requests(path: str, **params: str) -> None:
            resp = session.get(svc.url + path, params={"clusterId": "bench", **params}, timeout=30)
            answer = orjson.loads(resp.content)
            assert answer["status"] == 200, answer["message"]

        cases = [
            ("pod/list one namespace", lambda: through("/api/pod/list", nameSpace="bench"),
             lambda: bare.get("/api/v1/namespaces/bench/pods"), args.samples),
            ("pod/list all namespaces", lambda: through("/api/pod/list"), lambda: bare.get("/api/v1/pods"),
             args.samples),
            ("deployment/list 500", lambda: through("/api/deployment/list", nameSpace="apps"),
             lambda: bare.get("/apis/apps/v1/namespaces/apps/deployments"), args.samples * 3),
            ("node/list 100", lambda: through("/api/node/list"), lambda: bare.get("/api/v1/nodes"), args.samples * 10),
            ("pod/get", lambda: through("/api/pod/get", nameSpace="bench", name="web-00042"),
             lambda: bare.get("/api/v1/namespaces/bench/pods/web-00042"), args.get_samples),
            # Reference: the registry's own get, the same HTTP path and one Secret GET through KubeClient.
            ("cluster/get (reference)", lambda: through("/api/cluster/get"),
             lambda: bare_meta.get(f"/api/v1/namespaces/{svc.namespace}/secrets/bench"), args.get_samples),
            # Reference: the client of the runs before 2026-12-02 (requests) on the service side.
            ("node/list 100 (requests)", lambda: through_requests("/api/node/list"),
             lambda: bare.get("/api/v1/nodes"), args.samples * 3),
            ("pod/get (requests)", lambda: through_requests("/api/pod/get", nameSpace="bench", name="web-00042"),
             lambda: bare.get("/api/v1/namespaces/bench/pods/web-00042"), args.get_samples),
        ]  # fmt: skip
        assert svc.process is not None
        master = svc.process.pid
        rows = {}
        for name, service_call, bare_call, n in cases:
            for _ in range(4):  # warm both workers' clients and connections
                service_call()
                bare_call()
            # Interleaved call by call, so that drift (the living cluster's own writes, the shared machine)
            # hits both sides alike; the workers' CPU is read around the service calls only.
            service_samples, bare_samples = [], []
            cpu = 0.0
            for _ in range(n):
                cpu_before = workers_cpu_seconds(master)
                service_samples += timed(service_call, 1)
                cpu += workers_cpu_seconds(master) - cpu_before
                bare_samples += timed(bare_call, 1)
            s, b = percentiles(service_samples), percentiles(bare_samples)
            rows[name] = {"service": s, "bare": b, "ratio_p50": round(s["p50_ms"] / b["p50_ms"], 2),
                          "overhead_p50_ms": round(s["p50_ms"] - b["p50_ms"], 2),
                          "worker_cpu_ms_per_request": round(cpu / len(service_samples) * 1000, 2)}  # fmt: skip
            print(f"{name:26s} service p50 {s['p50_ms']:8.1f} p99 {s['p99_ms']:8.1f} ms | bare p50 "
                  f"{b['p50_ms']:8.1f} p99 {b['p99_ms']:8.1f} ms | x{rows[name]['ratio_p50']} "
                  f"+{rows[name]['overhead_p50_ms']} ms | worker CPU {rows[name]['worker_cpu_ms_per_request']} ms/req",
                  flush=True)  # fmt: skip
        results["routes"] = rows
        results["worker_rss_mib_after_lists"] = worker_rss_mib(svc.process.pid)
        print(f"worker RSS after the lists: {results['worker_rss_mib_after_lists']} MiB", flush=True)
        metrics = session.get(svc.url + "/metrics", timeout=10).text
        built = [line for line in metrics.splitlines() if line.startswith("krm_cluster_clients_built_total")]
        results["clients_built"] = built[0].split()[-1] if built else "?"
    finally:
        if svc is not None:
            svc.stop()
        plane.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = f"-{args.tag}" if args.tag else ""
    out = RESULTS / f"platform-{'living-' if living else ''}{dt.date.today().isoformat()}{tag}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out.relative_to(RESULTS.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
