"""LinkedIn adapter against the sandbox over real HTTP: OAuth, image/video flows, posts, analytics, errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
from ouipost.platforms.linkedin import LinkedInAdapter
from ouipost.sandbox import Sandbox
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.helpers import follow_consent

REDIRECT = "https://app.example.com/oauth/linkedin"
AUTHOR = "urn:li:person:q8Xk2LmN0p"


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LinkedInAdapter, "poll_interval", 0.01)
    monkeypatch.setattr(LinkedInAdapter, "poll_timeout", 2.0)


@pytest.fixture
def adapter(make_adapter: Callable[[str], PlatformAdapter]) -> LinkedInAdapter:
    adapter = make_adapter("linkedin")
    assert isinstance(adapter, LinkedInAdapter)
    return adapter


async def consent(http_session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    return await follow_consent(http_session, url, REDIRECT)


async def connect(adapter: LinkedInAdapter, http_session: aiohttp.ClientSession,
                  scopes: list[str] | None = None) -> ConnectedIdentity:
    request = adapter.authorization_url(state="li-state", redirect_uri=REDIRECT, scopes=scopes)
    query = await consent(http_session, request.url)
    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)
    return identity




@pytest.fixture
async def auth(adapter: LinkedInAdapter, http_session: aiohttp.ClientSession) -> AccountAuth:
    return auth_of(await connect(adapter, http_session))


def live_posts(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "linkedin" and not p.deleted]


def rest_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "LinkedIn-Version": LinkedInAdapter.api_version,
            "X-Restli-Protocol-Version": "2.0.0"}


# OAuth ---------------------------------------------------------------------------------------


async def test_connect_returns_the_member_as_author(
    adapter: LinkedInAdapter, http_session: aiohttp.ClientSession
) -> None:
    request = adapter.authorization_url(state="li-state", redirect_uri=REDIRECT)
    assert request.code_verifier is None
    assert URL(request.url).path.endswith("/www.linkedin.com/oauth/v2/authorization")
    query = await consent(http_session, request.url)
    assert query["state"] == "li-state"

    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)

    assert identity.remote_id == "q8Xk2LmN0p" and identity.name == "Camille Sandbox"
    assert identity.metadata["urn"] == AUTHOR
    assert "w_member_social" in identity.permissions
    assert identity.token.expires_at is not None and identity.token.refresh_expires_at is not None


async def test_authorization_code_is_single_use(adapter: LinkedInAdapter, http_session: aiohttp.ClientSession) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    query = await consent(http_session, request.url)
    await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)
    with pytest.raises(PermanentError, match="does not match authorization code"):
        await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)


async def test_unknown_scope_comes_back_as_an_oauth_error(
    adapter: LinkedInAdapter, http_session: aiohttp.ClientSession
) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT, scopes=["w_member_social", "r_everything"])
    query = await consent(http_session, request.url)
    assert query["error"] == "unauthorized_scope_error" and "code" not in query


async def test_refresh_gives_a_new_access_token_and_keeps_the_refresh_token(
    adapter: LinkedInAdapter, auth: AccountAuth
) -> None:
    fresh = await adapter.refresh_token(auth)
    assert fresh.access_token != auth.access_token
    assert fresh.refresh_token == auth.refresh_token  # LinkedIn does not rotate
    await adapter.account_stats(AccountAuth(auth.remote_id, fresh.access_token))


async def test_refresh_without_refresh_token_asks_for_reconnection(adapter: LinkedInAdapter, auth: AccountAuth) -> None:
    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(AccountAuth(auth.remote_id, auth.access_token))


async def test_revoke_makes_the_token_report_revoked(adapter: LinkedInAdapter, auth: AccountAuth) -> None:
    await adapter.revoke(auth)
    with pytest.raises(TokenExpiredError) as caught:
        await adapter.account_stats(auth)
    assert caught.value.code == "65601"


# Publishing ----------------------------------------------------------------------------------


async def test_text_post_keeps_reserved_characters_as_written(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    text = "Launch day (finally) #ouipost @team [beta] <3 *yay* ~ok_"
    result = await adapter.publish(auth, PublishRequest(text=text))

    assert result.remote_id.startswith("urn:li:share:")
    assert result.url == f"https://www.linkedin.com/feed/update/{result.remote_id}/"
    [post] = live_posts(sandbox)
    assert post.text == text and post.remote_id == result.remote_id
    create = next(r for r in sandbox.requests if r.path == "/api.linkedin.com/rest/posts")
    assert create.body["commentary"].startswith("Launch day \\(finally\\) \\#ouipost \\@team")


async def test_link_post_is_an_article(adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    await adapter.publish(auth, PublishRequest(text="Read this", title="Our blog", link="https://blog.example/x"))
    [post] = live_posts(sandbox)
    assert post.extra["content"] == {"article": {"source": "https://blog.example/x", "title": "Our blog"}}


async def test_single_image_post_waits_until_the_image_is_available(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("linkedin")["image_polls"] = 3
    image = make_media("image", alt_text="a red square")
    await adapter.publish(auth, PublishRequest(text="One picture", media=[image]))

    polls = [r for r in sandbox.requests if r.method == "GET" and "/rest/images/" in r.path]
    assert len(polls) == 3
    [post] = live_posts(sandbox)
    assert post.media[0]["kind"] == "image" and post.media[0]["size"] == image.size
    assert post.media[0]["alt_text"] == "a red square"


async def test_image_upload_answered_already_completed_after_a_lost_answer_is_posted(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    # The bytes arrive, the answer is lost, the HTTP client sends the PUT again and LinkedIn answers
    # "upload already completed": the image is there, the post goes on.
    sandbox.add_fault("linkedin", "drop_after", method="PUT")
    await adapter.publish(auth, PublishRequest(text="One picture", media=[make_media("image")]))
    puts = [r for r in sandbox.requests if r.method == "PUT"]
    assert [r.fault for r in puts] == ["drop_after", None] and puts[1].status == 400
    [post] = live_posts(sandbox)
    assert post.media[0]["kind"] == "image"


async def test_image_upload_refused_whose_status_cannot_be_read_is_retryable_nothing_posted(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("linkedin", "drop_after", method="PUT")
    sandbox.add_fault("linkedin", "server_error", method="GET", path_contains="/rest/images/")
    with pytest.raises(RetryableError, match="nothing was posted"):
        await adapter.publish(auth, PublishRequest(text="One picture", media=[make_media("image")]))
    assert live_posts(sandbox) == []


async def test_lost_answer_to_an_image_upload_start_is_retryable_nothing_posted(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("linkedin", "drop_after", path_contains="/rest/images", method="POST")  # initializeUpload
    with pytest.raises(RetryableError):
        await adapter.publish(auth, PublishRequest(text="One picture", media=[make_media("image")]))
    assert live_posts(sandbox) == []


async def test_several_images_become_a_multi_image_post(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    images = [make_media("image"), make_media("png"), make_media("image")]
    await adapter.publish(auth, PublishRequest(text="Three pictures", media=images))
    [post] = live_posts(sandbox)
    assert list(post.extra["content"]) == ["multiImage"]
    assert [m["size"] for m in post.media] == [m.size for m in images]


async def test_video_is_uploaded_in_parts_finalized_and_polled_before_posting(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("linkedin")["part_size"] = 2000
    video = make_media("video", mdat_size=5000)
    await adapter.publish(auth, PublishRequest(text="Watch", title="Demo", media=[video]))

    paths = [(r.method, r.path, r.query.get("action")) for r in sandbox.requests]
    parts = [p for p in paths if p[0] == "PUT"]
    assert len(parts) == -(-video.size // 2000)
    finalize = paths.index(("POST", "/api.linkedin.com/rest/videos", "finalizeUpload"))
    create = paths.index(("POST", "/api.linkedin.com/rest/posts", None))
    polls = [i for i, p in enumerate(paths) if p[0] == "GET" and "/rest/videos/" in p[1]]
    assert finalize < polls[0] and len(polls) == 2 and polls[-1] < create
    [post] = live_posts(sandbox)
    assert post.media[0]["kind"] == "video" and post.media[0]["size"] == video.size


async def test_too_short_video_fails_processing_and_nothing_is_posted(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(PermanentError, match="outside 3 s"):
        await adapter.publish(auth, PublishRequest(text="Too short", media=[make_media("video", duration=1.0)]))
    assert live_posts(sandbox) == []


async def test_media_that_never_becomes_available_is_retryable(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LinkedInAdapter, "poll_timeout", 0.1)
    sandbox.network_state("linkedin").update(image_polls=10_000, processing_seconds=1e9)
    with pytest.raises(RetryableError, match="still PROCESSING"):
        await adapter.publish(auth, PublishRequest(text="slow", media=[make_media()]))
    assert live_posts(sandbox) == []


async def test_linkedin_refuses_a_post_with_an_image_not_yet_available(
    auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str, make_media: Callable[..., MediaFile]
) -> None:
    api = f"{sandbox_url}/api.linkedin.com/rest"
    headers = rest_headers(auth.access_token)
    async with http_session.post(f"{api}/images?action=initializeUpload", headers=headers,
                                 json={"initializeUploadRequest": {"owner": AUTHOR}}) as resp:
        value = (await resp.json())["value"]
    upload = sandbox_url + "/" + value["uploadUrl"].removeprefix("https://")
    async with http_session.put(upload, data=await make_media().read_all(), headers=headers) as resp:
        assert resp.status == 201
    post = {"author": AUTHOR, "commentary": "too early", "visibility": "PUBLIC", "lifecycleState": "PUBLISHED",
            "distribution": {"feedDistribution": "MAIN_FEED"}, "content": {"media": {"id": value["image"]}}}
    async with http_session.post(f"{api}/posts", headers=headers, json=post) as resp:
        assert resp.status == 400
        assert "is not AVAILABLE" in str(await resp.json())


async def test_rest_calls_without_linkedin_version_are_refused(
    auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str
) -> None:
    async with http_session.get(f"{sandbox_url}/api.linkedin.com/rest/memberFollowersCount?q=me",
                                headers={"Authorization": f"Bearer {auth.access_token}"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == "VERSION_MISSING"


async def test_sunset_linkedin_version_is_a_permanent_error(
    adapter: LinkedInAdapter, auth: AccountAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LinkedInAdapter, "api_version", "202301")
    with pytest.raises(PermanentError, match="not active") as caught:
        await adapter.account_stats(auth)
    assert caught.value.status == 426


async def test_missing_w_member_social_asks_for_reconnection(
    adapter: LinkedInAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    identity = await connect(adapter, http_session, scopes=["openid", "profile", "email"])
    with pytest.raises(PermanentError, match="Not enough permissions") as caught:
        await adapter.publish(auth_of(identity), PublishRequest(text="no scope"))
    assert caught.value.reconnect and caught.value.status == 403
    assert live_posts(sandbox) == []


async def test_duplicate_post_is_permanent(adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    await adapter.publish(auth, PublishRequest(text="Only once"))
    with pytest.raises(PermanentError, match="duplicate"):
        await adapter.publish(auth, PublishRequest(text="Only once"))
    assert len(live_posts(sandbox)) == 1


async def test_deleted_post_is_gone(adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    result = await adapter.publish(auth, PublishRequest(text="bye"))
    await adapter.delete(auth, result.remote_id)
    assert live_posts(sandbox) == []
    await adapter.delete(auth, result.remote_id)  # already gone


# Insights ------------------------------------------------------------------------------------


async def test_post_insights_grow_with_time_since_publishing(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="numbers"))
    sandbox.clock_offset += 3540  # m = 60: 59 whole minutes, the 60th under way
    insights = await adapter.post_insights(auth, result.remote_id)
    assert (insights.impressions, insights.reach, insights.engagement, insights.clicks) == (480, 300, 29, 0)
    assert insights.metrics == {"IMPRESSION": 480, "MEMBERS_REACHED": 300, "REACTION": 20, "COMMENT": 6,
                                "RESHARE": 3}


async def test_account_stats_report_followers(adapter: LinkedInAdapter, auth: AccountAuth) -> None:
    assert (await adapter.account_stats(auth)).followers == 512


# Error mapping -------------------------------------------------------------------------------


async def test_rate_limit_waits_until_next_utc_midnight(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("linkedin", "rate_limit", path_contains="/rest/posts")
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(auth, PublishRequest(text="quota"))
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert caught.value.retry_after == pytest.approx((midnight - now).total_seconds(), abs=5)


async def test_expired_token_asks_for_a_refresh(adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    sandbox.add_fault("linkedin", "expire_token")
    with pytest.raises(TokenExpiredError) as caught:
        await adapter.publish(auth, PublishRequest(text="expired"))
    assert caught.value.code == "65602"
    with pytest.raises(TokenExpiredError):
        await adapter.account_stats(auth)


async def test_server_error_is_retryable(adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    sandbox.add_fault("linkedin", "server_error", path_contains="/rest/posts")
    with pytest.raises(RetryableError):
        await adapter.publish(auth, PublishRequest(text="5xx"))
    assert live_posts(sandbox) == []


async def test_connection_dropped_after_the_post_was_created_is_an_unknown_outcome(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("linkedin", "drop_after", path_contains="/rest/posts", method="POST")
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(auth, PublishRequest(text="did it post?"))
    assert len(live_posts(sandbox)) == 1
