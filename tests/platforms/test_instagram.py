"""Instagram adapter (Instagram Login) against the sandbox over real HTTP: containers, polling, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from ouipost.platforms.base import (
    AccountAuth,
    ConnectedIdentity,
    MediaFile,
    NotSupportedError,
    PermanentError,
    PlatformAdapter,
    PublishRequest,
    RetryableError,
    TokenExpiredError,
    UnknownOutcomeError,
)
from ouipost.platforms.instagram import InstagramAdapter
from ouipost.sandbox import Sandbox
from ouipost.sandbox.instagram import ACCOUNT
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.helpers import follow_consent

REDIRECT = "https://app.example.com/oauth/instagram/callback"
IG = ACCOUNT["user_id"]


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(InstagramAdapter, "container_poll_interval", 0.01)
    monkeypatch.setattr(InstagramAdapter, "container_poll_timeout", 1.0)


@pytest.fixture
def adapter(make_adapter: Callable[[str], PlatformAdapter]) -> InstagramAdapter:
    adapter = make_adapter("instagram")
    assert isinstance(adapter, InstagramAdapter)
    return adapter


async def consent(http_session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    return await follow_consent(http_session, url, REDIRECT)


async def connect(adapter: InstagramAdapter, http_session: aiohttp.ClientSession,
                  scopes: list[str] | None = None) -> ConnectedIdentity:
    request = adapter.authorization_url(state="ig-state", redirect_uri=REDIRECT, scopes=scopes)
    query = await consent(http_session, request.url)
    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)
    return identity




@pytest.fixture
async def account(adapter: InstagramAdapter, http_session: aiohttp.ClientSession) -> AccountAuth:
    return auth_of(await connect(adapter, http_session))


def live(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "instagram" and not p.deleted]


def status_reads(sandbox: Sandbox) -> list[Any]:
    return [r for r in sandbox.requests if r.network == "instagram" and r.method == "GET"
            and "status_code" in r.query.get("fields", "")]


# OAuth -----------------------------------------------------------------------------------------


async def test_login_gives_the_professional_account_with_a_60_day_token(
    adapter: InstagramAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    request = adapter.authorization_url(state="ig-state", redirect_uri=REDIRECT)
    assert request.url.split("?")[0].endswith("/www.instagram.com/oauth/authorize")
    query = await consent(http_session, request.url)
    assert query["state"] == "ig-state"

    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)

    assert (identity.remote_id, identity.username, identity.type) == (IG, "ouibakery", "business")
    assert "instagram_business_content_publish" in identity.permissions
    assert identity.token.expires_at is not None
    info = sandbox.tokens[identity.token.access_token]
    assert info.extra["long_lived"] is True
    assert info.expires_at is not None and info.expires_at - sandbox.now() > 59 * 86400


async def test_a_reused_code_is_refused_in_instagrams_own_envelope(
    adapter: InstagramAdapter, http_session: aiohttp.ClientSession
) -> None:
    code = (await consent(http_session, adapter.authorization_url(state="s", redirect_uri=REDIRECT).url))["code"]
    await adapter.exchange_code(code=code, redirect_uri=REDIRECT)
    with pytest.raises(PermanentError, match="authorization code has been used"):
        await adapter.exchange_code(code=code, redirect_uri=REDIRECT)


async def test_refresh_works_only_once_the_token_is_a_day_old(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox
) -> None:
    with pytest.raises(PermanentError, match="24 hours"):
        await adapter.refresh_token(account)
    sandbox.clock_offset += 25 * 3600
    fresh = await adapter.refresh_token(account)
    assert fresh.access_token != account.access_token
    assert sandbox.tokens[fresh.access_token].expires_at - sandbox.now() > 59 * 86400  # type: ignore[operator]
    stats = await adapter.account_stats(AccountAuth(IG, fresh.access_token, metadata=account.metadata))
    assert stats.followers == 2500


async def test_an_expired_token_cannot_be_refreshed(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.clock_offset += 61 * 86400
    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(account)


# Publishing ------------------------------------------------------------------------------------


async def test_text_only_posts_are_not_supported(adapter: InstagramAdapter, account: AccountAuth) -> None:
    with pytest.raises(NotSupportedError, match="text-only"):
        await adapter.publish(account, PublishRequest(text="just words"))


async def test_single_image_waits_for_the_container_then_publishes_once(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("instagram")["container_polls"] = 3
    image = make_media("image", alt_text="Croissants on a tray")
    result = await adapter.publish(account, PublishRequest(text="Morning batch #croissant", media=[image]))

    [pub] = live(sandbox)
    assert pub.remote_id == result.remote_id and pub.text == "Morning batch #croissant"
    assert pub.media[0]["alt_text"] == "Croissants on a tray" and pub.media[0]["bytes"] == image.size
    assert result.url == f"https://www.instagram.com/p/{result.extra['shortcode']}/"
    assert len(status_reads(sandbox)) == 4  # three IN_PROGRESS, then FINISHED


async def test_carousel_is_published_once_after_children_finish(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    media = [make_media("image"), make_media("video"), make_media("image", width=800, height=800)]
    result = await adapter.publish(account, PublishRequest(text="Our week", media=media))

    [pub] = live(sandbox)
    assert pub.extra["media_type"] == "CAROUSEL_ALBUM"
    assert [m["kind"] for m in pub.media] == ["image", "video", "image"]
    creates = [r for r in sandbox.requests if r.path.endswith(f"/{IG}/media")]
    assert [r.body.get("is_carousel_item") for r in creates] == ["true", "true", "true", None]
    assert creates[-1].body["media_type"] == "CAROUSEL"
    assert creates[-1].body["children"].count(",") == 2
    assert result.remote_id == pub.remote_id


async def test_video_is_published_as_a_reel(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(account, PublishRequest(text="Oven", media=[make_media("video")]))
    [pub] = live(sandbox)
    assert pub.extra["product"] == "REELS"
    assert result.url and result.url.startswith("https://www.instagram.com/reel/")


async def test_story_is_published_without_caption(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(account, PublishRequest(text="ignored", media=[make_media()],
                                                           options={"story": True}))
    [pub] = live(sandbox)
    assert pub.extra["product"] == "STORY" and pub.text == ""
    assert result.url == f"https://www.instagram.com/stories/ouibakery/{result.remote_id}/"


async def test_png_fails_the_container_and_nothing_is_published(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(PermanentError) as caught:
        await adapter.publish(account, PublishRequest(text="png", media=[make_media("png")]))
    assert caught.value.code == "2207005"
    assert live(sandbox) == []


async def test_unreachable_media_url_fails_the_container(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    image = make_media()
    image.url = image.url + "-missing"
    with pytest.raises(PermanentError, match="download has failed"):
        await adapter.publish(account, PublishRequest(text="404", media=[image]))


async def test_a_container_that_never_finishes_is_retryable(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(InstagramAdapter, "container_poll_timeout", 0.05)
    sandbox.network_state("instagram")["container_polls"] = 10_000
    with pytest.raises(RetryableError, match="not ready"):
        await adapter.publish(account, PublishRequest(text="slow", media=[make_media()]))
    assert live(sandbox) == []


async def test_wrong_aspect_ratio_is_refused_at_creation(
    adapter: InstagramAdapter, account: AccountAuth, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(PermanentError) as caught:
        await adapter.publish(account, PublishRequest(text="tall", media=[make_media(width=400, height=1000)]))
    assert caught.value.code == "36003/2207009"


async def test_carousel_over_ten_items_is_refused_before_any_call(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    before = len(sandbox.requests)
    with pytest.raises(PermanentError, match="2 to 10"):
        await adapter.publish(account, PublishRequest(text="many", media=[make_media() for _ in range(11)]))
    assert len(sandbox.requests) == before


async def test_daily_publishing_limit_is_deferred_a_day(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("instagram")["publish_limit"] = 1
    await adapter.publish(account, PublishRequest(text="first", media=[make_media()]))
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(account, PublishRequest(text="second", media=[make_media()]))
    assert caught.value.code == "9/2207042" and caught.value.retry_after == 86400
    assert len(live(sandbox)) == 1


async def test_delete_is_not_supported_unless_instagram_allows_it(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(account, PublishRequest(text="keep", media=[make_media()]))
    with pytest.raises(NotSupportedError):
        await adapter.delete(account, result.remote_id)
    sandbox.network_state("instagram")["delete_supported"] = True
    await adapter.delete(account, result.remote_id)
    assert live(sandbox) == []


# Insights --------------------------------------------------------------------------------------


async def test_media_insights_grow_with_time(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(account, PublishRequest(text="counted", media=[make_media()]))
    sandbox.clock_offset += 3600 + 30  # h = 2: the second hour under way
    insights = await adapter.post_insights(account, result.remote_id)
    assert (insights.impressions, insights.reach, insights.engagement) == (240, 180, 30)
    assert insights.metrics["likes"] == 18 and insights.metrics["saved"] == 2


async def test_account_stats_count_published_media(
    adapter: InstagramAdapter, account: AccountAuth, make_media: Callable[..., MediaFile]
) -> None:
    await adapter.publish(account, PublishRequest(text="one more", media=[make_media()]))
    stats = await adapter.account_stats(account)
    assert (stats.followers, stats.following, stats.posts_total) == (2500, 180, 43)


async def test_insights_without_the_insights_scope_need_a_reconnect(
    adapter: InstagramAdapter, http_session: aiohttp.ClientSession, make_media: Callable[..., MediaFile]
) -> None:
    auth = auth_of(await connect(adapter, http_session,
                                 ["instagram_business_basic", "instagram_business_content_publish"]))
    result = await adapter.publish(auth, PublishRequest(text="x", media=[make_media()]))
    with pytest.raises(PermanentError) as caught:
        await adapter.post_insights(auth, result.remote_id)
    assert caught.value.reconnect and caught.value.code == "10"


# Error mapping ---------------------------------------------------------------------------------


async def test_rate_limit_is_retryable_after_the_buc_estimate(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("instagram", "rate_limit", path_contains="/media")
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(account, PublishRequest(text="rl", media=[make_media()]))
    assert caught.value.code == "80002" and caught.value.retry_after == 12 * 60


async def test_expired_token_is_reported(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("instagram", "expire_token")
    with pytest.raises(TokenExpiredError):
        await adapter.publish(account, PublishRequest(text="exp", media=[make_media()]))


async def test_server_error_while_polling_is_retryable(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("instagram", "server_error", method="GET")
    with pytest.raises(RetryableError):
        await adapter.publish(account, PublishRequest(text="500", media=[make_media()]))
    assert live(sandbox) == []


async def test_dropped_media_publish_answer_is_unknown_and_published_once(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("instagram", "drop_after", path_contains="/media_publish")
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(account, PublishRequest(text="lost answer", media=[make_media()]))
    assert len(live(sandbox)) == 1


async def test_media_publish_dropped_before_arrival_is_retried_on_the_same_container(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("instagram", "drop", path_contains="/media_publish")
    result = await adapter.publish(account, PublishRequest(text="second try", media=[make_media()]))
    [pub] = live(sandbox)
    assert pub.remote_id == result.remote_id
    assert len([r for r in sandbox.requests if r.path.endswith("/media_publish")]) == 2


async def test_sandbox_refuses_media_publish_before_the_container_finished(
    account: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str,
    make_media: Callable[..., MediaFile], sandbox: Sandbox,
) -> None:
    base = f"{sandbox_url}/graph.instagram.com/v25.0/{IG}"
    headers = {"Authorization": f"Bearer {account.access_token}"}
    async with http_session.post(f"{base}/media", headers=headers,
                                 data={"image_url": make_media().url, "caption": "early"}) as resp:
        container = (await resp.json())["id"]
    async with http_session.post(f"{base}/media_publish", headers=headers,
                                 params={"creation_id": container}) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert (body["error"]["code"], body["error"]["error_subcode"]) == (9007, 2207027)
    assert live(sandbox) == []
