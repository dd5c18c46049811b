"""Presence bookkeeping: last-seen times into the database, online ⇄ offline transitions.

Whether a device is online is derived when read (last heartbeat younger than the window), so
these jobs are never what makes presence right; they keep the database's copy of last-seen
times current and record when a device came and went. Both are safe on two workers at once:
every write is conditional, and a transition is recorded only by the writer that made it.
Both work in chunks of `CHUNK` devices, one statement per chunk for each kind of write
(`app.services.presence_rows`), so that a fleet of 100,000 costs dozens of statements.

The sweep reads only what changed since its last pass, from a mark it keeps in the store
(shared by every worker): the devices whose last heartbeat left the window since then (in
the store, or in the database's copy), and those whose arrival the store stamped since then.
Every so often, and whenever the mark is missing (the store was flushed or replaced, or a
call to it failed since), it compares everything instead: every device heard against every
device reported online, and the database's last-seen times too. The went-offline time is
min(last heartbeat + window, now) either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app import clock
from app.logging import get_logger
from app.models import Device, EventType, PresenceChange
from app.presence import PresenceStore
from app.presence.store import SweepMark
from app.services import events, presence_rows
from app.services.presence_rows import Marked
from app.settings import Settings

log = get_logger(__name__)

# Devices per statement: large enough that a fleet costs few round trips, small enough that
# a chunk's transaction holds its row locks for milliseconds.
CHUNK = 5_000

T = TypeVar("T")


# How far each pass reaches back before where the last one stopped: the processes' clocks
# differ a little, a flush may still be travelling, and a row another writer held last time
# is tried again.
MARGIN = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class SweepResult:
    came_online: int
    went_offline: int
    # How the pass went, not what it found: equal results may come from either kind.
    reconciled: bool = field(default=False, compare=False)


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


async def flush_last_seen(*, store: PresenceStore, settings: Settings, now: datetime) -> int:
    """Copy the store's heartbeat times to `Device.last_seen_at`; returns the rows written."""
    since = now - timedelta(seconds=settings.heartbeat_online_window_seconds)
    seen = await store.seen_since(since.timestamp())
    written = 0
    # Sorted: two workers at once cut the same chunks and meet the rows in the same order.
    for chunk in _chunks(sorted(seen)):
        times = [(device_id, clock.from_epoch(seen[device_id])) for device_id in chunk]
        async with in_transaction() as connection:
            written += await presence_rows.move_last_seen(times, connection=connection)
    return written


async def sweep(
    *, store: PresenceStore, settings: Settings, now: datetime, reconcile: bool = False
) -> SweepResult:
    """Record the devices that came online or went silent since the last sweep.

    Most passes read only what changed since the last one (`_boundary`); one that finds no
    usable mark in the store, or whose last reconcile is `presence_reconcile_every_seconds`
    old, or is told to `reconcile`, compares everything (`_everything`).
    """
    window = timedelta(seconds=settings.heartbeat_online_window_seconds)
    since = now - window
    mark = None if reconcile else await store.sweep_mark()
    if mark is not None and _usable(mark, now=now, settings=settings):
        full = False
        arrived, silent = await _boundary(store, mark=mark, since=since, window=window)
        ended = silent
    else:
        full = True
        arrived, silent, ended = await _everything(store, since=since)

    came_online = 0
    for chunk in _chunks(sorted(arrived)):
        async with in_transaction() as connection:
            marked = await presence_rows.mark_online(chunk, connection=connection)
            await _record(
                [(device, arrived[device.device_id]) for device in marked],
                online=True,
                using_db=connection,
            )
        came_online += len(marked)

    # Silent by the database's clock too, which `mark_offline` checks as it writes.
    went_offline = 0
    for chunk in _chunks(sorted(silent)):
        async with in_transaction() as connection:
            marked = await presence_rows.mark_offline(
                chunk, silent_since=since, connection=connection
            )
            await _record(
                [(device, _went_silent(device, window=window, now=now)) for device in marked],
                online=False,
                using_db=connection,
            )
        went_offline += len(marked)

    # Their next heartbeat is a new arrival, which the next pass asks for by its stamp.
    await store.forget_arrivals(ended, silent_before=since.timestamp(), now=now.timestamp())
    # Only after the writes: a pass that failed half-way leaves the old mark, and the next
    # one reaches back over what this one missed.
    await store.save_sweep_mark(
        swept_at=now.timestamp(), reconciled_at=now.timestamp() if full else None
    )
    return SweepResult(came_online, went_offline, reconciled=full)


def _usable(mark: SweepMark, *, now: datetime, settings: Settings) -> bool:
    at = now.timestamp()
    fresh = at - mark.reconciled_at < settings.presence_reconcile_every_seconds
    # A mark from the future is a clock that went back: ranges from it would leave gaps.
    return fresh and max(mark.swept_at, mark.reconciled_at) - MARGIN.total_seconds() <= at


async def _everything(
    store: PresenceStore, *, since: datetime
) -> tuple[dict[str, datetime], set[str], set[str]]:
    """Every device heard against every device reported online: O(fleet), and right whatever
    the store lost. Returns who arrived, who went silent, and whose arrival has ended."""
    heard = await store.seen_since(since.timestamp())
    # A scan of the table (≈15 ms at 100,000 devices on PostgreSQL): an index on the flag
    # would cost more on every last-seen write, which updates each online device's row.
    reported = {
        str(device_id)
        for device_id in await Device.filter(reported_online=True).values_list("id", flat=True)
    }
    arrived = {
        device_id: clock.from_epoch(at)
        for device_id, at in heard.items()
        if device_id not in reported
    }
    # The database also knows who is online (the store may have been flushed or replaced).
    for device_id, at in await Device.filter(
        last_seen_at__gt=since, reported_online=False, deleted_at=None
    ).values_list("id", "last_seen_at"):
        arrived.setdefault(str(device_id), at)
    silent = reported.difference(heard)
    # Arrivals left behind by a race the boundary passes could not see end here.
    ended = silent.union(await store.arrived_since(float("-inf"))).difference(heard)
    return arrived, silent, ended


async def _boundary(
    store: PresenceStore, *, mark: SweepMark, since: datetime, window: timedelta
) -> tuple[dict[str, datetime], set[str]]:
    """Only what changed since the mark: the devices whose last heartbeat fell out of the
    window since then, and those that arrived since. About nothing in a steady fleet."""
    margin = MARGIN.total_seconds()
    edge = clock.from_epoch(mark.swept_at - window.total_seconds() - margin)
    silent = set(await store.seen_between(edge.timestamp(), since.timestamp()))
    # The database's copy crossed too: rows the store knows nothing newer of go offline as
    # well, whatever the store lost. (A scan of the table, as in `_everything`: an index on
    # `last_seen_at` would make every last-seen write touch every index.)
    crossed = [
        str(device_id)
        for device_id in await Device.filter(
            reported_online=True, last_seen_at__gte=edge, last_seen_at__lt=since
        ).values_list("id", flat=True)
        if str(device_id) not in silent
    ]
    newer = await store.last_seen(crossed, strict=True)
    silent.update(d for d in crossed if newer.get(d, 0.0) < since.timestamp())
    heard = await store.last_seen(await store.arrived_since(mark.swept_at - margin), strict=True)
    arrived = {
        device_id: clock.from_epoch(at)
        for device_id, at in heard.items()
        if at >= since.timestamp()
    }
    return arrived, silent


def _went_silent(device: Marked, *, window: timedelta, now: datetime) -> datetime:
    """At the end of its window, not when this sweep noticed."""
    if device.last_seen_at is None:
        return now
    return min(device.last_seen_at + window, now)


async def _record(
    changes: Sequence[tuple[Marked, datetime]], *, online: bool, using_db: BaseDBAsyncClient
) -> None:
    await presence_rows.add_changes(
        [(device.device_id, at) for device, at in changes], online=online, connection=using_db
    )
    await events.emit_many(
        EventType.DEVICE_ONLINE if online else EventType.DEVICE_OFFLINE,
        [
            {
                "deviceId": device.device_id,
                "label": device.label,
                "kind": device.kind,
                "atIso": events.iso(at),
            }
            for device, at in changes
        ],
        using_db=using_db,
    )


async def recent_changes(device_id: str, *, limit: int = 20) -> list[PresenceChange]:
    return await PresenceChange.filter(device_id=device_id).limit(limit)
