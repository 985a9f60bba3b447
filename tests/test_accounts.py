"""Connecting social accounts through the documented OAuth steps (against the sandbox over HTTP),
Bluesky app passwords, and what users can do with accounts afterwards."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import sqlalchemy as sa

from ouipost.db.tables import post_targets, posts, social_accounts

OAUTH_NETWORKS = ["facebook", "instagram", "twitter", "linkedin", "tiktok", "youtube", "pinterest", "threads"]
CALLBACK = "https://app.example.com/oauth/callback"
BLUESKY = {"platform": "bluesky", "identifier": "alice.bsky.social", "app_password": "abcd-efgh-ijkl-mnop"}


async def start_oauth(client: Any, key: Any, platform: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post("/api/accounts", json={"platform": platform, "callback_url": CALLBACK, **extra},
                             headers=key.headers())
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]


async def authorize(auth_url: str) -> dict[str, str]:
    """What a browser does: open the consent URL; the sandbox redirects at once to the callback."""
    async with aiohttp.ClientSession() as session, session.get(auth_url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    assert location.startswith(CALLBACK)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def connect(client: Any, key: Any, platform: str) -> list[dict[str, Any]]:
    if platform == "bluesky":
        resp = await client.post("/api/accounts", json=BLUESKY, headers=key.headers())
        assert resp.status == 201, await resp.text()
        return [(await resp.json())["data"]["account"]]
    started = await start_oauth(client, key, platform)
    params = await authorize(started["auth_url"])
    assert params["state"] == started["state"]
    resp = await client.post("/api/accounts/callback", json={"state": params["state"], "code": params["code"]},
                             headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["accounts"]


@pytest.mark.parametrize("platform", OAUTH_NETWORKS)
async def test_oauth_flow_connects_publishable_identities(client: Any, key: Any, platform: str) -> None:
    started = await start_oauth(client, key, platform)
    assert started["expires_in"] == 600 and len(started["state"]) >= 32
    connected = await connect_with(client, key, started)
    assert connected, platform
    for account in connected:
        assert account["id"].startswith("acc_") and account["platform"] == platform
        assert account["status"] == "active" and account["health"]["token_valid"] is True
    listed = await (await client.get("/api/accounts", headers=key.headers())).json()
    assert {a["id"] for a in listed["data"]["accounts"]} == {a["id"] for a in connected}
    assert sum(a["is_default"] for a in listed["data"]["accounts"]) == 1


async def connect_with(client: Any, key: Any, started: dict[str, Any]) -> list[dict[str, Any]]:
    params = await authorize(started["auth_url"])
    resp = await client.post("/api/accounts/callback", json={"state": params["state"], "code": params["code"]},
                             headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["accounts"]


async def test_facebook_grant_gives_one_account_per_page(client: Any, key: Any) -> None:
    accounts = await connect(client, key, "facebook")
    assert len(accounts) == 2
    assert {a["type"] for a in accounts} == {"page"}


async def test_bluesky_connects_with_an_app_password(client: Any, key: Any) -> None:
    [account] = await connect(client, key, "bluesky")
    assert account["platform"] == "bluesky" and account["username"] == "alice.bsky.social"


async def test_bluesky_wrong_app_password_is_refused_and_nothing_connects(client: Any, key: Any) -> None:
    resp = await client.post("/api/accounts", json={**BLUESKY, "app_password": "wrong-pass-word-xxxx"},
                             headers=key.headers())
    assert resp.status == 422
    assert "app_password" in (await resp.json())["error"]["details"]
    listed = await (await client.get("/api/accounts", headers=key.headers())).json()
    assert listed["data"]["accounts"] == []


async def test_reconnecting_an_identity_updates_it_instead_of_duplicating(client: Any, key: Any) -> None:
    first = await connect(client, key, "twitter")
    second = await connect(client, key, "twitter")
    assert [a["id"] for a in first] == [a["id"] for a in second]
    listed = await (await client.get("/api/accounts", headers=key.headers())).json()
    assert len(listed["data"]["accounts"]) == 1


async def test_state_is_single_use(client: Any, key: Any) -> None:
    started = await start_oauth(client, key, "linkedin")
    params = await authorize(started["auth_url"])
    body = {"state": params["state"], "code": params["code"]}
    assert (await client.post("/api/accounts/callback", json=body, headers=key.headers())).status == 201
    again = await client.post("/api/accounts/callback", json=body, headers=key.headers())
    assert again.status == 400
    assert (await again.json())["error"]["code"] == "INVALID_OAUTH_STATE"


async def test_forged_state_is_refused(client: Any, key: Any) -> None:
    resp = await client.post("/api/accounts/callback", json={"state": "forged-" + "x" * 40, "code": "c"},
                             headers=key.headers())
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "INVALID_OAUTH_STATE"


async def test_state_of_another_workspace_or_key_is_refused(client: Any, make_key: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    started = await start_oauth(client, theirs, "twitter")
    params = await authorize(started["auth_url"])
    resp = await client.post("/api/accounts/callback", json={"state": params["state"], "code": params["code"]},
                             headers=mine.headers())
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "INVALID_OAUTH_STATE"
    # the rightful owner can still finish
    ok = await client.post("/api/accounts/callback", json={"state": params["state"], "code": params["code"]},
                           headers=theirs.headers())
    assert ok.status == 201


async def test_expired_state_is_refused(
    aiohttp_client: Any, settings: Any, engine: Any, frozen_clock: Any, make_key: Any
) -> None:
    from ouipost.app import create_app

    client = await aiohttp_client(create_app(settings, engine=engine, clock=frozen_clock))
    key = await make_key()
    started = await start_oauth(client, key, "pinterest")
    params = await authorize(started["auth_url"])
    frozen_clock.advance(seconds=601)
    resp = await client.post("/api/accounts/callback", json={"state": params["state"], "code": params["code"]},
                             headers=key.headers())
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "INVALID_OAUTH_STATE"


async def test_code_the_network_refuses_is_oauth_exchange_failed(client: Any, key: Any) -> None:
    started = await start_oauth(client, key, "youtube")
    resp = await client.post("/api/accounts/callback", json={"state": started["state"], "code": "not-a-real-code"},
                             headers=key.headers())
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "OAUTH_EXCHANGE_FAILED"
    listed = await (await client.get("/api/accounts", headers=key.headers())).json()
    assert listed["data"]["accounts"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "myspace", "callback_url": CALLBACK}, "platform"),
        ({"platform": "twitter", "callback_url": "ftp://example.com/cb"}, "callback_url"),
        ({"platform": "twitter", "callback_url": "javascript:alert(1)"}, "callback_url"),
        ({"platform": "twitter"}, "callback_url"),
        ({"platform": "bluesky", "identifier": "alice.bsky.social"}, "app_password"),
        ({"platform": "twitter", "callback_url": CALLBACK, "identifier": "x"}, "identifier"),
        ({"platform": "twitter", "callback_url": CALLBACK, "scopes": "tweet.write"}, "scopes"),
        ({"platform": "twitter", "callback_url": CALLBACK, "colour": "blue"}, "colour"),
    ],
)
async def test_bad_connect_requests_are_422(client: Any, key: Any, body: dict, field: str) -> None:
    resp = await client.post("/api/accounts", json=body, headers=key.headers())
    assert resp.status == 422
    assert field in (await resp.json())["error"]["details"]


async def test_tokens_are_encrypted_at_rest_and_never_shown(client: Any, key: Any, engine: Any, sandbox: Any) -> None:
    [account] = await connect(client, key, "twitter")
    issued = [t for t, info in sandbox.tokens.items() if info.network == "twitter"]
    assert issued
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(social_accounts).where(social_accounts.c.id == account["id"])))\
            .mappings().one()
    for token in issued:
        assert token not in str(dict(row))
    answers = [await (await client.get(path, headers=key.headers())).text()
               for path in ("/api/accounts", f"/api/accounts/{account['id']}")]
    for token in issued:
        assert all(token not in answer for answer in answers)


async def test_account_detail_has_stats_from_the_network_and_health(client: Any, key: Any) -> None:
    [account] = await connect(client, key, "bluesky")
    body = await (await client.get(f"/api/accounts/{account['id']}", headers=key.headers())).json()
    got = body["data"]["account"]
    assert isinstance(got["stats"]["followers"], int)
    assert got["health"]["token_valid"] is True and got["health"]["last_sync"] is not None
    assert got["metadata"].get("did", "").startswith("did:")


async def test_filters_and_tenant_isolation(client: Any, make_key: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    await connect(client, mine, "twitter")
    await connect(client, mine, "bluesky")
    [foreign] = await connect(client, theirs, "linkedin")
    only_x = await (await client.get("/api/accounts?platform=twitter", headers=mine.headers())).json()
    assert [a["platform"] for a in only_x["data"]["accounts"]] == ["twitter"]
    expired = await (await client.get("/api/accounts?status=expired", headers=mine.headers())).json()
    assert expired["data"]["accounts"] == []
    assert (await client.get("/api/accounts?status=gone", headers=mine.headers())).status == 422
    assert (await client.get("/api/accounts?platform=myspace", headers=mine.headers())).status == 422
    for method, body in (("GET", None), ("PUT", {"name": "x"}), ("DELETE", None)):
        resp = await client.request(method, f"/api/accounts/{foreign['id']}", json=body, headers=mine.headers())
        assert resp.status == 404, method


async def test_update_name_default_and_settings(client: Any, key: Any) -> None:
    pages = await connect(client, key, "facebook")
    other = next(p for p in pages if not p["is_default"])
    resp = await client.put(f"/api/accounts/{other['id']}", headers=key.headers(), json={
        "name": "Updated Account Name", "is_default": True,
        "settings": {"auto_hashtags": True, "default_hashtags": ["company", "#brand"]},
    })
    assert resp.status == 200
    updated = (await resp.json())["data"]["account"]
    assert updated["name"] == "Updated Account Name" and updated["is_default"] is True
    assert updated["settings"] == {"auto_hashtags": True, "default_hashtags": ["#company", "#brand"]}
    listed = await (await client.get("/api/accounts", headers=key.headers())).json()
    assert [a["id"] for a in listed["data"]["accounts"] if a["is_default"]] == [other["id"]]


@pytest.mark.parametrize(
    "body", [{"settings": {"colour": "red"}}, {"settings": {"auto_hashtags": "yes"}}, {"is_default": 1}, {"name": ""}]
)
async def test_bad_updates_are_422_and_change_nothing(client: Any, key: Any, body: dict) -> None:
    [account] = await connect(client, key, "twitter")
    resp = await client.put(f"/api/accounts/{account['id']}", json=body, headers=key.headers())
    assert resp.status == 422
    again = await (await client.get(f"/api/accounts/{account['id']}", headers=key.headers())).json()
    assert again["data"]["account"]["name"] == account["name"]
    assert again["data"]["account"]["settings"] == account["settings"]


async def test_disconnect_revokes_cancels_pending_targets_and_returns_posts_to_draft(
    client: Any, key: Any, engine: Any, sandbox: Any, clock: Any
) -> None:
    [account] = await connect(client, key, "twitter")
    now = clock.now()
    async with engine.begin() as conn:
        # Scheduling arrives with the queue; a scheduled post with a pending target stands in for it.
        await conn.execute(posts.insert().values(
            id="post_01930000-0000-7000-8000-000000000001", workspace_id=key.workspace_id, status="scheduled",
            content="hi", hashtags=[], platforms=[account["id"]], platform_content={}, scheduled_at=now,
            created_at=now, updated_at=now,
        ))
        await conn.execute(post_targets.insert().values(
            id="tgt_01930000-0000-7000-8000-000000000001", post_id="post_01930000-0000-7000-8000-000000000001",
            workspace_id=key.workspace_id, network="twitter", requested=account["id"], account_id=account["id"],
            status="pending", attempts=0, created_at=now, updated_at=now,
        ))
    resp = await client.delete(f"/api/accounts/{account['id']}", headers=key.headers())
    assert resp.status == 200
    assert (await resp.json())["data"] == {"message": "Account disconnected successfully", "cancelled_posts": 1}
    assert any("revoke" in r.path for r in sandbox.requests if r.network == "twitter")
    async with engine.connect() as conn:
        status = await conn.scalar(sa.select(posts.c.status))
        target = (await conn.execute(sa.select(post_targets))).mappings().one()
    assert status == "draft"
    assert target["status"] == "cancelled" and target["account_id"] is None
    assert (await client.get(f"/api/accounts/{account['id']}", headers=key.headers())).status == 404
