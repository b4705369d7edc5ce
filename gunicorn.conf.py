"""Gunicorn settings, read from the environment (see the README's table)."""

import os
import sys

from config.settings import Settings, SettingsError

try:  # fail in the master, once, with a clear line, instead of in every worker
    _settings = Settings.from_env()
except SettingsError as _exc:
    sys.exit(f"krm-backend: invalid configuration: {_exc}")
_host, _port = _settings.host, _settings.port
bind = f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"
# Two workers by default on two cores; threads cover requests that wait on a cluster.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
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
