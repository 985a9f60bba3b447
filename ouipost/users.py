"""Admin users: roles, permissions, argon2id password hashes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.db.tables import users
from ouipost.ids import new_id

ADMIN_PERMISSIONS: tuple[str, ...] = (
    "users.manage",
    "api_keys.manage",
    "workspaces.manage",
    "posts.manage",
    "analytics.view",
    "webhooks.manage",
    "audit.view",
)
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "admin": ADMIN_PERMISSIONS,
    "editor": ("posts.manage", "analytics.view"),
    "viewer": ("analytics.view",),
}
ROLES = tuple(ROLE_PERMISSIONS)
MIN_PASSWORD_LENGTH = 12
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+$")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def is_valid_email(value: str) -> bool:
    return len(value) <= 254 and _EMAIL.fullmatch(value) is not None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def find_by_email(conn: AsyncConnection, email: str) -> dict[str, Any] | None:
    row = (await conn.execute(sa.select(users).where(users.c.email == email.lower()))).mappings().first()
    return dict(row) if row else None


async def count_users(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(users)) or 0)


async def create_user(
    conn: AsyncConnection,
    *,
    email: str,
    password: str,
    name: str,
    role: str,
    permissions: Iterable[str] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """Insert a user; permissions default to the role's. The caller validates email and password."""
    if role not in ROLE_PERMISSIONS:
        raise ValueError(f"unknown role {role!r}")
    row = {
        "id": new_id("user"),
        "email": email.lower(),
        "name": name,
        "password_hash": hash_password(password),
        "role": role,
        "permissions": list(permissions) if permissions is not None else list(ROLE_PERMISSIONS[role]),
        "is_active": True,
        "created_at": now,
        "updated_at": now,
        "last_login_at": None,
    }
    await conn.execute(users.insert().values(**row))
    return row
