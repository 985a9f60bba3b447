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

from ouipost.web import dumps, dumps_bytes


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
    # key (with the workspace check), page with its total, media; drafts have no insights to read
    assert len(recorder.statements) == 3


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
