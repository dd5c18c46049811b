"""A pair this process has verified is answered from memory, and never past its truth.

Each test trades the pair once (the database path, which keeps it), then again: what the
second exchange answers shows whether the kept pair was used and whether it was right to.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest

from app import clock
from app.models import DeviceToken
from app.presence.redis import REVOCATION_POLL_SECONDS
from app.settings import Settings
from simulator.protocol import TOKEN, Credentials, DeviceApi, new_installation_id
from tests.factories import EndCredentials, SignedInClient
from tests.integration.test_metrics import scrape
from tests.scrape import delta
from tests.wire import assert_problem

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

LOOKUPS = "polaris_verified_pair_lookups_total"


async def test_a_pair_verified_once_is_answered_from_memory_after(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: Credentials
) -> None:
    before = await scrape(admin.client)
    answers = [await device_client.post(TOKEN, json=device.wire()) for _ in range(3)]
    after = await scrape(admin.client)

    assert [a.status_code for a in answers] == [200, 200, 200]
    # Each answer is a fresh token for the same device and pair.
    assert len({a.json()["accessToken"] for a in answers}) == 3
    assert delta(before, after, LOOKUPS, source="database") == 1
    assert delta(before, after, LOOKUPS, source="memory") == 2


@pytest.mark.parametrize("settings", [{"verified_pairs_size": 0}], indirect=True)
async def test_with_no_room_every_exchange_reads_the_database(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: Credentials
) -> None:
    before = await scrape(admin.client)
    for _ in range(2):
        assert (await device_client.post(TOKEN, json=device.wire())).status_code == 200
    after = await scrape(admin.client)

    assert delta(before, after, LOOKUPS, source="database") == 2
    assert delta(before, after, LOOKUPS, source="memory") == 0


@pytest.mark.parametrize(
    "end_credentials", ["revoked-by-admin", "rotated", "device-deregistered"], indirect=True
)
async def test_a_kept_pair_ended_since_is_refused_at_once(
    device_client: httpx.AsyncClient, device: Credentials, end_credentials: EndCredentials
) -> None:
    assert (await device_client.post(TOKEN, json=device.wire())).status_code == 200
    await end_credentials()

    assert_problem(await device_client.post(TOKEN, json=device.wire()), 401, "token_revoked")


async def test_a_kept_pair_within_the_rotation_race_window_is_still_a_conflict(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials
) -> None:
    assert (await device_client.post(TOKEN, json=device.wire())).status_code == 200
    await device_api.rotate(device)

    assert_problem(await device_client.post(TOKEN, json=device.wire()), 409, "conflict")


async def test_a_wrong_secret_for_a_kept_pair_is_refused(
    device_client: httpx.AsyncClient, device: Credentials
) -> None:
    assert (await device_client.post(TOKEN, json=device.wire())).status_code == 200
    wrong = {**device.wire(), "deviceSecret": "pxs_" + "A" * 43}

    assert_problem(await device_client.post(TOKEN, json=wrong), 401, "invalid_credentials")
    # The right pair is still good.
    assert (await device_client.post(TOKEN, json=device.wire())).status_code == 200


async def test_a_kept_pair_past_its_lifetime_expires_in_the_database(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: Credentials,
    settings: Settings,
) -> None:
    assert (await device_client.post(TOKEN, json=device.wire())).status_code == 200
    token = await DeviceToken.get(device_id=device.device_id)

    with clock.frozen(token.expires_at + timedelta(milliseconds=100)):
        assert_problem(await device_client.post(TOKEN, json=device.wire()), 401, "token_expired")

    assert (await DeviceToken.get(id=token.id)).state == "expired"


async def test_a_kept_pair_from_another_install_is_judged_by_the_database(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: Credentials
) -> None:
    first = {**device.wire(), "installationId": new_installation_id()}
    assert (await device_client.post(TOKEN, json=first)).status_code == 200
    assert (await device_client.post(TOKEN, json=first)).status_code == 200

    clone = {**device.wire(), "installationId": new_installation_id()}
    await device_client.post(TOKEN, json=clone)

    detail = await admin.api.device(device.device_id)
    assert detail["cloneSuspectedAtIso"] is not None


@pytest.mark.redis
async def test_a_revocation_whose_message_was_lost_is_read_from_the_database(
    device_client: httpx.AsyncClient, device: Credentials
) -> None:
    """A revoking process gone between its commit and its publish: the pair is refused once
    the next read of what ended reaches this process."""
    assert (await device_client.post(TOKEN, json=device.wire())).status_code == 200
    # Ended in the database only, as that process left it: nobody hears of it.
    await DeviceToken.filter(device_id=device.device_id).update(
        state="revoked", ended_at=clock.now()
    )

    deadline = time.monotonic() + REVOCATION_POLL_SECONDS * 3
    status = 200
    while status == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        status = (await device_client.post(TOKEN, json=device.wire())).status_code
    assert status == 401
