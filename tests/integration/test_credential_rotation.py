"""`POST /api/devices/credentials/rotate` (DESIGN §3, §5): a new pair, the old one retired."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from app import clock
from app.models import AuditEvent, DeviceToken
from app.settings import Settings
from simulator.protocol import ROTATE, TOKEN, Credentials, DeviceApi
from tests.factories import SignedInClient
from tests.scanner import heartbeat
from tests.wire import assert_problem, unverified

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")


@dataclass(frozen=True)
class Rotation:
    old_access: str
    answer: httpx.Response

    @property
    def rotated(self) -> Credentials:
        return Credentials.from_wire(self.answer.json())


@pytest.fixture
async def rotation(
    device_client: httpx.AsyncClient, device: Credentials, access_token: str
) -> Rotation:
    """The device holds an access token when it trades its pair for a new one."""
    return Rotation(access_token, await device_client.post(ROTATE, json=device.wire()))


async def test_rotation_answers_a_new_uncached_pair_for_the_same_device(
    device: Credentials, rotation: Rotation
) -> None:
    response = rotation.answer

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("no-store")
    body = response.json()
    assert set(body) == {"deviceId", "deviceToken", "deviceSecret", "expiresAtIso", "capabilities"}
    assert body["deviceId"] == device.device_id
    assert body["capabilities"] == ["scan", "push"]
    assert body["deviceToken"].startswith("pxd_")
    assert body["deviceSecret"].startswith("pxs_")
    assert body["deviceToken"] != device.device_token
    assert body["deviceSecret"] != device.device_secret


async def test_rotation_ends_the_old_pairs_access_tokens_at_once(
    device_client: httpx.AsyncClient, rotation: Rotation
) -> None:
    assert_problem(await heartbeat(device_client, rotation.old_access), 401, "token_revoked")


async def test_the_rotated_pair_trades_for_working_access_tokens(
    device_client: httpx.AsyncClient, device_api: DeviceApi, rotation: Rotation
) -> None:
    new_access = (await device_api.access_token(rotation.rotated)).token

    assert (await heartbeat(device_client, new_access)).status_code == 200


async def test_rotation_lists_the_new_pair_active_and_the_old_one_rotated(
    admin: SignedInClient, device_api: DeviceApi, device: Credentials, rotation: Rotation
) -> None:
    old_token_id = unverified(rotation.old_access)[1]["tid"]
    new_access = (await device_api.access_token(rotation.rotated)).token
    new_token_id = unverified(new_access)[1]["tid"]

    detail = await admin.api.device(device.device_id)

    assert [(t["tokenId"], t["state"]) for t in detail["tokens"]] == [
        (new_token_id, "active"),
        (old_token_id, "rotated"),
    ]
    assert detail["tokens"][0]["expiresAtIso"] == rotation.answer.json()["expiresAtIso"]


async def test_rotation_is_audited_as_the_device(
    device_api: DeviceApi, device: Credentials, rotation: Rotation
) -> None:
    old_token_id = unverified(rotation.old_access)[1]["tid"]
    new_token_id = unverified((await device_api.access_token(rotation.rotated)).token)[1]["tid"]

    event = await AuditEvent.get(action="device.token.rotated")

    assert event.metadata == {
        "deviceId": device.device_id,
        "tokenId": old_token_id,
        "newTokenId": new_token_id,
    }
    assert (event.actor_type, event.actor_id) == ("device", device.device_id)


async def test_concurrent_rotations_of_one_pair_have_exactly_one_winner(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials
) -> None:
    responses = await asyncio.gather(
        *(device_client.post(ROTATE, json=device.wire()) for _ in range(10))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    refused = {(r.status_code, r.json()["code"]) for r in responses if r.status_code != 200}
    assert refused <= {(409, "conflict"), (401, "token_revoked")}, refused
    winner = next(r.json() for r in responses if r.status_code == 200)
    active = await DeviceToken.filter(device_id=device.device_id, state="active")
    assert len(active) == 1
    assert active[0].lookup_id in winner["deviceToken"]
    assert await AuditEvent.filter(action="device.token.rotated").count() == 1
    rotated = Credentials.from_wire(winner)
    token = (await device_api.access_token(rotated)).token
    assert (await heartbeat(device_client, token)).is_success


# -- reuse of a rotated-out pair -----------------------------------------------------------


@dataclass(frozen=True)
class Rotated:
    old: Credentials
    current: Credentials
    current_access: str


@pytest.fixture
async def rotated_long_ago(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials, settings: Settings
) -> Rotated:
    """The device rotated and went on working; its race window is long over."""
    current = await device_api.rotate(device)
    current_access = (await device_api.access_token(current)).token
    assert (await heartbeat(device_client, current_access)).status_code == 200
    clock.advance(timedelta(seconds=settings.rotation_race_window_seconds))
    return Rotated(device, current, current_access)


REUSED_ON = pytest.mark.parametrize("path", [TOKEN, ROTATE])


@REUSED_ON
async def test_a_reused_rotated_secret_is_token_revoked(
    device_client: httpx.AsyncClient, rotated_long_ago: Rotated, path: str
) -> None:
    replayed = await device_client.post(path, json=rotated_long_ago.old.wire())

    assert_problem(replayed, 401, "token_revoked")


@REUSED_ON
async def test_a_reused_rotated_secret_revokes_the_devices_current_pair(
    device_client: httpx.AsyncClient, rotated_long_ago: Rotated, path: str
) -> None:
    await device_client.post(path, json=rotated_long_ago.old.wire())

    # Whoever kept a copy and the device itself both lose: the admin must pair it again.
    current = rotated_long_ago.current.wire()
    assert_problem(await device_client.post(TOKEN, json=current), 401, "token_revoked")


@REUSED_ON
async def test_a_reused_rotated_secret_ends_the_current_access_token(
    device_client: httpx.AsyncClient, rotated_long_ago: Rotated, path: str
) -> None:
    await device_client.post(path, json=rotated_long_ago.old.wire())

    refused = await heartbeat(device_client, rotated_long_ago.current_access)

    assert_problem(refused, 401, "token_revoked")


@REUSED_ON
async def test_a_reused_rotated_secret_is_audited_as_reuse_by_the_device(
    admin: SignedInClient, device_client: httpx.AsyncClient, rotated_long_ago: Rotated, path: str
) -> None:
    device_id = rotated_long_ago.old.device_id
    await device_client.post(path, json=rotated_long_ago.old.wire())

    detail = await admin.api.device(device_id)
    assert [t["state"] for t in detail["tokens"]] == ["revoked", "rotated"]
    old_id, new_id = detail["tokens"][1]["tokenId"], detail["tokens"][0]["tokenId"]
    event = await AuditEvent.get(action="device.token.reuse_detected")
    assert event.metadata == {"deviceId": device_id, "tokenId": old_id, "revokedTokenIds": [new_id]}
    assert (event.actor_type, event.actor_id) == ("device", device_id)


@pytest.fixture
async def rotated_just_now(
    device_api: DeviceApi, device: Credentials, settings: Settings
) -> Credentials:
    """The device rotated a moment ago: a request sent before it may still be in flight."""
    current = await device_api.rotate(device)
    clock.advance(timedelta(seconds=settings.rotation_race_window_seconds - 1))
    return current


@REUSED_ON
async def test_a_rotated_pair_seen_within_the_race_window_is_a_conflict(
    device_client: httpx.AsyncClient, device: Credentials, rotated_just_now: Credentials, path: str
) -> None:
    raced = await device_client.post(path, json=device.wire())

    assert_problem(raced, 409, "conflict")


@REUSED_ON
async def test_a_rotated_pair_seen_within_the_race_window_is_not_a_reuse(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    device: Credentials,
    rotated_just_now: Credentials,
    path: str,
) -> None:
    await device_client.post(path, json=device.wire())

    token = (await device_api.access_token(rotated_just_now)).token
    assert (await heartbeat(device_client, token)).is_success
    states = [t["state"] for t in (await admin.api.device(device.device_id))["tokens"]]
    assert states == ["active", "rotated"]
    assert await AuditEvent.filter(action="device.token.reuse_detected").count() == 0
