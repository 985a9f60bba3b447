"""Pinterest adapter against the sandbox over real HTTP: OAuth, boards, image/carousel/video pins, errors."""

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
from ouipost.platforms.pinterest import PinterestAdapter
from ouipost.sandbox import Sandbox
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.helpers import follow_consent

REDIRECT = "https://app.example.com/oauth/pinterest"
DEFAULT_BOARD, IDEAS_BOARD = "1099511627781", "1099511627782"


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PinterestAdapter, "poll_interval", 0.01)
    monkeypatch.setattr(PinterestAdapter, "poll_timeout", 2.0)


@pytest.fixture
def adapter(make_adapter: Callable[[str], PlatformAdapter]) -> PinterestAdapter:
    adapter = make_adapter("pinterest")
    assert isinstance(adapter, PinterestAdapter)
    return adapter


async def consent(http_session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    return await follow_consent(http_session, url, REDIRECT)


async def connect(adapter: PinterestAdapter, http_session: aiohttp.ClientSession,
                  scopes: list[str] | None = None) -> ConnectedIdentity:
    request = adapter.authorization_url(state="pin-state", redirect_uri=REDIRECT, scopes=scopes)
    query = await consent(http_session, request.url)
    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)
    return identity




@pytest.fixture
async def auth(adapter: PinterestAdapter, http_session: aiohttp.ClientSession) -> AccountAuth:
    return auth_of(await connect(adapter, http_session))


def live_pins(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "pinterest" and not p.deleted]


# OAuth ---------------------------------------------------------------------------------------


async def test_connect_returns_the_account_with_its_boards(
    adapter: PinterestAdapter, http_session: aiohttp.ClientSession
) -> None:
    request = adapter.authorization_url(state="pin-state", redirect_uri=REDIRECT)
    assert URL(request.url).path.endswith("/www.pinterest.com/oauth/")
    assert URL(request.url).query["scope"] == "boards:read,boards:write,pins:read,pins:write,user_accounts:read"
    query = await consent(http_session, request.url)
    assert query["state"] == "pin-state"

    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)

    assert (identity.remote_id, identity.username, identity.type) == ("549755885175", "ouipost_sandbox", "business")
    assert identity.token.access_token.startswith("pina_") and identity.token.refresh_token
    assert identity.metadata["board_id"] == DEFAULT_BOARD
    # The secret board needs boards:read_secret, which was not asked for.
    assert [b["name"] for b in identity.metadata["boards"]] == ["Oui Post", "Ideas"]


async def test_token_endpoint_requires_basic_client_auth(
    adapter: PinterestAdapter, http_session: aiohttp.ClientSession, sandbox_url: str
) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    query = await consent(http_session, request.url)
    async with http_session.post(f"{sandbox_url}/api.pinterest.com/v5/oauth/token", data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
        "client_id": "sandbox-client", "client_secret": "sandbox-secret",
    }) as resp:
        assert resp.status == 401


async def test_authorization_code_is_single_use(adapter: PinterestAdapter, http_session: aiohttp.ClientSession) -> None:
    request = adapter.authorization_url(state="s", redirect_uri=REDIRECT)
    query = await consent(http_session, request.url)
    await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)
    with pytest.raises(PermanentError, match="authorization code is invalid"):
        await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT)


async def test_continuous_refresh_hands_out_new_tokens(adapter: PinterestAdapter, auth: AccountAuth) -> None:
    fresh = await adapter.refresh_token(auth)
    assert fresh.access_token != auth.access_token
    assert fresh.refresh_token and fresh.refresh_token != auth.refresh_token
    assert fresh.refresh_expires_at is not None
    await adapter.account_stats(AccountAuth(auth.remote_id, fresh.access_token))
    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(AccountAuth(auth.remote_id, fresh.access_token, "pinr_forged"))


# Publishing ----------------------------------------------------------------------------------


async def test_image_pin_is_pulled_from_its_url_onto_the_default_board(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    image = make_media("image", alt_text="red")
    result = await adapter.publish(auth, PublishRequest(text="A red square", title="Red", link="https://shop.example",
                                                        media=[image]))

    assert result.url == f"https://www.pinterest.com/pin/{result.remote_id}/"
    [pin] = live_pins(sandbox)
    assert pin.remote_id == result.remote_id and pin.text == "A red square"
    assert pin.extra["board_id"] == DEFAULT_BOARD and pin.extra["title"] == "Red"
    assert pin.media == [{"url": image.url, "type": "image/jpeg", "size": image.size}]


async def test_image_pin_as_base64_on_a_chosen_board(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    image = make_media("png")
    await adapter.publish(auth, PublishRequest(text="inline", media=[image],
                                               options={"board_id": IDEAS_BOARD, "image_source": "base64"}))
    [pin] = live_pins(sandbox)
    assert pin.extra["board_id"] == IDEAS_BOARD
    assert pin.media == [{"source": "base64", "type": "image/png", "size": image.size}]


async def test_carousel_pin_with_three_images(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    images = [make_media("image") for _ in range(3)]
    await adapter.publish(auth, PublishRequest(text="carousel", media=images))
    [pin] = live_pins(sandbox)
    assert pin.extra["media_type"] == "multiple_images"
    assert [m["url"] for m in pin.media] == [m.url for m in images]


async def test_video_pin_waits_for_processing_to_succeed(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("pinterest")["processing_polls"] = 3
    video = make_media("video")
    await adapter.publish(auth, PublishRequest(text="video", title="Clip", media=[video],
                                               options={"cover_key_frame_time": 2}))

    paths = [(r.method, r.path) for r in sandbox.requests]
    upload = paths.index(("POST", "/pinterest-media-upload.s3-accelerate.amazonaws.com/"))
    polls = [i for i, p in enumerate(paths) if p[0] == "GET" and "/v5/media/" in p[1]]
    create = paths.index(("POST", "/api.pinterest.com/v5/pins"))
    assert upload < polls[0] and len(polls) == 3 and polls[-1] < create
    upload_request = sandbox.requests[upload]
    assert upload_request.authorization is None  # pre-signed: no bearer token
    [pin] = live_pins(sandbox)
    assert pin.media[0]["size"] == video.size and pin.media[0]["cover"] == {"key_frame_time": 2}


async def test_video_that_fails_processing_is_permanent(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("pinterest")["fail_processing"] = True
    with pytest.raises(PermanentError, match="could not process"):
        await adapter.publish(auth, PublishRequest(text="broken", media=[make_media("video")]))
    assert live_pins(sandbox) == []


async def test_video_that_never_finishes_processing_is_retryable(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(PinterestAdapter, "poll_timeout", 0.1)
    sandbox.network_state("pinterest").update(processing_polls=10_000, processing_seconds=1e9)
    with pytest.raises(RetryableError, match="still processing"):
        await adapter.publish(auth, PublishRequest(text="slow", media=[make_media("video")]))
    assert live_pins(sandbox) == []


async def test_pinterest_refuses_a_pin_without_board_or_a_one_image_carousel(
    auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str, make_media: Callable[..., MediaFile]
) -> None:
    url = f"{sandbox_url}/api.pinterest.com/v5/pins"
    headers = {"Authorization": f"Bearer {auth.access_token}"}
    image = make_media()
    async with http_session.post(url, headers=headers, json={
            "media_source": {"source_type": "image_url", "url": image.url}}) as resp:
        assert resp.status == 400
        assert "board_id" in (await resp.json())["message"]
    async with http_session.post(url, headers=headers, json={"board_id": DEFAULT_BOARD, "media_source": {
            "source_type": "multiple_image_urls", "items": [{"url": image.url}]}}) as resp:
        assert resp.status == 400
        assert "minItems=2" in (await resp.json())["message"]


async def test_presigned_upload_url_refuses_a_second_auth_method(
    auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str, make_media: Callable[..., MediaFile]
) -> None:
    headers = {"Authorization": f"Bearer {auth.access_token}"}
    async with http_session.post(f"{sandbox_url}/api.pinterest.com/v5/media", headers=headers,
                                 json={"media_type": "video"}) as resp:
        media = await resp.json()
    form = aiohttp.FormData(media["upload_parameters"])
    form.add_field("file", await make_media("video").read_all(), filename="v.mp4", content_type="video/mp4")
    upload = sandbox_url + "/" + media["upload_url"].removeprefix("https://")
    async with http_session.post(upload, data=form, headers=headers) as resp:
        assert resp.status == 400
        assert "<Code>InvalidArgument</Code>" in await resp.text()
    async with http_session.get(f"{sandbox_url}/api.pinterest.com/v5/media/{media['media_id']}",
                                headers=headers) as resp:
        assert (await resp.json())["status"] == "registered"


async def test_unreachable_image_url_is_a_permanent_error(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    image = make_media()
    image.url = image.url.replace("/media/", "/media/missing-")
    with pytest.raises(PermanentError, match="Unable to reach the URL"):
        await adapter.publish(auth, PublishRequest(text="404", media=[image]))
    assert live_pins(sandbox) == []


async def test_pins_need_media_and_at_most_five_images(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(PermanentError, match="needs an image"):
        await adapter.publish(auth, PublishRequest(text="text only"))
    with pytest.raises(PermanentError, match="at most 5"):
        await adapter.publish(auth, PublishRequest(text="6", media=[make_media() for _ in range(6)]))
    assert not any(r.path.endswith("/v5/pins") for r in sandbox.requests)


async def test_pin_on_someone_elses_board_is_refused_without_reconnect(
    adapter: PinterestAdapter, auth: AccountAuth, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(PermanentError) as caught:
        await adapter.publish(auth, PublishRequest(text="x", media=[make_media()],
                                                   options={"board_id": "1099511627999"}))
    assert caught.value.status == 403 and not caught.value.reconnect


async def test_missing_pins_write_scope_asks_for_reconnection(
    adapter: PinterestAdapter, http_session: aiohttp.ClientSession, make_media: Callable[..., MediaFile]
) -> None:
    identity = await connect(adapter, http_session, scopes=["boards:read", "pins:read", "user_accounts:read"])
    with pytest.raises(PermanentError, match="pins:write") as caught:
        await adapter.publish(auth_of(identity), PublishRequest(text="x", media=[make_media()]))
    assert caught.value.reconnect


async def test_deleted_pin_is_gone(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="bye", media=[make_media()]))
    await adapter.delete(auth, result.remote_id)
    assert live_pins(sandbox) == []
    await adapter.delete(auth, result.remote_id)  # already gone


# Insights ------------------------------------------------------------------------------------


async def test_pin_insights_grow_with_time_since_publishing(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="numbers", media=[make_media()]))
    sandbox.clock_offset += 3540  # m = 60: 59 whole minutes, the 60th under way
    insights = await adapter.post_insights(auth, result.remote_id)
    # 60 minutes: IMPRESSION 720, PIN_CLICK 15, OUTBOUND_CLICK 10, SAVE 7, TOTAL_REACTIONS 6, TOTAL_COMMENTS 2
    assert (insights.impressions, insights.clicks, insights.engagement, insights.reach) == (720, 10, 40, 0)
    assert insights.metrics["SAVE"] == 7 and insights.metrics["SAVE_RATE"] == pytest.approx(7 / 720)


async def test_account_stats_report_followers_and_pins(
    adapter: PinterestAdapter, auth: AccountAuth, make_media: Callable[..., MediaFile]
) -> None:
    await adapter.publish(auth, PublishRequest(text="one", media=[make_media()]))
    stats = await adapter.account_stats(auth)
    assert (stats.followers, stats.following, stats.posts_total) == (842, 97, 41)


# Error mapping -------------------------------------------------------------------------------


async def test_rate_limit_is_retryable_after_the_reset_header(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("pinterest", "rate_limit", path_contains="/v5/pins")
    with pytest.raises(RetryableError) as caught:
        await adapter.publish(auth, PublishRequest(text="later", media=[make_media()]))
    assert caught.value.retry_after == 60 and caught.value.code == "8"


async def test_expired_token_asks_for_a_refresh(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("pinterest", "expire_token")
    with pytest.raises(TokenExpiredError) as caught:
        await adapter.publish(auth, PublishRequest(text="expired", media=[make_media()]))
    assert caught.value.code == "2"
    fresh = await adapter.refresh_token(auth)
    await adapter.account_stats(AccountAuth(auth.remote_id, fresh.access_token))


async def test_server_error_is_retryable(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("pinterest", "server_error", path_contains="/v5/pins")
    with pytest.raises(RetryableError):
        await adapter.publish(auth, PublishRequest(text="5xx", media=[make_media()]))


async def test_connection_dropped_after_the_pin_was_created_is_an_unknown_outcome(
    adapter: PinterestAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.add_fault("pinterest", "drop_after", path_contains="/v5/pins", method="POST")
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(auth, PublishRequest(text="did it pin?", media=[make_media()]))
    assert len(live_pins(sandbox)) == 1
