"""The service under gunicorn for tests (it lives in ``controlplane.service``: benchmarks use it too), and polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from controlplane.service import ADMIN_PASSWORD, JWT_KEY, PROJECT_ROOT, Service, unique

__all__ = ["ADMIN_PASSWORD", "JWT_KEY", "PROJECT_ROOT", "Service", "eventually", "unique"]


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last value {last!r}")
