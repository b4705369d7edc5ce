"""Failed-login lockout per (client address, username), kept in this process's memory.

Each gunicorn worker counts on its own: with W workers and R replicas a guesser gets at most
W x R x ``max_failures`` tries per window instead of ``max_failures`` (still a few per minute, not
thousands). Sharing the counters through the metadata cluster would cost a write per failed login,
which is exactly what a flood would then hammer. Locked-out attempts are refused without checking
the password and without waiting: sleeping would tie up a worker thread per guess.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from config.constants import MSG_LOGIN_LOCKED
from controllers.errors import AuthFailed

MAX_TRACKED = 10_000  # (client, username) pairs remembered; the oldest are forgotten first


@dataclass
class _Attempts:
    """Recent failures of one (client, username) and the end of its lockout (monotonic seconds)."""

    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginLimiter:
    """Counts failed logins and locks a (client, username) out for a while after too many."""

    def __init__(
        self,
        max_failures: int = 5,
        lockout_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        """``max_failures`` within ``lockout_seconds`` lock out for ``lockout_seconds``; 0 disables."""
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.clock = clock
        self.max_tracked = max_tracked
        self._attempts: OrderedDict[tuple[str, str], _Attempts] = OrderedDict()
        self._lock = threading.Lock()

    def locked_for(self, client: str, username: str) -> float:
        """Seconds left of the lockout of this (client, username); 0 when it may try."""
        if self.max_failures <= 0:
            return 0.0
        with self._lock:
            entry = self._attempts.get((client, username))
            left = entry.locked_until - self.clock() if entry else 0.0
        return max(left, 0.0)

    def check(self, client: str, username: str) -> None:
        """Raise ``AuthFailed`` with the lockout message (and the wait) when locked out."""
        left = self.locked_for(client, username)
        if left > 0:
            raise AuthFailed(lockout_message(left))

    def failed(self, client: str, username: str) -> float:
        """Count a failed login; returns the lockout it started (seconds), 0 when none."""
        if self.max_failures <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            key = (client, username)
            entry = self._attempts.pop(key, None) or _Attempts()
            entry.failures = [t for t in entry.failures if now - t < self.lockout_seconds]
            entry.failures.append(now)
            started = 0.0
            if len(entry.failures) >= self.max_failures:
                entry.failures = []
                entry.locked_until = now + self.lockout_seconds
                started = self.lockout_seconds
            self._attempts[key] = entry  # most recent last, so eviction drops the stalest
            while len(self._attempts) > self.max_tracked:
                self._attempts.popitem(last=False)
        return started

    def succeeded(self, client: str, username: str) -> None:
        """A successful login forgets the failures of this (client, username)."""
        with self._lock:
            self._attempts.pop((client, username), None)


def lockout_message(seconds_left: float) -> str:
    """The lockout message with the wait in whole seconds."""
    return f"{MSG_LOGIN_LOCKED} (请 {math.ceil(seconds_left)} 秒后重试)"
