"""Posts in a real browser against `python run.py serve` with its sandbox and embedded workers: write a
post with an image and its alt text, watch the X counter turn red and back, schedule it and find it
on the calendar, publish another now and see its link. Accounts are connected through the API (the
accounts pages have browser tests of their own)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.media_samples import png_bytes
from tests.ui.conftest import UiServer, screenshot, sign_in

pytestmark = pytest.mark.browser

PARIS = ZoneInfo("Europe/Paris")
CALLBACK = "https://app.example.com/oauth/callback"


def api(server: UiServer, method: str, path: str, key: str, body: dict[str, Any] | None = None,
        workspace: str | None = None) -> dict[str, Any]:
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    if workspace:
        headers["X-Workspace-ID"] = workspace
    request = urllib.request.Request(server.url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())["data"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 302 surfaces as an HTTPError carrying its Location


def consent(auth_url: str) -> dict[str, str]:
    """What the browser would do at the sandbox's consent page: it redirects at once to the callback."""
    try:
        urllib.request.build_opener(_NoRedirect).open(auth_url, timeout=15)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302, exc.read()[:500]
        location = exc.headers["Location"]
    else:
        raise AssertionError("the sandbox's consent did not redirect")
    assert location.startswith(CALLBACK)
    return dict(parse_qsl(urlsplit(location).query))


@pytest.fixture(scope="module")
def workspace(ui_server: UiServer) -> dict[str, str]:
    """A Paris workspace of this module's own, made through the API, with an X account (the sandbox's
    OAuth) and a Bluesky account (handle and app password)."""
    made = json.loads(ui_server.cli("create-key", "--name", f"posts-ui-{uuid.uuid4().hex[:8]}", "--json").stdout)
    key = made["api_key"]
    ws = api(ui_server, "POST", "/api/workspaces", key,
             {"name": f"Posts {uuid.uuid4().hex[:6]}", "settings": {"timezone": "Europe/Paris"}})["workspace"]
    started = api(ui_server, "POST", "/api/accounts", key, {"platform": "twitter", "callback_url": CALLBACK}, ws["id"])
    params = consent(started["auth_url"])
    [x] = api(ui_server, "POST", "/api/accounts/callback", key,
              {"state": params["state"], "code": params["code"]}, ws["id"])["accounts"]
    bluesky = api(ui_server, "POST", "/api/accounts", key, {
        "platform": "bluesky", "identifier": "alice.bsky.social", "app_password": "abcd-efgh-ijkl-mnop",
    }, ws["id"])["account"]
    return {"id": ws["id"], "key": key, "x": x["id"], "bluesky": bluesky["id"]}


def _x_counter(page: Any) -> Any:
    return page.locator('#counters .counter[data-network="twitter"]')


def test_write_with_an_image_watch_the_counter_schedule_and_find_it_on_the_calendar(
    page: Any, workspace: dict[str, str],
) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    base = f"/ui/w/{workspace['id']}"
    page.goto(f"{base}/compose")
    text = page.locator("#f-content")
    text.fill("Fresh bread at 9, come early")
    page.locator(f'input[name="platforms"][value="{workspace["x"]}"]').check()
    page.locator(f'input[name="platforms"][value="{workspace["bluesky"]}"]').check()
    expect(_x_counter(page)).to_have_text(re.compile(r"Twitter/X \d+/280"))
    expect(_x_counter(page)).not_to_have_class(re.compile(r"\bover\b"))

    # Past 280 weighted characters (an emoji weighs 2 on X, one grapheme on Bluesky): X turns red.
    text.fill("🥖" * 145 + " bread")
    expect(_x_counter(page)).to_have_class(re.compile(r"\bover\b"))
    expect(_x_counter(page)).to_have_text("Twitter/X 296/280")
    expect(page.locator("#network-errors")).to_contain_text("296 of 280 characters")
    bluesky = page.locator('#counters .counter[data-network="bluesky"]')
    expect(bluesky).to_have_text("Bluesky 151/300")
    expect(bluesky).not_to_have_class(re.compile(r"\bover\b"))
    screenshot(page, "composer")
    text.fill("Fresh bread at 9, come early 🥖")
    expect(_x_counter(page)).not_to_have_class(re.compile(r"\bover\b"))
    expect(page.locator("#network-errors")).not_to_contain_text("of 280 characters")

    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(r".*/posts/post_[^/]+/edit$"))
    post_id = page.url.split("/posts/")[1].split("/")[0]
    expect(page.get_by_role("status").first).to_contain_text("Draft saved")

    # An image with its alt text, then its preview.
    page.get_by_label("Alt text").fill("A golden baguette on a wooden board")
    page.set_input_files("#f-file", files=[{"name": "baguette.png", "mimeType": "image/png",
                                             "buffer": png_bytes(320, 240)}])
    page.get_by_role("button", name="Add media").click()
    page.wait_for_url(f"**{base}/posts/{post_id}/edit")
    preview = page.get_by_role("img", name="A golden baguette on a wooden board")
    expect(preview).to_be_visible()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", preview.element_handle())
    expect(page.locator("#media figcaption")).to_contain_text("Alt text: A golden baguette on a wooden board")

    # The counter is live on the edit page too (red, then back).
    text = page.locator("#f-content")
    text.fill("x" * 281)
    expect(_x_counter(page)).to_have_class(re.compile(r"\bover\b"))
    screenshot(page, "composer-edit")
    text.fill("Fresh bread at 9, come early 🥖")
    expect(_x_counter(page)).not_to_have_class(re.compile(r"\bover\b"))

    # Schedule it for 09:00 Paris time, two days from now.
    when = (datetime.now(UTC) + timedelta(days=2)).astimezone(PARIS).replace(hour=9, minute=0, second=0,
                                                                             microsecond=0)
    page.get_by_label("Date and time").fill(when.strftime("%Y-%m-%dT%H:%M"))
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")
    page.get_by_role("button", name="Schedule at this time").click()
    page.wait_for_url(f"**{base}/posts/{post_id}")
    expect(page.get_by_role("status").first).to_contain_text(f"Scheduled for {when.strftime('%Y-%m-%d')} 09:00")
    expect(page.get_by_role("img", name="A golden baguette on a wooden board")).to_be_visible()

    # On the calendar's month view, on its day at 09:00, linking to its page.
    day = when.date().isoformat()
    page.goto(f"{base}/calendar?view=month&date={day}")
    event = page.locator(f'td[data-date="{day}"] a.event[href="{base}/posts/{post_id}"]')
    expect(event).to_contain_text("09:00")
    expect(event).to_contain_text("Fresh bread at 9")
    screenshot(page, "calendar-month")
    page.get_by_role("link", name="Week", exact=True).click()
    expect(page.locator(f'td[data-date="{day}"] a.event[href="{base}/posts/{post_id}"]')).to_be_visible()
    screenshot(page, "calendar-week")
    page.set_viewport_size({"width": 375, "height": 800})
    expect(page.locator(f'td[data-date="{day}"] .day-label')).to_be_visible()  # the week stacks by day
    screenshot(page, "calendar-week-narrow")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/calendar?view=month&date={day}")
    page.locator(f'td[data-date="{day}"] a.event[href="{base}/posts/{post_id}"]').click()
    page.wait_for_url(f"**{base}/posts/{post_id}")
    expect(page.get_by_role("heading", name=re.compile("Post"))).to_contain_text("scheduled")


def test_publish_now_shows_each_networks_result_with_its_link(page: Any, workspace: dict[str, str]) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    base = f"/ui/w/{workspace['id']}"
    page.goto(f"{base}/compose")
    page.locator("#f-content").fill("Opening today! <b>not bold</b>")
    page.locator(f'input[name="platforms"][value="{workspace["x"]}"]').check()
    page.locator(f'input[name="platforms"][value="{workspace["bluesky"]}"]').check()
    page.get_by_role("button", name="Publish now").click()
    page.wait_for_url(re.compile(r".*/posts/post_[^/]+$"))
    expect(page.get_by_role("status").first).to_contain_text("Published.")
    expect(page.get_by_role("heading", name=re.compile("Post"))).to_contain_text("published")
    expect(page.locator(".post-content")).to_have_text("Opening today! <b>not bold</b>")  # shown, not rendered
    for network in ("Twitter/X", "Bluesky"):
        row = page.locator("table.results tbody tr", has_text=network)
        expect(row).to_contain_text("published")
        link = row.get_by_role("link", name=f"Open on {network}")
        expect(link).to_have_attribute("href", re.compile(r"^https?://"))
    screenshot(page, "post-page")

    page.get_by_role("link", name="← All posts").click()
    page.wait_for_url(f"**{base}/posts")
    expect(page.locator("tbody tr").first).to_contain_text("Opening today!")
    page.get_by_label("Status").select_option("published")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    screenshot(page, "posts-list")


def test_the_composer_works_without_javascript(browser: Any, ui_server: UiServer, workspace: dict[str, str]) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=ui_server.url, java_script_enabled=False)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        sign_in(page)
        base = f"/ui/w/{workspace['id']}"
        page.goto(f"{base}/compose")
        page.locator("#f-content").fill("z" * 300)
        page.locator(f'input[name="platforms"][value="{workspace["x"]}"]').check()
        expect(page.locator("#counters .counter")).to_have_count(0)  # nothing live without the script
        page.get_by_role("button", name="Schedule at this time").click()
        # Checked on submit: each error by its field, the values kept, nothing saved.
        expect(page.locator("#scheduled_at-errors")).to_contain_text("Give either scheduled_at or schedule_id")
        expect(page.locator("#network-errors")).to_contain_text("300 of 280 characters")
        expect(page.locator('#counters .counter.over[data-network="twitter"]')).to_have_text("Twitter/X 300/280")
        expect(page.locator("#f-content")).to_have_value("z" * 300)
        expect(page.locator(f'input[name="platforms"][value="{workspace["x"]}"]')).to_be_checked()
        page.locator("#f-content").fill("Short and sweet")
        page.get_by_role("button", name="Save draft").click()
        page.wait_for_url(re.compile(r".*/posts/post_[^/]+/edit$"))
        expect(page.get_by_role("status").first).to_contain_text("Draft saved")
    finally:
        context.close()


def test_the_posts_pages_fit_a_375px_screen(page: Any, ui_server: UiServer, workspace: dict[str, str]) -> None:
    post = api(ui_server, "POST", "/api/posts", workspace["key"], {
        "content": "A rather long line of text that would widen a narrow screen if it were not wrapped " * 3,
        "platforms": [workspace["x"], "bluesky"],
    }, workspace["id"])["post"]
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    api(ui_server, "POST", f"/api/posts/{post['id']}/schedule", workspace["key"],
        {"scheduled_at": when.isoformat().replace("+00:00", "Z")}, workspace["id"])
    sign_in(page)
    page.set_viewport_size({"width": 375, "height": 800})
    base = f"/ui/w/{workspace['id']}"
    day = when.astimezone(PARIS).date().isoformat()
    for path, name in ((f"{base}/posts", "posts-list-narrow"), (f"{base}/calendar?view=month&date={day}", None),
                       (f"{base}/compose", "composer-narrow"), (f"{base}/posts/{post['id']}", None),
                       (f"{base}/posts/{post['id']}/edit", None)):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, overflow)
        if name:
            screenshot(page, name)
    page.goto(f"{base}/calendar?view=month&date={day}")
    assert page.locator(f'td[data-date="{day}"] a.event[href="{base}/posts/{post["id"]}"]').is_visible()


def test_a_thread_and_a_first_comment_from_the_composer_to_the_post_page(
    page: Any, workspace: dict[str, str],
) -> None:
    """Write a first comment and a thread (parts added and removed in the page), see a part's error
    at its field as you type, save, find them on the edit page and the post page, publish on X and
    see each follow-up's result under X's."""
    from playwright.sync_api import expect

    sign_in(page)
    base = f"/ui/w/{workspace['id']}"
    page.goto(f"{base}/compose")
    page.locator("#f-content").fill("1/3 We open on Monday")
    page.locator(f'input[name="platforms"][value="{workspace["x"]}"]').check()
    page.get_by_label("First comment").fill("Menu in the comments")
    parts = page.locator("#thread [data-part] textarea")
    expect(parts).to_have_count(1)
    parts.nth(0).fill("2/3 Fresh bread from 7 am")
    add = page.get_by_role("button", name="Add a part")
    add.click()  # in the page: no request
    expect(parts).to_have_count(2)
    expect(page.locator("#f-thread-1")).to_be_focused()
    page.get_by_label("Part 2", exact=True).fill("z" * 300)
    # The live check puts X's refusal under part 2, then takes it away.
    expect(page.locator("#thread-1-errors")).to_contain_text("300 of 280 characters")
    expect(page.locator("#network-errors")).not_to_contain_text("thread")
    page.get_by_label("Part 2", exact=True).fill("3/3 See you there")
    expect(page.locator("#thread-1-errors")).to_have_count(0)
    add.click()
    page.get_by_label("Part 3", exact=True).fill("Not this one")
    page.get_by_role("button", name="Remove part 2").click()  # the later part moves up
    expect(parts).to_have_count(2)
    expect(page.get_by_label("Part 2", exact=True)).to_have_value("Not this one")
    page.get_by_role("button", name="Remove part 2").click()
    add.click()
    page.get_by_label("Part 2", exact=True).fill("3/3 See you there")
    expect(page.get_by_label("Reply chain only")).to_be_checked()
    screenshot(page, "composer-thread")

    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(r".*/posts/post_[^/]+/edit$"))
    expect(page.get_by_role("status").first).to_contain_text("Draft saved")
    expect(page.get_by_label("First comment")).to_have_value("Menu in the comments")
    expect(parts).to_have_count(2)
    expect(page.get_by_label("Part 1", exact=True)).to_have_value("2/3 Fresh bread from 7 am")
    expect(page.get_by_label("Part 2", exact=True)).to_have_value("3/3 See you there")

    page.get_by_role("link", name="View post").click()
    page.wait_for_url(re.compile(r".*/posts/post_[^/]+$"))
    expect(page.locator("#first-comment")).to_have_text("Menu in the comments")
    expect(page.locator("#thread-parts > li")).to_have_text(["2/3 Fresh bread from 7 am", "3/3 See you there"])

    page.get_by_role("button", name="Publish now").click()
    expect(page.get_by_role("status").first).to_contain_text("Published.")
    followups = page.get_by_role("list", name="Follow-ups on Twitter/X").get_by_role("listitem")
    expect(followups).to_have_count(3)
    for n, name in enumerate(("First comment", "Thread part 1", "Thread part 2")):
        expect(followups.nth(n)).to_contain_text(name)
        expect(followups.nth(n)).to_contain_text("published")
        expect(followups.nth(n).get_by_role("link", name=f"Open {name.lower()} on Twitter/X")).to_have_attribute(
            "href", re.compile(r"^https?://"))
    expect(followups.nth(0)).to_contain_text("comment")
    expect(followups.nth(1)).to_contain_text("reply")
    screenshot(page, "post-page-thread")


def test_the_thread_fields_work_without_javascript(
    browser: Any, ui_server: UiServer, workspace: dict[str, str],
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=ui_server.url, java_script_enabled=False)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        sign_in(page)
        base = f"/ui/w/{workspace['id']}"
        page.goto(f"{base}/compose")
        page.locator("#f-content").fill("Opening hours")
        page.locator(f'input[name="platforms"][value="{workspace["x"]}"]').check()
        page.locator("#f-thread-0").fill("Monday to Friday: 7 to 19")
        page.get_by_role("button", name="Add a part").click()  # the server renders one more part field
        expect(page.locator("#f-thread-1")).to_be_focused()
        page.locator("#f-thread-1").fill("Saturday: 8 to 13")
        expect(page.locator("#f-content")).to_have_value("Opening hours")
        expect(page.locator(f'input[name="platforms"][value="{workspace["x"]}"]')).to_be_checked()
        # Enter in a one-line field saves the draft (not the thread's first "Remove").
        page.get_by_label("Hashtags").press("Enter")
        page.wait_for_url(re.compile(r".*/posts/post_[^/]+/edit$"))
        expect(page.get_by_role("status").first).to_contain_text("Draft saved")
        expect(page.locator("#f-thread-0")).to_have_value("Monday to Friday: 7 to 19")
        expect(page.locator("#f-thread-1")).to_have_value("Saturday: 8 to 13")
    finally:
        context.close()
