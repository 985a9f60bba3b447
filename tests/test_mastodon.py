"""Mastodon through the API: connecting an account of a named server (its app registered once and
kept encrypted), the server guard, publishing text, images with alt text and a video with the
per-network options, validation with Mastodon's counting, analytics and followers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from ouipost.accounts.instance_apps import checked_instance
from ouipost.app import create_app
from ouipost.config import load_settings
from ouipost.core.clock import Clock
from ouipost.db.instance_tables import instance_apps
from ouipost.platforms.mastodon import MastodonAdapter
from tests.analytics.conftest import job_context, target_of
from tests.conftest import make_env
from tests.media_samples import mp4_bytes, png_bytes
from tests.test_accounts import CALLBACK, authorize
from tests.test_publishing import publications, publish, wait_for_status
from workers import sync_accounts, sync_analytics

SERVER = "social.example"


@pytest.fixture(autouse=True)
def fast_media_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MastodonAdapter, "media_poll_interval", 0.01)


async def start(client: Any, key: Any, instance: str = SERVER, **extra: Any) -> Any:
    return await client.post("/api/accounts", headers=key.headers(), json={
        "platform": "mastodon", "instance": instance, "callback_url": CALLBACK, **extra})


async def connect_mastodon(client: Any, key: Any, instance: str = SERVER) -> dict[str, Any]:
    resp = await start(client, key, instance)
    assert resp.status == 200, await resp.text()
    started = (await resp.json())["data"]
    params = await authorize(started["auth_url"])
    resp = await client.post("/api/accounts/callback", json={"state": params["state"], "code": params["code"]},
                             headers=key.headers())
    assert resp.status == 201, await resp.text()
    [account] = (await resp.json())["data"]["accounts"]
    return account


def app_registrations(sandbox: Any, host: str) -> list[Any]:
    return [r for r in sandbox.requests if r.path == f"/{host}/api/v1/apps"]


async def test_connecting_registers_the_app_once_per_server_and_keeps_its_secret_encrypted(
    client: Any, key: Any, sandbox: Any, engine: Any
) -> None:
    account = await connect_mastodon(client, key, "Social.Example")
    assert account["platform"] == "mastodon" and account["status"] == "active"
    assert account["username"] == f"ouipost@{SERVER}"
    assert account["metadata"]["instance"] == SERVER
    assert account["metadata"]["limits"]["max_characters"] == 500
    assert "client_secret" not in str(account)
    again = await connect_mastodon(client, key, f"https://{SERVER}/")
    assert again["id"] == account["id"]  # the same identity, updated in place
    assert len(app_registrations(sandbox, SERVER)) == 1
    other = await connect_mastodon(client, key, "other.example")
    assert other["id"] != account["id"] and len(app_registrations(sandbox, "other.example")) == 1
    apps = sandbox.network_state("mastodon")["hosts"][SERVER]["apps"]
    [plain_secret] = [a["client_secret"] for a in apps.values()]
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(instance_apps))).mappings().all()
    assert {r["instance"] for r in rows} == {SERVER, "other.example"}
    assert all(r["client_secret"].startswith("v1.") for r in rows)
    assert plain_secret not in {r["client_secret"] for r in rows}


@pytest.mark.parametrize(("body", "field"), [
    ({"platform": "mastodon", "callback_url": CALLBACK}, "instance"),
    ({"platform": "mastodon", "instance": "mastodon.social/about", "callback_url": CALLBACK}, "instance"),
    ({"platform": "mastodon", "instance": "mastodon.social"}, "callback_url"),
    ({"platform": "twitter", "instance": "mastodon.social", "callback_url": CALLBACK}, "instance"),
])
async def test_bad_mastodon_connect_requests_are_422(client: Any, key: Any, body: dict, field: str) -> None:
    resp = await client.post("/api/accounts", json=body, headers=key.headers())
    assert resp.status == 422, await resp.text()
    assert field in (await resp.json())["error"]["details"]


async def test_private_and_loopback_servers_are_refused_when_oui_post_connects_directly(
    aiohttp_client: Any, database_url: str, tmp_path: Path, engine: Any, key: Any
) -> None:
    settings = load_settings(make_env(database_url, tmp_path / "direct", OUIPOST_SANDBOX="0"))
    assert settings.effective_platform_base_url is None
    client = await aiohttp_client(create_app(settings.with_overrides(workers=0), engine=engine, clock=Clock()))
    for host in ("127.0.0.1", "10.1.2.3", "[::1]", "169.254.169.254", "localhost"):
        resp = await start(client, key, host)
        assert resp.status == 422, (host, await resp.text())
        assert "instance" in (await resp.json())["error"]["details"]
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(instance_apps)) == 0


async def test_the_guard_is_the_webhooks_one_and_the_sandbox_reaches_any_name() -> None:
    with pytest.raises(Exception, match="private"):
        await checked_instance("192.168.1.10", direct=True, allow_private=False)
    assert await checked_instance("192.168.1.10", direct=True, allow_private=True) == "192.168.1.10"
    assert await checked_instance("anything.invalid", direct=False, allow_private=False) == "anything.invalid"


async def test_a_server_that_is_not_mastodon_is_422_and_one_that_is_down_503(
    client: Any, key: Any, sandbox: Any
) -> None:
    sandbox.add_fault("mastodon", "server_error", path_contains="/down.example/api/v1/apps")
    resp = await start(client, key, "down.example")
    assert resp.status == 503
    sandbox.add_fault("mastodon", "expire_token", path_contains="/odd.example/api/v1/apps")
    resp = await start(client, key, "odd.example")
    assert resp.status == 422 and "odd.example" in (await resp.json())["error"]["message"]


async def upload(client: Any, key: Any, post_id: str, data: bytes, name: str, mime: str, alt: str) -> dict:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=mime)
    form.add_field("alt_text", alt)
    resp = await client.post(f"/api/posts/{post_id}/media", data=form, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


async def create(client: Any, key: Any, content: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post("/api/posts", json={"content": content, "platforms": ["mastodon"], **extra},
                             headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["post"]


async def test_publishes_text_images_with_alt_text_and_a_video_with_options(
    client: Any, key: Any, sandbox: Any
) -> None:
    await connect_mastodon(client, key)
    text = await create(client, key, "Hello fediverse", platform_content={
        "mastodon": {"options": {"visibility": "unlisted", "spoiler_text": "Greetings"}}})
    status, body = await publish(client, key, text["id"])
    assert status == 200 and body["data"]["post"]["status"] == "published", body
    [result] = body["data"]["post"]["platform_results"]
    assert result["url"].startswith(f"https://{SERVER}/@ouipost/")

    pictures = await create(client, key, "Two pictures")
    for i in range(2):
        await upload(client, key, pictures["id"], png_bytes(), f"p{i}.png", "image/png", f"picture {i}")
    status, body = await publish(client, key, pictures["id"])
    assert status == 200 and body["data"]["post"]["status"] == "published", body

    film = await create(client, key, "A clip")
    await upload(client, key, film["id"], mp4_bytes(), "clip.mp4", "video/mp4", "a short clip")
    status, body = await publish(client, key, film["id"])
    assert body["data"]["post"]["status"] in ("published", "publishing"), body

    assert (await wait_for_status(client, key, film["id"], {"published", "failed"}))["status"] == "published"
    first, second, third = publications(sandbox, "mastodon")
    assert first.text == "Hello fediverse"
    assert first.extra["visibility"] == "unlisted" and first.extra["spoiler_text"] == "Greetings"
    assert [m["alt"] for m in second.media] == ["picture 0", "picture 1"]
    assert [(m["type"], m["alt"]) for m in third.media] == [("video", "a short clip")]
    creations = [r for r in sandbox.requests if r.path == f"/{SERVER}/api/v1/statuses" and r.method == "POST"]
    assert len(creations) == 3


async def test_two_posts_saying_the_same_thing_are_two_statuses(client: Any, key: Any, sandbox: Any) -> None:
    """Each publication's Idempotency-Key is its target's: a weekly reminder repeated within the hour
    Mastodon remembers keys is published again, not answered with the first status."""
    await connect_mastodon(client, key)
    ids = []
    for _ in range(2):
        post = await create(client, key, "Stand-up in 5 minutes")
        status, body = await publish(client, key, post["id"])
        assert status == 200 and body["data"]["post"]["status"] == "published", body
        ids.append(body["data"]["post"]["platform_results"][0]["post_id"])
    assert len(set(ids)) == 2 and len(publications(sandbox, "mastodon")) == 2


async def test_validation_counts_urls_as_23_and_refuses_over_500(client: Any, key: Any) -> None:
    await connect_mastodon(client, key)
    long_url = "https://example.com/" + "a" * 600
    resp = await client.post("/api/posts/validate", headers=key.headers(),
                             json={"content": "x" * 470 + " " + long_url, "platforms": ["mastodon"]})
    body = (await resp.json())["data"]
    assert body["valid"] is True, body
    assert body["platforms"]["mastodon"]["characters"] == 470 + 1 + 23
    resp = await client.post("/api/posts/validate", headers=key.headers(),
                             json={"content": "x" * 501, "platforms": ["mastodon"]})
    body = (await resp.json())["data"]
    assert body["valid"] is False and "501 of 500" in str(body["errors"]["mastodon"])


async def test_a_fifth_image_on_a_post_for_mastodon_is_refused_at_upload(client: Any, key: Any) -> None:
    post = await create(client, key, "Many pictures")
    for i in range(4):
        await upload(client, key, post["id"], png_bytes(), f"p{i}.png", "image/png", "p")
    form = aiohttp.FormData()
    form.add_field("file", png_bytes(), filename="p5.png", content_type="image/png")
    resp = await client.post(f"/api/posts/{post['id']}/media", data=form, headers=key.headers())
    assert resp.status == 422 and "mastodon" in (await resp.json())["error"]["details"]


async def test_uploads_follow_the_connected_servers_picture_limit(client: Any, key: Any, sandbox: Any) -> None:
    sandbox.network_state("mastodon")["max_media_attachments"] = 6  # this server takes six, not four
    await connect_mastodon(client, key)
    post = await create(client, key, "Six pictures")
    for i in range(6):
        await upload(client, key, post["id"], png_bytes(), f"p{i}.png", "image/png", "p")
    form = aiohttp.FormData()
    form.add_field("file", png_bytes(), filename="p7.png", content_type="image/png")
    resp = await client.post(f"/api/posts/{post['id']}/media", data=form, headers=key.headers())
    body = await resp.json()
    assert resp.status == 422 and "6" in body["error"]["details"]["mastodon"][0]


async def test_analytics_read_favourites_reblogs_replies_and_followers(
    client: Any, key: Any, engine: Any, sandbox: Any, settings: Any
) -> None:
    await connect_mastodon(client, key)
    post = await create(client, key, "Counted")
    status, body = await publish(client, key, post["id"])
    assert status == 200, body
    target = await target_of(engine, post["id"], "mastodon")
    sandbox.clock_offset = 59 * 60  # the 60th minute under way
    async with aiohttp.ClientSession() as session:
        await sync_analytics.handle(job_context(engine, settings, session, "sync_analytics",
                                                {"target_id": target["id"]}))
        await sync_accounts.handle(job_context(engine, settings, session, "sync_accounts", {}))
    data = (await (await client.get(f"/api/posts/{post['id']}/analytics", headers=key.headers())).json())["data"]
    mastodon = data["analytics"]["by_platform"]["mastodon"]
    assert (mastodon["favourites_count"], mastodon["reblogs_count"], mastodon["replies_count"]) == (30, 10, 6)
    assert data["analytics"]["summary"]["total_engagement"] == 46
    overview = (await (await client.get("/api/analytics", headers=key.headers())).json())["data"]
    assert overview["audience"]["total_followers"] == 321


async def test_the_servers_own_text_limit_decides_at_validation_and_publishing(
    client: Any, key: Any, sandbox: Any
) -> None:
    post = await create(client, key, "y" * 700)  # a draft: no server known yet, so not refused
    resp = await client.post(f"/api/posts/{post['id']}/publish", headers=key.headers())
    assert resp.status == 422  # no account yet
    await connect_mastodon(client, key)  # a 500-character server
    body = (await (await client.post("/api/posts/validate", headers=key.headers(), json={
        "content": "y" * 700, "platforms": ["mastodon"]})).json())["data"]
    assert body["valid"] is False and "700 of 500" in str(body["errors"]["mastodon"])
    resp = await client.post(f"/api/posts/{post['id']}/publish", headers=key.headers())
    assert resp.status == 422 and "700 of 500" in str((await resp.json())["error"]["details"]["mastodon"])

    sandbox.network_state("mastodon")["max_characters"] = 1000
    big = await connect_mastodon(client, key, "big.example")
    resp = await client.put(f"/api/accounts/{big['id']}", json={"is_default": True}, headers=key.headers())
    assert resp.status == 200
    body = (await (await client.post("/api/posts/validate", headers=key.headers(), json={
        "content": "y" * 700, "platforms": ["mastodon"]})).json())["data"]
    assert body["valid"] is True and body["platforms"]["mastodon"]["max_characters"] == 1000, body
    status, published = await publish(client, key, post["id"])
    assert status == 200 and published["data"]["post"]["status"] == "published", published
    [status_on_big] = publications(sandbox, "mastodon")
    assert status_on_big.extra["instance"] == "big.example" and len(status_on_big.text) == 700


def test_an_accounts_server_limits_replace_the_networks_defaults() -> None:
    from ouipost.posts.validation import DraftPost, MediaInfo, validate_for_networks

    images = [MediaInfo(id=f"media_{i}", kind="image") for i in range(6)]
    roomy = DraftPost(content="z" * 900, networks=["mastodon"], media=images,
                      account_limits={"mastodon": {"max_characters": 1000, "max_images": 6}})
    assert validate_for_networks(roomy, require_media=True) == {}
    strict = DraftPost(content="z" * 900, networks=["mastodon"], media=images, account_limits={"mastodon": {}})
    problems = validate_for_networks(strict, require_media=True)["mastodon"]
    assert any("900 of 500" in p for p in problems) and any("at most 4" in p for p in problems)



@pytest.mark.parametrize(("platforms", "options", "says"), [
    (["mastodon"], {"visibility": "everyone"}, "must be one of public, unlisted, private, direct"),
    (["mastodon"], {"spoiler_text": ["a", "list"]}, "must be a text"),
    (["mastodon"], {"poll": "yes"}, "not one Mastodon takes"),
    (["twitter"], {"visibility": "public"}, "it takes: none"),
])
async def test_options_a_network_does_not_take_are_422(
    client: Any, key: Any, platforms: list[str], options: dict, says: str
) -> None:
    network = platforms[0]
    resp = await client.post("/api/posts", headers=key.headers(), json={
        "content": "opts", "platforms": platforms, "platform_content": {network: {"options": options}}})
    assert resp.status == 422, await resp.text()
    assert says in str((await resp.json())["error"]["details"][network])


def live_mastodon_tokens(sandbox: Any) -> list[Any]:
    return [t for t in sandbox.tokens.values() if t.network == "mastodon" and not t.revoked]


async def test_disconnecting_revokes_the_token_with_the_servers_app(client: Any, key: Any, sandbox: Any) -> None:
    account = await connect_mastodon(client, key)
    assert len(live_mastodon_tokens(sandbox)) == 1
    resp = await client.delete(f"/api/accounts/{account['id']}", headers=key.headers())
    assert resp.status == 200
    assert live_mastodon_tokens(sandbox) == []
    [revoke] = [r for r in sandbox.requests if r.path == f"/{SERVER}/oauth/revoke"]
    assert revoke.body["client_secret"] == "[redacted]" and revoke.status == 200


async def test_an_account_whose_app_was_forgotten_still_disconnects(
    client: Any, key: Any, sandbox: Any, engine: Any
) -> None:
    account = await connect_mastodon(client, key)
    async with engine.begin() as conn:
        await conn.execute(instance_apps.delete())
    resp = await client.delete(f"/api/accounts/{account['id']}", headers=key.headers())
    assert resp.status == 200
    assert not [r for r in sandbox.requests if r.path.endswith("/oauth/revoke")]
    assert (await (await client.get("/api/accounts", headers=key.headers())).json())["data"]["accounts"] == []
