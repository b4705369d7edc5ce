"""Benchmark: the registry at 1,000 clusters on the real control plane, against the bare Kubernetes API.

Run: ``.venv/bin/python -m benchmarks.registry`` (about 3-4 minutes on two cores at 1,000 clusters).
It starts its own etcd and three API servers (meta + two targets), registers ``--clusters`` clusters (90%
pointing at the two live targets, 5% at loopback ports that refuse, 5% at a listener that accepts and
never answers; the Secrets are POSTed from ``--register-threads`` threads), serves the app with gunicorn
(2 workers, ``--prober-processes`` probers each) as ``--replicas`` services against the same metadata
namespace, and measures in one run:

- start-up: each replica's start (process spawned) to ``/readyz`` and to its first ``list`` holding every
  cluster, and the resident memory of every worker and prober process of every replica;

- ``list`` and ``get`` through the first replica against the bare API doing the Go version's per-request
  work (label-selected Secret LIST with kubeconfigs; Secret GET), p50/p99 and throughput, and ``get``
  from one client (get/s) beside the bare Secret GET from one client (the Go figure is 731 get/s); the
  service is called with urllib3 on a kept-alive connection, as the bare side is (``requests``, the client
  of the runs before 2026-12-02, is kept as a reference for get/s);
- ``add`` against the bare ``GET /version`` it wraps (both on a fresh connection, as each add is);
- a full probe round with 10% dead or hanging clusters, and ``list`` latency while it runs; then the
  first round after a restart of every replica (health and counts already recorded);
- resident memory of each worker and of the prober process;
- how long a Secret written by another process takes to show in ``list`` (the watch's latency);
- ``cluster/statics`` (read from the counts the probe rounds record) against ``list`` in the same run,
  and ``namespace/copy`` of 100 objects between the two target API servers.

``--skip-probe`` stops after the idle part (registration, start-up, list/get, memory): the figures of the
registry side at 10,000 clusters in a few minutes. Figures go to
``benchmarks/results/registry-<date>[-<clusters>c-<replicas>r].json``; a summary is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import requests
import urllib3

from controlplane.harness import Blackhole, Cluster, ControlPlane, free_port
from controlplane.service import Service

RESULTS = Path(__file__).resolve().parent / "results"
LABEL = "kubeasy.com/cluster.metadata"


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p90 and p99 in milliseconds."""
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": pick(0.50), "p90_ms": pick(0.90), "p99_ms": pick(0.99), "n": len(ordered)}


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Run ``fn`` n times; the duration of each call in seconds."""
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def throughput(fn: Callable[[], object], threads: int, seconds: float) -> float:
    """Calls per second of ``fn`` from ``threads`` threads for ``seconds``."""
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            fn()
            counts[i] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return round(sum(counts) / seconds, 1)


class BareApi:
    """Direct HTTPS calls to an API server, kept alive, parsed with orjson: the baseline."""

    def __init__(self, cluster: Cluster) -> None:
        """A pool to ``cluster`` with its CA and admin token."""
        self.cluster = cluster
        self.ca_path = cluster.dir / "certs" / "apiserver.crt"
        self.pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(self.ca_path), maxsize=16)
        self.headers = {"Authorization": f"Bearer {cluster.tokens['admin']}", "Accept": "application/json"}

    def get(self, path: str, fresh: bool = False) -> object:
        """GET and parse; ``fresh`` uses a new connection (TLS handshake included)."""
        pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(self.ca_path)) if fresh else self.pool
        resp = pool.request("GET", self.cluster.url + path, headers=self.headers, timeout=10)
        assert resp.status == 200, resp.status
        body = orjson.loads(resp.data)
        if fresh:
            pool.clear()
        return body

    def post(self, path: str, obj: dict) -> int:
        """POST a JSON object on a kept-alive connection; the HTTP status."""
        headers = {**self.headers, "Content-Type": "application/json"}
        resp = self.pool.request("POST", self.cluster.url + path, body=orjson.dumps(obj), headers=headers, timeout=30)
        return resp.status


# The service's client: urllib3 on kept-alive connections, as the bare side (BareApi) uses, so a ratio is
# the service's own cost. ``requests`` costs the client itself ~0.3-1.5 ms a call on this machine (runs
# before 2026-12-02 used it); ``requests_api`` keeps it as a reference row.
SERVICE_POOL = urllib3.PoolManager(maxsize=16)


def fast_api(svc: Service, path: str) -> dict:
    """An /api GET through the service on a kept-alive connection, parsed with orjson as the bare side is."""
    resp = SERVICE_POOL.request("GET", svc.url + path, headers={"Authorization": svc.token()}, timeout=30)
    assert resp.status == 200, resp.status
    body = orjson.loads(resp.data)
    assert body["status"] == 200, body["message"]
    return body


def requests_api(svc: Service, path: str) -> dict:
    """The same GET through ``requests`` (the service's kept-alive session): the client of earlier runs."""
    resp = svc.session.get(svc.url + path, headers={"Authorization": svc.token()}, timeout=30)
    assert resp.status_code == 200, resp.status_code
    body = orjson.loads(resp.content)
    assert body["status"] == 200, body["message"]
    return body


def fetch_only(svc: Service, path: str) -> int:
    """The same GET, the body read in full but not parsed (the service's share without the client's parse)."""
    resp = SERVICE_POOL.request("GET", svc.url + path, headers={"Authorization": svc.token()}, timeout=30)
    assert resp.status == 200 and resp.data.startswith(b'{"status":200'), resp.data[:100]
    return len(resp.data)


def start_replicas(
    meta: Cluster, root: Path, namespace: str, env: dict[str, str], count: int, clusters: int
) -> tuple[list[Service], list[dict[str, float]]]:
    """Start ``count`` services one after the other; time each to /readyz and to a list of every cluster."""
    services, startup = [], []
    for _ in range(count):
        svc = Service(meta, root, namespace=namespace, env=env, workers=2)
        services.append(svc)
        started = time.monotonic()
        svc.start()
        ready = time.monotonic() - started
        deadline = started + 300
        while len(fast_api(svc, "/api/cluster/list")["data"]["items"]) < clusters:
            assert time.monotonic() < deadline, "the service did not list every cluster within 300 s"
            time.sleep(0.05)
        startup.append({"ready_s": round(ready, 3), "first_full_list_s": round(time.monotonic() - started, 3)})
    return services, startup


def settle_index(lines: list[dict]) -> int:
    """The index of a replica's first round over its settled share (``owned`` as in its last round).

    Rounds up to it are settling in: the first round, and with several replicas the rounds while shards
    move (a replica that joined with one shard probes its full share, new to it, only in a later round).
    The rounds after it are the steady ones.
    """
    final = lines[-1]["owned"]
    return next(i for i, line in enumerate(lines) if line["owned"] == final)


def secret_patches(cluster: Cluster) -> int:
    """PATCH requests on Secrets the API server has answered so far (from its /metrics)."""
    status, body = cluster.request("GET", "/metrics")
    assert status == 200, status
    total = 0
    for line in str(body.get("raw", "")).splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="secrets"' in line and 'verb="PATCH"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def process_rss(services: list[Service]) -> list[dict[str, dict[str, float]]]:
    """Per replica: RSS of its gunicorn workers and of its prober process (told apart by command line)."""
    out = []
    for svc in services:
        children = worker_rss_mib(svc.process.pid) if svc.process is not None else {}
        prober = {pid: rss for pid, rss in children.items() if _is_prober(pid)}
        workers = {pid: rss for pid, rss in children.items() if pid not in prober}
        out.append({"workers": workers, "prober": prober})
    return out


def _is_prober(pid: str) -> bool:
    """Whether a child of a service's gunicorn master is its prober process (by command line)."""
    return "controllers.prober_process" in _cmdline(pid)


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds a process has used so far (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def prober_cpu_seconds(services: list[Service]) -> list[float]:
    """Per replica: user + system CPU seconds its prober processes have used so far (0.0 if not found)."""
    out = []
    for svc in services:
        pids = [pid for pid in worker_rss_mib(svc.process.pid) if _is_prober(pid)] if svc.process is not None else []
        out.append(round(sum(cpu_seconds(pid) for pid in pids), 2))
    return out


def machine_cpu_seconds(services: list[Service], plane: ControlPlane, clusters: dict[str, Cluster]) -> dict[str, float]:
    """CPU seconds used so far by each part on the machine: the replicas' probers and workers, etcd, and
    each API server (``clusters``: name -> cluster), to tell whose work a phase was."""
    probers = workers = 0.0
    for svc in services:
        if svc.process is None:
            continue
        for pid in worker_rss_mib(svc.process.pid):
            if _is_prober(pid):
                probers += cpu_seconds(pid)
            else:
                workers += cpu_seconds(pid)
    out = {"probers": probers, "workers": workers}
    if plane.etcd is not None and plane.etcd.popen is not None:
        out["etcd"] = cpu_seconds(plane.etcd.popen.pid)
    for name, cluster in clusters.items():
        if cluster.process.popen is not None:
            out[f"apiserver_{name}"] = cpu_seconds(cluster.process.popen.pid)
    return out


def cpu_between(before: dict[str, float], after: dict[str, float], per: float = 1.0) -> dict[str, float]:
    """CPU seconds of each part between two ``machine_cpu_seconds`` readings, divided by ``per``."""
    return {name: round((after[name] - before.get(name, 0.0)) / max(per, 1.0), 2) for name in after}


def worker_rss_mib(master_pid: int) -> dict[str, float]:
    """VmRSS of every gunicorn worker (children of the master), in MiB."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != master_pid:
                continue
            status = Path(f"/proc/{entry}/status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match:
            out[entry] = round(int(match.group(1)) / 1024, 1)
    return out


def _cmdline(pid: str) -> str:
    """A process's command line."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def go_secret(cluster_id: str, kubeconfig: str) -> dict:
    """A cluster Secret in the Go shape."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": cluster_id,
            "labels": {LABEL: "true"},
            "annotations": {
                "id": cluster_id,
                "displayName": cluster_id,
                "city": "bench",
                "district": "",
                "version": "v1.36.3",
                "status": "Active",
            },
        },
        "stringData": {"kubeconfig": kubeconfig},
    }


def main() -> int:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description="registry benchmark (see module docstring)")
    parser.add_argument("--tag", default="", help="appended to the result file's name (a second run of a day)")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--probe-interval", type=float, default=15.0)
    parser.add_argument("--replicas", type=int, default=1, help="services against the same metadata namespace")
    parser.add_argument("--prober-processes", type=int, default=1, help="PROBE_PROCESSES of each replica")
    parser.add_argument("--register-threads", type=int, default=16, help="parallel Secret POSTs")
    parser.add_argument("--steady-rounds", type=int, default=2, help="probe rounds measured after the first")
    parser.add_argument("--skip-no-count", action="store_true", help="skip the rounds without counting")
    parser.add_argument("--skip-probe", action="store_true", help="stop after the idle part (no probe rounds)")
    args = parser.parse_args()
    assert args.replicas >= 1 and args.prober_processes >= 1
    n_dead = args.clusters // 20  # 5% refuse
    n_hang = args.clusters // 20  # 5% hang
    n_live = args.clusters - n_dead - n_hang
    root = Path(tempfile.mkdtemp(prefix="krm-bench-"))
    plane = ControlPlane(root / "cp")
    holes = [Blackhole() for _ in range(2)]
    services: list[Service] = []
    result: dict = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "clusters": {"total": args.clusters, "live": n_live, "refusing": n_dead, "hanging": n_hang},
        "replicas": args.replicas,
        "prober_processes_per_replica": args.prober_processes,
    }
    rounds: list[float] = []
    try:
        print("starting the control plane ...", flush=True)
        plane.start_etcd()
        meta, t1, t2 = (plane.add_cluster(n) for n in ("meta", "t1", "t2"))
        namespace = "krm-bench"
        env = {"PROBE_ENABLED": "false", "LOG_LEVEL": "info", "GUNICORN_THREADS": "8"}
        svc = Service(meta, root, namespace=namespace, env=env, workers=2).start()
        services.append(svc)
        bare_meta = BareApi(meta)
        bare_t1 = BareApi(t1)

        # add: through the service vs the bare /version call it wraps (fresh connections both).
        add_ids = [f"add-{i:04d}" for i in range(min(50, n_live))]
        kc1, kc2 = json.dumps(t1.kubeconfig()), json.dumps(t2.kubeconfig())
        it = iter(add_ids)
        add_samples = timed(lambda: svc.api("POST", "/api/cluster/add", json={"id": next(it), "kubeconfig": kc1}),
                            len(add_ids))  # fmt: skip
        version_samples = timed(lambda: bare_t1.get("/version", fresh=True), len(add_ids))
        result["add"] = {
            "service": percentiles(add_samples),
            "bare_version_fresh_connection": percentiles(version_samples),
        }

        print(f"registering {args.clusters} clusters ...", flush=True)
        path = f"/api/v1/namespaces/{namespace}/secrets"
        secrets = [go_secret(f"live-{i:04d}", kc1 if i % 2 else kc2) for i in range(len(add_ids), n_live)]
        secrets += [go_secret(f"dead-{i:04d}", json.dumps(t1.kubeconfig(server=f"https://127.0.0.1:{free_port()}")))
                    for i in range(n_dead)]  # fmt: skip
        secrets += [go_secret(f"hang-{i:04d}", json.dumps(t1.kubeconfig(server=holes[i % len(holes)].url)))
                    for i in range(n_hang)]  # fmt: skip
        started = time.monotonic()
        with ThreadPoolExecutor(args.register_threads) as pool:
            codes = list(pool.map(lambda obj: bare_meta.post(path, obj), secrets))
        assert all(code == 201 for code in codes), sorted(set(codes))
        registration = time.monotonic() - started
        result["registration"] = {
            "secrets": len(secrets),
            "threads": args.register_threads,
            "seconds": round(registration, 2),
            "per_second": round(len(secrets) / registration, 1),
        }
        deadline = time.monotonic() + 60
        while len(fast_api(svc, "/api/cluster/list")["data"]["items"]) < args.clusters:
            assert time.monotonic() < deadline, "the service did not see every cluster"
            time.sleep(0.2)
        svc.stop()

        # Start-up of every replica with all clusters registered: spawn to /readyz and to a full list.
        print(f"starting {args.replicas} replica(s) ...", flush=True)
        replicas, startup = start_replicas(meta, root, namespace, env, args.replicas, args.clusters)
        services += replicas
        svc = replicas[0]
        result["startup"] = startup

        # list and get, idle, against the bare API.
        selector = f"?labelSelector={LABEL}%3Dtrue"
        svc_list = lambda: fast_api(svc, "/api/cluster/list")  # noqa: E731
        bare_list = lambda: bare_meta.get(path + selector)  # noqa: E731
        get_id = f"live-{max(len(add_ids), n_live // 2):04d}"  # a registered one at any --clusters
        svc_get = lambda: fast_api(svc, f"/api/cluster/get?id={get_id}")  # noqa: E731
        bare_get = lambda: bare_meta.get(f"{path}/{get_id}")  # noqa: E731
        for fn in (svc_list, bare_list, svc_get, bare_get):
            timed(fn, 5)  # warm up connections and caches
        svc_list_unparsed = lambda: fetch_only(svc, "/api/cluster/list")  # noqa: E731
        timed(svc_list_unparsed, 5)
        result["list_idle"] = {
            "service": percentiles(timed(svc_list, args.samples)),
            "service_body_read_not_parsed": percentiles(timed(svc_list_unparsed, args.samples)),
            "response_bytes": fetch_only(svc, "/api/cluster/list"),
            "bare_label_selected_list": percentiles(timed(bare_list, max(20, args.samples // 4))),
        }
        result["get"] = {
            "service": percentiles(timed(svc_get, args.samples)),
            "bare_secret_get": percentiles(timed(bare_get, args.samples)),
        }
        result["throughput_rps"] = {
            "service_list_8_threads": throughput(svc_list, 8, 5),
            "bare_list_4_threads": throughput(bare_list, 4, 5),
            "service_get_8_threads": throughput(svc_get, 8, 5),
        }
        result["get_single_client_rps"] = {
            "service": throughput(svc_get, 1, 5),
            "bare_secret_get": throughput(bare_get, 1, 5),
            "service_through_requests": throughput(lambda: requests_api(svc, f"/api/cluster/get?id={get_id}"), 1, 5),
            "go_version_at_1000_clusters": 731,
        }
        # Cross-process consistency: a Secret written straight to the API (as another replica would)
        # until a list through a new connection (either worker) shows it, 20 times.
        propagation = []
        for i in range(20):
            name = f"prop-{i:02d}"
            assert meta.request("POST", path, go_secret(name, kc1))[0] == 201
            written = time.perf_counter()
            while not any(item["id"] == name for item in requests.get(
                svc.url + "/api/cluster/list", headers={"Authorization": svc.token()}, timeout=5
            ).json()["data"]["items"]):  # fmt: skip
                assert time.perf_counter() - written < 10, "a write was not seen within 10 s"
            propagation.append(time.perf_counter() - written)
            assert meta.request("DELETE", f"{path}/{name}")[0] == 200
        result["write_visible_through_other_process"] = percentiles(propagation)
        result["rss_mib_idle"] = worker_rss_mib(svc.process.pid)  # type: ignore[union-attr]
        result["rss_mib_idle_by_replica"] = process_rss(replicas)
        for replica in replicas:
            replica.stop()
        if args.skip_probe:
            raise _SkipProbe()

        # The same service with probing on: one full round, and list latency while it runs.
        print("probing ...", flush=True)
        env = {"PROBE_ENABLED": "true", "LOG_LEVEL": "debug", "GUNICORN_THREADS": "8",
               "PROBE_INTERVAL": str(args.probe_interval), "PROBE_PROCESSES": str(args.prober_processes),
               "PROBE_HEARTBEAT": "600"}  # fmt: skip
        replicas = [Service(meta, root, namespace=namespace, env=env, workers=2).start() for _ in range(args.replicas)]
        services += replicas
        svc = replicas[0]

        probers = args.replicas * args.prober_processes

        def replica_rounds() -> list[tuple[int, list[dict]]]:
            # (replica index, one prober's round lines) for every prober process that has logged a round:
            # with shards every prober probes its share and logs its own rounds, with its identity.
            out: list[tuple[int, list[dict]]] = []
            for index, r in enumerate(replicas):
                by_identity: dict[str, list[dict]] = {}
                for line in r.log().splitlines():
                    if '"msg":"probe round done"' in line:
                        parsed = json.loads(line)
                        by_identity.setdefault(parsed.get("identity", ""), []).append(parsed)
                out += [(index, lines) for lines in by_identity.values()]
            return out

        def rounds_by_prober() -> list[list[dict]]:
            return [lines for _, lines in replica_rounds()]

        def every_prober_done_a_round() -> bool:
            return len(rounds_by_prober()) >= probers

        def rounds_done() -> list[float]:
            return [float(line["seconds"]) for lines in rounds_by_prober() for line in lines]

        def settled(wanted: int) -> bool:
            # Every prober has logged ``wanted`` rounds since the shards settled (all owned by someone).
            per = rounds_by_prober()
            return len(per) >= probers and all(len(lines) - settle_index(lines) >= wanted for lines in per) and sum(
                int(lines[-1]["owned"]) for lines in per) == int(per[0][-1]["clusters"])  # fmt: skip

        # The first round starts as soon as the prober holds its shards (right after start-up) and probes
        # every cluster: list samples taken until it is logged as done are "during a round".
        writes_before = secret_patches(meta)
        parts = {"meta": meta, "t1": t1, "t2": t2}
        machine_before = machine_cpu_seconds(replicas, plane, parts)
        during: list[float] = []
        during_get: list[float] = []
        # The first round writes every cluster's Secret (all are new): give it time in proportion.
        deadline = time.monotonic() + 3 * args.probe_interval + 60 + args.clusters * 0.05
        while not every_prober_done_a_round():
            assert time.monotonic() < deadline, "no probe round finished"
            during += timed(svc_list, 5)
            during_get += timed(svc_get, 5)
        first_done_writes = secret_patches(meta)
        cpu_at_first_done = prober_cpu_seconds(replicas)
        machine_first_done = machine_cpu_seconds(replicas, plane, parts)
        # Steady rounds: each replica's next rounds, with the list and get measured meanwhile.
        steady_list: list[float] = []
        steady_get: list[float] = []
        steady_unparsed: list[float] = []  # the service's own part: the 4 MB body read, not parsed
        deadline = time.monotonic() + (args.steady_rounds + 2) * 3 * args.probe_interval + 120
        while not settled(args.steady_rounds + 1):
            assert time.monotonic() < deadline, "the steady probe rounds did not finish"
            steady_list += timed(svc_list, 5)
            steady_get += timed(svc_get, 5)
            steady_unparsed += timed(svc_list_unparsed, 2)
        cpu_after_steady = prober_cpu_seconds(replicas)
        machine_after_steady = machine_cpu_seconds(replicas, plane, parts)
        between = timed(svc_list, 100)
        by_replica = replica_rounds()
        per_replica = [lines for _, lines in by_replica]  # per prober process, in replica order
        rounds = rounds_done()
        settles = [settle_index(lines) for lines in per_replica]
        steady_counts = [len(lines) - settle - 1 for lines, settle in zip(per_replica, settles, strict=True)]
        steady_rounds = sum(steady_counts)
        # A replica's steady rounds: the mean over its prober processes (they run side by side).
        replica_steady = [
            sum(n for (index, _), n in zip(by_replica, steady_counts, strict=True) if index == i)
            / max(sum(1 for index, _ in by_replica if index == i), 1)
            for i in range(args.replicas)
        ]
        result["probe"] = {
            "interval_s": args.probe_interval,
            "replicas": args.replicas,
            "prober_processes_per_replica": args.prober_processes,
            "round_seconds": rounds,
            "rounds_by_prober": [
                [{k: line.get(k) for k in ("seconds", "clusters", "owned", "probed", "shards")} for line in lines]
                for lines in per_replica
            ],
            "first_round_seconds_max": max(float(lines[0]["seconds"]) for lines in per_replica),
            "settling_round_seconds": [[float(line["seconds"]) for line in lines[: settle + 1]]
                                       for lines, settle in zip(per_replica, settles, strict=True)],
            "steady_round_seconds_max": max(float(line["seconds"]) for lines, settle in zip(per_replica, settles,
                                            strict=True) for line in lines[settle + 1 :]),
            # The prober's own CPU per steady round (the API servers it probes run elsewhere in production).
            # Per replica, all its prober processes together.
            "prober_cpu_seconds_per_steady_round": [
                round((after - before) / max(steady, 1), 2)
                for before, after, steady in zip(cpu_at_first_done, cpu_after_steady, replica_steady, strict=True)],
            # Whose CPU the first round (until every prober logged one) and a steady round were, on this machine.
            "machine_cpu_seconds_first_round": cpu_between(machine_before, machine_first_done),
            "machine_cpu_seconds_per_steady_round": cpu_between(machine_first_done, machine_after_steady,
                                                                steady_rounds / probers),
            "list_during_first_round": percentiles(during),
            "get_during_first_round": percentiles(during_get),
            "list_during_steady_rounds": percentiles(steady_list),
            "list_during_steady_rounds_body_read_not_parsed": percentiles(steady_unparsed),
            "get_during_steady_rounds": percentiles(steady_get),
            "list_between_rounds": percentiles(between),
            "metadata_secret_patches_first_round": first_done_writes - writes_before,
            "metadata_secret_patches_per_steady_round": round(
                (secret_patches(meta) - first_done_writes) / max(steady_rounds / probers, 1), 1),
        }  # fmt: skip
        statuses: dict[str, int] = {}
        for item in fast_api(svc, "/api/cluster/list")["data"]["items"]:
            key = f"{item['status']}/{item['reason']}"
            statuses[key] = statuses.get(key, 0) + 1
        result["probe"]["statuses_after"] = statuses
        # cluster/statics is read from the counts the rounds recorded: no call to any cluster.
        items = fast_api(svc, "/api/cluster/list")["data"]["items"]
        svc_statics = lambda: fast_api(svc, "/api/cluster/statics")  # noqa: E731
        timed(svc_statics, 5)
        result["statics"] = {
            "clusters_counted": sum(1 for item in items if item.get("countedAt") and not item.get("countError")),
            "service": percentiles(timed(svc_statics, args.samples)),
            "list_same_run": percentiles(timed(svc_list, args.samples)),
        }
        # namespace/copy of 100 objects between the two API servers (add-0000 is t1, live-0050 is t2).
        source_ns, target_ns = "bench-copy-src", "bench-copy-dst"
        assert t1.request("POST", "/api/v1/namespaces", {"metadata": {"name": source_ns}})[0] == 201
        wanted: dict[str, list[str]] = {"ConfigMap": [], "Secret": [], "Service": []}
        for i in range(100):
            kind = "ConfigMap" if i < 60 else "Secret" if i < 80 else "Service"
            name = f"obj-{i:03d}"
            plural = {"ConfigMap": "configmaps", "Secret": "secrets", "Service": "services"}[kind]
            obj: dict = {"metadata": {"name": name}, "data": {"k": "dg=="} if kind == "Secret" else {"k": "v"}}
            if kind == "Service":
                obj = {"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}
            assert t1.request("POST", f"/api/v1/namespaces/{source_ns}/{plural}", obj)[0] == 201
            wanted[kind].append(name)
        started = time.perf_counter()
        copied = svc.api("POST", "/api/namespace/copy", timeout=30, json={
            "clusterId": "add-0000", "namespace": source_ns, "toClusterId": "live-0050", "toNamespace": target_ns,
            "createNamespace": True, "toResources": wanted})  # fmt: skip
        result["copy_100_objects"] = {
            "seconds": round(time.perf_counter() - started, 3),
            "status": copied["status"],
            "ok": sum(1 for r in copied["data"].get("results", []) if r["status"] == "ok"),
        }
        result["rss_mib_probing"] = worker_rss_mib(svc.process.pid)  # type: ignore[union-attr]
        # The prober process is a child of the master too; it is told apart by its command line.
        result["rss_mib_prober_process"] = {
            pid: rss for pid, rss in result["rss_mib_probing"].items() if "controllers.prober_process" in _cmdline(pid)
        }
        for pid in result["rss_mib_prober_process"]:
            del result["rss_mib_probing"][pid]
        result["rss_mib_probing_by_replica"] = process_rss(replicas)
        for replica in replicas:
            replica.stop()

        # A restart of every replica: the Secrets now hold each cluster's health and a recent count, so the
        # first round makes a new connection per cluster and asks a healthy one /readyz only (its record
        # was kept current), counts none and writes only what changed (what a rolling update or a crash
        # costs, unlike the first round of new clusters).
        print("restarting the replicas ...", flush=True)
        writes_before = secret_patches(meta)
        machine_before = machine_cpu_seconds([], plane, parts)  # the new replicas' processes start at 0
        restarted = time.monotonic()
        replicas = [Service(meta, root, namespace=namespace, env=env, workers=2).start() for _ in range(args.replicas)]
        services += replicas
        deadline = time.monotonic() + 3 * args.probe_interval + 60 + args.clusters * 0.05
        while not every_prober_done_a_round():
            assert time.monotonic() < deadline, "no probe round finished after the restart"
            time.sleep(0.5)
        firsts = [lines[0] for lines in rounds_by_prober()]  # each prober's first round line (the logs read once)
        result["probe"]["after_restart"] = {
            "first_round_seconds": [float(line["seconds"]) for line in firsts],
            "first_round_owned": [int(line["owned"]) for line in firsts],
            "start_to_first_round_done_s": round(time.monotonic() - restarted, 1),
            "metadata_secret_patches": secret_patches(meta) - writes_before,
            # From the start (imports, the informer's LIST, the leases) to every prober's first round done.
            "machine_cpu_seconds": cpu_between(machine_before, machine_cpu_seconds(replicas, plane, parts)),
        }
        print(f"after the restart: {result['probe']['after_restart']}", flush=True)
        for replica in replicas:
            replica.stop()

        if args.skip_no_count:
            raise _SkipProbe()
        # The same rounds without counting (PROBE_COUNT=false), to state what counting adds per round.
        print("probing without counting ...", flush=True)
        env = {**env, "PROBE_COUNT": "false"}
        replicas = [Service(meta, root, namespace=namespace, env=env, workers=2).start() for _ in range(args.replicas)]
        services += replicas
        svc = replicas[0]
        deadline = time.monotonic() + 3 * args.probe_interval + 60
        while len(rounds_done()) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        # A loaded machine may not finish two rounds in time: what was seen is recorded, not lost.
        result["probe"]["round_seconds_without_counting"] = rounds_done()
    except _SkipProbe:
        pass
    except Exception as exc:
        # The figures measured before a failure are kept (written below with the error).
        result["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        for s in services:
            s.stop()
        for h in holes:
            h.close()
        plane.stop()

    if "list_idle" not in result:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 1
    idle = result["list_idle"]
    targets: dict[str, bool] = {
        "list_p50_le_one_fifth_of_bare": idle["service"]["p50_ms"] <= idle["bare_label_selected_list"]["p50_ms"] / 5,
        "list_p50_le_50_ms": idle["service"]["p50_ms"] <= 50,
        "list_p50_le_50_ms_without_the_clients_parse": idle["service_body_read_not_parsed"]["p50_ms"] <= 50,
        "get_p50_le_10_ms": result["get"]["service"]["p50_ms"] <= 10,
        "get_single_client_beats_go_731_per_s": result["get_single_client_rps"]["service"] > 731,
        # Go's get is one Secret GET plus its own HTTP hop: slower than the bare GET of the same run.
        "get_single_client_beats_the_bare_secret_get": result["get_single_client_rps"]["service"]
        > result["get_single_client_rps"]["bare_secret_get"],
        "rss_le_150_mib_per_worker": all(
            v <= 150
            for replica in result["rss_mib_idle_by_replica"] + result.get("rss_mib_probing_by_replica", [])
            for v in [*replica["workers"].values(), *replica["prober"].values()]
        ),
    }
    if "statics" in result:
        steady_unparsed_p50 = result["probe"]["list_during_steady_rounds_body_read_not_parsed"]["p50_ms"]
        targets |= {
            "list_during_probe_within_1_5x_idle": result["probe"]["list_during_first_round"]["p50_ms"]
            <= 1.5 * idle["service"]["p50_ms"],
            "steady_probe_round_inside_interval": result["probe"]["steady_round_seconds_max"] <= args.probe_interval,
            "list_during_steady_rounds_not_parsed_le_50_ms": steady_unparsed_p50 <= 50,
            "list_during_steady_rounds_within_1_5x_idle": result["probe"]["list_during_steady_rounds"]["p50_ms"]
            <= 1.5 * idle["service"]["p50_ms"],
            "statics_p50_le_50_ms": result["statics"]["service"]["p50_ms"] <= 50,
            "statics_within_2x_list": result["statics"]["service"]["p50_ms"]
            <= 2 * result["statics"]["list_same_run"]["p50_ms"],
        }
    result["targets"] = targets
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if (args.clusters, args.replicas) == (1000, 1) else f"-{args.clusters}c-{args.replicas}r"
    suffix += f"-{args.prober_processes}p" if args.prober_processes > 1 else ""
    suffix += ("-idle" if args.skip_probe else "") + (f"-{args.tag}" if args.tag else "")
    out = RESULTS / f"registry-{dt.date.today().isoformat()}{suffix}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"written to {out}")
    return 1 if "error" in result else 0


class _SkipProbe(Exception):
    """``--skip-probe``: the idle part is done."""


if __name__ == "__main__":
    requests.packages.urllib3.disable_warnings()  # type: ignore[attr-defined]
    sys.exit(main())
