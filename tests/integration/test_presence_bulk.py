"""Presence bookkeeping in bulk: sweeps and flushes over more devices than one statement takes.

The chunk is made small so that a hundred-odd devices cross several chunk boundaries; the
statements are the same whatever its size.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.models import Device, Kind, OutboxEvent, PresenceChange
from app.services import presence, presence_measure
from app.services.presence import SweepResult
from app.settings import Settings
from tests.factories import SignedInClient
from tests.wire import iso

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

CHUNK = 40
FLEET = 3 * CHUNK + 7
PHASES = (
    "offline_sweep",
    "flush",
    "seen_since",
    "online_sweep",
    "steady_sweep",
    "reconcile_sweep",
)


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presence, "CHUNK", CHUNK)


@pytest.fixture
def window(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.heartbeat_online_window_seconds)


@pytest.fixture
def now() -> datetime:
    return clock.now()


def scanners(admin: SignedInClient, size: int = FLEET, **fields: Any) -> list[Device]:
    """Rows of `size` scanners of the admin's, unsaved."""
    now = clock.now()
    return [
        Device(
            id=uuid4(),
            kind=Kind.SCANNER,
            label=f"Aisle {index:04d} scanner",
            platform="ios",
            owner_id=admin.user.id,
            registered_at=now - timedelta(minutes=index),
            **fields,
        )
        for index in range(size)
    ]


def hear(app: Starlette, heartbeats: dict[str, datetime]) -> None:
    for device_id, at in heartbeats.items():
        runtime(app).presence.record_heartbeat(device_id, at.timestamp())


async def sweep(app: Starlette, now: datetime) -> SweepResult:
    state = runtime(app)
    return await presence.sweep(store=state.presence, settings=state.settings, now=now)


async def flush(app: Starlette, now: datetime) -> int:
    state = runtime(app)
    return await presence.flush_last_seen(store=state.presence, settings=state.settings, now=now)


async def changes() -> Counter[tuple[str, bool, datetime]]:
    rows = await PresenceChange.all().values_list("device_id", "online", "at")
    return Counter((str(device_id), online, at) for device_id, online, at in rows)


async def events(event_type: str) -> Counter[tuple[str, str, str, str]]:
    """Each event's payload, as the webhooks will carry it."""
    rows = await OutboxEvent.filter(type=event_type)
    return Counter(
        (row.data["deviceId"], row.data["label"], row.data["kind"], row.data["atIso"])
        for row in rows
    )


async def reported_online() -> set[str]:
    return {str(i) for i in await Device.filter(reported_online=True).values_list("id", flat=True)}


async def test_a_silent_fleet_goes_offline_at_the_end_of_each_window_in_one_sweep(
    app: Starlette, admin: SignedInClient, window: timedelta, now: datetime
) -> None:
    never_heard, *heard = scanners(admin, reported_online=True)
    last_seen = {
        str(d.id): now - window - timedelta(seconds=index, microseconds=index)
        for index, d in enumerate(heard)
    }
    for device in heard:
        device.last_seen_at = last_seen[str(device.id)]
    await Device.bulk_create([never_heard, *heard])
    # It went silent at the end of its window; one never heard from, when the sweep noticed.
    silent_at = {d: at + window for d, at in last_seen.items()} | {str(never_heard.id): now}

    result = await sweep(app, now)

    assert result == SweepResult(came_online=0, went_offline=FLEET)
    assert await reported_online() == set()
    assert await changes() == Counter((d, False, at) for d, at in silent_at.items())
    assert await events("device.offline") == Counter(
        (str(d.id), d.label, "scanner", iso(silent_at[str(d.id)])) for d in (never_heard, *heard)
    )
    assert await sweep(app, now) == SweepResult(came_online=0, went_offline=0)


async def test_a_device_heard_within_the_window_by_the_store_or_the_database_stays_online(
    app: Starlette, admin: SignedInClient, window: timedelta, now: datetime
) -> None:
    fleet = scanners(admin, reported_online=True, last_seen_at=now - 2 * window)
    in_store, in_database, silent = fleet[:50], fleet[50:100], fleet[100:]
    for device in in_database:
        device.last_seen_at = now - timedelta(seconds=5)
    await Device.bulk_create(fleet)
    hear(app, {str(d.id): now - timedelta(seconds=5) for d in in_store})

    result = await sweep(app, now)

    assert result == SweepResult(came_online=0, went_offline=len(silent))
    assert await reported_online() == {str(d.id) for d in (*in_store, *in_database)}
    assert {device_id for device_id, *_ in await events("device.offline")} == {
        str(d.id) for d in silent
    }


async def test_a_heard_fleet_comes_online_at_its_heartbeats_but_not_the_deregistered(
    app: Starlette, admin: SignedInClient, now: datetime
) -> None:
    deregistered, *fleet = scanners(admin, reported_online=False)
    deregistered.deleted_at = now
    await Device.bulk_create([deregistered, *fleet])
    heartbeats = {
        str(d.id): now - timedelta(seconds=1 + index % 30, microseconds=index)
        for index, d in enumerate((deregistered, *fleet))
    }
    hear(app, heartbeats)

    result = await sweep(app, now)

    assert result == SweepResult(came_online=len(fleet), went_offline=0)
    assert await changes() == Counter((str(d.id), True, heartbeats[str(d.id)]) for d in fleet)
    assert await events("device.online") == Counter(
        (str(d.id), d.label, "scanner", iso(heartbeats[str(d.id)])) for d in fleet
    )
    assert await sweep(app, now) == SweepResult(came_online=0, went_offline=0)


async def test_three_sweeps_at_once_record_each_transition_exactly_once(
    app: Starlette, admin: SignedInClient, window: timedelta, now: datetime
) -> None:
    gone = scanners(admin, 4 * CHUNK, reported_online=True, last_seen_at=now - 2 * window)
    back = scanners(admin, 4 * CHUNK, reported_online=False)
    await Device.bulk_create([*gone, *back])
    hear(app, {str(d.id): now - timedelta(seconds=1) for d in back})

    results = await asyncio.gather(sweep(app, now), sweep(app, now), sweep(app, now))

    assert sum(r.went_offline for r in results) == len(gone)
    assert sum(r.came_online for r in results) == len(back)
    recorded = await changes()
    assert Counter((device_id, online) for device_id, online, _ in recorded.elements()) == Counter(
        [(str(d.id), False) for d in gone] + [(str(d.id), True) for d in back]
    )
    for event_type, devices in (("device.offline", gone), ("device.online", back)):
        sent = await events(event_type)
        assert Counter(device_id for device_id, *_ in sent.elements()) == Counter(
            str(d.id) for d in devices
        )


async def test_the_flush_writes_each_device_its_own_time_and_only_ever_forwards(
    app: Starlette, admin: SignedInClient, now: datetime
) -> None:
    never = scanners(admin, CHUNK + 3)
    behind = scanners(admin, CHUNK + 5, last_seen_at=now - timedelta(minutes=5))
    # Another worker already wrote a later time for these.
    ahead = scanners(admin, 9, last_seen_at=now)
    await Device.bulk_create([*never, *behind, *ahead])
    heartbeats = {
        str(d.id): now - timedelta(seconds=1, microseconds=index)
        for index, d in enumerate((*never, *behind, *ahead))
    }
    hear(app, heartbeats)

    assert await flush(app, now) == len(never) + len(behind)
    assert await flush(app, now) == 0
    stored = {str(i): at for i, at in await Device.all().values_list("id", "last_seen_at")}
    assert stored == heartbeats | {str(d.id): now for d in ahead}


async def test_two_flushes_at_once_write_each_time_once(
    app: Starlette, admin: SignedInClient, now: datetime
) -> None:
    fleet = scanners(admin, 4 * CHUNK)
    await Device.bulk_create(fleet)
    heard_at = now - timedelta(seconds=2)
    hear(app, {str(d.id): heard_at for d in fleet})

    written = await asyncio.gather(flush(app, now), flush(app, now))

    assert sum(written) == len(fleet)
    assert set(await Device.all().values_list("last_seen_at", flat=True)) == {heard_at}


async def test_the_measurement_times_every_phase_and_leaves_nothing_behind(
    app: Starlette, settings: Settings
) -> None:
    figures = await presence_measure.measure(settings=settings, devices=FLEET, rounds=2)

    assert {phase: getattr(figures, phase).count for phase in PHASES} == {
        "offline_sweep": FLEET,
        "flush": FLEET,
        "seen_since": FLEET,
        "online_sweep": FLEET,
        "steady_sweep": 0,
        "reconcile_sweep": 0,
    }
    assert all(len(getattr(figures, phase).each) == 2 for phase in PHASES)
    assert figures.chunk == CHUNK
    # At least the ids themselves.
    assert figures.memory_store_bytes > FLEET * 36
    assert (figures.redis_key_bytes is None) is (settings.redis_url is None)
    assert figures.redis_key_bytes is None or figures.redis_key_bytes > FLEET * 36
    assert await Device.all().count() == 0
    assert await OutboxEvent.all().count() == 0
    assert await runtime(app).presence.count_seen_since(0) == 0


async def test_the_measurement_refuses_a_database_with_devices_unless_allowed(
    app: Starlette, admin: SignedInClient, settings: Settings
) -> None:
    (kept,) = scanners(admin, 1)
    await kept.save()

    with pytest.raises(presence_measure.NotEmpty):
        await presence_measure.measure(settings=settings, devices=10)
    allowed = await presence_measure.measure(settings=settings, devices=10, allow_existing=True)

    assert allowed.offline_sweep.count == 10
    assert [str(i) for i in await Device.all().values_list("id", flat=True)] == [str(kept.id)]
