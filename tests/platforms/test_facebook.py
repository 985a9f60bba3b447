"""Facebook Pages adapter against the sandbox Graph API over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from ouipost.platforms.base import (
    AccountAuth,
    ClientCredentials,
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
from ouipost.platforms.facebook import FacebookAdapter
from ouipost.platforms.http import PlatformHttp
from ouipost.sandbox import Sandbox
from ouipost.sandbox.facebook import PAGES
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.helpers import follow_consent

REDIRECT = "https://app.example.com/oauth/facebook/callback"


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FacebookAdapter, "video_poll_interval", 0.01)
    monkeypatch.setattr(FacebookAdapter, "video_poll_timeout", 2.0)


@pytest.fixture
def adapter(make_adapter: Callable[[str], PlatformAdapter]) -> FacebookAdapter:
    adapter = make_adapter("facebook")
    assert isinstance(adapter, FacebookAdapter)
    return adapter


async def consent(http_session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    return await follow_consent(http_session, url, REDIRECT)


async def connect(adapter: FacebookAdapter, http_session: aiohttp.ClientSession,
                  scopes: list[str] | None = None) -> list[ConnectedIdentity]:
    request = adapter.authorization_url(state="st-1", redirect_uri=REDIRECT, scopes=scopes)
    query = await consent(http_session, request.url)
    return await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)




@pytest.fixture
async def bakery(adapter: FacebookAdapter, http_session: aiohttp.ClientSession) -> AccountAuth:
    identities = await connect(adapter, http_session)
    return auth_of(next(i for i in identities if i.remote_id == "20001"))


def live(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "facebook" and not p.deleted]


# OAuth -----------------------------------------------------------------------------------------


async def test_login_lists_each_page_with_a_non_expiring_page_token(
    adapter: FacebookAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    request = adapter.authorization_url(state="st-42", redirect_uri=REDIRECT)
    assert request.code_verifier is None
    assert "/www.facebook.com/v25.0/dialog/oauth?" in request.url
    query = await consent(http_session, request.url)
    assert query["state"] == "st-42"

    identities = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)

    assert [(i.remote_id, i.name, i.username, i.type) for i in identities] == [
        ("20001", "Oui Bakery", "ouibakery", "page"), ("20002", "Oui Garage", "ouigarage", "page"),
    ]
    for identity in identities:
        assert identity.token.expires_at is None
        assert "pages_manage_posts" in identity.permissions
        assert identity.metadata["user_id"] == "10001"
        info = sandbox.tokens[identity.token.access_token]
        assert info.extra["type"] == "page" and info.subject == identity.remote_id
    # The long-lived exchange happened: a 60-day user token exists.
    user_tokens = [t for t in sandbox.tokens.values() if t.extra.get("type") == "user"]
    assert max(t.expires_at or 0 for t in user_tokens) - sandbox.now() > 59 * 86400


async def test_a_code_works_only_once(
    adapter: FacebookAdapter, http_session: aiohttp.ClientSession
) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    code = (await consent(http_session, request.url))["code"]
    await adapter.exchange_code(code=code, redirect_uri=REDIRECT)
    with pytest.raises(PermanentError) as caught:
        await adapter.exchange_code(code=code, redirect_uri=REDIRECT)
    assert "has been used" in caught.value.message
    assert caught.value.code == "100/36009"


async def test_a_code_is_bound_to_its_redirect_uri(
    adapter: FacebookAdapter, http_session: aiohttp.ClientSession
) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    code = (await consent(http_session, request.url))["code"]
    with pytest.raises(PermanentError, match="redirect_uri"):
        await adapter.exchange_code(code=code, redirect_uri="https://evil.example.com/cb")


async def test_page_tokens_cannot_be_refreshed(adapter: FacebookAdapter, bakery: AccountAuth) -> None:
    assert adapter.supports_refresh is False
    with pytest.raises(TokenExpiredError, match="connect the Page again"):
        await adapter.refresh_token(bakery)


async def test_revoke_kills_the_page_tokens(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox
) -> None:
    await adapter.revoke(bakery)
    assert sandbox.tokens[bakery.access_token].revoked
    with pytest.raises(TokenExpiredError):
        await adapter.publish(bakery, PublishRequest(text="after revoke"))


# Publishing ------------------------------------------------------------------------------------


async def test_text_post_with_link_is_published_with_permalink(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(bakery, PublishRequest(text="Fresh bread today", link="https://oui.example/bread"))

    assert result.remote_id.startswith("20001_")
    assert result.url == f"https://www.facebook.com/ouibakery/posts/{result.remote_id.split('_')[1]}"
    [pub] = live(sandbox)
    assert (pub.account_id, pub.remote_id, pub.text) == ("20001", result.remote_id, "Fresh bread today")
    assert pub.extra["link"] == "https://oui.example/bread"


async def test_single_photo_is_pulled_from_its_url_with_alt_text(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    photo = make_media("image", alt_text="A baguette")
    result = await adapter.publish(bakery, PublishRequest(text="Baguette", media=[photo]))

    [pub] = live(sandbox)
    assert pub.remote_id == result.remote_id
    assert pub.media[0]["mime"] == "image/jpeg" and pub.media[0]["bytes"] == photo.size
    assert pub.media[0]["alt_text"] == "A baguette"
    assert result.url and "/posts/" in result.url


async def test_multi_photo_post_attaches_unpublished_photos_once(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    media = [make_media("image"), make_media("png"), make_media("image", width=800, height=800)]
    result = await adapter.publish(bakery, PublishRequest(text="Three loaves", media=media))

    [pub] = live(sandbox)  # the unpublished uploads are not posts of their own
    assert pub.remote_id == result.remote_id
    assert [m["mime"] for m in pub.media] == ["image/jpeg", "image/png", "image/jpeg"]
    assert len(result.extra["photo_ids"]) == 3
    feed = [r for r in sandbox.requests if r.path.endswith("/20001/feed")]
    assert len(feed) == 1 and '"media_fbid"' in feed[0].body["attached_media"]


async def test_video_is_published_and_its_relative_permalink_made_absolute(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    video = make_media("video")
    result = await adapter.publish(bakery, PublishRequest(text="Oven tour", title="Tour", media=[video]))

    assert result.url == f"https://www.facebook.com/ouibakery/videos/{result.remote_id}/"
    assert result.extra["video_status"] == "ready"
    [pub] = live(sandbox)
    assert pub.media[0]["mime"] == "video/mp4" and pub.extra["title"] == "Tour"


async def test_photo_story_goes_through_an_unpublished_photo(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(bakery, PublishRequest(text="", media=[make_media()], options={"story": True}))
    [pub] = live(sandbox)
    assert pub.extra["story"] is True
    assert result.url == f"https://www.facebook.com/stories/{result.remote_id}"


async def test_photos_and_video_cannot_be_mixed(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(NotSupportedError):
        await adapter.publish(bakery, PublishRequest(text="mix", media=[make_media(), make_media("video")]))
    assert sandbox.requests == [r for r in sandbox.requests if "/feed" not in r.path]


async def test_a_non_image_url_is_refused_as_a_permanent_error(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    video_posing_as_photo = make_media("video")
    video_posing_as_photo.kind = "image"
    with pytest.raises(PermanentError) as caught:
        await adapter.publish(bakery, PublishRequest(text="bad", media=[video_posing_as_photo]))
    assert caught.value.code == "324"
    assert live(sandbox) == []


async def test_the_same_status_twice_is_a_duplicate(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox
) -> None:
    await adapter.publish(bakery, PublishRequest(text="Same words"))
    with pytest.raises(PermanentError) as caught:
        await adapter.publish(bakery, PublishRequest(text="Same words"))
    assert caught.value.code == "506"
    assert len(live(sandbox)) == 1


async def test_delete_removes_the_post(adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox) -> None:
    result = await adapter.publish(bakery, PublishRequest(text="Short-lived"))
    await adapter.delete(bakery, result.remote_id)
    assert live(sandbox) == []
    assert sandbox.publications[0].deleted
    with pytest.raises(PermanentError):  # Graph: object does not exist any more
        await adapter.delete(bakery, result.remote_id)


# Insights --------------------------------------------------------------------------------------


async def test_post_insights_grow_with_time(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(bakery, PublishRequest(text="Measured"))
    sandbox.clock_offset += 2 * 3600 + 60  # h = 3: the third hour under way

    insights = await adapter.post_insights(bakery, result.remote_id)

    assert (insights.reach, insights.impressions, insights.clicks) == (120, 120, 9)
    assert insights.engagement == 21 + 6 + 3  # reactions + comments + shares
    assert insights.metrics["post_reactions_by_type_total.like"] == 15
    assert insights.metrics["post_clicks_by_type.link clicks"] == 6


async def test_video_insights_are_read_through_its_feed_story(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(bakery, PublishRequest(text="clip", media=[make_media("video")]))
    sandbox.clock_offset += 60  # h = 1: the first hour under way
    insights = await adapter.post_insights(bakery, result.remote_id)
    assert insights.reach == 40


async def test_account_stats_report_page_followers(adapter: FacebookAdapter, bakery: AccountAuth) -> None:
    stats = await adapter.account_stats(bakery)
    assert stats.followers == PAGES["20001"]["followers_count"] == 1200


async def test_insights_without_read_insights_need_a_reconnect(
    adapter: FacebookAdapter, http_session: aiohttp.ClientSession
) -> None:
    scopes = ["pages_show_list", "pages_manage_posts", "pages_read_engagement"]
    auth = auth_of((await connect(adapter, http_session, scopes))[0])
    result = await adapter.publish(auth, PublishRequest(text="no insights scope"))
    with pytest.raises(PermanentError) as caught:
        await adapter.post_insights(auth, result.remote_id)
    assert caught.value.reconnect and caught.value.code == "10"


async def test_publishing_without_pages_manage_posts_needs_a_reconnect(
    adapter: FacebookAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    auth = auth_of((await connect(adapter, http_session, ["pages_show_list", "pages_read_engagement"]))[0])
    with pytest.raises(PermanentError) as caught:
        await adapter.publish(auth, PublishRequest(text="no scope"))
    assert caught.value.reconnect and caught.value.code == "200"
    assert live(sandbox) == []


# Error mapping ---------------------------------------------------------------------------------


async def test_page_rate_limit_is_retryable_after_the_buc_estimate(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("facebook", "rate_limit", path_contains="/feed")
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(bakery, PublishRequest(text="too fast"))
    assert caught.value.code == "80001"
    assert caught.value.retry_after == 7 * 60
    assert live(sandbox) == []


async def test_exhausted_app_budget_answers_code_4_with_an_hour_wait(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.network_state("facebook")["app_call_budget"] = 1
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(bakery, PublishRequest(text="budget"))
    assert caught.value.code == "4" and caught.value.retry_after == 3600


async def test_expired_page_token_asks_for_reconnect(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("facebook", "expire_token")
    with pytest.raises(TokenExpiredError) as caught:
        await adapter.publish(bakery, PublishRequest(text="expired"))
    assert caught.value.code == "190/463"
    with pytest.raises(TokenExpiredError):  # the token stays dead afterwards
        await adapter.account_stats(bakery)


async def test_server_error_is_retryable(adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox) -> None:
    sandbox.add_fault("facebook", "server_error", path_contains="/feed")
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(bakery, PublishRequest(text="500"))
    assert caught.value.status == 500


async def test_dropped_answer_after_publishing_is_unknown_and_posted_once(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("facebook", "drop_after", path_contains="/20001/feed")
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(bakery, PublishRequest(text="did it post?"))
    assert len(live(sandbox)) == 1


async def test_dropped_unpublished_photo_upload_is_safe_to_retry(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("facebook", "drop_after", path_contains="/20001/photos")
    with pytest.raises(RetryableError):
        await adapter.publish(bakery, PublishRequest(text="two", media=[make_media(), make_media()]))
    assert live(sandbox) == []
    await adapter.publish(bakery, PublishRequest(text="two", media=[make_media(), make_media()]))
    assert len(live(sandbox)) == 1


async def test_sandbox_refuses_a_user_token_on_the_page_feed(
    adapter: FacebookAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox, sandbox_url: str
) -> None:
    await connect(adapter, http_session)
    user_token = next(t for t, i in sandbox.tokens.items() if i.extra.get("type") == "user")
    async with http_session.post(f"{sandbox_url}/graph.facebook.com/v25.0/20001/feed",
                                 data={"message": "hi", "access_token": user_token}) as resp:
        body = await resp.json()
    assert resp.status == 403 and body["error"]["code"] == 200 and "fbtrace_id" in body["error"]
    assert "X-App-Usage" in resp.headers


async def test_a_wrong_app_secret_is_a_permanent_error(
    platform_http: PlatformHttp, http_session: aiohttp.ClientSession
) -> None:
    wrong = FacebookAdapter(platform_http, ClientCredentials("sandbox-client", "not-the-secret"))
    code = (await consent(http_session, wrong.authorization_url(state="s", redirect_uri=REDIRECT).url))["code"]
    with pytest.raises(PermanentError, match="client secret"):
        await wrong.exchange_code(code=code, redirect_uri=REDIRECT)


async def test_sandbox_refuses_a_photo_sent_under_the_wrong_parameter_name(
    bakery: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str, sandbox: Sandbox,
    make_media: Callable[..., MediaFile],
) -> None:
    async with http_session.post(f"{sandbox_url}/graph.facebook.com/v25.0/20001/photos",
                                 headers={"Authorization": f"Bearer {bakery.access_token}"},
                                 data={"image_url": make_media().url, "caption": "wrong name"}) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == 324
    assert live(sandbox) == []


async def test_video_that_fails_processing_is_a_permanent_error(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("facebook")["video_error"] = True
    with pytest.raises(PermanentError, match="failed processing"):
        await adapter.publish(bakery, PublishRequest(text="broken clip", media=[make_media("video")]))
    assert live(sandbox) == []
