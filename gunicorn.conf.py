"""Gunicorn settings, read from the environment (see the README's table)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from config.settings import Settings, SettingsError

try:  # fail in the master, once, with a clear line, instead of in every worker
    _settings = Settings.from_env()
except SettingsError as _exc:
    sys.exit(f"krm-backend: invalid configuration: {_exc}")
_host, _port = _settings.host, _settings.port
bind = f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"
# Two workers by default on two cores; threads cover requests that wait on a cluster.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# Each WebSocket session (pod/log, pod/exec) holds the thread that accepted it for its whole life, so a
# worker gets WS_MAX_SESSIONS threads on top: with every session slot taken, GUNICORN_THREADS threads
# still serve ordinary requests (and refuse the sessions over the limit with close 1013). An idle
# thread costs no CPU; its stack is mapped but only the touched pages count (docs/benchmarks.md).
threads = int(os.environ.get("GUNICORN_THREADS", "4")) + _settings.ws_max_sessions
worker_class = "utils.gunicorn_worker.Worker"  # gthread, its heartbeat throttled
# A request is bounded by the Kubernetes timeouts (a few seconds); 30 s only catches a stuck worker.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# No preload: Kubernetes clients and threads must be created after the fork.
preload_app = False
accesslog = "-"  # routed into the JSON sink by utils.logs.setup_logging
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
logger_class = "utils.gunicorn_logging.JsonLogger"

# Metrics (prometheus_client's multiprocess mode): every worker writes its samples to files in one directory
# and /metrics adds them up. Set here, in the master, before any worker imports prometheus_client. Emptied
# at start: files of an earlier run (a restarted container keeps its emptyDir) would be counted again.
_created_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="krm-metrics-")
os.makedirs(_metrics_dir, exist_ok=True)
for _name in os.listdir(_metrics_dir):
    if _name.endswith(".db"):
        os.remove(os.path.join(_metrics_dir, _name))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


class _ProberSupervisor:
    """Runs ``python -m controllers.prober_process`` beside the workers and restarts it if it dies.

    A process of its own, not a thread in a worker: probing is CPU work that would hold a worker's GIL
    against the requests it serves. The probers, of every replica and PROBE_PROCESSES of each, share the
    clusters out (utils/shards.py); one supervisor runs each.
    """

    def __init__(self, index):
        self.index = index
        self.process = None
        self.stopping = threading.Event()

    def start(self, server):
        """Start the prober and a thread that restarts it (with backoff) until the master exits."""
        threading.Thread(target=self._supervise, args=(server,), name=f"prober-supervisor-{self.index}",
                         daemon=True).start()  # fmt: skip

    def _supervise(self, server):
        delay = 1.0
        while not self.stopping.is_set():
            started = time.monotonic()
            # Not while the master forks a worker: Popen waits for its child's exec on a pipe, and a
            # worker forked meanwhile would hold that pipe open (it never execs), so Popen would not
            # return until the worker exits, and neither stop() nor a restart could see the prober.
            with _SPAWN_LOCK:
                self.process = subprocess.Popen([sys.executable, "-m", "controllers.prober_process"])
            # Polled: the master's SIGCHLD handling reaps every child with waitpid(-1), the prober
            # included, and poll() then reports 0 (ECHILD) instead of the status; either way it ends.
            while (code := self.process.poll()) is None:
                if self.stopping.wait(1.0):
                    break
            if self.stopping.is_set():
                return
            delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 30.0)
            server.log.error("prober process %d exited with %s; restarting in %.0f s", self.index, code, delay)
            self.stopping.wait(delay)

    def terminate(self):
        """Ask the prober to stop (it releases its shards); no restart after this."""
        self.stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self):
        """Wait for the prober to end (10 s, then it is killed)."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


# Held around the prober's spawn and around every os.fork() of this process (gunicorn forks its workers
# with os.fork, which runs these hooks; subprocess's own fork does not).
_SPAWN_LOCK = threading.Lock()
os.register_at_fork(before=_SPAWN_LOCK.acquire, after_in_parent=_SPAWN_LOCK.release,
                    after_in_child=_SPAWN_LOCK.release)  # fmt: skip


_probers = [_ProberSupervisor(i) for i in range(_settings.probe_processes)]


def when_ready(server):
    """The master is listening: start the PROBE_PROCESSES prober processes (unless PROBE_ENABLED=false)."""
    if _settings.probe_enabled:
        for prober in _probers:
            prober.start(server)


def post_fork(server, worker):
    """In the new worker, before it imports the app: the allocator's settings (utils.allocator)."""
    from utils import allocator

    allocator.tune()


def post_worker_init(worker):
    """On SIGTERM, end the worker's WebSocket sessions at once (close 1001), inside the grace period.

    gthread waits for open connections before it exits: without this, a session would hold the worker
    until GUNICORN_GRACEFUL_TIMEOUT and then be cut without a close frame.
    """
    backend = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("krm")
    sessions = getattr(backend, "sessions", None)
    if sessions is None:
        return
    original = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        # In the signal handler only start the work: closing sockets may block for a moment.
        threading.Thread(target=sessions.shutdown, name="ws-shutdown", daemon=True).start()
        if callable(original):
            original(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def worker_exit(server, worker):
    """On a graceful stop, stop a worker's background work (informers)."""
    backend = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("krm")
    if backend is not None:
        backend.stop()


def child_exit(server, worker):
    """A worker is gone: drop its live gauges from the metrics (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Stop the probers; remove the metrics directory this configuration created (not one the operator chose)."""
    for prober in _probers:  # all asked at once: they release their shards in parallel
        prober.terminate()
    for prober in _probers:
        prober.wait()
    if _created_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
