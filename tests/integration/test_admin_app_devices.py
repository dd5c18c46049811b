"""`GET|DELETE /api/v1/admin/app/devices` (DESIGN §6): an admin's connected phones, revocable."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.models import AuditEvent, Device
from app.models.user import Role
from simulator.admin import DEVICES, AdminAppTokens
from tests.admin_phone import APP_DEVICES, PHONE_IP, refresh, tokens
from tests.factories import SignedInClient, make_user, sign_in
from tests.scanner import bearer
from tests.wire import assert_problem


async def test_the_app_lists_itself_as_this_device(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    listed = (await device_client.get(APP_DEVICES, headers=bearer(phone.access_token))).json()

    assert [(d["deviceId"], d["thisDevice"], d["ip"]) for d in listed["items"]] == [
        (phone.device_id, True, PHONE_IP)
    ]


@dataclass(frozen=True)
class Revoked:
    tokens: AdminAppTokens  # the latest the phone holds, from a refresh
    answer: httpx.Response


@pytest.fixture
async def revoked(
    admin: SignedInClient, device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> Revoked:
    """The phone refreshed its tokens once; then the admin revoked its access."""
    renewed = tokens(await refresh(device_client, phone.refresh_token))
    answer = await admin.client.delete(
        f"{APP_DEVICES}/{phone.device_id}", headers=admin.write_headers()
    )
    return Revoked(renewed, answer)


async def test_a_revoked_app_is_listed_no_more(admin: SignedInClient, revoked: Revoked) -> None:
    assert revoked.answer.status_code == 204
    assert (await admin.client.get(APP_DEVICES)).json()["items"] == []


async def test_revoking_access_ends_the_apps_access_token_at_once(
    device_client: httpx.AsyncClient, revoked: Revoked
) -> None:
    access = bearer(revoked.tokens.access_token)

    assert_problem(await device_client.get(DEVICES, headers=access), 401, "token_revoked")


async def test_revoking_access_ends_the_apps_refresh_token(
    device_client: httpx.AsyncClient, revoked: Revoked
) -> None:
    refused = await refresh(device_client, revoked.tokens.refresh_token)

    assert_problem(refused, 401, "token_revoked")


async def test_revoking_access_deregisters_the_device_and_is_audited(
    admin: SignedInClient, phone: AdminAppTokens, revoked: Revoked
) -> None:
    event = await AuditEvent.get(action="app.device.revoked")
    assert event.actor_id == str(admin.user.id)
    assert event.metadata["deviceId"] == phone.device_id
    assert (await Device.get(id=phone.device_id)).state == "deregistered"


async def test_revocation_holds_even_if_the_presence_store_forgot_it(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    await admin.client.delete(f"{APP_DEVICES}/{phone.device_id}", headers=admin.write_headers())
    runtime(app).presence._revoked.clear()  # the database is the truth, not the cache

    response = await device_client.get(DEVICES, headers=bearer(phone.access_token))

    assert_problem(response, 401, "token_revoked")


async def test_the_app_signs_itself_out_by_revoking_its_own_device(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    access = bearer(phone.access_token)

    gone = await device_client.delete(f"{APP_DEVICES}/{phone.device_id}", headers=access)

    assert gone.status_code == 204
    assert_problem(await device_client.get(APP_DEVICES, headers=access), 401, "token_revoked")


# -- last active ---------------------------------------------------------------------------


@pytest.fixture
async def used_five_minutes_later(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> datetime:
    """The app connected, then called the API five minutes later; returns when it connected."""
    connected_at = (await Device.get(id=phone.device_id)).last_seen_at
    assert connected_at is not None
    clock.advance(timedelta(minutes=5))
    assert (await device_client.get(DEVICES, headers=bearer(phone.access_token))).status_code == 200
    return connected_at


async def test_app_requests_do_not_write_the_device_row(
    phone: AdminAppTokens, used_five_minutes_later: datetime
) -> None:
    assert (await Device.get(id=phone.device_id)).last_seen_at == used_five_minutes_later


async def test_the_listing_shows_when_the_app_was_last_active_and_from_where(
    admin: SignedInClient, used_five_minutes_later: datetime
) -> None:
    listed = (await admin.client.get(APP_DEVICES)).json()["items"][0]

    last_active = datetime.fromisoformat(listed["lastActiveAtIso"])
    assert last_active - used_five_minutes_later >= timedelta(minutes=5)
    assert listed["connectedAtIso"] < listed["lastActiveAtIso"]
    assert listed["ip"] == PHONE_IP


# -- whose devices -------------------------------------------------------------------------


@pytest.fixture
async def other_admin(app: Starlette) -> AsyncIterator[SignedInClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.99", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        yield await sign_in(browser, await make_user(Role.ADMIN, email="other@example.com"))


async def test_admins_see_only_their_own_app_devices(
    admin: SignedInClient, other_admin: SignedInClient, phone: AdminAppTokens
) -> None:
    assert (await other_admin.client.get(APP_DEVICES)).json()["items"] == []
    listed = (await admin.client.get(APP_DEVICES)).json()["items"]
    assert [d["deviceId"] for d in listed] == [phone.device_id]


async def test_admins_may_not_revoke_another_admins_app_device(
    admin: SignedInClient, other_admin: SignedInClient, phone: AdminAppTokens
) -> None:
    refused = await other_admin.client.delete(
        f"{APP_DEVICES}/{phone.device_id}", headers=other_admin.write_headers()
    )

    assert_problem(refused, 404, "not_found")
    listed = (await admin.client.get(APP_DEVICES)).json()["items"]
    assert [d["deviceId"] for d in listed] == [phone.device_id]


async def test_revoking_an_unknown_app_device_is_not_found(admin: SignedInClient) -> None:
    unknown = await admin.client.delete(
        f"{APP_DEVICES}/{uuid.uuid4()}", headers=admin.write_headers()
    )

    assert_problem(unknown, 404, "not_found")
