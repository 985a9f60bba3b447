"""Threads follow-ups against the sandbox over real HTTP: threads as reply containers, a reply with an
image, a first comment, the reply quota apart from the post quota, and what Threads refuses."""

# ruff: noqa: F811 -- the tests take the fixtures imported from test_threads.py as parameters

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
from ouipost.platforms.threads import ThreadsAdapter
from ouipost.sandbox import Sandbox
from ouipost.sandbox.threads import threads_length
from tests.platforms.helpers import account_auth as auth_of
from tests.platforms.test_threads import USER, adapter, connect, fast_polling, live, profile  # noqa: F401


async def graph_get(http_session: aiohttp.ClientSession, sandbox_url: str, auth: AccountAuth, path: str,
                    **params: str) -> dict[str, Any]:
    """A read of the Threads API as a client of Threads makes it."""
    async with http_session.get(f"{sandbox_url}/graph.threads.net/v1.0/{path}", params=params,
                                headers={"Authorization": f"Bearer {auth.access_token}"}) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
    return body


def reply_to_ids(sandbox: Sandbox) -> list[str | None]:
    """`reply_to_id` of every container created, in order."""
    return [(r.body or {}).get("reply_to_id") for r in sandbox.requests
            if r.method == "POST" and r.path == f"/graph.threads.net/v1.0/{USER}/threads"]


async def test_a_three_part_thread_is_one_reply_chain_read_back_from_threads(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox, http_session: aiohttp.ClientSession,
    sandbox_url: str,
) -> None:
    root = await adapter.publish(profile, PublishRequest(text="1/3 Our week in bread"))
    second = await adapter.reply(profile, PublishRequest(text="2/3 Monday: rye", target_key="p2"),
                                 parent=PostRef.of(root), root=PostRef.of(root))
    third = await adapter.reply(profile, PublishRequest(text="3/3 Tuesday: brioche", target_key="p3"),
                                parent=PostRef.of(second), root=PostRef.of(root))

    assert reply_to_ids(sandbox) == [None, root.remote_id, second.remote_id]
    assert third.url == f"https://www.threads.com/@ouibakery/post/{third.extra['shortcode']}"
    fields = "id,text,is_reply,replied_to,root_post,has_replies"
    first_read = await graph_get(http_session, sandbox_url, profile, root.remote_id, fields=fields)
    assert (first_read["is_reply"], first_read["has_replies"]) == (False, True)
    for part, parent in ((second, root), (third, second)):
        data = await graph_get(http_session, sandbox_url, profile, part.remote_id, fields=fields)
        assert data["is_reply"] is True
        assert data["replied_to"] == {"id": parent.remote_id} and data["root_post"] == {"id": root.remote_id}
    conversation = await graph_get(http_session, sandbox_url, profile, f"{root.remote_id}/conversation",
                                   fields="id,text", reverse="false")
    assert [(m["id"], m["text"]) for m in conversation["data"]] == [
        (second.remote_id, "2/3 Monday: rye"), (third.remote_id, "3/3 Tuesday: brioche")]
    top_level = await graph_get(http_session, sandbox_url, profile, f"{root.remote_id}/replies")
    assert top_level["data"] == [{"id": second.remote_id}]


async def test_a_reply_with_an_image_runs_the_image_container_flow(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile],
) -> None:
    root = await adapter.publish(profile, PublishRequest(text="Fresh today"))
    reply = await adapter.reply(profile, PublishRequest(text="The baguette", media=[
        make_media("image", alt_text="a baguette")]), parent=PostRef.of(root), root=PostRef.of(root))

    [_, pub] = live(sandbox)
    assert pub.remote_id == reply.remote_id
    assert (pub.extra["media_type"], pub.extra["reply_to_id"], pub.extra["root_post_id"]) == (
        "IMAGE", root.remote_id, root.remote_id)
    assert [(m["mime"], m["alt_text"]) for m in pub.media] == [("image/jpeg", "a baguette")]


async def test_a_comment_lands_under_the_post(
    adapter: ThreadsAdapter, profile: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str
) -> None:
    post = await adapter.publish(profile, PublishRequest(text="Croissant day"))
    comment = await adapter.comment(profile, "Order ahead: oui.example", on=PostRef.of(post), key="c-1")

    replies = await graph_get(http_session, sandbox_url, profile, f"{post.remote_id}/replies",
                              fields="id,text,is_reply_owned_by_me,username")
    assert replies["data"] == [{"id": comment.remote_id, "text": "Order ahead: oui.example",
                                "is_reply_owned_by_me": True, "username": "ouibakery"}]


async def test_replies_have_their_own_daily_quota_apart_from_posts(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox, http_session: aiohttp.ClientSession,
    sandbox_url: str,
) -> None:
    sandbox.network_state("threads").update(publish_limit=1, reply_limit=2)
    root = await adapter.publish(profile, PublishRequest(text="The only post today"))
    for n in (1, 2):  # the post quota is used up; replies still go out
        await adapter.reply(profile, PublishRequest(text=f"reply {n}"), parent=PostRef.of(root),
                            root=PostRef.of(root))
    with pytest.raises(RetryableError) as caught:
        await adapter.comment(profile, "one too many", on=PostRef.of(root))
    assert caught.value.code == "9/2207042" and caught.value.retry_after == 86400

    limit = await graph_get(http_session, sandbox_url, profile, f"{USER}/threads_publishing_limit",
                            fields="quota_usage,reply_quota_usage,reply_config")
    assert limit["data"] == [{"quota_usage": 1, "reply_quota_usage": 2,
                              "reply_config": {"quota_total": 2, "quota_duration": 86400}}]
    assert len(live(sandbox)) == 3


async def test_replying_to_a_deleted_or_unknown_post_is_permanent(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    root = await adapter.publish(profile, PublishRequest(text="Gone soon"))
    await adapter.delete(profile, root.remote_id)
    for parent in (PostRef.of(root), PostRef("19000000000099999")):
        with pytest.raises(PermanentError, match="does not exist") as caught:
            await adapter.reply(profile, PublishRequest(text="late"), parent=parent, root=parent)
        assert caught.value.code == "100/33" and not caught.value.reconnect
    assert live(sandbox) == []


async def test_a_parent_deleted_before_the_reply_is_published_is_refused(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox, http_session: aiohttp.ClientSession,
    sandbox_url: str,
) -> None:
    root = await adapter.publish(profile, PublishRequest(text="Parent"))
    sandbox.network_state("threads")["container_seconds"] = 0  # FINISHED at once
    headers = {"Authorization": f"Bearer {profile.access_token}"}
    base = f"{sandbox_url}/graph.threads.net/v1.0/{USER}"
    async with http_session.post(f"{base}/threads", headers=headers, data={
            "media_type": "TEXT", "text": "orphan", "reply_to_id": root.remote_id}) as resp:
        container = (await resp.json())["id"]
    await adapter.delete(profile, root.remote_id)
    async with http_session.post(f"{base}/threads_publish", headers=headers,
                                 data={"creation_id": container}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == 100
    assert live(sandbox) == []


async def test_an_over_long_reply_is_refused_by_threads(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    root = await adapter.publish(profile, PublishRequest(text="Short start"))
    text = "a" * 490 + "🥐" * 3  # 493 characters, 502 by Threads' count
    assert threads_length(text) == 502
    with pytest.raises(PermanentError, match="at most 500 characters"):
        await adapter.reply(profile, PublishRequest(text=text), parent=PostRef.of(root), root=PostRef.of(root))
    assert len(live(sandbox)) == 1


async def test_replying_without_threads_manage_replies_asks_for_a_reconnect(
    adapter: ThreadsAdapter, http_session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    auth = auth_of(await connect(adapter, http_session, ["threads_basic", "threads_content_publish"]))
    post = await adapter.publish(auth, PublishRequest(text="Posting is granted"))
    with pytest.raises(PermanentError, match="threads_manage_replies") as caught:
        await adapter.comment(auth, "Replying is not", on=PostRef.of(post))
    assert caught.value.reconnect and caught.value.status == 403
    with pytest.raises(PermanentError) as again:
        await adapter.reply(auth, PublishRequest(text="Nor threads"), parent=PostRef.of(post), root=PostRef.of(post))
    assert again.value.reconnect
    assert len(live(sandbox)) == 1


async def test_a_lost_reply_publish_answer_is_unknown_and_published_once(
    adapter: ThreadsAdapter, profile: AccountAuth, sandbox: Sandbox
) -> None:
    root = await adapter.publish(profile, PublishRequest(text="Start"))
    sandbox.add_fault("threads", "drop_after", path_contains="/threads_publish")
    with pytest.raises(UnknownOutcomeError):
        await adapter.reply(profile, PublishRequest(text="Lost answer", target_key="p2"),
                            parent=PostRef.of(root), root=PostRef.of(root))
    assert [p.text for p in live(sandbox)] == ["Start", "Lost answer"]
