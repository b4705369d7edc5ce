"""The service under gunicorn for tests: lives in ``controlplane.service`` (benchmarks use it too)."""

from controlplane.service import ADMIN_PASSWORD, JWT_KEY, PROJECT_ROOT, Service, unique

__all__ = ["ADMIN_PASSWORD", "JWT_KEY", "PROJECT_ROOT", "Service", "unique"]
