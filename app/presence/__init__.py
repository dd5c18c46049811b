"""Presence and revocation state shared by the app processes: Redis, or memory when embedded."""

from app.presence.factory import create_store
from app.presence.store import PresenceStore, RevocationSource

__all__ = ["PresenceStore", "RevocationSource", "create_store"]
