"""LinkedIn follow-ups against the sandbox over real HTTP: a first comment (the Comments API), read back
the way a LinkedIn client reads it (socialActions), and its errors."""

# ruff: noqa: F811 -- the tests take the fixtures imported from test_linkedin.py as parameters

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from ouipost.platforms.base import (
    AccountAuth,
    PermanentError,
    PostRef,
    PublishRequest,
    RetryableError,
    UnknownOutcomeError,
)
from ouipost.platforms.linkedin import LinkedInAdapter
from ouipost.sandbox import Sandbox
from tests.platforms.helpers import account_auth, comment_requests
from tests.platforms.test_linkedin import AUTHOR, adapter, connect  # noqa: F401

# What the app asks for, plus r_member_social (restricted) so that the test can read comments back.
READING_SCOPES = [*LinkedInAdapter.default_scopes, "r_member_social"]


@pytest.fixture
async def auth(adapter: LinkedInAdapter, http_session: aiohttp.ClientSession) -> AccountAuth:
    return account_auth(await connect(adapter, http_session, READING_SCOPES))


async def read(http_session: aiohttp.ClientSession, sandbox_url: str, auth: AccountAuth, path: str) -> Any:
    """GET a LinkedIn /rest path as a LinkedIn client would (version headers, bearer token)."""
    headers = {"Authorization": f"Bearer {auth.access_token}", "LinkedIn-Version": LinkedInAdapter.api_version,
               "X-Restli-Protocol-Version": "2.0.0"}
    async with http_session.get(f"{sandbox_url}/api.linkedin.com/rest/{path}", headers=headers) as resp:
        return resp.status, await resp.json()


def comments_path(post_urn: str) -> str:
    return f"socialActions/{quote(post_urn, safe='')}/comments"


async def test_a_comment_lands_on_the_post_as_written_by_its_author(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, http_session: aiohttp.ClientSession,
    sandbox_url: str,
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Launch day"))
    text = "Links below (all of them) #launch @team *thanks* ~ok_"

    result = await adapter.comment(auth, text, on=PostRef.of(post), key="comment-key-1")

    assert result.remote_id.startswith(f"urn:li:comment:({post.remote_id},")
    assert result.url == (f"https://www.linkedin.com/feed/update/{post.remote_id}/"
                          f"?commentUrn={quote(result.remote_id, safe='')}")
    # A comment's message is AnnotatedText, not little text: sent exactly as written.
    [sent] = comment_requests(sandbox)
    assert sent.path == f"/api.linkedin.com/rest/socialActions/{post.remote_id}/comments"
    assert sent.body == {"actor": AUTHOR, "object": post.remote_id, "message": {"text": text}}
    status, listed = await read(http_session, sandbox_url, auth, comments_path(post.remote_id))
    assert status == 200 and listed["paging"]["total"] == 1
    [comment] = listed["elements"]
    assert comment["$URN"] == comment["commentUrn"] == result.remote_id
    assert comment["actor"] == AUTHOR and comment["object"] == post.remote_id
    assert comment["message"]["text"] == text


async def test_a_comment_moves_the_posts_comment_counts(
    adapter: LinkedInAdapter, auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Count me"))
    before = await adapter.post_insights(auth, post.remote_id)
    status, summary = await read(http_session, sandbox_url, auth, f"socialActions/{quote(post.remote_id, safe='')}")
    assert status == 200 and summary["commentsSummary"]["totalFirstLevelComments"] == 0

    await adapter.comment(auth, "First!", on=PostRef.of(post))

    after = await adapter.post_insights(auth, post.remote_id)
    assert after.metrics["COMMENT"] == before.metrics["COMMENT"] + 1
    assert after.engagement == before.engagement + 1
    _, summary = await read(http_session, sandbox_url, auth, f"socialActions/{quote(post.remote_id, safe='')}")
    assert summary["target"] == post.remote_id
    assert summary["commentsSummary"]["totalFirstLevelComments"] == 1
    assert len(summary["commentsSummary"]["selectedComments"]) == 1


async def test_commenting_on_a_deleted_or_unknown_post_is_permanent(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Short-lived"))
    await adapter.delete(auth, post.remote_id)
    with pytest.raises(PermanentError, match="does not exist") as caught:
        await adapter.comment(auth, "Too late", on=PostRef.of(post))
    assert caught.value.status == 404 and not caught.value.reconnect
    with pytest.raises(PermanentError) as caught:
        await adapter.comment(auth, "Who?", on=PostRef("urn:li:share:7300000000000099999"))
    assert caught.value.status == 404
    assert sandbox.network_state("linkedin")["comments"] == {}


async def test_a_comment_over_1250_characters_is_refused_by_linkedin(
    adapter: LinkedInAdapter, auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Long comments"))
    with pytest.raises(PermanentError, match="exceeds 1250 characters") as caught:
        await adapter.comment(auth, "é" * 1251, on=PostRef.of(post))
    assert caught.value.status == 400 and not caught.value.reconnect
    with pytest.raises(PermanentError, match="Field is required"):
        await adapter.comment(auth, "   ", on=PostRef.of(post))

    await adapter.comment(auth, "é" * 1250, on=PostRef.of(post))  # exactly the limit is fine
    _, listed = await read(http_session, sandbox_url, auth, comments_path(post.remote_id))
    assert [len(c["message"]["text"]) for c in listed["elements"]] == [1250]


async def test_commenting_without_w_member_social_asks_for_reconnection(
    adapter: LinkedInAdapter, auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Comment me"))
    read_only = account_auth(await connect(adapter, http_session,
                                           ["openid", "profile", "email", "r_member_postAnalytics"]))
    with pytest.raises(PermanentError, match="Not enough permissions") as caught:
        await adapter.comment(read_only, "no scope", on=PostRef.of(post))
    assert caught.value.reconnect and caught.value.status == 403
    assert sandbox.network_state("linkedin")["comments"] == {}


async def test_reading_comments_back_needs_r_member_social(
    adapter: LinkedInAdapter, auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Read me"))
    await adapter.comment(auth, "Hello", on=PostRef.of(post))
    default = account_auth(await connect(adapter, http_session))  # the app's own scopes: writing, not reading comments
    status, body = await read(http_session, sandbox_url, default, comments_path(post.remote_id))
    assert status == 403 and body["code"] == "ACCESS_DENIED"


async def test_a_lost_answer_is_an_unknown_outcome_and_the_comment_exists_once(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox, http_session: aiohttp.ClientSession,
    sandbox_url: str,
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Did it comment?"))
    sandbox.add_fault("linkedin", "drop_after", path_contains="/comments", method="POST")
    with pytest.raises(UnknownOutcomeError):
        await adapter.comment(auth, "Maybe", on=PostRef.of(post), key="k-1")
    # LinkedIn has no idempotency key: the adapter must not send the comment again by itself.
    assert len(comment_requests(sandbox)) == 1
    _, listed = await read(http_session, sandbox_url, auth, comments_path(post.remote_id))
    assert listed["paging"]["total"] == 1


async def test_a_server_error_on_a_comment_is_retryable_and_nothing_is_written(
    adapter: LinkedInAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Flaky"))
    sandbox.add_fault("linkedin", "server_error", path_contains="/comments")
    with pytest.raises(RetryableError):
        await adapter.comment(auth, "Later", on=PostRef.of(post))
    assert sandbox.network_state("linkedin")["comments"] == {}
