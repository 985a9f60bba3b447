"""The standalone sandbox's knobs set from another process: POST /_sandbox/settings."""

from __future__ import annotations

from typing import Any

import pytest

from ouipost.sandbox import Sandbox, create_sandbox_app


@pytest.fixture
async def control(aiohttp_client: Any) -> Any:
    sandbox = Sandbox()
    client = await aiohttp_client(create_sandbox_app(sandbox))
    client.sandbox = sandbox
    return client


async def test_settings_reach_the_network_state_its_module_reads(control: Any) -> None:
    resp = await control.post("/_sandbox/settings", json={"network": "instagram", "settings": {"publish_limit": 5000}})
    assert resp.status == 200
    assert control.sandbox.network_state("instagram")["publish_limit"] == 5000
    # A knob a module sets by default at start is replaced, the others are kept.
    await control.post("/_sandbox/settings", json={"network": "tiktok", "settings": {"inits_per_minute": 60}})
    state = control.sandbox.network_state("tiktok")
    assert state["inits_per_minute"] == 60 and state["processing_seconds"] == 0.05


async def test_x_per_user_limit_follows_its_setting(control: Any) -> None:
    token = control.sandbox.new_token("twitter", "u1", ["tweet.read", "tweet.write", "users.read"], 3600)
    await control.post("/_sandbox/settings", json={"network": "twitter", "settings": {"limits": {"users_me": 2}}})
    statuses = []
    for _ in range(3):
        resp = await control.get("/api.x.com/2/users/me", headers={"Authorization": f"Bearer {token}"})
        statuses.append((resp.status, resp.headers["x-rate-limit-limit"]))
    assert statuses == [(200, "2"), (200, "2"), (429, "2")]


@pytest.mark.parametrize("body", [
    {"network": "myspace", "settings": {"a": 1}},
    {"network": "tiktok", "settings": [1, 2]},
    {"network": "tiktok"},
])
async def test_bad_settings_are_refused_and_change_nothing(control: Any, body: dict[str, Any]) -> None:
    before = dict(control.sandbox.network_state("tiktok"))
    resp = await control.post("/_sandbox/settings", json=body)
    assert resp.status == 400 and "bad settings" in (await resp.json())["error"]
    assert dict(control.sandbox.network_state("tiktok")) == before


async def test_a_fault_with_after_lets_the_first_matching_requests_through(control: Any) -> None:
    token = control.sandbox.new_token("twitter", "u1", ["tweet.read", "tweet.write", "users.read"], 3600)
    resp = await control.post("/_sandbox/faults", json={"network": "twitter", "kind": "server_error",
                                                        "path_contains": "/2/users/me", "after": 2})
    assert resp.status == 201 and (await resp.json())["after"] == 2
    statuses = []
    for _ in range(4):
        resp = await control.get("/api.x.com/2/users/me", headers={"Authorization": f"Bearer {token}"})
        statuses.append(resp.status)
    assert statuses == [200, 200, 503, 200]  # the third only: a fault answers `count` (1) requests


async def test_a_negative_after_is_refused(control: Any) -> None:
    resp = await control.post("/_sandbox/faults", json={"network": "twitter", "kind": "server_error", "after": -1})
    assert resp.status == 400 and "after" in (await resp.json())["error"]
    assert control.sandbox.faults == []
