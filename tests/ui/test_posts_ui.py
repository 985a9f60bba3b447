"""Posts in the admin UI without a browser: the composer's forms and live check, media, the post
page's actions, the filtered list and the calendar across a DST change; roles, workspaces, escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import sqlalchemy as sa
from markupsafe import escape

from ouipost.core.ids import new_id
from ouipost.db.queue_tables import jobs
from ouipost.db.tables import media as media_table
from ouipost.db.tables import post_targets, posts, social_accounts
from ouipost.platforms.registry import PLATFORMS
from ouipost.posts import actions
from tests.media_samples import png_bytes
from tests.test_accounts import connect
from tests.ui.conftest import PASSWORD, client_sign_in, csrf_from, make_workspace

PARIS = ZoneInfo("Europe/Paris")
UNKNOWN_ACCOUNT = "acc_01930000-0000-7000-8000-000000000000"


async def _workspace(engine: Any, clock: Any, name: str, member: str | None = None) -> str:
    return (await make_workspace(engine, clock, name, member=member, timezone="Europe/Paris"))["id"]


async def _account(engine: Any, clock: Any, workspace_id: str, platform: str, name: str) -> str:
    account_id = new_id("acc")
    now = clock.now()
    async with engine.begin() as conn:
        await conn.execute(social_accounts.insert().values(
            id=account_id, workspace_id=workspace_id, platform=platform, remote_id=account_id, type="profile",
            name=name, username=name.lower(), status="active", is_default=True, settings={}, metadata={},
            permissions=[], stats={}, connected_at=now, updated_at=now,
        ))
    return account_id


async def _setup(client: Any, make_user: Any, engine: Any, clock: Any, role: str = "editor") -> dict[str, Any]:
    """A signed-in `role` member of a Paris workspace with an X and a Bluesky account."""
    user = await make_user(role)
    ws = await _workspace(engine, clock, f"Team {role}", member=user["id"])
    return {
        "user": user, "ws": ws, "csrf": await client_sign_in(client, user["email"], PASSWORD),
        "x": await _account(engine, clock, ws, "twitter", "Xavier"),
        "bsky": await _account(engine, clock, ws, "bluesky", "Alice"),
    }


async def _posts(engine: Any, workspace_id: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(posts).order_by(posts.c.id)
    if workspace_id:
        query = query.where(posts.c.workspace_id == workspace_id)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def _insert_post(
    engine: Any, workspace_id: str, *, status: str = "draft", content: str = "Hello", network: str = "twitter",
    scheduled_at: datetime | None = None, published_at: datetime | None = None, created_at: datetime | None = None,
    target_status: str = "pending", remote_url: str | None = None, error: tuple[str, str] | None = None,
) -> str:
    post_id = new_id("post")
    now = created_at or datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(posts.insert().values(
            id=post_id, workspace_id=workspace_id, status=status, content=content, hashtags=[], platforms=[network],
            platform_content={}, scheduled_at=scheduled_at, scheduled_timezone="Europe/Paris" if scheduled_at else None,
            published_at=published_at, created_at=now, updated_at=now,
        ))
        await conn.execute(post_targets.insert().values(
            id=new_id("tgt"), post_id=post_id, workspace_id=workspace_id, network=network, requested=network,
            status=target_status, remote_id="r1" if remote_url else None, remote_url=remote_url,
            error_code=error[0] if error else None, error_message=error[1] if error else None, attempts=0,
            published_at=published_at, created_at=now, updated_at=now,
        ))
    return post_id


def _form(csrf: str, **fields: Any) -> list[tuple[str, str]]:
    """Form fields as a browser sends them: repeated names for checkboxes, csrf_token first."""
    items = [("csrf_token", csrf)]
    for name, value in fields.items():
        name = name.replace("__", ".")
        for item in value if isinstance(value, list) else [value]:
            items.append((name, item))
    return items


def _local_input(when: datetime) -> str:
    return when.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


# ------------------------------------------------------------------------------------------------
# The composer


async def test_the_composer_saves_a_draft_through_the_form(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    s = await _setup(client, make_user, engine, clock)
    page = await client.get(f"/ui/w/{s['ws']}/compose")
    html = await page.text()
    assert page.status == 200
    assert f'value="{s["x"]}"' in html and 'value="linkedin"' in html  # accounts, and networks without one
    assert 'data-validate-url="/ui/w/' in html

    response = await client.post(f"/ui/w/{s['ws']}/compose", data=_form(
        s["csrf"], content="Launch day!\r\nCome and see.", platforms=[s["x"], "linkedin"],
        hashtags="launch, #News", link="https://example.com/launch", title="",
        platform_content__twitter__content="Launch day on X", platform_content__linkedin__content="",
        action="draft",
    ), allow_redirects=False)
    assert response.status == 303, await response.text()
    [post] = await _posts(engine, s["ws"])
    assert response.headers["Location"] == f"/ui/w/{s['ws']}/posts/{post['id']}/edit"
    assert post["status"] == "draft" and post["content"] == "Launch day!\nCome and see."
    assert post["platforms"] == [s["x"], "linkedin"]
    assert post["hashtags"] == ["#launch", "#News"] and post["link"] == "https://example.com/launch"
    assert post["title"] is None
    assert post["platform_content"] == {"twitter": {"content": "Launch day on X"}}

    edit = await (await client.get(response.headers["Location"])).text()
    assert "Draft saved" in edit and "Launch day on X" in edit and "#launch, #News" in edit
    assert re.search(r'class="counter" data-network="twitter"[^>]*>Twitter/X \d+/280<', edit)

    # Overrides the form has no field for (set through the API) survive saving the form.
    async with engine.begin() as conn:
        await conn.execute(posts.update().where(posts.c.id == post["id"]).values(
            platform_content={"twitter": {"content": "Launch day on X", "hashtags": ["#x"]}}))
    response = await client.post(f"/ui/w/{s['ws']}/posts/{post['id']}/edit", data=_form(
        s["csrf"], content="Launch day!", platforms=[s["x"]], hashtags="launch",
        platform_content__twitter__content="Launch day on X, again", action="draft",
    ), allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/ui/w/{s['ws']}/posts/{post['id']}"
    [post] = await _posts(engine, s["ws"])
    assert post["platform_content"] == {"twitter": {"content": "Launch day on X, again", "hashtags": ["#x"]}}
    assert post["platforms"] == [s["x"]] and post["content"] == "Launch day!"


@pytest.mark.parametrize("case", ["x_too_long", "override_not_targeted", "past_time", "unknown_account"])
async def test_bad_input_re_renders_with_values_kept_and_the_apis_words(
    client: Any, make_user: Any, engine: Any, clock: Any, case: str,
) -> None:
    s = await _setup(client, make_user, engine, clock)
    future = _local_input(clock.now() + timedelta(days=2))
    fields: dict[str, Any] = {"content": "A fine post", "platforms": [s["x"]], "hashtags": "kept",
                              "action": "schedule", "scheduled_at": future, "timezone": "Europe/Paris"}
    if case == "x_too_long":
        fields["content"] = "a" * 281
        expected = "288 of 280 characters"  # 281 + " #kept"
    elif case == "override_not_targeted":
        fields["platform_content__facebook__content"] = "Only for Facebook"
        expected = "platform_content for facebook, but the post does not target facebook"
    elif case == "past_time":
        fields["scheduled_at"] = _local_input(clock.now() - timedelta(hours=1))
        expected = "must be in the future"
    else:
        fields["platforms"] = [s["x"], UNKNOWN_ACCOUNT]
        expected = f"Unknown account {UNKNOWN_ACCOUNT}"
    response = await client.post(f"/ui/w/{s['ws']}/compose", data=_form(s["csrf"], **fields), allow_redirects=False)
    html = await response.text()
    assert response.status == 422, html
    assert expected in html
    assert 'class="field-errors' in html
    assert "kept" in html and fields["content"] in html  # the values are kept
    if case == "override_not_targeted":
        assert "Only for Facebook" in html
    if case == "past_time":
        assert f'value="{fields["scheduled_at"]}"' in html
        assert re.search(r'id="scheduled_at-errors">\s*<li>must be in the future', html)
    assert await _posts(engine) == []  # nothing saved, not even the draft


async def test_the_live_check_gives_the_same_verdict_as_the_api(
    client: Any, make_user: Any, make_key: Any, engine: Any, clock: Any,
) -> None:
    s = await _setup(client, make_user, engine, clock)
    key = await make_key(workspace=s["ws"])
    cases = [
        ({"content": "Hello 🌍 https://example.com/a/very/long/path", "platforms": [s["x"], s["bsky"]]}, {}),
        ({"content": "é" * 300, "platforms": [s["x"], "instagram"], "hashtags": ["one", "two"]}, {}),
        ({"content": "Short", "platforms": [s["x"]], "platform_content": {"facebook": {"content": "x"}}}, {}),
        ({"content": "Link", "platforms": ["bluesky"], "link": "https://example.com"},
         {"platform_content__bluesky__content": ""}),
        ({"content": "   ", "platforms": [s["x"]]}, {}),
        ({"content": "hi", "platforms": [UNKNOWN_ACCOUNT]}, {}),
    ]
    for body, extra in cases:
        api = await client.post("/api/posts/validate", json=body, headers=key.headers())
        form: dict[str, Any] = {"content": body["content"], "platforms": body["platforms"],
                                "hashtags": ", ".join(body.get("hashtags", [])), "link": body.get("link", ""), **extra}
        for network, override in body.get("platform_content", {}).items():
            form[f"platform_content__{network}__content"] = override["content"]
        ui = await client.post(f"/ui/w/{s['ws']}/compose/validate", data=_form(s["csrf"], **form))
        api_answer, ui_answer = await api.json(), await ui.json()
        assert ui.status == api.status, (body, ui_answer)
        if api.status == 200:
            assert ui_answer["data"] == api_answer["data"], body
            for counter in ui_answer["counters"]:
                info = api_answer["data"]["platforms"][counter["network"]]
                assert counter["characters"] == info["characters"]
                assert counter["over"] == (info["characters"] > info["max_characters"]
                                           or bool(api_answer["data"]["errors"].get(counter["network"])))
        else:
            assert ui_answer["error"] == api_answer["error"], body
    over = await (await client.post(f"/ui/w/{s['ws']}/compose/validate",
                                    data=_form(s["csrf"], content="a" * 281, platforms=[s["x"]]))).json()
    assert [c["over"] for c in over["counters"]] == [True]

    # No token, no answer.
    refused = await client.post(f"/ui/w/{s['ws']}/compose/validate", data={"content": "x", "platforms": "twitter"})
    assert refused.status == 403


async def test_media_upload_with_alt_text_preview_and_removal(client: Any, make_user: Any, engine: Any,
                                                              clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    post_id = await _insert_post(engine, s["ws"])
    form = aiohttp.FormData()
    form.add_field("csrf_token", s["csrf"])
    form.add_field("alt_text", "A red square <on white>")
    form.add_field("file", png_bytes(64, 48), filename="square.png", content_type="image/png")
    response = await client.post(f"/ui/w/{s['ws']}/posts/{post_id}/media", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    async with engine.connect() as conn:
        [item] = (await conn.execute(sa.select(media_table).where(media_table.c.post_id == post_id))).mappings()
    assert item["alt_text"] == "A red square <on white>" and item["type"] == "image"
    edit = await (await client.get(f"/ui/w/{s['ws']}/posts/{post_id}/edit")).text()
    assert re.search(r'<img src="[^"]*/media/files/[^"]*signature=[^"]*" alt="A red square &lt;on white&gt;">', edit)

    # The token must come first: a form with the file before it is refused before anything is read.
    late = aiohttp.FormData()
    late.add_field("file", png_bytes(), filename="late.png", content_type="image/png")
    late.add_field("csrf_token", s["csrf"])
    assert (await client.post(f"/ui/w/{s['ws']}/posts/{post_id}/media", data=late)).status == 403

    # Not an image: the API's words, next to the file field.
    bad = aiohttp.FormData()
    bad.add_field("csrf_token", s["csrf"])
    bad.add_field("alt_text", "text")
    bad.add_field("file", b"just some text, not an image", filename="notes.png", content_type="image/png")
    refused = await client.post(f"/ui/w/{s['ws']}/posts/{post_id}/media", data=bad)
    assert refused.status == 415 and "Unsupported media" in await refused.text()

    # On the edit page the live check counts the post's media: Instagram has the image it needs.
    form_fields = {"content": "Look", "platforms": ["instagram"]}
    new_post = await (await client.post(f"/ui/w/{s['ws']}/compose/validate",
                                        data=_form(s["csrf"], **form_fields))).json()
    this_post = await (await client.post(f"/ui/w/{s['ws']}/compose/validate",
                                         data=_form(s["csrf"], post_id=post_id, **form_fields))).json()
    assert "Instagram needs media: attach an image or a video" in new_post["data"]["publish_errors"]["instagram"]
    assert this_post["data"]["publish_errors"]["instagram"] == [
        "No active Instagram account is connected to this workspace"]  # the media rule is met
    foreign = await client.post(f"/ui/w/{s['ws']}/compose/validate",
                                data=_form(s["csrf"], post_id="post_nope", **form_fields))
    assert foreign.status == 404

    confirm = await client.get(f"/ui/w/{s['ws']}/posts/{post_id}/media/{item['id']}/delete")
    assert confirm.status == 200 and "Remove this media?" in await confirm.text()
    removed = await client.post(f"/ui/w/{s['ws']}/posts/{post_id}/media/{item['id']}/delete",
                                data={"csrf_token": s["csrf"]}, allow_redirects=False)
    assert removed.status == 303
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(media_table)) == 0


# ------------------------------------------------------------------------------------------------
# Scheduling, unscheduling, publishing and deleting through the forms


async def test_schedule_unschedule_publish_retry_and_delete_through_the_forms(
    client: Any, make_user: Any, engine: Any, clock: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(actions, "PUBLISH_WAIT_SECONDS", 0.2)  # no worker here: the page says "under way"
    s = await _setup(client, make_user, engine, clock)
    base = f"/ui/w/{s['ws']}"
    when = (clock.now() + timedelta(days=3)).astimezone(PARIS).replace(hour=9, minute=30, second=0, microsecond=0)
    response = await client.post(f"{base}/compose", data=_form(
        s["csrf"], content="Scheduled hello", platforms=[s["x"]], action="schedule",
        scheduled_at=when.strftime("%Y-%m-%dT%H:%M"), timezone="Europe/Paris",
    ), allow_redirects=False)
    assert response.status == 303, await response.text()
    [post] = await _posts(engine, s["ws"])
    assert post["status"] == "scheduled"
    assert post["scheduled_at"].replace(tzinfo=UTC) == when.astimezone(UTC)
    page = await (await client.get(response.headers["Location"])).text()
    assert "Scheduled for" in page and when.strftime("%Y-%m-%d 09:30") in page

    assert (await client.post(f"{base}/posts/{post['id']}/unschedule", data={"csrf_token": s["csrf"]},
                              allow_redirects=False)).status == 303
    assert (await _posts(engine, s["ws"]))[0]["status"] == "draft"

    # Publish now: the job is queued; without a worker the page says it is under way.
    response = await client.post(f"{base}/posts/{post['id']}/publish", data={"csrf_token": s["csrf"]},
                                 allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"{base}/posts/{post['id']}"
    assert (await _posts(engine, s["ws"]))[0]["status"] == "publishing"
    async with engine.connect() as conn:
        queued = await conn.scalar(sa.select(sa.func.count()).select_from(jobs).where(
            jobs.c.kind == "publish_post", jobs.c.status == "queued"))
    assert queued == 1
    assert "under way" in await (await client.get(response.headers["Location"])).text()

    # A failed post: its network's error on the page, and a retry that sends the failed target again.
    failed = await _insert_post(engine, s["ws"], status="failed", target_status="failed",
                                error=("RATE_LIMITED", "Too many posts <today>"))
    page = await (await client.get(f"{base}/posts/{failed}")).text()
    assert "RATE_LIMITED" in page and "Too many posts &lt;today&gt;" in page and "Retry failed networks" in page
    assert (await client.post(f"{base}/posts/{failed}/publish", data={"csrf_token": s["csrf"]},
                              allow_redirects=False)).status == 303
    async with engine.connect() as conn:
        target = (await conn.execute(sa.select(post_targets).where(post_targets.c.post_id == failed))).mappings().one()
    assert target["status"] in ("pending", "publishing") and target["error_code"] is None

    # A published post shows its link.
    done = await _insert_post(engine, s["ws"], status="published", target_status="published",
                              published_at=clock.now(), remote_url="https://x.example/status/1")
    page = await (await client.get(f"{base}/posts/{done}")).text()
    assert 'href="https://x.example/status/1"' in page and "Retry" not in page and "Publish now" not in page

    # Delete: a confirmation page saying what goes, then the deletion.
    confirm = await (await client.get(f"{base}/posts/{done}/delete")).text()
    assert "1 network result will be deleted" in confirm and "stays on the social networks" in confirm
    response = await client.post(f"{base}/posts/{done}/delete", data={"csrf_token": s["csrf"]}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"{base}/posts"
    assert done not in {p["id"] for p in await _posts(engine)}
    assert "it remains on the social networks" in await (await client.get(f"{base}/posts")).text()


async def test_queueing_into_a_recurring_schedule(client: Any, make_user: Any, make_key: Any, engine: Any,
                                                  clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    key = await make_key(workspace=s["ws"])
    resp = await client.post("/api/schedules", headers=key.headers(), json={
        "name": "Weekdays", "timezone": "Europe/Paris",
        "slots": [{"day": d, "time": "10:00", "platforms": ["twitter"]}
                  for d in ("monday", "tuesday", "wednesday", "thursday", "friday")],
    })
    assert resp.status == 201, await resp.text()
    schedule_id = (await resp.json())["data"]["schedule"]["id"]
    compose = await (await client.get(f"/ui/w/{s['ws']}/compose")).text()
    assert f'value="{schedule_id}"' in compose and "Weekdays" in compose

    missing = await client.post(f"/ui/w/{s['ws']}/compose", data=_form(
        s["csrf"], content="Queued", platforms=[s["x"]], action="queue", schedule_id=""))
    assert missing.status == 422 and "Give either scheduled_at or schedule_id" in await missing.text()
    response = await client.post(f"/ui/w/{s['ws']}/compose", data=_form(
        s["csrf"], content="Queued", platforms=[s["x"]], action="queue", schedule_id=schedule_id),
        allow_redirects=False)
    assert response.status == 303, await response.text()
    [post] = await _posts(engine, s["ws"])
    assert post["status"] == "scheduled"
    local = post["scheduled_at"].replace(tzinfo=UTC).astimezone(PARIS)
    assert (local.hour, local.minute) == (10, 0) and local.weekday() < 5


# ------------------------------------------------------------------------------------------------
# The list and the calendar


async def test_the_list_filters_and_paginates_keeping_the_filters(client: Any, make_user: Any, engine: Any,
                                                                  clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    base = f"/ui/w/{s['ws']}/posts"
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    for i in range(25):
        await _insert_post(engine, s["ws"], content=f"Webinar number {i}", created_at=start + timedelta(hours=i))
    for i in range(5):
        await _insert_post(engine, s["ws"], status="published", network="bluesky", content=f"Sky {i} 100%",
                           published_at=datetime(2026, 3, 10, 22, 30, tzinfo=UTC), target_status="published",
                           created_at=start + timedelta(days=2, hours=i))
    other = await _workspace(engine, clock, "Elsewhere", member=s["user"]["id"])
    await _insert_post(engine, other, content="Webinar elsewhere")

    first = await (await client.get(base)).text()
    assert first.count('<tr>\n        <td class="truncate">') == 20 and "Page 1 of 2" in first and "30 in all" in first
    second = await (await client.get(f"{base}?page=2")).text()
    assert second.count('<td class="truncate">') == 10

    found = await (await client.get(f"{base}?q=webinar&status=draft")).text()
    assert "25 in all" in found and "elsewhere" not in found
    assert 'href="/ui/w/' + s["ws"] + '/posts?status=draft&amp;q=webinar&amp;page=2"' in found  # filters kept
    assert "Sky" not in found
    literal = await (await client.get(f"{base}?q=100%25")).text()  # % is literal, not a wildcard
    assert literal.count('<td class="truncate">') == 5

    sky = await (await client.get(f"{base}?network=bluesky")).text()
    assert sky.count('<td class="truncate">') == 5 and "Webinar" not in sky

    # 22:30 UTC on 10 March is 23:30 in Paris: still the 10th there, not the 11th.
    day = await (await client.get(f"{base}?from=2026-03-10&to=2026-03-10&status=published")).text()
    assert day.count('<td class="truncate">') == 5
    next_day = await (await client.get(f"{base}?from=2026-03-11&to=2026-03-11&status=published")).text()
    assert next_day.count('<td class="truncate">') == 0 and "No posts match" in next_day

    bad = await client.get(f"{base}?status=lost&from=yesterday")
    html = await bad.text()
    assert bad.status == 422 and "Must be one of" in html and "Not a valid date." in html
    bad_page = await client.get(f"{base}?page=0")
    assert bad_page.status == 422 and "Must be greater than or equal to 1" in await bad_page.text()


async def test_the_calendar_puts_posts_on_their_local_day_across_dst(client: Any, make_user: Any, engine: Any,
                                                                     clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    base = f"/ui/w/{s['ws']}"
    # Paris moves from UTC+1 to UTC+2 on 29 March 2026 and back on 25 October 2026.
    cases = {
        "before": (datetime(2026, 3, 28, 8, 0, tzinfo=UTC), "2026-03-28", "09:00"),
        "after": (datetime(2026, 3, 30, 7, 0, tzinfo=UTC), "2026-03-30", "09:00"),
        "late": (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "2026-03-29", "00:30"),
    }
    ids = {}
    for name, (at, _, _) in cases.items():
        ids[name] = await _insert_post(engine, s["ws"], status="scheduled", content=f"Post {name}", scheduled_at=at)
    ids["published"] = await _insert_post(engine, s["ws"], status="published", content="Post published",
                                          published_at=datetime(2026, 10, 25, 8, 0, tzinfo=UTC),
                                          scheduled_at=datetime(2026, 10, 24, 7, 0, tzinfo=UTC))
    cases["published"] = (datetime(2026, 10, 25, 8, 0, tzinfo=UTC), "2026-10-25", "09:00")

    def cells(html: str) -> dict[str, str]:
        parts = re.split(r'data-date="(\d{4}-\d{2}-\d{2})"', html)
        return dict(zip(parts[1::2], parts[2::2], strict=True))

    march = cells(await (await client.get(f"{base}/calendar?view=month&date=2026-03-15")).text())
    october = cells(await (await client.get(f"{base}/calendar?view=month&date=2026-10-01")).text())
    week = cells(await (await client.get(f"{base}/calendar?view=week&date=2026-03-29")).text())
    assert len(week) == 7 and "2026-03-23" in week and "2026-03-29" in week
    for name, (_, day, hour) in cases.items():
        month = october if name == "published" else march
        link = f'href="{base}/posts/{ids[name]}"'
        assert link in month[day], name
        assert re.search(link + r'[^>]*><time[^>]*>' + hour + "</time>", month[day]), name
        assert sum(link in cell for cell in month.values()) == 1, name
        if name != "published" and day in week:
            assert link in week[day]

    # A busy day shows its first posts and how many more, linking to that day in the list.
    for minute in range(8):
        await _insert_post(engine, s["ws"], status="scheduled", content=f"Busy {minute}",
                           scheduled_at=datetime(2026, 3, 12, 9, minute, tzinfo=UTC))
    busy = cells(await (await client.get(f"{base}/calendar?view=month&date=2026-03-15")).text())["2026-03-12"]
    assert busy.count('class="event') == 6 and "Busy 5" in busy and "Busy 6" not in busy
    assert f'href="{base}/posts?from=2026-03-12&amp;to=2026-03-12">+2 more</a>' in busy
    busy_week = cells(await (await client.get(f"{base}/calendar?view=week&date=2026-03-12")).text())["2026-03-12"]
    assert busy_week.count('class="event') == 8 and "more</a>" not in busy_week

    page = await client.get(f"{base}/calendar?view=month&date=2026-03-15")
    html = await page.text()
    assert "March 2026" in html and "date=2026-02-01" in html and "date=2026-04-01" in html
    assert (await client.get(f"{base}/calendar?view=week&date=nonsense")).status == 200


# ------------------------------------------------------------------------------------------------
# Roles, workspaces, escaping


async def test_a_viewer_sees_no_mutating_control_and_a_forged_post_is_refused(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    s = await _setup(client, make_user, engine, clock, role="viewer")
    base = f"/ui/w/{s['ws']}"
    scheduled = await _insert_post(engine, s["ws"], status="scheduled", content="Careful",
                                   scheduled_at=clock.now() + timedelta(days=1))
    failed = await _insert_post(engine, s["ws"], status="failed", target_status="failed", error=("X", "y"))
    for url in (f"{base}/posts", f"{base}/posts/{scheduled}", f"{base}/posts/{failed}", f"{base}/calendar"):
        response = await client.get(url)
        html = await response.text()
        assert response.status == 200, url
        forms = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
        assert forms == ["/ui/logout"], (url, forms)
        for word in ("Compose", "Edit", "Delete", "Publish now", "Retry", "Unschedule"):
            assert f">{word}<" not in html, (url, word)
    assert (await client.get(f"{base}/compose")).status == 403
    assert (await client.get(f"{base}/posts/{scheduled}/delete")).status == 403

    before = await _posts(engine)
    forged = [
        (f"{base}/compose", _form(s["csrf"], content="Sneaky", platforms=["twitter"], action="draft")),
        (f"{base}/posts/{scheduled}/edit", _form(s["csrf"], content="Changed", platforms=["twitter"])),
        (f"{base}/posts/{scheduled}/unschedule", _form(s["csrf"])),
        (f"{base}/posts/{scheduled}/publish", _form(s["csrf"])),
        (f"{base}/posts/{failed}/publish", _form(s["csrf"])),
        (f"{base}/posts/{scheduled}/delete", _form(s["csrf"])),
        (f"{base}/compose/validate", _form(s["csrf"], content="x", platforms=["twitter"])),
    ]
    for url, data in forged:
        response = await client.post(url, data=data, allow_redirects=False)
        assert response.status == 403, url
    assert await _posts(engine) == before


async def test_another_workspaces_post_is_not_found(client: Any, make_user: Any, engine: Any, clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    theirs = await _workspace(engine, clock, "Not mine")
    foreign = await _insert_post(engine, theirs, content="Their secret plan")
    base = f"/ui/w/{s['ws']}"
    for url in (f"{base}/posts/{foreign}", f"{base}/posts/{foreign}/edit", f"{base}/posts/{foreign}/delete",
                f"/ui/w/{theirs}/posts", f"/ui/w/{theirs}/posts/{foreign}", f"/ui/w/{theirs}/calendar"):
        response = await client.get(url)
        assert response.status == 404, url
        assert "Their secret plan" not in await response.text()
    for url in (f"{base}/posts/{foreign}/delete", f"{base}/posts/{foreign}/publish"):
        assert (await client.post(url, data={"csrf_token": s["csrf"]})).status == 404
    assert foreign in {p["id"] for p in await _posts(engine, theirs)}


async def test_post_content_with_html_is_escaped_everywhere(client: Any, make_user: Any, engine: Any,
                                                            clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    nasty = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    post_id = await _insert_post(engine, s["ws"], status="scheduled", content=nasty,
                                 scheduled_at=clock.now() + timedelta(hours=2))
    base = f"/ui/w/{s['ws']}"
    for url in (f"{base}/posts", f"{base}/posts/{post_id}", f"{base}/posts/{post_id}/edit", f"{base}/calendar",
                f"{base}/calendar?view=week", f"{base}/posts/{post_id}/delete"):
        html = await (await client.get(url)).text()
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;" in html, url


async def test_a_post_past_editing_cannot_be_edited(client: Any, make_user: Any, engine: Any, clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    done = await _insert_post(engine, s["ws"], status="published", target_status="published",
                              published_at=clock.now())
    response = await client.get(f"/ui/w/{s['ws']}/posts/{done}/edit")
    assert response.status == 409 and "only draft, pending_approval and scheduled posts can" in await response.text()
    response = await client.post(f"/ui/w/{s['ws']}/posts/{done}/edit", data=_form(
        s["csrf"], content="Rewrite", platforms=["twitter"], action="draft"))
    assert response.status == 409
    assert "A published post cannot be changed" in await response.text()
    assert (await _posts(engine, s["ws"]))[0]["content"] == "Hello"
    # An action the post's state refuses: the API's message on the post page.
    response = await client.post(f"/ui/w/{s['ws']}/posts/{done}/unschedule", data={"csrf_token": s["csrf"]})
    assert response.status == 409
    assert "Only scheduled posts can be unscheduled; this one is published" in await response.text()


async def test_csrf_token_is_required_on_the_composer(client: Any, make_user: Any, engine: Any, clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    html = await (await client.get(f"/ui/w/{s['ws']}/compose")).text()
    assert csrf_from(html) == s["csrf"]
    response = await client.post(f"/ui/w/{s['ws']}/compose", data={"content": "x", "platforms": "twitter"})
    assert response.status == 403
    assert await _posts(engine) == []


# ------------------------------------------------------------------------------------------------
# Threads and first comments (issue 17 part 1): the composer's fields, the post page's follow-ups


def _messages(html: str, field: str) -> list[str]:
    """The messages of the error list the page shows under `field` (thread.1 -> #thread-1-errors)."""
    match = re.search(rf'<ul class="field-errors" id="{re.escape(field.replace(".", "-"))}-errors">(.*?)</ul>',
                      html, re.S)
    return re.findall(r"<li>(.*?)</li>", match.group(1), re.S) if match else []


def _textarea(html: str, name: str) -> str | None:
    """The text of the textarea named `name` (None when the page has none)."""
    match = re.search(rf'<textarea id="f-{re.escape(name.replace(".", "-"))}" name="{re.escape(name)}"[^>]*>(.*?)'
                      r"</textarea>", html, re.S)
    return match.group(1) if match else None


async def _api_post(client: Any, key: Any, post_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/posts/{post_id}", headers=key.headers())
    assert response.status == 200, await response.text()
    return dict((await response.json())["data"]["post"])


async def test_a_thread_and_a_first_comment_written_in_the_composer_are_the_apis(
    client: Any, make_user: Any, make_key: Any, engine: Any, clock: Any,
) -> None:
    s = await _setup(client, make_user, engine, clock)
    key = await make_key(workspace=s["ws"])
    base = f"/ui/w/{s['ws']}"
    page = await (await client.get(f"{base}/compose")).text()
    assert _textarea(page, "first_comment") == "" and _textarea(page, "thread.0") == ""
    assert _textarea(page, "thread.1") is None  # one empty part field at first
    assert 'name="thread_add"' in page and 'name="thread_remove" value="0"' in page
    assert re.search(r'name="thread_mode" value="thread" checked', page)
    assert 'name="thread_mode" value="first_comment"' in page
    # The help names the networks from the registry's flags, and says where per-part media go.
    chains = ", ".join(spec.name for spec in PLATFORMS.values() if spec.reply_chains)
    comments_only = ", ".join(spec.name for spec in PLATFORMS.values() if spec.comments and not spec.reply_chains)
    assert f"Reply chains on {chains}; comments only on {comments_only}." in page
    assert "Media for a part: through the API" in page
    # Enter in a one-line field saves: the form's first submit button is a save, not "Remove".
    first_button = re.search(r"<button [^>]*>", page.split('id="composer"', 1)[1])
    assert first_button and 'name="action" value="draft"' in first_button.group(0)

    # "Add a part" without JavaScript: the form again with one more part field, nothing saved.
    fields = {"content": "1/3 We open on Monday", "platforms": [s["x"], s["bsky"]],
              "first_comment": "Menu in the comments\r\nand prices", "thread_mode": "thread",
              "thread__0": "2/3 Fresh bread from 7 am"}
    added = await client.post(f"{base}/compose", data=_form(s["csrf"], thread_add="1", **fields))
    html = await added.text()
    assert added.status == 200 and "Please correct" not in html
    assert _textarea(html, "thread.0") == "2/3 Fresh bread from 7 am" and _textarea(html, "thread.1") == ""
    assert re.search(r'<textarea id="f-thread-1" name="thread.1" rows="3"\s+autofocus="autofocus"', html)
    assert _textarea(html, "content") == "1/3 We open on Monday"
    assert await _posts(engine) == []

    # "Remove" without JavaScript: that part goes, the later ones move up.
    removed = await client.post(f"{base}/compose", data=_form(
        s["csrf"], thread_remove="1", **{**fields, "thread__1": "Not this one", "thread__2": "3/3 See you there"}))
    html = await removed.text()
    assert removed.status == 200
    assert [_textarea(html, f"thread.{n}") for n in range(3)] == [
        "2/3 Fresh bread from 7 am", "3/3 See you there", None]
    assert re.search(r'<textarea id="f-thread-1" name="thread.1" rows="3"\s+autofocus="autofocus"', html)
    assert await _posts(engine) == []

    # Saved: the filled parts in order (an empty one left out), CRLF sent as the API's \n.
    response = await client.post(f"{base}/compose", data=_form(
        s["csrf"], action="draft", **{**fields, "thread__1": "  ", "thread__2": "3/3 See you there"}),
        allow_redirects=False)
    assert response.status == 303, await response.text()
    [row] = await _posts(engine, s["ws"])
    post = await _api_post(client, key, row["id"])
    assert post["thread"] == [{"content": "2/3 Fresh bread from 7 am", "media_ids": []},
                              {"content": "3/3 See you there", "media_ids": []}]
    assert post["thread_mode"] == "thread" and post["first_comment"] == "Menu in the comments\nand prices"

    # The edit page shows them, and the post page too.
    edit = await (await client.get(response.headers["Location"])).text()
    assert [_textarea(edit, f"thread.{n}") for n in range(3)] == [
        "2/3 Fresh bread from 7 am", "3/3 See you there", None]
    assert _textarea(edit, "first_comment") == "Menu in the comments\nand prices"
    assert re.search(r'name="thread_mode" value="thread" checked', edit)
    shown = await (await client.get(f"{base}/posts/{row['id']}")).text()
    assert re.search(r'id="first-comment">Menu in the comments\nand prices<', shown)
    thread = re.search(r'<ol class="thread" id="thread-parts">(.*?)</ol>', shown, re.S)
    assert thread and re.findall(r'<div class="post-content">(.*?)</div>', thread.group(1)) == [
        "2/3 Fresh bread from 7 am", "3/3 See you there"]
    assert "reply chain only" in shown


REFUSALS = {
    # case: (networks, form fields, the API's key, the form's field)
    "thread_on_linkedin": (["linkedin"], {"thread__0": "2/2 More soon", "thread_mode": "thread"}, "thread", "thread"),
    "part_too_long_on_x": (["x"], {"thread__0": "2/3 Fine", "thread__1": "", "thread__2": "z" * 300},
                           "thread.1", "thread.2"),
    "comment_on_tiktok": (["tiktok"], {"first_comment": "No comments there"}, "first_comment", "first_comment"),
    "comment_too_long_on_linkedin": (["linkedin"], {"first_comment": "c" * 1300}, "first_comment", "first_comment"),
    "first_comment_mode_on_pinterest": (["pinterest"], {"thread__0": "2/2 Pinned", "thread_mode": "first_comment"},
                                        "thread_mode", "thread_mode"),
    "too_many_parts": (["x"], {f"thread__{n}": f"Part {n}" for n in range(26)}, "thread", "thread"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_refused_thread_or_comment_re_renders_with_the_apis_message_at_its_field(
    client: Any, make_user: Any, make_key: Any, engine: Any, clock: Any, case: str,
) -> None:
    s = await _setup(client, make_user, engine, clock)
    key = await make_key(workspace=s["ws"])
    networks, extra, api_key, field = REFUSALS[case]
    platforms = [s["x"] if n == "x" else n for n in networks]
    fields = {"content": "We open on Monday", "platforms": platforms, "hashtags": "kept", **extra}
    response = await client.post(f"/ui/w/{s['ws']}/compose", data=_form(s["csrf"], action="draft", **fields),
                                 allow_redirects=False)
    html = await response.text()
    assert response.status == 422, html
    assert await _posts(engine) == []  # nothing created

    # The API's own words for the same body, under the field the refused value came from.
    parts = sorted((int(k.split("__")[1]), v) for k, v in extra.items() if k.startswith("thread__"))
    thread = [{"content": v} for _, v in parts if v.strip()]
    body: dict[str, Any] = {"content": fields["content"], "platforms": platforms, "hashtags": ["kept"],
                            "thread": thread, "thread_mode": extra.get("thread_mode"),
                            "first_comment": extra.get("first_comment")}
    api = await client.post("/api/posts", json=body, headers=key.headers())
    assert api.status == 422
    details = (await api.json())["error"]["details"]
    expected = details[api_key] if isinstance(details[api_key], list) else None
    assert expected, details
    assert _messages(html, field) == [str(escape(m)) for m in expected], (details, _messages(html, field))
    assert re.search(rf'aria-describedby="{re.escape(field.replace(".", "-"))}-errors"', html)
    for other in ("thread", "thread.0", "thread.1", "thread.2", "thread_mode", "first_comment"):
        if other != field:
            assert _messages(html, other) == [], other

    # The values are kept: every part field (an empty one too), the comment, the mode, the rest.
    for name, value in extra.items():
        if name.startswith("thread__"):
            assert _textarea(html, name.replace("__", ".")) == value, name
    if "first_comment" in extra:
        assert _textarea(html, "first_comment") == extra["first_comment"]
    mode = extra.get("thread_mode", "thread")
    assert re.search(rf'name="thread_mode" value="{mode}" checked', html)
    assert _textarea(html, "content") == "We open on Monday" and 'value="kept"' in html

    # The live check puts the same message at the same field.
    live = await (await client.post(f"/ui/w/{s['ws']}/compose/validate",
                                    data=_form(s["csrf"], **fields))).json()
    if case == "too_many_parts":  # the schema's refusal: the API's error answer, as for any invalid body
        assert live["error"]["details"]["thread"] == expected
    else:
        assert live["fields"] == {field: expected}
        assert live["data"]["errors"][api_key] == expected


async def test_editing_keeps_or_changes_the_thread_and_keeps_a_parts_media(
    client: Any, make_user: Any, make_key: Any, engine: Any, clock: Any,
) -> None:
    s = await _setup(client, make_user, engine, clock)
    key = await make_key(workspace=s["ws"])
    base = f"/ui/w/{s['ws']}"
    created = await client.post("/api/posts", headers=key.headers(), json={
        "content": "We open on Monday", "platforms": ["twitter"], "first_comment": "Menu below",
        "thread": [{"content": "2/3 Bread"}, {"content": "3/3 See you"}]})
    assert created.status == 201, await created.text()
    post_id = (await created.json())["data"]["post"]["id"]
    # A picture for part one, given through the API (the form has no media per part).
    upload = aiohttp.FormData()
    upload.add_field("file", png_bytes(64, 48), filename="bread.png", content_type="image/png")
    uploaded = await client.post(f"/api/posts/{post_id}/media", data=upload, headers=key.headers())
    assert uploaded.status == 201, await uploaded.text()
    media_id = (await uploaded.json())["data"]["media"]["id"]
    put = await client.put(f"/api/posts/{post_id}", headers=key.headers(), json={
        "thread": [{"content": "2/3 Bread", "media_ids": [media_id]}, {"content": "3/3 See you"}]})
    assert put.status == 200, await put.text()

    edit = await (await client.get(f"{base}/posts/{post_id}/edit")).text()
    assert [_textarea(edit, f"thread.{n}") for n in range(3)] == ["2/3 Bread", "3/3 See you", None]
    assert f'<input type="hidden" name="thread.0.media_ids" value="{media_id}">' in edit
    assert "With 1 media given through the API" in edit
    assert _textarea(edit, "first_comment") == "Menu below"

    # Saving the form as shown (the text changed) keeps the thread, its media and the comment.
    shown = {"content": "We open on Tuesday", "platforms": ["twitter"], "first_comment": "Menu below",
             "thread_mode": "thread", "thread__0": "2/3 Bread", "thread__0__media_ids": media_id,
             "thread__1": "3/3 See you"}
    saved = await client.post(f"{base}/posts/{post_id}/edit", data=_form(s["csrf"], action="draft", **shown),
                              allow_redirects=False)
    assert saved.status == 303, await saved.text()
    post = await _api_post(client, key, post_id)
    assert post["content"] == "We open on Tuesday" and post["first_comment"] == "Menu below"
    assert post["thread"] == [{"content": "2/3 Bread", "media_ids": [media_id]},
                              {"content": "3/3 See you", "media_ids": []}]
    assert [m["id"] for m in post["media"]] == [media_id]

    # Changed: part two rewritten, a third added, the comment gone, the mode changed.
    changed = {**shown, "thread__1": "3/4 Croissants at 8", "thread__2": "4/4 See you", "first_comment": "",
               "thread_mode": "first_comment"}
    saved = await client.post(f"{base}/posts/{post_id}/edit", data=_form(s["csrf"], action="draft", **changed),
                              allow_redirects=False)
    assert saved.status == 303, await saved.text()
    post = await _api_post(client, key, post_id)
    assert [p["content"] for p in post["thread"]] == ["2/3 Bread", "3/4 Croissants at 8", "4/4 See you"]
    assert post["thread"][0]["media_ids"] == [media_id]
    assert post["first_comment"] is None and post["thread_mode"] == "first_comment"

    # A part emptied of its text but still holding media is refused at its field, not dropped.
    emptied = await client.post(f"{base}/posts/{post_id}/edit", data=_form(
        s["csrf"], action="draft", **{**changed, "thread__0": ""}))
    html = await emptied.text()
    assert emptied.status == 422
    assert _messages(html, "thread.0") == ["Content cannot be empty or only whitespace"]
    assert f'name="thread.0.media_ids" value="{media_id}"' in html

    # "Remove" takes the part with its media; every part removed and saved: no thread at all.
    removed = await client.post(f"{base}/posts/{post_id}/edit", data=_form(s["csrf"], thread_remove="0", **changed))
    html = await removed.text()
    assert removed.status == 200 and "thread.0.media_ids" not in html
    assert [_textarea(html, f"thread.{n}") for n in range(3)] == ["3/4 Croissants at 8", "4/4 See you", None]
    none = {k: v for k, v in changed.items() if not k.startswith("thread__")}
    saved = await client.post(f"{base}/posts/{post_id}/edit", data=_form(
        s["csrf"], action="draft", thread__0="", **none), allow_redirects=False)
    assert saved.status == 303, await saved.text()
    post = await _api_post(client, key, post_id)
    assert post["thread"] == [] and post["thread_mode"] is None and post["first_comment"] is None
    edit = await (await client.get(f"{base}/posts/{post_id}/edit")).text()
    assert _textarea(edit, "thread.0") == "" and _textarea(edit, "thread.1") is None

    # A post past editing cannot have its parts changed either.
    async with engine.begin() as conn:
        await conn.execute(posts.update().where(posts.c.id == post_id).values(status="published"))
    refused = await client.post(f"{base}/posts/{post_id}/edit", data=_form(s["csrf"], thread_add="1", **none))
    assert refused.status == 409


@pytest.fixture
async def worker_client(aiohttp_client: Any, settings: Any, engine: Any, clock: Any) -> Any:
    """The app with its embedded worker, publishing to the sandbox networks (a part that can be
    retried is tried again after a tenth of a second)."""
    from ouipost.app import create_app

    return await aiohttp_client(create_app(settings.with_overrides(workers=2, publish_backoff_seconds=0.1),
                                           engine=engine, clock=clock))


def _parts_on_page(html: str, network_name: str) -> list[dict[str, Any]]:
    """The follow-ups the post page lists under a network's result, in order."""
    match = re.search(rf'<ol class="parts" aria-label="Follow-ups on {re.escape(network_name)}">(.*?)</ol>', html, re.S)
    assert match, f"no follow-ups under {network_name}"
    found = []
    for item in re.findall(r'<li class="part"(.*?)</li>', match.group(1), re.S):
        link = re.search(r'<a href="([^"]+)"', item)
        error = re.search(r'<p class="error-line"><code>([^<]+)</code> ([^<]*)</p>', item)
        found.append({
            "name": re.search(r'<span class="part-name">([^<]+)</span>', item).group(1),  # type: ignore[union-attr]
            "kind": re.search(r'<span class="muted small">([^<]+)</span>', item).group(1),  # type: ignore[union-attr]
            "status": re.search(r'class="status status-([a-z-]+)"', item).group(1),  # type: ignore[union-attr]
            "url": link.group(1) if link else None,
            "error": (error.group(1), error.group(2).strip()) if error else None,
        })
    return found


async def test_the_post_page_lists_each_networks_follow_ups_after_publishing(
    worker_client: Any, make_user: Any, make_key: Any, engine: Any, clock: Any, sandbox: Any,
) -> None:
    client = worker_client
    user = await make_user("editor")
    ws = await _workspace(engine, clock, "Bakery", member=user["id"])
    key = await make_key(workspace=ws)
    await connect(client, key, "twitter")
    await connect(client, key, "bluesky")
    csrf = await client_sign_in(client, user["email"], PASSWORD)
    base = f"/ui/w/{ws}"
    # On Bluesky the post and part one are answered; part two reaches the network, its answer is lost.
    sandbox.add_fault("bluesky", "drop_after", path_contains="createRecord", after=2)
    response = await client.post(f"{base}/compose", data=_form(
        csrf, content="1/4 We open on Monday", platforms=["twitter", "bluesky"], action="publish",
        first_comment="Menu in the comments", thread_mode="thread", thread__0="2/4 Fresh bread from 7 am",
        thread__1="3/4 Croissants at 8", thread__2="4/4 See you"), allow_redirects=False)
    assert response.status == 303, await response.text()
    post_id = response.headers["Location"].rsplit("/", 1)[1]
    page = await (await client.get(response.headers["Location"])).text()
    assert "Published on some networks only" in page
    api = await _api_post(client, key, post_id)
    assert api["status"] == "partially_published"
    by_network = {p["platform"]: p["parts"] for p in api["platform_posts"]}

    x = _parts_on_page(page, "Twitter/X")
    assert [(p["name"], p["kind"], p["status"]) for p in x] == [
        ("First comment", "comment", "published"), ("Thread part 1", "reply", "published"),
        ("Thread part 2", "reply", "published"), ("Thread part 3", "reply", "published")]
    assert [p["url"] for p in x] == [p["url"] for p in by_network["twitter"]]
    assert all(p["url"].startswith("https://") and p["error"] is None for p in x)

    bluesky = _parts_on_page(page, "Bluesky")
    assert [(p["name"], p["status"], (p["error"] or ("",))[0]) for p in bluesky] == [
        ("First comment", "published", ""), ("Thread part 1", "failed", "OUTCOME_UNKNOWN"),
        ("Thread part 2", "failed", "THREAD_BROKEN"), ("Thread part 3", "failed", "THREAD_BROKEN")]
    assert bluesky[0]["url"] == by_network["bluesky"][0]["url"] and bluesky[1]["url"] is None
    for shown, given in zip(bluesky[1:], by_network["bluesky"][1:], strict=True):
        assert shown["error"] == (given["error"]["code"], str(escape(given["error"]["message"])))
    assert "Retry failed follow-ups" in page and "Retry failed networks" not in page

    # Retried through the post page: the failed parts only, then everything is published.
    retried = await client.post(f"{base}/posts/{post_id}/publish", data={"csrf_token": csrf}, allow_redirects=False)
    assert retried.status == 303
    page = await (await client.get(retried.headers["Location"])).text()
    assert "Published." in page
    assert [p["status"] for p in _parts_on_page(page, "Bluesky")] == ["published"] * 4
    assert "Retry failed" not in page
