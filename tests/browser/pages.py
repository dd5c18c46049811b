"""Page objects: what a person sees and does, named as they would say it."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Locator, Page, expect


def read_qr(qr: Locator, shot: Path) -> str:
    """What zbar reads off a screenshot of the QR code on screen."""
    qr.screenshot(path=str(shot))
    decoded = subprocess.run(
        ["zbarimg", "--raw", "-q", str(shot)], capture_output=True, text=True, check=True
    )
    return decoded.stdout.strip()


@dataclass
class SignInPage:
    page: Page

    def open(self, path: str = "/") -> SignInPage:
        self.page.goto(path)
        expect(self.page).to_have_url(re.compile(r"/login(\?|$)"))
        return self

    def sign_in(self, email: str, password: str) -> None:
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()

    def error(self) -> str:
        locator = self.page.get_by_test_id("form-error")
        expect(locator).to_be_visible()
        return locator.inner_text()


@dataclass
class ConsoleHeader:
    page: Page

    def signed_in_as(self) -> str:
        locator = self.page.get_by_test_id("signed-in-as")
        expect(locator).to_be_visible()
        return locator.inner_text()

    def sign_out(self) -> None:
        self.page.get_by_test_id("sign-out").click()


@dataclass
class RegisterDialog:
    page: Page

    @property
    def dialog(self) -> Locator:
        return self.page.locator("dialog#register-dialog")

    def code(self) -> str:
        locator = self.dialog.get_by_test_id("pairing-code")
        expect(locator).to_be_visible()
        return locator.inner_text()

    def seconds_left(self) -> str:
        return self.dialog.get_by_test_id("countdown").inner_text()

    def scan_qr(self, workdir: Path) -> str:
        """Decode the QR on screen with zbar, as a phone camera would."""
        return read_qr(self.dialog.get_by_test_id("pairing-qr"), workdir / "qr.png")

    def status(self) -> Locator:
        return self.dialog.get_by_test_id("pairing-status")

    def wait_for_pending_device(self) -> Locator:
        pending = self.dialog.get_by_test_id("pending-device")
        expect(pending).to_be_visible(timeout=10_000)
        return pending

    def paired_link(self) -> Locator:
        link = self.dialog.get_by_test_id("paired").get_by_role("link")
        expect(link).to_be_visible(timeout=10_000)
        return link


@dataclass
class DevicesPage:
    page: Page

    def open(self) -> DevicesPage:
        self.page.goto("/admin/devices")
        return self

    def register_device(self) -> RegisterDialog:
        self.page.get_by_test_id("register-device").click()
        dialog = RegisterDialog(self.page)
        expect(dialog.dialog).to_be_visible()
        return dialog

    def labels(self) -> list[str]:
        return self.page.locator("[data-testid=fleet] tbody tr td:first-child").all_inner_texts()

    def rows(self) -> Locator:
        return self.page.get_by_test_id("fleet").locator("tbody tr")

    def row_for(self, label: str) -> Locator:
        return self.rows().filter(has=self.page.get_by_role("link", name=label, exact=True))


@dataclass
class DevicePage:
    page: Page

    def open(self, device_id: str) -> DevicePage:
        self.page.goto(f"/admin/devices/{device_id}")
        return self

    def label(self) -> Locator:
        return self.page.get_by_test_id("device-label")

    def status(self) -> Locator:
        return self.page.get_by_test_id("device-state")

    def identity(self) -> str:
        return self.page.get_by_test_id("identity").inner_text()

    def token_rows(self) -> Locator:
        return self.page.get_by_test_id("tokens").locator("tbody tr")

    def deregister(self) -> None:
        self.page.once("dialog", lambda confirm: confirm.accept())
        self.page.get_by_test_id("deregister").click()
        expect(self.page.get_by_test_id("device-state")).to_have_text("Deregistered")


@dataclass
class AuditLogPage:
    page: Page

    def open(self) -> AuditLogPage:
        self.page.goto("/admin/audit")
        return self

    def rows(self) -> Locator:
        return self.page.get_by_test_id("audit").locator("tbody tr")


@dataclass
class MobileAppPage:
    page: Page

    def open(self) -> MobileAppPage:
        self.page.goto("/admin/mobile-app")
        return self

    def empty_state(self) -> Locator:
        return self.page.get_by_test_id("empty-state")

    def generate_qr_code(self) -> Locator:
        self.page.get_by_role("button", name="Generate QR Code").click()
        card = self.page.get_by_test_id("app-qr-card")
        expect(card).to_be_visible()
        return card

    def countdown(self) -> Locator:
        return self.page.get_by_test_id("app-qr-countdown")

    def scan_qr(self, workdir: Path) -> str:
        """Decode the QR on screen with zbar, as the admin app's camera would."""
        return read_qr(self.page.get_by_test_id("app-qr"), workdir / "app-qr.png")

    def device_rows(self) -> Locator:
        return self.page.get_by_test_id("app-devices").locator("tbody tr")

    def row_for(self, device_name: str) -> Locator:
        return self.device_rows().filter(has_text=device_name)

    def revoke_access(self, device_name: str, *, confirm: bool) -> None:
        self.page.once("dialog", lambda d: d.accept() if confirm else d.dismiss())
        self.row_for(device_name).get_by_role("button", name="Revoke Access").click()
