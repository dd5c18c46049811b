"""An admin tours the console of a live warehouse fleet; each stop is a documentation
screenshot (tests/browser/screenshots.py), taken once the page shows what the docs show."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.admin_phone import app_body
from tests.browser.live_fleet import LOADING_DOCK_IPAD, WAREHOUSE, LiveFleet
from tests.browser.pages import (
    AuditLogPage,
    DevicePage,
    DevicesPage,
    MobileAppPage,
    SignInPage,
)
from tests.browser.screenshots import Screenshots
from tests.harness import ServerProcess, base_env

pytestmark = pytest.mark.browser

# Heartbeats every 5 s and offline 15 s after the last one, so one tour sees devices in
# both states; the presence sweep and the typed-code poll are quick so the pages catch up.
LIVE_FLEET_SETTINGS = {
    "HEARTBEAT_INTERVAL_SECONDS": "5",
    "HEARTBEAT_ONLINE_WINDOW_SECONDS": "15",
    "HEARTBEATS_PER_DEVICE": "60/minute",
    "PRESENCE_SWEEP_EVERY_SECONDS": "1",
    "PAIRING_POLL_INTERVAL_SECONDS": "1",
}
SECONDS_LEFT = re.compile(r"^[1-9]\d* s$")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """conftest's real server, with the live fleet's timings."""
    process = ServerProcess(tmp_path, base_env(tmp_path, **LIVE_FLEET_SETTINGS)).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.timeout(180)
def test_console_tour_of_a_live_fleet_saves_the_screenshots(
    page: Page, server: ServerProcess, screenshots: Screenshots, tmp_path: Path
) -> None:
    with LiveFleet(server.url) as fleet:
        fleet.enrol(WAREHOUSE, admin=server.first_admin())
        SignInPage(page).open("/").sign_in(*server.first_admin())
        expect(page).to_have_url(re.compile(r"/admin/devices$"))

        _connect_the_admin_app(page, server, screenshots, tmp_path)
        _register_a_typed_code_with_approval(page, fleet, screenshots, tmp_path)
        _front_desk_iphone(page, fleet, screenshots)
        _fleet_online_and_offline(page, screenshots)
        # Last, so the newest rows are the typed pairing's, as the runbook shows them.
        _audit_log(page, screenshots)
    assert fleet.errors == []


def _connect_the_admin_app(
    page: Page, server: ServerProcess, screenshots: Screenshots, workdir: Path
) -> None:
    mobile = MobileAppPage(page).open()
    mobile.generate_qr_code()
    payload = json.loads(mobile.scan_qr(workdir))
    exchanged = httpx.post(
        payload["apiBaseUrl"] + "/admin/app/exchange-token",
        json=app_body(payload["token"]),
        timeout=10,
    )
    assert exchanged.status_code == 200, exchanged.text
    expect(page.get_by_test_id("app-connected")).to_have_text("Connected: Ada's iPhone")
    # Reopened, the page shows the connection alone, without the used QR code.
    mobile.open()
    expect(mobile.row_for("Ada's iPhone")).to_contain_text("127.0.0.1")
    screenshots.take(page, "mobile-app")


def _register_a_typed_code_with_approval(
    page: Page, fleet: LiveFleet, screenshots: Screenshots, workdir: Path
) -> None:
    dialog = DevicesPage(page).open().register_device()
    code = dialog.code()
    assert dialog.scan_qr(workdir).startswith("polaris://pair?code=" + code.replace("-", ""))
    expect(dialog.status()).to_contain_text("Waiting for the device")
    expect(dialog.dialog.get_by_test_id("countdown")).to_have_text(SECONDS_LEFT)
    screenshots.take(page, "register-dialog")

    typed = fleet.type_code(LOADING_DOCK_IPAD, code)
    card = dialog.wait_for_pending_device()
    expect(card.get_by_test_id("check-code")).to_have_text(typed.check_code.result(timeout=10))
    expect(card).to_contain_text(LOADING_DOCK_IPAD.label)
    expect(card.get_by_role("button", name="Approve")).to_be_visible()
    expect(dialog.dialog.get_by_test_id("countdown")).to_have_text(SECONDS_LEFT)
    screenshots.take(page, "pending-approval")

    card.get_by_role("button", name="Approve").click()
    expect(dialog.paired_link()).to_have_text(LOADING_DOCK_IPAD.label)
    assert typed.device_id.result(timeout=15) == fleet.device_ids[LOADING_DOCK_IPAD.label]


def _front_desk_iphone(page: Page, fleet: LiveFleet, screenshots: Screenshots) -> None:
    device = DevicePage(page).open(fleet.device_ids["Front desk iPhone"])
    expect(device.label()).to_have_text("Front desk iPhone")
    expect(device.status()).to_have_text("Online")
    expect(page.get_by_test_id("identity")).to_contain_text("iPhone16,1")
    expect(device.token_rows()).to_have_count(1)
    expect(device.token_rows().first).to_contain_text("active")
    expect(page.get_by_test_id("presence-history")).to_contain_text("came online", timeout=15_000)
    screenshots.take(page, "device-detail")


def _fleet_online_and_offline(page: Page, screenshots: Screenshots) -> None:
    devices = DevicesPage(page).open()
    expect(devices.rows()).to_have_count(len(WAREHOUSE) + 1)
    expect(devices.row_for(LOADING_DOCK_IPAD.label)).to_contain_text("Online")
    for member in WAREHOUSE:
        # The silent ones drop out of the online window while the tour goes on.
        expect(devices.row_for(member.identity.label)).to_contain_text(
            "Online" if member.online else "Offline", timeout=30_000
        )
    expect(page.get_by_test_id("register-device")).to_be_visible()
    screenshots.take(page, "devices-page")


def _audit_log(page: Page, screenshots: Screenshots) -> None:
    audit = AuditLogPage(page).open()
    expect(audit.rows().first).to_contain_text("device.token.issued")
    expect(audit.rows().first).to_contain_text("admin@example.com")
    expect(page.get_by_test_id("audit")).to_contain_text("pairing.approved")
    screenshots.take(page, "audit-log")
