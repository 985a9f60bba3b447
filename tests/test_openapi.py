"""The OpenAPI document: every route in it, valid OpenAPI 3.1, and real answers that match it; /docs
served offline."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.identity import users
from ouipost.openapi.docs import openapi_document
from tests.conftest import Key

PASSWORD = "correct horse battery staple"
SKIPPED_PREFIXES = ("/ui", "/sandbox", "/media/", "/docs", "/openapi.json", "/metrics")


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class Spec:
    """The served document, and a check of an answer against it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry = Registry().with_resource(
            "urn:ouipost:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self.checked: set[tuple[str, str, int]] = set()

    def operation_of(self, method: str, url: str) -> tuple[str, dict[str, Any]]:
        """The documented path template matching `url` and its operation."""
        path = url.split("?", 1)[0]
        for template, operations in self.document["paths"].items():
            pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
            if re.fullmatch(pattern, path) and method.lower() in operations:
                return template, operations[method.lower()]
        raise AssertionError(f"{method} {path} is not in the document")

    async def check(self, method: str, url: str, resp: Any, expected: int | None = None) -> dict[str, Any]:
        """Assert that `resp` (status, headers, JSON body) is one the document allows for `url`."""
        body = await resp.json()
        if expected is not None:
            assert resp.status == expected, body
        template, operation = self.operation_of(method, url)
        responses = operation["responses"]
        assert str(resp.status) in responses, f"{method} {template} answered {resp.status}, undocumented: {body}"
        answer = responses[str(resp.status)]
        ref = "urn:ouipost:openapi#/" + _pointer(
            "paths", template, method.lower(), "responses", str(resp.status), "content", "application/json", "schema"
        )
        errors = sorted(Draft202012Validator({"$ref": ref}, registry=self.registry).iter_errors(body),
                        key=lambda e: list(e.absolute_path))
        assert not errors, f"{method} {template} {resp.status}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
        )
        for name, header in answer.get("headers", {}).items():
            header = self._resolve(header)
            if header.get("required"):
                assert name in resp.headers, f"{method} {template} {resp.status} lacks {name}"
        self.checked.add((method, template, resp.status))
        return body

    def _resolve(self, item: dict[str, Any]) -> dict[str, Any]:
        if "$ref" not in item:
            return item
        node: Any = self.document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node


@pytest.fixture
async def spec(client: TestClient) -> Spec:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return Spec(await resp.json())


@pytest.fixture
async def admin_headers(client: TestClient, engine: AsyncEngine, clock: Clock) -> dict[str, str]:
    async with engine.begin() as conn:
        await users.create_user(conn, email="docs@example.com", password=PASSWORD, name="Docs Admin", role="admin",
                                permissions=None, now=clock.now())
    resp = await client.post("/admin/login", json={"email": "docs@example.com", "password": PASSWORD})
    assert resp.status == 200
    return {"Authorization": f"Bearer {(await resp.json())['data']['token']}"}


def test_every_route_is_in_the_document(settings: Settings) -> None:
    app = create_app(settings)
    document = openapi_document(app)
    registered = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or path.startswith(SKIPPED_PREFIXES) or path == "/":
            continue
        assert path.startswith(("/api/", "/admin/")) or path == "/healthz", f"unexpected route {path}"
        registered.add((route.method.lower(), path))
    documented = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert registered - documented == set(), "routes missing from the document"
    assert documented - registered == set(), "operations that no route serves"
    assert len(documented) >= 57


def test_the_document_is_valid_openapi_3_1(settings: Settings) -> None:
    document = openapi_document(create_app(settings))
    assert document["openapi"].startswith("3.1")
    validate(document)
    operation_ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_routes_say_their_security_workspace_header_and_idempotency(settings: Settings) -> None:
    paths = openapi_document(create_app(settings))["paths"]
    create_post = paths["/api/posts"]["post"]
    assert create_post["security"] == [{"ApiKey": []}]
    refs = [p.get("$ref") for p in create_post["parameters"]]
    assert "#/components/parameters/WorkspaceId" in refs and "#/components/parameters/IdempotencyKey" in refs
    assert {"201", "400", "401", "403", "404", "409", "413", "422", "429", "503"} <= set(create_post["responses"])
    assert set(create_post["responses"]["201"]["headers"]) >= {"X-RateLimit-Limit", "X-RateLimit-Remaining",
                                                              "X-RateLimit-Reset", "X-Request-ID"}
    upload = paths["/api/posts/{id}/media"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"413", "415"} <= set(upload["responses"])
    workspace = paths["/api/workspaces/{id}"]["get"]
    assert "#/components/parameters/WorkspaceId" not in [p.get("$ref") for p in workspace["parameters"]]
    assert paths["/admin/keys"]["get"]["security"] == [{"AdminToken": []}]
    assert paths["/admin/login"]["post"]["security"] == []
    assert paths["/healthz"]["get"]["security"] == []
    assert "Needs the `posts.write` permission." in create_post["description"]


def test_request_examples_match_their_body_schemas(settings: Settings) -> None:
    spec = Spec(openapi_document(create_app(settings)))
    examples = 0
    for path, operations in spec.document["paths"].items():
        for method, operation in operations.items():
            media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            if "example" not in media:
                continue
            ref = "urn:ouipost:openapi#/" + _pointer("paths", path, method, "requestBody", "content",
                                                       "application/json", "schema")
            errors = list(Draft202012Validator({"$ref": ref}, registry=spec.registry).iter_errors(media["example"]))
            assert not errors, f"{method} {path}: {[e.message for e in errors]}"
            examples += 1
    assert examples >= 5


async def test_the_documented_post_and_schedule_examples_are_accepted(
    client: TestClient, spec: Spec, key: Key,
) -> None:
    paths = spec.document["paths"]
    for url, path in (("/api/posts", "/api/posts"), ("/api/schedules", "/api/schedules")):
        example = paths[path]["post"]["requestBody"]["content"]["application/json"]["example"]
        resp = await client.post(url, json=example, headers=key.headers())
        await spec.check("POST", url, resp, 201)


async def test_api_answers_match_the_document(client: TestClient, spec: Spec, key: Key) -> None:
    headers = key.headers()

    async def call(method: str, url: str, expected: int, **kwargs: Any) -> dict[str, Any]:
        resp = await client.request(method, url, headers=kwargs.pop("headers", headers), **kwargs)
        return await spec.check(method, url, resp, expected)

    await call("GET", "/healthz", 200)
    await call("GET", "/api/platforms", 200)
    created = await call("POST", "/api/workspaces", 201,
                         json={"name": "Docs", "settings": {"timezone": "Europe/Paris"}})
    workspace_id = created["data"]["workspace"]["id"]
    await call("GET", "/api/workspaces", 200)
    await call("GET", f"/api/workspaces/{workspace_id}", 200)
    await call("PUT", f"/api/workspaces/{workspace_id}", 200, json={"description": "Described"})

    post = (await call("POST", "/api/posts", 201, json={
        "content": "Hello from the docs", "platforms": ["twitter", "bluesky"], "hashtags": ["docs"],
        "platform_content": {"twitter": {"content": "Hello X"}},
    }))["data"]["post"]
    await call("POST", "/api/posts", 201, json={"content": "Again", "platforms": ["linkedin"]},
               headers={**headers, "Idempotency-Key": "docs-1"})
    await call("GET", "/api/posts?limit=5&status=draft", 200)
    await call("GET", f"/api/posts/{post['id']}", 200)
    await call("PUT", f"/api/posts/{post['id']}", 200, json={"title": "A title"})
    await call("POST", "/api/posts/validate", 200, json={"content": "x" * 400, "platforms": ["twitter"]})
    await call("POST", f"/api/posts/{post['id']}/schedule", 422, json={"scheduled_at": "2099-01-01T10:00:00Z"})
    await call("POST", f"/api/posts/{post['id']}/unschedule", 409)
    await call("GET", f"/api/posts/{post['id']}/analytics", 200)
    await call("POST", f"/api/posts/{post['id']}/analytics/refresh", 409)
    await call("GET", "/api/analytics?granularity=week", 200)
    await call("DELETE", f"/api/posts/{post['id']}", 200)

    schedule = (await call("POST", "/api/schedules", 201, json={
        "name": "Weekdays", "timezone": "Europe/Paris",
        "slots": [{"day": "monday", "time": "09:00", "platforms": ["twitter"]}],
    }))["data"]["schedule"]
    await call("GET", "/api/schedules", 200)
    await call("GET", f"/api/schedules/{schedule['id']}", 200)
    await call("PUT", f"/api/schedules/{schedule['id']}", 200, json={"is_active": False})
    await call("DELETE", f"/api/schedules/{schedule['id']}", 200)
    await call("GET", "/api/accounts", 200)

    # Errors, in the envelope, each documented for its route.
    await call("POST", "/api/posts", 422, json={"content": "", "platforms": []})
    await call("POST", "/api/posts", 400, data=b"{not json", headers={**headers, "Content-Type": "application/json"})
    await call("GET", "/api/posts/post_00000000-0000-7000-8000-000000000000", 404)
    await call("GET", "/api/posts", 400, headers={"X-API-Key": key.secret})
    await call("GET", "/api/posts", 401, headers={"X-API-Key": "pk_live_nope"})
    await call("DELETE", f"/api/workspaces/{workspace_id}", 200)


async def test_api_forbidden_answer_matches_the_document(client: TestClient, spec: Spec, make_key: Any) -> None:
    reader = await make_key(permissions=["posts.read"])
    resp = await client.post("/api/posts", json={"content": "x", "platforms": ["twitter"]}, headers=reader.headers())
    await spec.check("POST", "/api/posts", resp, 403)


async def test_media_upload_answer_matches_the_document(client: TestClient, spec: Spec, key: Key) -> None:
    from tests.media_samples import png_bytes

    resp = await client.post("/api/posts", json={"content": "With a picture", "platforms": ["twitter"]},
                             headers=key.headers())
    post_id = (await resp.json())["data"]["post"]["id"]
    url = f"/api/posts/{post_id}/media"
    form = aiohttp.FormData()
    form.add_field("file", png_bytes(), filename="square.png", content_type="image/png")
    form.add_field("alt_text", "A square")
    resp = await client.post(url, data=form, headers=key.headers())
    media = (await spec.check("POST", url, resp, 201))["data"]["media"]
    resp = await client.post(url, data=b"plain", headers={**key.headers(), "Content-Type": "text/plain"})
    await spec.check("POST", url, resp, 415)
    resp = await client.delete(f"/api/media/{media['id']}", headers=key.headers())
    await spec.check("DELETE", f"/api/media/{media['id']}", resp, 200)


async def test_admin_answers_match_the_document(
    client: TestClient, spec: Spec, admin_headers: dict[str, str], key: Key,
) -> None:
    async def call(method: str, url: str, expected: int, **kwargs: Any) -> dict[str, Any]:
        resp = await client.request(method, url, headers=kwargs.pop("headers", admin_headers), **kwargs)
        return await spec.check(method, url, resp, expected)

    await call("POST", "/admin/login", 401, json={"email": "docs@example.com", "password": "wrong password"},
               headers={})
    await call("GET", "/admin/profile", 200)
    await call("GET", "/admin/keys", 200)
    new_key = (await call("POST", "/admin/keys", 201, json={
        "name": "docs", "permissions": ["posts.read"], "workspaces": [key.workspace_id],
    }))["data"]["key"]
    await call("PUT", f"/admin/keys/{new_key['id']}", 200, json={"tier": "professional"})
    await call("POST", f"/admin/keys/{new_key['id']}/rotate", 200)
    await call("DELETE", f"/admin/keys/{new_key['id']}", 200)
    await call("DELETE", f"/admin/keys/{new_key['id']}", 404)
    user = (await call("POST", "/admin/users", 201, json={
        "email": "editor@example.com", "name": "Ed", "password": PASSWORD, "role": "editor",
    }))["data"]["user"]
    await call("GET", "/admin/users?role=editor", 200)
    await call("PUT", f"/admin/users/{user['id']}", 200, json={"name": "Edith"})
    await call("DELETE", f"/admin/users/{user['id']}", 200)
    await call("GET", "/admin/webhooks", 200)
    await call("POST", "/admin/webhooks", 422, json={"url": "ftp://example.com", "events": ["nope"]})
    await call("GET", "/admin/audit?action=api_key.created", 200)
    await call("GET", "/admin/dashboard", 200)
    await call("GET", "/admin/stats", 200)
    await call("GET", "/admin/platform-health", 200)
    await call("GET", "/admin/system", 200)
    await call("GET", "/admin/analytics?period=7d", 200)
    await call("GET", "/admin/users", 422, params={"page": "0"})
    await call("GET", "/admin/keys", 401, headers={"Authorization": "Bearer nope"})
    health = await client.get("/admin/health", headers=admin_headers)
    await spec.check("GET", "/admin/health", health)
    await call("POST", "/admin/logout", 200)


async def test_admin_login_answer_matches_the_document(client: TestClient, spec: Spec, admin_headers: Any) -> None:
    resp = await client.post("/admin/login", json={"email": "docs@example.com", "password": PASSWORD})
    body = await spec.check("POST", "/admin/login", resp, 200)
    assert body["data"]["user"]["role"] == "admin"


async def test_docs_page_and_its_assets_are_served_offline(client: TestClient) -> None:
    resp = await client.get("/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert "<script>" not in page  # no inline script: every script is a file of the app
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "no external URL"
    assets = re.findall(r"(?:src|href)=\"([^\"]+)\"", page)
    assert len(assets) >= 5
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status == 200, asset
        assert len(await answer.read()) > 0
    init = await (await client.get("/docs/assets/docs-init.js")).text()
    assert '"/openapi.json"' in init and "http" not in init
