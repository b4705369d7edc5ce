"""gunicorn's gthread worker with a heartbeat that is not touched on every request."""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

# The arbiter restarts a worker whose heartbeat is older than GUNICORN_TIMEOUT (30 s by default):
# touching it once a second is plenty.
HEARTBEAT_SECONDS = 1.0


class Worker(ThreadWorker):
    """The gthread worker (threads, keep-alive, WebSocket sessions on its threads), heartbeat throttled.

    gthread touches its heartbeat file (``os.utime``) on every turn of its main loop, twice per
    request. The system call gives up the GIL and the main thread then has to take it back from the
    thread serving the request, which on two busy cores costs that request a forced switch and a
    wait for the CPU each time (measured: 0.6 ms per touch, in docs/benchmarks.md). Once a second
    keeps the arbiter's watch exactly as it was.
    """

    _last_heartbeat = float("-inf")

    def notify(self) -> None:
        """Touch the heartbeat file if the last touch is a second old or more."""
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_SECONDS:
            self._last_heartbeat = now
            super().notify()
