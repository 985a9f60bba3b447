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
- Password checks never run on the event loop, and a login route waits for its turn among a bounded
  number of them before it takes a database connection (`attempt_sign_in`), so a flood of logins
  neither freezes the process nor takes the connections other requests need.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.core.clock import isoformat
from ouipost.core.crypto import derive_key
from ouipost.core.metrics import process_metrics
from ouipost.db.admin_tables import admin_sessions, login_failures
from ouipost.db.batch import run_transaction
from ouipost.db.rows import UserRow
from ouipost.db.tables import users as users_table
from ouipost.identity import users
from ouipost.identity.audit import Actor, record_audit

TOKEN_TTL = timedelta(hours=24)
JWT_ALGORITHM = "HS256"
JWT_PURPOSE = "ouipost/admin-jwt/v1"
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCK_DURATION = timedelta(minutes=15)
# Failures older than this are of no use for any lock and are pruned.
FAILURE_RETENTION = FAILURE_WINDOW + LOCK_DURATION
INVALID_CREDENTIALS = "Invalid e-mail or password"
PRUNE_BATCH = 200  # old rows deleted per login, at most


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

    user: UserRow | None
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
    # Verified against when the e-mail is unknown, so that such attempts cost what real ones cost
    # (PasswordHashing keeps its own; this one serves callers without it, from a worker thread).
    return users.hash_password(secrets.token_urlsafe(24))


# ------------------------------------------------------------------------------------------------
# Tokens


async def issue_token(conn: AsyncConnection, user: UserRow, *, secret_key: str, now: datetime) -> IssuedToken:
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
    await _delete_rows(conn, admin_sessions, admin_sessions.c.jti, admin_sessions.c.expires_at < now)


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


async def _delete_rows(
    conn: AsyncConnection, table: sa.Table, key: sa.Column[Any], where: sa.ColumnElement[bool]
) -> None:
    """Delete the rows `where` picks (at most PRUNE_BATCH of them per call), by primary key.

    Found first with a plain read, then deleted by key: a ranged or unindexed DELETE would lock every
    row it scans, among them other logins' fresh, uncommitted rows, and two logins each waiting for
    the other's row is the MariaDB deadlock of concurrent failed logins. By key, a login waits (in
    key order) only for old rows another login is deleting too, never in a cycle.
    """
    ids = (await conn.execute(sa.select(key).where(where).order_by(key).limit(PRUNE_BATCH))).scalars().all()
    if ids:
        await conn.execute(table.delete().where(key.in_(ids)))


async def _record_failure(conn: AsyncConnection, email: str, ip_address: str | None, now: datetime) -> datetime | None:
    """Record a failed attempt; returns the end of the lock when this failure starts one.

    Only failures since the previous lock ended count towards the next one.
    """
    await _delete_rows(conn, login_failures, login_failures.c.id, login_failures.c.at < now - FAILURE_RETENTION)
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
    return lock


@dataclass(frozen=True)
class _Attempt:
    """What the database says about a login attempt before its password is checked."""

    email: str
    locked_until: datetime | None
    user: UserRow | None


async def _look_up(conn: AsyncConnection, email: str, now: datetime) -> _Attempt:
    lock = await locked_until(conn, email, now)
    return _Attempt(email, lock, None if lock is not None else await users.find_by_email(conn, email))


async def _check_password(attempt: _Attempt, password: str, passwords: users.PasswordHashing | None) -> bool:
    """The argon2id check, off the event loop. Unknown e-mails are checked against a dummy hash, so
    that neither the answer nor its timing tells whether a user exists."""
    if passwords is None:
        # Callers without the app's PasswordHashing: still off the loop, in the default thread pool.
        stored = attempt.user["password_hash"] if attempt.user else await asyncio.to_thread(_dummy_hash)
        return await asyncio.to_thread(users.verify_password, stored, password)
    stored = attempt.user["password_hash"] if attempt.user else await passwords.dummy_hash()
    return await passwords.verify(stored, password)


async def _conclude(
    conn: AsyncConnection, attempt: _Attempt, password_ok: bool, *, ip_address: str | None, secret_key: str,
    now: datetime,
) -> LoginOutcome:
    """Write what the attempt's outcome changes: a failure (and maybe a lock), or a new session."""
    user = attempt.user
    if attempt.locked_until is not None:
        return LoginOutcome(None, None, "locked", attempt.locked_until)
    if user is None or not password_ok or not user["is_active"]:
        reason = "unknown_email" if user is None else ("wrong_password" if not password_ok else "inactive_user")
        lock = await _record_failure(conn, attempt.email, ip_address, now)
        return LoginOutcome(user, None, reason, lock)
    await _delete_rows(conn, login_failures, login_failures.c.id, login_failures.c.email == attempt.email)
    await conn.execute(users_table.update().where(users_table.c.id == user["id"]).values(last_login_at=now))
    await prune_sessions(conn, now)
    token = await issue_token(conn, user, secret_key=secret_key, now=now)
    return LoginOutcome({**user, "last_login_at": now}, token)


async def _audit_login(
    conn: AsyncConnection, outcome: LoginOutcome, email: str, *, ip_address: str | None, user_agent: str | None,
    now: datetime,
) -> None:
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


async def login(
    conn: AsyncConnection, email: str, password: str, *, ip_address: str | None, secret_key: str, now: datetime,
    passwords: users.PasswordHashing | None = None,
) -> LoginOutcome:
    """Check the credentials and issue a token, within the caller's transaction.

    Fails (no token) when the e-mail is locked (locked_until set), unknown, the
    password is wrong, or the user is inactive; the last three are indistinguishable to the client.
    The password check runs off the event loop (bounded by `passwords`, the app's PasswordHashing,
    when given), but the caller's connection stays checked out meanwhile: `attempt_sign_in` does not.
    """
    attempt = await _look_up(conn, email.strip().lower(), now)
    password_ok = attempt.locked_until is None and await _check_password(attempt, password, passwords)
    outcome = await _conclude(conn, attempt, password_ok, ip_address=ip_address, secret_key=secret_key, now=now)
    _count_failure(outcome)
    return outcome


async def sign_in(
    conn: AsyncConnection, email: str, password: str, *, ip_address: str | None, user_agent: str | None,
    secret_key: str, now: datetime, passwords: users.PasswordHashing | None = None,
) -> LoginOutcome:
    """`login`, with its audit entry (auth.login_succeeded or auth.login_failed) written in the same
    transaction. The admin API and the admin UI both sign people in through here (or through
    `attempt_sign_in`), so both keep one lockout count and one audit trail."""
    email = email.strip().lower()
    outcome = await login(
        conn, email, password, ip_address=ip_address, secret_key=secret_key, now=now, passwords=passwords
    )
    await _audit_login(conn, outcome, email, ip_address=ip_address, user_agent=user_agent, now=now)
    return outcome


async def attempt_sign_in(
    engine: AsyncEngine, email: str, password: str, *, passwords: users.PasswordHashing, ip_address: str | None,
    user_agent: str | None, secret_key: str, now: datetime,
) -> LoginOutcome:
    """`sign_in` as a login route should run it: what a flood of attempts cannot turn against the rest.

    The attempt first waits its turn among the bounded password checks, holding nothing; then reads
    the lock and the user, checks the password off the event loop with no connection checked out,
    and writes the outcome and its audit entry in one short transaction, run again when MariaDB
    reports a deadlock or a lock wait timeout (so no attempt ends in a 500 for that). Raises only
    for a database that is unreachable or broken.
    """
    email = email.strip().lower()
    async with passwords.turn():
        async with engine.connect() as conn:
            attempt = await _look_up(conn, email, now)
        password_ok = attempt.locked_until is None and await _check_password(attempt, password, passwords)

        async def conclude(conn: AsyncConnection) -> LoginOutcome:
            outcome = await _conclude(conn, attempt, password_ok, ip_address=ip_address, secret_key=secret_key, now=now)
            await _audit_login(conn, outcome, email, ip_address=ip_address, user_agent=user_agent, now=now)
            return outcome

        outcome = await run_transaction(engine, conclude)
    _count_failure(outcome)  # once, after the transaction (it may run again on a deadlock)
    return outcome


def _count_failure(outcome: LoginOutcome) -> None:
    if outcome.token is None:
        process_metrics().login_failures.labels(outcome.failure or "unknown").inc()
