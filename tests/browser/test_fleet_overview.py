"""The Devices page opens with the fleet's counts, each a link to the list it counts; last seen
reads "just now" with the exact time on hover; on a phone the table is a list of cards."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, ViewportSize, expect

from simulator.protocol import HEARTBEAT, REGISTER, TOKEN, PkcePair, new_installation_id
from tests.browser.pages import DevicesPage, SignInPage
from tests.harness import ServerProcess
from tests.scanner import bearer, scan_body

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}


def _pair(server: ServerProcess, label: str) -> dict[str, str]:
    """An admin mints a code over the API and a phone scans it; returns the credentials."""
    email, password = server.first_admin()
    with httpx.Client(base_url=server.url, timeout=10) as admin:
        csrf = admin.post("/api/v1/auth/login", json={"email": email, "password": password})
        minted = admin.post(
            "/api/v1/admin/pairing-sessions",
            headers={"X-CSRF-Token": csrf.json()["csrfToken"]},
        ).json()
    paired: dict[str, str] = httpx.post(
        server.url + REGISTER,
        json=scan_body(minted["pairingUri"], pkce=PkcePair.generate(), label=label),
        timeout=10,
    ).json()
    return paired


def _access_token(server: ServerProcess, paired: dict[str, str], installation_id: str) -> str:
    answer = httpx.post(
        server.url + TOKEN,
        json={
            "deviceToken": paired["deviceToken"],
            "deviceSecret": paired["deviceSecret"],
            "installationId": installation_id,
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["accessToken"]
    return token


def _card(page: Page, key: str) -> tuple[str, str]:
    card = page.locator(f"[data-count='{key}']")
    return card.locator(".count-value").inner_text(), card.get_attribute("aria-current") or ""


def test_each_count_links_to_the_list_it_counts(page: Page, server: ServerProcess) -> None:
    heard = _pair(server, "Dock 3 iPad")
    token = _access_token(server, heard, new_installation_id())
    beat = httpx.post(server.url + HEARTBEAT, json={}, headers=bearer(token), timeout=10)
    assert beat.status_code == 200, beat.text
    copied = _pair(server, "Night shift iPhone")
    copy_token = [_access_token(server, copied, new_installation_id()) for _ in range(2)][-1]
    SignInPage(page).open("/").sign_in(*server.first_admin())
    expect(page).to_have_url(re.compile(r"/admin/devices$"))
    devices = DevicesPage(page)

    counts = {key: _card(page, key)[0] for key in ("total", "online", "offline", "clones")}
    assert counts == {"total": "2", "online": "1", "offline": "1", "clones": "1"}
    assert _card(page, "total")[1] == "true"
    seen = devices.row_for("Dock 3 iPad").locator("time").first
    expect(seen).to_have_text("just now")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", seen.get_attribute("title") or "")
    assert (seen.get_attribute("datetime") or "").endswith("Z")
    expect(devices.row_for("Night shift iPhone")).to_contain_text("never")

    for key, labels in (
        ("online", ["Dock 3 iPad"]),
        ("offline", ["Night shift iPhone"]),
        ("clones", ["Night shift iPhone"]),
    ):
        page.locator(f"[data-count='{key}']").click()
        expect(page).to_have_url(re.compile(rf"/admin/devices\?status={key}$"))
        expect(devices.rows()).to_have_count(len(labels))
        expect(devices.rows().first.get_by_role("link")).to_have_text(labels[0])
        assert _card(page, key)[1] == "true"
        assert _card(page, "total")[1] == ""
    expect(devices.row_for("Night shift iPhone").locator("[data-badge='clone']")).to_have_text(
        "suspected clone"
    )

    page.locator("[data-count='expiring']").click()
    expect(page.get_by_test_id("no-match")).to_contain_text("No credential expires within")
    page.get_by_role("link", name="Clear the filters and show all devices").click()
    expect(devices.rows()).to_have_count(2)

    # The counts follow presence as the rows do, without a reload.
    beat = httpx.post(server.url + HEARTBEAT, json={}, headers=bearer(copy_token), timeout=10)
    assert beat.status_code == 200, beat.text
    expect(page.locator("[data-count='online'] .count-value")).to_have_text("2", timeout=12_000)


def test_on_a_phone_the_table_becomes_a_list_of_cards(page: Page, server: ServerProcess) -> None:
    _pair(server, "Forklift 7 iPhone")
    SignInPage(page).open("/").sign_in(*server.first_admin())
    expect(page).to_have_url(re.compile(r"/admin/devices$"))
    row = DevicesPage(page).row_for("Forklift 7 iPhone")
    header = page.get_by_test_id("fleet").locator("thead")
    model_cell = row.locator("td.wide-only").first
    expect(header).to_be_visible()

    page.set_viewport_size(PHONE)

    expect(header).to_be_hidden()
    expect(model_cell).to_be_hidden()
    assert row.evaluate("el => getComputedStyle(el).display") == "grid"
    for shown in ("Forklift 7 iPhone", "Offline", "never"):
        expect(row).to_contain_text(shown)
    seen_label = row.locator("td.fleet-seen").evaluate(
        "el => getComputedStyle(el, '::before').content"
    )
    assert "Last seen" in seen_label
    box = row.bounding_box()
    assert box is not None
    # Each card fits the phone's width: nothing to scroll sideways.
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
