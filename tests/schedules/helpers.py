"""Small helpers shared by the schedule tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ouipost.core.ids import new_id
from ouipost.db.tables import social_accounts

MORNING_SLOTS = [
    {"day": "monday", "time": "09:00", "platforms": ["facebook", "twitter"]},
    {"day": "wednesday", "time": "09:00", "platforms": ["facebook", "linkedin"]},
]


async def create_schedule(client: Any, key: Any, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Morning Posts")
    body.setdefault("slots", MORNING_SLOTS)
    resp = await client.post("/api/schedules", json=body, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["schedule"]


async def get_schedule(client: Any, key: Any, schedule_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/schedules/{schedule_id}", headers=key.headers())
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]["schedule"]


async def create_post(client: Any, key: Any, platforms: list[str], content: str = "Hello") -> dict[str, Any]:
    resp = await client.post("/api/posts", json={"content": content, "platforms": platforms}, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["post"]


async def add_account(engine: Any, workspace_id: str, platform: str, now: datetime) -> str:
    """A connected account row (connecting goes through OAuth, which these tests do not need)."""
    account_id = new_id("acc")
    async with engine.begin() as conn:
        await conn.execute(sa.insert(social_accounts).values(
            id=account_id, workspace_id=workspace_id, platform=platform, remote_id=account_id, type="page",
            name=f"{platform} page", status="active", is_default=False, settings={}, metadata={},
            permissions=[], stats={}, connected_at=now, updated_at=now,
        ))
    return account_id
