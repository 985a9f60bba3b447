"""YouTube: Google OAuth and the YouTube Data API v3 / Analytics v2 (shared/platforms.md section 6).

Flows:
- Connect: Google consent with access_type=offline + prompt=consent (so a refresh token comes back
  every time) and include_granted_scopes; PKCE S256 on top of the client secret. Google supports
  PKCE for web clients; it costs nothing and protects against authorization-code injection.
  code -> tokens -> the channel(s) from channels?mine=true.
- Publish (video only): videos.insert resumable session (POST -> Location), then the bytes in
  chunks (multiples of 256 KiB) with Content-Range; 308 answers carry what Google holds, so a
  partial chunk is resent from there; 5xx or a lost connection probes the session (`bytes */N`)
  and resumes. Then videos.list(status,processingDetails) is polled until processed.
- Delete: videos.delete. Insights: videos.list statistics plus Analytics (shares, watch time).

Follow-ups: YouTube has comments, no reply chains (`PlatformSpec.comments`). `comment()` is
commentThreads.insert (`POST /youtube/v3/commentThreads?part=snippet` with
`{snippet: {channelId, videoId, topLevelComment: {snippet: {textOriginal}}}}`), a top-level comment by
the channel on its video; the result's id is the comment's (the thread's) and its link
`watch?v={video}&lc={comment}`. Only the youtube.force-ssl scope allows it (in `default_scopes`
for that reason): a grant without it answers 403 insufficientPermissions, a PermanentError asking
for reconnection. videoNotFound, commentsDisabled (videos made for kids, or turned off by the channel)
and commentTextTooLong (over 10,000 characters) are permanent. Google takes no idempotency key:
`key` is unused, and an answer lost after sending is an UnknownOutcomeError.

An uploaded video has an id and exists on the channel even while YouTube still processes it, so
when processing outlasts `processing_timeout` the result is a success with
extra["processing"] = "pending" (the id is kept: nothing is lost and nothing will be re-uploaded).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

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
    PostRef,
    PublishRequest,
    PublishResult,
    RetryableError,
    TokenExpiredError,
    TokenSet,
    UnknownOutcomeError,
)
from ouipost.platforms.http import PlatformResponse

log = logging.getLogger(__name__)

AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URL = "https://oauth2.googleapis.com/token"
REVOKE_URL = "https://oauth2.googleapis.com/revoke"
DATA_API = "https://www.googleapis.com/youtube/v3"
UPLOAD_URL = "https://www.googleapis.com/upload/youtube/v3/videos"
ANALYTICS_URL = "https://youtubeanalytics.googleapis.com/v2/reports"
SCOPE = "https://www.googleapis.com/auth/"
CHUNK_UNIT = 256 * 1024
PACIFIC = ZoneInfo("America/Los_Angeles")

RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
RECONNECT_REASONS = {"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "youtubeSignupRequired"}


class YouTubeAdapter(PlatformAdapter):
    """YouTube channels: video uploads only."""

    network = "youtube"
    default_scopes = (
        f"{SCOPE}youtube.upload",
        f"{SCOPE}youtube.readonly",
        f"{SCOPE}youtube.force-ssl",  # videos.delete, and commentThreads.insert (first comments) needs it alone
        f"{SCOPE}yt-analytics.readonly",
    )
    uses_pkce = True

    chunk_size: int = 8 * 1024 * 1024  # a multiple of 256 KiB, as Google requires
    max_resume_attempts: int = 5
    resume_backoff: float = 1.0  # seconds, doubled per attempt
    poll_interval: float = 5.0
    media_poll_attributes: ClassVar[tuple[str, ...]] = ("poll_interval",)
    processing_timeout: float = 300.0
    rate_limit_wait: float = 60.0

    # OAuth -------------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """Google's consent URL with a fresh PKCE verifier (keep it beside the state)."""
        verifier = secrets.token_urlsafe(64)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({
            "client_id": self.credentials.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(scopes or self.default_scopes),
            "access_type": "offline",
            "prompt": "consent",
            "include_granted_scopes": "true",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        })
        return AuthorizationRequest(url=self.http.url(f"{AUTH_URL}?{query}"), code_verifier=verifier)

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Code -> tokens -> the channels of the Google account.

        PermanentError when Google refuses the code or the account has no YouTube channel.
        """
        form = {
            "code": code,
            "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret,
            "redirect_uri": redirect_uri,
            "grant_type": "authorization_code",
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        tokens = await self._token_request(form, refreshing=False)
        auth = AccountAuth(remote_id="", access_token=tokens.access_token)
        data = await self._call("GET", f"{DATA_API}/channels?part=snippet,statistics&mine=true", auth)
        items = data.get("items") or []
        if not items:
            raise PermanentError("this Google account has no YouTube channel; create one first",
                                 network=self.network, code="youtubeSignupRequired")
        identities = []
        for item in items:
            snippet = item.get("snippet") or {}
            thumbs = snippet.get("thumbnails") or {}
            identities.append(ConnectedIdentity(
                remote_id=str(item["id"]),
                type="channel",
                name=str(snippet.get("title") or item["id"]),
                username=snippet.get("customUrl"),
                profile_image=(thumbs.get("default") or {}).get("url"),
                token=tokens,
                permissions=list(tokens.scopes),
                metadata={"channel_id": item["id"], "custom_url": snippet.get("customUrl")},
            ))
        return identities

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """A new access token; Google keeps the refresh token (returned unchanged in the set).

        TokenExpiredError on invalid_grant (revoked, unused for 6 months, Testing-app expiry).
        """
        if not auth.refresh_token:
            raise TokenExpiredError("no Google refresh token stored; reconnect", network=self.network)
        tokens = await self._token_request({
            "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret,
            "refresh_token": auth.refresh_token,
            "grant_type": "refresh_token",
        }, refreshing=True)
        if tokens.refresh_token is None:
            tokens.refresh_token = auth.refresh_token
        return tokens

    async def revoke(self, auth: AccountAuth) -> None:
        """Revoke the grant (the refresh token when stored: that ends every token). Best effort."""
        token = auth.refresh_token or auth.access_token
        try:
            resp = await self.http.request("POST", REVOKE_URL, network=self.network, data={"token": token})
        except (RetryableError, UnknownOutcomeError) as exc:
            log.warning("google revoke failed: %s", exc)
            return
        if not resp.ok:
            log.warning("google revoke answered %s: %s", resp.status, resp.text[:200])

    async def _token_request(self, form: dict[str, str], *, refreshing: bool) -> TokenSet:
        resp = await self.http.request("POST", TOKEN_URL, network=self.network, data=form)
        body = resp.json()
        if resp.status >= 500 or resp.status == 429:
            raise RetryableError(f"google token endpoint answered {resp.status}", network=self.network,
                                 status=resp.status)
        if not resp.ok or not body.get("access_token"):
            error = str(body.get("error") or "invalid_grant")
            message = f"google refused the token request: {error}: {body.get('error_description', '')}"
            if refreshing and error == "invalid_grant":
                raise TokenExpiredError(message, network=self.network, code=error, status=resp.status)
            raise PermanentError(message, network=self.network, code=error, status=resp.status)
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=self.clock.now() + timedelta(seconds=int(body.get("expires_in", 3599))),
            scopes=str(body.get("scope", "")).split(),
        )

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Upload one video with its title, description and privacy.

        NotSupportedError without a video or with images; PermanentError when YouTube refuses the
        metadata or the file; RetryableError for quota/rate/5xx before the upload completed;
        UnknownOutcomeError when the last bytes were sent but the answer was lost for good.
        """
        videos = [m for m in post.media if m.kind == "video"]
        if len(videos) != 1 or len(post.media) != 1:
            raise NotSupportedError("YouTube posts are exactly one video (no text-only, image or carousel posts)",
                                    network=self.network, code="video_required")
        video = videos[0]
        metadata = self._metadata(post)
        notify = "true" if post.options.get("notify_subscribers", True) else "false"
        init_url = f"{UPLOAD_URL}?uploadType=resumable&part=snippet,status&notifySubscribers={notify}"
        mime = video.mime_type if video.mime_type.startswith("video/") else "application/octet-stream"
        try:
            resp = await self._send("POST", init_url, auth, json=metadata, headers={
                "X-Upload-Content-Length": str(video.size),
                "X-Upload-Content-Type": mime,
            })
        except UnknownOutcomeError as exc:
            # A session without bytes never becomes a video: starting over is safe.
            raise RetryableError("youtube upload session request was lost; nothing was uploaded",
                                 network=self.network) from exc
        self._check(resp, what="videos.insert")
        session_url = resp.headers.get("Location")
        if not session_url:
            raise RetryableError("youtube gave no upload session URI", network=self.network, status=resp.status)
        resource = await self._upload(auth, session_url, video, mime)
        video_id = str(resource["id"])
        requested = metadata["status"]["privacyStatus"]
        extra: dict[str, Any] = {"privacy_status": (resource.get("status") or {}).get("privacyStatus", requested)}
        if extra["privacy_status"] != requested:
            # Unverified API projects get every upload locked to private.
            extra["privacy_locked"] = True
        extra["processing"] = await self._await_processing(auth, video_id)
        return PublishResult(remote_id=video_id, url=f"https://www.youtube.com/watch?v={video_id}", extra=extra)

    def _metadata(self, post: PublishRequest) -> dict[str, Any]:
        opts = post.options
        title = (post.title or "").strip() or next((ln.strip() for ln in post.text.splitlines() if ln.strip()), "")
        # YouTube refuses < and > in titles and descriptions; these look the same to readers.
        title = _no_angles(title)[:100].strip()
        if not title:
            raise PermanentError("YouTube needs a video title: give the post a title or some text",
                                 network=self.network, code="invalidTitle")
        description = _no_angles(post.text)
        if len(description.encode()) > 5000:
            raise PermanentError("YouTube descriptions are limited to 5,000 bytes", network=self.network,
                                 code="invalidDescription")
        snippet: dict[str, Any] = {"title": title, "description": description,
                                   "categoryId": str(opts.get("category_id", "22"))}
        if opts.get("tags"):
            snippet["tags"] = [str(t) for t in opts["tags"]]
        privacy = str(opts.get("privacy_status", "public"))
        status: dict[str, Any] = {"privacyStatus": privacy,
                                  "selfDeclaredMadeForKids": bool(opts.get("made_for_kids", False))}
        if opts.get("publish_at"):
            status["publishAt"] = opts["publish_at"]
            status["privacyStatus"] = "private"  # YouTube requires private for a scheduled release
        return {"snippet": snippet, "status": status}

    async def _upload(self, auth: AccountAuth, session_url: str, video: MediaFile, mime: str) -> dict[str, Any]:
        """Send the bytes through the resumable session; return the video resource."""
        total = video.size
        reader = _RangeReader(video)
        offset = 0
        failures = 0
        while True:
            chunk = await reader.read(offset, self.chunk_size)
            last = offset + len(chunk) - 1
            headers = {"Content-Type": mime, "Content-Range": f"bytes {offset}-{last}/{total}"}
            try:
                sent = await self._send("PUT", session_url, auth, data=io.BytesIO(chunk), headers=headers)
            except RetryableError as exc:
                resp: PlatformResponse | None = None
                error: Exception = exc
            else:
                resp, error = sent, RuntimeError(f"HTTP {sent.status}")
            if resp is not None and resp.status in (200, 201):
                return resp.json()
            if resp is not None and resp.status == 308:
                offset = _range_end(resp)
                failures = 0
                continue
            if resp is not None and resp.status in (404, 410):
                raise RetryableError("youtube upload session expired; the upload must start over",
                                     network=self.network, status=resp.status, code="uploadExpired")
            wait = _rate_limit_wait(resp) if resp is not None else None
            if resp is not None and resp.status < 500 and wait is None:
                self._check(resp, what="video upload")
            # 5xx, a rate limit or a lost connection: ask the session what it has (all of it when the
            # answer to an earlier send was lost and this one was a second send), then resume from
            # there. Starting over instead would upload a second video when the first one is done.
            while True:
                failures += 1
                if failures > self.max_resume_attempts:
                    raise UnknownOutcomeError(
                        f"youtube upload could not be resumed after {failures - 1} attempts ({error}); "
                        "the video may exist", network=self.network, code="upload_incomplete")
                await self.clock.sleep(max(self.resume_backoff * 2 ** (failures - 1), wait or 0.0))
                probe = await self._probe(auth, session_url, total)
                if isinstance(probe, dict):
                    return probe
                if probe >= 0:
                    offset = probe
                    break

    async def _probe(self, auth: AccountAuth, session_url: str, total: int) -> int | dict[str, Any]:
        """Ask the session how many bytes it holds (or the finished resource)."""
        try:
            resp = await self._send("PUT", session_url, auth, data=b"",
                                    headers={"Content-Range": f"bytes */{total}"})
        except RetryableError:
            return -1  # unknown yet; the caller's next attempt re-probes
        if resp.status in (200, 201):
            return resp.json()
        if resp.status == 308:
            return _range_end(resp)
        if resp.status in (404, 410):
            raise RetryableError("youtube upload session expired; the upload must start over",
                                 network=self.network, status=resp.status, code="uploadExpired")
        if resp.status >= 500 or _rate_limit_wait(resp) is not None:
            return -1
        self._check(resp, what="upload status")
        return -1

    async def _await_processing(self, auth: AccountAuth, video_id: str) -> str:
        deadline = self.clock.monotonic() + self.processing_timeout
        while True:
            try:
                data = await self._call("GET", f"{DATA_API}/videos?part=status,processingDetails&id={video_id}",
                                        auth)
            except RetryableError:
                data = {}
            items = data.get("items") or []
            if items:
                status = items[0].get("status") or {}
                upload_status = status.get("uploadStatus")
                if upload_status == "processed":
                    return "succeeded"
                if upload_status in ("failed", "rejected", "deleted"):
                    reason = status.get("failureReason") or status.get("rejectionReason") or upload_status
                    raise PermanentError(f"youtube could not process video {video_id}: {reason}",
                                         network=self.network, code=str(reason))
            if self.clock.monotonic() >= deadline:
                return "pending"
            await self.clock.sleep(self.poll_interval)

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """videos.delete. A video that is already gone counts as deleted."""
        resp = await self._send("DELETE", f"{DATA_API}/videos?id={remote_id}", auth)
        if resp.status == 404:
            return
        self._check(resp, what="videos.delete")

    async def comment(self, auth: AccountAuth, text: str, *, on: PostRef, key: str | None = None) -> PublishResult:
        """A top-level comment by the channel on its video `on` (commentThreads.insert). Google takes
        no idempotency key, so `key` is unused.

        PermanentError for videoNotFound, commentsDisabled, commentTextTooLong, and with reconnect
        for a grant without youtube.force-ssl; RetryableError for quota and rate limits;
        UnknownOutcomeError when the answer was lost after sending.
        """
        channel_id = str(auth.metadata.get("channel_id") or auth.remote_id)
        body = {"snippet": {"channelId": channel_id, "videoId": on.remote_id,
                            "topLevelComment": {"snippet": {"textOriginal": text}}}}
        thread = await self._call("POST", f"{DATA_API}/commentThreads?part=snippet", auth, json=body)
        top = (thread.get("snippet") or {}).get("topLevelComment") or {}
        comment_id = str(top.get("id") or thread.get("id") or "")
        if not comment_id:
            raise PermanentError("youtube created the comment but returned no id", network=self.network)
        return PublishResult(
            remote_id=comment_id,
            url=f"https://www.youtube.com/watch?v={on.remote_id}&lc={comment_id}",
            extra={"video_id": on.remote_id, "thread_id": str(thread.get("id") or comment_id)},
        )

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """videos.list statistics, plus shares and watch time from YouTube Analytics when granted.

        YouTube reports no impressions/reach through these APIs: views map onto impressions; likes +
        comments + shares onto engagement. PermanentError when the video is gone.
        """
        data = await self._call("GET", f"{DATA_API}/videos?part=statistics,snippet&id={remote_id}", auth)
        items = data.get("items") or []
        if not items:
            raise PermanentError(f"youtube video {remote_id} not found (deleted?)", network=self.network,
                                 code="videoNotFound")
        stats = items[0].get("statistics") or {}
        metrics = {k: float(stats.get(k) or 0) for k in ("viewCount", "likeCount", "commentCount", "favoriteCount")}
        published = str((items[0].get("snippet") or {}).get("publishedAt", ""))[:10]
        extra = await self._analytics(auth, remote_id, published)
        metrics.update(extra)
        return Insights(
            metrics=metrics,
            impressions=int(metrics["viewCount"]),
            reach=0,
            engagement=int(metrics["likeCount"] + metrics["commentCount"] + metrics.get("shares", 0)),
            clicks=0,
        )

    async def _analytics(self, auth: AccountAuth, video_id: str, start: str) -> dict[str, float]:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", start):
            return {}
        end = self.clock.now().date().isoformat()
        query = urlencode({"ids": "channel==MINE", "startDate": start, "endDate": max(start, end),
                           "metrics": "shares,estimatedMinutesWatched", "filters": f"video=={video_id}"})
        try:
            data = await self._call("GET", f"{ANALYTICS_URL}?{query}", auth)
        except PermanentError as exc:
            if exc.reconnect:  # yt-analytics.readonly not granted: the Data API numbers still stand
                return {}
            raise
        headers = [h.get("name") for h in data.get("columnHeaders") or []]
        rows = data.get("rows") or []
        if not rows:
            return {}
        return {str(name): float(value) for name, value in zip(headers, rows[0], strict=False)}

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """Subscribers and video count of the channel (following is not a YouTube notion)."""
        data = await self._call("GET", f"{DATA_API}/channels?part=statistics&id={auth.remote_id}", auth)
        items = data.get("items") or []
        if not items:
            raise PermanentError("youtube channel not found", network=self.network, code="channelNotFound")
        stats = items[0].get("statistics") or {}
        hidden = bool(stats.get("hiddenSubscriberCount"))
        return AccountStats(
            followers=None if hidden else int(stats.get("subscriberCount") or 0),
            following=None,
            posts_total=int(stats.get("videoCount") or 0),
        )

    # Plumbing ----------------------------------------------------------------------------------

    async def _send(self, method: str, url: str, auth: AccountAuth, **kwargs: Any) -> PlatformResponse:
        headers = {"Authorization": f"Bearer {auth.access_token}", **kwargs.pop("headers", {})}
        return await self.http.request(method, url, network=self.network, headers=headers, **kwargs)

    async def _call(self, method: str, url: str, auth: AccountAuth, **kwargs: Any) -> dict[str, Any]:
        resp = await self._send(method, url, auth, **kwargs)
        self._check(resp, what=url.split("?", 1)[0].rsplit("/", 1)[-1])
        body = resp.json()
        return body if isinstance(body, dict) else {}

    def _check(self, resp: PlatformResponse, *, what: str) -> None:
        """Raise the outcome for a Google error answer (platforms.md "Errors"); pass on success."""
        if resp.ok:
            return
        body = resp.json()
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        items = error.get("errors") or [{}]
        reason = str(items[0].get("reason") or error.get("status") or "")
        message = f"youtube {what}: {resp.status} {reason}: {error.get('message') or resp.text[:200]}"
        kw: dict[str, Any] = {"network": self.network, "code": reason or None, "status": resp.status}
        if reason == "quotaExceeded":
            raise RetryableError(message, retry_after=_seconds_to_pacific_midnight(self.clock.now()), **kw)
        if reason == "uploadLimitExceeded":
            raise RetryableError(message, retry_after=86400.0, **kw)
        if reason in RATE_REASONS or resp.status == 429:
            header = resp.headers.get("Retry-After", "")
            raise RetryableError(message, retry_after=float(header) if header.isdigit() else self.rate_limit_wait,
                                 **kw)
        if reason in RECONNECT_REASONS:
            raise PermanentError(message, reconnect=True, **kw)
        if resp.status == 401:
            raise TokenExpiredError(message, **kw)
        if resp.status >= 500:
            raise RetryableError(message, **kw)
        raise PermanentError(message, **kw)


class _RangeReader:
    """Read byte ranges of a MediaFile that can only be streamed from the start.

    Keeps the current window in memory; going back before it (rare: a 308 acknowledging fewer
    bytes than the last chunk's start) re-opens the stream.
    """

    def __init__(self, media: MediaFile, piece: int = 1 << 20) -> None:
        self.media = media
        self.piece = piece
        self._iter: AsyncIterator[bytes] | None = None
        self._buf = bytearray()
        self._start = 0  # file offset of _buf[0]

    async def read(self, offset: int, size: int) -> bytes:
        if offset < self._start or self._iter is None:
            self._iter = aiter(self.media.stream(self.piece))
            self._buf = bytearray()
            self._start = 0
        # Drop what lies before offset; keep the rest for the next reads.
        drop = min(offset - self._start, len(self._buf))
        del self._buf[:drop]
        self._start += drop
        while self._start < offset or len(self._buf) < (offset - self._start) + size:
            try:
                piece = await anext(self._iter)
            except StopAsyncIteration:
                break
            self._buf += piece
            if self._start < offset:
                drop = min(offset - self._start, len(self._buf))
                del self._buf[:drop]
                self._start += drop
        data = bytes(self._buf[:size])
        if not data:
            raise PermanentError("the video file is shorter than recorded", network="youtube",
                                 code="media_size_mismatch")
        return data


def _range_end(resp: PlatformResponse) -> int:
    """The next offset to send after a 308: one past the end of its `Range: bytes=0-N` (0 without)."""
    match = re.fullmatch(r"bytes=0-(\d+)", resp.headers.get("Range", ""))
    return int(match.group(1)) + 1 if match else 0


def _no_angles(text: str) -> str:
    return text.replace("<", "\u2039").replace(">", "\u203a")


def _rate_limit_wait(resp: PlatformResponse) -> float | None:
    """The seconds a rate-limit answer asks to wait (Retry-After, else 0), None for any other answer."""
    body = resp.json()
    error = body.get("error") if isinstance(body, dict) else None
    items = (error.get("errors") if isinstance(error, dict) else None) or [{}]
    reason = str(items[0].get("reason") or "") if isinstance(items[0], dict) else ""
    if resp.status != 429 and reason not in RATE_REASONS:
        return None
    header = resp.headers.get("Retry-After", "")
    return float(header) if header.isdigit() else 0.0


def _seconds_to_pacific_midnight(now: datetime) -> float:
    """YouTube quota resets at midnight Pacific time."""
    now = now.astimezone(PACIFIC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(60.0, (midnight - now).total_seconds())
