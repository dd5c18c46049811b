"""The open Register device dialog shows refused attempts at its code as they happen."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from simulator.protocol import REGISTER
from tests.browser.pages import DevicesPage, SignInPage
from tests.harness import ServerProcess, base_env
from tests.scanner import scan_body

pytestmark = pytest.mark.browser

STRANGER = "203.0.113.7"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) curl-impersonate/0.6"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Behind one proxy, so the stranger's address is the one its `X-Forwarded-For` names."""
    process = ServerProcess(tmp_path, {**base_env(tmp_path), "TRUSTED_PROXY_HOPS": "1"}).start()
    try:
        yield process
    finally:
        process.stop()


def test_a_wrong_proof_shows_in_the_open_dialog_with_its_address_and_client(
    page: Page, server: ServerProcess
) -> None:
    SignInPage(page).open("/").sign_in(*server.first_admin())
    expect(page).to_have_url(re.compile(r"/admin/devices$"))
    dialog = DevicesPage(page).register_device()
    code = dialog.code().replace("-", "")
    uri = f"polaris://pair?code={code}&proof={'w' * 43}&origin={server.url}"

    refused = httpx.post(
        server.url + REGISTER,
        json=scan_body(uri),
        headers={"User-Agent": AGENT, "X-Forwarded-For": STRANGER},
        timeout=10,
    )

    assert refused.status_code == 400, refused.text
    attempts = dialog.status().get_by_test_id("pairing-attempts")
    expect(attempts.get_by_test_id("attempts-summary")).to_have_text(
        f"1 failed attempt: wrong proof from {STRANGER}", timeout=10_000
    )
    row = attempts.get_by_test_id("attempt")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("wrong proof")
    expect(row).to_contain_text(STRANGER)
    expect(row).to_contain_text(AGENT)
    expect(dialog.status()).to_have_attribute("data-state", "minted")
