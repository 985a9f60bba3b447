"""X follow-ups against the sandbox over real HTTP: threads as reply chains, a reply with media, a
first comment (the account's own reply), and what X refuses (deleted parents, long parts)."""

# ruff: noqa: F811 -- the tests take the fixtures imported from test_twitter.py as parameters

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
    RetryableError,
    UnknownOutcomeError,
)
from ouipost.platforms.twitter import TwitterAdapter
from ouipost.sandbox import Sandbox
from ouipost.sandbox.twitter import USER
from tests.platforms.test_twitter import adapter, auth, fast_polling, live_tweets  # noqa: F401

THREAD_FIELDS = "conversation_id,referenced_tweets,in_reply_to_user_id,author_id"


async def read_tweet(http_session: aiohttp.ClientSession, sandbox_url: str, auth: AccountAuth,
                     tweet_id: str) -> dict[str, Any]:
    """`GET /2/tweets/{id}` with the thread fields, as an X client reads a tweet back."""
    async with http_session.get(f"{sandbox_url}/api.x.com/2/tweets/{tweet_id}",
                                params={"tweet.fields": THREAD_FIELDS},
                                headers={"Authorization": f"Bearer {auth.access_token}"}) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
    return body


def tweet_creations(sandbox: Sandbox) -> list[Any]:
    return [r for r in sandbox.requests if r.method == "POST" and r.path == "/api.x.com/2/tweets"]


async def test_a_three_part_thread_is_one_reply_chain_read_back_from_x(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox, http_session: aiohttp.ClientSession,
    sandbox_url: str,
) -> None:
    root = await adapter.publish(auth, PublishRequest(text="1/3 We bake at dawn"))
    second = await adapter.reply(auth, PublishRequest(text="2/3 The ovens heat by 5", target_key="part-2"),
                                 parent=PostRef.of(root), root=PostRef.of(root))
    third = await adapter.reply(auth, PublishRequest(text="3/3 Doors open at 7", target_key="part-3"),
                                parent=PostRef.of(second), root=PostRef.of(root))

    assert second.url == f"https://x.com/ouipost_sandbox/status/{second.remote_id}"
    assert [r.body.get("reply") for r in tweet_creations(sandbox)] == [
        None, {"in_reply_to_tweet_id": root.remote_id}, {"in_reply_to_tweet_id": second.remote_id}]
    first_read = (await read_tweet(http_session, sandbox_url, auth, root.remote_id))["data"]
    assert first_read["conversation_id"] == root.remote_id and "referenced_tweets" not in first_read
    for part, parent in ((second, root), (third, second)):
        data = (await read_tweet(http_session, sandbox_url, auth, part.remote_id))["data"]
        assert data["referenced_tweets"] == [{"type": "replied_to", "id": parent.remote_id}]
        assert data["conversation_id"] == root.remote_id
        assert data["in_reply_to_user_id"] == data["author_id"] == USER["id"]
    assert [t.text for t in live_tweets(sandbox)] == [
        "1/3 We bake at dawn", "2/3 The ovens heat by 5", "3/3 Doors open at 7"]


async def test_a_reply_with_an_image_uploads_it_like_a_post(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile],
    http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    root = await adapter.publish(auth, PublishRequest(text="Today's loaves"))
    image = make_media("image", alt_text="a sourdough loaf")
    reply = await adapter.reply(auth, PublishRequest(text="The sourdough", media=[image]),
                                parent=PostRef.of(root), root=PostRef.of(root))

    [_, tweet] = live_tweets(sandbox)
    assert tweet.remote_id == reply.remote_id
    assert [(m["type"], m["size"], m["alt_text"]) for m in tweet.media] == [
        ("image/jpeg", image.size, "a sourdough loaf")]
    assert reply.extra["media_ids"] == [tweet.media[0]["media_id"]]
    data = (await read_tweet(http_session, sandbox_url, auth, reply.remote_id))["data"]
    assert data["referenced_tweets"] == [{"type": "replied_to", "id": root.remote_id}]


async def test_a_comment_is_the_accounts_own_reply_to_its_tweet(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox, http_session: aiohttp.ClientSession,
    sandbox_url: str,
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="New croissants"))
    comment = await adapter.comment(auth, "Order at https://oui.example", on=PostRef.of(post), key="cmt-1")

    data = (await read_tweet(http_session, sandbox_url, auth, comment.remote_id))["data"]
    assert data["text"] == "Order at https://oui.example"
    assert data["referenced_tweets"] == [{"type": "replied_to", "id": post.remote_id}]
    assert data["conversation_id"] == post.remote_id and data["author_id"] == USER["id"]
    assert comment.extra["in_reply_to_tweet_id"] == post.remote_id
    assert len(live_tweets(sandbox)) == 2


async def test_a_reply_whose_answer_is_lost_is_unknown_and_never_sent_again(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    """X takes no idempotency key: a re-sent reply would be a second one, so none is re-sent."""
    root = await adapter.publish(auth, PublishRequest(text="Thread start"))
    sandbox.add_fault("twitter", "drop_after", path_contains="/2/tweets", method="POST")
    with pytest.raises(UnknownOutcomeError):
        await adapter.reply(auth, PublishRequest(text="Did this one post?", target_key="part-2"),
                            parent=PostRef.of(root), root=PostRef.of(root))
    assert len(tweet_creations(sandbox)) == 2
    assert [t.text for t in live_tweets(sandbox)] == ["Thread start", "Did this one post?"]


async def test_replying_to_a_deleted_or_unknown_tweet_is_permanent(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    root = await adapter.publish(auth, PublishRequest(text="Soon gone"))
    await adapter.delete(auth, root.remote_id)
    for parent in (PostRef.of(root), PostRef("1999999999999999999")):
        with pytest.raises(PermanentError, match="deleted or not visible to you") as caught:
            await adapter.reply(auth, PublishRequest(text="Too late"), parent=parent, root=parent)
        assert caught.value.status == 403 and not caught.value.reconnect
        with pytest.raises(PermanentError, match="deleted or not visible to you"):
            await adapter.comment(auth, "Too late", on=parent)
    assert live_tweets(sandbox) == []


async def test_x_refuses_a_reply_to_something_that_is_not_a_tweet_id(
    auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str
) -> None:
    async with http_session.post(f"{sandbox_url}/api.x.com/2/tweets",
                                 headers={"Authorization": f"Bearer {auth.access_token}"},
                                 json={"text": "hi", "reply": {"in_reply_to_tweet_id": "abc"}}) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["type"] == "https://api.x.com/2/problems/invalid-request"
    assert body["errors"][0]["parameters"] == {"reply.in_reply_to_tweet_id": ["abc"]}


async def test_each_part_is_weighed_on_its_own_and_a_long_one_is_refused_by_x(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    root = await adapter.publish(auth, PublishRequest(text="漢" * 140))  # CJK weighs 2: exactly 280
    await adapter.reply(auth, PublishRequest(text="字" * 140), parent=PostRef.of(root), root=PostRef.of(root))
    with pytest.raises(PermanentError, match="too long") as caught:
        await adapter.reply(auth, PublishRequest(text="語" * 141), parent=PostRef.of(root), root=PostRef.of(root))
    assert caught.value.status == 403
    assert len(live_tweets(sandbox)) == 2


async def test_replies_count_against_the_tweet_rate_limit(
    adapter: TwitterAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    sandbox.network_state("twitter")["limits"] = {"tweets_create": 2}
    root = await adapter.publish(auth, PublishRequest(text="one"))
    await adapter.reply(auth, PublishRequest(text="two"), parent=PostRef.of(root), root=PostRef.of(root))
    with pytest.raises(RetryableError) as caught:
        await adapter.reply(auth, PublishRequest(text="three"), parent=PostRef.of(root), root=PostRef.of(root))
    assert caught.value.status == 429 and caught.value.retry_after is not None
    assert len(live_tweets(sandbox)) == 2
