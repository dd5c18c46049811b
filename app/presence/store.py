"""What every backend offers: last-seen times of devices and the set of revoked credentials.

Revocation is checked on every authenticated device request, so it is answered from memory.
The database stays the truth: each process loads recent revocations from it at start (and
after losing Redis), and while it cannot trust its memory it asks the database instead. A
cache may say "revoked" more often than the database, never less.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable
from datetime import timedelta

from app import clock
from app.logging import get_logger
from app.models import DeviceToken
from app.settings import Settings

log = get_logger(__name__)

# Access tokens live 10 minutes; a revocation older than that has nothing left to stop.
REVOCATION_MEMORY = timedelta(minutes=15)


class PresenceStore(abc.ABC):
    def __init__(self) -> None:
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
        rows = await DeviceToken.filter(id=token_id).values_list("state", "device__state")
        if rows and rows[0] == ("active", "active"):
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

    async def _load_recent_revocations(self) -> None:
        since = clock.now() - REVOCATION_MEMORY
        ended = (
            await DeviceToken.filter(ended_at__gte=since)
            .exclude(state="active")
            .values_list("id", flat=True)
        )
        dead_devices = await DeviceToken.filter(
            state="active", device__state="deregistered"
        ).values_list("id", flat=True)
        self._remember(str(token_id) for token_id in [*ended, *dead_devices])
        log.info("revocations_loaded", count=len(self._revoked))


def create_store(settings: Settings) -> PresenceStore:
    if settings.redis_url is None:
        from app.presence.memory import MemoryPresenceStore

        return MemoryPresenceStore()
    from app.presence.redis import RedisPresenceStore

    return RedisPresenceStore(settings.redis_url)
