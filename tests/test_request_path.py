"""What one /api request costs the database: a read-only key lookup, one pool checkout for the routes
that share the key's connection, no count query for a full page; and the JSON it answers with."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.http.web import dumps, dumps_bytes


class Recorder:
    def __init__(self) -> None:
        self.checkouts = 0
        self.statements: list[str] = []

    def clear(self) -> None:
        self.checkouts = 0
        self.statements.clear()

    @property
    def writes(self) -> list[str]:
        return [s for s in self.statements if not s.lstrip().upper().startswith("SELECT")]


@pytest.fixture
def recorder(engine: AsyncEngine) -> Iterator[Recorder]:
    """Pool checkouts and statements of the test's engine (the one the app is given)."""
    seen = Recorder()

    def on_checkout(*_: Any) -> None:
        seen.checkouts += 1

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.statements.append(statement)

    sa.event.listen(engine.sync_engine.pool, "checkout", on_checkout)
    sa.event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    yield seen
    sa.event.remove(engine.sync_engine.pool, "checkout", on_checkout)
    sa.event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


async def _create(client: Any, key: Any, count: int) -> None:
    for index in range(count):
        resp = await client.post("/api/posts", json={"content": f"post {index}", "platforms": ["twitter"]},
                                 headers=key.headers())
        assert resp.status == 201


async def test_a_post_list_takes_one_checkout_and_writes_nothing(client: Any, key: Any, recorder: Recorder) -> None:
    await _create(client, key, 3)
    recorder.clear()
    resp = await client.get("/api/posts?limit=2", headers=key.headers())
    body = await resp.json()
    assert resp.status == 200 and body["data"]["pagination"]["total_items"] == 3
    assert recorder.checkouts == 1
    assert recorder.writes == []
    # key (with the workspace check), page with its total and its media; drafts have no insights to read
    assert len(recorder.statements) == 2


async def test_the_list_shows_each_posts_media_as_its_own_page_does(client: Any, key: Any) -> None:
    """The page and its media come in one statement: a post with two media is still one post, in
    its place, its media in the order GET /api/posts/{id} gives them; posts without media have none."""
    from tests.media_samples import png_bytes
    from tests.test_media_api import form, upload

    ids = []
    for index in range(4):
        resp = await client.post("/api/posts", json={"content": f"post {index}", "platforms": ["twitter"]},
                                 headers=key.headers())
        ids.append((await resp.json())["data"]["post"]["id"])
    for post_id, count in ((ids[1], 2), (ids[2], 1)):
        for n in range(count):
            image = form(png_bytes(20 + n, 10), "p.png", "image/png", alt_text=f"{n}")
            resp = await upload(client, key, post_id, image)
            assert resp.status == 201, await resp.text()
    newest_first = ids[::-1]
    singles = {}
    for post_id in ids:
        singles[post_id] = (await (await client.get(f"/api/posts/{post_id}", headers=key.headers())).json())
    for limit, page, expected in ((10, 1, newest_first), (2, 2, newest_first[2:]), (3, 1, newest_first[:3])):
        body = await (await client.get(f"/api/posts?limit={limit}&page={page}", headers=key.headers())).json()
        listed = body["data"]["posts"]
        assert [p["id"] for p in listed] == expected
        assert body["data"]["pagination"]["total_items"] == 4
        for post in listed:
            want = singles[post["id"]]["data"]["post"]["media"]
            assert [(m["id"], m["alt_text"]) for m in post["media"]] == [(m["id"], m["alt_text"]) for m in want]
    counts = {p["id"]: len(p["media"]) for p in
              (await (await client.get("/api/posts?status=draft&platform=twitter", headers=key.headers())).json())
              ["data"]["posts"]}
    assert counts == {ids[0]: 0, ids[1]: 2, ids[2]: 1, ids[3]: 0}


async def test_a_page_past_the_end_still_knows_the_total(client: Any, key: Any) -> None:
    await _create(client, key, 3)
    body = await (await client.get("/api/posts?limit=2&page=5", headers=key.headers())).json()
    assert body["data"]["posts"] == []
    assert body["data"]["pagination"] == {"current_page": 5, "total_pages": 2, "total_items": 3, "per_page": 2}


async def test_creating_a_post_takes_one_checkout(client: Any, key: Any, recorder: Recorder) -> None:
    resp = await client.post("/api/posts", json={"content": "one", "platforms": ["twitter"]}, headers=key.headers())
    assert resp.status == 201
    assert recorder.checkouts == 1
    assert not any("api_keys" in s.split("WHERE")[0] for s in recorder.writes)  # the key lookup writes nothing


async def test_an_idempotent_create_claims_its_key_on_connections_of_its_own(
    client: Any, key: Any, recorder: Recorder
) -> None:
    resp = await client.post("/api/posts", json={"content": "one", "platforms": ["twitter"]},
                             headers={**key.headers(), "Idempotency-Key": "k-1"})
    assert resp.status == 201
    assert recorder.checkouts > 1


async def test_a_refused_create_on_the_shared_connection_leaves_nothing(client: Any, key: Any) -> None:
    bad = await client.post("/api/posts", json={"content": "x" * 300, "platforms": ["twitter"]},
                            headers=key.headers())
    assert bad.status == 422
    listed = await (await client.get("/api/posts", headers=key.headers())).json()
    assert listed["data"]["pagination"]["total_items"] == 0


async def test_an_oversized_body_with_a_bad_key_is_still_401(client: Any) -> None:
    resp = await client.post("/api/posts", data=io.BytesIO(b"{" + b" " * (2 * 1024 * 1024) + b"}"),
                             headers={"X-API-Key": "pk_live_" + "x" * 32, "X-Workspace-ID": "ws_x",
                                      "Content-Type": "application/json"})
    assert resp.status == 401


def test_json_answers_keep_non_ascii_and_are_compact() -> None:
    data = {"text": "déjà vu ✓ 🎉 \u2028", "n": [1, 2.5, None, True], "nested": {"a": {}}}
    assert dumps(data) == json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    assert dumps_bytes(data) == dumps(data).encode()


def test_json_beyond_what_orjson_takes_matches_the_json_module() -> None:
    for data in ({"big": 2**70}, {1: "integer key"}):
        assert dumps(data) == json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def test_json_columns_read_as_the_json_module_reads_them() -> None:
    """JSON columns are parsed by orjson where it gives the same value, by json.loads where it would not."""
    from ouipost.db.engine import json_loads

    texts = ['{"a": [1, 2.5, "\\u00e9", null, true]}', '"d\\u00e9j\\u00e0"', "NaN", "[Infinity, -Infinity]",
             "[1e400]", "123456789012345678901234567890", "[18446744073709551615, -9223372036854775808]",
             '"\\ud800"', '{"a": 1, "a": 2}', "-0", "-0.0", "[0.1, 5e-324, 1.7976931348623157e308]"]
    for text in texts:
        ours, theirs = json_loads(text), json.loads(text)
        assert repr(ours) == repr(theirs) and type(ours) is type(theirs), text


async def test_json_columns_round_trip_through_the_database(engine: AsyncEngine) -> None:
    """A value the API could store reads back equal, big integers included (orjson would make them floats)."""
    from ouipost.db.tables import metadata

    table = sa.Table("json_probe", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("v", sa.JSON))
    assert "json_probe" not in metadata.tables
    value = {"big": 123456789012345678901234567890, "text": "déjà vu ✓", "list": [1, 2.5, None]}
    async with engine.begin() as conn:
        await conn.run_sync(table.create)
        try:
            await conn.execute(table.insert().values(id=1, v=value))
            assert (await conn.scalar(sa.select(table.c.v))) == value
        finally:
            await conn.run_sync(table.drop)
