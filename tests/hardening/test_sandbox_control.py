"""The sandbox's control routes are closed on the API port unless asked for, then admin-only; its
request log never keeps a credential."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.identity import users
from ouipost.sandbox import Sandbox

PASSWORD = "correct horse battery staple"
CONTROL_ROUTES = [("GET", "/sandbox/_sandbox/requests"), ("GET", "/sandbox/_sandbox/publications"),
                  ("POST", "/sandbox/_sandbox/faults"), ("DELETE", "/sandbox/_sandbox/faults"),
                  ("POST", "/sandbox/_sandbox/reset"), ("POST", "/sandbox/_sandbox/clock")]


async def _token(client: Any, engine: AsyncEngine, role: str) -> str:
    async with engine.begin() as conn:
        await users.create_user(conn, email=f"{role}@example.com", password=PASSWORD, name=role, role=role,
                                now=Clock().now())
    resp = await client.post("/admin/login", json={"email": f"{role}@example.com", "password": PASSWORD})
    return (await resp.json())["data"]["token"]


async def test_control_routes_are_absent_from_the_api_port_by_default(client: Any, engine: AsyncEngine) -> None:
    admin = await _token(client, engine, "admin")
    for method, path in CONTROL_ROUTES:
        for headers in ({}, {"Authorization": f"Bearer {admin}"}):
            resp = await client.request(method, path, json={"network": "*", "kind": "server_error"}, headers=headers)
            assert resp.status == 404, (method, path)
    # The imitated networks themselves still answer there.
    assert (await client.get("/sandbox/graph.facebook.com/v25.0/me")).status != 404


async def test_enabled_control_routes_need_an_admin_token(
    aiohttp_client: Any, settings: Settings, engine: AsyncEngine
) -> None:
    client = await aiohttp_client(create_app(settings.with_overrides(sandbox_control=True), engine=engine))
    admin, editor = await _token(client, engine, "admin"), await _token(client, engine, "editor")
    for method, path in CONTROL_ROUTES:
        anonymous = await client.request(method, path, json={"advance": 0})
        assert anonymous.status == 401 and (await anonymous.json())["error"]["code"] == "UNAUTHORIZED"
        forged = await client.request(method, path, headers={"Authorization": "Bearer forged"}, json={"advance": 0})
        assert forged.status == 401
        refused = await client.request(method, path, headers={"Authorization": f"Bearer {editor}"})
        assert refused.status == 403 and (await refused.json())["error"]["code"] == "FORBIDDEN"
    listed = await client.get("/sandbox/_sandbox/requests", headers={"Authorization": f"Bearer {admin}"})
    assert listed.status == 200 and "requests" in await listed.json()


async def test_the_request_log_keeps_no_credentials(sandbox: Sandbox, sandbox_url: str) -> None:
    secrets = ["abcd-efgh-ijkl-mnop", "tok-bearer-123", "tok-query-456", "code-789", "verifier-000",
               "client-secret-111", "refresh-222"]
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox_url}/bsky.social/xrpc/com.atproto.server.createSession",
                        json={"identifier": "alice.bsky.social", "password": secrets[0]})
        await http.get(f"{sandbox_url}/graph.facebook.com/v25.0/me", params={"access_token": secrets[2]},
                       headers={"Authorization": f"Bearer {secrets[1]}"})
        await http.post(f"{sandbox_url}/api.twitter.com/2/oauth2/token", data={
            "grant_type": "authorization_code", "code": secrets[3], "code_verifier": secrets[4],
            "client_secret": secrets[5], "refresh_token": secrets[6], "redirect_uri": "https://x.example/cb",
        })
        log = await (await http.get(f"{sandbox_url}/_sandbox/requests")).text()  # the standalone sandbox: open
    recorded = json.dumps([asdict(r) for r in sandbox.requests])
    for secret in secrets:
        assert secret not in recorded and secret not in log
    login, me, token = sandbox.requests
    assert login.body == {"identifier": "alice.bsky.social", "password": "[redacted]"}
    assert me.authorization == "Bearer [redacted]" and me.query == {"access_token": "[redacted]"}
    assert token.body["grant_type"] == "authorization_code" and token.body["code_verifier"] == "[redacted]"
