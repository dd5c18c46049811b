from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import ConsoleHeader, SignInPage
from tests.harness import ServerProcess, run_cli

pytestmark = pytest.mark.browser


def test_admin_signs_in_with_first_run_credentials_and_out_again(
    page: Page, server: ServerProcess
) -> None:
    email, password = server.first_admin()
    sign_in = SignInPage(page).open("/")

    sign_in.sign_in(email, "not-the-password")
    assert sign_in.error() == "The email or password is incorrect."

    sign_in.sign_in(email, password)
    expect(page).to_have_url(re.compile(r"/admin/devices$"))
    header = ConsoleHeader(page)
    assert header.signed_in_as() == email
    expect(page.get_by_test_id("empty-state")).to_contain_text("No devices yet")

    header.sign_out()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/admin/devices")
    expect(page).to_have_url(re.compile(r"/login\?next=/admin/devices$"))


def test_operator_sees_role_and_deep_link_survives_sign_in(
    page: Page, server: ServerProcess
) -> None:
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
    assert created.returncode == 0, created.stderr
    sign_in = SignInPage(page).open("/admin/audit?action=user.created")
    sign_in.sign_in("ops@example.com", "operator-password-1")
    expect(page).to_have_url(re.compile(r"/admin/audit\?action=user.created$"))
    assert ConsoleHeader(page).signed_in_as() == "ops@example.com"
    expect(page.locator(".badge")).to_have_text("operator")
