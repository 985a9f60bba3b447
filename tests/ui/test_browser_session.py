"""Signing in and out in a real browser (Chromium through Playwright) against `python run.py`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import ADMIN_EMAIL, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_sign_in_shows_who_is_signed_in_and_sign_out_ends_it(page: Any) -> None:
    page.goto("/ui/profile")
    assert "/ui/login" in page.url  # sent to sign in first
    screenshot(page, "login")
    page.get_by_label("E-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().strip() == "Invalid e-mail or password"
    assert page.get_by_label("E-mail").input_value() == ADMIN_EMAIL  # kept after the error

    sign_in(page)
    page.goto("/ui/profile")
    assert page.get_by_role("heading", name="Your profile").is_visible()
    assert ADMIN_EMAIL in page.content()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/login")
    assert "You are signed out." in page.content()
    page.goto("/ui/profile")
    assert "/ui/login" in page.url


def test_the_sign_in_form_works_with_the_keyboard_alone(page: Any) -> None:
    page.goto("/ui/login")
    # The e-mail field has focus on arrival (autofocus): wait for it rather than race the page.
    page.wait_for_function("document.activeElement && document.activeElement.name === 'email'")
    page.keyboard.type(ADMIN_EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type("correct horse battery staple")
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui")
    assert "/ui/login" not in page.url


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(page: Any) -> None:
    sign_in(page)
    # The browser's own cookies, but no token: what a forged cross-site form would send.
    answer = page.request.post("/ui/logout", form={"anything": "1"})
    assert answer.status == 403
    assert "did not come from this site" in answer.text()
    page.goto("/ui/profile")
    assert page.get_by_role("heading", name="Your profile").is_visible()  # still signed in
