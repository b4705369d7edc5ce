"""One small base for the service's background loops (bootstrap, informer, leader election, prober)."""

from __future__ import annotations

import threading


class BackgroundLoop:
    """``_run`` in a daemon thread, started once; ``stop`` sets ``_stop``, which ``_run`` waits on."""

    thread_name = "background"

    def __init__(self) -> None:
        """Nothing runs until ``start``."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the loop (once; later calls do nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end; it is a daemon thread, so it never holds the process up."""
        self._stop.set()

    def _run(self) -> None:
        """The loop; subclasses define it."""
        raise NotImplementedError
