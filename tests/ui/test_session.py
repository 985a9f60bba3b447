"""Signing in and out of the admin UI, the session cookie, CSRF and the security headers, without a
browser (the aiohttp test client keeps cookies like one)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ouipost.db.admin_tables import admin_sessions, audit_logs
from ouipost.db.tables import users as users_table
from tests.ui.conftest import PASSWORD, client_sign_in, csrf_from


async def _audit_actions(engine: Any) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(audit_logs.c.action).order_by(audit_logs.c.created_at, audit_logs.c.id))
        return [r[0] for r in rows]


async def test_a_page_needs_signing_in_and_comes_back_after_it(client: Any, make_user: Any) -> None:
    user = await make_user("editor")
    response = await client.get("/ui/profile", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] in ("/ui/login?next=%2Fui%2Fprofile", "/ui/login?next=/ui/profile")

    login_page = await client.get(response.headers["Location"])
    html = await login_page.text()
    assert 'value="/ui/profile"' in html
    response = await client.post("/ui/login", data={
        "csrf_token": csrf_from(html), "email": user["email"], "password": PASSWORD, "next": "/ui/profile",
    }, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/profile"
    page = await client.get("/ui/profile")
    assert page.status == 200
    assert user["email"] in await page.text()


async def test_the_session_cookie_is_httponly_lax_and_scoped_to_the_ui(client: Any, make_user: Any) -> None:
    user = await make_user("viewer")
    login_page = await client.get("/ui/login")
    response = await client.post("/ui/login", data={
        "csrf_token": csrf_from(await login_page.text()), "email": user["email"], "password": PASSWORD,
    }, allow_redirects=False)
    cookie = response.headers.getall("Set-Cookie")[-1]
    assert cookie.startswith("ouipost_ui=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http public URL in tests
    assert user["email"] not in cookie and PASSWORD not in cookie  # encrypted


async def test_wrong_password_and_unknown_email_get_the_same_message_and_an_audit_entry(
    client: Any, make_user: Any, engine: Any,
) -> None:
    user = await make_user("admin")
    for email, password in ((user["email"], "wrong password!!"), ("nobody@example.com", PASSWORD)):
        token = csrf_from(await (await client.get("/ui/login")).text())
        response = await client.post("/ui/login", data={"csrf_token": token, "email": email, "password": password})
        html = await response.text()
        assert response.status == 401
        assert "Invalid e-mail or password" in html
        assert f'value="{email}"' in html  # the e-mail is kept
    assert await _audit_actions(engine) == ["auth.login_failed", "auth.login_failed"]


async def test_five_failures_lock_the_email_in_the_ui_as_in_the_api(client: Any, make_user: Any) -> None:
    user = await make_user("admin")
    for _ in range(5):
        token = csrf_from(await (await client.get("/ui/login")).text())
        await client.post("/ui/login", data={"csrf_token": token, "email": user["email"], "password": "nope nope nope"})
    token = csrf_from(await (await client.get("/ui/login")).text())
    response = await client.post("/ui/login", data={"csrf_token": token, "email": user["email"], "password": PASSWORD})
    assert response.status == 429
    assert "Too many failed sign-ins" in await response.text()
    # The API shares the lock: one count of failures for both faces.
    api = await client.post("/admin/login", json={"email": user["email"], "password": PASSWORD})
    assert api.status == 429


async def test_empty_fields_are_named_and_nothing_is_attempted(client: Any, engine: Any) -> None:
    token = csrf_from(await (await client.get("/ui/login")).text())
    response = await client.post("/ui/login", data={"csrf_token": token, "email": "", "password": ""})
    html = await response.text()
    assert response.status == 422
    assert "Enter your e-mail address." in html and "Enter your password." in html
    assert await _audit_actions(engine) == []


async def test_a_post_without_or_with_another_sessions_csrf_token_is_refused(client: Any, make_user: Any) -> None:
    user = await make_user("admin")
    response = await client.post("/ui/login", data={"email": user["email"], "password": PASSWORD},
                                 allow_redirects=False)
    assert response.status == 403
    assert "reload the page" in await response.text()
    assert (await client.get("/ui/profile", allow_redirects=False)).status == 303  # not signed in

    # A token from another browser's session is refused too.
    other_token = await client_sign_in(client, user["email"], PASSWORD)
    client.session.cookie_jar.clear()
    fresh = await client.get("/ui/login")
    assert csrf_from(await fresh.text()) != other_token
    response = await client.post("/ui/login", data={
        "csrf_token": other_token, "email": user["email"], "password": PASSWORD,
    }, allow_redirects=False)
    assert response.status == 403


async def test_json_and_other_bodies_cannot_stand_in_for_a_form(client: Any, make_user: Any) -> None:
    user = await make_user("admin")
    token = await client_sign_in(client, user["email"], PASSWORD)
    response = await client.post("/ui/logout", json={"csrf_token": token})
    assert response.status == 403
    assert (await client.get("/ui/profile", allow_redirects=False)).status == 200  # still signed in


async def test_signing_out_revokes_the_session_for_every_copy_of_the_cookie(
    client: Any, make_user: Any, engine: Any,
) -> None:
    user = await make_user("editor")
    token = await client_sign_in(client, user["email"], PASSWORD)
    stolen = {c.key: c.value for c in client.session.cookie_jar}
    response = await client.post("/ui/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/login"
    async with engine.connect() as conn:
        revoked = await conn.scalar(sa.select(sa.func.count()).select_from(admin_sessions)
                                    .where(admin_sessions.c.revoked_at.is_not(None)))
    assert revoked == 1
    client.session.cookie_jar.update_cookies(stolen)
    response = await client.get("/ui/profile", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/ui/login")
    assert (await _audit_actions(engine))[-1] == "auth.logout"


async def test_deactivating_a_user_ends_their_ui_session_at_once(client: Any, make_user: Any, engine: Any) -> None:
    user = await make_user("editor")
    await client_sign_in(client, user["email"], PASSWORD)
    assert (await client.get("/ui/profile", allow_redirects=False)).status == 200
    admin = await make_user("admin")
    api_token = (await (await client.post("/admin/login", json={"email": admin["email"], "password": PASSWORD})).json())
    await client.put(f"/admin/users/{user['id']}", json={"is_active": False},
                     headers={"Authorization": f"Bearer {api_token['data']['token']}"})
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(users_table.c.is_active).where(users_table.c.id == user["id"])) is False
    response = await client.get("/ui/profile", allow_redirects=False)
    assert response.status == 303


async def test_an_idle_session_ends_after_the_idle_timeout(
    aiohttp_client: Any, settings: Any, engine: Any, frozen_clock: Any, make_user: Any,
) -> None:
    from ouipost.app import create_app

    client = await aiohttp_client(create_app(settings.with_overrides(ui_idle_minutes=30), engine=engine,
                                             clock=frozen_clock))
    user = await make_user("viewer")
    await client_sign_in(client, user["email"], PASSWORD)
    frozen_clock.advance(minutes=29)
    assert (await client.get("/ui/profile", allow_redirects=False)).status == 200  # activity resets the clock
    frozen_clock.advance(minutes=29)
    assert (await client.get("/ui/profile", allow_redirects=False)).status == 200
    frozen_clock.advance(minutes=31)
    response = await client.get("/ui/profile")
    assert "/ui/login" in str(response.url)
    assert "signed out after a period of inactivity" in await response.text()
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(admin_sessions.c.revoked_at)) is not None


async def test_next_never_leads_off_site(client: Any, make_user: Any) -> None:
    user = await make_user("admin")
    targets = ("https://evil.example/ui", "//evil.example/ui", "/\\evil.example", "javascript:alert(1)", "/api/posts")
    for target in targets:
        client.session.cookie_jar.clear()
        token = csrf_from(await (await client.get("/ui/login")).text())
        response = await client.post("/ui/login", data={
            "csrf_token": token, "email": user["email"], "password": PASSWORD, "next": target,
        }, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == "/ui", target


async def test_ui_pages_carry_the_security_headers(client: Any, make_user: Any) -> None:
    for path in ("/ui/login", "/ui/no-such-page", "/"):
        response = await client.get(path, allow_redirects=False)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Cache-Control"] == "no-store"


async def test_errors_in_the_ui_are_pages_not_json(client: Any, make_user: Any) -> None:
    response = await client.get("/ui/no-such-page")
    assert response.status == 404
    assert response.content_type == "text/html"
    assert "There is no page here." in await response.text()
    api = await client.get("/api/no-such-route")
    assert api.content_type == "application/json"  # the API keeps its envelope


async def test_root_redirects_to_the_ui(client: Any) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/ui"


async def test_user_text_is_escaped(client: Any, engine: Any, clock: Any) -> None:
    from ouipost.identity import users

    async with engine.begin() as conn:
        await users.create_user(conn, email="x@example.com", password=PASSWORD, name="<script>alert(1)</script>",
                                role="viewer", now=clock.now())
    await client_sign_in(client, "x@example.com", PASSWORD)
    html = await (await client.get("/ui/profile")).text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_static_files_are_served_with_a_version_and_nosniff(client: Any) -> None:
    html = await (await client.get("/ui/login")).text()
    assert "/ui/static/ui.css?v=" in html
    response = await client.get("/ui/static/ui.js")
    assert response.status == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Cache-Control" not in response.headers or response.headers["Cache-Control"] != "no-store"


def test_the_cookie_is_secure_behind_https() -> None:
    from pathlib import Path

    from ouipost.config import Settings
    from ouipost.ui.session import cookie_storage

    base = Settings(data_dir=Path("/tmp"), database_url="sqlite+aiosqlite://", secret_key="k" * 40)
    assert cookie_storage(base.with_overrides(public_url="https://posts.example.com")).cookie_params["secure"] is True
    assert cookie_storage(base.with_overrides(public_url="http://127.0.0.1:8080")).cookie_params["secure"] is False


async def test_a_refusal_page_still_shows_who_is_signed_in(client: Any, make_user: Any) -> None:
    user = await make_user("viewer")
    await client_sign_in(client, user["email"], PASSWORD)
    response = await client.get("/ui/admin/users")
    html = await response.text()
    assert response.status == 403
    assert "lacks the users.manage permission" in html
    assert "Sign out" in html and user["email"] in html
