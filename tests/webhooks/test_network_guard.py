"""Calls to the real networks go through the deliveries' guard: a network host (a Mastodon server a
user named) that resolves to this machine or its network is never connected to, whenever it is
resolved. Calls to the sandbox or to OUIPOST_PLATFORM_BASE_URL are not guarded (they are local)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ouipost.app import create_app
from ouipost.core.clock import Clock
from ouipost.http.context import PLATFORM_HTTP
from ouipost.platforms.base import RetryableError
from ouipost.webhooks.service import GuardedConnector, UnsafeTargetError, network_session
from workers.resources import worker_resources


@pytest.fixture
async def local_server(aiohttp_server: Any) -> str:
    async def instance(request: web.Request) -> web.Response:
        return web.json_response({"domain": "evil.example"})

    app = web.Application()
    app.router.add_get("/api/v2/instance", instance)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}"


async def test_a_guarded_session_never_connects_to_a_private_address(local_server: str) -> None:
    async with network_session(guarded=True, allow_private=False) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"{local_server}/api/v2/instance")
    assert isinstance(info.value.os_error, UnsafeTargetError)
    allowed = network_session(guarded=True, allow_private=True)  # OUIPOST_WEBHOOK_ALLOW_PRIVATE
    async with allowed as session, session.get(f"{local_server}/api/v2/instance") as resp:
        assert resp.status == 200


async def test_the_apps_network_calls_are_guarded_without_a_sandbox(
    aiohttp_client: Any, settings: Any, engine: Any, local_server: str,
) -> None:
    real = settings.with_overrides(sandbox=False, platform_base_url=None, webhook_allow_private=False)
    client = await aiohttp_client(create_app(real, engine=engine))
    http = client.app[PLATFORM_HTTP]
    assert isinstance(http.session.connector, GuardedConnector)
    with pytest.raises(RetryableError) as info:
        await http.request("GET", f"{local_server}/api/v2/instance", network="mastodon")
    assert "private or reserved" in str(info.value)


async def test_sandbox_calls_and_worker_sessions_follow_the_same_rule(settings: Any, engine: Any) -> None:
    async with worker_resources(settings, engine, Clock()) as resources:  # the sandbox: local, unguarded
        assert not isinstance(resources.http.connector, GuardedConnector)
    real = settings.with_overrides(sandbox=False, platform_base_url=None, webhook_allow_private=False)
    async with worker_resources(real, engine, Clock()) as resources:
        assert isinstance(resources.http.connector, GuardedConnector)
