"""`POST /api/v1/admin/app/refresh` (DESIGN §6): rotating refresh tokens, reuse revokes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.models import AuditEvent, Device, DeviceToken
from app.settings import Settings
from simulator.admin import DEVICES, AdminAppTokens
from tests.admin_phone import refresh, tokens
from tests.scanner import bearer
from tests.wire import assert_problem


@pytest.fixture
async def refreshed(device_client: httpx.AsyncClient, phone: AdminAppTokens) -> httpx.Response:
    return await refresh(device_client, phone.refresh_token)


async def test_refresh_answers_a_new_uncached_refresh_token_for_the_same_device(
    phone: AdminAppTokens, refreshed: httpx.Response
) -> None:
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["cache-control"].startswith("no-store")
    renewed = refreshed.json()
    assert renewed["deviceId"] == phone.device_id
    assert renewed["refreshToken"] != phone.refresh_token


async def test_refreshing_ends_the_access_token_of_the_previous_refresh_token(
    device_client: httpx.AsyncClient, phone: AdminAppTokens, refreshed: httpx.Response
) -> None:
    old_access = bearer(phone.access_token)

    assert_problem(await device_client.get(DEVICES, headers=old_access), 401, "token_revoked")


async def test_the_refreshed_access_token_works(
    device_client: httpx.AsyncClient, refreshed: httpx.Response
) -> None:
    access = bearer(tokens(refreshed).access_token)

    assert (await device_client.get(DEVICES, headers=access)).status_code == 200


# -- reuse and races -----------------------------------------------------------------------


@pytest.fixture
async def replayed(
    device_client: httpx.AsyncClient, phone: AdminAppTokens, refreshed: httpx.Response
) -> httpx.Response:
    """The first refresh token comes back long after it was traded."""
    assert refreshed.status_code == 200
    clock.advance(timedelta(seconds=11))
    return await refresh(device_client, phone.refresh_token)


async def test_a_replayed_refresh_token_is_token_revoked(replayed: httpx.Response) -> None:
    assert_problem(replayed, 401, "token_revoked")


async def test_a_replay_revokes_the_current_refresh_token(
    device_client: httpx.AsyncClient, refreshed: httpx.Response, replayed: httpx.Response
) -> None:
    current = refreshed.json()["refreshToken"]

    assert_problem(await refresh(device_client, current), 401, "token_revoked")


async def test_a_replay_ends_the_current_access_token(
    device_client: httpx.AsyncClient, refreshed: httpx.Response, replayed: httpx.Response
) -> None:
    current = bearer(refreshed.json()["accessToken"])

    assert_problem(await device_client.get(DEVICES, headers=current), 401, "token_revoked")


async def test_a_replay_deregisters_the_device_and_is_audited_as_reuse(
    phone: AdminAppTokens, replayed: httpx.Response
) -> None:
    device = await Device.get(id=phone.device_id)
    assert device.state == "deregistered"
    event = await AuditEvent.get(action="app.refresh.reuse_detected")
    assert event.target_id == phone.device_id
    assert event.actor_type == "device"
    assert event.metadata["revokedTokenIds"] == [
        str((await DeviceToken.get(replaced_by_id=None, device_id=device.id)).id)
    ]


async def test_a_refresh_token_seen_right_after_its_rotation_is_a_conflict_not_a_replay(
    device_client: httpx.AsyncClient, phone: AdminAppTokens, refreshed: httpx.Response
) -> None:
    assert refreshed.status_code == 200

    racing = await refresh(device_client, phone.refresh_token)

    assert_problem(racing, 409, "conflict")
    assert (await Device.get(id=phone.device_id)).state == "active"


async def test_the_winner_of_a_refresh_race_renews_as_usual(
    device_client: httpx.AsyncClient, phone: AdminAppTokens, refreshed: httpx.Response
) -> None:
    await refresh(device_client, phone.refresh_token)

    renewed = await refresh(device_client, refreshed.json()["refreshToken"])

    assert renewed.status_code == 200


async def test_concurrent_refreshes_of_one_token_have_one_winner(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    responses = await asyncio.gather(
        *(refresh(device_client, phone.refresh_token) for _ in range(5))
    )

    assert sorted(r.status_code for r in responses) == [200] + [409] * 4
    assert await DeviceToken.filter(device_id=phone.device_id, state="active").count() == 1
    assert (await Device.get(id=phone.device_id)).state == "active"


# -- lifetime ------------------------------------------------------------------------------


@pytest.fixture
def app_settings(app: Starlette) -> Settings:
    return runtime(app).settings


async def test_refresh_tokens_expire_when_unused(
    device_client: httpx.AsyncClient, phone: AdminAppTokens, app_settings: Settings
) -> None:
    clock.advance(timedelta(days=app_settings.app_refresh_token_ttl_days, seconds=1))

    assert_problem(await refresh(device_client, phone.refresh_token), 401, "token_expired")
    assert_problem(
        await device_client.get(DEVICES, headers=bearer(phone.access_token)), 401, "token_expired"
    )


async def test_each_refresh_renews_the_refresh_tokens_lifetime(
    device_client: httpx.AsyncClient, phone: AdminAppTokens, app_settings: Settings
) -> None:
    token = phone.refresh_token
    for _ in range(2):
        clock.advance(timedelta(days=app_settings.app_refresh_token_ttl_days - 1))
        response = await refresh(device_client, token)
        assert response.status_code == 200, response.text
        token = response.json()["refreshToken"]
