"""The presence sweep between reconciles: only what changed since its last pass.

The clock is frozen and moved a tick at a time, as the worker's schedule would run them: the
store stamps arrivals by the same clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from uuid import uuid4

import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.models import Device, OutboxEvent, PresenceChange
from app.presence import PresenceStore
from app.presence.redis import PRESENCE_KEY, RedisPresenceStore
from app.services import presence
from app.services.presence import SweepResult
from app.services.revocations import DatabaseRevocations
from app.settings import Settings
from tests.factories import SignedInClient, saved_scanners

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

TICK = timedelta(seconds=5)


@pytest.fixture
def window(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.heartbeat_online_window_seconds)


@pytest.fixture
def start() -> Iterator[datetime]:
    with clock.frozen():
        yield clock.now()


def at(moment: datetime) -> datetime:
    """Move the frozen clock to `moment`."""
    clock.advance(moment - clock.now())
    return moment


@pytest.fixture
def reconcile_every(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.presence_reconcile_every_seconds)


async def scanners(admin: SignedInClient, size: int, **fields: object) -> list[str]:
    return await saved_scanners(admin.user.id, size, **fields)


def hear(app: Starlette, device_ids: list[str], moment: datetime) -> None:
    at(moment)
    for device_id in device_ids:
        runtime(app).presence.record_heartbeat(device_id, moment.timestamp())


async def sweep(
    app: Starlette, now: datetime, *, store: PresenceStore | None = None
) -> SweepResult:
    state = runtime(app)
    at(now)
    return await presence.sweep(store=store or state.presence, settings=state.settings, now=now)


async def flush(app: Starlette, now: datetime) -> None:
    state = runtime(app)
    await presence.flush_last_seen(store=state.presence, settings=state.settings, now=now)


async def reported_online() -> set[str]:
    return {str(i) for i in await Device.filter(reported_online=True).values_list("id", flat=True)}


async def offline_changes() -> list[tuple[str, datetime]]:
    rows = await PresenceChange.filter(online=False).values_list("device_id", "at")
    return sorted((str(device_id), at) for device_id, at in rows)


@pytest.fixture
async def second_worker(app: Starlette, settings: Settings) -> AsyncIterator[PresenceStore]:
    """Another worker's store: its own Redis connection, or, embedded, the one process's."""
    if settings.redis_url is None:
        yield runtime(app).presence
        return
    store = RedisPresenceStore(settings.redis_url, DatabaseRevocations())
    try:
        yield store
    finally:
        await store.stop()


async def test_between_reconciles_a_pass_looks_only_at_what_changed(
    app: Starlette,
    admin: SignedInClient,
    start: datetime,
    window: timedelta,
    reconcile_every: timedelta,
) -> None:
    fleet = await scanners(admin, 5)
    hear(app, fleet, start)
    assert await sweep(app, start) == SweepResult(came_online=5, went_offline=0)
    # Reported online behind the sweep's back, never heard: nothing crosses a boundary.
    (ghost,) = await scanners(admin, 1, reported_online=True, last_seen_at=start - 2 * window)

    passes = [await sweep(app, start + n * TICK) for n in range(1, 4)]

    assert passes == [SweepResult(came_online=0, went_offline=0)] * 3
    assert not any(p.reconciled for p in passes)
    assert ghost in await reported_online()

    hear(app, fleet, start + reconcile_every)
    reconciled = await sweep(app, start + reconcile_every)

    assert reconciled.reconciled
    assert reconciled == SweepResult(came_online=0, went_offline=1)
    assert await reported_online() == set(fleet)


async def test_a_device_going_silent_is_recorded_once_at_the_end_of_its_window(
    app: Starlette, admin: SignedInClient, start: datetime, window: timedelta
) -> None:
    quiet, chatty = await scanners(admin, 2)
    hear(app, [quiet, chatty], start)
    await flush(app, start)
    ticks = [start + n * TICK for n in range(1, int((window + 4 * TICK) / TICK))]

    results: list[SweepResult] = []
    for now in ticks:
        hear(app, [chatty], now)
        results.append(await sweep(app, now))

    (crossing,) = [n for n, r in enumerate(results) if r.went_offline]
    assert results[crossing] == SweepResult(came_online=0, went_offline=1)
    assert ticks[crossing] - TICK <= start + window < ticks[crossing]
    assert await offline_changes() == [(quiet, start + window)]
    assert await reported_online() == {chatty}


async def test_a_device_back_after_going_silent_arrives_again(
    app: Starlette, admin: SignedInClient, start: datetime, window: timedelta
) -> None:
    (device,) = await scanners(admin, 1)
    hear(app, [device], start)
    assert (await sweep(app, start)).came_online == 1
    assert (await sweep(app, start + window + TICK)).went_offline == 1

    hear(app, [device], start + window + 2 * TICK)
    back = await sweep(app, start + window + 2 * TICK)

    assert (back.reconciled, back.came_online) == (False, 1)
    assert await reported_online() == {device}
    assert await PresenceChange.filter(device_id=device).count() == 3


async def test_two_workers_sweeping_at_once_record_each_transition_once(
    app: Starlette,
    admin: SignedInClient,
    start: datetime,
    window: timedelta,
    second_worker: PresenceStore,
) -> None:
    going = await scanners(admin, 30)
    staying = await scanners(admin, 30)
    hear(app, [*going, *staying], start)
    await flush(app, start)
    assert (await sweep(app, start)).came_online == 60
    assert (await sweep(app, start + window - TICK)).reconciled
    arriving = await scanners(admin, 30)
    later = start + window + TICK
    hear(app, [*staying, *arriving], later - timedelta(seconds=1))
    # The second worker reads Redis: what this process heard must be there first.
    await asyncio.sleep(0.25)

    results = await asyncio.gather(sweep(app, later), sweep(app, later, store=second_worker))

    assert not any(r.reconciled for r in results)
    assert sum(r.went_offline for r in results) == len(going)
    assert sum(r.came_online for r in results) == len(arriving)
    assert await offline_changes() == sorted((d, start + window) for d in going)
    assert await PresenceChange.filter(online=True).count() == 90
    assert await OutboxEvent.filter(type="device.offline").count() == len(going)
    assert await reported_online() == {*staying, *arriving}


@pytest.mark.redis
async def test_a_flushed_redis_is_reconciled_on_the_next_pass(
    app: Starlette, admin: SignedInClient, start: datetime, settings: Settings
) -> None:
    fleet = await scanners(admin, 4)
    hear(app, fleet, start)
    await asyncio.sleep(0.25)
    assert (await sweep(app, start)).came_online == 4
    assert not (await sweep(app, start + TICK)).reconciled
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    try:
        # One device's heartbeats gone: a boundary pass cannot tell.
        await redis.zrem(PRESENCE_KEY, fleet[0])
        assert await sweep(app, start + 2 * TICK) == SweepResult(0, 0)
        await redis.flushdb()
    finally:
        await redis.aclose()
    hear(app, fleet[1:], start + 3 * TICK)

    result = await sweep(app, start + 3 * TICK)

    assert result.reconciled
    assert result == SweepResult(came_online=0, went_offline=1)
    assert await reported_online() == set(fleet[1:])
    assert not (await sweep(app, start + 4 * TICK)).reconciled


async def test_a_row_whose_last_seen_crosses_the_edge_unknown_to_the_store_goes_offline(
    app: Starlette, admin: SignedInClient, start: datetime, window: timedelta
) -> None:
    assert await sweep(app, start) == SweepResult(0, 0)
    heard_at = start - window + 2 * TICK
    # Written by a flush from a store since lost, say.
    (device,) = await scanners(admin, 1, reported_online=True, last_seen_at=heard_at)

    still = await sweep(app, start + TICK)
    crossed = await sweep(app, start + 3 * TICK)

    assert (still.reconciled, still.went_offline) == (False, 0)
    assert (crossed.reconciled, crossed.went_offline) == (False, 1)
    assert await offline_changes() == [(device, heard_at + window)]


async def test_forgetting_arrivals_keeps_those_heard_since_as_new_arrivals(
    app: Starlette, start: datetime
) -> None:
    store = runtime(app).presence
    silent, back = str(uuid4()), str(uuid4())
    hear(app, [silent, back], start)
    await asyncio.sleep(0.25)
    hear(app, [back], start + 2 * TICK)
    await asyncio.sleep(0.25)

    await store.forget_arrivals(
        [silent, back], silent_before=(start + TICK).timestamp(), now=clock.now().timestamp()
    )

    assert await store.arrived_since((start + 2 * TICK).timestamp()) == {back}
    assert await store.arrived_since(float("-inf")) == {back}
