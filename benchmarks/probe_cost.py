"""Benchmark: what one probe costs the prober process, part by part, on the real control plane.

Run: ``.venv/bin/python -m benchmarks.probe_cost`` (about a minute). It starts etcd, a metadata API server
and one target, registers ``--clusters`` Secrets pointing at the target and drives the prober's own
per-cluster step (``ClusterProber._probe_and_record``) one cluster after another in this process, so
wall time and this process's CPU time per probe are read directly, for:

- ``full``: a new client (address resolved and checked, TLS handshake), ``/version``, ``/readyz``,
  ``kube-system``, and the Secret PATCH that records a new cluster: what every probe cost before
  clients were kept, and what the first round (or a shard taken over) still costs;
- ``full_with_count``: the same plus the five counting LISTs;
- ``steady``: the kept client, one ``/readyz``, nothing to write (what a round costs per healthy cluster);
- ``refresh``: the kept client at its refresh: the address resolved and checked again, ``/version``,
  ``/readyz``, ``kube-system`` on the kept connection (every ``PROBE_REFRESH``);
- ``reconnect``: the same on a new connection, the TLS context reused (every ``PROBE_RECONNECT``);
- ``steady_with_count``: the same plus the five counting LISTs (a cluster whose count is due).

Also ``read_secret``: reading a Secret into the prober's state (the kubeconfig parsed), which the round's own
thread does for every cluster new to it, with libyaml and with PyYAML's Python parser (``--yaml`` stores the
kubeconfigs as YAML, as the Go version and kubectl write them; JSON by default).

Figures go to ``benchmarks/results/probe-cost-<date>.json``; a summary is printed. Multiply by the
cluster count and divide by the cores to size a replica (README, "Sizing").
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from controllers.cluster.prober import ClusterProber, ProbeSettings
from controlplane.harness import ControlPlane
from utils import kube
from utils import kubeconfig as kubeconfig_module
from utils.kubeconfig import KubeconfigPolicy
from utils.leader import LeaderElector

RESULTS = Path(__file__).resolve().parent / "results"
LABEL = "kubeasy.com/cluster.metadata"


def one_pass(prober: ClusterProber, elector: LeaderElector, states: list[tuple[str, dict, Any]]) -> dict:
    """Probe and record every cluster once, one after another: wall and CPU milliseconds per probe."""
    wall, cpu = time.perf_counter(), time.process_time()
    for name, secret, state in states:
        prober._probe_and_record(name, secret, state, elector.tenure(name))
    return {
        "wall_ms_per_probe": round((time.perf_counter() - wall) / len(states) * 1000, 3),
        "cpu_ms_per_probe": round((time.process_time() - cpu) / len(states) * 1000, 3),
    }


def read_secrets(prober: ClusterProber, secrets: list[dict]) -> dict[str, Any]:
    """Milliseconds per Secret of ``_state_for`` on new states: with libyaml, and with PyYAML's Python parser."""
    out: dict[str, Any] = {}
    for name, loader in (("ms_per_secret", kubeconfig_module._C_LOADER), ("ms_per_secret_python_parser", None)):
        saved, kubeconfig_module._C_LOADER = kubeconfig_module._C_LOADER, loader
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            for secret in secrets:
                prober._states.pop(secret["metadata"]["name"], None)
                prober._state_for(secret["metadata"]["name"], secret)
            out[name] = {"wall": round((time.perf_counter() - wall) / len(secrets) * 1000, 3),
                         "cpu": round((time.process_time() - cpu) / len(secrets) * 1000, 3)}  # fmt: skip
        finally:
            kubeconfig_module._C_LOADER = saved
    prober._drop_states()
    return out


def main() -> int:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description="per-probe cost (see module docstring)")
    parser.add_argument("--yaml", action="store_true", help="store the kubeconfigs as YAML, as the Go version does")
    parser.add_argument("--tag", default="", help="appended to the result file's name (a second run of a day)")
    parser.add_argument("--clusters", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="krm-probe-cost-"))
    plane = ControlPlane(root / "cp")
    result: dict = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "clusters": args.clusters,
        "kubeconfig_format": "yaml" if args.yaml else "json",
    }
    try:
        plane.start_etcd()
        meta, target = plane.add_cluster("meta"), plane.add_cluster("t1")
        # JSON by default (as the registry benchmark stores them); YAML as the Go version and kubectl write them.
        kubeconfig = yaml.safe_dump(target.kubeconfig()) if args.yaml else json.dumps(target.kubeconfig())
        client = kube.KubeClient.from_kubeconfig(meta.kubeconfig(), (2.0, 10.0), pool_size=4)
        elector = LeaderElector(lambda: client, "default", "probe-cost")
        elector.start()  # renewed in the background: a phase outlasting the lease must not lose it
        deadline = time.monotonic() + 30
        while not elector.is_leader:
            if time.monotonic() > deadline:
                raise RuntimeError("the Lease was not acquired")
            time.sleep(0.1)
        for phase, count in (("full", False), ("full_with_count", True)):
            namespace = f"probe-cost-{phase.replace('_', '-')}"
            assert meta.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
            for i in range(args.clusters):
                meta_fields = {"name": f"c{i:05d}", "labels": {LABEL: "true"}, "annotations": {"status": "Active"}}
                secret = {"metadata": meta_fields, "stringData": {"kubeconfig": kubeconfig}}
                assert meta.request("POST", f"/api/v1/namespaces/{namespace}/secrets", secret)[0] == 201
            settings = ProbeSettings(timeout=5, heartbeat=3600, count=count, count_interval=1e-9, refresh=3600)
            prober = ClusterProber(lambda: client, namespace, LABEL, elector, KubeconfigPolicy(), settings)
            listing = client.request("GET", kube.secret_path(namespace), query={"labelSelector": f"{LABEL}=true"})
            # Reading each Secret into the prober's state (decode, parse the kubeconfig, digest): the round's
            # own thread does this for every cluster it sees for the first time, before any probe starts.
            if phase == "full":
                result["read_secret"] = read_secrets(prober, listing["items"])
            states = [(s["metadata"]["name"], s, prober._state_for(s["metadata"]["name"], s)) for s in listing["items"]]

            result[phase] = one_pass(prober, elector, states)  # every cluster new: new client, full probe, a PATCH
            # The steady pass reads the Secrets as recorded (no clusterUID to add): nothing to write.
            listing = client.request("GET", kube.secret_path(namespace), query={"labelSelector": f"{LABEL}=true"})
            fresh = {s["metadata"]["name"]: s for s in listing["items"]}
            states = [(name, fresh[name], state) for name, _, state in states]
            result[phase.replace("full", "steady")] = one_pass(prober, elector, states)
            if phase == "full":
                # A refresh: the address checked again and the full probe, on the kept connection.
                prober.settings = dataclasses.replace(settings, refresh=1e-9)
                result["refresh"] = one_pass(prober, elector, states)
                # A reconnect: the same on a new connection (TLS handshake; the context is reused).
                prober.settings = dataclasses.replace(settings, reconnect=1e-9)
                result["reconnect"] = one_pass(prober, elector, states)
            prober.stop()
        elector.stop()
        client.close()
    finally:
        plane.stop()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"probe-cost-{dt.date.today().isoformat()}{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
