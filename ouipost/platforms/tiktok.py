"""TikTok: Login Kit v2 OAuth and the Content Posting API v2 (shared/platforms.md section 5).

Flows:
- Connect: consent at www.tiktok.com/v2/auth/authorize/ (web client: no PKCE), code -> tokens at
  /v2/oauth/token/, then the creator from /v2/user/info/. Refresh tokens rotate on every refresh.
- Video: creator_info query (privacy options, max duration) -> video/init with FILE_UPLOAD ->
  chunked PUTs with Content-Range to the returned upload_url -> status/fetch until PUBLISH_COMPLETE.
- Photos (1..35, JPEG/WEBP): creator_info -> content/init with PULL_FROM_URL (TikTok downloads our
  signed media URLs) -> status/fetch polling.
- Text-only posts and deletion do not exist in this API (NotSupportedError).

A public post id appears only after moderation; when it is not there yet by the end of
`post_id_wait`, the result's remote_id is the publish_id (extra["post_id_pending"]) and
`post_insights` resolves it later through status/fetch.
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

from ouipost.platforms.base import (
    AccountAuth,
    AccountStats,
    AuthorizationRequest,
    ConnectedIdentity,
    Insights,
    MediaFile,
    NotSupportedError,
    PermanentError,
    PlatformAdapter,
    PublishRequest,
    PublishResult,
    RetryableError,
    TokenExpiredError,
    TokenSet,
    UnknownOutcomeError,
)
from ouipost.platforms.http import PlatformResponse

log = logging.getLogger(__name__)

API = "https://open.tiktokapis.com/v2"
AUTHORIZE_URL = "https://www.tiktok.com/v2/auth/authorize/"
MIB = 1024 * 1024
SINGLE_CHUNK_BELOW = 5 * MIB  # TikTok: files under 5 MB go as one chunk
MAX_SINGLE_CHUNK = 64 * MIB  # files over 64 MB must be split
DAY = 86400.0

# error.code -> how the worker should treat it (see "Consolidated retry classification").
TOKEN_CODES = {"access_token_invalid"}
RECONNECT_CODES = {"scope_not_authorized", "scope_permission_missed"}
RATE_CODES = {"rate_limit_exceeded"}
# Daily caps: reschedule after the window instead of hammering the API.
DEFERRED_CODES = {"spam_risk_too_many_posts", "spam_risk_too_many_pending_share", "reached_active_user_cap"}
RETRY_CODES = {"internal_error"}
# FAILED fail_reason values worth one more try (TikTok could not download our media).
RETRY_FAIL_REASONS = {"video_pull_failed", "photo_pull_failed"}
PHOTO_TYPES = {"image/jpeg", "image/jpg", "image/webp"}
VIDEO_TYPES = {"video/mp4", "video/quicktime", "video/webm"}


class TikTokAdapter(PlatformAdapter):
    """TikTok creators: videos (direct post, chunked upload) and photo posts."""

    network = "tiktok"
    default_scopes = (
        "user.info.basic", "user.info.profile", "user.info.stats", "video.publish", "video.list",
    )
    uses_pkce = False  # PKCE is for TikTok's mobile/desktop clients only; we are a web client

    chunk_size: int = 10 * MIB  # between 5 and 64 MiB (TikTok's rule)
    poll_interval: float = 3.0  # status/fetch allows 30 requests per minute
    media_poll_attributes: ClassVar[tuple[str, ...]] = ("poll_interval",)
    publish_timeout: float = 600.0  # how long to wait for PUBLISH_COMPLETE
    post_id_wait: float = 30.0  # after PUBLISH_COMPLETE, how long to wait for the public post id
    rate_limit_wait: float = 60.0  # TikTok sends no Retry-After; its windows are one minute

    # OAuth -------------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """TikTok's consent URL (scopes comma-separated, as TikTok wants them)."""
        query = urlencode({
            "client_key": self.credentials.client_id,
            "response_type": "code",
            "scope": ",".join(scopes or self.default_scopes),
            "redirect_uri": redirect_uri,
            "state": state,
        })
        return AuthorizationRequest(url=self.http.url(f"{AUTHORIZE_URL}?{query}"))

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Code -> tokens -> the creator. PermanentError when TikTok refuses the code."""
        form = {
            "client_key": self.credentials.client_id,
            "client_secret": self.credentials.client_secret,
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        tokens = await self._token_request(form, refreshing=False)
        auth = AccountAuth(remote_id="", access_token=tokens.access_token)
        fields = ["open_id", "union_id", "avatar_url", "display_name"]
        if "user.info.profile" in tokens.scopes:
            fields.append("username")
        data = await self._call("GET", f"{API}/user/info/?fields={','.join(fields)}", auth)
        user = data.get("user") or {}
        return [
            ConnectedIdentity(
                remote_id=str(user.get("open_id", "")),
                type="creator",
                name=str(user.get("display_name") or user.get("username") or ""),
                username=user.get("username"),
                profile_image=user.get("avatar_url"),
                token=tokens,
                permissions=list(tokens.scopes),
                metadata={"username": user.get("username"), "union_id": user.get("union_id")},
            )
        ]

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """A new token pair. TikTok rotates the refresh token: store the returned one."""
        if not auth.refresh_token:
            raise TokenExpiredError("no TikTok refresh token stored; reconnect", network=self.network)
        return await self._token_request(
            {
                "client_key": self.credentials.client_id,
                "client_secret": self.credentials.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": auth.refresh_token,
            },
            refreshing=True,
        )

    async def revoke(self, auth: AccountAuth) -> None:
        """Revoke the grant at TikTok. Best effort: failures are logged, never raised."""
        try:
            resp = await self.http.request(
                "POST", f"{API}/oauth/revoke/", network=self.network,
                data={"client_key": self.credentials.client_id,
                      "client_secret": self.credentials.client_secret,
                      "token": auth.access_token},
            )
        except (RetryableError, UnknownOutcomeError) as exc:
            log.warning("tiktok revoke failed: %s", exc)
            return
        if not resp.ok:
            log.warning("tiktok revoke answered %s: %s", resp.status, resp.text[:200])

    async def _token_request(self, form: dict[str, str], *, refreshing: bool) -> TokenSet:
        resp = await self.http.request("POST", f"{API}/oauth/token/", network=self.network, data=form)
        body = resp.json()
        if resp.status >= 500:
            raise RetryableError(f"tiktok token endpoint answered {resp.status}", network=self.network,
                                 status=resp.status)
        if resp.status == 429:
            raise RetryableError("tiktok token endpoint rate limited", network=self.network,
                                 retry_after=self.rate_limit_wait, status=429)
        if not resp.ok or not body.get("access_token"):
            err = body.get("error")
            error = str((err.get("code") if isinstance(err, dict) else err) or "invalid_grant")
            message = f"tiktok refused the token request: {error}: {body.get('error_description', '')}"
            if refreshing and error in ("invalid_grant", "invalid_request"):
                raise TokenExpiredError(message, network=self.network, code=error, status=resp.status)
            raise PermanentError(message, network=self.network, code=error, status=resp.status)
        now = self.clock.now()
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=now + timedelta(seconds=int(body.get("expires_in", 0))),
            refresh_expires_at=(now + timedelta(seconds=int(body["refresh_expires_in"]))
                                if body.get("refresh_expires_in") else None),
            scopes=[s for s in str(body.get("scope", "")).split(",") if s],
        )

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Post a video or a photo set directly to the creator's profile.

        NotSupportedError for text-only posts; PermanentError for content TikTok refuses (PNG photos,
        mixed media, privacy level the creator cannot use, failed checks); RetryableError when
        nothing was published; UnknownOutcomeError when TikTok may still publish the post.
        """
        images = [m for m in post.media if m.kind == "image"]
        videos = [m for m in post.media if m.kind == "video"]
        if not post.media:
            raise NotSupportedError("TikTok posts need a video or photos; text-only posts do not exist",
                                    network=self.network, code="media_required")
        if images and videos:
            raise PermanentError("TikTok cannot mix photos and a video in one post", network=self.network,
                                 code="mixed_media")
        if len(videos) > 1:
            raise PermanentError("TikTok posts hold one video", network=self.network, code="too_many_videos")
        if len(images) > 35:
            raise PermanentError("TikTok photo posts hold at most 35 photos", network=self.network,
                                 code="too_many_photos")
        bad = [m.filename for m in images if m.mime_type.lower() not in PHOTO_TYPES]
        if bad:
            raise PermanentError(f"TikTok photos must be JPEG or WEBP (not PNG or others): {', '.join(bad)}",
                                 network=self.network, code="file_format_check_failed")

        # A query (POST only by TikTok's design): a lost answer changes nothing at TikTok.
        creator = await self._call("POST", f"{API}/post/publish/creator_info/query/", auth, json={}, idempotent=True)
        privacy = self._privacy_level(creator, post.options)
        username = creator.get("creator_username") or auth.metadata.get("username")
        if videos:
            video = videos[0]
            max_duration = creator.get("max_video_post_duration_sec")
            if video.duration is not None and max_duration and video.duration > float(max_duration):
                raise PermanentError(
                    f"the video lasts {video.duration:.0f} s; this creator may post at most {max_duration} s",
                    network=self.network, code="duration_check_failed")
            publish_id = await self._init_video(auth, post, video, privacy)
            kind = "video"
        else:
            publish_id = await self._init_photos(auth, post, images, privacy)
            kind = "photo"
        return await self._await_publication(auth, publish_id, kind, username)

    def _privacy_level(self, creator: dict[str, Any], options: dict[str, Any]) -> str:
        offered = list(creator.get("privacy_level_options") or [])
        wanted = options.get("privacy_level")
        if wanted:
            if wanted not in offered:
                raise PermanentError(
                    f"privacy level {wanted} is not available for this creator (offered: {', '.join(offered)})",
                    network=self.network, code="privacy_level_option_mismatch")
            return str(wanted)
        # Public when the creator can post publicly; otherwise the most private level, which every
        # account (and every unaudited app, which TikTok forces to SELF_ONLY) accepts.
        for level in ("PUBLIC_TO_EVERYONE", "SELF_ONLY"):
            if level in offered:
                return level
        if offered:
            return str(offered[0])
        raise PermanentError("TikTok offers this creator no privacy level; they cannot post now",
                             network=self.network, code="privacy_level_option_mismatch")

    def _post_info(self, post: PublishRequest, privacy: str) -> dict[str, Any]:
        opts = post.options
        return {
            "privacy_level": privacy,
            "disable_comment": bool(opts.get("disable_comment", False)),
            "brand_content_toggle": bool(opts.get("brand_content_toggle", False)),
            "brand_organic_toggle": bool(opts.get("brand_organic_toggle", False)),
        }

    async def _init_video(self, auth: AccountAuth, post: PublishRequest, video: MediaFile,
                          privacy: str) -> str:
        if video.mime_type.lower() not in VIDEO_TYPES:
            raise PermanentError(f"TikTok takes MP4, MOV or WebM videos, not {video.mime_type}",
                                 network=self.network, code="file_format_check_failed")
        size = video.size
        chunk, count = self.chunk_geometry(size)
        info = self._post_info(post, privacy)
        info.update({
            "title": post.text,
            "disable_duet": bool(post.options.get("disable_duet", False)),
            "disable_stitch": bool(post.options.get("disable_stitch", False)),
            "is_aigc": bool(post.options.get("is_aigc", False)),
        })
        if "video_cover_timestamp_ms" in post.options:
            info["video_cover_timestamp_ms"] = int(post.options["video_cover_timestamp_ms"])
        body = {"post_info": info, "source_info": {"source": "FILE_UPLOAD", "video_size": size,
                                                   "chunk_size": chunk, "total_chunk_count": count}}
        try:
            data = await self._call("POST", f"{API}/post/publish/video/init/", auth, json=body)
        except UnknownOutcomeError as exc:
            # A FILE_UPLOAD init without its bytes can never become a post: safe to start over.
            raise RetryableError("tiktok video init was lost before the upload; nothing was published",
                                 network=self.network) from exc
        publish_id, upload_url = str(data["publish_id"]), str(data["upload_url"])
        await self._upload_chunks(auth, publish_id, upload_url, video, chunk, count)
        return publish_id

    def chunk_geometry(self, size: int) -> tuple[int, int]:
        """(chunk_size, total_chunk_count) under TikTok's rules for a file of `size` bytes.

        Small files (< 5 MB, or not larger than one chunk) go whole; otherwise chunk_size is the
        adapter's and the remainder rides on the last chunk (TikTok's floor(size / chunk) rule).
        """
        if size < SINGLE_CHUNK_BELOW or (size <= self.chunk_size and size <= MAX_SINGLE_CHUNK):
            return size, 1
        return self.chunk_size, size // self.chunk_size

    async def _upload_chunks(self, auth: AccountAuth, publish_id: str, upload_url: str, video: MediaFile,
                             chunk: int, count: int) -> None:
        first = 0
        index = 0
        async for data in _regroup(video.stream(min(chunk, MIB)), chunk, count, video.size):
            last = first + len(data) - 1
            final = index == count - 1
            headers = {"Content-Type": video.mime_type, "Content-Range": f"bytes {first}-{last}/{video.size}"}
            try:
                # BytesIO: aiohttp warns that large raw bytes bodies may block the event loop.
                resp = await self.http.request("PUT", upload_url, network=self.network,
                                               data=io.BytesIO(data), headers=headers)
            except RetryableError:
                if not final:
                    # TikTok publishes nothing until the last chunk is in: start over later.
                    raise
                # The last chunk may have arrived: ask TikTok before deciding.
                await self._after_lost_final_chunk(auth, publish_id, video.size)
                return
            if resp.status not in (200, 201, 206):
                # An error answer to the last chunk may follow a send of it that got through (its
                # answer lost, the request sent again by the HTTP client or a proxy: "the upload is
                # already complete"): TikTok publishes then, so ask it before believing the error.
                if final and await self._whole_file_arrived(auth, publish_id, video.size):
                    return
                self._raise_for(resp, resp.json(), what="chunk upload")
            first = last + 1
            index += 1

    async def _after_lost_final_chunk(self, auth: AccountAuth, publish_id: str, size: int) -> None:
        if not await self._whole_file_arrived(auth, publish_id, size):
            raise RetryableError("tiktok: the upload did not complete; nothing was published",
                                 network=self.network)

    async def _whole_file_arrived(self, auth: AccountAuth, publish_id: str, size: int) -> bool:
        """Whether TikTok has the whole file (or has moved on from uploading): the status polling
        decides then. UnknownOutcomeError when the status cannot be read."""
        try:
            data = await self._status(auth, publish_id)
        except RetryableError as exc:
            raise UnknownOutcomeError(
                "tiktok: the last chunk was sent but its answer was lost or refused, and the status is unknown",
                network=self.network) from exc
        uploaded = int(data.get("uploaded_bytes") or 0)
        return uploaded >= size or data.get("status") != "PROCESSING_UPLOAD"

    async def _init_photos(self, auth: AccountAuth, post: PublishRequest, images: list[MediaFile],
                           privacy: str) -> str:
        info = self._post_info(post, privacy)
        title = post.title or post.text.strip().split("\n", 1)[0]
        info.update({
            "title": _runes_prefix(title, 90),
            "description": post.text,
            "auto_add_music": bool(post.options.get("auto_add_music", True)),
        })
        cover = int(post.options.get("photo_cover_index", 0))
        body = {
            "post_info": info,
            "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": cover,
                            "photo_images": [m.url for m in images]},
            "post_mode": "DIRECT_POST",
            "media_type": "PHOTO",
        }
        data = await self._call("POST", f"{API}/post/publish/content/init/", auth, json=body)
        return str(data["publish_id"])

    async def _await_publication(self, auth: AccountAuth, publish_id: str, kind: str,
                                 username: str | None) -> PublishResult:
        deadline = self.clock.monotonic() + self.publish_timeout
        completed_at: float | None = None
        while True:
            try:
                data = await self._status(auth, publish_id)
            except (RetryableError, TokenExpiredError) as exc:
                # The media is with TikTok, so sending it again could post it twice: a status read
                # that fails for a moment is asked again (after the wait TikTok names), until the
                # deadline; past it, or without a valid token, the outcome is unknown.
                wait = max(self.poll_interval, getattr(exc, "retry_after", None) or 0.0)
                if isinstance(exc, TokenExpiredError) or self.clock.monotonic() + wait >= deadline:
                    raise UnknownOutcomeError(
                        f"tiktok accepted the {kind} (publish_id {publish_id}) but its status could not be read: "
                        f"{exc.message}", network=self.network, code=exc.code) from exc
                await self.clock.sleep(wait)
                continue
            status = data.get("status")
            if status == "FAILED":
                reason = str(data.get("fail_reason") or "unknown")
                if reason in RETRY_FAIL_REASONS:
                    raise RetryableError(f"tiktok could not download the media ({reason})",
                                         network=self.network, code=reason, retry_after=60)
                raise PermanentError(f"tiktok refused the {kind}: {reason}", network=self.network, code=reason)
            if status == "SEND_TO_USER_INBOX":
                return PublishResult(remote_id=publish_id, url=None,
                                     extra={"publish_id": publish_id, "status": status})
            if status == "PUBLISH_COMPLETE":
                ids = data.get("publicaly_available_post_id") or []
                if ids:
                    post_id = str(ids[0])
                    return PublishResult(remote_id=post_id, url=self.permalink(username, post_id, kind),
                                         extra={"publish_id": publish_id})
                completed_at = completed_at or self.clock.monotonic()
                if self.clock.monotonic() - completed_at >= self.post_id_wait:
                    # Published; the public id comes after moderation (can take hours).
                    return PublishResult(remote_id=publish_id, url=None,
                                         extra={"publish_id": publish_id, "post_id_pending": True})
            elif self.clock.monotonic() >= deadline:
                raise UnknownOutcomeError(
                    f"tiktok is still processing publish_id {publish_id} ({status}); it may yet be published",
                    network=self.network, code="processing_timeout")
            await self.clock.sleep(self.poll_interval)

    async def _status(self, auth: AccountAuth, publish_id: str) -> dict[str, Any]:
        return await self._call("POST", f"{API}/post/publish/status/fetch/", auth,
                                json={"publish_id": publish_id}, idempotent=True)

    @staticmethod
    def permalink(username: str | None, post_id: str, kind: str = "video") -> str:
        """https://www.tiktok.com/@user/video/ID (or /photo/ID); TikTok redirects without a user."""
        return f"https://www.tiktok.com/@{username or ''}/{kind}/{post_id}"

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """TikTok's APIs cannot delete posts: always NotSupportedError."""
        raise NotSupportedError("TikTok's API cannot delete posts; delete it in the TikTok app",
                                network=self.network, code="delete_not_supported")

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """Views, likes, comments and shares from /v2/video/query/ (scope video.list).

        TikTok reports no impressions or reach: views map onto impressions, likes + comments +
        shares onto engagement. RetryableError while the public post id is still pending.
        """
        post_id = remote_id
        if not remote_id.isdigit():  # a publish_id: the public id came after moderation
            data = await self._status(auth, remote_id)
            ids = data.get("publicaly_available_post_id") or []
            if not ids:
                raise RetryableError("tiktok has not made the post public yet (moderation)",
                                     network=self.network, code="post_id_pending", retry_after=300)
            post_id = str(ids[0])
        fields = "id,title,create_time,share_url,view_count,like_count,comment_count,share_count"
        data = await self._call("POST", f"{API}/video/query/?fields={fields}", auth,
                                json={"filters": {"video_ids": [post_id]}}, idempotent=True)
        videos = [v for v in data.get("videos") or [] if str(v.get("id")) == post_id]
        if not videos:
            raise PermanentError(f"tiktok post {post_id} is not visible (deleted or private)",
                                 network=self.network, code="not_found")
        video = videos[0]
        metrics = {k: float(video.get(k) or 0)
                   for k in ("view_count", "like_count", "comment_count", "share_count")}
        return Insights(
            metrics=metrics,
            impressions=int(metrics["view_count"]),
            reach=0,
            engagement=int(metrics["like_count"] + metrics["comment_count"] + metrics["share_count"]),
            clicks=0,
        )

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """Followers, following and video count (scope user.info.stats)."""
        fields = "open_id,follower_count,following_count,likes_count,video_count"
        data = await self._call("GET", f"{API}/user/info/?fields={fields}", auth)
        user = data.get("user") or {}
        return AccountStats(
            followers=_int_or_none(user.get("follower_count")),
            following=_int_or_none(user.get("following_count")),
            posts_total=_int_or_none(user.get("video_count")),
        )

    # Plumbing ----------------------------------------------------------------------------------

    async def _call(self, method: str, url: str, auth: AccountAuth, *, json: Any = None,
                    idempotent: bool | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {auth.access_token}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if json is not None:
            headers["Content-Type"] = "application/json; charset=UTF-8"
            kwargs["json"] = json
        resp = await self.http.request(method, url, network=self.network, idempotent=idempotent, **kwargs)
        body = resp.json()
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if resp.ok and code in (None, "ok"):
            data = body.get("data")
            return data if isinstance(data, dict) else {}
        self._raise_for(resp, body, what=url.split("?", 1)[0].rsplit("/v2/", 1)[-1])
        raise AssertionError("unreachable")  # _raise_for always raises

    def _raise_for(self, resp: PlatformResponse, body: Any, *, what: str) -> None:
        """Map TikTok's answer onto an outcome (platforms.md "Errors" and the retry table)."""
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or "")
        message = f"tiktok {what}: {code or resp.status}: {error.get('message') or resp.text[:200]}"
        kw: dict[str, Any] = {"network": self.network, "code": code or None, "status": resp.status}
        if code in RATE_CODES or resp.status == 429:
            retry_after = resp.headers.get("Retry-After")
            raise RetryableError(message, retry_after=float(retry_after) if retry_after and
                                 retry_after.isdigit() else self.rate_limit_wait, **kw)
        if code in DEFERRED_CODES:
            raise RetryableError(message, retry_after=DAY, **kw)
        if code in TOKEN_CODES:
            raise TokenExpiredError(message, **kw)
        if code in RECONNECT_CODES:
            raise PermanentError(message, reconnect=True, **kw)
        if code in RETRY_CODES or resp.status >= 500:
            raise RetryableError(message, **kw)
        if resp.status == 401:
            raise TokenExpiredError(message, **kw)
        raise PermanentError(message, **kw)


async def _regroup(source: AsyncIterator[bytes], chunk: int, count: int, size: int) -> AsyncIterator[bytes]:
    """Yield `count` chunks of `chunk` bytes, the last one carrying the remainder up to `size`."""
    buf = bytearray()
    sent = 0
    async for piece in source:
        buf += piece
        while sent < count - 1 and len(buf) >= chunk:
            yield bytes(buf[:chunk])
            del buf[:chunk]
            sent += 1
    if sent != count - 1 or sent * chunk + len(buf) != size:
        raise PermanentError(f"the media file is not {size} bytes long as recorded", network="tiktok",
                             code="media_size_mismatch")
    yield bytes(buf)


def _runes_prefix(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 code units (TikTok's "runes") without splitting a pair."""
    out: list[str] = []
    used = 0
    for ch in text:
        units = 2 if ord(ch) > 0xFFFF else 1
        if used + units > limit:
            break
        out.append(ch)
        used += units
    return "".join(out)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
