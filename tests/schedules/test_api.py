"""The five schedule endpoints: shapes of the reference, validation, pagination, tenant boundary."""

from __future__ import annotations

from typing import Any

import pytest

from ouipost.core.ids import looks_like
from tests.schedules.helpers import MORNING_SLOTS, add_account, create_schedule, get_schedule


async def test_create_answers_201_with_the_schedule(client: Any, key: Any) -> None:
    sched = await create_schedule(
        client, key, name="Morning Posts", description="Daily morning content", timezone="Europe/Paris",
        slots=MORNING_SLOTS,
    )
    assert looks_like("sched", sched["id"])
    assert sched["name"] == "Morning Posts" and sched["description"] == "Daily morning content"
    assert sched["timezone"] == "Europe/Paris" and sched["is_active"] is True
    assert sched["created_at"] == "2024-01-24T12:00:00Z"
    assert [{k: v for k, v in s.items() if k != "id"} for s in sched["slots"]] == MORNING_SLOTS
    assert all(looks_like("slot", s["id"]) for s in sched["slots"])
    assert sched["upcoming_posts"] == []
    # Now is Wednesday 2024-01-24 12:00 UTC (13:00 in Paris): the next slot is Monday 09:00 Paris.
    assert sched["stats"] == {"total_published": 0, "this_week": 0, "next_slot": "2024-01-29T09:00:00+01:00"}


async def test_timezone_defaults_to_the_workspace_zone(client: Any, key: Any) -> None:
    sched = await create_schedule(client, key)
    assert sched["timezone"] == "UTC"
    resp = await client.put(
        f"/api/workspaces/{key.workspace_id}", json={"settings": {"timezone": "America/New_York"}},
        headers=key.headers(),
    )
    assert resp.status == 200
    sched = await create_schedule(client, key)
    assert sched["timezone"] == "America/New_York"
    # 12:00 UTC is 07:00 in New York: the Wednesday 09:00 slot of today is still ahead.
    assert sched["stats"]["next_slot"] == "2024-01-24T09:00:00-05:00"


async def test_get_shows_the_reference_shape(client: Any, key: Any) -> None:
    made = await create_schedule(client, key, timezone="Europe/Paris")
    sched = await get_schedule(client, key, made["id"])
    assert set(sched) == {
        "id", "name", "description", "timezone", "is_active", "slots", "upcoming_posts", "stats",
        "created_at", "updated_at",
    }
    assert sched["slots"] == made["slots"]
    assert sched["description"] is None


async def test_list_paginates_in_creation_order_without_details(client: Any, key: Any) -> None:
    for i in range(5):
        await create_schedule(client, key, name=f"sched {i}")
    resp = await client.get("/api/schedules?limit=2&page=2", headers=key.headers())
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert [s["name"] for s in data["schedules"]] == ["sched 2", "sched 3"]
    assert data["pagination"] == {"current_page": 2, "total_pages": 3, "total_items": 5, "per_page": 2}
    item = data["schedules"][0]
    assert {"id", "name", "description", "timezone", "is_active", "slots", "created_at"} <= set(item)
    assert "upcoming_posts" not in item


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "page=0", "sort=name"])
async def test_bad_pagination_is_422(client: Any, key: Any, query: str) -> None:
    resp = await client.get(f"/api/schedules?{query}", headers=key.headers())
    assert resp.status == 422
    assert query.split("=")[0] in (await resp.json())["error"]["details"]


async def test_put_renames_pauses_and_replaces_slots_with_new_ids(client: Any, key: Any) -> None:
    made = await create_schedule(client, key, timezone="Europe/Paris")
    resp = await client.put(
        f"/api/schedules/{made['id']}",
        json={"name": "Updated Schedule Name", "is_active": False,
              "slots": [{"day": "tuesday", "time": "10:00", "platforms": ["facebook"]}]},
        headers=key.headers(),
    )
    assert resp.status == 200, await resp.text()
    data = (await resp.json())["data"]
    sched = data["schedule"]
    assert data["unscheduled_posts"] == []
    assert sched["name"] == "Updated Schedule Name" and sched["is_active"] is False
    assert sched["description"] is None and sched["timezone"] == "Europe/Paris"
    assert [(s["day"], s["time"], s["platforms"]) for s in sched["slots"]] == [("tuesday", "10:00", ["facebook"])]
    assert sched["slots"][0]["id"] not in {s["id"] for s in made["slots"]}
    assert sched["stats"]["next_slot"] == "2024-01-30T10:00:00+01:00"
    assert await get_schedule(client, key, made["id"]) == sched


async def test_put_without_slots_keeps_them(client: Any, key: Any) -> None:
    made = await create_schedule(client, key)
    resp = await client.put(f"/api/schedules/{made['id']}", json={"description": "Still here"}, headers=key.headers())
    sched = (await resp.json())["data"]["schedule"]
    assert sched["slots"] == made["slots"] and sched["description"] == "Still here"


async def test_delete_answers_the_reference_message_then_404(client: Any, key: Any) -> None:
    made = await create_schedule(client, key)
    resp = await client.delete(f"/api/schedules/{made['id']}", headers=key.headers())
    assert resp.status == 200
    assert (await resp.json())["data"] == {"message": "Schedule deleted successfully"}
    resp = await client.get(f"/api/schedules/{made['id']}", headers=key.headers())
    assert resp.status == 404


async def test_slots_may_name_accounts_of_the_workspace(client: Any, key: Any, engine: Any, clock: Any) -> None:
    account = await add_account(engine, key.workspace_id, "facebook", clock.now())
    sched = await create_schedule(client, key, slots=[{"day": "friday", "time": "17:30", "platforms": [account]}])
    assert sched["slots"][0]["platforms"] == [account]


# ------------------------------------------------------------------------------------------------ validation

SLOT = {"day": "monday", "time": "09:00", "platforms": ["facebook"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "slots"),
        ({"name": "x", "slots": []}, "slots"),
        ({"name": "x", "slots": "monday"}, "slots"),
        ({"slots": [SLOT]}, "name"),
        ({"name": "  ", "slots": [SLOT]}, "name"),
        ({"name": "x" * 101, "slots": [SLOT]}, "name"),
        ({"name": "x", "slots": [{**SLOT, "day": "funday"}]}, "slots"),
        ({"name": "x", "slots": [{**SLOT, "day": "Monday"}]}, "slots"),
        ({"name": "x", "slots": [{**SLOT, "time": "25:00"}]}, "slots"),
        ({"name": "x", "slots": [{**SLOT, "time": "9am"}]}, "slots"),
        ({"name": "x", "slots": [{**SLOT, "time": "9:00"}]}, "slots"),
        ({"name": "x", "slots": [{**SLOT, "platforms": []}]}, "slots"),
        ({"name": "x", "slots": [{"day": "monday", "time": "09:00"}]}, "slots"),
        ({"name": "x", "slots": [{**SLOT, "colour": "red"}]}, "slots"),
        ({"name": "x", "slots": [SLOT, {**SLOT, "platforms": ["twitter"]}]}, "slots"),
        ({"name": "x", "slots": [{**SLOT, "platforms": ["myspace"]}]}, "slots"),
        ({"name": "x", "slots": [{**SLOT, "platforms": ["acc_01930000-0000-7000-8000-000000000000"]}]}, "slots"),
        ({"name": "x", "timezone": "Mars/Olympus", "slots": [SLOT]}, "timezone"),
        ({"name": "x", "timezone": "../../etc/passwd", "slots": [SLOT]}, "timezone"),
        ({"name": "x", "is_active": "yes", "slots": [SLOT]}, "is_active"),
        ({"name": "x", "owner": "me", "slots": [SLOT]}, "owner"),
    ],
)
async def test_invalid_create_is_422_and_creates_nothing(client: Any, key: Any, body: dict, field: str) -> None:
    resp = await client.post("/api/schedules", json=body, headers=key.headers())
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"], error
    listed = await (await client.get("/api/schedules", headers=key.headers())).json()
    assert listed["data"]["pagination"]["total_items"] == 0


async def test_details_point_at_the_slot_and_field(client: Any, key: Any) -> None:
    body = {"name": "x", "slots": [SLOT, {**SLOT, "day": "funday", "time": "9am"}]}
    error = (await (await client.post("/api/schedules", json=body, headers=key.headers())).json())["error"]
    assert set(error["details"]["slots"]["1"]) == {"day", "time"}
    assert "funday" in error["details"]["slots"]["1"]["day"][0]

    body = {"name": "x", "slots": [SLOT, {**SLOT, "platforms": ["twitter"]}]}
    error = (await (await client.post("/api/schedules", json=body, headers=key.headers())).json())["error"]
    assert "already on monday at 09:00" in error["details"]["slots"]["1"]["time"][0]

    body = {"name": "x", "owner": "me", "slots": [SLOT]}
    error = (await (await client.post("/api/schedules", json=body, headers=key.headers())).json())["error"]
    assert "owner" in error["message"]


async def test_another_workspaces_account_is_reported_like_an_unknown_one(
    client: Any, key: Any, make_key: Any, engine: Any, clock: Any
) -> None:
    other = await make_key(tier="enterprise")
    foreign = await add_account(engine, other.workspace_id, "facebook", clock.now())
    unknown = "acc_01930000-0000-7000-8000-000000000000"
    answers = []
    for account in (foreign, unknown):
        body = {"name": "x", "slots": [{**SLOT, "platforms": [account]}]}
        resp = await client.post("/api/schedules", json=body, headers=key.headers())
        assert resp.status == 422
        error = (await resp.json())["error"]
        answers.append(str(error).replace(account, "ACCOUNT"))
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    "body",
    [
        {"slots": []},
        {"name": None},
        {"slots": [{**SLOT, "time": "25:00"}]},
        {"slots": [{"day": "monday", "time": "09:00"}]},
        {"slots": [{"day": "monday"}]},
        {"slots": [{**SLOT, "platforms": ["myspace"]}]},
        {"timezone": "Nowhere/Land"},
        {"is_active": 0},
        {"unknown": 1},
    ],
)
async def test_invalid_update_is_422_and_changes_nothing(client: Any, key: Any, body: dict) -> None:
    made = await create_schedule(client, key)
    resp = await client.put(f"/api/schedules/{made['id']}", json=body, headers=key.headers())
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["error"]["code"] == "VALIDATION_ERROR"
    assert await get_schedule(client, key, made["id"]) == made


async def test_a_body_that_is_not_an_object_is_422(client: Any, key: Any) -> None:
    resp = await client.post("/api/schedules", json=[SLOT], headers=key.headers())
    assert resp.status == 422


# ------------------------------------------------------------------------------------------------ tenancy, auth


async def test_another_workspaces_schedule_is_404_everywhere(client: Any, key: Any, make_key: Any) -> None:
    other = await make_key(tier="enterprise")
    theirs = await create_schedule(client, other)
    for method, body in (("GET", None), ("PUT", {"name": "mine now"}), ("DELETE", None)):
        resp = await client.request(method, f"/api/schedules/{theirs['id']}", json=body, headers=key.headers())
        assert resp.status == 404, method
        assert (await resp.json())["error"]["code"] == "NOT_FOUND"
    listed = await (await client.get("/api/schedules", headers=key.headers())).json()
    assert listed["data"]["schedules"] == []
    assert (await get_schedule(client, other, theirs["id"]))["name"] == "Morning Posts"


async def test_a_workspace_the_key_cannot_reach_is_404(client: Any, key: Any, make_key: Any) -> None:
    other = await make_key(tier="enterprise")
    resp = await client.get("/api/schedules", headers=key.headers(other.workspace_id))
    assert resp.status == 404


async def test_permissions_are_checked(client: Any, make_key: Any) -> None:
    reader = await make_key(permissions=["schedules.read"], tier="enterprise")
    resp = await client.post("/api/schedules", json={"name": "x", "slots": [SLOT]}, headers=reader.headers())
    assert resp.status == 403
    assert (await client.get("/api/schedules", headers=reader.headers())).status == 200
    writer = await make_key(permissions=["posts.read"], tier="enterprise")
    assert (await client.get("/api/schedules", headers=writer.headers())).status == 403


async def test_the_workspace_header_is_required(client: Any, key: Any) -> None:
    resp = await client.get("/api/schedules", headers={"X-API-Key": key.secret})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "WORKSPACE_REQUIRED"
