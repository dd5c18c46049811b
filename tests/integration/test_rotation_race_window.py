"""The rotation race window (`ROTATION_RACE_WINDOW_SECONDS`): a rotated-out device pair or
admin-app refresh token presented within it answers 409 and leaves an audit row naming the
device, the address and how long ago the rotation was; after it, the same replay is reuse and
revokes. The clock is frozen at the rotation and driven from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from app import clock
from app.models import AuditEvent
from simulator.admin import AdminAppTokens
from simulator.protocol import ROTATE, TOKEN, Credentials, DeviceApi
from tests.admin_phone import PHONE_IP, refresh
from tests.factories import SignedInClient
from tests.wire import assert_problem

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

DEVICE_REPLAY = "device.token.replayed_in_race_window"
APP_REPLAY = "app.refresh.replayed_in_race_window"


def window(seconds: int) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "settings", [{"rotation_race_window_seconds": seconds}], indirect=True, ids=[f"{seconds}s"]
    )


@dataclass(frozen=True)
class RotatedPair:
    old: Credentials
    current: Credentials


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    with clock.frozen():
        yield


@pytest.fixture
async def rotated_pair(
    frozen_clock: None, device_api: DeviceApi, device: Credentials
) -> RotatedPair:
    """The device rotated its pair at this frozen instant."""
    return RotatedPair(device, await device_api.rotate(device))


@pytest.fixture
async def refreshed_phone(
    frozen_clock: None, device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> tuple[str, str]:
    """The admin's phone refreshed at this frozen instant: (old, current) refresh tokens."""
    renewed = await refresh(device_client, phone.refresh_token)
    assert renewed.status_code == 200, renewed.text
    return phone.refresh_token, str(renewed.json()["refreshToken"])


PATHS = pytest.mark.parametrize("path", [TOKEN, ROTATE])


# -- device credential pairs ------------------------------------------------------------------


@window(3)
@PATHS
async def test_a_rotated_pair_replayed_inside_a_3s_window_is_a_conflict_and_audited(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    rotated_pair: RotatedPair,
    path: str,
) -> None:
    clock.advance(timedelta(seconds=2.9))

    raced = await device_client.post(path, json=rotated_pair.old.wire())

    assert_problem(raced, 409, "conflict")
    detail = await admin.api.device(rotated_pair.old.device_id)
    # Rotated at one frozen instant, the two rows share an issue time: told apart by state.
    ids = {t["state"]: t["tokenId"] for t in detail["tokens"]}
    assert sorted(ids) == ["active", "rotated"]
    new_id, old_id = ids["active"], ids["rotated"]
    event = await AuditEvent.get(action=DEVICE_REPLAY)
    assert (event.target_type, event.target_id) == ("device", rotated_pair.old.device_id)
    assert (event.actor_type, event.actor_id, event.ip) == (
        "device",
        rotated_pair.old.device_id,
        PHONE_IP,
    )
    assert event.metadata == {
        "deviceId": rotated_pair.old.device_id,
        "tokenId": old_id,
        "replacedByTokenId": new_id,
        "rotatedSecondsAgo": 2.9,
        "raceWindowSeconds": 3,
    }
    for secret in (*rotated_pair.old.wire().values(), *rotated_pair.current.wire().values()):
        if secret != rotated_pair.old.device_id:
            assert secret not in str(event.metadata)
    # The device keeps working with the pair it rotated to.
    assert (await device_api.access_token(rotated_pair.current)).token
    assert await AuditEvent.filter(action="device.token.reuse_detected").count() == 0


@window(3)
@PATHS
async def test_a_rotated_pair_replayed_past_a_3s_window_is_reuse(
    device_client: httpx.AsyncClient, rotated_pair: RotatedPair, path: str
) -> None:
    clock.advance(timedelta(seconds=3.1))

    replayed = await device_client.post(path, json=rotated_pair.old.wire())

    assert_problem(replayed, 401, "token_revoked")
    current = await device_client.post(TOKEN, json=rotated_pair.current.wire())
    assert_problem(current, 401, "token_revoked")
    reuse = await AuditEvent.get(action="device.token.reuse_detected")
    assert reuse.ip == PHONE_IP
    assert await AuditEvent.filter(action=DEVICE_REPLAY).count() == 0


@window(0)
@PATHS
async def test_with_no_window_every_replay_of_a_rotated_pair_is_reuse(
    device_client: httpx.AsyncClient, rotated_pair: RotatedPair, path: str
) -> None:
    replayed = await device_client.post(path, json=rotated_pair.old.wire())

    assert_problem(replayed, 401, "token_revoked")
    assert await AuditEvent.filter(action="device.token.reuse_detected").count() == 1


async def test_every_loser_of_a_rotation_race_leaves_an_audit_row(
    device_client: httpx.AsyncClient, device: Credentials
) -> None:
    answers = await asyncio.gather(
        *(device_client.post(ROTATE, json=device.wire()) for _ in range(6))
    )

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 5, statuses
    replays = await AuditEvent.filter(action=DEVICE_REPLAY)
    assert len(replays) == 5
    assert all(0 <= event.metadata["rotatedSecondsAgo"] < 10 for event in replays)


# -- admin-app refresh tokens -----------------------------------------------------------------


@window(3)
async def test_a_rotated_refresh_token_replayed_inside_a_3s_window_is_a_conflict_and_audited(
    device_client: httpx.AsyncClient, phone: AdminAppTokens, refreshed_phone: tuple[str, str]
) -> None:
    old, current = refreshed_phone
    clock.advance(timedelta(seconds=2.9))

    raced = await refresh(device_client, old)

    assert_problem(raced, 409, "conflict")
    event = await AuditEvent.get(action=APP_REPLAY)
    assert (event.target_type, event.target_id, event.ip) == ("device", phone.device_id, PHONE_IP)
    assert event.metadata["deviceId"] == phone.device_id
    assert event.metadata["rotatedSecondsAgo"] == 2.9
    assert event.metadata["raceWindowSeconds"] == 3
    assert event.metadata["replacedByTokenId"] is not None
    assert old not in str(event.metadata)
    assert current not in str(event.metadata)
    # The connection stays: its current refresh token still works.
    assert (await refresh(device_client, current)).status_code == 200


@window(3)
async def test_a_rotated_refresh_token_replayed_past_a_3s_window_revokes_the_app(
    device_client: httpx.AsyncClient, refreshed_phone: tuple[str, str]
) -> None:
    old, current = refreshed_phone
    clock.advance(timedelta(seconds=3.1))

    assert_problem(await refresh(device_client, old), 401, "token_revoked")
    assert_problem(await refresh(device_client, current), 401, "token_revoked")
    assert await AuditEvent.filter(action="app.refresh.reuse_detected").count() == 1
    assert await AuditEvent.filter(action=APP_REPLAY).count() == 0


@window(0)
async def test_with_no_window_every_replay_of_a_refresh_token_is_reuse(
    device_client: httpx.AsyncClient, refreshed_phone: tuple[str, str]
) -> None:
    old, _ = refreshed_phone

    assert_problem(await refresh(device_client, old), 401, "token_revoked")
    assert await AuditEvent.filter(action="app.refresh.reuse_detected").count() == 1
