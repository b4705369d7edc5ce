"""Terminal benchmark (issue 13 point 7): WebSocket sessions held open while the registry list is measured.

``python -m benchmarks.terminal [--sessions 50]`` starts etcd, a metadata and a living cluster, serves the
app with gunicorn (2 workers), registers the cluster, and in one run measures:

- ``cluster/list`` latency idle, then with ``--sessions`` exec sessions and as many log follows open
  (the target: p99 under load at most 1.5x the idle p99);
- the workers' RSS before and after opening the sessions (memory per session);
- the time from a line written in the pod (kwok's log file) to its frame in a client, p50/p99.

Results go to ``benchmarks/results/terminal-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import websocket

from controlplane.harness import Cluster, ControlPlane, wait_for
from controlplane.service import Service, unique

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def list_latencies(svc: Service, count: int) -> list[float]:
    """``count`` sequential cluster/list calls, in milliseconds."""
    out = []
    for _ in range(count):
        started = time.perf_counter()
        assert svc.api("GET", "/api/cluster/list")["status"] == 200
        out.append((time.perf_counter() - started) * 1000)
    return out


def workers_rss(svc: Service) -> float:
    """RSS of the gunicorn workers in MiB (children of the master)."""
    assert svc.process is not None
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != svc.process.pid:
                continue
            if "prober_process" in (entry / "cmdline").read_text():
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def open_session(svc: Service, route: str, **query: str) -> websocket.WebSocket:
    """A session; retried when one worker is full (1013) and the other is not."""
    url = f"ws://127.0.0.1:{svc.port}/api/pod/{route}?{urlencode(query)}"
    for _ in range(20):
        ws = websocket.WebSocket()
        ws.connect(url, subprotocols=[svc.token()], timeout=30)
        if route == "exec":
            ws.send(json.dumps({"messageType": "input", "data": "echo ready\n"}))
            out = ""
            while "ready" not in out:
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                out += data.decode(errors="replace")
            if "ready" in out:
                return ws
        else:
            ws.settimeout(30)
            opcode, data = ws.recv_data(control_frame=True)
            if opcode != websocket.ABNF.OPCODE_CLOSE:
                return ws
        ws.shutdown()
    raise RuntimeError(f"could not open a {route} session")


def main() -> int:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description="terminal benchmark (see module docstring)")
    parser.add_argument("--sessions", type=int, default=50, help="exec sessions, and as many log follows")
    parser.add_argument("--requests", type=int, default=300, help="cluster/list calls per phase")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="krm-bench-terminal-"))
    plane = ControlPlane(root / "cp")
    sessions: list[websocket.WebSocket] = []
    svc: Service | None = None
    try:
        plane.start_etcd()
        meta = plane.add_cluster("meta")
        living: Cluster = plane.add_cluster("living", living=True)
        # Room for every session in either worker: the kernel does not balance connections evenly.
        env = {"WS_MAX_SESSIONS": str(2 * args.sessions + 10), "PROBE_ENABLED": "false", "LOG_LEVEL": "info"}
        svc = Service(meta, root, env=env, workers=2).start()
        cluster_id = unique("bench")
        body = svc.api("POST", "/api/cluster/add",
                       json={"id": cluster_id, "kubeconfig": json.dumps(living.kubeconfig("admin"))})  # fmt: skip
        assert body["status"] == 200, body
        namespace = unique("bench")
        living.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": namespace}})  # fmt: skip
        spec = {"containers": [{"name": "main", "image": "busybox"}]}
        living.request("POST", f"/api/v1/namespaces/{namespace}/pods",
                       {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})  # fmt: skip
        wait_for(lambda: (living.request("GET", f"/api/v1/namespaces/{namespace}/pods/p")[1].get("status") or {})
                 .get("phase") == "Running", 60, "pod running")  # fmt: skip
        list_latencies(svc, 30)  # warm-up
        idle = list_latencies(svc, args.requests)
        rss_before = workers_rss(svc)
        query = {"clusterId": cluster_id, "nameSpace": namespace, "name": "p"}
        opened = time.monotonic()
        for _ in range(args.sessions):
            sessions.append(open_session(svc, "exec", defaultCommand="/bin/sh", **query))
            sessions.append(open_session(svc, "log", tailLines="1", **query))
        open_seconds = time.monotonic() - opened
        time.sleep(2)  # let the pumps settle before measuring memory (a measurement, not a test wait)
        rss_after = workers_rss(svc)
        loaded = list_latencies(svc, args.requests)
        # Line latency: one marker per line, timed from the write to its frame on one log session.
        follower = open_session(svc, "log", tailLines="0", **query)
        sessions.append(follower)
        follower.settimeout(30)
        latencies = []
        assert living.living is not None
        log_file = living.living.log_files[""]
        for _ in range(50):
            marker = uuid.uuid4().hex
            now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            written = time.perf_counter()
            with log_file.open("a") as fh:
                fh.write(f"{now} stdout F bench {marker}\n")
            while marker not in follower.recv():
                pass
            latencies.append((time.perf_counter() - written) * 1000)
        result = {
            "sessions": {"exec": args.sessions, "log": args.sessions + 1},
            "openSeconds": round(open_seconds, 2),
            "listIdleMs": {"p50": round(percentile(idle, 50), 2), "p99": round(percentile(idle, 99), 2)},
            "listLoadedMs": {"p50": round(percentile(loaded, 50), 2), "p99": round(percentile(loaded, 99), 2)},
            "p99Ratio": round(percentile(loaded, 99) / percentile(idle, 99), 2),
            "workersRssMiB": {"before": round(rss_before, 1), "after": round(rss_after, 1)},
            "rssPerSessionKiB": round((rss_after - rss_before) * 1024 / (2 * args.sessions), 1),
            "lineLatencyMs": {
                "p50": round(statistics.median(latencies), 2),
                "p99": round(percentile(latencies, 99), 2),
            },
            "machine": "2 cores shared, Python 3.11, gunicorn gthread 2 workers",
        }
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"terminal-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        print(f"written to {path}")
        return 0 if result["p99Ratio"] <= 1.5 else 1
    finally:
        for ws in sessions:
            threading.Thread(target=ws.shutdown, daemon=True).start()
        if svc is not None:
            svc.stop()
        plane.stop()


if __name__ == "__main__":
    sys.exit(main())
