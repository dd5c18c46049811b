"""Page objects: what a person sees and does, named as they would say it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from playwright.sync_api import Page, expect


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
