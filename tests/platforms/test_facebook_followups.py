"""Facebook first comments against the sandbox Graph API, over real HTTP.

Facebook has no reply chains: a follow-up is a comment, `POST /{post-id}/comments`, written as the
Page. Comments are read back the way a Graph client reads them, `GET /{post-id}/comments`.
"""

# ruff: noqa: F811 -- the tests take the fixtures imported from test_facebook.py as parameters

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from ouipost.platforms.base import (
    AccountAuth,
    MediaFile,
    NotSupportedError,
    PermanentError,
    PostRef,
    PublishRequest,
    UnknownOutcomeError,
)
from ouipost.platforms.facebook import FacebookAdapter
from ouipost.sandbox import Sandbox
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.helpers import comment_requests
from tests.platforms.test_facebook import adapter, bakery, connect, fast_polling  # noqa: F401


async def read_comments(sandbox_url: str, page: AccountAuth, object_id: str) -> tuple[int, dict[str, Any]]:
    """`GET /{object}/comments?summary=true` with the Page token, as a Graph client reads them."""
    async with aiohttp.ClientSession() as session, session.get(
        f"{sandbox_url}/graph.facebook.com/v25.0/{object_id}/comments",
        params={"summary": "true", "fields": "id,message,from,created_time"},
        headers={"Authorization": f"Bearer {page.access_token}"},
    ) as resp:
        return resp.status, await resp.json()


async def test_a_first_comment_lands_on_the_post_as_the_page(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox_url: str
) -> None:
    post = await adapter.publish(bakery, PublishRequest(text="Open on Sunday"))
    comment = await adapter.comment(bakery, "Menu: https://example.com/menu", on=PostRef.of(post), key="c-1")

    post_part = post.remote_id.split("_", 1)[1]
    assert comment.remote_id.startswith(f"{post_part}_")
    assert comment.extra["post_id"] == post.remote_id
    assert comment.url == (f"https://www.facebook.com/ouibakery/posts/{post_part}"
                           f"?comment_id={comment.remote_id.split('_', 1)[1]}")
    status, body = await read_comments(sandbox_url, bakery, post.remote_id)
    assert status == 200
    [seen] = body["data"]
    assert seen["id"] == comment.remote_id and seen["message"] == "Menu: https://example.com/menu"
    assert seen["from"] == {"name": "Oui Bakery", "id": "20001"}
    assert body["summary"]["total_count"] == 1
    # The post's own comment count (what insights read) includes it.
    insights = await adapter.post_insights(bakery, post.remote_id)
    assert insights.metrics["comments"] == 2 * 1 + 1


async def test_comments_land_on_photo_and_video_posts_too(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox_url: str, make_media: Callable[..., MediaFile]
) -> None:
    photo = await adapter.publish(bakery, PublishRequest(text="Our oven", media=[make_media("image")]))
    video = await adapter.publish(bakery, PublishRequest(text="Baking live", media=[make_media("video")]))
    for post in (photo, video):
        comment = await adapter.comment(bakery, f"More on {post.remote_id}", on=PostRef.of(post))
        status, body = await read_comments(sandbox_url, bakery, post.remote_id)
        assert status == 200 and [c["id"] for c in body["data"]] == [comment.remote_id]


async def test_commenting_a_deleted_or_unknown_post_is_refused_for_good(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox
) -> None:
    post = await adapter.publish(bakery, PublishRequest(text="Soon gone"))
    await adapter.delete(bakery, post.remote_id)
    for target in (post.remote_id, "20001_999999999"):
        with pytest.raises(PermanentError) as err:
            await adapter.comment(bakery, "hello?", on=PostRef(target))
        assert err.value.code == "100/33" and err.value.reconnect is False
        assert "does not exist" in err.value.message
    assert [c for c in sandbox.state["facebook"]["objects"].values() if c["kind"] == "comment"] == []


async def test_a_grant_without_pages_manage_engagement_asks_to_reconnect(
    adapter: FacebookAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox, sandbox_url: str
) -> None:
    assert "pages_manage_engagement" in adapter.default_scopes
    sandbox.network_state("facebook")["declined_scopes"] = ["pages_manage_engagement"]
    identities = await connect(adapter, http_session)
    page = auth_of(next(i for i in identities if i.remote_id == "20001"))
    post = await adapter.publish(page, PublishRequest(text="Posting still works"))
    with pytest.raises(PermanentError) as err:
        await adapter.comment(page, "but commenting does not", on=PostRef.of(post))
    assert err.value.reconnect is True and err.value.code == "200" and err.value.status == 403
    assert "pages_manage_engagement" in err.value.message
    status, body = await read_comments(sandbox_url, page, post.remote_id)
    assert status == 200 and body["data"] == []


async def test_an_over_long_comment_is_refused_by_graph(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox_url: str
) -> None:
    post = await adapter.publish(bakery, PublishRequest(text="Long story"))
    await adapter.comment(bakery, "x" * 8000, on=PostRef.of(post))
    with pytest.raises(PermanentError) as err:
        await adapter.comment(bakery, "x" * 8001, on=PostRef.of(post))
    assert err.value.code == "100" and "at most 8000 characters" in err.value.message
    _, body = await read_comments(sandbox_url, bakery, post.remote_id)
    assert body["summary"]["total_count"] == 1


async def test_a_story_takes_no_comment(
    adapter: FacebookAdapter, bakery: AccountAuth, make_media: Callable[..., MediaFile], sandbox: Sandbox
) -> None:
    story = await adapter.publish(bakery, PublishRequest(text="", media=[make_media("image")],
                                                         options={"story": True}))
    with pytest.raises(NotSupportedError):
        await adapter.comment(bakery, "nice", on=PostRef.of(story))
    assert comment_requests(sandbox) == []
    # Even when asked, Graph refuses it.
    with pytest.raises(PermanentError) as err:
        await adapter.comment(bakery, "nice", on=PostRef(story.remote_id))
    assert err.value.code == "100/33"


async def test_another_pages_token_cannot_comment_as_this_page(
    adapter: FacebookAdapter, http_session: aiohttp.ClientSession, bakery: AccountAuth
) -> None:
    post = await adapter.publish(bakery, PublishRequest(text="Bakery news"))
    garage = auth_of(next(i for i in await connect(adapter, http_session) if i.remote_id == "20002"))
    with pytest.raises(PermanentError) as err:
        await adapter.comment(garage, "hi from the garage", on=PostRef.of(post))
    assert err.value.code == "100/33"


async def test_a_lost_comment_answer_is_an_unknown_outcome_and_the_comment_exists_once(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox: Sandbox, sandbox_url: str
) -> None:
    post = await adapter.publish(bakery, PublishRequest(text="Did it comment?"))
    sandbox.add_fault("facebook", "drop_after", path_contains="/comments")
    with pytest.raises(UnknownOutcomeError):
        await adapter.comment(bakery, "once", on=PostRef.of(post), key="c-1")
    _, body = await read_comments(sandbox_url, bakery, post.remote_id)
    assert [c["message"] for c in body["data"]] == ["once"]


async def test_comments_are_read_back_oldest_first_page_by_page(
    adapter: FacebookAdapter, bakery: AccountAuth, sandbox_url: str
) -> None:
    post = await adapter.publish(bakery, PublishRequest(text="Count with us"))
    ids = [(await adapter.comment(bakery, f"#{n}", on=PostRef.of(post))).remote_id for n in range(3)]
    url = f"{sandbox_url}/graph.facebook.com/v25.0/{post.remote_id}/comments"
    headers = {"Authorization": f"Bearer {bakery.access_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params={"limit": "2"}, headers=headers) as resp:
            first = await resp.json()
        async with session.get(url, params={"limit": "2", "after": first["paging"]["cursors"]["after"]},
                               headers=headers) as resp:
            second = await resp.json()
    assert [c["id"] for c in first["data"] + second["data"]] == ids
    assert "next" in first["paging"] and "next" not in second["paging"]
