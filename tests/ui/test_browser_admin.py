"""The dashboard, workspaces and admin pages in a real browser (Chromium through Playwright) against
`python run.py serve`: create a workspace, create an API key and use it against the API, add a
webhook and see its test ping delivered, and a viewer who finds no way to change anything."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.ui.conftest import ADMIN_PASSWORD, screenshot, sign_in

pytestmark = pytest.mark.browser


def _unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def _create_workspace(page: Any, name: str) -> None:
    page.goto("/ui/workspaces/new")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Description").fill("Made in the browser test")
    page.get_by_label("Time zone").select_option("Europe/Paris")
    page.get_by_label("Default hashtags").fill("#launch, oui")
    page.get_by_role("button", name="Create workspace").click()
    page.wait_for_url("**/ui/workspaces")


def test_dashboard_and_creating_a_workspace_through_the_form(page: Any) -> None:
    sign_in(page)
    page.goto("/ui")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert page.get_by_role("heading", name="Queue and workers").is_visible()
    screenshot(page, "dashboard")

    name = _unique("Browser team")
    _create_workspace(page, name)
    assert f"Workspace “{name}” created." in page.content()
    row = page.get_by_role("row").filter(has_text=name)
    assert "Europe/Paris" in row.inner_text()
    screenshot(page, "workspaces")

    row.get_by_role("link", name=re.compile("^Edit")).click()
    assert page.get_by_label("Default hashtags").input_value() == "#launch, #oui"
    page.get_by_label("Name").fill("")
    page.get_by_role("button", name="Save changes").click()
    assert page.get_by_text("Length must be between 1 and 100.").is_visible()  # the API's message, no JS check
    assert page.get_by_label("Default hashtags").input_value() == "#launch, #oui"  # values kept


def test_an_api_key_made_in_the_ui_works_against_the_api(page: Any, ui_server: Any) -> None:
    sign_in(page)
    workspace = _unique("Keyed workspace")
    _create_workspace(page, workspace)

    page.goto("/ui/admin/keys/new")
    key_name = _unique("Browser key")
    page.get_by_label("Name").fill(key_name)
    page.get_by_label("Tier").select_option("professional")
    for permission in ("posts.write", "accounts.manage"):  # all are ticked at first
        page.get_by_label(permission).uncheck()
    page.get_by_label(workspace).check()
    page.get_by_role("button", name="Create API key").click()

    secret = page.locator("#new-key").inner_text().strip()
    assert secret.startswith("pk_")
    assert page.get_by_role("button", name="Copy").is_visible()  # revealed by ui.js
    screenshot(page, "key-created")

    request = urllib.request.Request(f"{ui_server.url}/api/workspaces", headers={"X-API-Key": secret})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["X-RateLimit-Limit"] == "300"  # the professional tier
        body = json.loads(response.read())
    assert [w["name"] for w in body["data"]["workspaces"]] == [workspace]

    page.get_by_role("link", name=re.compile("back to API keys")).click()
    row = page.get_by_role("row").filter(has_text=key_name)
    assert "professional" in row.inner_text()
    assert secret not in page.content()  # never shown again
    screenshot(page, "keys")


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append({"headers": dict(self.headers), "body": self.rfile.read(length).decode()})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A tiny webhook endpoint on 127.0.0.1, in a thread; yields its URL and what it received."""
    received: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_webhook_test_ping_shows_in_its_deliveries(page: Any, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    sign_in(page)
    page.goto("/ui/admin/webhooks/new")
    page.get_by_label("URL").fill(url)
    page.get_by_label("Description").fill(_unique("Browser hook"))
    page.get_by_label("post.published").check()
    page.get_by_label("post.failed").check()
    page.get_by_role("button", name="Create webhook").click()
    secret = page.locator("#new-secret").inner_text().strip()
    assert secret.startswith("whsec_")

    page.get_by_role("link", name="Deliveries and test ping").click()
    page.get_by_role("button", name="Send test ping").click()
    deadline = time.monotonic() + 20
    while not page.locator("td code", has_text="webhook.test").count():
        assert time.monotonic() < deadline, "the test ping never showed in the deliveries log"
        time.sleep(0.5)
        page.reload()
    row = page.get_by_role("row").filter(has_text="webhook.test")
    assert "delivered" in row.inner_text() and "200" in row.inner_text()
    screenshot(page, "webhook-deliveries")

    [request] = received
    Webhook(secret).verify(request["body"], request["headers"])  # signed with the secret shown once
    assert json.loads(request["body"])["type"] == "webhook.test"

    page.goto("/ui/admin/webhooks")
    assert secret not in page.content()
    screenshot(page, "webhooks")


def test_audit_users_and_system_pages(page: Any) -> None:
    sign_in(page)
    page.goto("/ui/admin/audit")
    page.get_by_label("Action").select_option("auth.login_succeeded")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("td code", has_text="auth.login_succeeded").count() >= 1
    assert page.locator("td code", has_text="api_key.created").count() == 0
    screenshot(page, "audit")

    page.goto("/ui/admin/users")
    assert page.get_by_role("row").filter(has_text="admin@example.com").count() == 1
    screenshot(page, "users")

    page.goto("/ui/admin/system")
    assert page.get_by_role("heading", name="Health", exact=True).is_visible()
    assert "database" in page.content() and "Python" in page.content()
    screenshot(page, "system")


def test_a_viewer_finds_no_way_to_change_anything(page: Any, ui_server: Any) -> None:
    email = f"viewer-{uuid.uuid4().hex[:8]}@example.com"
    ui_server.create_user(email, "viewer")
    sign_in(page, email, ADMIN_PASSWORD)
    for path in ("/ui", "/ui/workspaces", "/ui/profile"):
        page.goto(path)
        forms = page.locator("form[method=post]")
        actions = [forms.nth(i).get_attribute("action") for i in range(forms.count())]
        assert actions == ["/ui/logout"], (path, actions)
        assert page.get_by_role("link", name="New workspace").count() == 0
    assert page.locator("nav.sidebar a[href^='/ui/admin/']").count() == 0
    for path in ("/ui/admin/users", "/ui/admin/keys", "/ui/admin/webhooks", "/ui/admin/audit", "/ui/admin/system",
                 "/ui/workspaces/new"):
        response = page.goto(path)
        assert response.status == 403, path
        assert page.locator("form[method=post]:not([action='/ui/logout'])").count() == 0
    screenshot(page, "viewer-forbidden")


def test_the_pages_fit_a_narrow_screen_and_work_with_the_keyboard(page: Any) -> None:
    sign_in(page)
    page.set_viewport_size({"width": 375, "height": 800})
    for path in ("/ui", "/ui/workspaces", "/ui/workspaces/new", "/ui/admin/users", "/ui/admin/keys",
                 "/ui/admin/keys/new", "/ui/admin/webhooks", "/ui/admin/audit", "/ui/admin/system"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)  # wide tables scroll inside their .table-wrap
    page.goto("/ui")
    screenshot(page, "dashboard-narrow")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/ui/workspaces")
    page.get_by_role("link", name="New workspace").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/workspaces/new")
    page.get_by_label("Name").focus()
    name = _unique("Keyboard team")
    page.keyboard.type(name)
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_url("**/ui/workspaces")
    assert f"Workspace “{name}” created." in page.content()
