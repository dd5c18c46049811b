"""Presence bookkeeping: last-seen times into the database, online ⇄ offline transitions.

Whether a device is online is derived when read (last heartbeat younger than the window), so
these jobs are never what makes presence right; they keep the database's copy of last-seen
times current and record when a device came and went. Both are safe on two workers at once:
every write is conditional, and a transition is recorded only by the writer that made it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app import clock
from app.logging import get_logger
from app.models import Device, EventType, PresenceChange
from app.presence import PresenceStore
from app.services import events
from app.settings import Settings

log = get_logger(__name__)

_BATCH = 500


@dataclass(frozen=True, slots=True)
class SweepResult:
    came_online: int
    went_offline: int


def _chunks(items: Sequence[str], size: int = _BATCH) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def flush_last_seen(*, store: PresenceStore, settings: Settings, now: datetime) -> int:
    """Copy the store's heartbeat times to `Device.last_seen_at`; returns the rows written."""
    since = now - timedelta(seconds=settings.heartbeat_online_window_seconds)
    seen = await store.seen_since(since.timestamp())
    written = 0
    for chunk in _chunks(sorted(seen)):
        rows = await Device.filter(id__in=chunk).values_list("id", "last_seen_at")
        for device_id, stored in rows:
            at = clock.from_epoch(seen[str(device_id)])
            if stored is not None and stored >= at:
                continue
            # Only ever forwards: a slower worker holding an older time changes nothing.
            written += (
                await Device.filter(id=device_id)
                .filter(Q(last_seen_at=None) | Q(last_seen_at__lt=at))
                .update(last_seen_at=at)
            )
    return written


async def sweep(*, store: PresenceStore, settings: Settings, now: datetime) -> SweepResult:
    """Record the devices that came online or went silent since the last sweep."""
    window = timedelta(seconds=settings.heartbeat_online_window_seconds)
    since = now - window
    seen = {
        device_id: clock.from_epoch(at)
        for device_id, at in (await store.seen_since(since.timestamp())).items()
    }
    # The database also knows who is online (the store may have been flushed or replaced).
    for device_id, at in await Device.filter(last_seen_at__gt=since).values_list(
        "id", "last_seen_at"
    ):
        seen.setdefault(str(device_id), at)

    came_online = 0
    for chunk in _chunks(sorted(seen)):
        candidates = await Device.filter(
            id__in=chunk, reported_online=False, deleted_at=None
        ).values_list("id", flat=True)
        for device_id in candidates:
            came_online += await _record(str(device_id), online=True, at=seen[str(device_id)])

    went_offline = 0
    reported = await Device.filter(reported_online=True).values_list("id", "last_seen_at")
    for device_id, last_seen in reported:
        if str(device_id) in seen:
            continue
        # It went silent at the end of its window, not when this sweep noticed.
        at = min(last_seen + window, now) if last_seen is not None else now
        went_offline += await _record(str(device_id), online=False, at=at)
    return SweepResult(came_online, went_offline)


async def _record(device_id: str, *, online: bool, at: datetime) -> int:
    async with in_transaction() as connection:
        changed = (
            await Device.filter(id=device_id, reported_online=not online)
            .using_db(connection)
            .update(reported_online=online)
        )
        if changed:
            await PresenceChange.create(
                device_id=device_id, online=online, at=at, using_db=connection
            )
            device = await Device.get(id=device_id, using_db=connection)
            await events.emit(
                EventType.DEVICE_ONLINE if online else EventType.DEVICE_OFFLINE,
                {
                    "deviceId": device_id,
                    "label": device.label,
                    "kind": device.kind.value,
                    "atIso": events.iso(at),
                },
                using_db=connection,
            )
    return changed


async def recent_changes(device_id: str, *, limit: int = 20) -> list[PresenceChange]:
    return await PresenceChange.filter(device_id=device_id).limit(limit)
