"""Instagram first comments against the sandbox (Instagram Login), over real HTTP.

Instagram has no reply chains: a follow-up is a comment, `POST /{ig-media-id}/comments`, written by
the account on its own media. Comments are read back the way a Graph client reads them,
`GET /{ig-media-id}/comments`.
"""

# ruff: noqa: F811 -- the tests take the fixtures imported from test_instagram.py as parameters

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from ouipost.platforms.base import (
    AccountAuth,
    MediaFile,
    PermanentError,
    PostRef,
    PublishRequest,
    PublishResult,
    UnknownOutcomeError,
)
from ouipost.platforms.instagram import InstagramAdapter
from ouipost.sandbox import Sandbox
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.test_instagram import account, adapter, connect, fast_polling  # noqa: F401

COMMENTS_SCOPE = "instagram_business_manage_comments"


async def photo_post(adapter: InstagramAdapter, account: AccountAuth, make_media: Callable[..., MediaFile],
                     **options: Any) -> PublishResult:
    return await adapter.publish(account, PublishRequest(text="Fresh croissants", media=[make_media("image")],
                                                         options=options))


async def read_comments(sandbox_url: str, account: AccountAuth, media_id: str,
                        fields: str | None = None) -> tuple[int, dict[str, Any]]:
    """`GET /{ig-media-id}/comments` with the account's token, as a Graph client reads them."""
    async with aiohttp.ClientSession() as session, session.get(
        f"{sandbox_url}/graph.instagram.com/v25.0/{media_id}/comments",
        params={"fields": fields} if fields else None,
        headers={"Authorization": f"Bearer {account.access_token}"},
    ) as resp:
        return resp.status, await resp.json()


def comments_in_sandbox(sandbox: Sandbox) -> list[Any]:
    return list(sandbox.network_state("instagram").get("comments", {}).values())


async def test_a_first_comment_lands_on_the_media(
    adapter: InstagramAdapter, account: AccountAuth, sandbox_url: str, make_media: Callable[..., MediaFile]
) -> None:
    post = await photo_post(adapter, account, make_media)
    comment = await adapter.comment(account, "Order at https://example.com #croissant", on=PostRef.of(post),
                                    key="c-1")

    assert comment.remote_id.isdigit() and comment.url is None
    assert comment.extra["media_id"] == post.remote_id
    status, body = await read_comments(sandbox_url, account, post.remote_id)
    assert status == 200
    [seen] = body["data"]
    assert seen["id"] == comment.remote_id and seen["text"] == "Order at https://example.com #croissant"
    assert set(seen) == {"id", "text", "timestamp"}
    _, body = await read_comments(sandbox_url, account, post.remote_id, fields="id,username,media")
    assert body["data"][0]["username"] == "ouibakery" and body["data"][0]["media"] == {"id": post.remote_id}


async def test_the_media_counts_its_new_comments(
    adapter: InstagramAdapter, account: AccountAuth, sandbox_url: str, make_media: Callable[..., MediaFile]
) -> None:
    post = await photo_post(adapter, account, make_media)
    first = await adapter.comment(account, "first", on=PostRef.of(post))
    second = await adapter.comment(account, "second", on=PostRef.of(post))
    _, body = await read_comments(sandbox_url, account, post.remote_id)
    assert [c["id"] for c in body["data"]] == [first.remote_id, second.remote_id]
    async with aiohttp.ClientSession() as session, session.get(
        f"{sandbox_url}/graph.instagram.com/v25.0/{post.remote_id}", params={"fields": "comments_count"},
        headers={"Authorization": f"Bearer {account.access_token}"},
    ) as resp:
        # The audience's comments of the first hour (3) and the two written here.
        assert (await resp.json())["comments_count"] == 3 + 2


async def test_commenting_unknown_or_deleted_media_is_refused_for_good(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    sandbox.network_state("instagram")["delete_supported"] = True
    post = await photo_post(adapter, account, make_media)
    await adapter.delete(account, post.remote_id)
    for media_id in (post.remote_id, "18000000000009999"):
        with pytest.raises(PermanentError) as err:
            await adapter.comment(account, "hello?", on=PostRef(media_id))
        assert err.value.code == "100/33" and err.value.reconnect is False
        assert "does not exist" in err.value.message
    assert comments_in_sandbox(sandbox) == []


async def test_a_grant_without_the_comments_permission_asks_to_reconnect(
    adapter: InstagramAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox,
    make_media: Callable[..., MediaFile]
) -> None:
    assert COMMENTS_SCOPE in adapter.default_scopes
    sandbox.network_state("instagram")["declined_scopes"] = [COMMENTS_SCOPE]
    account = auth_of(await connect(adapter, http_session))
    post = await photo_post(adapter, account, make_media)  # publishing still works
    with pytest.raises(PermanentError) as err:
        await adapter.comment(account, "but commenting does not", on=PostRef.of(post))
    assert err.value.reconnect is True and err.value.code == "10" and err.value.status == 403
    assert COMMENTS_SCOPE in err.value.message
    assert comments_in_sandbox(sandbox) == []


async def test_an_over_long_comment_is_refused_by_graph(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    post = await photo_post(adapter, account, make_media)
    await adapter.comment(account, "x" * 2200, on=PostRef.of(post))
    with pytest.raises(PermanentError) as err:
        await adapter.comment(account, "x" * 2201, on=PostRef.of(post))
    assert err.value.code == "100" and "longer than 2200 characters" in err.value.message
    assert len(comments_in_sandbox(sandbox)) == 1


async def test_a_story_takes_no_comment(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile]
) -> None:
    story = await photo_post(adapter, account, make_media, story=True)
    with pytest.raises(PermanentError) as err:
        await adapter.comment(account, "nice", on=PostRef.of(story))
    assert err.value.code == "100" and "story" in err.value.message
    assert comments_in_sandbox(sandbox) == []


async def test_a_lost_comment_answer_is_an_unknown_outcome_and_the_comment_exists_once(
    adapter: InstagramAdapter, account: AccountAuth, sandbox: Sandbox, sandbox_url: str,
    make_media: Callable[..., MediaFile]
) -> None:
    post = await photo_post(adapter, account, make_media)
    sandbox.add_fault("instagram", "drop_after", path_contains="/comments")
    with pytest.raises(UnknownOutcomeError):
        await adapter.comment(account, "once", on=PostRef.of(post), key="c-1")
    _, body = await read_comments(sandbox_url, account, post.remote_id)
    assert [c["text"] for c in body["data"]] == ["once"]
