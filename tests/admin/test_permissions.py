"""The permission matrix: each role against each admin endpoint.

| endpoint                                   | needs            | admin | editor | viewer |
|--------------------------------------------|------------------|-------|--------|--------|
| POST /admin/logout, GET /admin/profile     | a valid token    |  yes  |  yes   |  yes   |
| /admin/users...                            | users.manage     |  yes  |  no    |  no    |
| /admin/keys...                             | api_keys.manage  |  yes  |  no    |  no    |
| /admin/webhooks...                         | webhooks.manage  |  yes  |  no    |  no    |
| GET /admin/audit                           | audit.view       |  yes  |  no    |  no    |
| GET /admin/dashboard, /stats, /platform-health | analytics.view |  yes  |  yes   |  yes   |
| GET /admin/health, /admin/system           | the admin role   |  yes  |  no    |  no    |
"""

from __future__ import annotations

from typing import Any

import pytest

from ouipost.identity.users import ROLE_PERMISSIONS

EXPECTED: dict[tuple[str, str], tuple[str | None, str | None]] = {
    ("POST", "/admin/logout"): (None, None),
    ("GET", "/admin/profile"): (None, None),
    ("GET", "/admin/users"): ("users.manage", None),
    ("POST", "/admin/users"): ("users.manage", None),
    ("PUT", "/admin/users/{id}"): ("users.manage", None),
    ("DELETE", "/admin/users/{id}"): ("users.manage", None),
    ("GET", "/admin/keys"): ("api_keys.manage", None),
    ("POST", "/admin/keys"): ("api_keys.manage", None),
    ("PUT", "/admin/keys/{id}"): ("api_keys.manage", None),
    ("DELETE", "/admin/keys/{id}"): ("api_keys.manage", None),
    ("POST", "/admin/keys/{id}/rotate"): ("api_keys.manage", None),
    ("GET", "/admin/webhooks"): ("webhooks.manage", None),
    ("POST", "/admin/webhooks"): ("webhooks.manage", None),
    ("PUT", "/admin/webhooks/{id}"): ("webhooks.manage", None),
    ("DELETE", "/admin/webhooks/{id}"): ("webhooks.manage", None),
    ("GET", "/admin/webhooks/{id}/deliveries"): ("webhooks.manage", None),
    ("POST", "/admin/webhooks/{id}/test"): ("webhooks.manage", None),
    ("GET", "/admin/audit"): ("audit.view", None),
    ("GET", "/admin/dashboard"): ("analytics.view", None),
    ("GET", "/admin/stats"): ("analytics.view", None),
    ("GET", "/admin/analytics"): ("analytics.view", None),
    ("GET", "/admin/platform-health"): ("analytics.view", None),
    ("GET", "/admin/health"): (None, "admin"),
    ("GET", "/admin/system"): (None, "admin"),
}


def _admin_routes(app: Any) -> dict[tuple[str, str], Any]:
    found = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/admin") and route.method not in ("HEAD", "OPTIONS") and path != "/admin/login":
            found[(route.method, path)] = route.handler
    return found


async def test_every_admin_route_is_guarded_as_the_matrix_says(client: Any) -> None:
    routes = _admin_routes(client.app)
    assert set(routes) == set(EXPECTED)
    for key, handler in routes.items():
        assert (handler.required_permission, handler.required_role) == EXPECTED[key], key


@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
async def test_each_role_against_each_endpoint(client: Any, sign_in: Any, role: str) -> None:
    if role != "admin":
        await sign_in("admin")  # so that the last-admin rule never decides the answers below
    session = await sign_in(role)
    granted = set(ROLE_PERMISSIONS[role])
    ordered = sorted(EXPECTED, key=lambda k: k == ("POST", "/admin/logout"))  # logout last: it ends the token
    for method, path in ordered:
        permission, needed_role = EXPECTED[(method, path)]
        allowed = (permission is None or permission in granted) and (needed_role is None or needed_role == role)
        url = path.replace("{id}", "missing_id")
        resp = await client.request(method, url, json={} if method in ("POST", "PUT") else None,
                                    headers=session.headers)
        if allowed:
            assert resp.status not in (401, 403), (role, method, path, await resp.text())
        else:
            assert resp.status == 403, (role, method, path, resp.status)
            assert (await resp.json())["error"]["code"] == "FORBIDDEN"


async def test_without_a_token_every_admin_endpoint_is_401(client: Any) -> None:
    for method, path in EXPECTED:
        resp = await client.request(method, path.replace("{id}", "x"), json={})
        assert resp.status == 401, (method, path)
