"""Admin users: roles, permissions, argon2id password hashes.

An argon2id hash or check costs about half a second of CPU by design, so it never runs on the event
loop: `PasswordHashing` (one per app, at `context.PASSWORDS`) runs checks in a small thread pool of
its own and lets only as many in at once as there are CPUs, so that a flood of logins waits its turn
instead of freezing or starving everything else. Code without the app at hand (the CLI, user admin)
hashes through `hash_password_off_loop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core.ids import new_id
from ouipost.db.rows import UserRow, record
from ouipost.db.tables import users

ADMIN_PERMISSIONS: tuple[str, ...] = (
    "users.manage",
    "api_keys.manage",
    "workspaces.manage",
    "posts.manage",
    "posts.approve",
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
T = TypeVar("T")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def is_valid_email(value: str) -> bool:
    return len(value) <= 254 and _EMAIL.fullmatch(value) is not None


def hash_password(password: str) -> str:
    """The argon2id hash of `password`. CPU-bound (~0.5 s): call it off the event loop."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches `password_hash`; False for a malformed hash too. CPU-bound."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_off_loop(password: str) -> str:
    """hash_password in a worker thread, for callers without a PasswordHashing at hand (user admin,
    the CLI): they are few and authenticated, so the default thread pool bounds them well enough."""
    return await asyncio.to_thread(hash_password, password)


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, narrower than the machine's in containers)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PasswordHashing:
    """argon2id hashing and checking off the event loop, with a bounded number in flight.

    A check waits on a semaphore (`concurrency` slots, the CPU count by default) before it is handed
    to a pool of as many threads: while waiting it costs nothing and can be cancelled (a client that
    hangs up never gets its password hashed), and the pool never holds a backlog. A caller that must
    wait before it takes a scarce resource (a database connection) takes its turn first with
    `async with hashing.turn():`; checks made inside that block use the turn instead of waiting again.
    """

    def __init__(self, concurrency: int | None = None) -> None:
        self.concurrency = max(1, concurrency or _usable_cpus())
        self._slots = asyncio.Semaphore(self.concurrency)
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="argon2")
        self._holding: contextvars.ContextVar[bool] = contextvars.ContextVar(f"argon2_turn_{id(self)}", default=False)
        self._dummy: str | None = None

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one of the slots (reentrant within the task)."""
        if self._holding.get():
            yield
            return
        async with self._slots:
            token = self._holding.set(True)
            try:
                yield
            finally:
                self._holding.reset(token)

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        async with self.turn():
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether the password matches; False for a malformed hash."""
        return await self._run(verify_password, password_hash, password)

    async def dummy_hash(self) -> str:
        """A hash of a random password nobody knows: checked against for unknown e-mails so that they
        cost what real ones cost (made once, off the loop)."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(24))
        return self._dummy

    def close(self) -> None:
        """Stop the threads once running checks end; no new check may start."""
        self._executor.shutdown(wait=False, cancel_futures=True)


async def find_by_email(conn: AsyncConnection, email: str) -> UserRow | None:
    row = (await conn.execute(sa.select(users).where(users.c.email == email.lower()))).mappings().first()
    return record(UserRow, row) if row else None


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
) -> UserRow:
    """Insert a user; permissions default to the role's. The caller validates email and password."""
    if role not in ROLE_PERMISSIONS:
        raise ValueError(f"unknown role {role!r}")
    row: UserRow = {
        "id": new_id("user"),
        "email": email.lower(),
        "name": name,
        "password_hash": await hash_password_off_loop(password),
        "role": role,
        "permissions": list(permissions) if permissions is not None else list(ROLE_PERMISSIONS[role]),
        "is_active": True,
        "created_at": now,
        "updated_at": now,
        "last_login_at": None,
    }
    await conn.execute(users.insert().values(**row))
    return row
