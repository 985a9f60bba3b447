"""POST /admin/login, /admin/logout, GET /admin/profile: tokens, revocation, lockout."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from ouipost.core.crypto import derive_key
from ouipost.db.admin_tables import admin_sessions, audit_logs
from ouipost.identity.admin_auth import JWT_PURPOSE
from tests.admin.conftest import PASSWORD, login
from tests.conftest import TEST_SECRET


async def test_login_answers_a_token_its_expiry_and_the_user(client: Any, make_user: Any) -> None:
    user = await make_user("editor", email="Ed@Example.com")
    resp = await client.post("/admin/login", json={"email": "ED@example.com ", "password": PASSWORD})
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert data["user"] == {"id": user["id"], "email": "ed@example.com", "name": "Editor User", "role": "editor"}
    assert data["expires_at"].endswith("Z")
    claims = jwt.decode(data["token"], derive_key(TEST_SECRET, JWT_PURPOSE), algorithms=["HS256"])
    assert claims["sub"] == user["id"] and claims["role"] == "editor"
    assert {"exp", "iat", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 24 * 3600


async def test_profile_shows_the_user_with_permissions_and_last_login(client: Any, admin: Any) -> None:
    resp = await client.get("/admin/profile", headers=admin.headers)
    assert resp.status == 200
    user = (await resp.json())["data"]["user"]
    assert user["id"] == admin.user_id and user["role"] == "admin"
    assert "users.manage" in user["permissions"] and "audit.view" in user["permissions"]
    assert user["last_login"] is not None and user["created_at"].endswith("Z")
    assert "password" not in json.dumps(user) and "password_hash" not in user


async def test_unknown_email_and_wrong_password_get_the_same_401(client: Any, make_user: Any) -> None:
    await make_user(email="known@example.com")
    unknown = await client.post("/admin/login", json={"email": "nobody@example.com", "password": PASSWORD})
    wrong = await client.post("/admin/login", json={"email": "known@example.com", "password": "wrong password!"})
    assert unknown.status == wrong.status == 401
    assert (await unknown.json())["error"] == (await wrong.json())["error"]
    assert (await wrong.json())["error"]["code"] == "UNAUTHORIZED"


async def test_an_inactive_user_cannot_log_in(client: Any, make_user: Any) -> None:
    user = await make_user(is_active=False)
    resp = await client.post("/admin/login", json={"email": user["email"], "password": PASSWORD})
    assert resp.status == 401


@pytest.mark.parametrize("body", [{}, {"email": "a@example.com"}, {"password": "x"}, {"email": 3, "password": "x"},
                                  {"email": "a@example.com", "password": "x", "remember": True}])
async def test_bad_login_bodies_are_422(client: Any, body: dict[str, Any]) -> None:
    resp = await client.post("/admin/login", json=body)
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "VALIDATION_ERROR"


async def test_logout_revokes_the_token(client: Any, admin: Any) -> None:
    resp = await client.post("/admin/logout", headers=admin.headers)
    assert resp.status == 200
    assert (await resp.json())["data"] == {"message": "Logged out successfully"}
    again = await client.get("/admin/profile", headers=admin.headers)
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "UNAUTHORIZED"


async def test_logout_revokes_only_that_token(client: Any, admin: Any) -> None:
    other = await login(client, admin.email)
    await client.post("/admin/logout", headers=admin.headers)
    resp = await client.get("/admin/profile", headers={"Authorization": f"Bearer {other}"})
    assert resp.status == 200


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _bad_tokens(admin: Any) -> dict[str, str]:
    claims = jwt.decode(admin.token, options={"verify_signature": False})
    key = derive_key(TEST_SECRET, JWT_PURPOSE)
    return {
        "forged": jwt.encode(claims, derive_key("another-secret-key-0123456789abcdefghij", JWT_PURPOSE)),
        "raw secret key": jwt.encode(claims, TEST_SECRET.encode()),
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + ".",
        "HS512": jwt.encode(claims, key + key, algorithm="HS512"),
        "expired": jwt.encode({**claims, "exp": claims["iat"] - 1}, key),
        "unknown jti": jwt.encode({**claims, "jti": "not-issued"}, key),
        "other subject": jwt.encode({**claims, "sub": "user_someone-else"}, key),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, key),
        "garbage": "not.a.token",
        "tampered payload": admin.token.split(".")[0] + "." + _b64({**claims, "role": "admin", "sub": "x"}) + "."
        + admin.token.split(".")[2],
    }


async def test_forged_expired_other_algorithm_and_none_tokens_are_401(client: Any, admin: Any) -> None:
    for name, token in (await _bad_tokens(admin)).items():
        resp = await client.get("/admin/profile", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401, name
        assert (await resp.json())["error"]["code"] == "UNAUTHORIZED", name


@pytest.mark.parametrize("header", ["", "Bearer", "Basic abc", "Token xyz"])
async def test_missing_or_malformed_authorization_is_401(client: Any, header: str) -> None:
    resp = await client.get("/admin/profile", headers={"Authorization": header} if header else {})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_token_expires_after_24_hours_by_the_injectable_clock(
    frozen_client: Any, make_user: Any, frozen_clock: Any
) -> None:
    user = await make_user()
    token = await login(frozen_client, user["email"])
    headers = {"Authorization": f"Bearer {token}"}
    frozen_clock.advance(hours=23, minutes=59)
    assert (await frozen_client.get("/admin/profile", headers=headers)).status == 200
    frozen_clock.advance(minutes=2)
    assert (await frozen_client.get("/admin/profile", headers=headers)).status == 401


async def test_deactivating_a_user_revokes_their_tokens_even_after_reactivation(
    client: Any, admin: Any, sign_in: Any
) -> None:
    editor = await sign_in("editor")
    resp = await client.put(f"/admin/users/{editor.user_id}", json={"is_active": False}, headers=admin.headers)
    assert resp.status == 200
    assert (await client.get("/admin/profile", headers=editor.headers)).status == 401
    await client.put(f"/admin/users/{editor.user_id}", json={"is_active": True}, headers=admin.headers)
    assert (await client.get("/admin/profile", headers=editor.headers)).status == 401
    assert (await client.post("/admin/login", json={"email": editor.email, "password": PASSWORD})).status == 200


async def test_a_password_change_revokes_the_users_tokens(client: Any, admin: Any, sign_in: Any) -> None:
    viewer = await sign_in("viewer")
    resp = await client.put(
        f"/admin/users/{viewer.user_id}", json={"password": "a brand new passphrase"}, headers=admin.headers
    )
    assert resp.status == 200
    assert (await client.get("/admin/profile", headers=viewer.headers)).status == 401
    assert (await client.post("/admin/login", json={"email": viewer.email, "password": PASSWORD})).status == 401


async def test_a_role_change_applies_to_existing_tokens_at_once(client: Any, admin: Any, sign_in: Any) -> None:
    other = await sign_in("admin")
    assert (await client.get("/admin/users", headers=other.headers)).status == 200
    await client.put(f"/admin/users/{other.user_id}", json={"role": "viewer"}, headers=admin.headers)
    assert (await client.get("/admin/users", headers=other.headers)).status == 403


async def test_five_failures_lock_the_email_for_15_minutes(
    frozen_client: Any, make_user: Any, frozen_clock: Any, engine: Any
) -> None:
    user = await make_user(email="target@example.com")
    for _ in range(5):
        resp = await frozen_client.post("/admin/login", json={"email": user["email"], "password": "wrong password!"})
        assert resp.status == 401
        frozen_clock.advance(minutes=2)
    # Locked: even the right password is refused, with Retry-After until the lock ends.
    resp = await frozen_client.post("/admin/login", json={"email": user["email"], "password": PASSWORD})
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "RATE_LIMITED"
    assert int(resp.headers["Retry-After"]) == 13 * 60
    # Another e-mail is not affected.
    other = await make_user()
    resp = await frozen_client.post("/admin/login", json={"email": other["email"], "password": PASSWORD})
    assert resp.status == 200
    frozen_clock.advance(minutes=12, seconds=59)
    resp = await frozen_client.post("/admin/login", json={"email": user["email"], "password": PASSWORD})
    assert resp.status == 429
    frozen_clock.advance(seconds=2)
    resp = await frozen_client.post("/admin/login", json={"email": user["email"], "password": PASSWORD})
    assert resp.status == 200
    async with engine.connect() as conn:
        actions = (await conn.execute(
            sa.select(audit_logs.c.action, audit_logs.c.details).where(audit_logs.c.user_email == user["email"])
            .order_by(audit_logs.c.created_at)
        )).all()
    assert [a for a, _ in actions] == ["auth.login_failed"] * 7 + ["auth.login_succeeded"]
    assert actions[5][1]["reason"] == "locked"


async def test_failures_spread_over_more_than_15_minutes_do_not_lock(
    frozen_client: Any, make_user: Any, frozen_clock: Any
) -> None:
    user = await make_user()
    for _ in range(8):
        await frozen_client.post("/admin/login", json={"email": user["email"], "password": "wrong password!"})
        frozen_clock.advance(minutes=4)
    assert (await frozen_client.post("/admin/login", json={"email": user["email"], "password": PASSWORD})).status == 200


async def test_unknown_emails_lock_like_known_ones(frozen_client: Any) -> None:
    for _ in range(5):
        resp = await frozen_client.post("/admin/login", json={"email": "ghost@example.com", "password": "x"})
        assert resp.status == 401
    resp = await frozen_client.post("/admin/login", json={"email": "ghost@example.com", "password": "x"})
    assert resp.status == 429


async def test_login_and_logout_are_audited_without_secrets(client: Any, make_user: Any, engine: Any) -> None:
    user = await make_user()
    await client.post("/admin/login", json={"email": user["email"], "password": "wrong password!"},
                      headers={"User-Agent": "pytest-agent"})
    token = await login(client, user["email"])
    await client.post("/admin/logout", headers={"Authorization": f"Bearer {token}", "User-Agent": "pytest-agent"})
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(audit_logs).order_by(audit_logs.c.created_at))).mappings().all()
    assert [r["action"] for r in rows] == ["auth.login_failed", "auth.login_succeeded", "auth.logout"]
    assert all(r["user_id"] == user["id"] and r["user_email"] == user["email"] for r in rows)
    assert rows[0]["ip_address"] == "127.0.0.1" and rows[0]["user_agent"] == "pytest-agent"
    assert rows[0]["details"] == {"reason": "wrong_password"}
    dumped = json.dumps([dict(r, created_at=None) for r in rows])
    assert PASSWORD not in dumped and "wrong password!" not in dumped and token not in dumped


async def test_sessions_are_stored_without_the_token(client: Any, admin: Any, engine: Any) -> None:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(admin_sessions))).mappings().all()
    assert len(rows) == 1 and rows[0]["user_id"] == admin.user_id
    assert admin.token not in json.dumps([str(v) for v in rows[0].values()])


async def test_login_logout_and_revocation_hold_across_two_server_processes(
    start_servers: Any, make_user: Any
) -> None:
    user = await make_user()
    a, b = start_servers(2)
    status, _, body = a.request(
        "POST", "/admin/login", body=json.dumps({"email": user["email"], "password": PASSWORD}).encode()
    )
    assert status == 200
    token = json.loads(body)["data"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert b.request("GET", "/admin/profile", headers=headers)[0] == 200
    assert b.request("POST", "/admin/logout", headers=headers)[0] == 200
    status, _, body = a.request("GET", "/admin/profile", headers=headers)
    assert status == 401 and json.loads(body)["error"]["code"] == "UNAUTHORIZED"
