"""Domain errors of the service: each carries the envelope's ``status`` and a safe message."""

from __future__ import annotations

from typing import Any

from config.constants import MSG_METADATA_UNAVAILABLE
from utils import kube


class ServiceError(Exception):
    """An outcome the envelope reports: ``status`` (400, 401, 404, 500, 503) and ``message``."""

    status = 400

    def __init__(self, message: str, status: int | None = None, data: dict[str, Any] | None = None) -> None:
        """Keep the message (already safe to show), optionally another status and the reply's ``data``."""
        super().__init__(message)
        self.message = message
        self.data = data
        if status is not None:
            self.status = status


class BadRequest(ServiceError):
    """A request or upstream failure (envelope status 400)."""

    status = 400


class AuthFailed(ServiceError):
    """Authentication failed (envelope status 401)."""

    status = 401


class Unavailable(ServiceError):
    """The metadata cluster (this service's database) cannot be used right now (503)."""

    status = 503


# Transport failures of the metadata cluster are the service's own fault, not the request's.
_METADATA_DOWN = (kube.Unreachable, kube.Timeout, kube.TLSError, kube.Unhealthy, kube.BadKubeconfig)
_METADATA_DENIED = (kube.Unauthorized, kube.Forbidden)


def from_metadata(prefix: str, exc: kube.KubeError) -> ServiceError:
    """An error of a metadata-cluster call as the route's message (``<prefix>: <reason>``)."""
    if isinstance(exc, _METADATA_DOWN):
        return Unavailable(f"{prefix}: {MSG_METADATA_UNAVAILABLE} ({exc.message})")
    if isinstance(exc, _METADATA_DENIED):
        return ServiceError(f"{prefix}: 服务账号无权访问元数据集群 ({exc.message})", 500)
    return BadRequest(f"{prefix}: {exc.message}")
