"""OAuth apps registered on the servers of instance-based networks (Mastodon), one per server and
redirect URI, kept in `instance_apps` with the client secret encrypted at rest.

`bind_to_instance` is what connecting an account of such a network adds before the usual OAuth dance:
the server name the user typed is normalised and checked with the webhooks' guard (no private,
loopback, link-local or reserved address, unless OUIPOST_WEBHOOK_ALLOW_PRIVATE), the app is found or
registered, and an adapter bound to that server and app is returned. In sandbox mode (or with
OUIPOST_PLATFORM_BASE_URL) the server is never connected to directly: calls go to the configured base,
so the guard does not apply and any server name reaches the sandbox.

Answers map to the API's errors: a bad or refused server name 422 VALIDATION_ERROR on `instance`, a
server that does not answer usefully 503.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.core import errors
from ouipost.core.crypto import Cipher, DecryptionError
from ouipost.db.instance_tables import instance_apps
from ouipost.db.rows import AccountRow
from ouipost.platforms.base import (
    NotSupportedError,
    PermanentError,
    PlatformAdapter,
    RetryableError,
    TokenExpiredError,
    UnknownOutcomeError,
)
from ouipost.platforms.mastodon import InstanceApp, InvalidInstance, normalise_instance
from ouipost.platforms.registry import get_platform
from ouipost.webhooks.service import InvalidWebhook, check_url


class InstanceAdapter(Protocol):
    """What an instance-based adapter offers besides the common interface."""

    network: str

    async def register_app(self, instance: str, *, redirect_uri: str, scopes: Sequence[str]) -> InstanceApp: ...

    def for_instance(self, app: InstanceApp) -> PlatformAdapter: ...


def _invalid(message: str) -> errors.ValidationError:
    return errors.ValidationError(message, details={"instance": [message]})


def _context(network: str, instance: str, redirect_hash: str) -> str:
    return f"{network}:{instance}:{redirect_hash}"


async def checked_instance(value: str, *, direct: bool, allow_private: bool) -> str:
    """The normalised server name; 422 on `instance` when it is not a host name or (when Oui Post
    connects to it directly) it is or resolves to a non-public address."""
    try:
        instance = normalise_instance(value)
    except InvalidInstance as exc:
        raise _invalid(str(exc)) from exc
    if direct:
        try:
            await check_url(f"https://{instance}/", allow_private=allow_private)
        except InvalidWebhook as exc:
            raise _invalid(str(exc).replace("The URL", "The server")) from exc
    return instance


async def app_for(
    engine: AsyncEngine, adapter: InstanceAdapter, *, instance: str, redirect_uri: str, scopes: Sequence[str],
    cipher: Cipher, now: datetime,
) -> InstanceApp:
    """The app of `instance` for `redirect_uri`: the stored one, else one registered now and stored.

    Two processes registering at once both succeed at the server; the first row stored wins and the
    other app is simply never used. A stored secret that no longer decrypts (the secret key changed)
    is replaced by a new registration.
    """
    network = adapter.network
    redirect_hash = hashlib.sha256(redirect_uri.encode()).hexdigest()
    key = (instance_apps.c.platform == network, instance_apps.c.instance == instance,
           instance_apps.c.redirect_hash == redirect_hash)
    context = _context(network, instance, redirect_hash)
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(instance_apps).where(*key))).mappings().first()
    if row is not None:
        try:
            return InstanceApp(instance, row["client_id"], cipher.decrypt(row["client_secret"], context=context),
                               pkce=bool(row["pkce"]))
        except DecryptionError:
            async with engine.begin() as conn:
                await conn.execute(instance_apps.delete().where(*key))
    app = await adapter.register_app(instance, redirect_uri=redirect_uri, scopes=scopes)
    values: dict[str, Any] = {
        "platform": network, "instance": instance, "redirect_hash": redirect_hash, "redirect_uri": redirect_uri,
        "client_id": app.client_id, "client_secret": cipher.encrypt(app.client_secret, context=context),
        "pkce": app.pkce, "created_at": now,
    }
    try:
        async with engine.begin() as conn:
            await conn.execute(instance_apps.insert().values(**values))
    except IntegrityError:
        return await app_for(engine, adapter, instance=instance, redirect_uri=redirect_uri, scopes=scopes,
                             cipher=cipher, now=now)
    return app


async def bind_to_instance(
    engine: AsyncEngine, adapter: PlatformAdapter, *, instance: str, redirect_uri: str,
    scopes: Sequence[str] | None, allow_private: bool, cipher: Cipher, now: datetime,
) -> PlatformAdapter:
    """`adapter` bound to the server `instance` and its app (see the module doc)."""
    direct = adapter.http.base_url is None
    host = await checked_instance(instance, direct=direct, allow_private=allow_private)
    bindable: InstanceAdapter = adapter  # type: ignore[assignment]
    name = get_platform(adapter.network).name
    try:
        app = await app_for(engine, bindable, instance=host, redirect_uri=redirect_uri,
                            scopes=list(scopes or adapter.default_scopes), cipher=cipher, now=now)
    except (PermanentError, TokenExpiredError, NotSupportedError) as exc:
        raise _invalid(f"{host} refused to register Oui Post as a {name} app: {exc.message}") from exc
    except (RetryableError, UnknownOutcomeError) as exc:
        retry = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(max(1, int(retry)))} if retry else None
        raise errors.ServiceUnavailable(f"{host} did not answer usefully; try again",
                                        details={"instance": host}, headers=headers) from exc
    return bindable.for_instance(app)


async def bind_for_account(
    engine: AsyncEngine, adapter: PlatformAdapter, account: AccountRow, *, cipher: Cipher,
) -> PlatformAdapter:
    """`adapter` bound to the app an account of an instance-based network connected through (its
    server and client id are in the account's metadata), so that it can revoke the account's token;
    `adapter` itself when that app is no longer known or its secret no longer decrypts."""
    metadata = account.get("metadata") or {}
    instance, client_id = metadata.get("instance"), metadata.get("client_id")
    if not instance or not client_id:
        return adapter
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(instance_apps).where(
            instance_apps.c.platform == adapter.network, instance_apps.c.instance == instance,
        ))).mappings().all()
    for row in rows:
        if row["client_id"] != client_id:
            continue
        try:
            secret = cipher.decrypt(row["client_secret"], context=_context(adapter.network, instance,
                                                                           row["redirect_hash"]))
        except DecryptionError:
            return adapter
        bindable: InstanceAdapter = adapter  # type: ignore[assignment]
        return bindable.for_instance(InstanceApp(instance, client_id, secret, pkce=bool(row["pkce"])))
    return adapter
