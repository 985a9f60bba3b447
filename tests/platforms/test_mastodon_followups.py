"""Mastodon follow-ups against the sandbox over real HTTP: threads as reply chains, a reply with an
image, a first comment, Idempotency-Key per part, and what the server refuses."""

# ruff: noqa: F811 -- the tests take the fixtures imported from test_mastodon.py as parameters

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
)
from ouipost.platforms.mastodon import MastodonAdapter
from ouipost.sandbox import Sandbox
from ouipost.sandbox.mastodon import USER
from tests.platforms.test_mastodon import SERVER, adapter, auth, fast_polling, statuses  # noqa: F401


async def api_get(http_session: aiohttp.ClientSession, sandbox_url: str, auth: AccountAuth,
                  path: str) -> dict[str, Any]:
    """A read of the server's API as a Mastodon client makes it."""
    async with http_session.get(f"{sandbox_url}/{SERVER}/api/v1/{path}",
                                headers={"Authorization": f"Bearer {auth.access_token}"}) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
    return body


def status_creations(sandbox: Sandbox) -> list[Any]:
    return [r for r in sandbox.requests if r.method == "POST" and r.path == f"/{SERVER}/api/v1/statuses"]


async def test_a_three_part_thread_is_one_reply_chain_read_back_from_the_server(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox, http_session: aiohttp.ClientSession,
    sandbox_url: str,
) -> None:
    root = await adapter.publish(auth, PublishRequest(text="1/3 Bread of the week", target_key="t-1"))
    second = await adapter.reply(auth, PublishRequest(text="2/3 Rye on Monday", target_key="t-2"),
                                 parent=PostRef.of(root), root=PostRef.of(root))
    third = await adapter.reply(auth, PublishRequest(text="3/3 Brioche on Tuesday", target_key="t-3"),
                                parent=PostRef.of(second), root=PostRef.of(root))

    assert third.url == f"https://{SERVER}/@ouipost/{third.remote_id}"
    assert [r.body.get("in_reply_to_id") for r in status_creations(sandbox)] == [
        None, root.remote_id, second.remote_id]
    assert (await api_get(http_session, sandbox_url, auth, f"statuses/{root.remote_id}"))["in_reply_to_id"] is None
    for part, parent in ((second, root), (third, second)):
        status = await api_get(http_session, sandbox_url, auth, f"statuses/{part.remote_id}")
        assert (status["in_reply_to_id"], status["in_reply_to_account_id"]) == (parent.remote_id, USER["id"])
    below = await api_get(http_session, sandbox_url, auth, f"statuses/{root.remote_id}/context")
    assert below["ancestors"] == []
    assert [s["id"] for s in below["descendants"]] == [second.remote_id, third.remote_id]
    above = await api_get(http_session, sandbox_url, auth, f"statuses/{third.remote_id}/context")
    assert [s["content"] for s in above["ancestors"]] == ["<p>1/3 Bread of the week</p>", "<p>2/3 Rye on Monday</p>"]
    assert above["descendants"] == []


async def test_a_reply_with_an_image_uploads_it_with_its_alt_text(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox, make_media: Callable[..., MediaFile],
    http_session: aiohttp.ClientSession, sandbox_url: str,
) -> None:
    root = await adapter.publish(auth, PublishRequest(text="Fresh today"))
    reply = await adapter.reply(auth, PublishRequest(text="The baguette", media=[
        make_media("image", alt_text="a baguette")]), parent=PostRef.of(root), root=PostRef.of(root))

    status = await api_get(http_session, sandbox_url, auth, f"statuses/{reply.remote_id}")
    assert status["in_reply_to_id"] == root.remote_id
    assert [(m["type"], m["description"]) for m in status["media_attachments"]] == [("image", "a baguette")]
    assert reply.extra["media_ids"] == [status["media_attachments"][0]["id"]]
    [_, pub] = statuses(sandbox)
    assert pub.extra["in_reply_to_id"] == root.remote_id


async def test_a_comment_lands_under_the_status(
    adapter: MastodonAdapter, auth: AccountAuth, http_session: aiohttp.ClientSession, sandbox_url: str
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Croissant day"))
    comment = await adapter.comment(auth, "Order ahead at https://oui.example", on=PostRef.of(post), key="c-1")

    context = await api_get(http_session, sandbox_url, auth, f"statuses/{post.remote_id}/context")
    assert [(s["id"], s["in_reply_to_id"]) for s in context["descendants"]] == [(comment.remote_id, post.remote_id)]
    assert comment.extra["in_reply_to_id"] == post.remote_id


async def test_a_retried_part_with_its_key_answers_the_first_reply(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    root = await adapter.publish(auth, PublishRequest(text="Start", target_key="t-1"))
    part = PublishRequest(text="Same words", target_key="t-2")
    first = await adapter.reply(auth, part, parent=PostRef.of(root), root=PostRef.of(root))
    again = await adapter.reply(auth, part, parent=PostRef.of(root), root=PostRef.of(root))
    assert again.remote_id == first.remote_id
    assert [r.notes.get("idempotent_replay", False) for r in status_creations(sandbox)][1:] == [False, True]
    other = await adapter.reply(auth, PublishRequest(text="Same words", target_key="t-3"),
                                parent=PostRef.of(first), root=PostRef.of(root))
    assert other.remote_id != first.remote_id
    assert len(status_creations(sandbox)) == 4 and len(statuses(sandbox)) == 3


async def test_a_lost_reply_answer_is_asked_again_with_its_key_and_posted_once(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Start"))
    sandbox.add_fault("mastodon", "drop_after", path_contains="/api/v1/statuses", method="POST")
    comment = await adapter.comment(auth, "Lost then found", on=PostRef.of(post), key="c-1")
    [_, reply] = statuses(sandbox)
    assert reply.remote_id == comment.remote_id
    assert [r.notes.get("idempotent_replay", False) for r in status_creations(sandbox)] == [False, False, True]


async def test_replying_to_a_deleted_or_unknown_status_is_permanent(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    root = await adapter.publish(auth, PublishRequest(text="Gone soon"))
    await adapter.delete(auth, root.remote_id)
    for parent in (PostRef.of(root), PostRef("111000000000999999")):
        with pytest.raises(PermanentError, match="does not appear to exist") as caught:
            await adapter.reply(auth, PublishRequest(text="late"), parent=parent, root=parent)
        assert (caught.value.status, caught.value.code, caught.value.reconnect) == (404, "not_found", False)
        with pytest.raises(PermanentError, match="does not appear to exist"):
            await adapter.comment(auth, "late", on=parent, key="c-late")
    assert statuses(sandbox) == []


async def test_an_over_long_part_is_refused_by_the_server(
    adapter: MastodonAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    root = await adapter.publish(auth, PublishRequest(text="Short start"))
    # The account's limits say 1,000 (stale): the part reaches the server, which counts 500.
    auth.metadata["limits"] = {**auth.metadata["limits"], "max_characters": 1000}
    with pytest.raises(PermanentError, match="character limit of 500 exceeded") as caught:
        await adapter.reply(auth, PublishRequest(text="y" * 501), parent=PostRef.of(root), root=PostRef.of(root))
    assert caught.value.status == 422
    assert len(statuses(sandbox)) == 1
