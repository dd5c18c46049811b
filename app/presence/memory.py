"""Embedded mode: one process, so its memory is the whole truth about what it has seen.

Range reads scan every device: an embedded fleet is small, and a scan of a dict of some
thousands is cheaper than keeping a sorted index current on every heartbeat.
"""

from __future__ import annotations

from collections.abc import Iterable

from app import clock
from app.presence.store import PresenceStore, RevocationSource, SweepMark


class MemoryPresenceStore(PresenceStore):
    def __init__(self, revocations: RevocationSource) -> None:
        super().__init__(revocations)
        self._seen: dict[str, float] = {}
        self._arrived: dict[str, float] = {}
        self._mark: SweepMark | None = None

    def record_heartbeat(self, device_id: str, at: float) -> None:
        self._seen[device_id] = max(at, self._seen.get(device_id, 0.0))
        self._arrived.setdefault(device_id, clock.now().timestamp())

    async def last_seen(
        self,
        device_ids: Iterable[str],
        *,
        strict: bool = False,  # noqa: ARG002 (memory always answers)
    ) -> dict[str, float]:
        return {d: self._seen[d] for d in device_ids if d in self._seen}

    async def seen_since(self, since: float) -> dict[str, float]:
        return {d: at for d, at in self._seen.items() if at >= since}

    async def count_seen_since(self, since: float) -> int:
        return sum(1 for at in self._seen.values() if at >= since)

    async def seen_between(self, lo: float, hi: float) -> dict[str, float]:
        return {d: at for d, at in self._seen.items() if lo <= at < hi}

    async def arrived_since(self, since: float) -> set[str]:
        return {d for d, at in self._arrived.items() if at >= since}

    async def forget_arrivals(
        self, device_ids: Iterable[str], *, silent_before: float, now: float
    ) -> None:
        for device_id in device_ids:
            if self._seen.get(device_id, 0.0) < silent_before:
                self._arrived.pop(device_id, None)
            else:
                self._arrived[device_id] = now

    async def sweep_mark(self) -> SweepMark | None:
        return self._mark

    async def save_sweep_mark(self, *, swept_at: float, reconciled_at: float | None) -> None:
        if reconciled_at is None:
            if self._mark is None:
                return
            reconciled_at = self._mark.reconciled_at
        self._mark = SweepMark(swept_at=swept_at, reconciled_at=reconciled_at)
