"""Accounts, schedules and analytics in a real browser against `python run.py serve` with its sandbox:
the whole OAuth dance happens in the browser (consent at the sandbox, back to the callback page)."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from typing import Any

import pytest

from tests.ui.conftest import UiServer, screenshot, sign_in

pytestmark = pytest.mark.browser


def api(server: UiServer, method: str, path: str, key: str, body: dict[str, Any] | None = None,
        workspace: str | None = None) -> dict[str, Any]:
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    if workspace:
        headers["X-Workspace-ID"] = workspace
    request = urllib.request.Request(server.url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())["data"]


@pytest.fixture(scope="module")
def workspace(ui_server: UiServer) -> dict[str, str]:
    """A workspace of this module's own (the server's database is shared), made through the API."""
    key = ui_server.cli("create-key", "--name", f"accounts-ui-{uuid.uuid4().hex[:8]}").stdout.strip().splitlines()[-1]
    ws = api(ui_server, "POST", "/api/workspaces", key,
             {"name": f"Bakery {uuid.uuid4().hex[:6]}", "settings": {"timezone": "Europe/Paris"}})["workspace"]
    return {"id": ws["id"], "name": ws["name"], "key": key}


def assert_fits_a_phone(page: Any) -> None:
    """At 375 px wide the page itself does not scroll sideways (wide tables scroll in their box)."""
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, page.url
    page.set_viewport_size({"width": 1280, "height": 900})


def test_connect_x_and_bluesky_then_disconnect_one(page: Any, workspace: dict[str, str]) -> None:
    sign_in(page)
    accounts = f"/ui/w/{workspace['id']}/accounts"
    page.goto(accounts)
    assert page.get_by_role("heading", name="Social accounts").is_visible()

    # POST -> 303 to the sandbox's consent -> 302 back to the callback page -> 303 to the list.
    page.get_by_role("button", name="Connect Twitter/X").click()
    page.get_by_role("status").filter(has_text="Connected Twitter/X account").wait_for()
    assert page.url.endswith(accounts)
    row = page.locator("tbody tr", has_text="Twitter/X")
    assert row.count() == 1 and "active" in row.inner_text()

    page.get_by_label("Handle").fill("alice.bsky.social")
    page.get_by_label("App password").fill("abcd-efgh-ijkl-mnop")
    page.get_by_role("button", name="Connect Bluesky").click()
    page.get_by_role("status").filter(has_text="Connected Bluesky account").wait_for()
    assert page.url.endswith(accounts)
    assert "abcd-efgh-ijkl-mnop" not in page.content()
    assert page.locator("tbody tr").count() == 2
    screenshot(page, "accounts")

    page.locator("tbody tr", has_text="Bluesky").get_by_role("link", name="Disconnect").click()
    assert page.get_by_role("heading", name=re.compile("Disconnect Bluesky account")).is_visible()
    assert "No scheduled post returns to draft." in page.content()
    page.get_by_role("button", name="Disconnect").click()
    page.get_by_role("status").filter(has_text="Disconnected Bluesky account").wait_for()
    assert page.locator("tbody tr").count() == 1
    assert_fits_a_phone(page)


def test_create_a_schedule_with_two_slots_and_see_its_queue(page: Any, ui_server: UiServer,
                                                            workspace: dict[str, str]) -> None:
    sign_in(page)
    base = f"/ui/w/{workspace['id']}/schedules"
    page.goto(base)
    page.get_by_role("link", name="New schedule").click()
    page.get_by_label("Name").fill("Weekday mornings")
    page.get_by_label("Time zone").select_option("Europe/Paris")
    page.locator("#slot-0-day").select_option("monday")
    page.locator("#slot-0-time").fill("09:30")
    page.locator("input[name='slot-0-platforms'][value='twitter']").check()
    page.locator("#slot-1-day").select_option("thursday")
    page.locator("#slot-1-time").fill("17:00")
    page.locator("input[name='slot-1-platforms'][value='twitter']").check()
    page.locator("input[name='slot-1-platforms'][value='linkedin']").check()
    page.get_by_role("button", name="Create the schedule").click()
    page.get_by_role("status").filter(has_text="Schedule “Weekday mornings” created.").wait_for()
    assert re.search(r"/schedules/sched_[^/]+$", page.url)
    schedule_id = page.url.rsplit("/", 1)[1]

    # Two posts queued through the API show on the schedule's page in order.
    for text in ("Croissants are back on Monday", "Thursday: sourdough workshop"):
        post = api(ui_server, "POST", "/api/posts", workspace["key"], {"content": text, "platforms": ["twitter"]},
                   workspace=workspace["id"])["post"]
        api(ui_server, "POST", f"/api/posts/{post['id']}/schedule", workspace["key"], {"schedule_id": schedule_id},
            workspace=workspace["id"])
    page.reload()
    queue = page.locator("table", has_text="Croissants").locator("tbody tr")
    assert queue.count() == 2 and "Croissants" in queue.nth(0).inner_text()
    screenshot(page, "schedule")

    page.goto(base)
    listed = page.locator("tbody tr", has_text="Weekday mornings")
    assert listed.count() == 1
    assert "Mon 09:30 (Twitter/X)" in page.content() and "Thu 17:00 (Twitter/X, LinkedIn)" in page.content()
    screenshot(page, "schedules")
    assert_fits_a_phone(page)
    page.goto(f"{base}/{schedule_id}/edit")
    assert_fits_a_phone(page)


def test_analytics_shows_svg_charts(page: Any, workspace: dict[str, str]) -> None:
    sign_in(page)
    page.goto(f"/ui/w/{workspace['id']}/analytics")
    assert page.get_by_role("heading", name="Analytics", exact=True).is_visible()
    charts = page.locator("svg.chart[role='img']")
    assert charts.count() == 3
    for index in range(3):
        assert charts.nth(index).is_visible()
    assert page.get_by_role("img", name="Impressions and engagement over time").is_visible()
    page.get_by_label("Period").select_option("7d")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*period=7d.*"))
    assert page.locator("#chart-timeline circle").count() == 14  # 7 days x impressions and engagement
    screenshot(page, "analytics")
    assert_fits_a_phone(page)
