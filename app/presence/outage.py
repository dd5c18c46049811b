"""Losing a backend and getting it back: one log line at each change, not one per attempt.

A loop that talks to Redis reports each failure and each success here. The first failure
logs `<what>_lost`, later ones only count; the first success after that logs `<what>_back`
with how long it was away and how many attempts failed. `next_delay()` says how long to
wait before the next attempt: doubling from `base` up to `ceiling`, with jitter so that many
processes do not reconnect in lock-step.
"""

from __future__ import annotations

import random
import time

from app.logging import get_logger

log = get_logger(__name__)


class Outage:
    def __init__(self, what: str, *, base: float = 0.5, ceiling: float = 2.0) -> None:
        self.what = what
        self.base = base
        self.ceiling = ceiling
        self.failures = 0
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException, **context: object) -> None:
        self.failures += 1
        if self._since is None:
            self._since = time.monotonic()
            log.warning(f"{self.what}_lost", error=type(error).__name__, **context)

    def succeeded(self, **context: object) -> None:
        if self._since is None:
            return
        down = time.monotonic() - self._since
        log.info(
            f"{self.what}_back",
            down_seconds=round(down, 1),
            failed_attempts=self.failures,
            **context,
        )
        self._since = None
        self.failures = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt (0 while nothing has failed)."""
        if not self.failures:
            return 0.0
        # Capped before exponentiating: an outage of days must not overflow the float.
        delay = min(self.ceiling, self.base * 2.0 ** min(self.failures - 1, 32))
        return delay * random.uniform(0.8, 1.0)
