"""The admin pages of the UI (/ui/admin/...): users, API keys, webhooks, audit log and system, through
the admin API's schemas and domain functions, with its audit entries; secrets shown once; roles,
CSRF and unknown resources."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from standardwebhooks import Webhook

from ouipost.config import Settings
from ouipost.db.admin_tables import audit_logs, webhook_deliveries
from ouipost.db.admin_tables import webhooks as webhooks_table
from ouipost.db.tables import api_keys as api_keys_table
from ouipost.db.tables import users as users_table
from ouipost.db.tables import workspace_members
from ouipost.identity import api_keys
from ouipost.identity.audit import Actor, record_audit
from tests.ui.conftest import PASSWORD, client_sign_in, make_workspace

_SECRET = re.compile(r'<code id="new-(?:key|secret)" class="secret-once">([^<]+)</code>')


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Webhook targets on 127.0.0.1 (the tests' own receiver) are allowed, as in a private install."""
    return settings.with_overrides(webhook_allow_private=True)


async def _audit(engine: Any, action: str | None = None) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        stmt = sa.select(audit_logs).order_by(audit_logs.c.created_at, audit_logs.c.id)
        if action:
            stmt = stmt.where(audit_logs.c.action == action)
        return [dict(r) for r in (await conn.execute(stmt)).mappings()]


async def _rows(engine: Any, table: sa.Table) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(table))).mappings()]


async def _workspace(engine: Any, clock: Any, name: str) -> dict[str, Any]:
    return await make_workspace(engine, clock, name)


def _secret(html: str) -> str:
    match = _SECRET.search(html)
    assert match, "no secret on the page"
    return match.group(1)


# ------------------------------------------------------------------------------------------------
# API keys


async def test_creating_a_key_shows_it_once_and_it_works_against_the_api(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    admin = await make_user("admin")
    ws = await _workspace(engine, clock, "Keyed")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    form = await (await client.get("/ui/admin/keys/new")).text()
    assert 'value="professional"' in form and 'value="posts.write"' in form and ws["id"] in form

    response = await client.post("/ui/admin/keys/new", data=[
        ("csrf_token", token), ("name", "Zapier"), ("tier", "professional"), ("permissions", "workspaces.read"),
        ("permissions", "posts.read"), ("workspaces", ws["id"]),
    ])
    html = await response.text()
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    secret = _secret(html)
    assert '<button type="button" class="button" data-copy="#new-key" hidden>Copy</button>' in html
    assert "shown only once" in html

    api = await client.get("/api/workspaces", headers={"X-API-Key": secret})
    assert api.status == 200
    assert [w["id"] for w in (await api.json())["data"]["workspaces"]] == [ws["id"]]

    [row] = await _rows(engine, api_keys_table)
    assert row["name"] == "Zapier" and row["tier"] == "professional"
    assert row["permissions"] == ["posts.read", "workspaces.read"]
    listing = await (await client.get("/ui/admin/keys")).text()
    assert "Zapier" in listing and secret not in listing
    assert secret[: api_keys.VISIBLE_PREFIX_LENGTH] in listing  # the prefix only
    [entry] = await _audit(engine, "api_key.created")
    assert entry["user_id"] == admin["id"] and entry["resource_id"] == row["id"]
    assert entry["details"] == {"key_name": "Zapier", "tier": "professional",
                                "permissions": ["posts.read", "workspaces.read"], "workspaces": [ws["id"]]}
    assert secret not in str(entry)


async def test_bad_key_input_keeps_the_values_shows_the_apis_messages_and_saves_nothing(
    client: Any, make_user: Any, engine: Any,
) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.post("/ui/admin/keys/new", data=[
        ("csrf_token", token), ("name", " "), ("tier", "starter"), ("permissions", "posts.read"),
        ("permissions", "posts.fly"),
    ])
    html = await response.text()
    assert response.status == 422
    assert "Length must be between 1 and 100." in html
    assert "Unknown value &#39;posts.fly&#39;; choose from" in html
    assert 'value="posts.read" checked' in html  # the boxes ticked stay ticked

    response = await client.post("/ui/admin/keys/new", data={"csrf_token": token, "name": "Kept name",
                                                              "tier": "platinum"})
    html = await response.text()
    assert response.status == 422
    assert "Unknown value &#39;platinum&#39;; choose from starter, professional, enterprise" in html
    assert 'value="Kept name"' in html

    response = await client.post("/ui/admin/keys/new", data={"csrf_token": token, "name": "Ghost",
                                                              "tier": "starter", "workspaces": "ws_missing"})
    assert response.status == 422
    assert "No workspace ws_missing" in await response.text()
    assert await _rows(engine, api_keys_table) == []
    assert await _audit(engine, "api_key.created") == []


async def test_editing_rotating_and_revoking_a_key(client: Any, make_user: Any, engine: Any, clock: Any) -> None:
    admin = await make_user("admin")
    await _workspace(engine, clock, "W")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    created = await client.post("/ui/admin/keys/new", data={"csrf_token": token, "name": "Old name", "tier": "starter",
                                                             "permissions": "workspaces.read"})
    first = _secret(await created.text())
    [row] = await _rows(engine, api_keys_table)

    edit = await (await client.get(f"/ui/admin/keys/{row['id']}/edit")).text()
    assert 'value="Old name"' in edit and 'name="is_active" value="on" checked' in edit
    response = await client.post(f"/ui/admin/keys/{row['id']}/edit", data={
        "csrf_token": token, "name": "New name", "tier": "enterprise", "permissions": "workspaces.read",
        "is_active": "on",
    }, allow_redirects=False)
    assert response.status == 303
    [row] = await _rows(engine, api_keys_table)
    assert row["name"] == "New name" and row["tier"] == "enterprise"
    [updated] = await _audit(engine, "api_key.updated")
    assert updated["details"]["changed"] == ["name", "tier"]

    confirm = await (await client.get(f"/ui/admin/keys/{row['id']}/rotate")).text()
    assert "24 hours" in confirm
    rotated = await client.post(f"/ui/admin/keys/{row['id']}/rotate", data={"csrf_token": token})
    html = await rotated.text()
    second = _secret(html)
    assert second != first and "keeps working for 24 hours" in html
    for secret in (first, second):  # the old key stays valid for 24 hours
        assert (await client.get("/api/workspaces", headers={"X-API-Key": secret})).status == 200
    assert len(await _audit(engine, "api_key.rotated")) == 1
    listing = await (await client.get("/ui/admin/keys")).text()
    assert first not in listing and second not in listing

    confirm = await (await client.get(f"/ui/admin/keys/{row['id']}/revoke")).text()
    assert "stops working at once" in confirm
    assert (await client.get("/api/workspaces", headers={"X-API-Key": second})).status == 200  # GET changed nothing
    response = await client.post(f"/ui/admin/keys/{row['id']}/revoke", data={"csrf_token": token},
                                 allow_redirects=False)
    assert response.status == 303
    assert (await client.get("/api/workspaces", headers={"X-API-Key": second})).status == 401
    [deleted] = await _audit(engine, "api_key.deleted")
    assert deleted["user_id"] == admin["id"] and deleted["details"] == {"key_name": "New name", "tier": "enterprise"}


async def test_an_unknown_key_is_not_found(client: Any, make_user: Any) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    for path in ("/ui/admin/keys/key_nope/edit", "/ui/admin/keys/key_nope/rotate", "/ui/admin/keys/key_nope/revoke"):
        assert (await client.get(path)).status == 404
        assert (await client.post(path, data={"csrf_token": token, "name": "x", "tier": "starter"})).status == 404


# ------------------------------------------------------------------------------------------------
# Webhooks


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Any:
    """A tiny endpoint that records what it receives."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append({"headers": dict(request.headers), "body": await request.text()})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    server.received = received
    server.hook_url = str(server.make_url("/hook"))
    return server


async def test_creating_a_webhook_shows_the_secret_once_and_the_test_ping_lands_in_its_log(
    client: Any, make_user: Any, engine: Any, receiver: Any,
) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.post("/ui/admin/webhooks/new", data=[
        ("csrf_token", token), ("url", receiver.hook_url), ("description", "Ops <alerts>"),
        ("events", "post.published"), ("events", "post.failed"),
    ])
    html = await response.text()
    assert response.status == 201
    secret = _secret(html)
    assert secret.startswith("whsec_") and 'data-copy="#new-secret" hidden' in html
    [row] = await _rows(engine, webhooks_table)
    assert row["events"] == ["post.published", "post.failed"] and row["description"] == "Ops <alerts>"
    [entry] = await _audit(engine, "webhook.created")
    assert entry["user_id"] == admin["id"] and entry["details"] == {"url": receiver.hook_url,
                                                                    "events": ["post.published", "post.failed"]}
    listing = await (await client.get("/ui/admin/webhooks")).text()
    assert secret not in listing and "Ops &lt;alerts&gt;" in listing
    assert f'action="/ui/admin/webhooks/{row["id"]}/test"' in listing

    ping = await client.post(f"/ui/admin/webhooks/{row['id']}/test", data={"csrf_token": token},
                             allow_redirects=False)
    assert ping.status == 303 and ping.headers["Location"] == f"/ui/admin/webhooks/{row['id']}/deliveries"
    log_page = await (await client.get(ping.headers["Location"])).text()
    assert "Test ping delivered: answered 200" in log_page
    assert "<code>webhook.test</code>" in log_page and "status-delivered" in log_page
    [request] = receiver.received
    Webhook(secret).verify(request["body"], request["headers"])  # signed with the secret shown once
    [delivery] = await _rows(engine, webhook_deliveries)
    assert delivery["status"] == "succeeded" and delivery["response_status"] == 200


async def test_a_failed_test_ping_says_why_and_shows_in_the_log(client: Any, make_user: Any, engine: Any) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    await client.post("/ui/admin/webhooks/new", data={"csrf_token": token, "url": "http://127.0.0.1:9/closed",
                                                       "events": "post.failed"})
    [row] = await _rows(engine, webhooks_table)
    response = await client.post(f"/ui/admin/webhooks/{row['id']}/test", data={"csrf_token": token})
    html = await response.text()
    assert "Test ping failed:" in html
    assert "status-failed" in html and "<code>webhook.test</code>" in html
    [delivery] = await _rows(engine, webhook_deliveries)
    assert delivery["status"] == "failed" and delivery["attempts"] == 1  # a test ping is not retried


async def test_bad_webhook_input_re_renders_with_the_apis_messages(client: Any, make_user: Any, engine: Any) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.post("/ui/admin/webhooks/new", data={"csrf_token": token, "url": "ftp://example.com/x"})
    html = await response.text()
    assert response.status == 422
    assert "Shorter than minimum length 1." in html  # no event chosen
    assert 'value="ftp://example.com/x"' in html
    response = await client.post("/ui/admin/webhooks/new", data={"csrf_token": token, "url": "ftp://example.com/x",
                                                                  "events": "post.failed"})
    html = await response.text()
    assert response.status == 422 and "The URL must use https or http" in html
    assert 'value="post.failed" checked' in html
    assert await _rows(engine, webhooks_table) == []


async def test_editing_and_deleting_a_webhook(client: Any, make_user: Any, engine: Any, receiver: Any) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    await client.post("/ui/admin/webhooks/new", data={"csrf_token": token, "url": receiver.hook_url,
                                                       "events": "post.failed"})
    [row] = await _rows(engine, webhooks_table)
    edit = await (await client.get(f"/ui/admin/webhooks/{row['id']}/edit")).text()
    assert f'value="{receiver.hook_url}"' in edit and "whsec_" not in edit
    response = await client.post(f"/ui/admin/webhooks/{row['id']}/edit", data=[
        ("csrf_token", token), ("url", receiver.hook_url), ("events", "post.failed"), ("events", "account.expired"),
    ], allow_redirects=False)  # the Active box unticked: disabled by an admin
    assert response.status == 303
    [row] = await _rows(engine, webhooks_table)
    assert row["events"] == ["post.failed", "account.expired"] and row["is_active"] is False
    [updated] = await _audit(engine, "webhook.updated")
    assert updated["details"]["changed"] == ["events", "is_active"]

    confirm = await client.get(f"/ui/admin/webhooks/{row['id']}/delete")
    assert "will receive no more events" in await confirm.text()
    response = await client.post(f"/ui/admin/webhooks/{row['id']}/delete", data={"csrf_token": token},
                                 allow_redirects=False)
    assert response.status == 303
    assert await _rows(engine, webhooks_table) == []
    assert len(await _audit(engine, "webhook.deleted")) == 1


# ------------------------------------------------------------------------------------------------
# Users


async def test_creating_a_user_with_a_role_permissions_and_workspaces(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    admin = await make_user("admin")
    ws = await _workspace(engine, clock, "Team")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.post("/ui/admin/users/new", data=[
        ("csrf_token", token), ("email", "New.Person@Example.com"), ("name", "New Person"),
        ("password", "a long enough password"), ("role", "editor"), ("custom_permissions", "on"),
        ("permissions", "posts.manage"), ("workspaces", ws["id"]),
    ], allow_redirects=False)
    assert response.status == 303, await response.text()
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(users_table).where(users_table.c.email == "new.person@example.com"))
               ).mappings().one()
        members = (await conn.execute(sa.select(workspace_members.c.workspace_id)
                                      .where(workspace_members.c.user_id == row["id"]))).scalars().all()
    assert row["role"] == "editor" and row["permissions"] == ["posts.manage"] and members == [ws["id"]]
    [entry] = await _audit(engine, "user.created")
    assert entry["user_id"] == admin["id"]
    assert entry["details"] == {"email": "new.person@example.com", "role": "editor", "workspaces": [ws["id"]]}
    listing = await (await client.get("/ui/admin/users")).text()
    assert "new.person@example.com" in listing and "Team" in listing


async def test_bad_user_input_and_a_taken_email_re_render_the_form(client: Any, make_user: Any, engine: Any) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.post("/ui/admin/users/new", data={
        "csrf_token": token, "email": "not-an-email", "name": "Someone", "password": "short", "role": "viewer",
    })
    html = await response.text()
    assert response.status == 422
    assert "Not a valid e-mail address" in html and "Use between 12 and 1024 characters" in html
    assert 'value="not-an-email"' in html and 'value="short"' not in html  # passwords are never echoed
    response = await client.post("/ui/admin/users/new", data={
        "csrf_token": token, "email": admin["email"], "name": "Twin", "password": "a long enough password",
        "role": "viewer",
    })
    assert response.status == 409
    assert "A user with this e-mail already exists" in await response.text()
    assert len(await _rows(engine, users_table)) == 1


async def test_the_last_active_admin_cannot_be_deactivated_demoted_or_deleted(
    client: Any, make_user: Any, engine: Any,
) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.post(f"/ui/admin/users/{admin['id']}/active", data={"csrf_token": token,
                                                                                "is_active": "0"})
    assert "Cannot demote or deactivate the last active admin" in await response.text()
    response = await client.post(f"/ui/admin/users/{admin['id']}/edit", data={
        "csrf_token": token, "email": admin["email"], "name": "Admin", "role": "viewer", "is_active": "on",
    })
    assert response.status == 409
    assert "Cannot demote or deactivate the last active admin" in await response.text()
    response = await client.post(f"/ui/admin/users/{admin['id']}/delete", data={"csrf_token": token})
    assert response.status == 409
    assert "Cannot delete the last active admin" in await response.text()
    [row] = await _rows(engine, users_table)
    assert row["role"] == "admin" and row["is_active"] is True
    assert await _audit(engine, "user.updated") == [] and await _audit(engine, "user.deleted") == []


async def test_deactivating_editing_and_deleting_another_user(client: Any, make_user: Any, engine: Any) -> None:
    admin = await make_user("admin")
    other = await make_user("viewer")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.post(f"/ui/admin/users/{other['id']}/active", data={"csrf_token": token,
                                                                                "is_active": "0"})
    assert "deactivated" in await response.text()
    [entry] = await _audit(engine, "user.updated")
    assert entry["details"] == {"changed": ["is_active"], "is_active": False}

    edit = await (await client.get(f"/ui/admin/users/{other['id']}/edit")).text()
    assert f'value="{other["email"]}"' in edit and 'type="password" value=""' in edit
    response = await client.post(f"/ui/admin/users/{other['id']}/edit", data={
        "csrf_token": token, "email": other["email"], "name": "Promoted", "role": "editor", "is_active": "on",
        "password": "",
    }, allow_redirects=False)
    assert response.status == 303
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(users_table).where(users_table.c.id == other["id"]))).mappings().one()
    assert row["role"] == "editor" and row["is_active"] is True and row["name"] == "Promoted"
    assert row["password_hash"] == other["password_hash"]  # a blank password changes nothing
    assert (await _audit(engine, "user.updated"))[-1]["details"]["role"] == {"from": "viewer", "to": "editor"}

    confirm = await client.get(f"/ui/admin/users/{other['id']}/delete")
    assert "cannot be undone" in await confirm.text()
    response = await client.post(f"/ui/admin/users/{other['id']}/delete", data={"csrf_token": token},
                                 allow_redirects=False)
    assert response.status == 303
    assert [r["id"] for r in await _rows(engine, users_table)] == [admin["id"]]
    assert len(await _audit(engine, "user.deleted")) == 1


# ------------------------------------------------------------------------------------------------
# Audit log


async def test_the_audit_log_filters_by_action_user_type_and_dates(
    client: Any, make_user: Any, engine: Any, frozen_clock: Any, clock: Any,
) -> None:
    admin = await make_user("admin")
    someone = Actor("user_someone", "someone@example.com", "10.0.0.9", "curl/8")
    now = clock.now()
    async with engine.begin() as conn:
        await record_audit(conn, action="webhook.deleted", actor=someone, now=now - timedelta(days=3),
                           resource_type="webhook", resource_id="wh_old", details={"url": "https://old.example"})
        await record_audit(conn, action="api_key.created", actor=someone, now=now - timedelta(days=1),
                           resource_type="api_key", resource_id="key_1", details={"key_name": "<b>Bold</b>"})
    await client_sign_in(client, admin["email"], PASSWORD)
    everything = await (await client.get("/ui/admin/audit")).text()
    assert "wh_old" in everything and "key_1" in everything and "auth.login_succeeded" in everything
    assert "&lt;b&gt;Bold&lt;/b&gt;" in everything  # details escaped

    only_keys = await (await client.get("/ui/admin/audit?action=api_key.created")).text()
    assert "key_1" in only_keys and "wh_old" not in only_keys
    by_type = await (await client.get("/ui/admin/audit?resource_type=webhook")).text()
    assert "wh_old" in by_type and "key_1" not in by_type
    day = (now - timedelta(days=3)).date().isoformat()
    by_date = await (await client.get(f"/ui/admin/audit?from={day}&to={day}")).text()
    assert "wh_old" in by_date and "key_1" not in by_date
    by_user = await (await client.get(f"/ui/admin/audit?user_id={admin['id']}")).text()
    assert "auth.login_succeeded" in by_user and "key_1" not in by_user

    bad = await client.get("/ui/admin/audit?from=2026-02-30&to=2026-01-01")
    assert bad.status == 422
    assert "Not a valid datetime." in await bad.text()
    reversed_range = await client.get("/ui/admin/audit?from=2026-03-02&to=2026-03-01")
    assert reversed_range.status == 422
    assert "`from` must not be after `to`" in await reversed_range.text()


async def test_the_audit_log_paginates(client: Any, make_user: Any, engine: Any, clock: Any) -> None:
    admin = await make_user("admin")
    actor = Actor("user_x", "x@example.com", None, None)
    async with engine.begin() as conn:
        for i in range(60):
            await record_audit(conn, action="webhook.created", actor=actor, now=clock.now() - timedelta(minutes=i),
                               resource_type="webhook", resource_id=f"wh_{i:02d}")
    await client_sign_in(client, admin["email"], PASSWORD)
    first = await (await client.get("/ui/admin/audit?action=webhook.created")).text()
    assert "Page 1 of 2" in first and "wh_00" in first and "wh_55" not in first
    assert 'href="/ui/admin/audit?action=webhook.created&amp;page=2"' in first
    second = await (await client.get("/ui/admin/audit?action=webhook.created&page=2")).text()
    assert "wh_55" in second and "wh_00" not in second


# ------------------------------------------------------------------------------------------------
# System


async def test_the_system_page_is_for_the_admin_role(client: Any, make_user: Any) -> None:
    admin = await make_user("admin")
    await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.get("/ui/admin/system")
    html = await response.text()
    assert response.status == 200
    for text in ("database", "storage", "queue", "Python", "Uptime", "sandbox"):
        assert text in html, text
    assert 'method="post"' not in html.replace('<form method="post" action="/ui/logout">', "")


# ------------------------------------------------------------------------------------------------
# Roles and CSRF on every admin page


ADMIN_PAGES = {
    "/ui/admin/users": "users.manage", "/ui/admin/users/new": "users.manage",
    "/ui/admin/keys": "api_keys.manage", "/ui/admin/keys/new": "api_keys.manage",
    "/ui/admin/webhooks": "webhooks.manage", "/ui/admin/webhooks/new": "webhooks.manage",
    "/ui/admin/audit": "audit.view", "/ui/admin/system": None,
}


async def test_a_viewer_reaches_no_admin_page_and_forged_posts_change_nothing(
    client: Any, make_user: Any, engine: Any,
) -> None:
    admin = await make_user("admin")
    viewer = await make_user("viewer")
    token = await client_sign_in(client, viewer["email"], PASSWORD)
    dashboard = await (await client.get("/ui")).text()
    assert "/ui/admin/" not in dashboard  # no link to an admin page
    for path in ADMIN_PAGES:
        assert (await client.get(path)).status == 403, path
    forged = [
        ("/ui/admin/users/new", {"email": "evil@example.com", "name": "Evil", "password": "a long enough password",
                                 "role": "admin"}),
        (f"/ui/admin/users/{admin['id']}/active", {"is_active": "0"}),
        (f"/ui/admin/users/{admin['id']}/delete", {}),
        ("/ui/admin/keys/new", {"name": "Stolen", "tier": "starter"}),
        ("/ui/admin/webhooks/new", {"url": "https://evil.example/x", "events": "post.failed"}),
    ]
    for path, data in forged:
        response = await client.post(path, data={"csrf_token": token, **data})
        assert response.status == 403, path
        assert "lacks the" in await response.text()
    assert len(await _rows(engine, users_table)) == 2
    assert await _rows(engine, api_keys_table) == [] and await _rows(engine, webhooks_table) == []
    assert await _audit(engine, "user.created") == []


async def test_a_user_with_one_permission_reaches_only_its_page(client: Any, make_user: Any) -> None:
    auditor = await make_user("viewer", permissions=["audit.view"])
    await client_sign_in(client, auditor["email"], PASSWORD)
    for path, permission in ADMIN_PAGES.items():
        expected = 200 if permission == "audit.view" else 403
        assert (await client.get(path)).status == expected, path


async def test_admin_forms_without_the_csrf_token_are_refused(client: Any, make_user: Any, engine: Any) -> None:
    admin = await make_user("admin")
    other = await make_user("viewer")
    await client_sign_in(client, admin["email"], PASSWORD)
    for path, data in (
        ("/ui/admin/keys/new", {"name": "No token", "tier": "starter"}),
        ("/ui/admin/webhooks/new", {"url": "https://example.com/x", "events": "post.failed"}),
        (f"/ui/admin/users/{other['id']}/delete", {}),
    ):
        response = await client.post(path, data=data)
        assert response.status == 403, path
    assert await _rows(engine, api_keys_table) == [] and await _rows(engine, webhooks_table) == []
    assert len(await _rows(engine, users_table)) == 2
