"""TikTok adapter against the TikTok sandbox, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from ouipost.platforms.base import (
    AccountAuth,
    MediaFile,
    NotSupportedError,
    PermanentError,
    PublishRequest,
    RetryableError,
    TokenExpiredError,
    UnknownOutcomeError,
)
from ouipost.platforms.tiktok import TikTokAdapter
from ouipost.sandbox import Sandbox

REDIRECT = "https://app.example.com/oauth/tiktok/callback"
MIB = 1024 * 1024


async def follow_consent(url: str) -> dict[str, str]:
    """Open the consent URL like a browser would and read the redirect's query."""
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def adapter(make_adapter: Callable[[str], Any]) -> TikTokAdapter:
    tiktok = make_adapter("tiktok")
    assert isinstance(tiktok, TikTokAdapter)
    tiktok.poll_interval = 0.02
    tiktok.publish_timeout = 3.0
    tiktok.post_id_wait = 0.2
    return tiktok


async def connect(adapter: TikTokAdapter, scopes: list[str] | None = None) -> AccountAuth:
    request = adapter.authorization_url(state="st-1", redirect_uri=REDIRECT, scopes=scopes)
    params = await follow_consent(request.url)
    [identity] = await adapter.exchange_code(code=params["code"], redirect_uri=REDIRECT)
    return AccountAuth(remote_id=identity.remote_id, access_token=identity.token.access_token,
                       refresh_token=identity.token.refresh_token, metadata=identity.metadata)


@pytest.fixture
async def auth(adapter: TikTokAdapter) -> AccountAuth:
    return await connect(adapter)


def publications(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "tiktok"]


# Connect ---------------------------------------------------------------------------------------


async def test_tiktok_connect_flow_gives_the_creator_and_tokens(adapter: TikTokAdapter) -> None:
    request = adapter.authorization_url(state="state-42", redirect_uri=REDIRECT)
    query = parse_qs(urlsplit(request.url).query)
    assert "/www.tiktok.com/v2/auth/authorize/" in request.url
    assert query["client_key"] == ["sandbox-client"]
    assert query["scope"][0].split(",") == list(TikTokAdapter.default_scopes)
    assert request.code_verifier is None

    params = await follow_consent(request.url)
    assert params["state"] == "state-42"
    [identity] = await adapter.exchange_code(code=params["code"], redirect_uri=REDIRECT)
    assert identity.remote_id == "tt-open-alice"
    assert identity.username == "alice.creates"
    assert identity.name == "Alice Creates"
    assert identity.type == "creator"
    assert "video.publish" in identity.token.scopes
    assert identity.token.refresh_token
    assert identity.token.expires_at is not None and identity.token.refresh_expires_at is not None
    lifetime = identity.token.refresh_expires_at - identity.token.expires_at
    assert lifetime.days >= 179  # 180 d refresh vs 2 h access, as returned by TikTok


async def test_tiktok_authorization_code_works_only_once(adapter: TikTokAdapter) -> None:
    params = await follow_consent(adapter.authorization_url(state="s", redirect_uri=REDIRECT).url)
    await adapter.exchange_code(code=params["code"], redirect_uri=REDIRECT)
    with pytest.raises(PermanentError) as err:
        await adapter.exchange_code(code=params["code"], redirect_uri=REDIRECT)
    assert err.value.code == "invalid_grant"


async def test_tiktok_code_bound_to_redirect_uri(adapter: TikTokAdapter) -> None:
    params = await follow_consent(adapter.authorization_url(state="s", redirect_uri=REDIRECT).url)
    with pytest.raises(PermanentError):
        await adapter.exchange_code(code=params["code"], redirect_uri="https://evil.example/cb")


async def test_tiktok_refresh_rotates_and_old_refresh_token_is_refused(
    adapter: TikTokAdapter, auth: AccountAuth
) -> None:
    fresh = await adapter.refresh_token(auth)
    assert fresh.refresh_token and fresh.refresh_token != auth.refresh_token
    assert fresh.access_token != auth.access_token
    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(auth)  # the rotated-out refresh token
    stats = await adapter.account_stats(AccountAuth(auth.remote_id, fresh.access_token))
    assert stats.followers == 1500


async def test_tiktok_revoke_ends_the_grant(adapter: TikTokAdapter, auth: AccountAuth) -> None:
    await adapter.revoke(auth)
    with pytest.raises(TokenExpiredError):
        await adapter.account_stats(auth)
    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(auth)


# Publish ---------------------------------------------------------------------------------------


async def test_tiktok_refuses_text_only_post_without_calling_tiktok(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    before = len(sandbox.requests)
    with pytest.raises(NotSupportedError, match="video or photos"):
        await adapter.publish(auth, PublishRequest(text="just words"))
    assert len(sandbox.requests) == before


async def test_tiktok_single_photo_post_is_published_once(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    photo = make_media("image")
    result = await adapter.publish(auth, PublishRequest(text="Sunset at the lake\nmore words", media=[photo]))
    assert result.remote_id.isdigit()
    assert result.url == f"https://www.tiktok.com/@alice.creates/photo/{result.remote_id}"
    [pub] = publications(sandbox)
    assert pub.remote_id == result.remote_id
    assert pub.media[0]["url"] == photo.url  # TikTok pulled our URL
    assert pub.text.startswith("Sunset at the lake")
    init = next(r for r in sandbox.requests if r.path.endswith("/content/init/"))
    assert init.body["post_info"]["title"] == "Sunset at the lake"
    assert init.body["post_info"]["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert init.body["media_type"] == "PHOTO"


async def test_tiktok_photo_carousel_keeps_order(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    photos = [make_media("image", color=(i * 40, 10, 10)) for i in range(3)]
    await adapter.publish(auth, PublishRequest(text="three", media=photos))
    [pub] = publications(sandbox)
    assert [m["url"] for m in pub.media] == [p.url for p in photos]


async def test_tiktok_png_photo_refused_with_a_clear_reason(
    adapter: TikTokAdapter, auth: AccountAuth, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(PermanentError, match="JPEG or WEBP"):
        await adapter.publish(auth, PublishRequest(text="png", media=[make_media("png")]))


async def test_tiktok_small_video_goes_in_one_chunk(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    video = make_media("video", duration=15)
    result = await adapter.publish(auth, PublishRequest(text="my clip #fun", media=[video]))
    assert result.url == f"https://www.tiktok.com/@alice.creates/video/{result.remote_id}"
    puts = [r for r in sandbox.requests if r.method == "PUT"]
    assert len(puts) == 1 and puts[0].status == 201
    init = next(r for r in sandbox.requests if r.path.endswith("/video/init/"))
    assert init.body["source_info"] == {"source": "FILE_UPLOAD", "video_size": video.size,
                                        "chunk_size": video.size, "total_chunk_count": 1}
    [pub] = publications(sandbox)
    assert pub.text == "my clip #fun" and pub.media[0]["size"] == video.size


async def test_tiktok_large_video_uploads_in_ordered_chunks_with_remainder_in_last(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    adapter.chunk_size = 5 * MIB
    video = make_media("video", duration=20, mdat_size=12 * MIB)
    await adapter.publish(auth, PublishRequest(text="long one", media=[video]))
    puts = [r for r in sandbox.requests if r.method == "PUT"]
    assert [r.status for r in puts] == [206, 201]
    assert [r.body["bytes"] for r in puts] == [5 * MIB, video.size - 5 * MIB]
    assert len(publications(sandbox)) == 1


async def test_tiktok_too_short_video_fails_processing_as_permanent(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    video = make_media("video", duration=1.5)
    with pytest.raises(PermanentError) as err:
        await adapter.publish(auth, PublishRequest(text="short", media=[video]))
    assert err.value.code == "duration_check_failed"
    assert publications(sandbox) == []


async def test_tiktok_privacy_level_the_creator_lacks_is_refused(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("tiktok")["privacy_level_options"] = ["FOLLOWER_OF_CREATOR", "SELF_ONLY"]
    with pytest.raises(PermanentError) as err:
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("image")],
                                                   options={"privacy_level": "PUBLIC_TO_EVERYONE"}))
    assert err.value.code == "privacy_level_option_mismatch"
    # Without an explicit choice the adapter falls back to SELF_ONLY, which the creator offers.
    await adapter.publish(auth, PublishRequest(text="x", media=[make_media("image")]))
    [pub] = publications(sandbox)
    assert pub.extra["privacy_level"] == "SELF_ONLY"


async def test_tiktok_unaudited_app_public_post_refused(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("tiktok")["unaudited"] = True
    with pytest.raises(PermanentError) as err:
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("image")]))
    assert err.value.code == "unaudited_client_can_only_post_to_private_accounts"
    result = await adapter.publish(auth, PublishRequest(text="x", media=[make_media("image")],
                                                        options={"privacy_level": "SELF_ONLY"}))
    assert result.remote_id


async def test_tiktok_unverified_media_domain_refused(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("tiktok")["verified_url_prefixes"] = ["https://media.ouipost.example/"]
    with pytest.raises(PermanentError) as err:
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("image")]))
    assert err.value.code == "url_ownership_unverified"


async def test_tiktok_missing_publish_scope_asks_for_reconnect(
    adapter: TikTokAdapter, make_media: Callable[..., MediaFile]
) -> None:
    auth = await connect(adapter, scopes=["user.info.basic"])
    with pytest.raises(PermanentError) as err:
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("image")]))
    assert err.value.reconnect is True
    assert err.value.code == "scope_not_authorized"


async def test_tiktok_post_id_pending_after_moderation_then_resolved_for_insights(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("tiktok")["post_id_delay"] = 600
    result = await adapter.publish(auth, PublishRequest(text="moderated", media=[make_media("video")]))
    assert result.extra["post_id_pending"] is True
    assert result.remote_id.startswith("v_pub_file~") and result.url is None
    with pytest.raises(RetryableError) as err:
        await adapter.post_insights(auth, result.remote_id)
    assert err.value.code == "post_id_pending"
    sandbox.clock_offset += 3540  # m = 60: 59 whole minutes, the 60th under way
    insights = await adapter.post_insights(auth, result.remote_id)
    assert insights.metrics["view_count"] == 50 * 60


async def test_tiktok_delete_is_not_supported(adapter: TikTokAdapter, auth: AccountAuth) -> None:
    with pytest.raises(NotSupportedError, match="cannot delete"):
        await adapter.delete(auth, "7300000000000000001")


# Insights --------------------------------------------------------------------------------------


async def test_tiktok_post_insights_grow_with_time(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="clip", media=[make_media("video")]))
    sandbox.clock_offset += 89 * 60  # m = 90: 89 whole minutes later (the 2 h access token is still valid)
    insights = await adapter.post_insights(auth, result.remote_id)
    assert insights.metrics == {"view_count": 4500.0, "like_count": 450.0, "comment_count": 90.0,
                                "share_count": 45.0}
    assert insights.impressions == 4500
    assert insights.engagement == 450 + 90 + 45
    assert insights.reach == 0 and insights.clicks == 0


async def test_tiktok_account_stats_count_published_videos(
    adapter: TikTokAdapter, auth: AccountAuth, make_media: Callable[..., MediaFile]
) -> None:
    stats = await adapter.account_stats(auth)
    assert (stats.followers, stats.following, stats.posts_total) == (1500, 42, 10)
    await adapter.publish(auth, PublishRequest(text="one more", media=[make_media("video")]))
    assert (await adapter.account_stats(auth)).posts_total == 11


# Errors ----------------------------------------------------------------------------------------


async def test_tiktok_rate_limit_is_retryable_after_a_minute(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("tiktok", "rate_limit", path_contains="/video/init/")
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("video")]))
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.retry_after == 60
    assert publications(sandbox) == []


async def test_tiktok_seventh_video_init_in_a_minute_is_rate_limited(
    adapter: TikTokAdapter, auth: AccountAuth, make_media: Callable[..., MediaFile]
) -> None:
    video = make_media("video")
    for _ in range(6):
        await adapter.publish(auth, PublishRequest(text="x", media=[video]))
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, PublishRequest(text="x", media=[video]))
    assert err.value.status == 429


async def test_tiktok_expired_token_asks_for_refresh(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("tiktok", "expire_token")
    with pytest.raises(TokenExpiredError):
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("image")]))
    fresh = await adapter.refresh_token(auth)
    result = await adapter.publish(AccountAuth(auth.remote_id, fresh.access_token),
                                   PublishRequest(text="x", media=[make_media("image")]))
    assert result.remote_id


async def test_tiktok_server_error_is_retryable(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("tiktok", "server_error", path_contains="/content/init/")
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("image")]))
    assert err.value.code == "internal_error"


async def test_tiktok_dropped_photo_init_is_unknown_outcome_and_posted_once(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("tiktok", "drop_after", path_contains="/content/init/")
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("image")]))
    # TikTok got the request and pulls the photo on its own: the post appears exactly once.
    for _ in range(100):
        if publications(sandbox):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert len(publications(sandbox)) == 1


async def test_tiktok_dropped_video_init_is_retryable_because_nothing_was_uploaded(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("tiktok", "drop_after", path_contains="/video/init/")
    with pytest.raises(RetryableError, match="nothing was published"):
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("video")]))
    assert publications(sandbox) == []
    result = await adapter.publish(auth, PublishRequest(text="x", media=[make_media("video")]))
    assert [p.remote_id for p in publications(sandbox)] == [result.remote_id]


async def test_tiktok_last_chunk_answered_already_complete_after_a_lost_answer_is_published_once(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    # The chunk arrives, its answer is lost, the HTTP client sends the PUT again and TikTok answers
    # "the upload is already complete": the video is being published, not refused.
    sandbox.add_fault("tiktok", "drop_after", method="PUT")
    result = await adapter.publish(auth, PublishRequest(text="x", media=[make_media("video")]))
    puts = [r for r in sandbox.requests if r.method == "PUT"]
    assert [r.fault for r in puts] == ["drop_after", None] and puts[1].status == 400
    assert [p.remote_id for p in publications(sandbox)] == [result.remote_id]


async def test_tiktok_lost_answer_to_the_creator_query_is_retryable_nothing_published(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("tiktok", "drop_after", path_contains="/creator_info/query/")
    with pytest.raises(RetryableError):
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("video")]))
    assert publications(sandbox) == []


async def test_tiktok_status_read_failing_for_a_moment_is_asked_again_and_the_video_published(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("tiktok", "server_error", path_contains="/status/fetch/")
    result = await adapter.publish(auth, PublishRequest(text="x", media=[make_media("video")]))
    assert [p.remote_id for p in publications(sandbox)] == [result.remote_id]


async def test_tiktok_status_never_readable_is_an_unknown_outcome_at_the_deadline_posted_once(
    adapter: TikTokAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    adapter.publish_timeout = 0.3
    sandbox.add_fault("tiktok", "server_error", path_contains="/status/fetch/", count=None)
    with pytest.raises(UnknownOutcomeError, match="status could not be read"):
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media("video")]))
    assert len([r for r in sandbox.requests if "/status/fetch/" in r.path]) > 1
    assert len(publications(sandbox)) == 1


# The sandbox itself refuses protocol violations --------------------------------------------------


async def _raw(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_tiktok_sandbox_refuses_wrong_chunk_arithmetic_and_content_range(
    sandbox_url: str, auth: AccountAuth
) -> None:
    headers = {"Authorization": f"Bearer {auth.access_token}"}
    init = f"{sandbox_url}/open.tiktokapis.com/v2/post/publish/video/init/"
    post_info = {"title": "x", "privacy_level": "SELF_ONLY"}
    size = 20 * MIB
    async with aiohttp.ClientSession() as session:
        # 20 MiB in 5 MiB chunks is 4 chunks, not 3.
        status, body = await _raw(session, "POST", init, headers=headers, json={
            "post_info": post_info,
            "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": 5 * MIB,
                            "total_chunk_count": 3}})
        assert status == 400 and body["error"]["code"] == "invalid_params"
        assert "floor(video_size / chunk_size) = 4" in body["error"]["message"]
        # Chunks under 5 MiB are refused for files that are not small.
        status, body = await _raw(session, "POST", init, headers=headers, json={
            "post_info": post_info,
            "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": 1 * MIB,
                            "total_chunk_count": 20}})
        assert status == 400 and "between 5 MB and 64 MB" in body["error"]["message"]
        # A valid init, then a chunk whose Content-Range does not add up.
        status, body = await _raw(session, "POST", init, headers=headers, json={
            "post_info": post_info,
            "source_info": {"source": "FILE_UPLOAD", "video_size": 100, "chunk_size": 100,
                            "total_chunk_count": 1}})
        assert status == 200 and body["error"]["code"] == "ok"
        upload_url = body["data"]["upload_url"].replace("https://", f"{sandbox_url}/")
        status, body = await _raw(session, "PUT", upload_url, data=b"\0" * 100, headers={
            "Content-Type": "video/mp4", "Content-Range": "bytes 0-99/120"})
        assert status == 400 and "bytes 0-99/100" in body["error"]["message"]
        status, _ = await _raw(session, "PUT", upload_url, data=b"\0" * 100, headers={
            "Content-Type": "image/jpeg", "Content-Range": "bytes 0-99/100"})
        assert status == 400
