"""Cloned credentials: the app sends the `installationId` it made at install with its pair
on the token exchange and on rotation. The first id a pair is used with binds it; another
id on the same pair (or on another pair of a device whose install is known) flags the device
once, and with `CLONE_RESPONSE=revoke` cuts every credential of the device off at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest

from app.models import AuditEvent, Device, DeviceToken, OutboxEvent
from app.settings import CloneResponse
from simulator.protocol import ROTATE, TOKEN, Credentials, DeviceApi, new_installation_id
from tests.factories import SignedInClient
from tests.scanner import heartbeat
from tests.wire import assert_problem

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

CLONE = "device.clone_suspected"
REVOKE = pytest.mark.parametrize(
    "settings", [{"clone_response": CloneResponse.REVOKE}], indirect=True, ids=["revoke"]
)


def copied(credentials: Credentials) -> Credentials:
    """The same pair, taken to another install of the app."""
    return replace(credentials, installation_id=new_installation_id())


async def bound_installation(credentials: Credentials) -> str | None:
    lookup_id = credentials.device_token.split("_")[1]
    return (await DeviceToken.get(lookup_id=lookup_id)).installation_id


async def clone_audits(device_id: str) -> list[AuditEvent]:
    return await AuditEvent.filter(action=CLONE, target_id=device_id)


async def clone_events() -> list[dict[str, Any]]:
    return [e.data for e in await OutboxEvent.filter(type=CLONE)]


async def device_page(admin: SignedInClient, device_id: str) -> str:
    page = await admin.client.get(f"/admin/devices/{device_id}")
    assert page.status_code == 200, page.text
    return page.text


async def exchange(client: httpx.AsyncClient, credentials: Credentials) -> httpx.Response:
    return await client.post(TOKEN, json=credentials.wire())


async def test_the_first_installation_id_a_pair_is_used_with_binds_it(
    device_api: DeviceApi, device: Credentials
) -> None:
    assert device.installation_id is not None
    assert await bound_installation(device) is None

    await device_api.access_token(device)

    assert await bound_installation(device) == device.installation_id


async def test_the_same_install_again_and_again_is_no_clone(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials
) -> None:
    for _ in range(3):
        await device_api.access_token(device)
    # Any spelling of the same UUID is the same install.
    shouted = {**device.wire(), "installationId": str(device.installation_id).upper()}
    assert (await device_client.post(TOKEN, json=shouted)).status_code == 200

    assert await clone_audits(device.device_id) == []
    assert (await Device.get(id=device.device_id)).clone_suspected_at is None


async def test_a_second_install_flags_the_device_once_and_both_keep_working(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    device: Credentials,
) -> None:
    await device_api.access_token(device)
    copy = copied(device)
    assert (await admin.api.device(device.device_id))["cloneSuspectedAtIso"] is None
    assert 'data-testid="clone-suspected"' not in await device_page(admin, device.device_id)

    answers = [await exchange(device_client, copy) for _ in range(2)]
    answers.append(await exchange(device_client, device))

    assert [a.status_code for a in answers] == [200, 200, 200]
    [audited] = await clone_audits(device.device_id)
    assert audited.actor_type == "device"
    assert audited.ip == "198.51.100.23"
    assert audited.metadata["knownInstallationId"] == str(device.installation_id)[:8]
    assert audited.metadata["presentedInstallationId"] == str(copy.installation_id)[:8]
    assert audited.metadata["response"] == "flag"
    assert audited.metadata["revokedTokenIds"] == []
    [event] = await clone_events()
    assert event["deviceId"] == device.device_id
    assert event["response"] == "flag"
    assert event["presentedInstallationId"] == str(copy.installation_id)[:8]
    flagged = (await admin.api.device(device.device_id))["cloneSuspectedAtIso"]
    assert flagged is not None
    assert flagged.endswith("Z")
    assert event["atIso"] == flagged
    page = await device_page(admin, device.device_id)
    assert 'data-testid="clone-suspected"' in page
    assert f'Suspected clone</span> since <time datetime="{flagged}">' in page
    assert "Both installs can still get access tokens" in page


@REVOKE
async def test_with_revoke_a_second_install_cuts_both_off_at_once(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    device: Credentials,
) -> None:
    held = (await device_api.access_token(device)).token

    assert_problem(await exchange(device_client, copied(device)), 401, "token_revoked")

    assert_problem(await exchange(device_client, device), 401, "token_revoked")
    # Published: an access token minted before is refused on its next request.
    assert_problem(await heartbeat(device_client, held), 401, "token_revoked")
    detail = await admin.api.device(device.device_id)
    assert detail["cloneSuspectedAtIso"] is not None
    assert {t["state"] for t in detail["tokens"]} == {"revoked"}
    [audited] = await clone_audits(device.device_id)
    assert audited.metadata["response"] == "revoke"
    assert audited.metadata["revokedTokenIds"] == [t["tokenId"] for t in detail["tokens"]]
    [event] = await clone_events()
    assert event["response"] == "revoke"
    assert "neither install can connect" in await device_page(admin, device.device_id)


async def test_rotation_carries_the_install_to_the_new_pair(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials
) -> None:
    await device_api.access_token(device)

    rotated = await device_api.rotate(device)

    assert await bound_installation(rotated) == device.installation_id
    assert (await exchange(device_client, copied(rotated))).status_code == 200
    assert len(await clone_audits(device.device_id)) == 1


async def test_a_first_rotation_with_an_install_binds_the_new_pair(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials
) -> None:
    rotated = await device_api.rotate(device)

    assert await bound_installation(rotated) == device.installation_id


@REVOKE
async def test_with_revoke_a_second_install_cannot_rotate(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials
) -> None:
    await device_api.access_token(device)

    refused = await device_client.post(ROTATE, json=copied(device).wire())

    assert_problem(refused, 401, "token_revoked")
    assert await DeviceToken.filter(device_id=device.device_id).count() == 1


async def test_another_pair_of_a_device_bound_to_an_install_is_checked_on_first_use(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials
) -> None:
    """A pair with no install of its own (issued before installation ids were carried)
    is judged by the install its device's other pairs are bound to."""
    await device_api.access_token(device)
    rotated = await device_api.rotate(device)
    lookup_id = rotated.device_token.split("_")[1]
    await DeviceToken.filter(lookup_id=lookup_id).update(installation_id=None)

    assert (await exchange(device_client, copied(rotated))).status_code == 200

    [audited] = await clone_audits(device.device_id)
    assert audited.metadata["knownInstallationId"] == str(device.installation_id)[:8]
    assert await bound_installation(rotated) is None


async def test_two_installs_using_a_fresh_pair_at_once_flag_it(
    device_client: httpx.AsyncClient, device: Credentials
) -> None:
    copy = copied(device)

    answers = await asyncio.gather(exchange(device_client, device), exchange(device_client, copy))

    assert [a.status_code for a in answers] == [200, 200]
    assert await bound_installation(device) in (device.installation_id, copy.installation_id)
    assert len(await clone_audits(device.device_id)) == 1


@REVOKE
async def test_requests_without_an_installation_id_are_not_judged(
    device_client: httpx.AsyncClient, device_api: DeviceApi, device: Credentials
) -> None:
    """Apps from before installation ids existed send none, from any install."""
    await device_api.access_token(device)
    anonymous = replace(device, installation_id=None)

    assert (await exchange(device_client, anonymous)).status_code == 200
    rotated = await device_api.rotate(anonymous)
    assert (await exchange(device_client, rotated)).status_code == 200

    assert await bound_installation(rotated) == device.installation_id
    assert await clone_audits(device.device_id) == []


async def test_an_installation_id_must_be_a_uuid(
    device_client: httpx.AsyncClient, device: Credentials
) -> None:
    body = {**device.wire(), "installationId": "my-phone"}

    answer = await device_client.post(TOKEN, json=body)

    assert_problem(answer, 400, "validation_error")
    assert await bound_installation(device) is None
