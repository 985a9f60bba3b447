"""The schedules pages without a browser: the slot-row form with the API's own messages, create and
edit, pause/resume, the queue in order, delete after a confirmation, roles and tenancy."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ouipost.db.schedule_tables import schedule_entries, schedule_slots, schedules
from ouipost.db.tables import posts
from ouipost.schedules.slots import Slot
from ouipost.ui.views.schedules import parse_schedule_form, slots_summary
from tests.test_accounts import connect as api_connect
from tests.test_publishing import create_post
from tests.ui.test_accounts_ui import signed_in


def slot_form(token: str, name: str, rows: list[tuple[str, str, list[str]]], **extra: Any) -> list[tuple[str, str]]:
    """The form as a browser sends it: 7 rows, the given ones filled, the others empty."""
    data = [("csrf_token", token), ("name", name), ("timezone", extra.pop("timezone", "Europe/Paris")),
            ("description", extra.pop("description", "")), ("rows", str(max(7, len(rows))))]
    for index in range(max(7, len(rows))):
        day, time, platforms = rows[index] if index < len(rows) else ("", "", [])
        data += [(f"slot-{index}-day", day), (f"slot-{index}-time", time)]
        data += [(f"slot-{index}-platforms", p) for p in platforms]
    data += list(extra.items())
    return data


async def schedule_count(engine: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(schedules)) or 0)


async def api_schedule(client: Any, key: Any, platforms: list[str], name: str = "Weekdays",
                       timezone: str = "Europe/Paris") -> dict[str, Any]:
    slots = [{"day": day, "time": "09:00", "platforms": platforms}
             for day in ("monday", "tuesday", "wednesday", "thursday", "friday")]
    resp = await client.post("/api/schedules", json={"name": name, "timezone": timezone, "slots": slots},
                             headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["schedule"]


async def queue(client: Any, key: Any, schedule_id: str, content: str) -> dict[str, Any]:
    post = await create_post(client, key, ["bluesky"], content=content)
    resp = await client.post(f"/api/posts/{post['id']}/schedule", json={"schedule_id": schedule_id},
                             headers=key.headers())
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]["post"]


def test_slot_summary_is_in_day_order_and_shortened() -> None:
    slots = [Slot("s1", "friday", "17:00", ("twitter",)), Slot("s2", "monday", "09:00", ("bluesky", "acc_1")),
             Slot("s3", "sunday", "10:00", ("twitter",)), Slot("s4", "tuesday", "08:00", ("twitter",)),
             Slot("s5", "monday", "08:00", ("twitter",))]
    text = slots_summary(slots, {"twitter": "Twitter/X", "bluesky": "Bluesky", "acc_1": "Bluesky: Alice"})
    assert text == ("Mon 08:00 (Twitter/X) · Mon 09:00 (Bluesky, Bluesky: Alice) · Tue 08:00 (Twitter/X) · "
                    "Fri 17:00 (Twitter/X) · +1 more")
    assert slots_summary([], {}) == "no slots"


def test_the_form_becomes_the_apis_json_and_empty_rows_are_ignored() -> None:
    from multidict import MultiDict, MultiDictProxy

    form = MultiDictProxy(MultiDict([
        ("name", " Mornings "), ("timezone", "Europe/Paris"), ("description", ""), ("rows", "7"),
        ("slot-0-day", ""), ("slot-0-time", ""),
        ("slot-1-day", "monday"), ("slot-1-time", "09:00"), ("slot-1-platforms", "twitter"),
        ("slot-1-platforms", "acc_1"), ("slot-3-day", "friday"), ("slot-3-time", ""),
    ]))
    payload, row_of, values = parse_schedule_form(form)
    assert payload == {"name": "Mornings", "timezone": "Europe/Paris", "description": None, "slots": [
        {"day": "monday", "time": "09:00", "platforms": ["twitter", "acc_1"]},
        {"day": "friday", "platforms": []},
    ]}
    assert row_of == [1, 3]
    assert len(values["rows"]) == 7 and values["rows"][3] == {"day": "friday", "time": "", "platforms": []}


async def test_create_a_schedule_with_two_slots_and_find_it_listed(client: Any, make_user: Any, key: Any,
                                                                   engine: Any) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    form = await client.get(f"/ui/w/{ws}/schedules/new")
    html = await form.text()
    assert form.status == 200 and html.count('<fieldset class="slot-row') == 7
    response = await client.post(f"/ui/w/{ws}/schedules/new", data=slot_form(token, "Lunch <posts>", [
        ("monday", "12:30", ["twitter", "bluesky"]), ("thursday", "08:15", ["linkedin"]),
    ]), allow_redirects=False)
    assert response.status == 303, await response.text()
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(schedules))).mappings().one()
        slots = (await conn.execute(sa.select(schedule_slots).order_by(schedule_slots.c.position))).mappings().all()
    assert response.headers["Location"] == f"/ui/w/{ws}/schedules/{row['id']}"
    assert row["name"] == "Lunch <posts>" and row["timezone"] == "Europe/Paris" and row["is_active"]
    assert [(s["day"], s["time"], s["platforms"]) for s in slots] == [
        ("monday", "12:30", ["twitter", "bluesky"]), ("thursday", "08:15", ["linkedin"])]

    listing = await (await client.get(f"/ui/w/{ws}/schedules")).text()
    assert "Lunch &lt;posts&gt;" in listing and "Lunch <posts>" not in listing
    assert "Mon 12:30 (Twitter/X, Bluesky) · Thu 08:15 (LinkedIn)" in listing
    assert "Europe/Paris" in listing and "status-active" in listing
    assert "CET" in listing or "CEST" in listing  # next slot in the schedule's zone


async def test_bad_slots_show_the_apis_messages_next_to_their_fields_and_save_nothing(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    response = await client.post(f"/ui/w/{ws}/schedules/new", data=slot_form(token, "Broken", [
        ("", "", []),  # an empty first row is skipped; the errors below keep their own rows
        ("funday", "09:00", ["twitter"]),
        ("monday", "25:00", ["twitter"]),
        ("tuesday", "10:00", []),
    ]))
    html = await response.text()
    assert response.status == 422
    assert 'id="slots-1-day-errors"' in html and "Unknown day &#39;funday&#39;; use one of monday" in html
    assert 'id="slots-2-time-errors"' in html and "Use a 24-hour time as HH:MM, such as 09:00" in html
    assert 'id="slots-3-platforms-errors"' in html and "Length must be between 1 and 50." in html
    assert 'id="slots-0-' not in html
    assert 'value="Broken"' in html and 'value="25:00"' in html and '<option value="funday" selected>' in html
    assert await schedule_count(engine) == 0


async def test_no_slot_at_all_and_unknown_accounts_are_refused_in_the_apis_words(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    empty = await client.post(f"/ui/w/{ws}/schedules/new", data=slot_form(token, "", []))
    html = await empty.text()
    assert empty.status == 422
    assert "Give between 1 and 500 slots" in html and 'id="name-errors"' in html
    unknown = await client.post(f"/ui/w/{ws}/schedules/new", data=slot_form(token, "Accounts", [
        ("monday", "09:00", ["acc_0000000000"]),
    ]))
    html = await unknown.text()
    assert unknown.status == 422 and 'id="slots-0-platforms-errors"' in html
    assert "Unknown account acc_0000000000" in html
    assert await schedule_count(engine) == 0


async def test_add_more_rows_rerenders_with_the_values_and_saves_nothing(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    token = await signed_in(client, make_user)
    response = await client.post(f"/ui/w/{key.workspace_id}/schedules/new", data=slot_form(
        token, "Many", [("monday", "09:00", ["twitter"])], more_rows="1"))
    html = await response.text()
    assert response.status == 200
    assert html.count('<fieldset class="slot-row') == 14 and 'name="rows" value="14"' in html
    assert 'value="Many"' in html and 'value="09:00"' in html
    assert await schedule_count(engine) == 0


async def test_the_schedule_page_shows_the_queue_in_order_in_the_schedules_zone(
    client: Any, make_user: Any, key: Any,
) -> None:
    await api_connect(client, key, "bluesky")
    schedule = await api_schedule(client, key, ["bluesky"], timezone="America/New_York")
    first = await queue(client, key, schedule["id"], "First <script>alert(1)</script>")
    second = await queue(client, key, schedule["id"], "Second in line")
    await signed_in(client, make_user)
    ws = key.workspace_id
    html = await (await client.get(f"/ui/w/{ws}/schedules/{schedule['id']}")).text()
    assert "First &lt;script&gt;" in html and "<script>alert" not in html
    assert html.index(f"/ui/w/{ws}/posts/{first['id']}") < html.index(f"/ui/w/{ws}/posts/{second['id']}")
    assert " 09:00 E" in html  # 09:00 EST/EDT: slot times in the schedule's zone
    assert ">2</span><span class=\"label\">queued" in html
    listing = await (await client.get(f"/ui/w/{ws}/schedules")).text()
    assert '<td class="num">2</td>' in listing


async def test_pause_and_resume(client: Any, make_user: Any, key: Any, engine: Any) -> None:
    await api_connect(client, key, "bluesky")
    schedule = await api_schedule(client, key, ["bluesky"])
    await queue(client, key, schedule["id"], "Held while paused")
    token = await signed_in(client, make_user)
    here = f"/ui/w/{key.workspace_id}/schedules/{schedule['id']}"
    response = await client.post(f"{here}/pause", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == here
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(schedules.c.is_active)) is False
        assert set((await conn.execute(sa.select(schedule_entries.c.held))).scalars()) == {True}
    html = await (await client.get(here)).text()
    assert "paused" in html and f'action="{here}/resume"' in html and f'action="{here}/pause"' not in html

    response = await client.post(f"{here}/resume", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(schedules.c.is_active)) is True
        assert set((await conn.execute(sa.select(schedule_entries.c.held))).scalars()) == {False}


async def test_edit_keeps_values_on_errors_and_saves_new_slots(client: Any, make_user: Any, key: Any,
                                                               engine: Any) -> None:
    schedule = await api_schedule(client, key, ["twitter"])
    token = await signed_in(client, make_user)
    here = f"/ui/w/{key.workspace_id}/schedules/{schedule['id']}"
    form = await (await client.get(f"{here}/edit")).text()
    assert form.count('<fieldset class="slot-row') == 8 and 'value="Weekdays"' in form
    bad = await client.post(f"{here}/edit", data=slot_form(token, "Renamed", [("monday", "9am", ["twitter"])]))
    assert bad.status == 422 and 'id="slots-0-time-errors"' in await bad.text()
    good = await client.post(f"{here}/edit", data=slot_form(token, "Renamed", [("sunday", "18:00", ["bluesky"])],
                                                            timezone="Asia/Tokyo"), allow_redirects=False)
    assert good.status == 303
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(schedules))).mappings().one()
        slots = (await conn.execute(sa.select(schedule_slots))).mappings().all()
    assert (row["name"], row["timezone"]) == ("Renamed", "Asia/Tokyo")
    assert [(s["day"], s["time"], s["platforms"]) for s in slots] == [("sunday", "18:00", ["bluesky"])]


async def test_delete_confirmation_counts_the_queue_and_returns_it_to_draft(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    await api_connect(client, key, "bluesky")
    schedule = await api_schedule(client, key, ["bluesky"], name="Doomed")
    post = await queue(client, key, schedule["id"], "Going back to draft")
    token = await signed_in(client, make_user)
    here = f"/ui/w/{key.workspace_id}/schedules/{schedule['id']}"
    page = await client.get(f"{here}/delete")
    assert page.status == 200 and "1 queued post will return to draft" in await page.text()
    response = await client.post(f"{here}/delete", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/ui/w/{key.workspace_id}/schedules"
    assert await schedule_count(engine) == 0
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(posts.c.status).where(posts.c.id == post["id"])) == "draft"
    listing = await (await client.get(response.headers["Location"])).text()
    assert "Schedule “Doomed” deleted. 1 queued post returned to draft." in listing


async def test_a_viewer_sees_no_control_and_forged_posts_change_nothing(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    schedule = await api_schedule(client, key, ["twitter"], name="Read only")
    ws = key.workspace_id
    token = await signed_in(client, make_user, "viewer", workspace=ws, engine=engine)
    here = f"/ui/w/{ws}/schedules/{schedule['id']}"
    listing = await (await client.get(f"/ui/w/{ws}/schedules")).text()
    page = await (await client.get(here)).text()
    assert "Read only" in listing and "/schedules/new" not in listing
    assert "/edit" not in page and "/pause" not in page and "/delete" not in page
    for path in (f"/ui/w/{ws}/schedules/new", f"{here}/edit", f"{here}/delete"):
        assert (await client.get(path)).status == 403, path
    for path in (f"{here}/pause", f"{here}/delete", f"{here}/edit", f"/ui/w/{ws}/schedules/new"):
        response = await client.post(path, data=slot_form(token, "Hijacked", [("monday", "09:00", ["twitter"])]))
        assert response.status == 403, path
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(schedules))).mappings().one()
    assert (row["name"], row["is_active"]) == ("Read only", True)
    assert await schedule_count(engine) == 1


async def test_another_workspaces_schedules_are_not_found(client: Any, make_user: Any, make_key: Any,
                                                          engine: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    foreign = await api_schedule(client, theirs, ["twitter"], name="Theirs")
    token = await signed_in(client, make_user, "editor", workspace=mine.workspace_id, engine=engine)
    assert (await client.get(f"/ui/w/{theirs.workspace_id}/schedules")).status == 404
    assert (await client.get(f"/ui/w/{mine.workspace_id}/schedules/{foreign['id']}")).status == 404
    response = await client.post(f"/ui/w/{mine.workspace_id}/schedules/{foreign['id']}/delete",
                                 data={"csrf_token": token})
    assert response.status == 404
    assert "Theirs" not in await (await client.get(f"/ui/w/{mine.workspace_id}/schedules")).text()
    assert await schedule_count(engine) == 1
