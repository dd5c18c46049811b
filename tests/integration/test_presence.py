"""Presence (DESIGN §3): online while the last heartbeat is younger than the window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest

from app import clock
from app.settings import Settings
from simulator.protocol import HEARTBEAT, Credentials
from tests.factories import PairScanner, SignedInClient
from tests.scanner import bearer
from tests.wire import iso

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")


@dataclass(frozen=True)
class Heartbeat:
    at: datetime
    window: timedelta
    answer: httpx.Response


@pytest.fixture
async def heartbeat_sent(
    device_client: httpx.AsyncClient, access_token: str, settings: Settings
) -> Heartbeat:
    """The device reported in once, at a whole second, with its versions and battery."""
    at = clock.now().replace(microsecond=0)
    with clock.frozen(at):
        answer = await device_client.post(
            HEARTBEAT,
            json={"appVersion": "2.5.0", "osVersion": "17.6", "batteryLevel": 0.42},
            headers=bearer(access_token),
        )
    return Heartbeat(at, timedelta(seconds=settings.heartbeat_online_window_seconds), answer)


async def test_a_device_that_never_sent_a_heartbeat_is_offline_and_never_seen(
    admin: SignedInClient, device: Credentials
) -> None:
    before = await admin.api.device(device.device_id)

    assert (before["online"], before["lastSeenAtIso"]) == (False, None)


async def test_heartbeat_answers_when_to_send_the_next_one(
    heartbeat_sent: Heartbeat, settings: Settings
) -> None:
    response = heartbeat_sent.answer

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"nextHeartbeatInSeconds", "credentialsExpireAtIso", "rotateAfterIso"}
    assert body["nextHeartbeatInSeconds"] == settings.heartbeat_interval_seconds
    assert body["rotateAfterIso"] < body["credentialsExpireAtIso"]


async def test_a_heartbeat_shows_the_device_online_within_the_window(
    admin: SignedInClient, device: Credentials, heartbeat_sent: Heartbeat
) -> None:
    with clock.frozen(heartbeat_sent.at + heartbeat_sent.window - timedelta(seconds=1)):
        online = await admin.api.device(device.device_id)

    assert online["online"] is True
    assert online["lastSeenAtIso"] == iso(heartbeat_sent.at)


async def test_a_heartbeat_records_the_app_and_os_versions(
    admin: SignedInClient, device: Credentials, heartbeat_sent: Heartbeat
) -> None:
    with clock.frozen(heartbeat_sent.at + heartbeat_sent.window - timedelta(seconds=1)):
        online = await admin.api.device(device.device_id)

    assert (online["appVersion"], online["osVersion"]) == ("2.5.0", "17.6")


async def test_the_device_goes_offline_once_the_window_passes_and_keeps_its_last_seen(
    admin: SignedInClient, device: Credentials, heartbeat_sent: Heartbeat
) -> None:
    with clock.frozen(heartbeat_sent.at + heartbeat_sent.window):
        offline = await admin.api.device(device.device_id)

    assert offline["online"] is False
    assert offline["lastSeenAtIso"] == iso(heartbeat_sent.at)


@dataclass(frozen=True)
class Fleet:
    heard: Credentials
    silent: Credentials
    at: datetime
    window: timedelta


@pytest.fixture
async def fleet_of_two(
    device_client: httpx.AsyncClient,
    device: Credentials,
    access_token: str,
    pair: PairScanner,
    settings: Settings,
) -> Fleet:
    """One device sent a heartbeat, the other never did; no flush job has run."""
    silent = await pair()
    at = clock.now().replace(microsecond=0)
    with clock.frozen(at):
        response = await device_client.post(HEARTBEAT, headers=bearer(access_token))
        assert response.status_code == 200, response.text
    return Fleet(device, silent, at, timedelta(seconds=settings.heartbeat_online_window_seconds))


async def listed(admin: SignedInClient, *, online: bool) -> dict[str, bool]:
    items, _ = await admin.api.devices_page(online=online)
    return {item["deviceId"]: item["online"] for item in items}


async def test_fleet_online_filter_agrees_with_presence_before_any_flush(
    admin: SignedInClient, fleet_of_two: Fleet
) -> None:
    with clock.frozen(fleet_of_two.at):
        # The database has no last-seen time for either device yet.
        assert await listed(admin, online=True) == {fleet_of_two.heard.device_id: True}
        assert await listed(admin, online=False) == {fleet_of_two.silent.device_id: False}


async def test_fleet_online_filter_lists_a_device_offline_once_its_window_passes(
    admin: SignedInClient, fleet_of_two: Fleet
) -> None:
    with clock.frozen(fleet_of_two.at + fleet_of_two.window):
        assert await listed(admin, online=True) == {}
        assert await listed(admin, online=False) == {
            fleet_of_two.heard.device_id: False,
            fleet_of_two.silent.device_id: False,
        }
