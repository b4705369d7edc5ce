"""Build the control plane from its pinned Go tool modules into a cache outside the clone.

The base binaries are etcd and kube-apiserver; a "living" target cluster also needs
kube-controller-manager and kube-scheduler (``tools/kube-controllers``: the same ``k8s.io/kubernetes``
release and replace block as ``tools/kube-apiserver``, in a sibling module so that adding them did not
change the API server's stamp) and kwok (``tools/kwok``). Each binary is stamped with a key derived from
its tool module's go.mod and go.sum, so it is rebuilt exactly when the pinned version changes and reused
otherwise (a warm build costs nothing). A per-binary lock file lets several worktrees share the cache:
whoever comes second waits and then finds the binary current.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent / "tools"


class BuildError(RuntimeError):
    """The control plane could not be built; the message says which step failed and why."""


@dataclass(frozen=True)
class Tool:
    """One binary built from a tools module: where its module is and how to stamp it."""

    name: str
    module: str  # the main package to build
    pinned_module: str  # the module whose required version is the release we build
    module_dir: str = ""  # the tools module folder under tools/, when it is not named after the binary

    @property
    def dir(self) -> Path:
        """The tools module folder that pins this binary."""
        return TOOLS_DIR / (self.module_dir or self.name)

    def version(self) -> str:
        """The pinned release, read from the tools module's go.mod."""
        text = (self.dir / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(self.pinned_module)}\s+(v\S+)", text, re.M)
        if not match:
            raise BuildError(f"{self.pinned_module} is not required in {self.dir / 'go.mod'}")
        return match.group(1)

    def ldflags(self) -> str:
        """Linker flags: strip symbols and stamp the release (Kubernetes: into /version; kwok: its own)."""
        flags = ["-s", "-w"]
        if self.pinned_module == "sigs.k8s.io/kwok":
            flags.append(f"-X sigs.k8s.io/kwok/pkg/consts.Version={self.version()}")
        if self.pinned_module == "k8s.io/kubernetes":
            version = self.version()
            major, minor = version.lstrip("v").split(".")[:2]
            pkg = "k8s.io/component-base/version"
            flags += [
                f"-X {pkg}.gitVersion={version}",
                f"-X {pkg}.gitMajor={major}",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
            ]
        return " ".join(flags)

    def stamp(self) -> str:
        """A key that changes whenever the pinned module set or the build flags change."""
        digest = hashlib.sha256()
        for name in ("go.mod", "go.sum"):
            digest.update((self.dir / name).read_bytes())
        digest.update(self.ldflags().encode())
        return f"{self.version()} {digest.hexdigest()[:16]}"


ETCD = Tool("etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3")
KUBE_APISERVER = Tool("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes")
KUBE_CONTROLLER_MANAGER = Tool(
    "kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", "k8s.io/kubernetes", "kube-controllers"
)
KUBE_SCHEDULER = Tool("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", "k8s.io/kubernetes", "kube-controllers")
KWOK = Tool("kwok", "sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok")
BASE_TOOLS = (ETCD, KUBE_APISERVER)
LIVING_TOOLS = (KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KWOK)
TOOLS = BASE_TOOLS + LIVING_TOOLS


def cache_dir() -> Path:
    """Where binaries live: $KRM_CONTROLPLANE_CACHE, else ~/.cache/krm-backend/controlplane."""
    configured = os.environ.get("KRM_CONTROLPLANE_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "krm-backend" / "controlplane"


def binary_path(tool: Tool) -> Path:
    """The cached binary of a tool."""
    return cache_dir() / "bin" / tool.name


def is_current(tool: Tool) -> bool:
    """True when the cached binary exists and was built from the pinned module set."""
    path = binary_path(tool)
    stamp = path.with_name(path.name + ".stamp")
    return path.exists() and stamp.exists() and stamp.read_text().strip() == tool.stamp()


def check_same_kubernetes() -> None:
    """Refuse a controller manager or scheduler pinned to another Kubernetes release than the API server."""
    want = KUBE_APISERVER.version()
    for tool in (KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER):
        if tool.version() != want:
            raise BuildError(
                f"{tool.dir / 'go.mod'} pins k8s.io/kubernetes {tool.version()}, the API server {want}: "
                "regenerate it from tools/kube-apiserver/go.mod"
            )


def build(tool: Tool, log=print) -> Path:
    """Build one tool unless its cached binary is current; return the binary's path."""
    path = binary_path(tool)
    if is_current(tool):
        return path
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain is not on PATH; install Go 1.26+ to build the control plane")
    if tool in (KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER):
        check_same_kubernetes()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Another worktree (or test run) may be building the same binary into the shared cache: wait for it
    # rather than race on the same .tmp file, then reuse what it built.
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_current(tool):
            return path
        return _build_locked(tool, path, log)


def _build_locked(tool: Tool, path: Path, log) -> Path:
    """Run ``go build`` for one tool (the caller holds its lock) and stamp the result."""
    tmp = path.with_name(path.name + ".tmp")
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod -buildvcs=false")
    cmd = [
        "go", "build", "-trimpath", "-tags=notest,grpcnotrace",
        f"-ldflags={tool.ldflags()}", "-o", str(tmp), tool.module,
    ]  # fmt: skip
    log(f"building {tool.name} {tool.version()} (a cold build takes minutes; later runs reuse it)")
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=tool.dir, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"building {tool.name} failed:\n{result.stderr[-4000:]}")
    os.replace(tmp, path)
    path.with_name(path.name + ".stamp").write_text(tool.stamp() + "\n")
    log(f"built {tool.name} in {time.monotonic() - started:.0f} s -> {path}")
    return path


def build_all(log=print, tools: tuple[Tool, ...] = TOOLS) -> dict[str, Path]:
    """Build (or reuse) the control-plane binaries (all of them by default); return name -> path."""
    return {tool.name: build(tool, log) for tool in tools}


def main() -> int:
    """Command line: build everything, print the paths."""
    try:
        paths = build_all(lambda msg: print(msg, file=sys.stderr))
    except BuildError as exc:
        print(f"control plane build failed: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
