"""Posts over HTTP: drafts that obey every network's rules, filters, updates, deletion, idempotency."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ouipost.db.tables import posts
from ouipost.platforms.registry import PLATFORMS

BLUESKY = {"platform": "bluesky", "identifier": "alice.bsky.social", "app_password": "abcd-efgh-ijkl-mnop"}


async def create(client: Any, key: Any, expect: int = 201, headers: dict | None = None, **body: Any) -> dict:
    resp = await client.post("/api/posts", json=body, headers={**key.headers(), **(headers or {})})
    assert resp.status == expect, await resp.text()
    return await resp.json()


async def count_posts(engine: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(posts)))


async def set_status(engine: Any, post_id: str, status: str) -> None:
    # Publishing arrives with the queue; until then a published post is made by its row.
    async with engine.begin() as conn:
        await conn.execute(posts.update().where(posts.c.id == post_id).values(status=status))


async def test_create_answers_201_with_the_draft(client: Any, key: Any) -> None:
    body = await create(
        client, key, content="Excited to announce our new product line!", platforms=["facebook", "twitter", "linkedin"],
        link="https://example.com/products", hashtags=["newproduct", "#launch", "#NewProduct"],
    )
    post = body["data"]["post"]
    assert post["id"].startswith("post_") and post["status"] == "draft"
    assert post["platforms"] == ["facebook", "twitter", "linkedin"]
    assert post["hashtags"] == ["#newproduct", "#launch"]
    assert post["link"] == "https://example.com/products"
    assert post["created_at"].endswith("Z") and post["scheduled_at"] is None


async def test_account_ids_of_the_workspace_are_targets(client: Any, key: Any) -> None:
    resp = await client.post("/api/accounts", json=BLUESKY, headers=key.headers())
    account = (await resp.json())["data"]["account"]
    post = (await create(client, key, content="hi", platforms=[account["id"], "twitter"]))["data"]["post"]
    assert post["platforms"] == [account["id"], "twitter"]


async def test_account_of_another_workspace_is_refused_like_an_unknown_one(client: Any, make_key: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    resp = await client.post("/api/accounts", json=BLUESKY, headers=theirs.headers())
    foreign = (await resp.json())["data"]["account"]["id"]
    body = await create(client, mine, expect=422, content="hi", platforms=[foreign])
    missing = "acc_01930000-0000-7000-8000-000000000000"
    unknown = await create(client, mine, expect=422, content="hi", platforms=[missing])
    assert body["error"]["details"]["platforms"] == [f"Unknown account {foreign}"]
    assert unknown["error"]["details"]["platforms"][0].startswith("Unknown account")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platforms": ["twitter"]}, "content"),
        ({"content": "   \n ", "platforms": ["twitter"]}, "content"),
        ({"content": "hi"}, "platforms"),
        ({"content": "hi", "platforms": []}, "platforms"),
        ({"content": "hi", "platforms": ["myspace"]}, "platforms"),
        ({"content": "hi", "platforms": "twitter"}, "platforms"),
        ({"content": 42, "platforms": ["twitter"]}, "content"),
        ({"content": "hi", "platforms": ["twitter"], "hashtags": ["two words"]}, "hashtags"),
        ({"content": "hi", "platforms": ["twitter"], "link": "ftp://example.com/file"}, "link"),
        ({"content": "hi", "platforms": ["twitter"], "link": "not a url"}, "link"),
        ({"content": "hi", "platforms": ["twitter"], "platform_content": {"facebook": {"content": "x"}}}, "facebook"),
        ({"content": "hi", "platforms": ["twitter"], "platform_content": {"twitter": {"colour": "x"}}},
         "platform_content"),
        ({"content": "hi", "platforms": ["twitter"], "status": "published"}, "status"),
    ],
)
async def test_invalid_posts_are_422_and_nothing_is_created(
    client: Any, key: Any, engine: Any, body: dict, field: str
) -> None:
    error = (await create(client, key, expect=422, **body))["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"], error
    assert await count_posts(engine) == 0


# Mastodon's limit is its server's: validate, schedule and publish check it once the account is known.
@pytest.mark.parametrize("network", [n for n, spec in PLATFORMS.items() if not spec.instance_based])
async def test_each_network_text_limit_at_and_over_the_limit(client: Any, key: Any, network: str) -> None:
    limit = PLATFORMS[network].max_characters
    await create(client, key, content="a" * limit, platforms=[network])
    error = (await create(client, key, expect=422, content="a" * (limit + 1), platforms=[network]))["error"]
    assert list(error["details"]) == [network]
    assert str(limit) in error["details"][network][0]


async def test_x_counts_urls_as_23_and_emoji_as_2(client: Any, key: Any) -> None:
    url = "https://example.com/" + "x" * 100
    await create(client, key, content="a" * (280 - 24) + " " + url, platforms=["twitter"])
    await create(client, key, expect=422, content="a" * (280 - 23) + " " + url, platforms=["twitter"])
    await create(client, key, content="😀" * 140, platforms=["twitter"])
    await create(client, key, expect=422, content="😀" * 141, platforms=["twitter"])


async def test_bluesky_counts_graphemes_a_family_emoji_is_one(client: Any, key: Any) -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"  # 7 code points, 25 UTF-8 bytes, one grapheme
    await create(client, key, content=family * 100 + "a" * 200, platforms=["bluesky"])  # 300 graphemes, 2,700 B
    error = (await create(client, key, expect=422, content=family * 100 + "a" * 201, platforms=["bluesky"]))["error"]
    assert "graphemes" in error["details"]["bluesky"][0]
    too_heavy = (await create(client, key, expect=422, content=family * 121, platforms=["bluesky"]))["error"]
    assert "bytes" in too_heavy["details"]["bluesky"][0]


async def test_hashtags_and_link_count_towards_the_limit(client: Any, key: Any) -> None:
    # Bluesky has no link field: "content\n\n#tag https://..." must fit in 300.
    link = "https://example.com/page"
    content = "a" * (300 - len("\n\n#tag ") - len(link))
    await create(client, key, content=content, hashtags=["tag"], link=link, platforms=["bluesky"])
    await create(client, key, expect=422, content=content + "a", hashtags=["tag"], link=link, platforms=["bluesky"])


async def test_platform_content_overrides_the_text_of_one_network(client: Any, key: Any) -> None:
    body = await create(client, key, content="a" * 400, platforms=["facebook", "twitter"],
                        platform_content={"twitter": {"content": "short for X", "hashtags": ["x"]}})
    assert body["data"]["post"]["platform_content"]["twitter"]["hashtags"] == ["#x"]
    await create(client, key, expect=422, content="short", platforms=["twitter"],
                 platform_content={"twitter": {"content": "a" * 281}})


async def test_validate_reports_without_saving(client: Any, key: Any, engine: Any) -> None:
    resp = await client.post("/api/posts/validate", headers=key.headers(),
                             json={"content": "a" * 290, "platforms": ["twitter", "instagram", "facebook"]})
    assert resp.status == 200
    report = (await resp.json())["data"]
    assert report["valid"] is False and report["ready_to_publish"] is False
    assert list(report["errors"]) == ["twitter"]
    assert "instagram" in report["publish_errors"]  # Instagram needs media, and no account is connected
    assert report["platforms"]["twitter"] == {
        "text": "a" * 290, "characters": 290, "max_characters": 280, "counting": "twitter",
    }
    assert await count_posts(engine) == 0


async def test_list_filters_paginates_and_orders_newest_first(client: Any, key: Any, engine: Any) -> None:
    ids = [(await create(client, key, content=f"post {i}", platforms=["twitter" if i % 2 else "linkedin"]))
           ["data"]["post"]["id"] for i in range(5)]
    await set_status(engine, ids[0], "published")
    listed = await (await client.get("/api/posts?limit=2", headers=key.headers())).json()
    assert [p["id"] for p in listed["data"]["posts"]] == [ids[4], ids[3]]
    assert listed["data"]["pagination"] == {"current_page": 1, "total_pages": 3, "total_items": 5, "per_page": 2}
    x_only = await (await client.get("/api/posts?platform=twitter", headers=key.headers())).json()
    assert {p["id"] for p in x_only["data"]["posts"]} == {ids[1], ids[3]}
    published = await (await client.get("/api/posts?status=published", headers=key.headers())).json()
    assert [p["id"] for p in published["data"]["posts"]] == [ids[0]]
    future = await (await client.get("/api/posts?from=2999-01-01T00:00:00Z", headers=key.headers())).json()
    assert future["data"]["posts"] == []
    past = await (await client.get("/api/posts?to=2000-01-01T00:00:00%2B02:00", headers=key.headers())).json()
    assert past["data"]["posts"] == []
    beyond = await (await client.get("/api/posts?page=7", headers=key.headers())).json()
    assert beyond["data"]["posts"] == [] and beyond["data"]["pagination"]["total_items"] == 5


@pytest.mark.parametrize(
    "query",
    ["status=gone", "platform=myspace", "from=yesterday", "from=2024-01-01", "limit=101",
     "from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z"],
)
async def test_bad_list_queries_are_422(client: Any, key: Any, query: str) -> None:
    resp = await client.get(f"/api/posts?{query}", headers=key.headers())
    assert resp.status == 422


async def test_get_shows_platform_posts_and_other_workspaces_see_nothing(client: Any, make_key: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    post = (await create(client, mine, content="hi", platforms=["twitter", "linkedin"]))["data"]["post"]
    got = await (await client.get(f"/api/posts/{post['id']}", headers=mine.headers())).json()
    assert [p["platform"] for p in got["data"]["post"]["platform_posts"]] == ["twitter", "linkedin"]
    assert {p["status"] for p in got["data"]["post"]["platform_posts"]} == {"pending"}
    for method, body in (("GET", None), ("PUT", {"content": "x"}), ("DELETE", None)):
        resp = await client.request(method, f"/api/posts/{post['id']}", json=body, headers=theirs.headers())
        assert resp.status == 404, method
    listed = await (await client.get("/api/posts", headers=theirs.headers())).json()
    assert listed["data"]["posts"] == []


async def test_update_changes_fields_and_rechecks_the_rules(client: Any, key: Any) -> None:
    post = (await create(client, key, content="a" * 300, platforms=["facebook"]))["data"]["post"]
    resp = await client.put(f"/api/posts/{post['id']}", headers=key.headers(),
                            json={"content": "Updated content", "platforms": ["facebook", "instagram"],
                                  "hashtags": ["#updated", "content"]})
    assert resp.status == 200
    updated = (await resp.json())["data"]["post"]
    assert (updated["content"], updated["platforms"], updated["hashtags"]) == (
        "Updated content", ["facebook", "instagram"], ["#updated", "#content"])
    refused = await client.put(f"/api/posts/{post['id']}", headers=key.headers(),
                               json={"content": "a" * 300, "platforms": ["twitter"]})
    assert refused.status == 422
    again = await (await client.get(f"/api/posts/{post['id']}", headers=key.headers())).json()
    assert again["data"]["post"]["content"] == "Updated content"


@pytest.mark.parametrize("status", ["publishing", "published", "partially_published", "failed"])
async def test_only_drafts_and_scheduled_posts_can_change(client: Any, key: Any, engine: Any, status: str) -> None:
    post = (await create(client, key, content="hi", platforms=["twitter"]))["data"]["post"]
    await set_status(engine, post["id"], status)
    resp = await client.put(f"/api/posts/{post['id']}", json={"content": "changed"}, headers=key.headers())
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "CONFLICT"


async def test_delete_a_draft_and_a_published_post(client: Any, key: Any, engine: Any) -> None:
    draft = (await create(client, key, content="draft", platforms=["twitter"]))["data"]["post"]
    done = (await create(client, key, content="done", platforms=["twitter"]))["data"]["post"]
    await set_status(engine, done["id"], "published")
    first = await (await client.delete(f"/api/posts/{draft['id']}", headers=key.headers())).json()
    assert first["data"] == {"message": "Post deleted successfully"}
    second = await (await client.delete(f"/api/posts/{done['id']}", headers=key.headers())).json()
    assert "remains on the social networks" in second["data"]["message"]
    assert await count_posts(engine) == 0
    assert (await client.get(f"/api/posts/{draft['id']}", headers=key.headers())).status == 404


async def test_idempotency_key_returns_the_first_answer_and_creates_once(client: Any, key: Any, engine: Any) -> None:
    headers = {"Idempotency-Key": "create-42"}
    first = await client.post("/api/posts", json={"content": "once", "platforms": ["twitter"]},
                              headers={**key.headers(), **headers})
    # the same JSON with other spacing and key order is the same body
    second = await client.post("/api/posts", data='{"platforms": ["twitter"],   "content": "once"}',
                               headers={**key.headers(), **headers})
    assert first.status == second.status == 201
    assert await first.json() == await second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert await count_posts(engine) == 1
    reused = await client.post("/api/posts", json={"content": "other", "platforms": ["twitter"]},
                               headers={**key.headers(), **headers})
    assert reused.status == 422
    assert (await reused.json())["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await count_posts(engine) == 1


async def test_idempotency_keys_belong_to_their_api_key(client: Any, make_key: Any, engine: Any) -> None:
    first, second = await make_key(), await make_key()
    for key in (first, second):
        resp = await client.post("/api/posts", json={"content": "x", "platforms": ["twitter"]},
                                 headers={**key.headers(), "Idempotency-Key": "same"})
        assert resp.status == 201
    assert await count_posts(engine) == 2


async def test_post_routes_need_the_workspace_header_and_permissions(client: Any, make_key: Any) -> None:
    key = await make_key(permissions=["posts.read"])
    resp = await client.get("/api/posts", headers={"X-API-Key": key.secret})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "WORKSPACE_REQUIRED"
    assert (await client.get("/api/posts", headers=key.headers())).status == 200
    denied = await client.post("/api/posts", json={"content": "x", "platforms": ["twitter"]}, headers=key.headers())
    assert denied.status == 403
