"""The bridge between a post as stored and the network rules of `ouipost.posts.validation`.

`check` runs the same rules for create, update and validate: errors that block a draft now, and the
errors that would block scheduling or publishing (media a network requires, targets without an
active account), each keyed by network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.accounts.statuses import AccountStatus
from ouipost.db.rows import MediaRow
from ouipost.db.tables import social_accounts
from ouipost.platforms.registry import get_platform
from ouipost.platforms.text import count_text, effective_text
from ouipost.posts import validation
from ouipost.posts.service import Target, target_networks
from ouipost.storage import Storage

MEDIA_URL_TTL = 3600  # seconds a signed media URL in an answer stays valid


@dataclass
class Report:
    errors: dict[str, list[str]] = field(default_factory=dict)
    publish_errors: dict[str, list[str]] = field(default_factory=dict)
    platforms: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": not self.errors,
            "ready_to_publish": not self.errors and not self.publish_errors,
            "errors": self.errors,
            "publish_errors": self.publish_errors,
            "platforms": self.platforms,
        }


def _media_infos(media: Sequence[MediaRow]) -> list[validation.MediaInfo]:
    return [
        validation.MediaInfo(
            id=m["id"], kind=m["type"], duration=m.get("duration"), width=m.get("width"), height=m.get("height")
        )
        for m in media
    ]


async def default_accounts(conn: AsyncConnection, workspace_id: str, networks: Iterable[str]) -> dict[str, str]:
    """network -> the account a network name targets: is_default, else the earliest active one."""
    rows = await conn.execute(
        sa.select(social_accounts.c.id, social_accounts.c.platform, social_accounts.c.is_default)
        .where(
            social_accounts.c.workspace_id == workspace_id,
            social_accounts.c.platform.in_(list(networks)),
            social_accounts.c.status == AccountStatus.ACTIVE,
        )
        .order_by(social_accounts.c.connected_at, social_accounts.c.id)
    )
    chosen: dict[str, str] = {}
    for row in rows:
        if row.is_default or row.platform not in chosen:
            chosen[row.platform] = row.id
    return chosen


def _draft(body: Mapping[str, Any], networks: list[str], media: Sequence[MediaRow],
           account_limits: dict[str, Mapping[str, Any]] | None = None) -> validation.DraftPost:
    overrides: Mapping[str, Mapping[str, Any]] = body.get("platform_content") or {}
    return validation.DraftPost(
        content=body["content"], title=body.get("title"), link=body.get("link"),
        hashtags=list(body.get("hashtags") or []), networks=networks,
        platform_content={k: dict(v) for k, v in overrides.items() if k in networks},
        media=_media_infos(media), account_limits=account_limits or {},
        thread=list(body.get("thread") or []), thread_mode=body.get("thread_mode"),
        first_comment=body.get("first_comment"),
    )


async def server_limits(
    conn: AsyncConnection, targets: Sequence[Target], defaults: Mapping[str, str],
) -> dict[str, Mapping[str, Any]]:
    """network -> the limits of the target account's server, for instance-based networks (Mastodon)
    whose account is known; no read when the post targets none of them."""
    wanted = {t.account_id or defaults.get(t.network): t.network for t in targets
              if get_platform(t.network).instance_based}
    ids = [account_id for account_id in wanted if account_id]
    if not ids:
        return {}
    rows = await conn.execute(sa.select(social_accounts.c.platform, social_accounts.c.metadata)
                              .where(social_accounts.c.id.in_(ids)))
    return validation.strictest_limits((row.platform, (row.metadata or {}).get("limits") or {}) for row in rows)


def draft_errors(
    body: Mapping[str, Any], targets: Sequence[Target], media: Sequence[MediaRow],
) -> dict[str, list[str]]:
    """The errors that block a draft now (the `errors` of `check`), keyed by network; no database
    read: what create and update refuse a post for, without what only scheduling needs."""
    networks = target_networks(targets)
    errors: dict[str, list[str]] = {}
    for key in body.get("platform_content") or {}:
        if key not in networks:
            errors.setdefault(key, []).append(f"platform_content for {key}, but the post does not target {key}")
    draft = _draft(body, networks, media)
    for network, problems in validation.validate_for_networks(draft, require_media=False).items():
        errors.setdefault(network, []).extend(problems)
    return errors


async def check(
    conn: AsyncConnection, workspace_id: str, body: Mapping[str, Any], targets: Sequence[Target],
    media: Sequence[MediaRow],
) -> Report:
    """Every rule a post must obey for its target networks; nothing is written."""
    report = Report(errors=draft_errors(body, targets, media))
    networks = target_networks(targets)
    overrides: Mapping[str, Mapping[str, Any]] = body.get("platform_content") or {}
    accounts = await default_accounts(conn, workspace_id, networks)
    limits = await server_limits(conn, targets, accounts)
    draft = _draft(body, networks, media, limits)
    if limits:  # the servers' own limits, known now that the accounts are: what a draft must obey there
        for network, problems in validation.validate_for_networks(draft, require_media=False).items():
            known = report.errors.setdefault(network, [])
            known.extend(p for p in problems if p not in known)
    for network, problems in validation.validate_for_networks(draft, require_media=True).items():
        extra = [p for p in problems if p not in report.errors.get(network, [])]
        if extra:
            report.publish_errors.setdefault(network, []).extend(extra)

    for target in targets:
        if target.account_id is None and target.network not in accounts:
            report.publish_errors.setdefault(target.network, []).append(
                f"No active {get_platform(target.network).name} account is connected to this workspace"
            )

    for network in networks:
        spec = validation.with_account_limits(get_platform(network), limits.get(network, {}))
        override = overrides.get(network, {})
        text = effective_text(
            override.get("content", body["content"]),
            override.get("hashtags", body.get("hashtags") or []),
            override.get("link", body.get("link")),
            spec,
        )
        report.platforms[network] = {
            "text": text,
            "characters": count_text(text, spec.text_counting),
            "max_characters": spec.max_characters,
            "counting": spec.text_counting,
        }
    return report


def media_urls(storage: Storage, media: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str | None]]:
    """Signed, expiring URLs for media rows (and their thumbnails); a list's media need only
    storage_key and thumbnail_key (service.LIST_MEDIA_COLUMNS)."""
    return {
        m["id"]: {
            "url": storage.url(m["storage_key"], expires_in=MEDIA_URL_TTL),
            "thumbnail_url": storage.url(m["thumbnail_key"], expires_in=MEDIA_URL_TTL) if m["thumbnail_key"] else None,
        }
        for m in media
    }


async def forget_media_files(storage: Storage, media: Sequence[MediaRow]) -> None:
    """Delete stored files of media rows already gone from the database (best effort, idempotent)."""
    for m in media:
        for key in (m["storage_key"], m["thumbnail_key"]):
            if key:
                await storage.delete(key)
