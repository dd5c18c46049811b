"""An admin registers scanners through the console while a phone plays its part over HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from simulator.protocol import POLL, REGISTER, PkcePair
from tests.browser.pages import DevicePage, DevicesPage, SignInPage
from tests.harness import ServerProcess, run_cli
from tests.scanner import PUSH_TOKEN, scan_body, typed_body

pytestmark = pytest.mark.browser


def _sign_in_admin(page: Page, server: ServerProcess) -> None:
    SignInPage(page).open("/").sign_in(*server.first_admin())
    expect(page).to_have_url(re.compile(r"/admin/devices$"))


def _phone_post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=10)


def test_register_by_qr_then_inspect_and_deregister(
    page: Page, server: ServerProcess, tmp_path: Path
) -> None:
    _sign_in_admin(page, server)
    expect(page.get_by_test_id("empty-state")).to_contain_text("No devices yet")

    dialog = DevicesPage(page).register_device()
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", dialog.code())
    expect(dialog.dialog.get_by_test_id("countdown")).to_have_text(re.compile(r"^(60|59|58) s$"))
    uri = dialog.scan_qr(tmp_path)
    assert uri.startswith("polaris://pair?code=" + dialog.code().replace("-", ""))
    assert f"origin={server.url.replace(':', '%3A').replace('/', '%2F')}" in uri

    paired = _phone_post(server, REGISTER, scan_body(uri, label="Dock 7"))
    assert paired.status_code == 201, paired.text
    link = dialog.paired_link()
    expect(link).to_have_text("Dock 7")
    link.click()

    device = DevicePage(page)
    expect(page.get_by_test_id("device-label")).to_have_text("Dock 7")
    identity = device.identity()
    assert "admin@example.com" in identity
    assert "iPhone15,2" in identity
    expect(page.get_by_test_id("push-token")).to_have_text("…" + PUSH_TOKEN[-8:])
    expect(device.token_rows()).to_have_count(1)
    expect(page.get_by_test_id("device-audit")).to_contain_text("device.registered")

    device.deregister()
    expect(device.token_rows().first).to_contain_text("revoked")
    DevicesPage(page).open()
    expect(page.get_by_test_id("empty-state")).to_be_visible()


def test_typed_code_needs_approval_with_matching_check_code(
    page: Page, server: ServerProcess
) -> None:
    _sign_in_admin(page, server)
    dialog = DevicesPage(page).register_device()
    phone = PkcePair.generate()
    pending = _phone_post(server, REGISTER, typed_body(dialog.code(), pkce=phone, label="Mac mini"))
    assert pending.status_code == 202
    check_code = pending.json()["checkCode"]

    card = dialog.wait_for_pending_device()
    expect(card.get_by_test_id("check-code")).to_have_text(check_code)
    expect(card).to_contain_text("Mac mini")
    expect(card).to_contain_text("127.0.0.1")
    card.get_by_label("push").uncheck()
    card.get_by_role("button", name="Approve").click()

    poll_body = {"pairingId": pending.json()["pairingId"], "codeVerifier": phone.verifier}
    collected = _phone_post(server, POLL, poll_body)
    assert collected.status_code == 201, collected.text
    assert collected.json()["capabilities"] == ["scan"]
    expect(dialog.paired_link()).to_have_text("Mac mini")


def test_rejected_device_and_a_fresh_code(page: Page, server: ServerProcess) -> None:
    _sign_in_admin(page, server)
    dialog = DevicesPage(page).register_device()
    first_code = dialog.code()
    pending = _phone_post(server, REGISTER, typed_body(first_code))
    card = dialog.wait_for_pending_device()
    card.get_by_role("button", name="Reject").click()
    expect(dialog.status()).to_contain_text("You rejected this device.")
    dialog.dialog.get_by_role("button", name="New code").click()
    expect(dialog.dialog.get_by_test_id("pairing-code")).not_to_have_text(first_code)
    assert pending.status_code == 202


def test_operator_sees_the_fleet_read_only(page: Page, server: ServerProcess) -> None:
    created = run_cli(
        [
            "create-user",
            "--email",
            "ops@example.com",
            "--role",
            "operator",
            "--password",
            "operator-password-1",
        ],
        server.env,
    )
    assert created.returncode == 0
    SignInPage(page).open("/").sign_in("ops@example.com", "operator-password-1")
    expect(page.get_by_test_id("empty-state")).to_contain_text("Only admins can register devices.")
    expect(page.get_by_test_id("register-device")).to_have_count(0)
