"""Certificate and key material handed to the client never outlives the client's build, nor a crash.

The client loads a kubeconfig's client certificate and key into its SSLContext through a 0600 file in
a 0700 directory named after the process (``krm-kube-<pid>-*``) and unlinks the file at once; the
directories of processes that died are removed by the next process that starts.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from controlplane.harness import Cluster, make_kubeconfig
from tests.conftest import kubeconfig_text
from tests.service import Service, unique
from utils import kube


def own_dirs(pids: set[int] | None = None) -> dict[int, Path]:
    """Credential directories in the shared base, by pid (only ``pids`` when given)."""
    base = Path(kube.credential_base_dir())
    found = {}
    for path in base.glob(f"{kube.CREDENTIAL_DIR_PREFIX}*"):
        pid = int(path.name[len(kube.CREDENTIAL_DIR_PREFIX) :].split("-")[0])
        if pids is None or pid in pids:
            found[pid] = path
    return found


def children(pid: int) -> set[int]:
    """Pids whose parent is ``pid`` (gunicorn's workers and prober)."""
    result = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                result.add(int(entry))
    return result


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_client_certificate_is_not_left_on_disk(target1: Cluster) -> None:
    with kube.KubeClient.from_kubeconfig(target1.kubeconfig("cert-admin"), (1.0, 3.0)) as client:
        assert client.request("GET", "/api/v1/namespaces/default")["metadata"]["name"] == "default"  # cert auth
        directory = own_dirs({os.getpid()})[os.getpid()]
        assert oct(directory.stat().st_mode & 0o777) == "0o700"
        assert list(directory.iterdir()) == []


def test_directories_of_dead_processes_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{kube.CREDENTIAL_DIR_PREFIX}{dead_pid()}-abc123"
    alive = tmp_path / f"{kube.CREDENTIAL_DIR_PREFIX}{os.getppid()}-def456"
    unrelated = tmp_path / "something-else"
    for path in (dead, alive, unrelated):
        path.mkdir()
        (path / "key.pem").write_text("x")
    assert kube.sweep_stale_credential_dirs(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and alive.exists() and unrelated.exists()


def test_a_crashed_service_leaves_no_key_and_its_directories_go_at_the_next_start(
    make_service, target1: Cluster
) -> None:
    svc: Service = make_service(env={"PROBE_ENABLED": "false"})
    assert svc.process is not None
    master = svc.process.pid
    answer = svc.api("POST", "/api/cluster/add", json={"id": unique("cert"), "kubeconfig": kubeconfig_text(
        target1, "cert-admin")})  # fmt: skip
    assert answer["status"] == 200, answer
    pids = children(master)
    left = own_dirs(pids)
    assert left, "the worker that loaded the client certificate made its directory"
    for pid in (*pids, master):  # a crash: nobody runs atexit
        os.kill(pid, signal.SIGKILL)
    svc.process.wait(10)
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
              for pid in pids) and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.1)
    for path in left.values():
        assert path.exists() and list(path.iterdir()) == []  # left behind, but with no key in it
    make_service(env={"PROBE_ENABLED": "false"})  # starts, sweeps
    assert not any(path.exists() for path in left.values())


def test_an_exec_plugin_token_and_certificate_are_used(target1: Cluster) -> None:
    """Credentials printed by an exec plugin (token or client certificate) authenticate the calls."""
    cert, key = target1.client_ca.issue_client("exec-cert", ("system:masters",))
    for status in ({"token": target1.tokens["admin"]},
                   {"clientCertificateData": cert.decode(), "clientKeyData": key.decode()}):  # fmt: skip
        credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status}
        encoded = base64.b64encode(json.dumps(credential).encode()).decode()
        user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "sh",
                         "args": ["-c", f"echo {encoded} | base64 -d"]}}  # fmt: skip
        kubeconfig = make_kubeconfig("exec", target1.url, target1.ca_pem(), user)
        with kube.KubeClient.from_kubeconfig(kubeconfig, (1.0, 3.0), deadline=kube.deadline_in(10)) as client:
            assert client.request("GET", "/api/v1/namespaces/default")["metadata"]["name"] == "default"
