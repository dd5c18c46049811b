"""What every backend offers: last-seen times of devices and the set of revoked credentials.

Revocation is checked on every authenticated device request, so it is answered from memory.
The database stays the truth: each process loads recent revocations from it at start (and
after losing Redis), and while it cannot trust its memory it asks the database instead. A
cache may say "revoked" more often than the database, never less. The database is reached
through the `RevocationSource` the store is given, so this layer knows no model.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from app import clock
from app.logging import get_logger
from app.metrics import REVOCATION_CACHE

log = get_logger(__name__)

# Access tokens live 10 minutes; a revocation older than that has nothing left to stop.
REVOCATION_MEMORY = timedelta(minutes=15)


class RevocationSource(Protocol):
    """The database's word on revoked credentials."""

    async def is_revoked(self, token_id: str) -> bool: ...

    async def revoked_since(self, since: datetime) -> list[str]:
        """Credentials that ended at or after `since`, and the live ones of dead devices."""
        ...

    async def ended_since(self, since: datetime) -> list[str]:
        """Credentials that ended at or after `since` (an index read: asked every few
        seconds)."""
        ...


@dataclass(frozen=True, slots=True)
class SweepMark:
    """Where the presence sweeps have got to, in epoch seconds: the `now` of the last pass
    that finished, and of the last that reconciled everything."""

    swept_at: float
    reconciled_at: float


class PresenceStore(abc.ABC):
    def __init__(self, revocations: RevocationSource) -> None:
        self._revocations = revocations
        self._revoked: dict[str, float] = {}
        self._trusted = False

    # -- presence -------------------------------------------------------------------------

    @abc.abstractmethod
    def record_heartbeat(self, device_id: str, at: float) -> None:
        """Remember a heartbeat; backends may batch the write."""

    @abc.abstractmethod
    async def last_seen(
        self, device_ids: Iterable[str], *, strict: bool = False
    ) -> dict[str, float]:
        """Epoch seconds of the last heartbeat of each device that has one. A backend that
        cannot answer falls back to what it holds in memory, or with `strict` raises: the
        sweep must not take a silence it could not read for the device's."""

    @abc.abstractmethod
    async def seen_since(self, since: float) -> dict[str, float]:
        """Every device heard from at or after `since` (for the last-seen flush)."""

    @abc.abstractmethod
    async def count_seen_since(self, since: float) -> int:
        """How many devices were heard from at or after `since`."""

    @abc.abstractmethod
    async def seen_between(self, lo: float, hi: float) -> dict[str, float]:
        """The devices whose last heartbeat is at or after `lo` and before `hi`."""

    # An arrival is a device's first heartbeat since its arrival was last forgotten, stamped
    # with when the store took it in (not the heartbeat's own time, which a batch held back
    # while Redis was away may carry from long ago): the sweep asks only for the new ones.

    @abc.abstractmethod
    async def arrived_since(self, since: float) -> set[str]:
        """The devices whose arrival was stamped at or after `since`."""

    @abc.abstractmethod
    async def forget_arrivals(
        self, device_ids: Iterable[str], *, silent_before: float, now: float
    ) -> None:
        """Forget the arrivals of those devices not heard from at or after `silent_before`;
        those heard since arrive again, stamped `now`. One step, so that a heartbeat landing
        meanwhile is never lost."""

    @abc.abstractmethod
    async def sweep_mark(self) -> SweepMark | None:
        """The last mark saved, or None when there is none or the store may have lost data
        since (then the next sweep reconciles everything)."""

    @abc.abstractmethod
    async def save_sweep_mark(self, *, swept_at: float, reconciled_at: float | None) -> None:
        """`reconciled_at` None keeps the last one."""

    # -- revocation -----------------------------------------------------------------------

    async def start(self) -> None:
        await self._load_recent_revocations()
        self._trusted = True

    async def stop(self) -> None:
        self._trusted = False

    async def publish_revocations(self, token_ids: Iterable[str]) -> None:
        """Called after the revoking transaction commits."""
        self._remember(token_ids)

    async def is_revoked(self, token_id: str) -> bool:
        if token_id in self._revoked:
            return True
        if self._trusted:
            return False
        # Memory may be missing revocations (Redis lost): ask the database.
        if not await self._revocations.is_revoked(token_id):
            return False
        self._remember([token_id])
        return True

    def _remember(self, token_ids: Iterable[str]) -> None:
        now = time.monotonic()
        for token_id in token_ids:
            self._revoked[token_id] = now
        horizon = now - REVOCATION_MEMORY.total_seconds()
        if len(self._revoked) > 10_000:
            self._revoked = {k: v for k, v in self._revoked.items() if v >= horizon}
        REVOCATION_CACHE.set(len(self._revoked))

    async def _load_recent_revocations(self) -> None:
        revoked = await self._revocations.revoked_since(clock.now() - REVOCATION_MEMORY)
        self._remember(revoked)
        log.info("revocations_loaded", count=len(self._revoked))
