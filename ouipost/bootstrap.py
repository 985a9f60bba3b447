"""Start-up duties: bring the schema up to date (or refuse to start), and the first-start admin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.db.migrations import MigrationError, migration_status, upgrade
from ouipost.identity import api_keys, users, workspaces

DEFAULT_ADMIN_EMAIL = "admin@localhost"


class StartupError(Exception):
    """The server cannot start; the message says why and what to do."""


async def prepare_database(engine: AsyncEngine, settings: Settings) -> None:
    """SQLite (the embedded default) migrates itself; MySQL only with OUIPOST_AUTO_MIGRATE=1,
    else it refuses to start while migrations are pending, so that N processes never race to
    alter a shared production schema."""
    try:
        if settings.is_sqlite or settings.auto_migrate:
            await upgrade(engine)
            return
        status = await migration_status(engine)
    except MigrationError as exc:
        raise StartupError(str(exc)) from exc
    if status.pending:
        raise StartupError(
            "the database schema is not up to date (at "
            f"{', '.join(status.current) or 'nothing'}, needs {', '.join(status.heads)}): "
            "run `python run.py migrate` first, or set OUIPOST_AUTO_MIGRATE=1"
        )


@dataclass(frozen=True)
class FirstStart:
    admin_email: str
    admin_password: str
    api_key: str
    workspace_id: str


async def first_start(engine: AsyncEngine, clock: Clock) -> FirstStart | None:
    """On an empty database: an admin, a "Default" workspace and an API key that reaches it.

    Returns what to print once, or None when the database already has users or keys.
    """
    now = clock.now()
    password = secrets.token_urlsafe(18)
    try:
        async with engine.begin() as conn:
            if await users.count_users(conn) or await api_keys.count_keys(conn):
                return None
            admin = await users.create_user(
                conn, email=DEFAULT_ADMIN_EMAIL, password=password, name="Administrator", role="admin", now=now
            )
            workspace = await workspaces.create_workspace(
                conn, name="Default", description="Created at first start", settings=None, now=now
            )
            key = await api_keys.create_key(
                conn, name="Default key", tier="enterprise", permissions=None,
                workspace_ids=[workspace["id"]], created_by=admin["id"], now=now,
            )
    except IntegrityError:
        return None  # another process bootstrapped at the same moment
    return FirstStart(DEFAULT_ADMIN_EMAIL, password, key.secret, workspace["id"])


def first_start_banner(info: FirstStart, public_url: str) -> str:
    return "\n".join([
        "",
        "First start: created an admin, a workspace and an API key. They are shown once; keep them.",
        f"  Admin login : {info.admin_email}  password: {info.admin_password}",
        f"  API key     : {info.api_key}",
        f"  Workspace   : {info.workspace_id}  (Default)",
        "",
        "Try:",
        f'  curl -H "X-API-Key: {info.api_key}" {public_url}/api/workspaces',
        "",
    ])
