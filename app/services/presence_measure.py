"""Presence bookkeeping at fleet scale, measured: `polaris measure-presence` (the bench runs it).

It builds its own fleet in the configured database and presence store, then, each round:
every device reported online but its last heartbeat just out of the window, the sweep that
takes them all offline; a heartbeat from every device, the store's read of who was heard and
the last-seen flush that writes them all; the sweep that brings them all back online;
another heartbeat from every device and a sweep some ticks later that finds nothing to
change, as most sweeps do; and the same again as a reconciling sweep, which compares
everything. It also weighs what the presence store holds for that many devices (Redis: the
presence key; embedded: this process's memory). Everything it made is removed afterwards. It
refuses a database that already has devices, or a presence store that already has
heartbeats, unless told otherwise: its sweeps would record their transitions too, and a
worker serving them would sweep the measured fleet.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

from redis.asyncio import Redis

from app import clock
from app.errors import DomainError
from app.models import Device, EventType, Kind, OutboxEvent, Role, User
from app.presence import PresenceStore
from app.presence.memory import MemoryPresenceStore
from app.presence.redis import ARRIVALS_KEY, PRESENCE_KEY, SWEEP_MARK_KEY, RedisPresenceStore
from app.services import presence
from app.services.presence import SweepResult
from app.services.revocations import DatabaseRevocations
from app.settings import Settings

T = TypeVar("T")

_SEED_BATCH = 5_000
# No password hashes to this: nobody signs in as the measured fleet's owner.
_NO_PASSWORD = "!"
# The fleet's heartbeats stopped this long before the window began: just out of it, as
# when a whole site loses its network, so the boundary pass is the one that notices.
_SILENT_FOR = timedelta(seconds=2)
# The measured passes follow one that ran this long before.
_SWEEP_EVERY = timedelta(seconds=5)


class NotEmpty(DomainError):
    code = "not_empty"
    default_message = (
        "The database has devices or the presence store has heartbeats; measure on empty ones, "
        "or allow existing data explicitly."
    )


@dataclass(frozen=True, slots=True)
class Timing:
    """`seconds` is the median of `each` (one per round); `count` the devices the last call
    changed (or, for `seen_since`, read)."""

    seconds: float
    each: list[float]
    count: int


@dataclass(frozen=True, slots=True)
class PresenceFigures:
    devices: int
    rounds: int
    database: str
    store: str
    chunk: int
    # The whole fleet silent: every device goes offline.
    offline_sweep: Timing
    # A heartbeat from every device: every `last_seen_at` moves.
    flush: Timing
    # The store's read of who was heard within the window, which both jobs start with.
    seen_since: Timing
    # The sweep after that flush: every device comes back online.
    online_sweep: Timing
    # A heartbeat from every device again, then a pass: nothing changed, as on most ticks.
    steady_sweep: Timing
    # Once more, comparing everything, as every `presence_reconcile_every_seconds`.
    reconcile_sweep: Timing
    redis_key_bytes: int | None
    memory_store_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def measure(
    *, settings: Settings, devices: int, rounds: int = 1, allow_existing: bool = False
) -> PresenceFigures:
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    try:
        if not allow_existing and (
            await Device.all().exists() or (redis is not None and await redis.zcard(PRESENCE_KEY))
        ):
            raise NotEmpty()
        fleet = await _Fleet.create(devices, settings=settings, redis=redis)
        try:
            return await fleet.measure(rounds)
        finally:
            await fleet.remove()
    finally:
        if redis is not None:
            await redis.aclose()


_PHASES = (
    "offline_sweep",
    "flush",
    "seen_since",
    "online_sweep",
    "steady_sweep",
    "reconcile_sweep",
)


class _Fleet:
    def __init__(
        self, owner: User, ids: list[UUID], *, settings: Settings, redis: Redis | None
    ) -> None:
        self.owner = owner
        self.ids = ids
        self.names = [str(device_id) for device_id in ids]
        self.settings = settings
        self.redis = redis
        self.window = timedelta(seconds=settings.heartbeat_online_window_seconds)
        # When each measured sweep ran: the outbox events it wrote are dropped afterwards.
        self.sweeps: list[tuple[datetime, datetime]] = []

    @classmethod
    async def create(cls, size: int, *, settings: Settings, redis: Redis | None) -> _Fleet:
        now = clock.now()
        owner = await User.create(
            email=f"presence-measure-{uuid4().hex[:12]}@measure.invalid",
            password_hash=_NO_PASSWORD,
            role=Role.OPERATOR,
            is_active=False,
            created_at=now,
        )
        ids = [uuid4() for _ in range(size)]
        for start in range(0, size, _SEED_BATCH):
            await Device.bulk_create(
                [
                    Device(
                        id=device_id,
                        kind=Kind.SCANNER,
                        label=f"Measured scanner {start + offset + 1}",
                        platform="ios",
                        capabilities=["scan"],
                        owner_id=owner.id,
                        registered_at=now,
                    )
                    for offset, device_id in enumerate(ids[start : start + _SEED_BATCH])
                ]
            )
        return cls(owner, ids, settings=settings, redis=redis)

    async def measure(self, rounds: int) -> PresenceFigures:
        redis_key_bytes = None
        if self.redis is not None:
            before = await self._redis_key_bytes()
            await self._heartbeats(clock.now() - self.window - _SILENT_FOR)
            redis_key_bytes = await self._redis_key_bytes() - before
        measured: dict[str, list[tuple[int, float]]] = {phase: [] for phase in _PHASES}
        for _ in range(rounds):
            for phase, figure in (await self._round()).items():
                measured[phase].append(figure)
        timings = {
            phase: Timing(
                seconds=statistics.median(seconds for _, seconds in figures),
                each=[seconds for _, seconds in figures],
                count=figures[-1][0],
            )
            for phase, figures in measured.items()
        }
        return PresenceFigures(
            devices=len(self.ids),
            rounds=rounds,
            database=self.settings.database_url.split("://", 1)[0],
            store="redis" if self.redis is not None else "memory",
            chunk=presence.CHUNK,
            **timings,
            redis_key_bytes=redis_key_bytes,
            memory_store_bytes=_memory_store_bytes(len(self.ids)),
        )

    async def _round(self) -> dict[str, tuple[int, float]]:
        """Every device reported online but just silent, then heard from again."""
        swept_at = clock.now()
        silent_since = swept_at - self.window - _SILENT_FOR
        for chunk in _chunks(self.ids):
            await Device.filter(id__in=chunk).update(
                reported_online=True, last_seen_at=silent_since
            )
        figures: dict[str, tuple[int, float]] = {}
        async with self._store_heard_at(silent_since) as store:
            # The pass before saw them all online.
            previous = (swept_at - _SWEEP_EVERY).timestamp()
            await store.save_sweep_mark(swept_at=previous, reconciled_at=previous)
            swept, elapsed = await self._sweep(store, swept_at)
            figures["offline_sweep"] = (swept.went_offline, elapsed)
        heard = clock.now()
        now = heard + timedelta(seconds=1)
        async with self._store_heard_at(heard) as store:
            seen, elapsed = await _timed(lambda: store.seen_since((now - self.window).timestamp()))
            figures["seen_since"] = (len(seen), elapsed)
            figures["flush"] = await _timed(
                lambda: presence.flush_last_seen(store=store, settings=self.settings, now=now)
            )
            swept, elapsed = await self._sweep(store, now)
            figures["online_sweep"] = (swept.came_online, elapsed)
            # Some ticks later: the passes right after an arrival still reach back to it.
            again = now + presence.MARGIN + 2 * _SWEEP_EVERY
            await self._hear(store, again - timedelta(seconds=1))
            previous = (again - _SWEEP_EVERY).timestamp()
            await store.save_sweep_mark(swept_at=previous, reconciled_at=previous)
            swept, elapsed = await self._sweep(store, again)
            figures["steady_sweep"] = (swept.came_online + swept.went_offline, elapsed)
            swept, elapsed = await self._sweep(store, again, reconcile=True)
            figures["reconcile_sweep"] = (swept.came_online + swept.went_offline, elapsed)
        return figures

    async def _sweep(
        self, store: PresenceStore, now: datetime, *, reconcile: bool = False
    ) -> tuple[SweepResult, float]:
        started = clock.now()
        try:
            return await _timed(
                lambda: presence.sweep(
                    store=store, settings=self.settings, now=now, reconcile=reconcile
                )
            )
        finally:
            self.sweeps.append((started, clock.now()))

    @asynccontextmanager
    async def _store_heard_at(self, at: datetime) -> AsyncIterator[PresenceStore]:
        """A presence store in which every device of the fleet was last heard from at `at`."""
        store: PresenceStore
        if self.redis is None:
            store = MemoryPresenceStore(DatabaseRevocations())
        else:
            assert self.settings.redis_url is not None
            store = RedisPresenceStore(self.settings.redis_url, DatabaseRevocations())
        try:
            await self._hear(store, at)
            yield store
        finally:
            await store.stop()

    async def _hear(self, store: PresenceStore, at: datetime) -> None:
        if self.redis is None:
            for name in self.names:
                store.record_heartbeat(name, at.timestamp())
        else:
            await self._heartbeats(at)

    async def _heartbeats(self, at: datetime) -> None:
        assert self.redis is not None
        # Written as the store writes them, but without its `gt`: a round moves time back.
        stamp = clock.now().timestamp()
        for chunk in _chunks(self.names):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(PRESENCE_KEY, dict.fromkeys(chunk, at.timestamp()))
                pipe.zadd(ARRIVALS_KEY, dict.fromkeys(chunk, stamp), nx=True)
                await pipe.execute()

    async def _redis_key_bytes(self) -> int:
        assert self.redis is not None
        used = await self.redis.memory_usage(PRESENCE_KEY, samples=0)
        return int(used or 0)

    async def remove(self) -> None:
        for started, ended in self.sweeps:
            await OutboxEvent.filter(
                type__in=[EventType.DEVICE_ONLINE.value, EventType.DEVICE_OFFLINE.value],
                occurred_at__gte=started,
                occurred_at__lte=ended,
            ).delete()
        # Their presence changes go with them (ON DELETE CASCADE).
        for chunk in _chunks(self.ids):
            await Device.filter(id__in=chunk).delete()
        await self.owner.delete()
        if self.redis is not None:
            for names in _chunks(self.names):
                await self.redis.zrem(PRESENCE_KEY, *names)
                await self.redis.zrem(ARRIVALS_KEY, *names)
            # The next sweep of a worker on this store compares everything.
            await self.redis.delete(SWEEP_MARK_KEY)


def _memory_store_bytes(size: int) -> int:
    """What the embedded store holds for `size` devices: ids as the heartbeat path keeps
    them (strings), their times, and the mapping."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = MemoryPresenceStore(DatabaseRevocations())
        at = clock.now().timestamp()
        for offset in range(size):
            # Each heartbeat brings its own time (one shared float would weigh nothing).
            store.record_heartbeat(str(uuid4()), at + offset / 1_000_000)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def _timed(work: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await work()
    return result, time.perf_counter() - started


def _chunks(items: Sequence[T], size: int = _SEED_BATCH) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
