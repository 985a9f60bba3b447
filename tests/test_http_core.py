"""The envelope and request plumbing every answer shares."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web

from ouipost.app import create_app
from ouipost.config import load_settings
from ouipost.db.engine import create_engine
from tests.conftest import make_env


async def test_unknown_route_answers_404_in_the_envelope(client: Any) -> None:
    resp = await client.get("/no/such/route")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert await resp.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "No such route", "details": {}},
    }


async def test_wrong_method_answers_405_with_allowed_methods(client: Any, key: Any) -> None:
    resp = await client.delete("/api/platforms", headers=key.headers())
    assert resp.status == 405
    body = await resp.json()
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in body["error"]["details"]["allowed"]
    assert "GET" in resp.headers["Allow"]


async def test_malformed_json_is_invalid_json(client: Any, key: Any) -> None:
    resp = await client.post("/api/workspaces", data=b'{"name": ', headers=key.headers())
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "INVALID_JSON"


async def test_empty_body_is_invalid_json(client: Any, key: Any) -> None:
    resp = await client.post("/api/workspaces", data=b"", headers=key.headers())
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "INVALID_JSON"


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
async def test_json_that_is_not_an_object_is_a_validation_error(client: Any, key: Any, body: bytes) -> None:
    resp = await client.post("/api/workspaces", data=body, headers=key.headers())
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "VALIDATION_ERROR"


async def test_body_over_the_json_cap_is_413_and_creates_nothing(
    aiohttp_client: Any, database_url: str, engine: Any, tmp_path: Any, make_key: Any
) -> None:
    settings = load_settings(make_env(database_url, tmp_path / "d", OUIPOST_MAX_JSON_KB="1"))
    client = await aiohttp_client(create_app(settings, engine=engine))
    key = await make_key()
    big = '{"name": "big", "description": "' + "x" * 2048 + '"}'
    resp = await client.post("/api/workspaces", data=big, headers=key.headers())
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    listed = await (await client.get("/api/workspaces", headers=key.headers())).json()
    assert [w["name"] for w in listed["data"]["workspaces"]] == ["Test workspace"]


async def test_unexpected_error_is_500_without_internals_and_logged_with_request_id(
    aiohttp_client: Any, settings: Any, engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail")

    app = create_app(settings, engine=engine)
    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR, logger="ouipost.http"):
        resp = await client.get("/boom", headers={"X-Request-ID": "trace-42"})
    assert resp.status == 500
    body = await resp.json()
    assert body["error"] == {"code": "INTERNAL_ERROR", "message": "Something went wrong on our side", "details": {}}
    assert "secret internal detail" not in await resp.text()
    assert resp.headers["X-Request-ID"] == "trace-42"
    assert any("trace-42" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_request_id_is_echoed_when_sane_and_replaced_otherwise(client: Any) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    for bad in ("x" * 129, "has space", "<script>"):
        resp = await client.get("/healthz", headers={"X-Request-ID": bad})
        assert resp.headers["X-Request-ID"].startswith("req_")
    fresh = await client.get("/no/such/route")
    assert fresh.headers["X-Request-ID"].startswith("req_")


async def test_healthz_answers_200_when_the_database_answers(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["data"]["status"] == "ok"


async def test_healthz_answers_503_when_the_database_is_down(aiohttp_client: Any, settings: Any, tmp_path: Any) -> None:
    unreachable = tmp_path / "not-a-file"
    unreachable.mkdir()  # a directory cannot be opened as an SQLite database
    engine = create_engine(f"sqlite+aiosqlite:///{unreachable}")
    client = await aiohttp_client(create_app(settings, engine=engine))
    resp = await client.get("/healthz")
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "SERVICE_UNAVAILABLE"
    await engine.dispose()
