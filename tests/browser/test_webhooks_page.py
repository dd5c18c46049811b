"""An admin adds a webhook endpoint on the Webhooks page, keeps the secret shown once, sends a
test event to a real receiver and finds it in the delivery log; an operator only looks."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from standardwebhooks import Webhook

from tests.browser.pages import SignInPage
from tests.browser.screenshots import Screenshots
from tests.harness import ServerProcess, base_env, run_cli

pytestmark = pytest.mark.browser

OPERATOR = ("ops@example.com", "operator-password-1")


@dataclass
class Receiver:
    """A webhook receiver on loopback: records what it is sent, answers 204."""

    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{http.server_port}/hooks/polaris", got)
    finally:
        http.shutdown()
        http.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The embedded server, allowed to deliver to the receiver on loopback, its delivery
    jobs every second."""
    env = base_env(
        tmp_path, WEBHOOK_ALLOW_PRIVATE_NETWORKS="true", WEBHOOK_DELIVERY_EVERY_SECONDS="1"
    )
    process = ServerProcess(tmp_path, env).start()
    try:
        yield process
    finally:
        process.stop()


def _open_webhooks(page: Page, email: str, password: str) -> None:
    SignInPage(page).open("/admin/webhooks").sign_in(email, password)
    expect(page).to_have_url(re.compile(r"^[^?]*/admin/webhooks$"))
    expect(page.get_by_role("link", name="Webhooks")).to_have_attribute("aria-current", "page")


def test_admin_adds_an_endpoint_keeps_its_secret_and_sees_a_test_event_delivered(
    page: Page, server: ServerProcess, receiver: Receiver, screenshots: Screenshots
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _open_webhooks(page, *server.first_admin())
    expect(page.get_by_test_id("empty-state")).to_contain_text("No webhook endpoints yet")

    page.get_by_label("URL").fill(receiver.url)
    expect(page.get_by_role("checkbox", name="All events")).to_be_checked()
    page.get_by_label("Description").fill("Ticketing")
    page.get_by_role("button", name="Add endpoint").click()

    card = page.get_by_test_id("webhook-secret-card")
    expect(card).to_contain_text("shown this once and never again")
    secret = page.get_by_test_id("webhook-secret").inner_text()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret), secret
    page.get_by_test_id("copy-secret").click()
    expect(page.get_by_test_id("copy-secret")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    row = page.get_by_test_id("webhook-endpoints").locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(receiver.url)
    expect(row).to_contain_text("All events")
    page.evaluate("window.scrollTo(0, 0)")
    screenshots.take(page, "webhooks")

    page.reload()
    expect(page.get_by_test_id("webhook-secret-card")).to_have_count(0)
    assert secret not in page.content()

    row.get_by_role("button", name="Send test event").click()
    expect(row.get_by_test_id("test-sent")).to_have_text("Test event sent.")
    row.get_by_role("link", name="See the delivery log").click()
    expect(page.get_by_test_id("endpoint-url")).to_have_text(receiver.url)
    delivery = page.get_by_test_id("deliveries").locator("tbody tr")
    expect(delivery).to_have_count(1)
    expect(delivery).to_contain_text("webhook.test")
    # The page re-reads itself: the delivery job's answer shows up without a reload.
    expect(delivery.get_by_test_id("delivery-result")).to_contain_text("Delivered", timeout=15_000)
    expect(delivery).to_contain_text("HTTP 204")
    screenshots.take(page, "webhook-deliveries")

    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "webhook.test"
    assert delivery.get_attribute("data-event-id") == headers["webhook-id"] == payload["id"]
    # The delivery log's address names the endpoint the test event was sent for.
    assert page.url.endswith("/admin/webhooks/" + json.loads(body)["data"]["webhookId"])


def test_an_operator_sees_endpoints_and_deliveries_but_no_write_controls(
    page: Page, server: ServerProcess, receiver: Receiver
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as admin:
        email, password = server.first_admin()
        login = admin.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        write = {"X-CSRF-Token": login.json()["csrfToken"]}
        added = admin.post(
            "/api/v1/admin/webhooks",
            json={"url": receiver.url, "events": ["device.offline"], "description": "Pager"},
            headers=write,
        )
        assert added.status_code == 201, added.text
        webhook_id = added.json()["webhookId"]
        assert (
            admin.post(f"/api/v1/admin/webhooks/{webhook_id}/test", headers=write).status_code
            == 202
        )
    created = run_cli(
        ["create-user", "--email", OPERATOR[0], "--role", "operator", "--password", OPERATOR[1]],
        server.env,
    )
    assert created.returncode == 0, created.stderr

    _open_webhooks(page, *OPERATOR)

    row = page.get_by_test_id("webhook-endpoints").locator("tbody tr")
    expect(row).to_contain_text(receiver.url)
    expect(row).to_contain_text("device.offline")
    expect(row).to_contain_text("Pager")
    expect(page.get_by_role("button")).to_have_text(["Sign out"])
    expect(page.get_by_test_id("add-endpoint-form")).to_have_count(0)

    row.get_by_role("link", name="Delivery log").click()
    expect(page.get_by_test_id("deliveries").locator("tbody tr")).to_contain_text("webhook.test")
    expect(page.get_by_role("button")).to_have_text(["Sign out"])
