"""Threads adapter against the sandbox Threads API over real HTTP: containers, polling, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from ouipost.platforms.base import (
    AccountAuth,
    ConnectedIdentity,
    MediaFile,
    PermanentError,
    PlatformAdapter,
    PublishRequest,
    RetryableError,
    TokenExpiredError,
    UnknownOutcomeError,
)
from ouipost.platforms.threads import ThreadsAdapter
from ouipost.sandbox import Sandbox
from ouipost.sandbox.threads import FOLLOWERS, PROFILE, threads_length
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.helpers import follow_consent

REDIRECT = "https://app.example.com/oauth/threads/callback"
USER = PROFILE["id"]


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ThreadsAdapter, "container_poll_interval", 0.01)
    monkeypatch.setattr(ThreadsAdapter, "container_poll_timeout", 1.0)


@pytest.fixture
def adapter(make_adapter: Callable[[str], PlatformAdapter]) -> ThreadsAdapter:
    adapter = make_adapter("threads")
    assert isinstance(adapter, ThreadsAdapter)
    return adapter


async def consent(http_session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    return await follow_consent(http_session, url, REDIRECT)


async def connect(adapter: ThreadsAdapter, http_session: aiohttp.ClientSession,
                  scopes: list[str] | None = None) -> ConnectedIdentity:
    request = adapter.authorization_url(state="th-state", redirect_uri=REDIRECT, scopes=scopes)
    query = await consent(http_session, request.url)
    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)
    return identity




@pytest.fixture
async def profile(adapter: ThreadsAdapter, http_session: aiohttp.ClientSession) -> AccountAuth:
    return auth_of(await connect(adapter, http_session))


def live(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "threads" and not p.deleted]


# OAuth -----------------------------------------------------------------------------------------


async def test_login_gives_the_profile_with_a_60_day_token(
    adapter: ThreadsAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    request = adapter.authorization_url(state="th-state", redirect_uri=REDIRECT)
    assert request.url.split("?")[0].endswith("/threads.net/oauth/authorize")
    assert "threads_basic%2Cthreads_content_publish" in request.url  # comma-separated
    query = await consent(http_session, request.url)
    assert query["state"] == "th-state"

    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)

    assert (identity.remote_id, identity.username, identity.type) == (USER, "ouibakery", "profile")
    info = sandbox.tokens[identity.token.access_token]
    assert info.extra["long_lived"] is True
    assert info.expires_at is not None and info.expires_at - sandbox.now() > 59 * 86400


async def test_a_reused_code_is_refused(adapter: ThreadsAdapter, http_session: aiohttp.ClientSession) -> None:
    code = (await consent(http_session, adapter.authorization_url(state="s", redirect_uri=REDIRECT).url))["code"]
    await adapter.exchange_code(code=code, redirect_uri=REDIRECT)
    with pytest.raises(PermanentError) as caught:
        await adapter.exchange_code(code=code, redirect_uri=REDIRECT)
    assert caught.value.code == "100/36009"


async def test_refresh_gives_a_new_60_day_token_after_a_day(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.clock_offset += 2 * 86400
    fresh = await adapter.refresh_token(profile)
    assert fresh.access_token != profile.access_token
    info = sandbox.tokens[fresh.access_token]
    assert info.expires_at is not None and info.expires_at - sandbox.now() > 59 * 86400


async def test_an_expired_token_cannot_be_refreshed(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.clock_offset += 61 * 86400
    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(profile)


# Publishing ------------------------------------------------------------------------------------


async def test_text_post_is_published_once_with_permalink(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(profile, PublishRequest(text="Warm bread at 7 🥖"))
    [pub] = live(sandbox)
    assert (pub.remote_id, pub.text, pub.extra["media_type"]) == (result.remote_id, "Warm bread at 7 🥖", "TEXT_POST")
    assert result.url == f"https://www.threads.com/@ouibakery/post/{result.extra['shortcode']}"


async def test_link_becomes_a_link_attachment(adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox) -> None:
    await adapter.publish(profile, PublishRequest(text="Menu", link="https://oui.example/menu"))
    [pub] = live(sandbox)
    assert pub.extra["link_attachment"] == "https://oui.example/menu"


async def test_text_over_500_counting_emoji_bytes_is_refused(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    text = "a" * 490 + "🥖" * 3  # 493 characters, but 502 by Threads' count
    assert threads_length(text) == 502
    with pytest.raises(PermanentError, match="at most 500 characters"):
        await adapter.publish(profile, PublishRequest(text=text))
    assert live(sandbox) == []


async def test_image_with_alt_text(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    await adapter.publish(profile, PublishRequest(text="Loaf", media=[make_media("png", alt_text="A loaf")]))
    [pub] = live(sandbox)
    assert pub.extra["media_type"] == "IMAGE"
    assert pub.media[0]["alt_text"] == "A loaf" and pub.media[0]["mime"] == "image/png"


async def test_video_waits_for_processing(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("threads")["container_polls"] = 4
    await adapter.publish(profile, PublishRequest(text="Kneading", media=[make_media("video")]))
    [pub] = live(sandbox)
    assert pub.extra["media_type"] == "VIDEO" and pub.media[0]["mime"] == "video/mp4"
    polls = [r for r in sandbox.requests if r.method == "GET" and r.query.get("fields") == "status,error_message"]
    assert len(polls) == 5


async def test_carousel_is_published_once_after_children_finish(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    media = [make_media("image"), make_media("video"), make_media("png")]
    result = await adapter.publish(profile, PublishRequest(text="Three things", media=media))
    [pub] = live(sandbox)
    assert pub.remote_id == result.remote_id and pub.extra["media_type"] == "CAROUSEL_ALBUM"
    assert [m["kind"] for m in pub.media] == ["image", "video", "image"]
    creates = [r for r in sandbox.requests if r.path.endswith(f"/{USER}/threads")]
    assert [r.body["media_type"] for r in creates] == ["IMAGE", "VIDEO", "IMAGE", "CAROUSEL"]


async def test_video_that_is_not_a_video_fails_the_container(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    fake = make_media("image")
    fake.kind = "video"
    with pytest.raises(PermanentError) as caught:
        await adapter.publish(profile, PublishRequest(text="oops", media=[fake]))
    assert caught.value.code == "FAILED_PROCESSING_VIDEO"
    assert live(sandbox) == []


async def test_delete_removes_the_thread(adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox) -> None:
    result = await adapter.publish(profile, PublishRequest(text="gone soon"))
    await adapter.delete(profile, result.remote_id)
    assert live(sandbox) == []


async def test_delete_without_threads_delete_scope_needs_a_reconnect(
    adapter: ThreadsAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    auth = auth_of(await connect(adapter, http_session, ["threads_basic", "threads_content_publish"]))
    result = await adapter.publish(auth, PublishRequest(text="stays"))
    with pytest.raises(PermanentError) as caught:
        await adapter.delete(auth, result.remote_id)
    assert caught.value.reconnect
    assert len(live(sandbox)) == 1


# Insights --------------------------------------------------------------------------------------


async def test_post_insights_grow_with_time(adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox) -> None:
    result = await adapter.publish(profile, PublishRequest(text="count me"))
    sandbox.clock_offset += 4 * 3600 + 10  # h = 5: the fifth hour under way
    insights = await adapter.post_insights(profile, result.remote_id)
    assert (insights.impressions, insights.engagement, insights.reach, insights.clicks) == (300, 55, 0, 0)
    assert insights.metrics == {"views": 300, "likes": 30, "replies": 10, "reposts": 5, "quotes": 5, "shares": 5}


async def test_account_stats_report_followers(adapter: ThreadsAdapter, profile: AccountAuth) -> None:
    stats = await adapter.account_stats(profile)
    assert stats.followers == FOLLOWERS == 900


# Error mapping ---------------------------------------------------------------------------------


async def test_rate_limit_is_retryable_for_an_hour(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("threads", "rate_limit", path_contains="/threads")
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(profile, PublishRequest(text="rl"))
    assert caught.value.code == "4" and caught.value.retry_after == 3600


async def test_expired_token_is_reported(adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox) -> None:
    sandbox.add_fault("threads", "expire_token")
    with pytest.raises(TokenExpiredError) as caught:
        await adapter.publish(profile, PublishRequest(text="exp"))
    assert caught.value.code == "190/463"


async def test_server_error_on_publish_is_retryable_when_nothing_was_published(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("threads", "server_error", path_contains="/threads_publish")
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(profile, PublishRequest(text="500"))
    assert caught.value.status == 500
    assert live(sandbox) == []


async def test_dropped_publish_answer_is_unknown_and_published_once(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("threads", "drop_after", path_contains="/threads_publish")
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(profile, PublishRequest(text="lost"))
    assert len(live(sandbox)) == 1


async def test_sandbox_refuses_publishing_before_finished_and_a_second_publish(
    profile: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str, sandbox: Sandbox
) -> None:
    base = f"{sandbox_url}/graph.threads.net/v1.0/{USER}"
    headers = {"Authorization": f"Bearer {profile.access_token}"}
    async with http_session.post(f"{base}/threads", headers=headers,
                                 data={"media_type": "TEXT", "text": "hurry"}) as resp:
        container = (await resp.json())["id"]
    async with http_session.post(f"{base}/threads_publish", headers=headers,
                                 data={"creation_id": container}) as resp:
        early = await resp.json()
    assert resp.status == 400 and early["error"]["error_subcode"] == 2207027
    for _ in range(2):
        async with http_session.get(f"{sandbox_url}/graph.threads.net/v1.0/{container}", headers=headers,
                                    params={"fields": "status"}) as resp:
            status = (await resp.json())["status"]
    assert status == "FINISHED"
    async with http_session.post(f"{base}/threads_publish", headers=headers, data={"creation_id": container}) as r:
        assert r.status == 200
    async with http_session.post(f"{base}/threads_publish", headers=headers, data={"creation_id": container}) as r:
        again = await r.json()
    assert r.status == 400 and "already been published" in again["error"]["message"]
    assert len(live(sandbox)) == 1


async def test_sandbox_rejects_a_call_without_token(http_session: aiohttp.ClientSession, sandbox_url: str) -> None:
    async with http_session.get(f"{sandbox_url}/graph.threads.net/v1.0/me") as resp:
        body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == 190 and body["error"]["type"] == "OAuthException"


async def test_sandbox_requires_media_type_on_containers(
    profile: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str
) -> None:
    async with http_session.post(f"{sandbox_url}/graph.threads.net/v1.0/{USER}/threads",
                                 headers={"Authorization": f"Bearer {profile.access_token}"},
                                 data={"text": "no type"}) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == 100 and "media_type" in body["error"]["message"]
