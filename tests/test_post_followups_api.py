"""Threads and first comments (issue 17 part 1) in the post API: the request fields, their rules per
network (ouipost.posts.validation.followup_errors), what is stored and shown, and refusals that
change nothing."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from ouipost.core.clock import isoformat
from ouipost.db.tables import post_target_parts, post_targets, posts
from ouipost.posts.validation import DraftPost, MediaInfo, followup_errors, validate_for_networks
from tests.media_samples import png_bytes
from tests.test_openapi import Spec

CHAINS = "twitter, threads, bluesky, mastodon"
ROOT = Path(__file__).resolve().parents[1]


def image(n: int) -> MediaInfo:
    return MediaInfo(id=f"media_img{n}", kind="image", width=1080, height=1080)


def draft(networks: list[str], **fields: Any) -> DraftPost:
    return DraftPost(**{"content": "Hello", **fields}, networks=networks)


# --- the rules, on plain drafts --------------------------------------------------------------------


def test_no_followups_no_errors() -> None:
    assert followup_errors(draft(["twitter", "linkedin", "tiktok"])) == {}


def test_a_thread_on_networks_without_reply_chains_is_one_message_naming_them() -> None:
    errors = followup_errors(draft(["twitter", "linkedin", "pinterest"], thread=[{"content": "More"}]))
    assert errors == {"thread": [
        f"A thread is published as a reply chain on {CHAINS} only, not on linkedin, pinterest; thread_mode "
        '"first_comment" leaves the first part as a comment on networks that take comments '
        "(facebook, instagram, linkedin, youtube)"]}


def test_thread_mode_first_comment_where_there_are_no_comments_names_those_networks() -> None:
    post = draft(["linkedin", "tiktok", "pinterest"], thread=[{"content": "More"}], thread_mode="first_comment")
    assert followup_errors(post) == {"thread_mode": [
        'thread_mode "first_comment" leaves the first part as a comment, and there are no comments on '
        "tiktok, pinterest: remove the thread or those networks"]}
    fine = draft(["linkedin", "twitter"], thread=[{"content": "More"}, {"content": "Again"}],
                 thread_mode="first_comment")
    assert followup_errors(fine) == {}


def test_each_part_is_a_post_on_reply_chain_networks() -> None:
    errors = followup_errors(draft(["twitter", "bluesky"], thread=[
        {"content": "a" * 280}, {"content": "a" * 281}, {"content": "😀" * 141}, {"content": "b" * 301}]))
    assert set(errors) == {"thread.1", "thread.2", "thread.3"}
    assert errors["thread.1"] == ["281 of 280 characters (Twitter/X counts URLs as 23 and emoji and CJK characters "
                                  "as 2)"]
    assert errors["thread.2"][0].startswith("282 of 280 characters (Twitter/X")
    assert errors["thread.3"] == [
        "301 of 280 characters (Twitter/X counts URLs as 23 and emoji and CJK characters as 2)",
        "301 of 300 characters (Bluesky counts graphemes)"]


def test_a_part_text_is_counted_as_written_without_the_post_hashtags_or_link() -> None:
    post = draft(["bluesky"], hashtags=["#launch"], link="https://example.com/a-long-page",
                 thread=[{"content": "c" * 300}])
    assert followup_errors(post) == {}


def test_mastodon_parts_use_the_server_limit_once_the_account_is_known() -> None:
    thread = [{"content": "m" * 600}]
    assert followup_errors(draft(["mastodon"], thread=thread)) == {}  # a draft: no server known yet
    known = draft(["mastodon"], thread=thread, account_limits={"mastodon": {"max_characters": 500}})
    assert followup_errors(known) == {"thread.0": ["600 of 500 characters (Mastodon counts URLs as 23)"]}


def test_part_media_must_be_attached_and_fit_the_network() -> None:
    media = [image(n) for n in range(6)]
    post = draft(["twitter"], media=media, thread=[
        {"content": "ok", "media_ids": ["media_img0"]},
        {"content": "five", "media_ids": [f"media_img{n}" for n in range(5)]},
        {"content": "stranger", "media_ids": ["media_elsewhere"]},
    ])
    errors = followup_errors(post)
    assert errors == {
        "thread.1": ["5 images, Twitter/X allows at most 4"],
        "thread.2": ["media_ids not attached to this post: media_elsewhere"],
    }


def test_the_first_part_as_a_comment_is_text_only_and_a_comment_long() -> None:
    post = draft(["linkedin", "facebook"], media=[image(1)], thread_mode="first_comment",
                 thread=[{"content": "l" * 1251, "media_ids": ["media_img1"]}, {"content": "x" * 5000}])
    assert followup_errors(post) == {"thread.0": [
        "comments carry text only on LinkedIn: the first part is a comment there, remove its media_ids",
        "1251 of 1250 characters in a comment (LinkedIn counts characters)",
        "comments carry text only on Facebook: the first part is a comment there, remove its media_ids",
    ]}


def test_first_comment_where_there_are_none_and_its_length_per_network() -> None:
    post = draft(["linkedin", "twitter", "tiktok", "pinterest"], first_comment="f" * 1251)
    assert followup_errors(post) == {"first_comment": [
        "A first comment cannot be left on tiktok, pinterest (there are no comments there): remove first_comment "
        "or those networks",
        "1251 of 1250 characters in a comment (LinkedIn counts characters)",
        "1251 of 280 characters (Twitter/X counts URLs as 23 and emoji and CJK characters as 2)",
    ]}
    assert followup_errors(draft(["linkedin"], first_comment="f" * 1250)) == {}
    assert followup_errors(draft(["bluesky"], first_comment="f" * 300)) == {}


def test_a_youtube_comment_counts_characters_not_the_description_bytes() -> None:
    assert followup_errors(draft(["youtube"], first_comment="é" * 10_000)) == {}
    assert followup_errors(draft(["youtube"], first_comment="é" * 10_001)) == {"first_comment": [
        "10001 of 10000 characters in a comment (YouTube counts characters)"]}


def test_the_post_own_media_leave_out_the_media_of_the_thread() -> None:
    media = [image(n) for n in range(6)]  # 4 for the post, 2 for the thread
    thread = [{"content": "more", "media_ids": ["media_img4", "media_img5"]}]
    assert validate_for_networks(draft(["twitter"], media=media, thread=thread), require_media=False) == {}
    assert "twitter" in validate_for_networks(draft(["twitter"], media=media), require_media=False)
    # An override names what the network gets, a part's media included.
    chosen = draft(["twitter"], media=media, thread=thread,
                   platform_content={"twitter": {"media_ids": ["media_img4"]}})
    assert validate_for_networks(chosen, require_media=False) == {}


def test_followup_errors_ride_along_with_the_network_errors() -> None:
    post = draft(["twitter"], content="a" * 281, first_comment="b" * 281)
    errors = validate_for_networks(post, require_media=False)
    assert set(errors) == {"twitter", "first_comment"}


# --- over HTTP -------------------------------------------------------------------------------------


async def create(client: Any, key: Any, expect: int = 201, **body: Any) -> dict:
    resp = await client.post("/api/posts", json=body, headers=key.headers())
    answer = await resp.json()
    assert resp.status == expect, answer
    return answer


async def update(client: Any, key: Any, post_id: str, expect: int = 200, **changes: Any) -> dict:
    resp = await client.put(f"/api/posts/{post_id}", json=changes, headers=key.headers())
    answer = await resp.json()
    assert resp.status == expect, answer
    return answer


async def get(client: Any, key: Any, post_id: str) -> dict:
    resp = await client.get(f"/api/posts/{post_id}", headers=key.headers())
    assert resp.status == 200
    return (await resp.json())["data"]["post"]


async def stored(engine: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(posts).order_by(posts.c.id))).mappings()]


async def attach(client: Any, key: Any, post_id: str, count: int = 1) -> list[str]:
    ids = []
    for _ in range(count):
        body = aiohttp.FormData()
        body.add_field("file", io.BytesIO(png_bytes(64, 64)), filename="square.png", content_type="image/png")
        resp = await client.post(f"/api/posts/{post_id}/media", data=body, headers=key.headers())
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["data"]["media"]["id"])
    return ids


def refused(answer: dict) -> dict[str, Any]:
    error = answer["error"]
    assert answer["success"] is False and error["code"] == "VALIDATION_ERROR", answer
    return error["details"]


THREAD = [{"content": "Part two: what we learned"}, {"content": "Part three: what comes next"}]


async def test_create_get_list_and_update_round_trip(client: Any, key: Any, engine: Any) -> None:
    post = (await create(client, key, content="A launch in three parts", platforms=["twitter", "linkedin"],
                         thread=THREAD, thread_mode="first_comment", first_comment="Questions welcome"))["data"]["post"]
    shown = [{"content": part["content"], "media_ids": []} for part in THREAD]
    assert (post["thread"], post["thread_mode"], post["first_comment"]) == (shown, "first_comment", "Questions welcome")
    (row,) = await stored(engine)
    assert (row["thread"], row["thread_mode"], row["first_comment"]) == (shown, "first_comment", "Questions welcome")

    detail = await get(client, key, post["id"])
    assert detail["thread"] == shown and detail["thread_mode"] == "first_comment"
    assert [p["parts"] for p in detail["platform_posts"]] == [[], []]
    listed = (await (await client.get("/api/posts", headers=key.headers())).json())["data"]["posts"]
    assert listed[0]["thread"] == shown and listed[0]["first_comment"] == "Questions welcome"

    # PUT changes what it is given and keeps the rest.
    changed = (await update(client, key, post["id"], content="A launch, explained"))["data"]["post"]
    assert (changed["thread"], changed["thread_mode"], changed["first_comment"]) == (
        shown, "first_comment", "Questions welcome")
    changed = (await update(client, key, post["id"], first_comment=None))["data"]["post"]
    assert changed["first_comment"] is None and changed["thread"] == shown
    changed = (await update(client, key, post["id"], platforms=["twitter"], thread_mode="thread"))["data"]["post"]
    assert changed["thread_mode"] == "thread"
    changed = (await update(client, key, post["id"], thread=[]))["data"]["post"]
    assert (changed["thread"], changed["thread_mode"], changed["first_comment"]) == ([], None, None)
    (row,) = await stored(engine)
    assert (row["thread"], row["thread_mode"], row["first_comment"]) == (None, None, None)


async def test_a_thread_defaults_to_thread_mode_thread_and_a_post_without_followups_shows_none(
    client: Any, key: Any, engine: Any,
) -> None:
    post = (await create(client, key, content="Hello", platforms=["bluesky"], thread=THREAD))["data"]["post"]
    assert post["thread_mode"] == "thread"
    plain = (await create(client, key, content="Hello", platforms=["bluesky"], thread=None, first_comment=None,
                          thread_mode="first_comment"))["data"]["post"]
    assert (plain["thread"], plain["thread_mode"], plain["first_comment"]) == ([], None, None)
    rows = {r["id"]: r for r in await stored(engine)}
    assert (rows[plain["id"]]["thread"], rows[plain["id"]]["thread_mode"]) == (None, None)
    # A thread given later takes the default mode.
    later = (await update(client, key, plain["id"], thread=THREAD[:1]))["data"]["post"]
    assert later["thread_mode"] == "thread"


@pytest.mark.parametrize(("fields", "where"), [
    ({"thread": [{"media_ids": []}]}, "thread"),
    ({"thread": [{"content": "   "}]}, "thread"),
    ({"thread": [{"content": "x", "colour": "red"}]}, "thread"),
    ({"thread": [{"content": "x", "media_ids": [f"media_{n}" for n in range(11)]}]}, "thread"),
    ({"thread": [{"content": "x"}] * 26}, "thread"),
    ({"thread": "one long text"}, "thread"),
    ({"thread": [{"content": "x"}], "thread_mode": "carousel"}, "thread_mode"),
    ({"first_comment": " \n "}, "first_comment"),
    ({"first_comment": "c" * 10_001}, "first_comment"),
])
async def test_malformed_followups_are_refused_and_nothing_is_created(
    client: Any, key: Any, engine: Any, fields: dict, where: str,
) -> None:
    details = refused(await create(client, key, expect=422, content="Hello", platforms=["twitter"], **fields))
    assert list(details) == [where]
    assert await stored(engine) == []


async def test_an_update_refuses_a_part_without_content_and_changes_nothing(
    client: Any, key: Any, engine: Any,
) -> None:
    post = (await create(client, key, content="Hello", platforms=["twitter"], thread=THREAD))["data"]["post"]
    before = await stored(engine)
    details = refused(await update(client, key, post["id"], expect=422, thread=[{"media_ids": []}]))
    assert details == {"thread": {"0": {"content": ["Missing data for required field."]}}}
    assert await stored(engine) == before


@pytest.mark.parametrize(("fields", "where", "words"), [
    ({"platforms": ["twitter", "linkedin", "pinterest"], "thread": THREAD}, "thread",
     ["twitter, threads, bluesky, mastodon only", "not on linkedin, pinterest", 'thread_mode "first_comment"']),
    ({"platforms": ["twitter", "linkedin", "tiktok"], "thread": THREAD, "thread_mode": "first_comment"},
     "thread_mode", ["no comments on tiktok:"]),
    ({"platforms": ["linkedin", "pinterest", "tiktok"], "first_comment": "Thanks"}, "first_comment",
     ["cannot be left on pinterest, tiktok"]),
])
async def test_followups_a_network_cannot_carry_are_refused_naming_it(
    client: Any, key: Any, engine: Any, fields: dict, where: str, words: list[str],
) -> None:
    details = refused(await create(client, key, expect=422, content="Hello", **fields))
    assert list(details) == [where]
    (message,) = details[where]
    assert all(word in message for word in words), message
    assert await stored(engine) == []

    # The same on an update: the post stays as it was.
    post = (await create(client, key, content="Hello", platforms=["twitter"]))["data"]["post"]
    before = await stored(engine)
    assert list(refused(await update(client, key, post["id"], expect=422, **fields))) == [where]
    assert await stored(engine) == before


async def test_part_lengths_are_counted_per_network(client: Any, key: Any, engine: Any) -> None:
    await create(client, key, content="x", platforms=["twitter"], thread=[{"content": "a" * 280}])
    details = refused(await create(client, key, expect=422, content="x", platforms=["twitter"],
                                   thread=[{"content": "fine"}, {"content": "a" * 281}]))
    assert details == {"thread.1": [
        "281 of 280 characters (Twitter/X counts URLs as 23 and emoji and CJK characters as 2)"]}
    family = "👨\u200d👩\u200d👧\u200d👦"  # 7 code points, one grapheme
    await create(client, key, content="x", platforms=["bluesky"], thread=[{"content": family * 100 + "b" * 200}])
    details = refused(await create(client, key, expect=422, content="x", platforms=["bluesky"],
                                   thread=[{"content": "b" * 301}]))
    assert details == {"thread.0": ["301 of 300 characters (Bluesky counts graphemes)"]}
    await create(client, key, content="x", platforms=["linkedin"], first_comment="c" * 1250)
    details = refused(await create(client, key, expect=422, content="x", platforms=["linkedin"],
                                   first_comment="c" * 1251))
    assert details == {"first_comment": ["1251 of 1250 characters in a comment (LinkedIn counts characters)"]}
    assert len(await stored(engine)) == 3


async def test_validate_reports_followup_errors_without_saving(client: Any, key: Any, engine: Any) -> None:
    resp = await client.post("/api/posts/validate", headers=key.headers(), json={
        "content": "Hello", "platforms": ["twitter", "tiktok"], "first_comment": "c" * 300})
    report = (await resp.json())["data"]
    assert report["valid"] is False
    assert len(report["errors"]["first_comment"]) == 2  # none on TikTok, too long on X
    assert await stored(engine) == []


async def test_media_on_a_comment_is_refused(client: Any, key: Any, engine: Any) -> None:
    post = (await create(client, key, content="Hello", platforms=["twitter", "linkedin"], thread=THREAD,
                         thread_mode="first_comment"))["data"]["post"]
    (media_id,) = await attach(client, key, post["id"])
    before = await stored(engine)
    details = refused(await update(client, key, post["id"], expect=422, thread=[
        {"content": "With a picture", "media_ids": [media_id]}, THREAD[1]]))
    assert details == {"thread.0": [
        "comments carry text only on LinkedIn: the first part is a comment there, remove its media_ids"]}
    assert await stored(engine) == before
    # Later parts are not published on LinkedIn; on X they are replies, media and all.
    await update(client, key, post["id"], thread=[THREAD[0], {"content": "With a picture", "media_ids": [media_id]}])


async def test_part_media_must_be_attached_to_the_post_and_another_workspace_media_is_not_revealed(
    client: Any, make_key: Any, engine: Any,
) -> None:
    mine, theirs = await make_key(), await make_key()
    post = (await create(client, mine, content="Hello", platforms=["twitter"], thread=THREAD))["data"]["post"]
    other = (await create(client, mine, content="Other", platforms=["twitter"]))["data"]["post"]
    foreign_post = (await create(client, theirs, content="Theirs", platforms=["twitter"]))["data"]["post"]
    (not_this_post,) = await attach(client, mine, other["id"])
    (foreign,) = await attach(client, theirs, foreign_post["id"])
    missing = "media_01930000-0000-7000-8000-000000000000"
    before = await stored(engine)
    answers = {}
    for media_id in (not_this_post, foreign, missing):
        details = refused(await update(client, mine, post["id"], expect=422,
                                       thread=[{"content": "See this", "media_ids": [media_id]}]))
        answers[media_id] = details
        assert details == {"thread.0": [f"media_ids not attached to this post: {media_id}"]}
    assert await stored(engine) == before
    refused(await create(client, mine, expect=422, content="New", platforms=["twitter"],
                         thread=[{"content": "See this", "media_ids": [foreign]}]))
    assert len(await stored(engine)) == 3


async def test_detail_shows_each_target_parts(client: Any, key: Any, engine: Any, clock: Any) -> None:
    post = (await create(client, key, content="Hello", platforms=["twitter", "linkedin"], thread=THREAD,
                         thread_mode="first_comment", first_comment="Thanks"))["data"]["post"]
    async with engine.begin() as conn:
        targets = {r.network: r.id for r in await conn.execute(
            sa.select(post_targets.c.id, post_targets.c.network).where(post_targets.c.post_id == post["id"]))}
        now = clock.now()
        common = {"post_id": post["id"], "workspace_id": key.workspace_id, "attempts": 1, "created_at": now,
                  "updated_at": now, "remote_id": None, "remote_url": None, "published_at": None,
                  "error_code": None, "error_message": None}
        await conn.execute(post_target_parts.insert(), [
            {**common, "id": "part_1", "target_id": targets["twitter"], "seq": 1, "source": "first_comment",
             "source_index": None, "kind": "comment", "status": "published", "remote_id": "1901",
             "remote_url": "https://x.com/i/status/1901", "published_at": now},
            {**common, "id": "part_2", "target_id": targets["twitter"], "seq": 2, "source": "thread",
             "source_index": 0, "kind": "reply", "status": "failed", "error_code": "RATE_LIMITED",
             "error_message": "Too many requests"},
            {**common, "id": "part_3", "target_id": targets["twitter"], "seq": 3, "source": "thread",
             "source_index": 1, "kind": "reply", "status": "pending", "attempts": 0},
        ])
    spec = Spec(await (await client.get("/openapi.json")).json())
    url = f"/api/posts/{post['id']}"
    detail = (await spec.check("GET", url, await client.get(url, headers=key.headers()), 200))["data"]["post"]
    by_network = {p["platform"]: p["parts"] for p in detail["platform_posts"]}
    assert by_network["linkedin"] == []
    assert by_network["twitter"] == [
        {"source": "first_comment", "index": None, "kind": "comment", "status": "published", "post_id": "1901",
         "url": "https://x.com/i/status/1901", "published_at": isoformat(now), "error": None},
        {"source": "thread", "index": 0, "kind": "reply", "status": "failed", "post_id": None, "url": None,
         "published_at": None, "error": {"code": "RATE_LIMITED", "message": "Too many requests"}},
        {"source": "thread", "index": 1, "kind": "reply", "status": "pending", "post_id": None, "url": None,
         "published_at": None, "error": None},
    ]


async def test_the_document_describes_the_request_fields_and_the_answers(client: Any, key: Any) -> None:
    spec = Spec(await (await client.get("/openapi.json")).json())
    body = spec.document["paths"]["/api/posts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = spec.document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["properties"]
    assert {"thread", "thread_mode", "first_comment"} <= set(fields)
    assert fields["thread"]["maxItems"] == 25 and fields["first_comment"]["maxLength"] == 10_000
    resp = await client.post("/api/posts", headers=key.headers(), json={
        "content": "Hello", "platforms": ["twitter", "linkedin"], "thread": THREAD, "thread_mode": "first_comment",
        "first_comment": "Thanks"})
    await spec.check("POST", "/api/posts", resp, 201)
    refused = await client.post("/api/posts", headers=key.headers(), json={
        "content": "Hello", "platforms": ["pinterest"], "first_comment": "Thanks"})
    await spec.check("POST", "/api/posts", refused, 422)


async def test_the_post_own_media_exclude_the_thread_part_media(client: Any, key: Any, engine: Any) -> None:
    post = (await create(client, key, content="Four pictures, then one more", platforms=["twitter"],
                         thread=THREAD))["data"]["post"]
    ids = await attach(client, key, post["id"], 4)
    # The fifth picture goes with the second part: the post itself keeps four, X's most.
    await update(client, key, post["id"], thread=[THREAD[0], {"content": "And one more", "media_ids": ids[3:]}])
    ids += await attach(client, key, post["id"])
    await update(client, key, post["id"], content="Four pictures, then one more, shown")
    # Without the thread the post would carry all five: refused, nothing changes.
    before = await stored(engine)
    details = refused(await update(client, key, post["id"], expect=422, thread=None))
    assert details == {"twitter": ["5 images, Twitter/X allows at most 4"]}
    assert await stored(engine) == before
    # A sixth upload would be a fifth for the post itself.
    body = aiohttp.FormData()
    body.add_field("file", io.BytesIO(png_bytes(64, 64)), filename="square.png", content_type="image/png")
    resp = await client.post(f"/api/posts/{post['id']}/media", data=body, headers=key.headers())
    assert resp.status == 422 and "twitter" in refused(await resp.json())


# --- CSV import and export -------------------------------------------------------------------------


def csv_form(data: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("file", io.BytesIO(data.encode()), filename="posts.csv", content_type="text/csv")
    return body


async def import_csv(client: Any, key: Any, data: str, *, query: str = "", expect: int = 201) -> dict[str, Any]:
    resp = await client.post(f"/api/posts/import{query}", data=csv_form(data), headers=key.headers())
    body = await resp.json()
    assert resp.status == expect, body
    return body


async def test_csv_rows_carry_their_first_comment(client: Any, key: Any, engine: Any) -> None:
    data = (
        "content,platforms,first_comment\n"
        'A launch,twitter|linkedin,"Questions? Ask below.\nWe answer all."\n'
        "No comment,linkedin,\n"
        "Blank comment,linkedin,   \n"
    )
    body = (await import_csv(client, key, data))["data"]
    assert (body["created"], body["drafts"]) == (3, 3)
    comments = {r["content"]: r["first_comment"] for r in await stored(engine)}
    assert comments == {"A launch": "Questions? Ask below.\nWe answer all.", "No comment": None,
                        "Blank comment": None}
    launch = next(p for p in body["posts"] if p["line"] == 2)
    assert (await get(client, key, launch["id"]))["first_comment"] == "Questions? Ask below.\nWe answer all."


async def test_csv_first_comments_follow_the_api_rules_and_a_bad_row_creates_nothing(
    client: Any, key: Any, engine: Any,
) -> None:
    data = (
        "content,platforms,first_comment\n"
        "Fine,linkedin,Thanks\n"                        # 2: fine
        f"Long,linkedin,{'c' * 1251}\n"                 # 3: over LinkedIn's 1,250
        "Video,tiktok|twitter,Thanks\n"                 # 4: no comments on TikTok
        f"Huge,twitter,{'c' * 10_001}\n"               # 5: over the API's 10,000
    )
    error = (await import_csv(client, key, data, expect=422))["error"]
    assert error["code"] == "VALIDATION_ERROR"
    rows = {r["line"]: r["fields"] for r in error["details"]["rows"]}
    assert rows == {
        3: {"first_comment": ["1251 of 1250 characters in a comment (LinkedIn counts characters)"]},
        4: {"first_comment": ["A first comment cannot be left on tiktok (there are no comments there): remove "
                              "first_comment or those networks"]},
        5: {"first_comment": ["Longer than maximum length 10000."]},
    }
    assert await stored(engine) == []
    dry = (await import_csv(client, key, "content,platforms,first_comment\nFine,linkedin,Thanks\n",
                            query="?dry_run=1", expect=200))["data"]
    assert (dry["dry_run"], dry["drafts"]) == (True, 1)
    assert await stored(engine) == []


async def test_csv_export_shows_the_first_comment(client: Any, key: Any) -> None:
    await import_csv(client, key, "content,platforms,first_comment\nA launch,twitter|linkedin,=Thanks\n")
    resp = await client.get("/api/posts/export?format=csv", headers=key.headers())
    lines = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(line["network"], line["first_comment"]) for line in lines] == [
        ("twitter", "'=Thanks"), ("linkedin", "'=Thanks")]


# --- the README ------------------------------------------------------------------------------------


async def test_the_readme_example_creates_the_post_it_describes(client: Any, key: Any) -> None:
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S) if "thread_mode" in b]
    assert len(blocks) == 1
    (body,) = re.findall(r"-d '(\{.*\})'", blocks[0])
    post = (await create(client, key, **json.loads(body)))["data"]["post"]
    assert post["platforms"] == ["twitter", "linkedin"] and len(post["thread"]) == 2
    assert post["thread_mode"] == "first_comment" and post["first_comment"]


# --- scheduling re-validates ---------------------------------------------------------------------


async def test_scheduling_counts_the_post_own_media_without_the_thread_media(client: Any, key: Any) -> None:
    resp = await client.post("/api/accounts", headers=key.headers(), json={
        "platform": "bluesky", "identifier": "alice.bsky.social", "app_password": "abcd-efgh-ijkl-mnop"})
    assert resp.status == 201, await resp.text()
    post = (await create(client, key, content="Four pictures, then one more", platforms=["bluesky"],
                         thread=THREAD))["data"]["post"]
    ids = await attach(client, key, post["id"], 4)
    await update(client, key, post["id"], thread=[THREAD[0], {"content": "And one more", "media_ids": ids[3:]}])
    await attach(client, key, post["id"])
    resp = await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                             json={"scheduled_at": "2031-01-25T09:00:00Z"})
    assert resp.status == 200, await resp.text()
