"""Social accounts: OAuth state, connecting identities, settings, disconnection, and their views.

Tokens are encrypted at rest (AES-GCM bound to the account id) and never leave this module in an
answer. Reconnecting an identity that is already connected to the workspace updates it in place.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.accounts.statuses import AccountStatus
from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.core.crypto import Cipher, DecryptionError
from ouipost.core.ids import new_id
from ouipost.db.pages import fetch_page
from ouipost.db.rows import AccountRow, record, records
from ouipost.db.tables import oauth_states, post_targets, posts, social_accounts
from ouipost.platforms.base import AccountAuth, ConnectedIdentity, TokenSet

STATE_TTL = timedelta(seconds=600)
DEFAULT_ACCOUNT_SETTINGS: dict[str, Any] = {"auto_hashtags": False, "default_hashtags": []}


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# OAuth state -------------------------------------------------------------------------------------


def new_state() -> str:
    return secrets.token_urlsafe(32)


def _owner(api_key_id: str | None, user_id: str | None) -> dict[str, str | None]:
    # A state belongs to exactly one starter: an API key (the API) or an admin user (the UI).
    if (api_key_id is None) == (user_id is None):
        raise ValueError("an OAuth state needs exactly one of api_key_id and user_id")
    return {"api_key_id": api_key_id, "user_id": user_id}


async def save_state(
    conn: AsyncConnection, *, state: str, workspace_id: str, platform: str, redirect_uri: str,
    scopes: Sequence[str], code_verifier: str | None, cipher: Cipher, now: datetime,
    api_key_id: str | None = None, user_id: str | None = None,
) -> None:
    """Keep a new state for STATE_TTL, bound to the workspace and to its starter (a key or a user)."""
    await conn.execute(oauth_states.insert().values(
        state_hash=_hash(state), workspace_id=workspace_id, **_owner(api_key_id, user_id), platform=platform,
        redirect_uri=redirect_uri, scopes=list(scopes),
        code_verifier=cipher.encrypt(code_verifier, context=_hash(state)) if code_verifier else None,
        created_at=now, expires_at=now + STATE_TTL,
    ))


async def consume_state(
    conn: AsyncConnection, *, state: str, workspace_id: str, cipher: Cipher, now: datetime,
    api_key_id: str | None = None, user_id: str | None = None,
) -> dict[str, Any]:
    """Take a state once. Reused, expired, unknown (forged) or another workspace's/key's/user's
    state: 400 INVALID_OAUTH_STATE, with one message so that nothing is learnt from the difference."""
    owner = _owner(api_key_id, user_id)
    invalid = errors.BadRequest(
        "The OAuth state is unknown, expired, already used or belongs to another workspace; start again "
        "with POST /api/accounts", code="INVALID_OAUTH_STATE",
    )
    if not state or len(state) > 256:
        raise invalid
    state_hash = _hash(state)
    result = await conn.execute(
        oauth_states.update()
        .where(
            oauth_states.c.state_hash == state_hash, oauth_states.c.used_at.is_(None),
            oauth_states.c.expires_at > now, oauth_states.c.workspace_id == workspace_id,
            *(oauth_states.c[name] == value for name, value in owner.items() if value is not None),
        )
        .values(used_at=now)
    )
    if result.rowcount != 1:
        raise invalid
    row = dict((await conn.execute(sa.select(oauth_states).where(oauth_states.c.state_hash == state_hash)))
               .mappings().one())
    if row["code_verifier"]:
        row["code_verifier"] = cipher.decrypt(row["code_verifier"], context=state_hash)
    return row


# Accounts ----------------------------------------------------------------------------------------


async def upsert_identity(
    conn: AsyncConnection, *, workspace_id: str, platform: str, identity: ConnectedIdentity, cipher: Cipher,
    now: datetime,
) -> AccountRow:
    """Insert the identity as an account, or update the one already connected (same remote id).

    The first active account of a network in a workspace becomes its default.
    """
    existing = (await conn.execute(
        sa.select(social_accounts).where(
            social_accounts.c.workspace_id == workspace_id, social_accounts.c.platform == platform,
            social_accounts.c.remote_id == identity.remote_id,
        )
    )).mappings().first()
    account_id = existing["id"] if existing else new_id("acc")
    values = {
        "type": identity.type,
        "name": identity.name[:200],
        "username": identity.username,
        "profile_image": identity.profile_image,
        "status": AccountStatus.ACTIVE,
        "metadata": identity.metadata,
        "permissions": identity.permissions or identity.token.scopes,
        "access_token": cipher.encrypt(identity.token.access_token, context=account_id),
        "refresh_token": (cipher.encrypt(identity.token.refresh_token, context=account_id)
                          if identity.token.refresh_token else None),
        "token_expires_at": identity.token.expires_at,
        "refresh_expires_at": identity.token.refresh_expires_at,
        "last_error": None,
        "updated_at": now,
    }
    if existing:
        await conn.execute(social_accounts.update().where(social_accounts.c.id == account_id).values(**values))
        if existing["status"] != "active":
            from ouipost.publishing.service import retry_after_reconnect

            await retry_after_reconnect(conn, account_id, now)
    else:
        has_default = await conn.scalar(
            sa.select(sa.func.count()).select_from(social_accounts).where(
                social_accounts.c.workspace_id == workspace_id, social_accounts.c.platform == platform,
                social_accounts.c.is_default.is_(True),
            )
        )
        await conn.execute(social_accounts.insert().values(
            id=account_id, workspace_id=workspace_id, platform=platform, remote_id=identity.remote_id,
            is_default=not has_default, settings=dict(DEFAULT_ACCOUNT_SETTINGS), stats={}, connected_at=now,
            **values,
        ))
    return await get_account(conn, workspace_id, account_id)


async def get_account(conn: AsyncConnection, workspace_id: str, account_id: str) -> AccountRow:
    row = (await conn.execute(
        sa.select(social_accounts).where(
            social_accounts.c.id == account_id, social_accounts.c.workspace_id == workspace_id
        )
    )).mappings().first()
    if row is None:
        raise errors.NotFound("Account not found")
    return record(AccountRow, row)


async def list_accounts(
    conn: AsyncConnection, workspace_id: str, *, platform: str | None, status: str | None, page: int, limit: int
) -> tuple[list[AccountRow], int]:
    clauses = [social_accounts.c.workspace_id == workspace_id]
    if platform:
        clauses.append(social_accounts.c.platform == platform)
    if status:
        clauses.append(social_accounts.c.status == status)
    rows, total = await fetch_page(conn, social_accounts, where=clauses, order_by=[social_accounts.c.id],
                                   page=page, limit=limit)
    return records(AccountRow, rows), total


def auth_of(account: AccountRow, cipher: Cipher) -> AccountAuth:
    """Decrypted credentials for an adapter call. DecryptionError after a secret-key change."""
    if account["access_token"] is None:  # every connection stores one; the column allows none
        raise DecryptionError("the account holds no access token")
    return AccountAuth(
        remote_id=account["remote_id"],
        access_token=cipher.decrypt(account["access_token"], context=account["id"]),
        refresh_token=(cipher.decrypt(account["refresh_token"], context=account["id"])
                       if account["refresh_token"] else None),
        metadata=dict(account["metadata"] or {}),
    )


async def store_tokens(
    conn: AsyncConnection, account_id: str, token: TokenSet, cipher: Cipher, now: datetime
) -> None:
    """Keep a refreshed token set (rotated refresh tokens replace the old one)."""
    values: dict[str, Any] = {
        "access_token": cipher.encrypt(token.access_token, context=account_id),
        "token_expires_at": token.expires_at,
        "status": AccountStatus.ACTIVE,
        "last_error": None,
        "updated_at": now,
    }
    if token.refresh_token:
        values["refresh_token"] = cipher.encrypt(token.refresh_token, context=account_id)
        values["refresh_expires_at"] = token.refresh_expires_at
    await conn.execute(social_accounts.update().where(social_accounts.c.id == account_id).values(**values))


async def mark_account(conn: AsyncConnection, account_id: str, status: str, error: str | None, now: datetime) -> None:
    await conn.execute(social_accounts.update().where(social_accounts.c.id == account_id).values(
        status=status, last_error=error, updated_at=now,
    ))


async def update_account(
    conn: AsyncConnection, account: AccountRow, changes: Mapping[str, Any], now: datetime
) -> AccountRow:
    values: dict[str, Any] = {"updated_at": now}
    if "name" in changes:
        values["name"] = changes["name"]
    if "settings" in changes:
        values["settings"] = {**DEFAULT_ACCOUNT_SETTINGS, **(account["settings"] or {}), **changes["settings"]}
    if changes.get("is_default") is True:
        await conn.execute(social_accounts.update().where(
            social_accounts.c.workspace_id == account["workspace_id"],
            social_accounts.c.platform == account["platform"], social_accounts.c.id != account["id"],
        ).values(is_default=False))
        values["is_default"] = True
    elif changes.get("is_default") is False:
        values["is_default"] = False
    await conn.execute(social_accounts.update().where(social_accounts.c.id == account["id"]).values(**values))
    return record(AccountRow, {**account, **values})


async def store_stats(conn: AsyncConnection, account_id: str, stats: Mapping[str, Any], now: datetime) -> None:
    await conn.execute(social_accounts.update().where(social_accounts.c.id == account_id).values(
        stats=dict(stats), last_sync_at=now,
    ))


async def posts_this_month(conn: AsyncConnection, account_ids: Sequence[str], now: datetime) -> dict[str, int]:
    if not account_ids:
        return {}
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rows = await conn.execute(
        sa.select(post_targets.c.account_id, sa.func.count())
        .where(post_targets.c.account_id.in_(account_ids), post_targets.c.status == "published",
               post_targets.c.published_at >= start)
        .group_by(post_targets.c.account_id)
    )
    return {account_id: int(count) for account_id, count in rows}


async def disconnect(conn: AsyncConnection, account: AccountRow, now: datetime) -> int:
    """Cancel this account's pending targets, return scheduled posts left with none to draft, and
    delete the account. Returns how many posts were touched."""
    touched = [
        r.post_id for r in await conn.execute(
            sa.select(post_targets.c.post_id).distinct().where(
                post_targets.c.account_id == account["id"], post_targets.c.status == "pending",
            )
        )
    ]
    if touched:
        await conn.execute(post_targets.update().where(
            post_targets.c.account_id == account["id"], post_targets.c.status == "pending",
        ).values(status="cancelled", error_code="ACCOUNT_DISCONNECTED",
                 error_message="The account was disconnected", updated_at=now))
        still_pending = sa.exists().where(post_targets.c.post_id == posts.c.id, post_targets.c.status == "pending")
        await conn.execute(posts.update().where(
            posts.c.id.in_(touched), posts.c.status == "scheduled", ~still_pending,
        ).values(status="draft", scheduled_at=None, scheduled_timezone=None, updated_at=now))
    await conn.execute(social_accounts.delete().where(social_accounts.c.id == account["id"]))
    return len(touched)


def token_valid(account: AccountRow, now: datetime) -> bool:
    if account["status"] != "active":
        return False
    expires = account["token_expires_at"]
    return expires is None or expires > now or bool(account["refresh_token"])


def account_view(
    account: AccountRow, *, now: datetime, posts_month: int = 0, detail: bool = False,
) -> dict[str, Any]:
    stats = account["stats"] or {}
    view: dict[str, Any] = {
        "id": account["id"],
        "platform": account["platform"],
        "type": account["type"],
        "name": account["name"],
        "username": account["username"],
        "profile_image": account["profile_image"],
        "status": account["status"],
        "is_default": bool(account["is_default"]),
        "connected_at": isoformat(account["connected_at"]),
        "expires_at": isoformat(account["token_expires_at"]),
        "permissions": account["permissions"],
        "settings": {**DEFAULT_ACCOUNT_SETTINGS, **(account["settings"] or {})},
        "stats": {"followers": stats.get("followers"), "posts_this_month": posts_month},
    }
    if detail:
        view["metadata"] = _public_metadata(account["metadata"] or {})
        view["stats"].update(following=stats.get("following"), posts_total=stats.get("posts_total"))
        view["health"] = {
            "token_valid": token_valid(account, now),
            "last_sync": isoformat(account["last_sync_at"]),
            "errors": [account["last_error"]] if account["last_error"] else [],
        }
    return view


_SECRET_HINTS = ("token", "secret", "password", "jwt", "verifier")


def _public_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata minus anything that looks like a credential (adapters keep some there)."""
    return {k: v for k, v in metadata.items() if not any(h in k.lower() for h in _SECRET_HINTS)}


__all__ = ["DecryptionError"]


async def call_with_refresh(
    engine: Any, adapter: Any, account: AccountRow, cipher: Cipher, now: datetime, call: Any,
) -> Any:
    """Run `call(auth)`; on TokenExpiredError refresh the token once (see `refresh_stored_tokens`) and
    try again. A refresh the network refuses marks the account `expired` and re-raises."""
    from ouipost.platforms.base import TokenExpiredError

    try:
        return await call(auth_of(account, cipher))
    except TokenExpiredError:
        if not adapter.supports_refresh:
            async with engine.begin() as conn:
                await mark_account(conn, account["id"], "expired", "The token expired; reconnect the account", now)
            raise
    try:
        fresh = await refresh_stored_tokens(engine, adapter, account, cipher, now)
    except TokenExpiredError as exc:
        async with engine.begin() as conn:
            await mark_account(conn, account["id"], "expired", f"Token refresh refused: {exc.message}", now)
        raise
    return await call(auth_of(fresh, cipher))


async def refresh_stored_tokens(
    engine: Any, adapter: Any, account: AccountRow, cipher: Cipher, now: datetime
) -> AccountRow:
    """Refresh an account's token, one refresh per account at a time across every process.

    Under a lock on the account row: when the stored tokens already differ from those `account` was
    read with (another process refreshed, or the user reconnected), they are returned and the network
    is not called, because X and others revoke the whole grant when a rotated refresh token is used
    twice. Otherwise the network refreshes and the new tokens are stored before the lock is released.
    Raises TokenExpiredError when the network refuses (the caller decides what that means) or the
    account is gone; other PlatformErrors pass through.
    """
    from ouipost.platforms.base import TokenExpiredError

    async with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            # Take SQLite's writer lock first: it is what serialises refreshes between processes there.
            await conn.execute(social_accounts.update().where(social_accounts.c.id == account["id"])
                               .values(updated_at=social_accounts.c.updated_at))
            query = sa.select(social_accounts).where(social_accounts.c.id == account["id"])
        else:
            query = sa.select(social_accounts).where(social_accounts.c.id == account["id"]).with_for_update()
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise TokenExpiredError("The account was disconnected", network=account["platform"])
        current = record(AccountRow, row)
        if current["access_token"] != account["access_token"]:
            return current
        token = await adapter.refresh_token(auth_of(current, cipher))
        await store_tokens(conn, account["id"], token, cipher, now)
        return record(AccountRow, (await conn.execute(
            sa.select(social_accounts).where(social_accounts.c.id == account["id"])
        )).mappings().one())
