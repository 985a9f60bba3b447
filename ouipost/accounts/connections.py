"""Connecting and disconnecting social accounts: the flows the API (/api/accounts) and the admin UI
(/ui/w/{ws}/accounts) share, so each rule exists once.

- `connect_with_password`: Bluesky's handle + app password, connected at once.
- `start_oauth` / `finish_oauth`: the OAuth dance. The state is single-use and bound to the workspace
  and to whoever started it (an API key or an admin user: `StateOwner`); a grant may give several
  identities. Reconnecting an identity already in the workspace updates that account in place
  (tokens, status back to active) and retries what failed only because it had expired.
- `disconnect_account`: revoke at the network (best effort), cancel pending targets (scheduled posts
  left with none return to draft), drop the account from schedule slots, the event and the audit
  entry — one transaction. `posts_returning_to_draft` tells a confirmation page what will happen.

Network answers map to the API's errors: refused credentials 422 VALIDATION_ERROR (on
`app_password`), a refused code 400 OAUTH_EXCHANGE_FAILED, an unusable answer 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.accounts import instance_apps
from ouipost.accounts import service as accounts
from ouipost.config import Settings
from ouipost.core import errors
from ouipost.core.crypto import Cipher
from ouipost.db.rows import AccountRow
from ouipost.db.tables import post_targets, posts
from ouipost.identity.audit import Actor, record_audit
from ouipost.platforms import NetworkNotConfigured, make_adapter
from ouipost.platforms.base import (
    PermanentError,
    PlatformAdapter,
    PlatformError,
    RetryableError,
    TokenExpiredError,
    UnknownOutcomeError,
)
from ouipost.platforms.http import PlatformHttp
from ouipost.platforms.registry import get_platform
from ouipost.publishing import service as publishing
from ouipost.schedules.service import remove_account_from_slots
from ouipost.webhooks.events import record_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateOwner:
    """Who starts an OAuth flow and alone may finish it: an API key or an admin user."""

    api_key_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class StartedOAuth:
    auth_url: str
    state: str
    expires_in: int


def adapter_for(http: PlatformHttp, settings: Settings, network: str) -> PlatformAdapter:
    """The network's adapter; 422 VALIDATION_ERROR (on `platform`) when it has no app credentials."""
    try:
        return make_adapter(network, http, settings)
    except NetworkNotConfigured as exc:
        raise errors.ValidationError(str(exc), details={"platform": [str(exc)]}) from exc


def unavailable(network: str, exc: PlatformError) -> errors.ApiError:
    """503 for a network that did not answer usefully, with its Retry-After when it gave one."""
    retry = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(max(1, int(retry)))} if retry else None
    return errors.ServiceUnavailable(f"{get_platform(network).name} did not answer usefully; try again",
                                     details={"platform": network}, headers=headers)


async def connect_with_password(
    engine: AsyncEngine, adapter: PlatformAdapter, *, workspace_id: str, network: str, identifier: str,
    app_password: str, cipher: Cipher, now: datetime,
) -> AccountRow:
    """Log in with an app password and connect (or update) the identity; answers the account row.
    422 VALIDATION_ERROR on `app_password` when the network refuses; nothing is saved then."""
    try:
        identity = await adapter.login_with_password(identifier, app_password)
    except (PermanentError, TokenExpiredError) as exc:
        raise errors.ValidationError(
            f"{get_platform(network).name} refused these credentials: {exc.message}",
            details={"app_password": [exc.message]},
        ) from exc
    except (RetryableError, UnknownOutcomeError) as exc:
        raise unavailable(network, exc) from exc
    async with engine.begin() as conn:
        account = await accounts.upsert_identity(
            conn, workspace_id=workspace_id, platform=network, identity=identity, cipher=cipher, now=now,
        )
        await record_event(conn, "account.connected", {"account": accounts.account_view(account, now=now)},
                           workspace_id=workspace_id, now=now)
    return account


async def start_oauth(
    engine: AsyncEngine, adapter: PlatformAdapter, *, workspace_id: str, network: str, callback_url: str,
    scopes: Sequence[str] | None, owner: StateOwner, cipher: Cipher, now: datetime,
) -> StartedOAuth:
    """Keep a new single-use state and answer the network's consent URL for it."""
    state = accounts.new_state()
    chosen = list(scopes or adapter.default_scopes)
    authorization = adapter.authorization_url(state=state, redirect_uri=callback_url, scopes=chosen)
    async with engine.begin() as conn:
        await accounts.save_state(
            conn, state=state, workspace_id=workspace_id, api_key_id=owner.api_key_id, user_id=owner.user_id,
            platform=network, redirect_uri=callback_url, scopes=chosen, code_verifier=authorization.code_verifier,
            cipher=cipher, now=now,
        )
    return StartedOAuth(authorization.url, state, int(accounts.STATE_TTL.total_seconds()))


async def finish_oauth(
    engine: AsyncEngine, adapter_of: Callable[[str], PlatformAdapter], *, workspace_id: str, state: str, code: str,
    owner: StateOwner, cipher: Cipher, now: datetime,
) -> list[AccountRow]:
    """Consume the state, trade the code and connect every identity of the grant; answers the
    account rows. 400 INVALID_OAUTH_STATE, 400 OAUTH_EXCHANGE_FAILED, 503 (see the module doc).
    The state is spent even when the exchange fails: a code is never tried twice."""
    async with engine.begin() as conn:
        pending = await accounts.consume_state(
            conn, state=state, workspace_id=workspace_id, api_key_id=owner.api_key_id, user_id=owner.user_id,
            cipher=cipher, now=now,
        )
    network = pending["platform"]
    adapter = adapter_of(network)
    try:
        identities = await adapter.exchange_code(
            code=code, redirect_uri=pending["redirect_uri"], code_verifier=pending["code_verifier"]
        )
    except (PermanentError, TokenExpiredError) as exc:
        raise errors.BadRequest(
            f"{get_platform(network).name} refused the authorization code: {exc.message}",
            code="OAUTH_EXCHANGE_FAILED",
        ) from exc
    except (RetryableError, UnknownOutcomeError) as exc:
        raise unavailable(network, exc) from exc
    if not identities:
        raise errors.BadRequest(
            f"The {get_platform(network).name} grant gives no account that can publish",
            code="OAUTH_EXCHANGE_FAILED",
        )
    async with engine.begin() as conn:
        connected = [
            await accounts.upsert_identity(
                conn, workspace_id=workspace_id, platform=network, identity=identity, cipher=cipher, now=now,
            )
            for identity in identities
        ]
        for account in connected:
            await record_event(conn, "account.connected", {"account": accounts.account_view(account, now=now)},
                               workspace_id=workspace_id, now=now)
    return connected


async def posts_returning_to_draft(conn: AsyncConnection, account_id: str) -> list[dict[str, Any]]:
    """The scheduled posts that disconnecting `account_id` would send back to draft: those whose
    only pending targets are this account's (the rule `accounts.disconnect` applies). Earliest first."""
    mine = sa.select(post_targets.c.post_id).where(
        post_targets.c.account_id == account_id, post_targets.c.status == "pending",
    )
    others_pending = sa.exists().where(
        post_targets.c.post_id == posts.c.id, post_targets.c.status == "pending",
        post_targets.c.account_id != account_id,
    )
    rows = await conn.execute(
        sa.select(posts.c.id, posts.c.content, posts.c.scheduled_at)
        .where(posts.c.id.in_(mine), posts.c.status == "scheduled", ~others_pending)
        .order_by(posts.c.scheduled_at, posts.c.id)
    )
    return [dict(r) for r in rows.mappings()]


async def disconnect_account(
    engine: AsyncEngine, adapter: PlatformAdapter | None, account: AccountRow, *, cipher: Cipher,
    now: datetime, actor: Actor,
) -> int:
    """Disconnect `account` (see the module doc) and answer how many posts were touched
    (`cancelled_posts`). The event `account.disconnected` and the audit entry of the same name
    commit with the change. `adapter` None skips the revocation (network not configured)."""
    if adapter is not None:
        try:
            if get_platform(account["platform"]).instance_based:  # its app is per server (Mastodon)
                adapter = await instance_apps.bind_for_account(engine, adapter, account, cipher=cipher)
            # Best effort: the account is disconnected here whatever the network answers.
            await adapter.revoke(accounts.auth_of(account, cipher))
        except Exception as exc:  # revocation must never block disconnecting
            log.info("revoking %s at %s failed: %s", account["id"], account["platform"], exc)
    async with engine.begin() as conn:
        cancelled = await accounts.disconnect(conn, account, now)
        await publishing.apply_moves(conn, await remove_account_from_slots(conn, account["id"], now), now)
        await record_event(conn, "account.disconnected", {"account": accounts.account_view(account, now=now)},
                           workspace_id=account["workspace_id"], now=now)
        await record_audit(
            conn, action="account.disconnected", actor=actor, now=now, resource_type="social_account",
            resource_id=account["id"],
            details={"workspace_id": account["workspace_id"], "platform": account["platform"],
                     "name": account["name"], "cancelled_posts": cancelled},
        )
    return cancelled
