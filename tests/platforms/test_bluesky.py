"""Bluesky adapter against the AT Protocol sandbox, over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

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
from ouipost.platforms.bluesky import BlueskyAdapter
from ouipost.platforms.text import grapheme_count
from ouipost.sandbox import Sandbox
from tests.media_samples import jpeg_bytes

ALICE_DID = "did:plc:ouipostalice2sandbox0001"
BOB_DID = "did:plc:ouipostbob22sandbox00002"
PDS = "morel.us-east.host.bsky.network"


@pytest.fixture
def adapter(make_adapter: Callable[[str], Any]) -> BlueskyAdapter:
    bluesky = make_adapter("bluesky")
    assert isinstance(bluesky, BlueskyAdapter)
    bluesky.video_poll_interval = 0.02
    bluesky.video_timeout = 2.0
    return bluesky


@pytest.fixture
async def auth(adapter: BlueskyAdapter) -> AccountAuth:
    identity = await adapter.login_with_password("alice.bsky.social", "abcd-efgh-ijkl-mnop")
    return AccountAuth(remote_id=identity.remote_id, access_token=identity.token.access_token,
                       refresh_token=identity.token.refresh_token, metadata=identity.metadata)


def posts(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "bluesky"]


def last_record(sandbox: Sandbox) -> dict[str, Any]:
    request = [r for r in sandbox.requests if r.path.endswith("com.atproto.repo.createRecord")][-1]
    return dict(request.body["record"])


# Connect ---------------------------------------------------------------------------------------


async def test_bluesky_login_with_app_password_uses_the_pds_from_the_did_doc(
    adapter: BlueskyAdapter, sandbox: Sandbox
) -> None:
    identity = await adapter.login_with_password("@alice.bsky.social", "abcd-efgh-ijkl-mnop")
    assert identity.remote_id == ALICE_DID
    assert identity.username == "alice.bsky.social" and identity.name == "Alice"
    assert identity.metadata["pds_url"] == f"https://{PDS}"
    assert identity.token.expires_at is not None and identity.token.refresh_expires_at is not None
    assert (identity.token.refresh_expires_at - identity.token.expires_at).days >= 89
    login, profile = sandbox.requests[-2:]
    assert login.path == "/bsky.social/xrpc/com.atproto.server.createSession"
    assert profile.path == f"/{PDS}/xrpc/app.bsky.actor.getProfile"


async def test_bluesky_wrong_app_password_is_refused(adapter: BlueskyAdapter) -> None:
    with pytest.raises(PermanentError, match="wrong identifier or app password") as err:
        await adapter.login_with_password("alice.bsky.social", "zzzz-zzzz-zzzz-zzzz")
    assert err.value.code == "AuthenticationRequired" and err.value.status == 401


async def test_bluesky_login_by_email_works(adapter: BlueskyAdapter) -> None:
    identity = await adapter.login_with_password("alice@example.com", "abcd-efgh-ijkl-mnop")
    assert identity.remote_id == ALICE_DID


async def test_bluesky_has_no_oauth(adapter: BlueskyAdapter) -> None:
    with pytest.raises(NotSupportedError, match="app password"):
        adapter.authorization_url(state="s", redirect_uri="https://x.example/cb")
    with pytest.raises(NotSupportedError):
        await adapter.exchange_code(code="c", redirect_uri="https://x.example/cb")


async def test_bluesky_refresh_rotates_refresh_jwt_and_old_one_is_refused(
    adapter: BlueskyAdapter, auth: AccountAuth
) -> None:
    fresh = await adapter.refresh_token(auth)
    assert fresh.refresh_token != auth.refresh_token and fresh.access_token != auth.access_token
    with pytest.raises(TokenExpiredError) as err:
        await adapter.refresh_token(auth)
    assert err.value.code == "ExpiredToken" and err.value.status == 400
    rotated = AccountAuth(auth.remote_id, fresh.access_token, fresh.refresh_token, auth.metadata)
    assert (await adapter.account_stats(rotated)).followers == 321


async def test_bluesky_access_token_expires_after_two_hours_and_refresh_recovers(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.clock_offset += 2 * 3600 + 1
    with pytest.raises(TokenExpiredError) as err:
        await adapter.publish(auth, PublishRequest(text="late"))
    assert err.value.code == "ExpiredToken"
    fresh = await adapter.refresh_token(auth)
    result = await adapter.publish(AccountAuth(auth.remote_id, fresh.access_token, metadata=auth.metadata),
                                   PublishRequest(text="late"))
    assert result.remote_id.startswith(f"at://{ALICE_DID}/app.bsky.feed.post/")


async def test_bluesky_revoke_ends_the_session(adapter: BlueskyAdapter, auth: AccountAuth) -> None:
    await adapter.revoke(auth)
    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(auth)


# Publish ---------------------------------------------------------------------------------------


async def test_bluesky_text_post_is_published_once_with_permalink(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="Hello from Oui Post"))
    rkey = result.remote_id.rsplit("/", 1)[-1]
    assert result.url == f"https://bsky.app/profile/alice.bsky.social/post/{rkey}"
    assert len(rkey) == 13
    [pub] = posts(sandbox)
    assert pub.remote_id == result.remote_id and pub.text == "Hello from Oui Post"
    assert "facets" not in last_record(sandbox) and "embed" not in last_record(sandbox)


async def test_bluesky_facets_use_utf8_byte_offsets_after_emoji(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    adapter.fetch_link_cards = False
    text = "🎉 Café launch! Read https://example.com/launch, #OuiPost with @bob.bsky.social"
    await adapter.publish(auth, PublishRequest(text=text))
    facets = last_record(sandbox)["facets"]
    raw = text.encode()
    # 🎉 is 4 bytes and é 2, so character and byte offsets differ.
    assert [f["index"] for f in facets] == [
        {"byteStart": 24, "byteEnd": 50}, {"byteStart": 52, "byteEnd": 60}, {"byteStart": 66, "byteEnd": 82},
    ]
    assert raw[24:50] == b"https://example.com/launch"
    assert raw[52:60] == b"#OuiPost"
    assert raw[66:82] == b"@bob.bsky.social"
    assert [f["features"][0] for f in facets] == [
        {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/launch"},
        {"$type": "app.bsky.richtext.facet#tag", "tag": "OuiPost"},
        {"$type": "app.bsky.richtext.facet#mention", "did": BOB_DID},
    ]
    assert len(posts(sandbox)) == 1


async def test_bluesky_unknown_handle_stays_plain_text(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    await adapter.publish(auth, PublishRequest(text="thanks @nobody.example.org and #1"))
    assert "facets" not in last_record(sandbox)


async def test_bluesky_link_gets_a_card_from_the_page_opengraph_tags(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox, media_server: dict[str, Any]
) -> None:
    media_server["files"]["thumb.jpg"] = (jpeg_bytes(300, 200), "image/jpeg")
    media_server["files"]["article.html"] = (
        b'<html><head><title>Fallback</title><meta property="og:title" content="Our launch">'
        b'<meta property="og:description" content="What we built"><meta property="og:image" content="thumb.jpg">'
        b"</head><body>hi</body></html>", "text/html")
    link = media_server["base"] + "article.html"
    await adapter.publish(auth, PublishRequest(text=f"Read this: {link}"))
    embed = last_record(sandbox)["embed"]
    assert embed["$type"] == "app.bsky.embed.external"
    external = embed["external"]
    assert (external["uri"], external["title"], external["description"]) == (link, "Our launch", "What we built")
    assert external["thumb"]["mimeType"] == "image/jpeg"
    assert posts(sandbox)[0].media[0]["type"] == "external"


async def test_bluesky_one_image_with_alt_text_and_aspect_ratio(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    image = make_media("image", alt_text="A red square", width=800, height=600)
    await adapter.publish(auth, PublishRequest(text="look", media=[image]))
    [item] = last_record(sandbox)["embed"]["images"]
    assert item["alt"] == "A red square"
    assert item["aspectRatio"] == {"width": 800, "height": 600}
    assert item["image"]["ref"]["$link"].startswith("bafkrei")
    [pub] = posts(sandbox)
    assert pub.media[0]["size"] == image.size and pub.media[0]["type"] == "image/jpeg"


async def test_bluesky_image_aspect_ratio_read_from_bytes_when_unknown(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    png = make_media("png")  # 320x240, no width/height on the MediaFile
    jpeg = make_media("image")  # 640x480
    png.width = png.height = jpeg.width = jpeg.height = None
    await adapter.publish(auth, PublishRequest(text="", media=[png, jpeg]))
    images = last_record(sandbox)["embed"]["images"]
    assert [i["aspectRatio"] for i in images] == [{"width": 320, "height": 240}, {"width": 640, "height": 480}]
    assert [i["alt"] for i in images] == ["", ""]  # alt is required by the lexicon, even empty


async def test_bluesky_four_images_in_order_and_a_fifth_refused(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    images = [make_media("image", alt_text=f"photo {i}", color=(i * 50, 0, 0)) for i in range(5)]
    await adapter.publish(auth, PublishRequest(text="four", media=images[:4]))
    [pub] = posts(sandbox)
    assert [m["alt"] for m in pub.media] == ["photo 0", "photo 1", "photo 2", "photo 3"]
    uploads = len([r for r in sandbox.requests if r.path.endswith("uploadBlob")])
    with pytest.raises(PermanentError, match="at most 4 images") as err:
        await adapter.publish(auth, PublishRequest(text="five", media=images))
    assert err.value.code == "too_many_images"
    assert len([r for r in sandbox.requests if r.path.endswith("uploadBlob")]) == uploads
    assert len(posts(sandbox)) == 1


async def test_bluesky_300_graphemes_pass_but_301_are_refused(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    thumbs = "👍🏽" * 300  # 600 code points, 2,400 bytes, but 300 graphemes
    assert grapheme_count(thumbs) == 300
    await adapter.publish(auth, PublishRequest(text=thumbs))
    with pytest.raises(PermanentError) as err:
        await adapter.publish(auth, PublishRequest(text=thumbs + "!"))
    assert err.value.code == "InvalidRequest" and "300 graphemes" in err.value.message
    with pytest.raises(PermanentError, match="3000"):
        await adapter.publish(auth, PublishRequest(text="👨‍👩‍👧" * 200))  # 200 graphemes, 3,600 bytes
    assert len(posts(sandbox)) == 1


async def test_bluesky_video_goes_through_the_video_service_job(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    video = make_media("video", alt_text="a clip", duration=20, width=1280, height=720)
    result = await adapter.publish(auth, PublishRequest(text="watch", media=[video]))
    embed = last_record(sandbox)["embed"]
    assert embed["$type"] == "app.bsky.embed.video"
    assert embed["video"]["mimeType"] == "video/mp4" and embed["video"]["size"] == video.size
    assert embed["alt"] == "a clip" and embed["aspectRatio"] == {"width": 1280, "height": 720}
    paths = [r.path for r in sandbox.requests]
    assert f"/{PDS}/xrpc/com.atproto.server.getServiceAuth" in paths
    assert "/video.bsky.app/xrpc/app.bsky.video.uploadVideo" in paths
    service = next(r for r in sandbox.requests if r.path.endswith("getServiceAuth"))
    assert service.query["aud"] == f"did:web:{PDS}" and service.query["lxm"] == "com.atproto.repo.uploadBlob"
    [pub] = posts(sandbox)
    assert pub.remote_id == result.remote_id and pub.media[0]["type"] == "video/mp4"


async def test_bluesky_video_wrapped_job_answer_is_accepted(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("bluesky")["upload_video_shape"] = "wrapped"
    await adapter.publish(auth, PublishRequest(text="watch", media=[make_media("video")]))
    assert len(posts(sandbox)) == 1


async def test_bluesky_too_long_video_fails_permanently_without_a_post(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(PermanentError) as err:
        await adapter.publish(auth, PublishRequest(text="long", media=[make_media("video", duration=240)]))
    assert err.value.code == "validation_failure"
    assert posts(sandbox) == []


async def test_bluesky_video_job_that_never_finishes_is_retryable_nothing_posted(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    adapter.video_timeout = 0.1
    sandbox.network_state("bluesky")["video_processing_seconds"] = 3600
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, PublishRequest(text="slow", media=[make_media("video")]))
    assert err.value.code == "video_processing_timeout"
    assert posts(sandbox) == []


async def test_bluesky_delete_removes_the_post_and_is_idempotent(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="oops"))
    await adapter.delete(auth, result.remote_id)
    assert posts(sandbox)[0].deleted is True
    await adapter.delete(auth, result.remote_id)
    with pytest.raises(PermanentError):
        await adapter.post_insights(auth, result.remote_id)


# Insights --------------------------------------------------------------------------------------


async def test_bluesky_post_insights_grow_with_time(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="count me"))
    sandbox.clock_offset += 59 * 60  # m = 60: 59 whole minutes, the 60th under way
    insights = await adapter.post_insights(auth, result.remote_id)
    assert insights.metrics == {"likeCount": 180.0, "repostCount": 60.0, "replyCount": 30.0,
                                "quoteCount": 15.0, "bookmarkCount": 12.0}
    assert insights.engagement == 297
    assert insights.impressions == 0 and insights.reach == 0


async def test_bluesky_account_stats_from_profile(adapter: BlueskyAdapter, auth: AccountAuth) -> None:
    stats = await adapter.account_stats(auth)
    assert (stats.followers, stats.following, stats.posts_total) == (321, 123, 40)
    await adapter.publish(auth, PublishRequest(text="one more"))
    assert (await adapter.account_stats(auth)).posts_total == 41


# Errors ----------------------------------------------------------------------------------------


async def test_bluesky_rate_limit_waits_until_ratelimit_reset(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("bluesky", "rate_limit", path_contains="createRecord")
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, PublishRequest(text="x"))
    assert err.value.code == "RateLimitExceeded" and err.value.status == 429
    assert err.value.retry_after is not None and 25 <= err.value.retry_after <= 31
    assert posts(sandbox) == []


async def test_bluesky_expired_token_is_a_400_that_asks_for_refresh(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("bluesky", "expire_token")
    with pytest.raises(TokenExpiredError) as err:
        await adapter.publish(auth, PublishRequest(text="x"))
    assert err.value.status == 400 and err.value.code == "ExpiredToken"
    with pytest.raises(TokenExpiredError):  # the token really is expired now
        await adapter.account_stats(auth)


async def test_bluesky_server_error_is_retryable(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("bluesky", "server_error", path_contains="createRecord")
    with pytest.raises(RetryableError) as err:
        await adapter.publish(auth, PublishRequest(text="x"))
    assert err.value.status == 500
    assert posts(sandbox) == []


async def test_bluesky_dropped_create_record_is_unknown_outcome_posted_once(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("bluesky", "drop_after", path_contains="createRecord")
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(auth, PublishRequest(text="did it post?"))
    assert len(posts(sandbox)) == 1


async def test_bluesky_answers_carry_rate_limit_headers(sandbox_url: str, auth: AccountAuth) -> None:
    url = f"{sandbox_url}/{PDS}/xrpc/app.bsky.actor.getProfile?actor={ALICE_DID}"
    async with aiohttp.ClientSession() as session, session.get(
        url, headers={"Authorization": f"Bearer {auth.access_token}"}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["RateLimit-Policy"] == "3000;w=300"
        assert int(resp.headers["RateLimit-Remaining"]) < 3000


# The sandbox itself refuses protocol violations --------------------------------------------------


async def test_bluesky_sandbox_refuses_bad_records(sandbox_url: str, auth: AccountAuth) -> None:
    base = f"{sandbox_url}/{PDS}/xrpc"
    headers = {"Authorization": f"Bearer {auth.access_token}"}

    async def create(session: aiohttp.ClientSession, record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        record = {"$type": "app.bsky.feed.post", "createdAt": "2026-01-01T00:00:00.000Z", **record}
        async with session.post(f"{base}/com.atproto.repo.createRecord", headers=headers, json={
            "repo": ALICE_DID, "collection": "app.bsky.feed.post", "record": record}) as resp:
            return resp.status, await resp.json()

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/com.atproto.repo.uploadBlob", data=jpeg_bytes(20, 20),
                                headers={**headers, "Content-Type": "image/jpeg"}) as resp:
            blob = (await resp.json())["blob"]
        image = {"image": blob, "alt": ""}
        status, body = await create(session, {"text": "x", "embed": {
            "$type": "app.bsky.embed.images", "images": [image] * 5}})
        assert status == 400 and "more than 4" in body["message"]
        ghost = {**blob, "ref": {"$link": "bafkrei" + base64.b32encode(b"\0" * 20).decode().lower()}}
        status, body = await create(session, {"text": "x", "embed": {
            "$type": "app.bsky.embed.images", "images": [{"image": ghost, "alt": ""}]}})
        assert status == 400 and body["error"] == "BlobNotFound"
        status, body = await create(session, {"text": "x", "embed": {
            "$type": "app.bsky.embed.images", "images": [{"image": blob}]}})
        assert status == 400 and '"alt"' in body["message"]
        # Character offsets instead of byte offsets: 🎉 is 4 bytes, so "#tag" is at 5..9, not 2..6.
        status, body = await create(session, {"text": "🎉 #tag", "facets": [{
            "index": {"byteStart": 2, "byteEnd": 6},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "tag"}]}]})
        assert status == 400 and body["error"] == "InvalidRequest"
        status, body = await create(session, {"text": "short", "facets": [{
            "index": {"byteStart": 0, "byteEnd": 50},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "t"}]}]})
        assert status == 400 and "outside the text" in body["message"]
        status, _ = await create(session, {"text": "🎉 #tag", "facets": [{
            "index": {"byteStart": 5, "byteEnd": 9},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "tag"}]}]})
        assert status == 200
