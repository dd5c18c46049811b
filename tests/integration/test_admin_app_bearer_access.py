"""The admin app's Bearer JWT on the admin API (DESIGN §6): it does what the console does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from app import clock
from app.models import AuditEvent, User
from app.models.user import Role
from simulator.admin import AUDIT, DEVICES, PAIRING_SESSIONS, AdminApi, AdminAppTokens
from simulator.protocol import POLL, REGISTER, Credentials, DeviceApi, PkcePair
from tests.factories import SignedInClient
from tests.scanner import DOCK_SCANNER, bearer, heartbeat, poll_body, typed_body
from tests.wire import assert_problem


async def test_the_app_lists_the_fleet(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    fleet = await device_client.get(DEVICES, headers=bearer(phone.access_token))

    assert fleet.status_code == 200, fleet.text
    assert [d["deviceId"] for d in fleet.json()["items"]] == [phone.device_id]


async def test_the_app_shows_a_device(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    detail = await device_client.get(
        f"{DEVICES}/{phone.device_id}", headers=bearer(phone.access_token)
    )

    assert detail.json()["kind"] == "admin_app"


async def test_the_app_reads_the_audit_log(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    listed = await device_client.get(AUDIT, headers=bearer(phone.access_token))

    assert listed.status_code == 200


async def test_the_app_mints_scanner_codes_without_a_csrf_token(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    minted = await device_client.post(PAIRING_SESSIONS, headers=bearer(phone.access_token))

    assert minted.status_code == 201, minted.text


async def test_the_app_acts_as_its_admin(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    me = await device_client.get("/api/v1/auth/me", headers=bearer(phone.access_token))

    assert me.json()["user"]["role"] == "admin"


async def test_the_jwt_carries_the_role_the_admin_has_now(
    admin: SignedInClient, device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    access = bearer(phone.access_token)

    await User.filter(id=admin.user.id).update(role=Role.OPERATOR)

    assert (await device_client.get(DEVICES, headers=access)).status_code == 200
    assert_problem(await device_client.post(PAIRING_SESSIONS, headers=access), 403, "forbidden")


async def test_the_jwt_of_a_deactivated_admin_is_not_authenticated(
    admin: SignedInClient, device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    await User.filter(id=admin.user.id).update(is_active=False)

    refused = await device_client.get(DEVICES, headers=bearer(phone.access_token))

    assert_problem(refused, 401, "not_authenticated")


# -- the scanner runbook, from the phone ---------------------------------------------------


@pytest.fixture
async def app_client(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh client: no session cookie, no CSRF token, only what the test sends."""
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def app_api(app_client: httpx.AsyncClient, phone: AdminAppTokens) -> AdminApi:
    api = AdminApi(app_client)
    api.use_bearer(phone.access_token)
    return api


async def test_the_app_mints_a_code_with_its_bearer_token_alone(
    app_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    minted = await app_client.post(PAIRING_SESSIONS, headers=bearer(phone.access_token))

    assert minted.status_code == 201, minted.text


async def test_the_app_sees_the_check_code_of_a_typed_pairing(
    app_client: httpx.AsyncClient,
    app_api: AdminApi,
    device_client: httpx.AsyncClient,
    phone: AdminAppTokens,
) -> None:
    minted = await app_api.mint_code()
    pending = await device_client.post(REGISTER, json=typed_body(minted.code))
    assert pending.status_code == 202, pending.text

    session_url = f"{PAIRING_SESSIONS}/{minted.pairing_session_id}"
    shown = (await app_client.get(session_url, headers=bearer(phone.access_token))).json()

    assert shown["pendingDevice"]["checkCode"] == pending.json()["checkCode"]


async def test_the_app_approves_a_typed_pairing_and_the_scanner_collects(
    app_client: httpx.AsyncClient,
    app_api: AdminApi,
    device_api: DeviceApi,
    device_client: httpx.AsyncClient,
    phone: AdminAppTokens,
) -> None:
    minted = await app_api.mint_code()
    pkce = PkcePair.generate()
    pending = await device_api.register_typed(minted.code, pkce=pkce, fields=DOCK_SCANNER)

    approved = await app_client.post(
        f"{PAIRING_SESSIONS}/{minted.pairing_session_id}/approve",
        json={"capabilities": ["scan"]},
        headers=bearer(phone.access_token),
    )

    assert approved.status_code == 200, approved.text
    clock.advance(timedelta(seconds=6))
    collected = await device_client.post(POLL, json=poll_body(pending.pairing_id, pkce))
    assert collected.status_code == 201, collected.text


@pytest.fixture
async def scanner_paired_from_the_app(app_api: AdminApi, device_api: DeviceApi) -> Credentials:
    """A scanner typed a code the app minted; the app approved it and the scanner collected."""
    minted = await app_api.mint_code()
    pkce = PkcePair.generate()
    pending = await device_api.register_typed(minted.code, pkce=pkce, fields=DOCK_SCANNER)
    await app_api.approve(minted.pairing_session_id, capabilities=["scan"])
    clock.advance(timedelta(seconds=6))
    return await device_api.poll(pending.pairing_id, pkce.verifier)


async def test_the_app_revokes_a_scanners_credentials(
    app_client: httpx.AsyncClient,
    app_api: AdminApi,
    device_api: DeviceApi,
    device_client: httpx.AsyncClient,
    phone: AdminAppTokens,
    scanner_paired_from_the_app: Credentials,
) -> None:
    scanner = scanner_paired_from_the_app
    scanner_jwt = (await device_api.access_token(scanner)).token
    token_id = (await app_api.device(scanner.device_id))["tokens"][0]["tokenId"]

    revoked = await app_client.post(
        f"{DEVICES}/{scanner.device_id}/tokens/{token_id}/revoke",
        headers=bearer(phone.access_token),
    )

    assert revoked.status_code == 200, revoked.text
    assert_problem(await heartbeat(device_client, scanner_jwt), 401, "token_revoked")


async def test_the_app_deregisters_a_scanner(
    app_client: httpx.AsyncClient, phone: AdminAppTokens, scanner_paired_from_the_app: Credentials
) -> None:
    deregistered = await app_client.delete(
        f"{DEVICES}/{scanner_paired_from_the_app.device_id}", headers=bearer(phone.access_token)
    )

    assert deregistered.status_code in (200, 204), deregistered.text


async def test_what_the_app_does_is_audited_as_its_admin(
    admin: SignedInClient, app_api: AdminApi, scanner_paired_from_the_app: Credentials
) -> None:
    device_id = scanner_paired_from_the_app.device_id
    token_id = (await app_api.device(device_id))["tokens"][0]["tokenId"]
    await app_api.revoke_token(device_id, token_id)
    await app_api.deregister(device_id)

    actors = await AuditEvent.filter(
        action__in=["pairing.approved", "device.token.revoked", "device.deregistered"]
    ).values_list("action", "actor_id")
    assert {action for action, _ in actors} >= {"device.token.revoked", "device.deregistered"}
    assert {actor for _, actor in actors} == {str(admin.user.id)}
