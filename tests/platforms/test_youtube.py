"""YouTube adapter against the Google/YouTube sandbox, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from ouipost.core.clock import Clock, FrozenClock
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
from ouipost.platforms.youtube import SCOPE, YouTubeAdapter
from ouipost.sandbox import Sandbox

REDIRECT = "https://app.example.com/oauth/youtube/callback"
CHANNEL_ID = "UCsandboxAliceChannel0001"
KIB = 1024


@pytest.fixture
def sandbox() -> Sandbox:
    """A sandbox whose day starts at noon UTC, so hour-scale clock jumps never cross a date."""
    return Sandbox(clock=_RunningFrom(datetime(2026, 3, 10, 12, 0, tzinfo=UTC)))


class _RunningFrom(Clock):
    """Real time, running from `start` instead of today."""

    def __init__(self, start: datetime) -> None:
        self.shift = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


async def follow_consent(url: str) -> dict[str, str]:
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def adapter(make_adapter: Callable[[str], Any]) -> YouTubeAdapter:
    youtube = make_adapter("youtube")
    assert isinstance(youtube, YouTubeAdapter)
    youtube.poll_interval = 0.02
    youtube.processing_timeout = 2.0
    youtube.resume_backoff = 0.01
    return youtube


async def connect(adapter: YouTubeAdapter, scopes: list[str] | None = None) -> AccountAuth:
    request = adapter.authorization_url(state="st", redirect_uri=REDIRECT, scopes=scopes)
    params = await follow_consent(request.url)
    [identity] = await adapter.exchange_code(code=params["code"], redirect_uri=REDIRECT,
                                             code_verifier=request.code_verifier)
    return AccountAuth(remote_id=identity.remote_id, access_token=identity.token.access_token,
                       refresh_token=identity.token.refresh_token, metadata=identity.metadata)


@pytest.fixture
async def auth(adapter: YouTubeAdapter) -> AccountAuth:
    return await connect(adapter)


def videos(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "youtube"]


def video_post(make_media: Callable[..., MediaFile], text: str = "My trip\nA week in the Alps.",
               **kw: Any) -> PublishRequest:
    return PublishRequest(text=text, media=[make_media("video", **kw)])


# Connect ---------------------------------------------------------------------------------------


async def test_youtube_connect_flow_lists_the_channel(adapter: YouTubeAdapter) -> None:
    request = adapter.authorization_url(state="state-7", redirect_uri=REDIRECT)
    query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
    assert "/accounts.google.com/o/oauth2/v2/auth" in request.url
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["include_granted_scopes"] == "true"
    assert query["code_challenge_method"] == "S256" and request.code_verifier
    assert f"{SCOPE}youtube.upload" in query["scope"].split(" ")

    params = await follow_consent(request.url)
    assert params["state"] == "state-7"
    [identity] = await adapter.exchange_code(code=params["code"], redirect_uri=REDIRECT,
                                             code_verifier=request.code_verifier)
    assert identity.remote_id == CHANNEL_ID
    assert identity.type == "channel"
    assert identity.name == "Alice Makes Videos"
    assert identity.username == "@alicemakes"
    assert identity.token.refresh_token and identity.token.expires_at is not None


async def test_youtube_code_without_its_pkce_verifier_is_refused(adapter: YouTubeAdapter) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    params = await follow_consent(request.url)
    with pytest.raises(PermanentError) as err:
        await adapter.exchange_code(code=params["code"], redirect_uri=REDIRECT, code_verifier="wrong")
    assert err.value.code == "invalid_grant"


async def test_youtube_refresh_keeps_refresh_token_and_revoke_kills_it(
    adapter: YouTubeAdapter, auth: AccountAuth
) -> None:
    first = await adapter.refresh_token(auth)
    second = await adapter.refresh_token(auth)  # Google does not rotate: the same one works again
    assert first.refresh_token == second.refresh_token == auth.refresh_token
    assert first.access_token != auth.access_token
    await adapter.revoke(auth)
    with pytest.raises(TokenExpiredError) as err:
        await adapter.refresh_token(auth)
    assert err.value.code == "invalid_grant"


# Publish ---------------------------------------------------------------------------------------


async def test_youtube_refuses_text_only_and_image_posts(
    adapter: YouTubeAdapter, auth: AccountAuth, make_media: Callable[..., MediaFile], sandbox: Sandbox
) -> None:
    before = len(sandbox.requests)
    with pytest.raises(NotSupportedError, match="one video"):
        await adapter.publish(auth, PublishRequest(text="hello"))
    with pytest.raises(NotSupportedError):
        await adapter.publish(auth, PublishRequest(text="hello", media=[make_media("image")]))
    assert len(sandbox.requests) == before


async def test_youtube_video_upload_publishes_once_with_title_from_first_line(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    post = video_post(make_media)
    result = await adapter.publish(auth, post)
    assert result.url == f"https://www.youtube.com/watch?v={result.remote_id}"
    assert result.extra["processing"] == "succeeded"
    assert result.extra["privacy_status"] == "public"
    [pub] = videos(sandbox)
    assert pub.remote_id == result.remote_id
    assert pub.extra["title"] == "My trip"
    assert pub.media[0] == {"type": "video/mp4", "size": post.media[0].size}
    init = next(r for r in sandbox.requests if r.method == "POST" and "/upload/" in r.path)
    assert init.query["uploadType"] == "resumable"
    assert init.body["snippet"]["description"] == "My trip\nA week in the Alps."


async def test_youtube_title_option_wins_and_angle_brackets_are_replaced(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    post = PublishRequest(text="a <b> c", title="x" * 99 + "<>", media=[make_media("video")],
                          options={"privacy_status": "unlisted"})
    result = await adapter.publish(auth, post)
    [pub] = videos(sandbox)
    assert pub.extra["title"] == "x" * 99 + "\u2039"
    assert pub.extra["privacy"] == "unlisted" and result.extra["privacy_status"] == "unlisted"


async def test_youtube_upload_goes_in_256k_chunks_with_308_between(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    adapter.chunk_size = 256 * KIB
    post = video_post(make_media, mdat_size=600 * KIB)
    await adapter.publish(auth, post)
    puts = [r for r in sandbox.requests if r.method == "PUT"]
    assert [r.status for r in puts] == [308, 308, 200]
    assert sum(r.body["bytes"] for r in puts) == post.media[0].size


async def test_youtube_upload_resumes_after_incomplete_chunk(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    adapter.chunk_size = 512 * KIB
    sandbox.network_state("youtube")["truncate_next_chunk"] = 100_000  # Google kept only part of it
    post = video_post(make_media, mdat_size=700 * KIB)
    await adapter.publish(auth, post)
    puts = [r for r in sandbox.requests if r.method == "PUT"]
    assert [r.status for r in puts] == [308, 308, 200]
    assert puts[0].body["bytes"] == 512 * KIB
    # Everything after the 100,000 bytes Google acknowledged was sent again, nothing more.
    assert sum(r.body["bytes"] for r in puts[1:]) == post.media[0].size - 100_000
    [pub] = videos(sandbox)
    assert pub.media[0]["type"] == "video/mp4"  # the bytes were reassembled in order


async def test_youtube_upload_probes_and_resumes_after_server_error(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    adapter.chunk_size = 256 * KIB
    sandbox.add_fault("youtube", "server_error", method="PUT")
    post = video_post(make_media, mdat_size=300 * KIB)
    await adapter.publish(auth, post)
    puts = [r for r in sandbox.requests if r.method == "PUT"]
    assert puts[0].status == 503
    assert puts[1].body is None and puts[1].status == 308  # the empty `bytes */N` probe
    assert len(videos(sandbox)) == 1


async def test_youtube_lost_answer_to_last_chunk_finds_the_video_without_reuploading(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("youtube", "drop_after", method="PUT")
    result = await adapter.publish(auth, video_post(make_media))
    [pub] = videos(sandbox)
    assert pub.remote_id == result.remote_id


async def test_youtube_rate_limit_after_a_lost_answer_to_the_last_chunk_finds_the_video_without_reuploading(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    # The video is complete but the answer is lost; the next send (or probe) is rate limited:
    # the session is asked again after the wait instead of a second upload being started.
    adapter.resume_backoff = 0.01
    sandbox.add_fault("youtube", "drop_after", method="PUT")
    sandbox.add_fault("youtube", "rate_limit", method="PUT", wait=0.0)
    result = await adapter.publish(auth, video_post(make_media))
    assert [r.status for r in sandbox.requests if r.method == "PUT"][:2] == [200, 429]
    [pub] = videos(sandbox)
    assert pub.remote_id == result.remote_id


async def test_youtube_dropped_upload_that_cannot_be_probed_is_unknown_outcome_posted_once(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    adapter.max_resume_attempts = 2
    sandbox.add_fault("youtube", "drop_after", method="PUT", count=None)
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(auth, video_post(make_media))
    assert len(videos(sandbox)) == 1


async def test_youtube_dropped_session_request_is_retryable_nothing_uploaded(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("youtube", "drop_after", method="POST", path_contains="/upload/")
    with pytest.raises(RetryableError, match="nothing was uploaded"):
        await adapter.publish(auth, video_post(make_media))
    assert videos(sandbox) == []


async def test_youtube_unverified_project_locks_upload_to_private(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("youtube")["unverified_project"] = True
    result = await adapter.publish(auth, video_post(make_media))
    assert result.extra["privacy_status"] == "private" and result.extra["privacy_locked"] is True


async def test_youtube_file_that_is_not_a_video_fails_processing_permanently(
    adapter: YouTubeAdapter, auth: AccountAuth, make_media: Callable[..., MediaFile]
) -> None:
    fake = make_media("image")
    fake.kind, fake.mime_type = "video", "video/mp4"  # a JPEG named like a video
    with pytest.raises(PermanentError) as err:
        await adapter.publish(auth, PublishRequest(text="bad", media=[fake]))
    assert err.value.code == "invalidFile"


async def test_youtube_slow_processing_still_returns_the_video_id(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    adapter.processing_timeout = 0.1
    sandbox.network_state("youtube")["processing_seconds"] = 3600
    result = await adapter.publish(auth, video_post(make_media))
    assert result.extra["processing"] == "pending"
    assert result.remote_id == videos(sandbox)[0].remote_id


async def test_youtube_processing_deadline_is_kept_on_the_adapters_clock(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    """Its real deadline (5 minutes, a read every 5 s) waited out on the clock it is given: the test
    moves that clock instead of waiting for wall time."""
    clock = FrozenClock()
    adapter.clock = clock
    adapter.poll_interval, adapter.processing_timeout = YouTubeAdapter.poll_interval, YouTubeAdapter.processing_timeout
    sandbox.network_state("youtube")["processing_seconds"] = 3600
    result = await adapter.publish(auth, video_post(make_media))
    assert result.extra["processing"] == "pending"
    assert clock.monotonic() >= YouTubeAdapter.processing_timeout
    reads = [r for r in sandbox.requests if r.method == "GET" and "/youtube/v3/videos" in r.path]
    assert len(reads) == pytest.approx(YouTubeAdapter.processing_timeout / YouTubeAdapter.poll_interval, abs=2)


async def test_youtube_delete_removes_the_video_and_is_idempotent(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(auth, video_post(make_media))
    await adapter.delete(auth, result.remote_id)
    assert videos(sandbox)[0].deleted is True
    await adapter.delete(auth, result.remote_id)  # already gone: fine


# Insights --------------------------------------------------------------------------------------


async def test_youtube_post_insights_combine_statistics_and_analytics(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(auth, video_post(make_media))
    sandbox.clock_offset += 49 * 60  # m = 50, the 50th minute under way (the 1 h token is still valid)
    insights = await adapter.post_insights(auth, result.remote_id)
    assert insights.metrics == {"viewCount": 1000.0, "likeCount": 100.0, "commentCount": 10.0,
                                "favoriteCount": 0.0, "shares": 5.0, "estimatedMinutesWatched": 500.0}
    assert insights.impressions == 1000
    assert insights.engagement == 100 + 10 + 5


async def test_youtube_insights_without_analytics_scope_use_data_api_only(
    adapter: YouTubeAdapter, make_media: Callable[..., MediaFile], sandbox: Sandbox
) -> None:
    auth = await connect(adapter, scopes=[f"{SCOPE}youtube.upload", f"{SCOPE}youtube.readonly"])
    result = await adapter.publish(auth, video_post(make_media))
    sandbox.clock_offset += 9 * 60  # m = 10: the 10th minute under way
    insights = await adapter.post_insights(auth, result.remote_id)
    assert insights.metrics == {"viewCount": 200.0, "likeCount": 20.0, "commentCount": 2.0, "favoriteCount": 0.0}


async def test_youtube_account_stats_count_uploads(
    adapter: YouTubeAdapter, auth: AccountAuth, make_media: Callable[..., MediaFile]
) -> None:
    stats = await adapter.account_stats(auth)
    assert (stats.followers, stats.following, stats.posts_total) == (1200, None, 8)
    await adapter.publish(auth, video_post(make_media))
    assert (await adapter.account_stats(auth)).posts_total == 9


# Errors ----------------------------------------------------------------------------------------


async def test_youtube_rate_limit_403_is_retryable(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("youtube", "rate_limit", path_contains="/upload/")
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, video_post(make_media))
    assert err.value.code == "rateLimitExceeded" and err.value.retry_after == 60


async def test_youtube_rate_limit_429_honours_retry_after(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.network_state("youtube")["rate_limit_status"] = 429
    sandbox.add_fault("youtube", "rate_limit")
    with pytest.raises(RetryableError) as err:
        await adapter.account_stats(auth)
    assert err.value.status == 429 and err.value.retry_after == 30


async def test_youtube_daily_upload_quota_defers_to_pacific_midnight(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("youtube")["insert_calls_per_day"] = 1
    await adapter.publish(auth, video_post(make_media))
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, video_post(make_media))
    assert err.value.code == "quotaExceeded"
    assert err.value.retry_after is not None and 60 <= err.value.retry_after <= 86400
    assert len(videos(sandbox)) == 1


async def test_youtube_channel_upload_limit_is_deferred_a_day(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("youtube")["uploads_per_day"] = 0
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, video_post(make_media))
    assert err.value.code == "uploadLimitExceeded" and err.value.retry_after == 86400


async def test_youtube_expired_token_then_refresh_works(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("youtube", "expire_token")
    with pytest.raises(TokenExpiredError):
        await adapter.publish(auth, video_post(make_media))
    fresh = await adapter.refresh_token(auth)
    result = await adapter.publish(AccountAuth(auth.remote_id, fresh.access_token), video_post(make_media))
    assert result.remote_id


async def test_youtube_server_error_on_session_start_is_retryable(
    adapter: YouTubeAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("youtube", "server_error", method="POST", path_contains="/upload/")
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, video_post(make_media))
    assert err.value.status == 503 and err.value.code == "backendError"


async def test_youtube_missing_upload_scope_asks_for_reconnect(
    adapter: YouTubeAdapter, make_media: Callable[..., MediaFile]
) -> None:
    auth = await connect(adapter, scopes=[f"{SCOPE}youtube.readonly"])
    with pytest.raises(PermanentError) as err:
        await adapter.publish(auth, video_post(make_media))
    assert err.value.reconnect is True and err.value.code == "insufficientPermissions"


# The sandbox itself refuses protocol violations --------------------------------------------------


async def test_youtube_sandbox_refuses_bad_sessions_chunks_and_metadata(sandbox_url: str, auth: AccountAuth) -> None:
    headers = {"Authorization": f"Bearer {auth.access_token}"}
    base = f"{sandbox_url}/www.googleapis.com/upload/youtube/v3/videos"
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{base}?uploadType=resumable&upload_id=nope", data=b"x", headers=headers) as resp:
            assert resp.status == 404
        async with session.post(f"{base}?uploadType=resumable&part=snippet,status", headers={
            **headers, "X-Upload-Content-Length": str(600 * KIB), "X-Upload-Content-Type": "video/mp4",
        }, json={"snippet": {"description": "no title"}, "status": {"privacyStatus": "public"}}) as resp:
            body = await resp.json()
            assert resp.status == 400 and body["error"]["errors"][0]["reason"] == "invalidTitle"
        async with session.post(f"{base}?uploadType=resumable&part=snippet,status", headers={
            **headers, "X-Upload-Content-Length": str(600 * KIB), "X-Upload-Content-Type": "video/mp4",
        }, json={"snippet": {"title": "t"}, "status": {"privacyStatus": "public"}}) as resp:
            assert resp.status == 200
            session_url = resp.headers["Location"].replace("https://", f"{sandbox_url}/")
        # A first chunk that is not a multiple of 256 KiB.
        async with session.put(session_url, data=b"\0" * 1000, headers={
            "Content-Range": f"bytes 0-999/{600 * KIB}"}) as resp:
            assert resp.status == 400
        # A chunk that skips bytes the session does not have.
        async with session.put(session_url, data=b"\0" * (256 * KIB), headers={
            "Content-Range": f"bytes {256 * KIB}-{512 * KIB - 1}/{600 * KIB}"}) as resp:
            assert resp.status == 400
        # The status probe of an empty session: 308 without Range.
        async with session.put(session_url, headers={"Content-Range": f"bytes */{600 * KIB}"}) as resp:
            assert resp.status == 308 and "Range" not in resp.headers
