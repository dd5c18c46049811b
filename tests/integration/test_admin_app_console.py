"""The console's Mobile app page (DESIGN §6): show a QR code, list and revoke connected apps."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.models import AuditEvent, PairingSession
from app.models.user import Role
from simulator.admin import DEVICES, AdminAppTokens
from tests.admin_phone import PHONE_IP, cancel_from_console, connect, exchange, payload_on_screen
from tests.factories import SignedInClient, make_user, sign_in
from tests.scanner import bearer
from tests.wire import assert_problem

PAGE = "/admin/mobile-app"


def htmx(admin: SignedInClient) -> dict[str, str]:
    return {**admin.write_headers(), "HX-Request": "true"}


async def test_the_page_explains_itself_while_no_app_is_connected(admin: SignedInClient) -> None:
    page = await admin.client.get(PAGE)

    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert 'data-testid="empty-state"' in page.text
    assert "Generate QR Code" in page.text
    assert "Never share the QR code" in page.text


@pytest.fixture
async def card(admin: SignedInClient) -> httpx.Response:
    """Generate QR Code pressed: the card with the QR code, swapped in by htmx."""
    return await admin.client.post(f"{PAGE}/qr", headers=htmx(admin))


async def test_the_qr_card_shows_the_qr_code_with_a_countdown_uncached(
    card: httpx.Response,
) -> None:
    assert card.status_code == 200
    assert card.headers["cache-control"] == "no-store"
    assert "<svg" in card.text
    assert 'data-countdown="' in card.text


async def test_the_status_of_a_fresh_qr_code_is_minted(
    admin: SignedInClient, card: httpx.Response
) -> None:
    session = await PairingSession.get(kind="admin_app")

    status = await admin.client.get(f"{PAGE}/qr/{session.id}")

    assert 'data-state="minted"' in status.text


async def test_the_page_lists_a_connected_app_with_revoke_access(
    admin: SignedInClient, device_client: httpx.AsyncClient, card: httpx.Response
) -> None:
    await connect(admin, device_client, deviceName="Field tablet", platform="android")

    listed = await admin.client.get(f"{PAGE}/devices")

    assert "Field tablet" in listed.text
    assert "Android" in listed.text
    assert PHONE_IP in listed.text
    assert "Revoke Access" in listed.text
    assert 'data-testid="empty-state"' not in listed.text


async def test_the_fleet_page_is_for_scanners_and_leaves_the_app_out(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    await connect(admin, device_client, deviceName="Field tablet", platform="android")

    assert "Field tablet" not in (await admin.client.get("/admin/devices")).text


# -- Revoke Access -------------------------------------------------------------------------


@pytest.fixture
async def old_phone(admin: SignedInClient, device_client: httpx.AsyncClient) -> AdminAppTokens:
    return await connect(admin, device_client, deviceName="Old phone")


async def revoke_from_console(admin: SignedInClient, device_id: str) -> httpx.Response:
    return await admin.client.post(f"{PAGE}/devices/{device_id}/revoke", headers=htmx(admin))


async def test_console_revoke_lists_the_app_no_more(
    admin: SignedInClient, old_phone: AdminAppTokens
) -> None:
    revoked = await revoke_from_console(admin, old_phone.device_id)

    assert revoked.status_code == 200
    assert "Old phone" not in revoked.text
    assert 'data-testid="empty-state"' in revoked.text


async def test_console_revoke_cuts_the_app_off(
    admin: SignedInClient, device_client: httpx.AsyncClient, old_phone: AdminAppTokens
) -> None:
    await revoke_from_console(admin, old_phone.device_id)

    refused = await device_client.get(DEVICES, headers=bearer(old_phone.access_token))

    assert_problem(refused, 401, "token_revoked")


async def test_console_revoke_pressed_twice_is_answered_and_audited_once(
    admin: SignedInClient, old_phone: AdminAppTokens
) -> None:
    await revoke_from_console(admin, old_phone.device_id)

    again = await revoke_from_console(admin, old_phone.device_id)

    assert again.status_code == 200
    assert await AuditEvent.filter(action="app.device.revoked").count() == 1


# -- the QR code's status, and Cancel ------------------------------------------------------


async def test_the_card_holds_the_token_only_inside_the_qr_code(
    device_client: httpx.AsyncClient, card: httpx.Response, tmp_path: Path
) -> None:
    # The page holds the token only inside the QR code: read it as the phone would.
    token = payload_on_screen(card.text, tmp_path)["token"]

    assert token not in card.text
    assert (await exchange(device_client, token, deviceName="Pixel 8")).status_code == 200


async def test_the_qr_status_reports_the_connection_and_refreshes_the_list(
    admin: SignedInClient, device_client: httpx.AsyncClient, card: httpx.Response, tmp_path: Path
) -> None:
    session = await PairingSession.get(kind="admin_app")
    token = payload_on_screen(card.text, tmp_path)["token"]
    await exchange(device_client, token, deviceName="Pixel 8")

    status = await admin.client.get(f"{PAGE}/qr/{session.id}")

    assert 'data-state="redeemed"' in status.text
    assert "Connected: Pixel 8" in status.text
    assert status.headers["hx-trigger"] == "app-devices-changed"


async def test_cancel_withdraws_a_qr_code(admin: SignedInClient) -> None:
    cancelled_id = await cancel_from_console(admin)

    assert (await PairingSession.get(id=cancelled_id)).state == "cancelled"
    assert 'data-state="cancelled"' in (await admin.client.get(f"{PAGE}/qr/{cancelled_id}")).text
    cancelled = await AuditEvent.get(action="app.qr.cancelled")
    assert (cancelled.metadata["reason"], cancelled.target_id) == ("admin", cancelled_id)


async def test_operators_see_the_page_without_the_generate_button(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, await make_user(Role.OPERATOR))

    page = await client.get(PAGE)

    assert page.status_code == 200
    assert "Only admins can connect the admin app." in page.text
    assert 'data-testid="generate-qr"' not in page.text
