"""`publish_post`: send a post to each of its networks, exactly once per target.

Per target: pending -> publishing (committed before the network is called) -> published | failed,
or back to pending after a retryable error (the job then retries, honouring the network's
retry-after). See ouipost/publishing.py for the state machine and why a target found in
`publishing` is never sent again blindly.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

from ouipost import accounts, pacing, publishing
from ouipost.admin.monitoring import PlatformCallLog
from ouipost.crypto import Cipher
from ouipost.events import record_event
from ouipost.platforms import NetworkNotConfigured, make_adapter
from ouipost.platforms.base import (
    MediaFile,
    NotSupportedError,
    PermanentError,
    PlatformError,
    PublishRequest,
    RetryableError,
    TokenExpiredError,
    UnknownOutcomeError,
)
from ouipost.platforms.http import PlatformHttp
from ouipost.platforms.registry import get_platform
from ouipost.posts import validation
from ouipost.queue import RetryJob
from ouipost.storage import Storage, storage_from_settings
from ouipost.text import effective_text
from workers.periodic import hand_over_unique_key
from workers.worker import JobContext

KIND = publishing.PUBLISH_KIND
log = logging.getLogger(__name__)
MEDIA_URL_TTL = 6 * 3600  # networks fetch pull-from-URL media minutes to hours after the call


async def handle(context: JobContext) -> None:
    """Publish every pending target of the post in the payload. Raises RetryJob while some target
    waits for a retryable error to pass; the post reaches a final status otherwise.

    A target held back by pacing stays pending and the post gets a fresh job at the time pacing
    names (this one hands it its unique key and ends), so waiting never uses up attempts. Every
    adapter call is recorded for platform health, in the transaction that finishes the run."""
    engine, now = context.engine, context.clock.now()
    post_id = context.payload["post_id"]
    async with engine.begin() as conn:
        post = await publishing.begin_run(conn, post_id, now)
        if post is None:
            return
        targets = await publishing.targets_to_run(conn, post_id)
        media = await publishing.media_rows(conn, post_id)
    settings = context.settings
    if settings is None or context.http is None:
        raise RuntimeError("publish_post needs the worker's settings and HTTP session")
    storage = storage_from_settings(settings)
    cipher = Cipher(settings.secret_key)
    calls = PlatformCallLog(context.clock.now)
    http = PlatformHttp(context.http, base_url=settings.effective_platform_base_url, observer=calls.observe)
    retry_after: list[float] = []
    errored: list[str] = []
    held: list[float] = []
    try:
        for target in targets:
            outcome = await _publish_target(context, post, target, media, storage, cipher, http)
            if isinstance(outcome, pacing.Hold):
                held.append(outcome.seconds)
            elif outcome is not None:
                retry_after.append(outcome)
                errored.append(target["id"])
    except BaseException:
        await _flush_calls(engine, calls)
        raise
    finally:
        await storage.close()
    async with engine.begin() as conn:
        await calls.flush(conn)
        now = context.clock.now()
        if retry_after and context.attempts >= context.job.max_attempts:
            message = "The network kept answering with temporary errors"
            if held:  # only the targets that erred give up; the held ones are merely late
                for target_id in errored:
                    await publishing.mark_target_failed(conn, target_id, "RETRIES_EXHAUSTED", message, now)
            else:
                await publishing.fail_remaining(conn, post_id, message, now)
            retry_after = []
        final = await publishing.finish_post(conn, post_id, now)
        if held and not retry_after and final is None:
            # Late, not failed: a fresh job (attempts from zero) takes over this job's unique key.
            await hand_over_unique_key(conn, context.job)
            await publishing.upsert_publish_job(conn, post_id, now + timedelta(seconds=min(held)),
                                                priority=publishing.PUBLISH_PRIORITY_NOW, now=now)
    if retry_after and final is None:
        raise RetryJob("some networks asked to try again later", retry_after=max(retry_after))


async def _flush_calls(engine: Any, calls: PlatformCallLog) -> None:
    # The run failed before its final transaction: record its calls on their own (best effort).
    try:
        async with engine.begin() as conn:
            await calls.flush(conn)
    except Exception as exc:
        log.warning("could not record %d platform call(s): %s", len(calls.calls), exc)


async def _publish_target(
    context: JobContext, post: Mapping[str, Any], target: Mapping[str, Any], media: list[dict[str, Any]],
    storage: Storage, cipher: Cipher, http: PlatformHttp,
) -> float | pacing.Hold | None:
    """Run one target; returns a retry-after (seconds, 0 for backoff) when it should be tried again,
    or a pacing Hold when it must wait its turn (nothing was sent; it stays pending)."""
    engine, clock = context.engine, context.clock
    if target["status"] == "publishing":
        async with engine.begin() as conn:
            await publishing.mark_target_failed(
                conn, target["id"], "OUTCOME_UNKNOWN",
                "Publishing was interrupted after the request may have reached the network; check the account "
                "and publish again if the post is missing", clock.now(),
            )
        return None
    async with engine.begin() as conn:
        account = await _account(conn, target)
        if account is None or account["status"] != "active":
            await publishing.mark_target_failed(
                conn, target["id"], "ACCOUNT_UNAVAILABLE", "The account is disconnected or needs reconnecting",
                clock.now(),
            )
            return None
        # Pacing's turn and the move to `publishing` commit together: a held target is untouched.
        admission = await pacing.admit(conn, network=target["network"], account_id=account["id"],
                                       holder=f"job {context.id} {target['id']}", now=clock.now(),
                                       config=context.settings.pacing)
        if isinstance(admission, pacing.Hold):
            return admission
        if not await publishing.mark_target_publishing(conn, target["id"], clock.now()):
            await pacing.release(conn, admission)
            return None  # another run took it
    try:
        return await _send(context, post, target, account, media, storage, cipher, http)
    finally:
        if admission.slot is not None:
            try:
                async with engine.begin() as conn:
                    await pacing.release(conn, admission)
            except Exception as exc:  # the slot's lease frees it later
                log.warning("could not free %s slot %s: %s", admission.network, admission.slot, exc)


async def _send(
    context: JobContext, post: Mapping[str, Any], target: Mapping[str, Any], account: Mapping[str, Any],
    media: list[dict[str, Any]], storage: Storage, cipher: Cipher, http: PlatformHttp,
) -> float | None:
    """Call the network for a target already marked `publishing`, and store its outcome."""
    engine, clock = context.engine, context.clock
    try:
        adapter = make_adapter(target["network"], http, context.settings)  # type: ignore[arg-type]
    except NetworkNotConfigured as exc:
        async with engine.begin() as conn:
            await publishing.mark_target_failed(conn, target["id"], "NETWORK_NOT_CONFIGURED", str(exc), clock.now())
        return None
    request = _publish_request(post, account, target["network"], media, storage)
    try:
        result = await accounts.call_with_refresh(
            engine, adapter, account, cipher, clock.now(), lambda auth: adapter.publish(auth, request)
        )
    except RetryableError as exc:
        async with engine.begin() as conn:
            await publishing.mark_target_pending(conn, target["id"], exc.message, clock.now())
        return exc.retry_after or 0.0
    except TokenExpiredError as exc:
        async with engine.begin() as conn:
            await publishing.mark_target_failed(conn, target["id"], "TOKEN_EXPIRED",
                                                f"Reconnect the account: {exc.message}", clock.now())
            await record_event(conn, "account.expired", {"account": accounts.account_view(
                {**account, "status": "expired"}, now=clock.now())}, workspace_id=account["workspace_id"],
                now=clock.now())
        return None
    except UnknownOutcomeError as exc:
        async with engine.begin() as conn:
            await publishing.mark_target_failed(conn, target["id"], "OUTCOME_UNKNOWN", exc.message, clock.now())
        return None
    except (PermanentError, NotSupportedError) as exc:
        code = "NOT_SUPPORTED" if isinstance(exc, NotSupportedError) else (exc.code or "REJECTED_BY_NETWORK")
        async with engine.begin() as conn:
            await publishing.mark_target_failed(conn, target["id"], str(code), exc.message, clock.now())
        return None
    except PlatformError as exc:  # any other outcome an adapter reports: never re-sent blindly
        async with engine.begin() as conn:
            await publishing.mark_target_failed(conn, target["id"], "OUTCOME_UNKNOWN", exc.message, clock.now())
        return None
    async with engine.begin() as conn:
        await publishing.mark_target_published(conn, target["id"], result.remote_id, result.url, clock.now())
    return None


async def _account(conn: Any, target: Mapping[str, Any]) -> dict[str, Any] | None:
    import sqlalchemy as sa

    from ouipost.db.tables import social_accounts

    if not target["account_id"]:
        return None
    row = (await conn.execute(sa.select(social_accounts).where(social_accounts.c.id == target["account_id"])))\
        .mappings().first()
    return dict(row) if row else None


def _publish_request(
    post: Mapping[str, Any], account: Mapping[str, Any], network: str, media: list[dict[str, Any]], storage: Storage,
) -> PublishRequest:
    """The post as this network gets it: its override, hashtags (plus the account's automatic ones),
    the link in the text or apart, and the media it selects."""
    spec = get_platform(network)
    override = (post["platform_content"] or {}).get(network) or {}
    hashtags = list(override.get("hashtags") or post["hashtags"] or [])
    settings = account["settings"] or {}
    if settings.get("auto_hashtags"):
        present = {h.lower() for h in hashtags}
        hashtags += [t for t in settings.get("default_hashtags") or [] if t.lower() not in present]
    link = override.get("link", post["link"])
    text = effective_text(override.get("content", post["content"]), hashtags, link, spec)
    infos = [validation.MediaInfo(id=m["id"], kind=m["type"], duration=m["duration"], width=m["width"],
                                  height=m["height"]) for m in media]
    selected, _ = validation.select_media(infos, override.get("media_ids"))
    by_id = {m["id"]: m for m in media}
    return PublishRequest(
        text=text,
        title=override.get("title", post["title"]),
        link=link if spec.separate_link_field else None,
        media=[_media_file(by_id[item.id], storage) for item in selected],
        options=dict(override.get("options") or {}),
    )


def _media_file(row: Mapping[str, Any], storage: Storage) -> MediaFile:
    async def stream(chunk_size: int) -> AsyncIterator[bytes]:
        async for chunk in await storage.open(row["storage_key"], chunk_size):
            yield chunk

    return MediaFile(
        kind="video" if row["type"] == "video" else "image", mime_type=row["mime_type"], size=row["size"],
        url=storage.url(row["storage_key"], expires_in=MEDIA_URL_TTL), stream=stream, filename=row["filename"],
        width=row["width"], height=row["height"], duration=row["duration"], alt_text=row["alt_text"],
    )
