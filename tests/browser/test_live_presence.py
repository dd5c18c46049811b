"""Open console pages follow presence without a reload, as heartbeats come in."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from simulator.protocol import PkcePair
from tests.browser.pages import SignInPage
from tests.harness import ServerProcess
from tests.scanner import scan_body

pytestmark = pytest.mark.browser


def _pair_over_http(server: ServerProcess) -> tuple[str, str]:
    """An admin mints a code over the API and a phone scans it; returns (deviceId, JWT)."""
    email, password = server.first_admin()
    with httpx.Client(base_url=server.url, timeout=10) as admin:
        csrf = admin.post("/api/v1/auth/login", json={"email": email, "password": password})
        minted = admin.post(
            "/api/v1/admin/pairing-sessions",
            headers={"X-CSRF-Token": csrf.json()["csrfToken"]},
        ).json()
    phone = PkcePair.generate()
    paired = httpx.post(
        f"{server.url}/api/devices/register",
        json=scan_body(minted["pairingUri"], pkce=phone, label="Forklift 3"),
    ).json()
    token = httpx.post(
        f"{server.url}/api/devices/token",
        json={"deviceToken": paired["deviceToken"], "deviceSecret": paired["deviceSecret"]},
    ).json()["accessToken"]
    return paired["deviceId"], token


def test_fleet_and_device_pages_turn_online_after_a_heartbeat(
    page: Page, server: ServerProcess
) -> None:
    device_id, token = _pair_over_http(server)
    SignInPage(page).open("/").sign_in(*server.first_admin())
    expect(page).to_have_url(re.compile(r"/admin/devices$"))
    row = page.locator(f"tr[data-device-id='{device_id}']")
    expect(row).to_contain_text("Offline")

    beat = httpx.post(
        f"{server.url}/api/devices/heartbeat",
        json={"appVersion": "2.5.0"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert beat.status_code == 200, beat.text

    expect(row).to_contain_text("Online", timeout=12_000)
    expect(row).to_contain_text("2.5.0")
    row.get_by_role("link", name="Forklift 3").click()
    expect(page.get_by_test_id("device-state")).to_have_text("Online")
    # The embedded scheduler's presence sweep records the transition; the page picks it up.
    expect(page.get_by_test_id("presence-history")).to_contain_text("came online", timeout=15_000)
