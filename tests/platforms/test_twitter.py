"""X adapter against the sandbox X API over real HTTP: OAuth + PKCE, chunked media, tweets, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from yarl import URL

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
from ouipost.platforms.twitter import TwitterAdapter
from ouipost.sandbox import Sandbox
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.helpers import follow_consent

REDIRECT = "https://app.example.com/oauth/callback"


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TwitterAdapter, "poll_interval", 0.01)
    monkeypatch.setattr(TwitterAdapter, "poll_timeout", 2.0)


@pytest.fixture
def adapter(make_adapter: Callable[[str], PlatformAdapter]) -> TwitterAdapter:
    adapter = make_adapter("twitter")
    assert isinstance(adapter, TwitterAdapter)
    return adapter


async def consent(http_session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    return await follow_consent(http_session, url, REDIRECT)


async def connect(adapter: TwitterAdapter, http_session: aiohttp.ClientSession,
                  scopes: list[str] | None = None) -> ConnectedIdentity:
    request = adapter.authorization_url(state="state-123", redirect_uri=REDIRECT, scopes=scopes)
    query = await consent(http_session, request.url)
    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT,
                                             code_verifier=request.code_verifier)
    return identity




@pytest.fixture
async def auth(adapter: TwitterAdapter, http_session: aiohttp.ClientSession) -> AccountAuth:
    return auth_of(await connect(adapter, http_session))


def live_tweets(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "twitter" and not p.deleted]


# OAuth ---------------------------------------------------------------------------------------


async def test_connect_runs_pkce_consent_and_returns_the_x_user(
    adapter: TwitterAdapter, http_session: aiohttp.ClientSession
) -> None:
    request = adapter.authorization_url(state="state-123", redirect_uri=REDIRECT)
    assert request.code_verifier and 43 <= len(request.code_verifier) <= 128
    authorize = URL(request.url)
    assert authorize.path.endswith("/x.com/i/oauth2/authorize")
    assert authorize.query["code_challenge_method"] == "S256"
    assert "media.write" in authorize.query["scope"].split()

    query = await consent(http_session, request.url)
    assert query["state"] == "state-123"
    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT,
                                             code_verifier=request.code_verifier)

    assert (identity.remote_id, identity.username, identity.type) == ("1593000000000000001", "ouipost_sandbox",
                                                                      "profile")
    assert identity.token.refresh_token  # offline.access was asked for
    assert identity.token.expires_at is not None
    assert set(identity.permissions) >= {"tweet.write", "media.write"}


async def test_wrong_pkce_verifier_is_refused(adapter: TwitterAdapter, http_session: aiohttp.ClientSession) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    query = await consent(http_session, request.url)
    with pytest.raises(PermanentError, match="token was invalid"):
        await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT, code_verifier="x" * 64)


async def test_authorization_code_cannot_be_used_twice(
    adapter: TwitterAdapter, http_session: aiohttp.ClientSession
) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    query = await consent(http_session, request.url)
    await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT, code_verifier=request.code_verifier)
    with pytest.raises(PermanentError):
        await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT, code_verifier=request.code_verifier)


async def test_code_is_bound_to_its_redirect_uri(adapter: TwitterAdapter, http_session: aiohttp.ClientSession) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    query = await consent(http_session, request.url)
    with pytest.raises(PermanentError):
        await adapter.exchange_code(code=query["code"], redirect_uri="https://evil.example/cb",
                                    code_verifier=request.code_verifier)


async def test_authorization_code_expires_after_30_seconds(
    adapter: TwitterAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    query = await consent(http_session, request.url)
    sandbox.clock_offset += 31
    with pytest.raises(PermanentError):
        await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT, code_verifier=request.code_verifier)


async def test_refresh_rotates_and_the_old_refresh_token_is_refused(
    adapter: TwitterAdapter, auth: AccountAuth
) -> None:
    fresh = await adapter.refresh_token(auth)
    assert fresh.refresh_token and fresh.refresh_token != auth.refresh_token
    assert fresh.access_token != auth.access_token

    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(auth)  # the rotated-out refresh token
    # Replaying it killed the whole grant, the new tokens included (as X does).
    with pytest.raises(TokenExpiredError):
        await adapter.account_stats(AccountAuth(auth.remote_id, fresh.access_token, fresh.refresh_token))


async def test_revoke_makes_the_token_unusable(adapter: TwitterAdapter, auth: AccountAuth) -> None:
    await adapter.revoke(auth)
    with pytest.raises(TokenExpiredError):
        await adapter.account_stats(auth)
    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(auth)


# Publishing ----------------------------------------------------------------------------------


async def test_text_tweet_reaches_x_once_with_its_permalink(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="Hello from Oui Post", link="https://ouipost.example"))

    assert result.url == f"https://x.com/ouipost_sandbox/status/{result.remote_id}"
    [tweet] = live_tweets(sandbox)
    assert tweet.remote_id == result.remote_id
    assert tweet.text == "Hello from Oui Post\nhttps://ouipost.example"


async def test_tweet_with_four_images_uploads_each_with_alt_text(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    media = [make_media("image", alt_text=f"photo {i}") for i in range(3)] + [make_media("png")]
    result = await adapter.publish(auth, PublishRequest(text="Four pictures", media=media))

    [tweet] = live_tweets(sandbox)
    assert tweet.remote_id == result.remote_id
    assert [m["type"] for m in tweet.media] == ["image/jpeg"] * 3 + ["image/png"]
    assert [m["size"] for m in tweet.media] == [m.size for m in media]
    assert [m["alt_text"] for m in tweet.media] == ["photo 0", "photo 1", "photo 2", None]


async def test_tweet_with_video_waits_for_processing_to_succeed(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(TwitterAdapter, "chunk_size", 1000)  # several APPEND segments
    sandbox.network_state("twitter")["processing_polls"] = 3
    video = make_media("video", mdat_size=3000)

    await adapter.publish(auth, PublishRequest(text="A video", media=[video]))

    paths = [(r.method, r.path, r.query.get("command")) for r in sandbox.requests]
    appends = [p for p in paths if p[1].endswith("/append")]
    statuses = [i for i, p in enumerate(paths) if p[2] == "STATUS"]
    create = paths.index(("POST", "/api.x.com/2/tweets", None))
    assert len(appends) == -(-video.size // 1000)
    assert len(statuses) == 3 and statuses[-1] < create  # polled until succeeded, then tweeted
    [tweet] = live_tweets(sandbox)
    assert tweet.media[0]["category"] == "tweet_video" and tweet.media[0]["size"] == video.size


async def test_video_that_fails_processing_is_permanent_and_nothing_is_posted(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("twitter")["fail_processing"] = True
    with pytest.raises(PermanentError, match="Unsupported video format"):
        await adapter.publish(auth, PublishRequest(text="Broken", media=[make_media("video")]))
    assert live_tweets(sandbox) == []


async def test_video_that_never_finishes_processing_is_retryable_and_nothing_is_posted(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(TwitterAdapter, "poll_timeout", 0.1)
    sandbox.network_state("twitter").update(processing_polls=10_000, processing_seconds=1e9)
    with pytest.raises(RetryableError, match="still in_progress"):
        await adapter.publish(auth, PublishRequest(text="Slow", media=[make_media("video")]))
    assert live_tweets(sandbox) == []


async def test_x_refuses_a_tweet_whose_video_is_still_processing(
    auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str, make_media: Callable[..., MediaFile]
) -> None:
    api = f"{sandbox_url}/api.x.com/2"
    headers = {"Authorization": f"Bearer {auth.access_token}"}
    video = make_media("video")
    data = await video.read_all()
    async with http_session.post(f"{api}/media/upload/initialize", headers=headers, json={
        "media_type": "video/mp4", "total_bytes": len(data), "media_category": "tweet_video"}) as resp:
        media_id = (await resp.json())["data"]["id"]
    form = aiohttp.FormData({"segment_index": "0"})
    form.add_field("media", data, filename="v.mp4", content_type="video/mp4")
    async with http_session.post(f"{api}/media/upload/{media_id}/append", headers=headers, data=form) as resp:
        assert resp.status == 200
    async with http_session.post(f"{api}/media/upload/{media_id}/finalize", headers=headers) as resp:
        assert (await resp.json())["data"]["processing_info"]["state"] == "pending"

    async with http_session.post(f"{api}/tweets", headers=headers,
                                 json={"text": "too early", "media": {"media_ids": [media_id]}}) as resp:
        assert resp.status == 400
        assert (await resp.json())["detail"] == "Your media IDs are invalid."


async def test_x_refuses_segments_out_of_order_and_a_wrong_total_size(
    auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str
) -> None:
    api = f"{sandbox_url}/api.x.com/2"
    headers = {"Authorization": f"Bearer {auth.access_token}"}
    async with http_session.post(f"{api}/media/upload/initialize", headers=headers, json={
        "media_type": "video/mp4", "total_bytes": 5000, "media_category": "tweet_video"}) as resp:
        media_id = (await resp.json())["data"]["id"]

    async def append(index: int, size: int) -> aiohttp.ClientResponse:
        form = aiohttp.FormData({"segment_index": str(index)})
        form.add_field("media", b"\0" * size, filename="v.mp4", content_type="video/mp4")
        async with http_session.post(f"{api}/media/upload/{media_id}/append", headers=headers, data=form) as resp:
            await resp.read()
            return resp

    assert (await append(1, 100)).status == 400  # segment 0 must come first
    assert (await append(0, 100)).status == 200
    async with http_session.post(f"{api}/media/upload/{media_id}/finalize", headers=headers) as resp:
        assert resp.status == 400
        assert "File size mismatch" in (await resp.json())["detail"]


async def test_duplicate_tweet_is_a_permanent_error(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    await adapter.publish(auth, PublishRequest(text="Same words"))
    with pytest.raises(PermanentError, match="duplicate content") as caught:
        await adapter.publish(auth, PublishRequest(text="Same words"))
    assert caught.value.status == 403 and not caught.value.reconnect
    assert len(live_tweets(sandbox)) == 1


async def test_text_over_280_weighted_characters_is_refused(adapter: TwitterAdapter, auth: AccountAuth) -> None:
    with pytest.raises(PermanentError, match="too long"):
        await adapter.publish(auth, PublishRequest(text="漢" * 141))  # CJK weighs 2: 282


async def test_missing_tweet_write_scope_asks_for_reconnection(
    adapter: TwitterAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    identity = await connect(adapter, http_session, scopes=["tweet.read", "users.read", "offline.access"])
    with pytest.raises(PermanentError) as caught:
        await adapter.publish(auth_of(identity), PublishRequest(text="no scope"))
    assert caught.value.status == 403 and caught.value.reconnect
    assert live_tweets(sandbox) == []


async def test_more_than_four_images_or_mixed_media_never_reach_x(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(PermanentError):
        await adapter.publish(auth, PublishRequest(text="5", media=[make_media() for _ in range(5)]))
    with pytest.raises(PermanentError):
        await adapter.publish(auth, PublishRequest(text="mix", media=[make_media(), make_media("video")]))
    assert not any("/media/" in r.path for r in sandbox.requests)


async def test_deleted_tweet_is_gone_from_x(adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    result = await adapter.publish(auth, PublishRequest(text="short-lived"))
    await adapter.delete(auth, result.remote_id)
    assert live_tweets(sandbox) == []
    await adapter.delete(auth, result.remote_id)  # already gone: nothing to do
    with pytest.raises(PermanentError, match="Could not find tweet"):
        await adapter.post_insights(auth, result.remote_id)


# Insights ------------------------------------------------------------------------------------


async def test_post_insights_grow_with_time_since_publishing(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="measure me"))
    sandbox.clock_offset += 3540  # m = 60: 59 whole minutes later, the 60th under way

    insights = await adapter.post_insights(auth, result.remote_id)

    assert insights.impressions == 600
    assert insights.clicks == 12  # url_link_clicks = 60 // 5
    # likes 30 + retweets 6 + replies 4 + quotes 2 + bookmarks 3 + link clicks 12 + profile clicks 5
    assert insights.engagement == 62
    assert insights.reach == 0
    assert insights.metrics["like_count"] == 30 and insights.metrics["non_public.user_profile_clicks"] == 5


async def test_account_stats_report_followers_and_tweet_count(
    adapter: TwitterAdapter, auth: AccountAuth
) -> None:
    await adapter.publish(auth, PublishRequest(text="one more"))
    stats = await adapter.account_stats(auth)
    assert (stats.followers, stats.following, stats.posts_total) == (1234, 321, 101)


# Error mapping -------------------------------------------------------------------------------


async def test_rate_limit_is_retryable_after_the_reset_header(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("twitter", "rate_limit", path_contains="/2/tweets")
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(auth, PublishRequest(text="later"))
    assert caught.value.status == 429
    assert caught.value.retry_after is not None and 890 <= caught.value.retry_after <= 902
    assert live_tweets(sandbox) == []


async def test_a_rate_limit_with_a_short_reset_is_retried_no_sooner(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("twitter", "rate_limit", path_contains="/2/tweets", wait=3)
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(auth, PublishRequest(text="soon"))
    [record] = [r for r in sandbox.requests if r.fault == "rate_limit"]
    assert caught.value.retry_after is not None and 3 <= caught.value.retry_after <= 5
    assert record.notes["retry_not_before"] == record.at + 3


async def test_a_random_rate_fault_hits_about_its_share_of_calls(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("twitter", "server_error", count=None, rate=0.25, path_contains="/2/tweets")
    failed = 0
    for n in range(80):
        try:
            await adapter.publish(auth, PublishRequest(text=f"maybe {n}"))
        except RetryableError:
            failed += 1
    assert 5 <= failed <= 40  # 20 expected; a fault that hit all or none would be far outside
    assert len(live_tweets(sandbox)) == 80 - failed


async def test_usage_cap_defers_for_a_long_time(adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    sandbox.network_state("twitter")["usage_capped"] = True
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(auth, PublishRequest(text="capped"))
    assert caught.value.code == "usage-capped" and caught.value.retry_after == TwitterAdapter.usage_cap_wait


async def test_expired_token_asks_for_a_refresh(adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    sandbox.add_fault("twitter", "expire_token")
    with pytest.raises(TokenExpiredError):
        await adapter.publish(auth, PublishRequest(text="expired"))
    with pytest.raises(TokenExpiredError):  # the token really is expired now
        await adapter.account_stats(auth)
    fresh = await adapter.refresh_token(auth)
    await adapter.account_stats(AccountAuth(auth.remote_id, fresh.access_token))


async def test_server_error_is_retryable(adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    sandbox.add_fault("twitter", "server_error", path_contains="/2/tweets")
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(auth, PublishRequest(text="5xx"))
    assert caught.value.status == 503


async def test_lost_answer_to_a_media_upload_start_is_retryable_nothing_was_tweeted(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., Any]
) -> None:
    sandbox.add_fault("twitter", "drop_after", path_contains="/2/media/upload/initialize")
    with pytest.raises(RetryableError):
        await adapter.publish(auth, PublishRequest(text="with a picture", media=[make_media("image")]))
    assert live_tweets(sandbox) == []


async def test_connection_dropped_after_the_tweet_was_created_is_an_unknown_outcome(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("twitter", "drop_after", path_contains="/2/tweets", method="POST")
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(auth, PublishRequest(text="did it post?"))
    assert len(live_tweets(sandbox)) == 1
