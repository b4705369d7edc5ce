"""Soak: a fixed request rate on loopback for a few minutes; errors, latency and the workers' memory.

Run: ``.venv/bin/python -m benchmarks.soak`` (3 minutes by default; ``--duration``, ``--rate``,
``--workers``). It starts its own etcd and two API servers (``meta`` and a target) on 127.0.0.1, serves
the app with gunicorn, registers 20 clusters, then sends ``--rate`` requests per second for
``--duration`` seconds, in a fixed cycle of 8: 4 list, 2 get, 1 add, 1 delete of the cluster the
previous add created (so the registry stays the same size). Every answer must be HTTP 200 with the
envelope status 200; anything else is an error. The resident memory (VmRSS) of the gunicorn master and
each worker is sampled every 5 s; "start" is the first sample after a 20 s warm-up, "end" the last.

Everything runs on loopback and stops by itself: the duration is capped at one hour and the rate at
200 requests per second. The figures go to ``benchmarks/results/soak-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from controlplane.harness import ControlPlane
from controlplane.service import Service

RESULTS = Path(__file__).resolve().parent / "results"
MAX_DURATION = 3600.0
MAX_RATE = 200.0
WARM_UP = 20.0  # seconds before the "start" memory sample: imports, pools and caches settle first
SAMPLE_EVERY = 5.0
CYCLE = ("list", "get", "list", "add", "list", "get", "list", "delete")


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    """The direct children of a process (gunicorn's workers)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return sorted(int(p) for p in text.split())


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "n": len(ordered),
        "p50_ms": pick(0.5),
        "p90_ms": pick(0.9),
        "p99_ms": pick(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


class Driver:
    """Sends the request cycle at a fixed rate from a pool of threads and records every outcome."""

    def __init__(self, svc: Service, kubeconfig: str, ids: list[str], rate: float, threads: int = 8) -> None:
        """Prepare; ``run`` does the work."""
        self.svc = svc
        self.kubeconfig = kubeconfig
        self.ids = ids
        self.rate = rate
        self.threads = threads
        self.token = svc.token()
        self.ticks: queue.Queue[tuple[int, float] | None] = queue.Queue()
        self.latency: dict[str, list[float]] = {op: [] for op in set(CYCLE)}
        self.errors: list[dict[str, Any]] = []
        self.lag: list[float] = []
        self.added: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._serial = 0

    def _request(self, session: requests.Session, op: str, n: int) -> requests.Response:
        """One request of the cycle."""
        headers = {"Authorization": self.token}
        url = self.svc.url
        if op == "list":
            return session.get(f"{url}/api/cluster/list?timeStamp={n}", headers=headers, timeout=10)
        if op == "get":
            return session.get(f"{url}/api/cluster/get?id={self.ids[n % len(self.ids)]}", headers=headers, timeout=10)
        if op == "add":
            with self._lock:
                self._serial += 1
                cluster_id = f"soak-{self._serial}"
            resp = session.post(
                f"{url}/api/cluster/add",
                headers=headers,
                timeout=10,
                json={"id": cluster_id, "displayName": "soak", "kubeconfig": self.kubeconfig},
            )
            self.added.put(cluster_id)
            return resp
        try:
            cluster_id = self.added.get(timeout=5)
        except queue.Empty:
            cluster_id = "soak-missing"
        return session.get(f"{url}/api/cluster/delete?id={cluster_id}", headers=headers, timeout=10)

    def _worker(self) -> None:
        """Take ticks until the end marker."""
        session = requests.Session()
        while True:
            tick = self.ticks.get()
            if tick is None:
                break
            n, due = tick
            op = CYCLE[n % len(CYCLE)]
            started = time.monotonic()
            self.lag.append(max(0.0, started - due))
            try:
                resp = self._request(session, op, n)
                elapsed = time.monotonic() - started
                body = resp.json() if resp.status_code == 200 else {}
                if resp.status_code != 200 or body.get("status") != 200:
                    self.errors.append({"op": op, "http": resp.status_code, "body": resp.text[:200]})
                self.latency[op].append(elapsed)
            except Exception as exc:  # counted: a timeout or a broken connection is an error of the run
                self.errors.append({"op": op, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        session.close()

    def run(self, duration: float, on_second: Any = None) -> int:
        """Schedule ``rate`` ticks per second for ``duration`` seconds; the number of requests sent."""
        workers = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.threads)]
        for w in workers:
            w.start()
        start = time.monotonic()
        n = 0
        while True:
            due = start + n / self.rate
            if due - start >= duration:
                break
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            self.ticks.put((n, due))
            n += 1
            if on_second is not None and n % int(max(self.rate, 1)) == 0:
                on_second(time.monotonic() - start)
        for _ in workers:
            self.ticks.put(None)
        for w in workers:
            w.join(60)
        return n


def main(argv: list[str] | None = None) -> int:
    """Run the soak and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load (default 180, max 3600)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20, max 200)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--output", type=Path, default=None, help="result file (default benchmarks/results/)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the service, e.g. --env PROBE_ENABLED=false (repeatable)",
    )
    args = parser.parse_args(argv)
    duration = min(max(args.duration, 30.0), MAX_DURATION)
    rate = min(max(args.rate, 1.0), MAX_RATE)

    root = Path(tempfile.mkdtemp(prefix="krm-soak-"))
    plane = ControlPlane(root / "controlplane")
    svc: Service | None = None
    try:
        print("starting etcd and kube-apiservers meta, target (loopback)", flush=True)
        plane.start_etcd()
        meta = plane.add_cluster("meta")
        target = plane.add_cluster("target")
        extra = dict(item.split("=", 1) for item in args.env)
        svc = Service(meta, root, workers=args.workers, env={"LOG_LEVEL": "info", "GUNICORN_THREADS": "4", **extra})
        svc.start()
        kubeconfig = json.dumps(target.kubeconfig())
        ids = [f"base-{i}" for i in range(20)]
        for cluster_id in ids:
            body = svc.api("POST", "/api/cluster/add", json={"id": cluster_id, "kubeconfig": kubeconfig})
            assert body["status"] == 200, body

        assert svc.process is not None
        master = svc.process.pid
        samples: list[dict[str, Any]] = []
        next_sample = [0.0]

        def sample(elapsed: float) -> None:
            if elapsed >= next_sample[0]:
                next_sample[0] = elapsed + SAMPLE_EVERY
                workers = children(master)
                samples.append(
                    {
                        "t": round(elapsed, 1),
                        "master_kib": rss_kib(master),
                        "workers_kib": {str(p): rss_kib(p) for p in workers},
                    }
                )

        driver = Driver(svc, kubeconfig, ids, rate)
        print(f"soak: {rate:g} req/s for {duration:g} s with {args.workers} workers", flush=True)
        sample(0.0)
        started = time.monotonic()
        sent = driver.run(duration, on_second=sample)
        wall = time.monotonic() - started
        sample(duration + SAMPLE_EVERY)

        after_warm_up = [s for s in samples if s["t"] >= WARM_UP] or samples
        first, last = after_warm_up[0], samples[-1]
        growth = {}
        for pid, start_kib in first["workers_kib"].items():
            end_kib = last["workers_kib"].get(pid)
            if start_kib and end_kib:
                growth[pid] = {
                    "start_mib": round(start_kib / 1024, 1),
                    "end_mib": round(end_kib / 1024, 1),
                    "growth_mib": round((end_kib - start_kib) / 1024, 2),
                    "growth_pct": round(100 * (end_kib - start_kib) / start_kib, 1),
                }
        log = svc.log()
        result: dict[str, Any] = {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": __import__("os").cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "config": {
                "duration_s": duration,
                "rate_per_s": rate,
                "gunicorn_workers": args.workers,
                "gunicorn_threads": 4,
                "cycle": list(CYCLE),
                "base_clusters": len(ids),
                "service_env": extra,
            },
            "requests": {
                "sent": sent,
                "answered": sum(len(v) for v in driver.latency.values()),
                "errors": len(driver.errors),
                "achieved_rate_per_s": round(sent / wall, 2),
            },
            "errors_sample": driver.errors[:20],
            "latency": {op: percentiles(v) for op, v in sorted(driver.latency.items())},
            "schedule_lag": percentiles(driver.lag),
            "memory": {
                "worker_growth": growth,
                "master_start_mib": round((first["master_kib"] or 0) / 1024, 1),
                "master_end_mib": round((last["master_kib"] or 0) / 1024, 1),
                "samples": samples,
            },
            "service_log": {
                "bytes": len(log.encode()),
                "tracebacks": log.count("Traceback"),
                "error_lines": log.count('"level":"error"'),
            },
        }
        RESULTS.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        output = args.output or RESULTS / f"soak-{stamp}.json"
        output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps({k: result[k] for k in ("requests", "latency", "schedule_lag")}, indent=1))
        print(json.dumps(result["memory"]["worker_growth"], indent=1))
        print(f"written to {output}")
        return 0 if not driver.errors else 1
    finally:
        if svc is not None:
            svc.stop()
        plane.stop()


if __name__ == "__main__":
    sys.exit(main())
