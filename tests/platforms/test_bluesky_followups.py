"""Bluesky threads and first comments against the AT Protocol sandbox, over real HTTP.

A thread part is a post record with `reply = {root, parent}` (strongRefs: uri + cid); a first comment
is the account's own reply to the post. Everything is read back the way a Bluesky client reads it:
app.bsky.feed.getPosts, whose `record.reply` names the parent and the root.
"""

# ruff: noqa: F811 -- the tests take the fixtures imported from test_bluesky.py as parameters

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
from ouipost.platforms.bluesky import BlueskyAdapter
from ouipost.platforms.text import grapheme_count
from ouipost.sandbox import Sandbox
from tests.platforms.test_bluesky import ALICE_DID, PDS, adapter, auth  # noqa: F401


@pytest.fixture(autouse=True)
def no_link_cards(adapter: BlueskyAdapter) -> None:
    """A comment's link stays a facet: no page is fetched for a card."""
    adapter.fetch_link_cards = False


async def read_posts(sandbox_url: str, auth: AccountAuth, *results: PublishResult) -> list[dict[str, Any]]:
    """getPosts as a Bluesky client calls it (through the account's PDS), in the order asked."""
    query = "&".join(f"uris={r.remote_id}" for r in results)
    async with aiohttp.ClientSession() as session, session.get(
        f"{sandbox_url}/{PDS}/xrpc/app.bsky.feed.getPosts?{query}",
        headers={"Authorization": f"Bearer {auth.access_token}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    by_uri = {p["uri"]: p for p in body["posts"]}
    return [by_uri[r.remote_id] for r in results]


def ref_of(view: dict[str, Any]) -> dict[str, str]:
    return {"uri": view["uri"], "cid": view["cid"]}


def bluesky_posts(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.publications if p.network == "bluesky" and not p.deleted]


async def test_a_published_post_is_cited_by_its_result_alone(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox_url: str
) -> None:
    result = await adapter.publish(auth, PublishRequest(text="Thread start"))
    ref = PostRef.of(result)
    [view] = await read_posts(sandbox_url, auth, result)
    assert ref.remote_id == view["uri"]
    assert ref.extra["uri"] == view["uri"] and ref.extra["cid"] == view["cid"]


async def test_a_three_part_thread_is_one_chain(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox_url: str
) -> None:
    first = await adapter.publish(auth, PublishRequest(text="1/3 We open on Monday"))
    root = PostRef.of(first)
    second = await adapter.reply(auth, PublishRequest(text="2/3 Fresh bread from 7 am", target_key="t-2"),
                                 parent=root, root=root)
    third = await adapter.reply(auth, PublishRequest(text="3/3 See you there", target_key="t-3"),
                                parent=PostRef.of(second), root=root)

    head, middle, last = await read_posts(sandbox_url, auth, first, second, third)
    assert "reply" not in head["record"]
    assert middle["record"]["reply"] == {"root": ref_of(head), "parent": ref_of(head)}
    assert last["record"]["reply"] == {"root": ref_of(head), "parent": ref_of(middle)}
    assert [v["record"]["text"] for v in (head, middle, last)] == [
        "1/3 We open on Monday", "2/3 Fresh bread from 7 am", "3/3 See you there"]
    # Each part is a reply to the one before it: the first and the second have one reply each.
    assert head["replyCount"] == 1 and middle["replyCount"] == 1 and last["replyCount"] == 0
    # Each result can be cited by the next part, and names where it sits in the thread.
    assert third.extra["reply"] == {"root": first.remote_id, "parent": second.remote_id}
    assert third.url is not None and third.url.endswith("/post/" + third.remote_id.rsplit("/", 1)[-1])


async def test_a_reply_carries_an_image_like_a_post(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox_url: str, make_media: Callable[..., MediaFile]
) -> None:
    first = await adapter.publish(auth, PublishRequest(text="Menu of the week"))
    photo = make_media("image", alt_text="A croissant", width=800, height=600)
    reply = await adapter.reply(auth, PublishRequest(text="And the croissant", media=[photo]),
                                parent=PostRef.of(first), root=PostRef.of(first))

    head, view = await read_posts(sandbox_url, auth, first, reply)
    embed = view["record"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    [image] = embed["images"]
    assert image["alt"] == "A croissant" and image["aspectRatio"] == {"width": 800, "height": 600}
    assert view["record"]["reply"]["parent"] == ref_of(head)


async def test_a_first_comment_is_the_accounts_own_reply_to_the_post(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox_url: str
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="New opening hours"))
    comment = await adapter.comment(auth, "Details at https://example.com/hours", on=PostRef.of(post),
                                    key="c-1")

    head, view = await read_posts(sandbox_url, auth, post, comment)
    assert view["author"]["did"] == ALICE_DID
    assert view["record"]["reply"] == {"root": ref_of(head), "parent": ref_of(head)}
    # The comment is a whole post: its link is a facet, so it is clickable.
    [facet] = view["record"]["facets"]
    assert facet["features"][0]["uri"] == "https://example.com/hours"
    assert head["replyCount"] == 1


async def test_replying_to_a_deleted_post_is_refused_for_good(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Soon gone"))
    await adapter.delete(auth, post.remote_id)
    with pytest.raises(PermanentError) as err:
        await adapter.reply(auth, PublishRequest(text="too late"), parent=PostRef.of(post), root=PostRef.of(post))
    assert err.value.code == "InvalidRequest" and err.value.status == 400
    assert "does not exist" in err.value.message
    assert bluesky_posts(sandbox) == []


async def test_a_reply_citing_an_old_version_of_the_parent_is_refused(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Original"))
    other = await adapter.publish(auth, PublishRequest(text="Another post"))
    stale = PostRef(post.remote_id, {"uri": post.remote_id, "cid": other.extra["cid"]})
    with pytest.raises(PermanentError) as err:
        await adapter.reply(auth, PublishRequest(text="reply"), parent=stale, root=stale)
    assert err.value.code == "InvalidRequest" and "not the current version" in err.value.message
    assert len(bluesky_posts(sandbox)) == 2


async def test_a_part_must_cite_the_threads_root(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    first = await adapter.publish(auth, PublishRequest(text="1/3"))
    second = await adapter.reply(auth, PublishRequest(text="2/3"), parent=PostRef.of(first), root=PostRef.of(first))
    # Citing the second part as root would split the thread in the app: refused.
    with pytest.raises(PermanentError, match="thread's root"):
        await adapter.reply(auth, PublishRequest(text="3/3"), parent=PostRef.of(second), root=PostRef.of(second))
    assert len(bluesky_posts(sandbox)) == 2


async def test_a_reference_without_cid_is_completed_from_the_appview(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox_url: str
) -> None:
    post = await adapter.publish(auth, PublishRequest(text="Stored before cids were kept"))
    bare = PostRef(post.remote_id)
    reply = await adapter.comment(auth, "Still works", on=bare)
    head, view = await read_posts(sandbox_url, auth, post, reply)
    assert view["record"]["reply"]["root"] == ref_of(head)

    missing = PostRef(f"at://{ALICE_DID}/app.bsky.feed.post/3kzzzzzzzzzzz")
    with pytest.raises(PermanentError) as err:
        await adapter.comment(auth, "to nothing", on=missing)
    assert err.value.code == "NotFound"


async def test_an_over_long_part_is_refused_by_grapheme_count(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    first = await adapter.publish(auth, PublishRequest(text="1/2"))
    root = PostRef.of(first)
    # "é" written as e + combining accent: 2 code points, 1 grapheme. 300 graphemes fit.
    fits = "e\u0301" * 300
    assert grapheme_count(fits) == 300 and len(fits) == 600
    await adapter.reply(auth, PublishRequest(text=fits), parent=root, root=root)
    with pytest.raises(PermanentError) as err:
        await adapter.reply(auth, PublishRequest(text=fits + "!"), parent=root, root=root)
    assert err.value.code == "InvalidRequest" and err.value.status == 400
    assert "300 graphemes" in err.value.message
    assert len(bluesky_posts(sandbox)) == 2


async def test_a_lost_reply_answer_is_an_unknown_outcome_and_the_reply_exists_once(
    adapter: BlueskyAdapter, auth: AccountAuth, sandbox: Sandbox
) -> None:
    first = await adapter.publish(auth, PublishRequest(text="1/2"))
    sandbox.add_fault("bluesky", "drop_after", path_contains="createRecord")
    with pytest.raises(UnknownOutcomeError):
        await adapter.reply(auth, PublishRequest(text="2/2", target_key="t-2"),
                            parent=PostRef.of(first), root=PostRef.of(first))
    replies = [p for p in bluesky_posts(sandbox) if p.extra.get("reply_to") == first.remote_id]
    assert len(replies) == 1
