"""The approval steps are webhook events an endpoint can subscribe to (and unknown ones are refused)."""

from __future__ import annotations

from typing import Any

from ouipost.app import create_app


async def test_webhooks_subscribe_to_the_approval_events(aiohttp_client: Any, settings: Any, engine: Any,
                                                         clock: Any, make_user: Any) -> None:
    from tests.admin.conftest import PASSWORD, login

    client = await aiohttp_client(create_app(settings.with_overrides(webhook_allow_private=True), engine=engine,
                                             clock=clock))
    user = await make_user("admin")
    headers = {"Authorization": f"Bearer {await login(client, user['email'], PASSWORD)}"}
    steps = ["post.submitted", "post.approved", "post.rejected"]
    resp = await client.post("/admin/webhooks", headers=headers,
                             json={"url": "http://127.0.0.1:9/review", "events": steps})
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["data"]["webhook"]["events"] == steps
    resp = await client.post("/admin/webhooks", headers=headers,
                             json={"url": "http://127.0.0.1:9/review", "events": ["post.reviewed"]})
    assert resp.status == 422
