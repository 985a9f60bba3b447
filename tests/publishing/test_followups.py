"""Threads and first comments published end to end: the API, the embedded worker (publish_post,
then publish_followups) and the sandbox networks over real HTTP.

Exactly once, part by part: every test checks what the sandbox network received.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from ouipost.app import create_app
from ouipost.db.queue_tables import jobs
from ouipost.db.tables import events, post_target_parts
from ouipost.db.tables import posts as posts_table
from tests.media_samples import jpeg_bytes, mp4_bytes
from tests.servers import free_port
from tests.test_accounts import connect
from tests.test_publishing import publications, publish, wait_for_status

FINAL = {"published", "partially_published", "failed"}


@pytest.fixture
def settings(settings: Any) -> Any:
    """A retryable error is tried again after a tenth of a second, not the production backoff."""
    return settings.with_overrides(publish_backoff_seconds=0.1)


async def create_post(client: Any, key: Any, platforms: list[str], **fields: Any) -> dict[str, Any]:
    body = {"content": "1/3 We open on Monday", "platforms": platforms, **fields}
    resp = await client.post("/api/posts", json=body, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["post"]


async def publish_and_wait(client: Any, key: Any, post_id: str) -> dict[str, Any]:
    status, body = await publish(client, key, post_id)
    assert status in (200, 202), body
    return await wait_for_status(client, key, post_id, FINAL)


def chain(sandbox: Any, network: str, parent_key: str) -> dict[str, str | None]:
    """Each publication's text and the remote id of what it replies to."""
    return {p.text: p.extra.get(parent_key) for p in publications(sandbox, network)}


def by_text(sandbox: Any, network: str) -> dict[str, Any]:
    return {p.text: p for p in publications(sandbox, network)}


def parts_of(post: dict[str, Any], network: str) -> list[dict[str, Any]]:
    [entry] = [p for p in post["platform_posts"] if p["platform"] == network]
    return list(entry["parts"])


async def test_a_thread_and_a_first_comment_reach_x_and_bluesky_as_reply_chains(
    client: Any, key: Any, sandbox: Any, engine: Any
) -> None:
    await connect(client, key, "twitter")
    await connect(client, key, "bluesky")
    post = await create_post(client, key, ["twitter", "bluesky"], first_comment="Menu in the comments",
                             thread=[{"content": "2/3 Fresh bread from 7 am"}, {"content": "3/3 See you there"}])
    done = await publish_and_wait(client, key, post["id"])
    assert done["status"] == "published"

    x = by_text(sandbox, "twitter")
    root = x["1/3 We open on Monday"].remote_id
    assert set(x) == {"1/3 We open on Monday", "Menu in the comments", "2/3 Fresh bread from 7 am",
                      "3/3 See you there"}  # each once
    assert x["Menu in the comments"].extra["in_reply_to_tweet_id"] == root
    assert x["2/3 Fresh bread from 7 am"].extra["in_reply_to_tweet_id"] == root
    assert x["3/3 See you there"].extra["in_reply_to_tweet_id"] == x["2/3 Fresh bread from 7 am"].remote_id
    assert len(publications(sandbox, "twitter")) == 4

    bsky = by_text(sandbox, "bluesky")
    head = bsky["1/3 We open on Monday"].remote_id
    assert len(publications(sandbox, "bluesky")) == 4
    assert bsky["2/3 Fresh bread from 7 am"].extra["reply_to"] == head
    assert bsky["3/3 See you there"].extra["reply_to"] == bsky["2/3 Fresh bread from 7 am"].remote_id
    assert bsky["3/3 See you there"].extra["root"] == head

    parts = parts_of(done, "twitter")
    assert [(p["source"], p["index"], p["kind"], p["status"]) for p in parts] == [
        ("first_comment", None, "comment", "published"), ("thread", 0, "reply", "published"),
        ("thread", 1, "reply", "published")]
    assert [p["post_id"] for p in parts] == [x["Menu in the comments"].remote_id,
                                             x["2/3 Fresh bread from 7 am"].remote_id,
                                             x["3/3 See you there"].remote_id]
    assert all(p["url"].startswith("https://") and p["error"] is None for p in parts)
    async with engine.connect() as conn:
        kinds = (await conn.execute(sa.select(events.c.type).where(events.c.type.like("post.%"))
                                    .order_by(events.c.id))).scalars().all()
        payload = (await conn.execute(sa.select(events.c.payload).where(events.c.type == "post.published"))).scalar()
    assert kinds.count("post.published") == 1 and kinds[-1] == "post.published"  # once, after the last part
    # The webhook's payload shows what was published, part by part.
    assert parts_of(payload["post"], "bluesky") == parts_of(done, "bluesky")


async def test_thread_mode_first_comment_leaves_the_first_part_as_a_linkedin_comment(
    client: Any, key: Any, sandbox: Any
) -> None:
    await connect(client, key, "twitter")
    await connect(client, key, "linkedin")
    post = await create_post(client, key, ["twitter", "linkedin"], thread_mode="first_comment",
                             thread=[{"content": "2/3 Fresh bread from 7 am"}, {"content": "3/3 See you there"}])
    done = await publish_and_wait(client, key, post["id"])
    assert done["status"] == "published"
    assert len(publications(sandbox, "twitter")) == 3  # the post and both parts, chained
    [linkedin] = publications(sandbox, "linkedin")
    comments = [r for r in sandbox.requests if r.network == "linkedin" and r.method == "POST"
                and "/comments" in r.path]
    assert len(comments) == 1 and comments[0].status == 201
    [part] = parts_of(done, "linkedin")
    assert (part["source"], part["index"], part["kind"], part["status"]) == ("thread", 0, "comment", "published")
    assert part["post_id"].startswith("urn:li:comment:(") and linkedin.remote_id in part["post_id"]


async def test_a_part_whose_answer_is_lost_is_outcome_unknown_and_the_thread_stops_there(
    client: Any, key: Any, sandbox: Any
) -> None:
    await connect(client, key, "bluesky")
    post = await create_post(client, key, ["bluesky"], thread=[
        {"content": "2/4 Fresh bread from 7 am"}, {"content": "3/4 Croissants at 8"}, {"content": "4/4 See you"}])
    # The post and part one are answered; part two reaches the network but its answer is lost.
    sandbox.add_fault("bluesky", "drop_after", path_contains="createRecord", after=2)
    done = await publish_and_wait(client, key, post["id"])
    assert done["status"] == "partially_published"
    parts = parts_of(done, "bluesky")
    assert [(p["status"], (p["error"] or {}).get("code")) for p in parts] == [
        ("published", None), ("failed", "OUTCOME_UNKNOWN"), ("failed", "THREAD_BROKEN")]
    texts = [p.text for p in publications(sandbox, "bluesky")]
    assert texts == ["1/3 We open on Monday", "2/4 Fresh bread from 7 am", "3/4 Croissants at 8"]
    creates = [r for r in sandbox.requests if r.network == "bluesky" and "createRecord" in r.path]
    assert len(creates) == 3  # part two was never sent again; part three never sent

    # Publishing again sends the failed parts only, from the first one; the published part stays.
    status, body = await publish(client, key, post["id"])
    assert status in (200, 202), body
    again = await wait_for_status(client, key, post["id"], FINAL)
    assert again["status"] == "published"
    assert [p["status"] for p in parts_of(again, "bluesky")] == ["published"] * 3
    counts: dict[str, int] = {}
    for p in publications(sandbox, "bluesky"):
        counts[p.text] = counts.get(p.text, 0) + 1
    assert counts == {"1/3 We open on Monday": 1, "2/4 Fresh bread from 7 am": 1, "3/4 Croissants at 8": 2,
                      "4/4 See you": 1}  # part two twice: its first answer was lost, the user sent it again


async def test_a_retryable_error_on_a_part_resumes_from_that_part(
    client: Any, key: Any, sandbox: Any, engine: Any
) -> None:
    await connect(client, key, "twitter")
    post = await create_post(client, key, ["twitter"], thread=[{"content": "2/3 Fresh bread from 7 am"},
                                                              {"content": "3/3 See you there"}])
    sandbox.add_fault("twitter", "server_error", path_contains="/2/tweets", method="POST", after=1)
    done = await publish_and_wait(client, key, post["id"])
    assert done["status"] == "published"
    x = by_text(sandbox, "twitter")
    assert len(publications(sandbox, "twitter")) == 3
    assert x["2/3 Fresh bread from 7 am"].extra["in_reply_to_tweet_id"] == x["1/3 We open on Monday"].remote_id
    assert x["3/3 See you there"].extra["in_reply_to_tweet_id"] == x["2/3 Fresh bread from 7 am"].remote_id
    async with engine.connect() as conn:
        attempts = (await conn.execute(sa.select(post_target_parts.c.attempts)
                                       .order_by(post_target_parts.c.seq))).scalars().all()
        job = (await conn.execute(sa.select(jobs.c.status, jobs.c.attempts)
                                  .where(jobs.c.kind == "publish_followups"))).one()
    assert list(attempts) == [2, 1]  # part one sent twice (the 503, then its answer), part two once
    assert tuple(job) == ("done", 2)


async def test_a_post_without_follow_ups_publishes_as_before_and_has_no_parts(
    client: Any, key: Any, sandbox: Any, engine: Any
) -> None:
    await connect(client, key, "twitter")
    post = await create_post(client, key, ["twitter"])
    done = await publish_and_wait(client, key, post["id"])
    assert done["status"] == "published" and parts_of(done, "twitter") == []
    await asyncio.sleep(0.2)
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(jobs)
                                 .where(jobs.c.kind == "publish_followups")) == 0
        # No thread is SQL NULL (not a JSON null), so publishing skips such posts by an index-free filter.
        assert await conn.scalar(sa.select(sa.func.count()).select_from(posts_table)
                                 .where(posts_table.c.thread.is_(None))) == 1


@pytest.fixture
async def served_client(aiohttp_client: Any, settings: Any, engine: Any, clock: Any) -> Any:
    """The app on a port chosen beforehand and named by OUIPOST_PUBLIC_URL, so that the networks
    that fetch media by URL (Facebook, Instagram, Threads) can download the post's picture."""
    port = free_port()
    served = settings.with_overrides(public_url=f"http://127.0.0.1:{port}")
    return await aiohttp_client(create_app(served, engine=engine, clock=clock), server_kwargs={"port": port})


async def test_a_first_comment_lands_once_on_every_network_that_has_comments(
    served_client: Any, key: Any, sandbox: Any
) -> None:
    client = served_client
    networks = ["facebook", "instagram", "linkedin", "youtube", "threads", "twitter", "bluesky"]
    for network in networks:
        await connect(client, key, network)
    post = await create_post(client, key, networks, title="Opening week", first_comment="Menu in the comments")
    # YouTube takes the video only, the others the picture: each network names its media.
    video = await _attach(client, key, post["id"], mp4_bytes(), "tour.mp4", "video/mp4")
    await _media_for(client, key, post["id"], {n: [video] for n in networks})
    image = await _attach(client, key, post["id"], jpeg_bytes(), "front.jpg", "image/jpeg")
    await _media_for(client, key, post["id"], {n: [video if n == "youtube" else image] for n in networks})

    done = await publish_and_wait(client, key, post["id"])
    assert done["status"] == "published", done
    for network in networks:
        [part] = parts_of(done, network)
        assert (part["source"], part["kind"], part["status"]) == ("first_comment", "comment", "published"), network
        assert part["post_id"], network
    # Where the comment is a self-reply it is a second publication replying to the post; elsewhere
    # the network's comment endpoint was called once.
    for network, parent_key in (("twitter", "in_reply_to_tweet_id"), ("bluesky", "reply_to")):
        [post_pub, comment] = publications(sandbox, network)
        assert comment.text == "Menu in the comments" and comment.extra[parent_key] == post_pub.remote_id
    comment_calls = {n: [r for r in sandbox.requests if r.network == n and r.method == "POST"
                         and ("comment" in r.path.lower() or "/replies" in r.path)] for n in
                     ("facebook", "instagram", "linkedin", "youtube")}
    assert {n: len(calls) for n, calls in comment_calls.items()} == {n: 1 for n in comment_calls}


async def _attach(client: Any, key: Any, post_id: str, data: bytes, name: str, mime: str) -> str:
    body = aiohttp.FormData()
    body.add_field("file", io.BytesIO(data), filename=name, content_type=mime)
    resp = await client.post(f"/api/posts/{post_id}/media", data=body, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["data"]["media"]["id"])


async def _media_for(client: Any, key: Any, post_id: str, chosen: dict[str, list[str]]) -> None:
    overrides = {network: {"media_ids": ids} for network, ids in chosen.items()}
    resp = await client.put(f"/api/posts/{post_id}", json={"platform_content": overrides}, headers=key.headers())
    assert resp.status == 200, await resp.text()


async def test_a_part_carries_its_own_picture_and_the_post_does_not(client: Any, key: Any, sandbox: Any) -> None:
    await connect(client, key, "twitter")
    post = await create_post(client, key, ["twitter"])
    picture = await _attach(client, key, post["id"], jpeg_bytes(), "bread.jpg", "image/jpeg")
    resp = await client.put(f"/api/posts/{post['id']}", headers=key.headers(),
                            json={"thread": [{"content": "2/2 Fresh bread", "media_ids": [picture]}]})
    assert resp.status == 200, await resp.text()
    done = await publish_and_wait(client, key, post["id"])
    assert done["status"] == "published"
    x = by_text(sandbox, "twitter")
    assert x["1/3 We open on Monday"].media == []
    assert len(x["2/2 Fresh bread"].media) == 1 and x["2/2 Fresh bread"].media[0]["category"] == "tweet_image"
    assert x["2/2 Fresh bread"].extra["in_reply_to_tweet_id"] == x["1/3 We open on Monday"].remote_id


async def test_a_token_refused_between_parts_fails_what_is_left_and_reconnecting_sends_it(
    client: Any, key: Any, sandbox: Any, engine: Any
) -> None:
    await connect(client, key, "twitter")
    post = await create_post(client, key, ["twitter"], first_comment="Menu in the comments",
                             thread=[{"content": "2/3 Fresh bread from 7 am"}])
    # After the post, X says the token expired and refuses the refresh: the account must reconnect.
    sandbox.add_fault("twitter", "expire_token", path_contains="/2/tweets", method="POST", after=1)
    sandbox.add_fault("twitter", "expire_token", path_contains="/oauth2/token")
    done = await publish_and_wait(client, key, post["id"])
    assert done["status"] == "partially_published"
    assert [(p["status"], p["error"]["code"]) for p in parts_of(done, "twitter")] == [
        ("failed", "TOKEN_EXPIRED"), ("failed", "TOKEN_EXPIRED")]
    assert [p.text for p in publications(sandbox, "twitter")] == ["1/3 We open on Monday"]

    await connect(client, key, "twitter")  # the user reconnects the same X account
    again = await wait_for_status(client, key, post["id"], {"published"})
    assert again["status"] == "published"
    x = by_text(sandbox, "twitter")
    assert len(publications(sandbox, "twitter")) == 3  # the post once, then both follow-ups once
    assert x["2/3 Fresh bread from 7 am"].extra["in_reply_to_tweet_id"] == x["1/3 We open on Monday"].remote_id
