"""Admin authentication: password login with lockout, JWTs (HS256), sessions that every process can
revoke.

- A token is a JWT signed with HS256 under a key derived from OUIPOST_SECRET_KEY for this purpose
  only; claims: sub (user id), role, jti, iat, exp. Decoding accepts HS256 alone, so `alg: none` and
  algorithm-confusion tokens are refused.
- Every issued jti has a row in `admin_sessions`; a token is valid only while its row exists, is not
  revoked and has not expired, and its user is active. Logout revokes the jti; deactivating a user,
  changing their password or deleting them revokes all of theirs. Expiry is checked against the
  injectable clock, not the system time, so tests can move time.
- Five failed logins for one e-mail within 15 minutes lock that e-mail for 15 minutes, counted in
  the database (every process sees the same count). Unknown e-mails count too, and are verified
  against a dummy hash, so neither the answer, the lock nor the timing tells whether a user exists.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost import users
from ouipost.audit import Actor, record_audit
from ouipost.clock import isoformat
from ouipost.crypto import derive_key
from ouipost.db.admin_tables import admin_sessions, login_failures
from ouipost.db.tables import users as users_table

TOKEN_TTL = timedelta(hours=24)
JWT_ALGORITHM = "HS256"
JWT_PURPOSE = "ouipost/admin-jwt/v1"
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCK_DURATION = timedelta(minutes=15)
# Failures older than this are of no use for any lock and are pruned.
FAILURE_RETENTION = FAILURE_WINDOW + LOCK_DURATION
INVALID_CREDENTIALS = "Invalid e-mail or password"


@dataclass(frozen=True)
class AdminUser:
    """The authenticated admin user of a request, as the database says now (not as the token said)."""

    id: str
    email: str
    name: str
    role: str
    permissions: frozenset[str]
    jti: str

    def can(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class LoginOutcome:
    """The login succeeded when `token` is set. Otherwise `failure` says why (for the audit log only,
    never the client) and `locked_until` when the e-mail is (now) locked. `user` is the user the
    e-mail belongs to, when there is one."""

    user: dict[str, Any] | None
    token: IssuedToken | None
    failure: str | None = None
    locked_until: datetime | None = None


def effective_permissions(role: str, stored: Any) -> frozenset[str]:
    """An admin holds every permission; other roles hold what was granted (their role's defaults
    unless changed), limited to known permissions."""
    if role == "admin":
        return frozenset(users.ADMIN_PERMISSIONS)
    return frozenset(p for p in (stored or []) if p in users.ADMIN_PERMISSIONS)


@functools.lru_cache(maxsize=4)
def _signing_key(secret_key: str) -> bytes:
    return derive_key(secret_key, JWT_PURPOSE)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against when the e-mail is unknown, so that such attempts cost what real ones cost.
    return users.hash_password(secrets.token_urlsafe(24))


# ------------------------------------------------------------------------------------------------
# Tokens


async def issue_token(conn: AsyncConnection, user: Mapping[str, Any], *, secret_key: str, now: datetime) -> IssuedToken:
    """Sign a token for `user` and record its session."""
    jti = secrets.token_urlsafe(24)
    expires_at = now + TOKEN_TTL
    claims = {
        "sub": user["id"],
        "role": user["role"],
        "jti": jti,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    token = jwt.encode(claims, _signing_key(secret_key), algorithm=JWT_ALGORITHM)
    await conn.execute(
        admin_sessions.insert().values(jti=jti, user_id=user["id"], issued_at=now, expires_at=expires_at)
    )
    return IssuedToken(token, jti, expires_at.replace(microsecond=0))


def decode_token(token: str, *, secret_key: str, now: datetime) -> dict[str, Any] | None:
    """The claims of a well-signed, unexpired HS256 token; None for anything else (forged, other
    algorithm, `none`, malformed, missing claims, expired by `now`)."""
    try:
        claims = jwt.decode(
            token,
            _signing_key(secret_key),
            algorithms=[JWT_ALGORITHM],
            # exp/iat are checked against the injectable clock below, not the system clock.
            options={"require": ["exp", "iat", "jti", "sub"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return None
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= now.timestamp():
        return None
    if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("sub"), str):
        return None
    return claims


async def authenticate_token(conn: AsyncConnection, token: str, *, secret_key: str, now: datetime) -> AdminUser | None:
    """The user behind a bearer token, or None when the token is invalid, expired, revoked, or its
    user is gone or inactive."""
    claims = decode_token(token, secret_key=secret_key, now=now)
    if claims is None:
        return None
    return await authenticate_session(conn, claims["jti"], claims["sub"], now=now)


async def authenticate_session(conn: AsyncConnection, jti: str, user_id: str, *, now: datetime) -> AdminUser | None:
    """The user of session `jti` when it belongs to `user_id`, is neither revoked nor expired, and
    its user is active; None otherwise. Bearer tokens and the admin UI's cookie both end here, so a
    revocation (logout, deactivation, deletion) ends either kind of session in every process."""
    row = (
        await conn.execute(
            sa.select(
                users_table.c.id, users_table.c.email, users_table.c.name, users_table.c.role,
                users_table.c.permissions, users_table.c.is_active,
                admin_sessions.c.revoked_at, admin_sessions.c.expires_at,
            )
            .join(admin_sessions, admin_sessions.c.user_id == users_table.c.id)
            .where(admin_sessions.c.jti == jti)
        )
    ).mappings().first()
    if row is None or row["id"] != user_id or not row["is_active"]:
        return None
    if row["revoked_at"] is not None or row["expires_at"] <= now:
        return None
    return AdminUser(
        id=row["id"], email=row["email"], name=row["name"], role=row["role"],
        permissions=effective_permissions(row["role"], row["permissions"]), jti=jti,
    )


async def revoke_session(conn: AsyncConnection, jti: str, now: datetime) -> None:
    await conn.execute(
        admin_sessions.update()
        .where(admin_sessions.c.jti == jti, admin_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_user_sessions(conn: AsyncConnection, user_id: str, now: datetime) -> int:
    """Revoke every live token of a user (deactivation, password change). Returns how many."""
    result = await conn.execute(
        admin_sessions.update()
        .where(admin_sessions.c.user_id == user_id, admin_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


async def prune_sessions(conn: AsyncConnection, now: datetime) -> None:
    """Expired sessions prove nothing any more: their tokens fail on exp already."""
    await conn.execute(admin_sessions.delete().where(admin_sessions.c.expires_at < now))


# ------------------------------------------------------------------------------------------------
# Login


async def locked_until(conn: AsyncConnection, email: str, now: datetime) -> datetime | None:
    """When the lock on this e-mail ends, or None when it is not locked."""
    until = await conn.scalar(
        sa.select(sa.func.max(login_failures.c.locked_until)).where(
            login_failures.c.email == email, login_failures.c.at >= now - FAILURE_RETENTION
        )
    )
    return until if until is not None and until > now else None


async def _record_failure(conn: AsyncConnection, email: str, ip_address: str | None, now: datetime) -> datetime | None:
    """Record a failed attempt; returns the end of the lock when this failure starts one.

    Only failures since the previous lock ended count towards the next one.
    """
    previous_lock_end = await conn.scalar(
        sa.select(sa.func.max(login_failures.c.locked_until)).where(login_failures.c.email == email)
    )
    since = now - FAILURE_WINDOW
    if previous_lock_end is not None and previous_lock_end > since:
        since = previous_lock_end
    earlier = int(
        await conn.scalar(
            sa.select(sa.func.count()).select_from(login_failures).where(
                login_failures.c.email == email, login_failures.c.at > since
            )
        )
        or 0
    )
    lock = now + LOCK_DURATION if earlier + 1 >= MAX_FAILURES else None
    await conn.execute(
        login_failures.insert().values(email=email, ip_address=ip_address, at=now, locked_until=lock)
    )
    await conn.execute(login_failures.delete().where(login_failures.c.at < now - FAILURE_RETENTION))
    return lock


async def login(
    conn: AsyncConnection, email: str, password: str, *, ip_address: str | None, secret_key: str, now: datetime
) -> LoginOutcome:
    """Check the credentials and issue a token.

    Fails (no token) when the e-mail is locked (locked_until set), unknown, the
    password is wrong, or the user is inactive; the last three are indistinguishable to the client.
    """
    email = email.strip().lower()
    lock = await locked_until(conn, email, now)
    if lock is not None:
        return LoginOutcome(None, None, "locked", lock)
    user = await users.find_by_email(conn, email)
    # Verify even for unknown e-mails (against a dummy hash) so that timing reveals nothing.
    password_ok = users.verify_password(user["password_hash"] if user else _dummy_hash(), password)
    if user is None or not password_ok or not user["is_active"]:
        reason = "unknown_email" if user is None else ("wrong_password" if not password_ok else "inactive_user")
        lock = await _record_failure(conn, email, ip_address, now)
        return LoginOutcome(user, None, reason, lock)
    await conn.execute(login_failures.delete().where(login_failures.c.email == email))
    await conn.execute(users_table.update().where(users_table.c.id == user["id"]).values(last_login_at=now))
    await prune_sessions(conn, now)
    token = await issue_token(conn, user, secret_key=secret_key, now=now)
    return LoginOutcome({**user, "last_login_at": now}, token)


async def sign_in(
    conn: AsyncConnection, email: str, password: str, *, ip_address: str | None, user_agent: str | None,
    secret_key: str, now: datetime,
) -> LoginOutcome:
    """`login`, with its audit entry (auth.login_succeeded or auth.login_failed) written in the same
    transaction. The admin API and the admin UI both sign people in through here, so both keep one
    lockout count and one audit trail."""
    email = email.strip().lower()
    outcome = await login(conn, email, password, ip_address=ip_address, secret_key=secret_key, now=now)
    user = outcome.user
    actor = Actor(user_id=user["id"] if user else None, user_email=email, ip_address=ip_address, user_agent=user_agent)
    if outcome.token is None:
        details: dict[str, Any] = {"reason": outcome.failure}
        if outcome.locked_until is not None:
            details["locked_until"] = isoformat(outcome.locked_until)
        await record_audit(
            conn, action="auth.login_failed", actor=actor, now=now, resource_type="user",
            resource_id=user["id"] if user else None, details=details,
        )
    else:
        await record_audit(
            conn, action="auth.login_succeeded", actor=actor, now=now, resource_type="user",
            resource_id=user["id"] if user else None,
        )
    return outcome
