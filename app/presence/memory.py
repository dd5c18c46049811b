"""Embedded mode: one process, so its memory is the whole truth about what it has seen."""

from __future__ import annotations

from collections.abc import Iterable

from app.presence.store import PresenceStore, RevocationSource


class MemoryPresenceStore(PresenceStore):
    def __init__(self, revocations: RevocationSource) -> None:
        super().__init__(revocations)
        self._seen: dict[str, float] = {}

    def record_heartbeat(self, device_id: str, at: float) -> None:
        self._seen[device_id] = max(at, self._seen.get(device_id, 0.0))

    async def last_seen(self, device_ids: Iterable[str]) -> dict[str, float]:
        return {d: self._seen[d] for d in device_ids if d in self._seen}

    async def seen_since(self, since: float) -> dict[str, float]:
        return {d: at for d, at in self._seen.items() if at >= since}

    async def count_seen_since(self, since: float) -> int:
        return sum(1 for at in self._seen.values() if at >= since)
