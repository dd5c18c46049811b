"""An admin connects the admin app by QR code on the Mobile app page, then revokes it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import MobileAppPage, SignInPage
from tests.harness import ServerProcess
from tests.scanner import bearer

pytestmark = pytest.mark.browser


def _sign_in_admin(page: Page, server: ServerProcess) -> MobileAppPage:
    SignInPage(page).open("/admin/mobile-app").sign_in(*server.first_admin())
    expect(page).to_have_url(re.compile(r"^[^?]*/admin/mobile-app$"))
    return MobileAppPage(page)


def _exchange(payload: dict[str, str], device_name: str) -> httpx.Response:
    """What the admin app does with the scanned payload."""
    return httpx.post(
        payload["apiBaseUrl"] + "/admin/app/exchange-token",
        json={
            "token": payload["token"],
            "deviceName": device_name,
            "platform": "android",
            "deviceIdentifier": "f3a9c2e18b7d4a60",
        },
        timeout=10,
    )


def test_empty_page_explains_itself(page: Page, server: ServerProcess) -> None:
    mobile = _sign_in_admin(page, server)

    expect(mobile.empty_state()).to_contain_text("No phone or tablet connected")
    expect(mobile.empty_state()).to_contain_text("Generate QR Code")
    expect(page.get_by_test_id("hints")).to_contain_text("Never share the QR code")
    expect(page.get_by_role("link", name="Mobile app")).to_have_attribute("aria-current", "page")


def test_generated_qr_code_scans_and_counts_down(
    page: Page, server: ServerProcess, tmp_path: Path
) -> None:
    mobile = _sign_in_admin(page, server)

    card = mobile.generate_qr_code()

    expect(mobile.countdown()).to_have_text(re.compile(r"^(5:00|4:5\d)$"))
    first = mobile.countdown().inner_text()
    expect(mobile.countdown()).not_to_have_text(first, timeout=3_000)
    expect(card.get_by_test_id("app-qr-status")).to_contain_text("Waiting for the app")
    payload = json.loads(mobile.scan_qr(tmp_path))
    assert payload == {
        "token": payload["token"],
        "apiBaseUrl": server.url + "/api/v1",
        "logoUrl": None,
        "siteName": "Polaris",
    }
    assert len(payload["token"]) == 43


def test_connected_device_is_listed_and_revoked_after_confirmation(
    page: Page, server: ServerProcess, tmp_path: Path
) -> None:
    mobile = _sign_in_admin(page, server)
    mobile.generate_qr_code()
    payload = json.loads(mobile.scan_qr(tmp_path))

    exchanged = _exchange(payload, "Ada's Pixel")
    assert exchanged.status_code == 200, exchanged.text
    access = bearer(exchanged.json()["accessToken"])

    expect(page.get_by_test_id("app-connected")).to_have_text("Connected: Ada's Pixel")
    row = mobile.row_for("Ada's Pixel")
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_contain_text("Android")
    expect(row).to_contain_text("127.0.0.1")
    expect(mobile.empty_state()).to_have_count(0)

    mobile.revoke_access("Ada's Pixel", confirm=False)
    expect(row).to_be_visible()
    devices = httpx.get(f"{server.url}/api/v1/admin/app/devices", headers=access, timeout=10)
    assert devices.status_code == 200

    mobile.revoke_access("Ada's Pixel", confirm=True)
    expect(mobile.empty_state()).to_be_visible()
    expect(mobile.device_rows()).to_have_count(0)
    refused = httpx.get(f"{server.url}/api/v1/admin/app/devices", headers=access, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"
