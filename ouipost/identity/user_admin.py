"""Admin users as the admin API manages them: listing, creation, changes, deletion, workspace grants,
and the rule that at least one active admin always remains.

The last-admin rule holds under concurrency: on MySQL the active admins' rows are locked (FOR UPDATE)
before the change, so two requests demoting two different admins serialise; on SQLite the change is
written first (taking the writer lock) and the count is read after it. Either way the check counts
active admins after the change, in the same transaction, and a violation rolls the change back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.db.pages import fetch_page
from ouipost.db.rows import UserRow, record, records
from ouipost.db.tables import users as users_table
from ouipost.db.tables import workspace_members, workspaces
from ouipost.identity import admin_auth, users
from ouipost.identity.audit import Actor, record_audit


def _email_taken() -> errors.Conflict:
    return errors.Conflict("A user with this e-mail already exists", details={"email": ["already in use"]})


async def get_user(conn: AsyncConnection, user_id: str) -> UserRow | None:
    row = (await conn.execute(sa.select(users_table).where(users_table.c.id == user_id))).mappings().first()
    return record(UserRow, row) if row else None


async def list_users(
    conn: AsyncConnection, *, page: int, limit: int, role: str | None = None, is_active: bool | None = None
) -> tuple[list[UserRow], int]:
    """One page of users, oldest first, and how many match."""
    conditions = []
    if role is not None:
        conditions.append(users_table.c.role == role)
    if is_active is not None:
        conditions.append(users_table.c.is_active == is_active)
    rows, total = await fetch_page(conn, users_table, where=conditions, order_by=[users_table.c.id], page=page,
                                   limit=limit)
    return records(UserRow, rows), total


async def workspaces_by_user(conn: AsyncConnection, user_ids: Sequence[str]) -> dict[str, list[str]]:
    grants: dict[str, list[str]] = {u: [] for u in user_ids}
    if not user_ids:
        return grants
    rows = await conn.execute(
        sa.select(workspace_members.c.user_id, workspace_members.c.workspace_id)
        .where(workspace_members.c.user_id.in_(user_ids))
        .order_by(workspace_members.c.workspace_id)
    )
    for user_id, workspace_id in rows:
        grants[user_id].append(workspace_id)
    return grants


async def missing_workspaces(conn: AsyncConnection, workspace_ids: Iterable[str]) -> list[str]:
    """The ids among `workspace_ids` that name no workspace."""
    wanted = list(dict.fromkeys(workspace_ids))
    if not wanted:
        return []
    found = set((await conn.execute(sa.select(workspaces.c.id).where(workspaces.c.id.in_(wanted)))).scalars())
    return [w for w in wanted if w not in found]


async def require_workspaces(conn: AsyncConnection, workspace_ids: Iterable[str]) -> None:
    """422 naming the ids that do not exist."""
    missing = await missing_workspaces(conn, workspace_ids)
    if missing:
        raise errors.ValidationError(
            "Unknown workspaces: " + ", ".join(missing), details={"workspaces": [f"No workspace {w}" for w in missing]}
        )


async def set_workspaces(conn: AsyncConnection, user_id: str, workspace_ids: Iterable[str], now: datetime) -> None:
    """Replace the user's workspace grants."""
    await conn.execute(workspace_members.delete().where(workspace_members.c.user_id == user_id))
    rows = [{"workspace_id": w, "user_id": user_id, "created_at": now} for w in dict.fromkeys(workspace_ids)]
    if rows:
        await conn.execute(workspace_members.insert(), rows)


def stored_permissions(role: str, permissions: Sequence[str] | None) -> list[str]:
    """What to store: the role's defaults when none are given; admins always hold all of them.

    Raises ValidationError when permissions short of all are given for an admin (admins cannot be
    restricted: they could grant themselves anything anyway).
    """
    if role == "admin":
        if permissions is not None and set(permissions) != set(users.ADMIN_PERMISSIONS):
            raise errors.ValidationError(
                "The admin role holds every permission; omit permissions or choose another role",
                details={"permissions": ["admins hold every permission"]},
            )
        return list(users.ADMIN_PERMISSIONS)
    if permissions is None:
        return list(users.ROLE_PERMISSIONS[role])
    return [p for p in users.ADMIN_PERMISSIONS if p in set(permissions)]


async def create_user(conn: AsyncConnection, body: Mapping[str, Any], now: datetime) -> UserRow:
    """Create a user with its grants. 409 when the e-mail is taken; 422 for unknown workspaces."""
    email = body["email"].lower()
    if await users.find_by_email(conn, email) is not None:
        raise _email_taken()
    await require_workspaces(conn, body.get("workspaces", []))
    role = body.get("role", "viewer")
    try:
        row = await users.create_user(
            conn, email=email, password=body["password"], name=body["name"], role=role,
            permissions=stored_permissions(role, body.get("permissions")), now=now,
        )
    except sa.exc.IntegrityError as exc:  # created by a concurrent request since the check
        raise _email_taken() from exc
    await set_workspaces(conn, row["id"], body.get("workspaces", []), now)
    return row


async def _lock_active_admins(conn: AsyncConnection) -> None:
    # SQLite has no row locks; its writer lock, taken by the change itself, serialises instead.
    if conn.dialect.name != "sqlite":
        await conn.execute(
            sa.select(users_table.c.id)
            .where(users_table.c.role == "admin", users_table.c.is_active.is_(True))
            .with_for_update()
        )


async def _require_an_active_admin(conn: AsyncConnection, what: str) -> None:
    remaining = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(users_table)
        .where(users_table.c.role == "admin", users_table.c.is_active.is_(True))
    )
    if not remaining:
        raise errors.Conflict(f"Cannot {what} the last active admin", details={"reason": "last_active_admin"})


async def update_user(
    conn: AsyncConnection, user: UserRow, changes: Mapping[str, Any], now: datetime
) -> tuple[UserRow, list[str]]:
    """Apply a partial update; returns the new row and the names of the fields that changed.

    409 when it would leave no active admin or the new e-mail is taken; 422 for unknown workspaces.
    Deactivation and a password change revoke the user's tokens.
    """
    values: dict[str, Any] = {}
    changed: list[str] = []
    if "email" in changes and changes["email"].lower() != user["email"]:
        email = changes["email"].lower()
        if await users.find_by_email(conn, email) is not None:
            raise _email_taken()
        values["email"] = email
    if "name" in changes and changes["name"] != user["name"]:
        values["name"] = changes["name"]
    if "password" in changes:
        values["password_hash"] = await users.hash_password_off_loop(changes["password"])
    role = changes.get("role", user["role"])
    if role != user["role"]:
        values["role"] = role
    if "permissions" in changes or role != user["role"]:
        permissions = stored_permissions(role, changes.get("permissions"))
        if permissions != list(user["permissions"]):
            values["permissions"] = permissions
    if "is_active" in changes and changes["is_active"] != user["is_active"]:
        values["is_active"] = changes["is_active"]
    if "workspaces" in changes:
        await require_workspaces(conn, changes["workspaces"])

    loses_admin = user["role"] == "admin" and user["is_active"] and (
        values.get("role", "admin") != "admin" or values.get("is_active", True) is False
    )
    if loses_admin:
        await _lock_active_admins(conn)
    if values:
        values["updated_at"] = now
        try:
            await conn.execute(users_table.update().where(users_table.c.id == user["id"]).values(**values))
        except sa.exc.IntegrityError as exc:
            raise _email_taken() from exc
        changed = [k if k != "password_hash" else "password" for k in values if k != "updated_at"]
    if loses_admin:
        await _require_an_active_admin(conn, "demote or deactivate")
    if "workspaces" in changes:
        before = (await workspaces_by_user(conn, [user["id"]]))[user["id"]]
        if sorted(before) != sorted(dict.fromkeys(changes["workspaces"])):
            await set_workspaces(conn, user["id"], changes["workspaces"], now)
            changed.append("workspaces")
    if values.get("is_active") is False or "password_hash" in values:
        await admin_auth.revoke_user_sessions(conn, user["id"], now)
    return record(UserRow, {**user, **values}), changed


async def delete_user(conn: AsyncConnection, user: UserRow) -> None:
    """Delete the user (their sessions and grants cascade). 409 for the last active admin."""
    is_active_admin = user["role"] == "admin" and user["is_active"]
    if is_active_admin:
        await _lock_active_admins(conn)
    await conn.execute(users_table.delete().where(users_table.c.id == user["id"]))
    if is_active_admin:
        await _require_an_active_admin(conn, "delete")


def user_view(row: UserRow, workspace_ids: Sequence[str]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "email": row["email"],
        "name": row["name"],
        "role": row["role"],
        "is_active": bool(row["is_active"]),
        "permissions": sorted(admin_auth.effective_permissions(row["role"], row["permissions"]),
                              key=users.ADMIN_PERMISSIONS.index),
        "workspaces": list(workspace_ids),
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
        "last_login": isoformat(row["last_login_at"]),
    }


# ------------------------------------------------------------------------------------------------
# The audit entries of user changes, written by the admin API and the admin UI alike (never a password)


async def audit_user_created(
    conn: AsyncConnection, actor: Actor, row: UserRow, workspace_ids: Sequence[str], now: datetime,
) -> None:
    await record_audit(conn, action="user.created", actor=actor, now=now, resource_type="user", resource_id=row["id"],
                       details={"email": row["email"], "role": row["role"], "workspaces": list(workspace_ids)})


async def audit_user_updated(
    conn: AsyncConnection, actor: Actor, before: UserRow, row: UserRow, changed: Sequence[str],
    now: datetime,
) -> None:
    """The entry for a change (nothing is written when nothing changed)."""
    if not changed:
        return
    details: dict[str, Any] = {"changed": list(changed)}
    if "role" in changed:
        details["role"] = {"from": before["role"], "to": row["role"]}
    if "is_active" in changed:
        details["is_active"] = row["is_active"]
    await record_audit(conn, action="user.updated", actor=actor, now=now, resource_type="user", resource_id=row["id"],
                       details=details)


async def audit_user_deleted(conn: AsyncConnection, actor: Actor, user: UserRow, now: datetime) -> None:
    await record_audit(conn, action="user.deleted", actor=actor, now=now, resource_type="user", resource_id=user["id"],
                       details={"email": user["email"], "role": user["role"]})
