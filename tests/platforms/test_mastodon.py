"""Mastodon adapter against the sandbox over real HTTP: per-server apps, OAuth + PKCE, media v2,
statuses with Idempotency-Key, the server's limits, insights, rate limits and errors."""

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
from ouipost.platforms.mastodon import (
    SCOPES,
    InstanceApp,
    InvalidInstance,
    MastodonAdapter,
    counted_length,
    normalise_instance,
)
from ouipost.sandbox import Sandbox
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.helpers import follow_consent

REDIRECT = "https://app.example.com/oauth/callback"
SERVER = "mastodon.example"


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MastodonAdapter, "media_poll_interval", 0.01)
    monkeypatch.setattr(MastodonAdapter, "media_poll_timeout", 2.0)


@pytest.fixture
def adapter(make_adapter: Callable[[str], PlatformAdapter]) -> MastodonAdapter:
    adapter = make_adapter("mastodon")
    assert isinstance(adapter, MastodonAdapter)
    return adapter


async def connect(adapter: MastodonAdapter, http_session: aiohttp.ClientSession,
                  server: str = SERVER) -> ConnectedIdentity:
    app = await adapter.register_app(server, redirect_uri=REDIRECT, scopes=SCOPES)
    bound = adapter.for_instance(app)
    request = bound.authorization_url(state="state-1", redirect_uri=REDIRECT)
    query = await follow_consent(http_session, request.url, REDIRECT)
    assert query["state"] == "state-1"
    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT,
                                             code_verifier=request.code_verifier)
    return identity


@pytest.fixture
async def auth(adapter: MastodonAdapter, http_session: aiohttp.ClientSession) -> AccountAuth:
    return auth_of(await connect(adapter, http_session))


def statuses(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "mastodon" and not p.deleted]


def calls(sandbox: Sandbox, fragment: str, method: str = "POST") -> list[Any]:
    return [r for r in sandbox.requests if r.network == "mastodon" and fragment in r.path and r.method == method]


# Servers and OAuth ------------------------------------------------------------------------------


def test_server_names_are_normalised_and_anything_else_is_refused() -> None:
    assert normalise_instance(" https://Mastodon.Social/ ") == "mastodon.social"
    assert normalise_instance("@alice@fosstodon.org") == "fosstodon.org"
    assert normalise_instance("social.example:8443") == "social.example:8443"
    for bad in ("", "mastodon.social/path", "user:pw@host", "two words", "http://", "-bad-.org"):
        with pytest.raises(InvalidInstance):
            normalise_instance(bad)


async def test_connect_registers_an_app_on_the_server_and_returns_its_account(
    adapter: MastodonAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    identity = await connect(adapter, http_session)
    assert identity.remote_id == f"109000000000000001@{SERVER}"
    assert identity.username == f"ouipost@{SERVER}"
    assert identity.token.expires_at is None and identity.token.refresh_token is None
    assert set(identity.token.scopes) == set(SCOPES)
    assert identity.metadata["instance"] == SERVER
    assert identity.metadata["limits"]["max_characters"] == 500
    [register] = calls(sandbox, f"/{SERVER}/api/v1/apps")
    assert register.body["scopes"] == "read write:statuses write:media"
    assert register.body["redirect_uris"] == REDIRECT
    [token] = calls(sandbox, f"/{SERVER}/oauth/token")
    assert token.body["client_secret"] == "[redacted]" and token.body["code_verifier"] == "[redacted]"


async def test_pkce_is_used_when_the_server_lists_it_and_left_out_when_it_does_not(
    adapter: MastodonAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    app = await adapter.register_app(SERVER, redirect_uri=REDIRECT, scopes=SCOPES)
    assert app.pkce is True
    assert "code_challenge=" in adapter.for_instance(app).authorization_url(state="s", redirect_uri=REDIRECT).url
    sandbox.network_state("mastodon")["pkce_supported"] = False
    old = await adapter.register_app("old.example", redirect_uri=REDIRECT, scopes=SCOPES)
    assert old.pkce is False
    request = adapter.for_instance(old).authorization_url(state="s", redirect_uri=REDIRECT)
    assert "code_challenge" not in request.url
    query = await follow_consent(http_session, request.url, REDIRECT)
    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT,
                                             code_verifier=request.code_verifier)
    assert identity.metadata["instance"] == "old.example"


async def test_a_wrong_pkce_verifier_or_a_reused_code_is_refused(
    adapter: MastodonAdapter, http_session: aiohttp.ClientSession
) -> None:
    app = await adapter.register_app(SERVER, redirect_uri=REDIRECT, scopes=SCOPES)
    request = adapter.for_instance(app).authorization_url(state="s", redirect_uri=REDIRECT)
    query = await follow_consent(http_session, request.url, REDIRECT)
    other = adapter.for_instance(app).authorization_url(state="s", redirect_uri=REDIRECT)
    with pytest.raises(PermanentError, match="refused the code"):
        await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT, code_verifier=other.code_verifier)
    with pytest.raises(PermanentError):  # the code was spent by the refused attempt
        await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT, code_verifier=request.code_verifier)


async def test_an_app_of_one_server_is_unknown_on_another(
    adapter: MastodonAdapter, http_session: aiohttp.ClientSession
) -> None:
    app = await adapter.register_app(SERVER, redirect_uri=REDIRECT, scopes=SCOPES)
    elsewhere = adapter.for_instance(InstanceApp("other.example", app.client_id, app.client_secret))
    url = elsewhere.authorization_url(state="s", redirect_uri=REDIRECT).url
    async with http_session.get(url, allow_redirects=False) as resp:
        assert resp.status == 400
        assert "unknown client" in await resp.text()


async def test_authorization_needs_a_server(adapter: MastodonAdapter) -> None:
    with pytest.raises(Exception, match="instance"):
        adapter.authorization_url(state="s", redirect_uri=REDIRECT)


async def test_revoking_needs_the_accounts_app_and_ends_the_token(
    adapter: MastodonAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    app = await adapter.register_app(SERVER, redirect_uri=REDIRECT, scopes=SCOPES)
    bound = adapter.for_instance(app)
    request = bound.authorization_url(state="s", redirect_uri=REDIRECT)
    query = await follow_consent(http_session, request.url, REDIRECT)
    [identity] = await adapter.exchange_code(code=query["code"], redirect_uri=REDIRECT,
                                             code_verifier=request.code_verifier)
    auth = auth_of(identity)
    await adapter.revoke(auth)  # not bound to the app: nothing is sent
    assert calls(sandbox, "/oauth/revoke") == []
    await bound.revoke(auth)
    assert sandbox.tokens[auth.access_token].revoked is True
    with pytest.raises(TokenExpiredError):
        await adapter.account_stats(auth)


async def test_a_token_has_no_refresh_and_a_revoked_one_asks_for_reconnection(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    with pytest.raises(TokenExpiredError):
        await adapter.refresh_token(auth)
    sandbox.tokens[auth.access_token].revoked = True
    with pytest.raises(TokenExpiredError):
        await adapter.publish(auth, PublishRequest(text="hello"))
    assert statuses(sandbox) == []


# Statuses ---------------------------------------------------------------------------------------


async def test_text_status_reaches_the_server_once_with_its_permalink(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="Hello fediverse"))
    [status] = statuses(sandbox)
    assert status.text == "Hello fediverse" and status.remote_id == result.remote_id
    assert result.url == f"https://{SERVER}/@ouipost/{result.remote_id}"
    assert status.extra["visibility"] == "public"
    [create] = calls(sandbox, "/api/v1/statuses")
    assert create.body["status"] == "Hello fediverse"


async def test_visibility_and_content_warning_are_options(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    await adapter.publish(auth, PublishRequest(
        text="spoilers inside", options={"visibility": "unlisted", "spoiler_text": "Film ending"}))
    [status] = statuses(sandbox)
    assert status.extra["visibility"] == "unlisted"
    assert status.extra["spoiler_text"] == "Film ending" and status.extra["sensitive"] is True
    with pytest.raises(PermanentError, match="visibility"):
        await adapter.publish(auth, PublishRequest(text="x", options={"visibility": "everyone"}))
    assert len(statuses(sandbox)) == 1


async def test_four_images_with_alt_text_are_uploaded_then_attached_in_order(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    images = [make_media("image", alt_text=f"picture {i}") for i in range(4)]
    result = await adapter.publish(auth, PublishRequest(text="four", media=images))
    [status] = statuses(sandbox)
    assert [m["alt"] for m in status.media] == [f"picture {i}" for i in range(4)]
    assert [m["id"] for m in status.media] == result.extra["media_ids"]
    assert len(calls(sandbox, "/api/v2/media")) == 4


async def test_a_video_is_polled_until_processed_before_the_status(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    await adapter.publish(auth, PublishRequest(text="video", media=[make_media("video", alt_text="a clip")]))
    [status] = statuses(sandbox)
    assert status.media[0]["type"] == "video" and status.media[0]["alt"] == "a clip"
    polls = [r.status for r in calls(sandbox, "/api/v1/media/", method="GET")]
    assert polls == [206, 206, 200]


async def test_a_video_still_processing_is_retryable_and_nothing_is_posted(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox.network_state("mastodon")["processing_polls"] = 10_000
    monkeypatch.setattr(MastodonAdapter, "media_poll_timeout", 0.1)
    with pytest.raises(RetryableError, match="nothing was posted"):
        await adapter.publish(auth, PublishRequest(text="slow", media=[make_media("video")]))
    assert statuses(sandbox) == []


async def test_a_video_the_server_cannot_process_is_permanent_and_nothing_is_posted(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("mastodon")["fail_processing"] = True
    with pytest.raises(PermanentError) as refused:
        await adapter.publish(auth, PublishRequest(text="broken", media=[make_media("video")]))
    assert refused.value.status == 422
    assert statuses(sandbox) == []


async def test_the_sandbox_refuses_calls_without_a_token_and_bytes_that_are_not_media(
    sandbox_url: str, auth: AccountAuth, http_session: aiohttp.ClientSession
) -> None:
    async with http_session.post(f"{sandbox_url}/{SERVER}/api/v1/statuses", json={"status": "anon"}) as resp:
        assert resp.status == 401 and (await resp.json())["error"] == "The access token is invalid"
    form = aiohttp.FormData()
    form.add_field("file", b"not an image at all", filename="x.png", content_type="image/png")
    async with http_session.post(f"{sandbox_url}/{SERVER}/api/v2/media", data=form,
                                 headers={"Authorization": f"Bearer {auth.access_token}"}) as resp:
        assert resp.status == 422


async def test_the_server_refuses_a_status_whose_media_is_not_processed(
    sandbox_url: str, auth: AccountAuth, make_media: Callable[..., MediaFile], http_session: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {auth.access_token}"}
    form = aiohttp.FormData()
    form.add_field("file", await make_media("video").read_all(), filename="v.mp4", content_type="video/mp4")
    async with http_session.post(f"{sandbox_url}/{SERVER}/api/v2/media", data=form, headers=headers) as resp:
        assert resp.status == 202
        media = await resp.json()
    assert media["url"] is None
    async with http_session.post(f"{sandbox_url}/{SERVER}/api/v1/statuses", headers=headers,
                                 json={"status": "early", "media_ids": [media["id"]]}) as resp:
        assert resp.status == 422
        assert "not finished processing" in (await resp.json())["error"]


async def test_more_than_four_files_or_mixed_media_never_reach_the_server(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    with pytest.raises(PermanentError, match="attachments"):
        await adapter.publish(auth, PublishRequest(text="five", media=[make_media() for _ in range(5)]))
    with pytest.raises(PermanentError, match="one video"):
        await adapter.publish(auth, PublishRequest(text="mix", media=[make_media(), make_media("video")]))
    assert calls(sandbox, "/api/v2/media") == [] and statuses(sandbox) == []


async def test_the_servers_own_character_limit_is_used_and_urls_count_23(
    adapter: MastodonAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    sandbox.network_state("mastodon")["max_characters"] = 1000
    auth = auth_of(await connect(adapter, http_session, server="big.example"))
    assert auth.metadata["limits"]["max_characters"] == 1000
    long_url = "https://example.com/" + "a" * 300
    assert counted_length(f"see {long_url}") == 4 + 23
    assert counted_length("hi @alice@very.long.server.example") == len("hi @alice")
    await adapter.publish(auth, PublishRequest(text="x" * 976 + " " + long_url))
    with pytest.raises(PermanentError, match="1001 of 1000"):
        await adapter.publish(auth, PublishRequest(text="x" * 1001))
    assert len(statuses(sandbox)) == 1


async def test_a_status_over_the_limit_the_server_counts_is_refused_by_the_server(
    sandbox_url: str, auth: AccountAuth, http_session: aiohttp.ClientSession
) -> None:
    async with http_session.post(f"{sandbox_url}/{SERVER}/api/v1/statuses", json={"status": "y" * 501},
                                 headers={"Authorization": f"Bearer {auth.access_token}"}) as resp:
        assert resp.status == 422
        assert "character limit of 500" in (await resp.json())["error"]


async def test_the_same_idempotency_key_answers_the_first_status(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    """The key is the target's: its attempts share it; two targets saying the same thing are two."""
    first = await adapter.publish(auth, PublishRequest(text="only once", target_key="tgt_1"))
    again = await adapter.publish(auth, PublishRequest(text="only once", target_key="tgt_1"))
    assert again.remote_id == first.remote_id
    assert len(statuses(sandbox)) == 1
    keys = {r.notes.get("idempotent_replay", False) for r in calls(sandbox, "/api/v1/statuses")}
    assert keys == {False, True}
    other = await adapter.publish(auth, PublishRequest(text="only once", target_key="tgt_2"))
    assert other.remote_id != first.remote_id
    assert len(statuses(sandbox)) == 2


async def test_a_lost_status_answer_is_asked_again_with_its_key_and_published_once(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("mastodon", "drop_after", path_contains="/api/v1/statuses")
    result = await adapter.publish(auth, PublishRequest(text="lost answer"))
    [status] = statuses(sandbox)
    assert status.remote_id == result.remote_id
    assert [r.notes.get("idempotent_replay", False) for r in calls(sandbox, "/api/v1/statuses")] == [False, True]


async def test_two_lost_answers_are_an_unknown_outcome_and_published_once(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("mastodon", "drop_after", path_contains="/api/v1/statuses", count=2)
    with pytest.raises(UnknownOutcomeError):
        await adapter.publish(auth, PublishRequest(text="lost twice"))
    assert len(statuses(sandbox)) == 1


async def test_deleted_status_is_gone_and_deleting_again_is_fine(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="short lived"))
    await adapter.delete(auth, result.remote_id)
    assert statuses(sandbox) == []
    await adapter.delete(auth, result.remote_id)
    with pytest.raises(PermanentError) as gone:
        await adapter.post_insights(auth, result.remote_id)
    assert gone.value.status == 404


# Insights and stats -----------------------------------------------------------------------------


async def test_status_insights_grow_with_time(adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox) -> None:
    result = await adapter.publish(auth, PublishRequest(text="counted"))
    sandbox.clock_offset += 59 * 60  # the 60th minute is under way
    insights = await adapter.post_insights(auth, result.remote_id)
    assert insights.metrics == {"favourites_count": 30.0, "reblogs_count": 10.0, "replies_count": 6.0}
    assert insights.engagement == 46 and insights.impressions == 0


async def test_account_stats_report_followers(adapter: MastodonAdapter, auth: AccountAuth) -> None:
    await adapter.publish(auth, PublishRequest(text="one more"))
    stats = await adapter.account_stats(auth)
    assert (stats.followers, stats.following, stats.posts_total) == (321, 123, 41)


# Errors and rate limits -------------------------------------------------------------------------


async def test_rate_limit_waits_until_the_reset_header(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("mastodon", "rate_limit", path_contains="/api/v1/statuses", wait=120)
    with pytest.raises(RetryableError) as limited:
        await adapter.publish(auth, PublishRequest(text="later"))
    assert 100 < (limited.value.retry_after or 0) <= 121
    assert statuses(sandbox) == []


async def test_an_exhausted_window_after_an_upload_defers_the_status(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    host = sandbox.network_state("mastodon")["hosts"][SERVER]
    host["windows"][auth.access_token]["used"] = 299  # the upload spends the last request
    with pytest.raises(RetryableError, match="nothing was posted") as deferred:
        await adapter.publish(auth, PublishRequest(text="with picture", media=[make_media()]))
    assert 200 < (deferred.value.retry_after or 0) <= 301
    assert calls(sandbox, "/api/v1/statuses") == []


async def test_the_31st_upload_in_half_an_hour_waits_for_the_media_window(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    for _ in range(7):
        await adapter.publish(auth, PublishRequest(text="", media=[make_media() for _ in range(4)]))
    await adapter.publish(auth, PublishRequest(text="", media=[make_media()]))  # the 29th upload
    with pytest.raises(RetryableError, match="nothing was posted") as deferred:
        await adapter.publish(auth, PublishRequest(text="two more", media=[make_media(), make_media()]))
    assert 1700 < (deferred.value.retry_after or 0) <= 1801
    assert len(statuses(sandbox)) == 8


async def test_answers_carry_rate_limit_headers(
    sandbox_url: str, auth: AccountAuth, http_session: aiohttp.ClientSession
) -> None:
    async with http_session.get(f"{sandbox_url}/{SERVER}/api/v1/accounts/verify_credentials",
                                headers={"Authorization": f"Bearer {auth.access_token}"}) as resp:
        assert resp.status == 200
        assert resp.headers["X-RateLimit-Limit"] == "300"
        assert int(resp.headers["X-RateLimit-Remaining"]) < 300
        assert resp.headers["X-RateLimit-Reset"].endswith("Z")


async def test_server_errors_are_retryable_and_missing_scopes_ask_for_reconnection(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("mastodon", "server_error", path_contains="/api/v1/statuses")
    with pytest.raises(RetryableError):
        await adapter.publish(auth, PublishRequest(text="5xx"))
    sandbox.tokens[auth.access_token].scopes = ["read"]
    with pytest.raises(PermanentError) as forbidden:
        await adapter.publish(auth, PublishRequest(text="no scope"))
    assert forbidden.value.reconnect is True and forbidden.value.status == 403
    assert statuses(sandbox) == []


async def test_expired_token_fault_asks_for_reconnection(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.add_fault("mastodon", "expire_token", path_contains="/api/v1/statuses")
    with pytest.raises(TokenExpiredError):
        await adapter.publish(auth, PublishRequest(text="401"))


async def test_a_token_of_one_server_is_refused_by_another(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    elsewhere = AccountAuth(auth.remote_id, auth.access_token, metadata={**auth.metadata, "instance": "b.example"})
    with pytest.raises(TokenExpiredError):
        await adapter.publish(elsewhere, PublishRequest(text="wrong server"))
    assert statuses(sandbox) == []
