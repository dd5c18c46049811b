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
    async def last_seen(self, device_ids: Iterable[str]) -> dict[str, float]:
        """Epoch seconds of the last heartbeat of each device that has one."""

    @abc.abstractmethod
    async def seen_since(self, since: float) -> dict[str, float]:
        """Every device heard from at or after `since` (for the last-seen flush)."""

    @abc.abstractmethod
    async def count_seen_since(self, since: float) -> int:
        """How many devices were heard from at or after `since`."""

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
