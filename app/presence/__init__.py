"""Presence and revocation state shared by the app processes: Redis, or memory when embedded."""

from app.presence.store import PresenceStore, create_store

__all__ = ["PresenceStore", "create_store"]
