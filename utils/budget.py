"""A route's time budget: every Kubernetes call of a request shares it (contract-platform.md §1.8)."""

from __future__ import annotations

import time

from utils.kube import Timeout

# Below this many seconds a call cannot do useful work (a TLS handshake alone takes milliseconds,
# an API answer a few more): fail at once instead of sending a request that is sure to time out.
MIN_CALL_SECONDS = 0.05


class BudgetExceeded(Timeout):
    """The route's budget is spent; no further call is made."""

    reason = "Timeout"


class Budget:
    """``seconds`` of wall-clock time from now, for all the calls one request makes."""

    def __init__(self, seconds: float, connect_timeout: float = 2.0) -> None:
        """Start the clock; each call gets ``connect_timeout`` (at most) to connect."""
        self.seconds = seconds
        self.connect_timeout = connect_timeout
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` for the next call: 2 s to connect, at most what is left in all.

        Raises ``BudgetExceeded`` when too little is left for a call to be worth sending.
        """
        left = self.remaining()
        if left < MIN_CALL_SECONDS:
            raise BudgetExceeded(f"budget of {self.seconds:g} s spent")
        return (min(self.connect_timeout, left), left)

    def check(self) -> None:
        """Raise ``BudgetExceeded`` if the budget ran out (after a call that returned late)."""
        if self.remaining() <= 0.0:
            raise BudgetExceeded(f"budget of {self.seconds:g} s spent")
