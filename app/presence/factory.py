from __future__ import annotations

from app.presence.memory import MemoryPresenceStore
from app.presence.redis import RedisPresenceStore
from app.presence.store import PresenceStore, RevocationSource
from app.settings import Settings


def create_store(settings: Settings, revocations: RevocationSource) -> PresenceStore:
    """Redis when configured (many processes share it), this process's memory otherwise."""
    if settings.redis_url is None:
        return MemoryPresenceStore(revocations)
    return RedisPresenceStore(settings.redis_url, revocations)
