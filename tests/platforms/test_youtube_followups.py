"""YouTube follow-ups against the sandbox over real HTTP: a first comment (commentThreads.insert), read
back with commentThreads.list and the video's statistics, and its errors."""

# ruff: noqa: F811 -- the tests take the fixtures imported from test_youtube.py as parameters

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from ouipost.platforms.base import (
    AccountAuth,
    MediaFile,
    PermanentError,
    PostRef,
    PublishRequest,
    PublishResult,
    RetryableError,
    UnknownOutcomeError,
)
from ouipost.platforms.youtube import SCOPE, YouTubeAdapter
from ouipost.sandbox import Sandbox
from tests.platforms.test_youtube import CHANNEL_ID, REDIRECT, adapter, auth, connect  # noqa: F401


@pytest.fixture(autouse=True)
def instant_processing(sandbox: Sandbox) -> None:
    sandbox.network_state("youtube")["processing_seconds"] = 0.0  # processed at once: nothing to wait for


@pytest.fixture
def publish_video(
    adapter: YouTubeAdapter, auth: AccountAuth, make_media: Callable[..., MediaFile]
) -> Callable[..., Any]:
    async def publish(**options: Any) -> PublishResult:
        post = PublishRequest(text="My trip\nA week in the Alps.", media=[make_media("video")], options=options)
        return await adapter.publish(auth, post)

    return publish


async def threads(http_session: aiohttp.ClientSession, sandbox_url: str, auth: AccountAuth,
                  video_id: str) -> tuple[int, Any]:
    """commentThreads.list for the video, as a YouTube client reads it."""
    url = f"{sandbox_url}/www.googleapis.com/youtube/v3/commentThreads?part=snippet&videoId={video_id}"
    async with http_session.get(url, headers={"Authorization": f"Bearer {auth.access_token}"}) as resp:
        return resp.status, await resp.json()


def inserts(sandbox: Sandbox) -> list[Any]:
    return [r for r in sandbox.requests if r.method == "POST" and r.path.endswith("/youtube/v3/commentThreads")]


async def test_a_comment_lands_on_the_video_and_reads_back(
    adapter: YouTubeAdapter, auth: AccountAuth, publish_video: Callable[..., Any], sandbox: Sandbox,
    http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    video = await publish_video()
    text = "Gear list <in order>:\n1. boots & poles"

    result = await adapter.comment(auth, text, on=PostRef.of(video), key="comment-key-1")

    assert result.url == f"https://www.youtube.com/watch?v={video.remote_id}&lc={result.remote_id}"
    assert result.extra == {"video_id": video.remote_id, "thread_id": result.remote_id}
    [sent] = inserts(sandbox)
    assert sent.query == {"part": "snippet"}
    assert sent.body == {"snippet": {"channelId": CHANNEL_ID, "videoId": video.remote_id,
                                     "topLevelComment": {"snippet": {"textOriginal": text}}}}
    status, listed = await threads(http_session, sandbox_url, auth, video.remote_id)
    assert status == 200 and listed["kind"] == "youtube#commentThreadListResponse"
    [thread] = listed["items"]
    assert thread["kind"] == "youtube#commentThread" and thread["id"] == result.remote_id
    top = thread["snippet"]["topLevelComment"]
    assert top["id"] == result.remote_id and top["snippet"]["videoId"] == video.remote_id
    assert top["snippet"]["textOriginal"] == text
    assert top["snippet"]["textDisplay"] == "Gear list &lt;in order&gt;:<br>1. boots &amp; poles"
    assert top["snippet"]["authorChannelId"] == {"value": CHANNEL_ID}


async def test_a_comment_moves_the_videos_comment_count(
    adapter: YouTubeAdapter, auth: AccountAuth, publish_video: Callable[..., Any]
) -> None:
    video = await publish_video()
    before = await adapter.post_insights(auth, video.remote_id)

    await adapter.comment(auth, "Thanks for watching!", on=PostRef.of(video))
    await adapter.comment(auth, "Part two next week.", on=PostRef.of(video))

    after = await adapter.post_insights(auth, video.remote_id)
    assert after.metrics["commentCount"] == before.metrics["commentCount"] + 2
    assert after.engagement == before.engagement + 2


async def test_default_scopes_let_a_new_connection_comment(adapter: YouTubeAdapter) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    scopes = parse_qs(urlsplit(request.url).query)["scope"][0].split(" ")
    assert f"{SCOPE}youtube.force-ssl" in scopes


async def test_a_grant_without_force_ssl_asks_for_reconnection(
    adapter: YouTubeAdapter, publish_video: Callable[..., Any], sandbox: Sandbox,
    http_session: aiohttp.ClientSession, sandbox_url: str, auth: AccountAuth,
) -> None:
    video = await publish_video()
    # An older connection: it can upload and read, but commentThreads.insert needs youtube.force-ssl.
    upload_only = await connect(adapter, [f"{SCOPE}youtube.upload", f"{SCOPE}youtube.readonly"])
    with pytest.raises(PermanentError) as caught:
        await adapter.comment(upload_only, "hello", on=PostRef.of(video))
    assert caught.value.reconnect and caught.value.status == 403
    assert caught.value.code == "insufficientPermissions"
    _, listed = await threads(http_session, sandbox_url, auth, video.remote_id)
    assert listed["items"] == []


async def test_commenting_on_a_deleted_or_unknown_video_is_permanent(
    adapter: YouTubeAdapter, auth: AccountAuth, publish_video: Callable[..., Any]
) -> None:
    video = await publish_video()
    await adapter.delete(auth, video.remote_id)
    with pytest.raises(PermanentError) as caught:
        await adapter.comment(auth, "Too late", on=PostRef.of(video))
    assert (caught.value.status, caught.value.code, caught.value.reconnect) == (404, "videoNotFound", False)
    with pytest.raises(PermanentError) as caught:
        await adapter.comment(auth, "Who?", on=PostRef("nosuchvideo"))
    assert caught.value.code == "videoNotFound"


async def test_a_video_made_for_kids_takes_no_comments(
    adapter: YouTubeAdapter, auth: AccountAuth, publish_video: Callable[..., Any]
) -> None:
    video = await publish_video(made_for_kids=True)
    with pytest.raises(PermanentError) as caught:
        await adapter.comment(auth, "Hi kids", on=PostRef.of(video))
    assert (caught.value.status, caught.value.code, caught.value.reconnect) == (403, "commentsDisabled", False)


async def test_comments_turned_off_by_the_channel_are_permanent(
    adapter: YouTubeAdapter, auth: AccountAuth, publish_video: Callable[..., Any], sandbox: Sandbox,
    http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    open_video, closed_video = await publish_video(), await publish_video()
    sandbox.network_state("youtube")["comments_disabled"] = [closed_video.remote_id]
    with pytest.raises(PermanentError, match="disabled comments") as caught:
        await adapter.comment(auth, "Closed?", on=PostRef.of(closed_video))
    assert caught.value.code == "commentsDisabled" and not caught.value.reconnect
    status, body = await threads(http_session, sandbox_url, auth, closed_video.remote_id)
    assert status == 403 and body["error"]["errors"][0]["reason"] == "commentsDisabled"
    await adapter.comment(auth, "Open", on=PostRef.of(open_video))


async def test_a_comment_over_10000_characters_is_refused_by_youtube(
    adapter: YouTubeAdapter, auth: AccountAuth, publish_video: Callable[..., Any],
    http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    video = await publish_video()
    with pytest.raises(PermanentError) as caught:
        await adapter.comment(auth, "ü" * 10_001, on=PostRef.of(video))
    assert (caught.value.status, caught.value.code) == (400, "commentTextTooLong")
    with pytest.raises(PermanentError) as caught:
        await adapter.comment(auth, " ", on=PostRef.of(video))
    assert caught.value.code == "commentTextRequired"

    await adapter.comment(auth, "ü" * 10_000, on=PostRef.of(video))  # exactly the limit is fine
    _, listed = await threads(http_session, sandbox_url, auth, video.remote_id)
    assert [len(t["snippet"]["topLevelComment"]["snippet"]["textOriginal"]) for t in listed["items"]] == [10_000]


async def test_a_lost_answer_is_an_unknown_outcome_and_the_comment_exists_once(
    adapter: YouTubeAdapter, auth: AccountAuth, publish_video: Callable[..., Any], sandbox: Sandbox,
    http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    video = await publish_video()
    sandbox.add_fault("youtube", "drop_after", path_contains="/commentThreads", method="POST")
    with pytest.raises(UnknownOutcomeError):
        await adapter.comment(auth, "Did it land?", on=PostRef.of(video), key="k-1")
    # Google takes no idempotency key: the adapter must not send the comment again by itself.
    assert len(inserts(sandbox)) == 1
    _, listed = await threads(http_session, sandbox_url, auth, video.remote_id)
    assert len(listed["items"]) == 1


async def test_a_comment_over_the_daily_quota_waits_for_the_next_pacific_day(
    adapter: YouTubeAdapter, auth: AccountAuth, publish_video: Callable[..., Any], sandbox: Sandbox,
    http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    video = await publish_video()
    sandbox.network_state("youtube")["daily_units"] = 40  # a few units used so far; commentThreads.insert costs 50
    with pytest.raises(RetryableError) as caught:
        await adapter.comment(auth, "Over quota", on=PostRef.of(video))
    assert caught.value.code == "quotaExceeded" and caught.value.retry_after is not None
    assert caught.value.retry_after >= 60
    sandbox.network_state("youtube")["daily_units"] = 10_000
    _, listed = await threads(http_session, sandbox_url, auth, video.remote_id)
    assert listed["items"] == []
