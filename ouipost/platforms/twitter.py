"""X (Twitter) API v2: OAuth 2.0 Authorization Code + PKCE, chunked media upload, tweets, metrics.

Flows (shared/platforms.md section 3):
- Connect: `x.com/i/oauth2/authorize` with an S256 challenge -> `POST /2/oauth2/token` (Basic client
  auth, code_verifier) -> `GET /2/users/me`. Refresh tokens rotate: every refresh returns a new one and
  the old one is dead, so the caller must store what `refresh_token` returns.
- Media: every file goes through the chunked flow (`/2/media/upload/initialize`, `/{id}/append` per
  segment in order, `/{id}/finalize`), then `GET /2/media/upload?command=STATUS` is polled until the
  state is `succeeded`; only then is the tweet created. Alt text goes through `/2/media/metadata`.
- Post: `POST /2/tweets` with `media.media_ids` (<= 4 images or 1 video/GIF, never mixed).
- Follow-ups: X builds threads as reply chains. `reply` is `POST /2/tweets` with
  `reply.in_reply_to_tweet_id` = the parent (X derives the conversation, i.e. the root, from it), after
  the same media flow as a post; `comment` is such a reply by the account to its own tweet
  (parent = root = the post). X has no idempotency key, so the part's key is not sent: a lost answer
  is an UnknownOutcomeError, never re-sent. A parent that is deleted or not visible answers 403 "You
  attempted to reply to a Tweet that is deleted or not visible to you." (PermanentError, no
  reconnect); replies count against the same 100 / 15 min as posts.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any, ClassVar, NoReturn
from urllib.parse import urlencode

import aiohttp

from ouipost.platforms.base import (
    AccountAuth,
    AccountStats,
    AuthorizationRequest,
    ConnectedIdentity,
    Insights,
    MediaFile,
    PermanentError,
    PlatformAdapter,
    PlatformError,
    PostRef,
    PublishRequest,
    PublishResult,
    RetryableError,
    TokenExpiredError,
    TokenSet,
)
from ouipost.platforms.http import PlatformResponse

API = "https://api.x.com"
AUTHORIZE_URL = "https://x.com/i/oauth2/authorize"
TOKEN_URL = f"{API}/2/oauth2/token"
REVOKE_URL = f"{API}/2/oauth2/revoke"


class TwitterAdapter(PlatformAdapter):
    """X API v2 for one user: tweets with up to 4 images or one video/GIF."""

    network: ClassVar[str] = "twitter"
    default_scopes: ClassVar[tuple[str, ...]] = (
        "tweet.read", "tweet.write", "users.read", "offline.access", "media.write",
    )
    uses_pkce: ClassVar[bool] = True

    # Upload segment size: X accepts up to 5 MB per APPEND; 1 MiB is what Postiz uses.
    chunk_size: ClassVar[int] = 1 << 20
    # Media STATUS polling. None: wait what X says (`check_after_secs`); tests set it small.
    poll_interval: ClassVar[float | None] = None
    media_poll_attributes: ClassVar[tuple[str, ...]] = ("poll_interval",)
    poll_timeout: ClassVar[float] = 600.0
    # Seconds to wait when X answers 429 without usable headers (Mixpost uses 300).
    default_rate_limit_wait: ClassVar[float] = 300.0
    # `usage-capped` is the billing cap (monthly/daily): not a hot retry.
    usage_cap_wait: ClassVar[float] = 24 * 3600.0

    # OAuth -------------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """X's consent URL with a fresh PKCE S256 challenge; keep the returned verifier with the state."""
        verifier = secrets.token_urlsafe(64)[:96]  # 43..128 chars of the unreserved set
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({
            "response_type": "code",
            "client_id": self.credentials.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes or self.default_scopes),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        })
        return AuthorizationRequest(url=self.http.url(f"{AUTHORIZE_URL}?{query}"), code_verifier=verifier)

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Trade the code (+ PKCE verifier) for tokens, then read the user they act for.

        PermanentError when X refuses the code (expired after 30 s, reused, wrong verifier).
        """
        if not code_verifier:
            raise PermanentError("X requires the PKCE code_verifier", network=self.network)
        resp = await self._token_request({
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": self.credentials.client_id,
        })
        if not resp.ok:
            self._raise_token_error(resp, refresh=False)
        tokens = self._token_set(resp.json())
        me = await self._api("GET", "/2/users/me", tokens.access_token,
                             params={"user.fields": "profile_image_url,public_metrics"})
        user = me.get("data") or {}
        return [ConnectedIdentity(
            remote_id=str(user["id"]),
            type="profile",
            name=user.get("name") or user.get("username", ""),
            username=user.get("username"),
            profile_image=user.get("profile_image_url"),
            token=tokens,
            permissions=list(tokens.scopes),
            metadata={"username": user.get("username")},
        )]

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """A new access token AND a new refresh token (X rotates them; the old one is now dead).

        TokenExpiredError when X refuses the refresh token (revoked, already used, expired).
        """
        if not auth.refresh_token:
            raise TokenExpiredError("no refresh token (offline.access not granted)", network=self.network)
        resp = await self._token_request({
            "grant_type": "refresh_token",
            "refresh_token": auth.refresh_token,
            "client_id": self.credentials.client_id,
        })
        if not resp.ok:
            self._raise_token_error(resp, refresh=True)
        return self._token_set(resp.json())

    async def revoke(self, auth: AccountAuth) -> None:
        """Revoke the refresh and access tokens at X. Best effort: refusals are ignored."""
        for token, hint in ((auth.refresh_token, "refresh_token"), (auth.access_token, "access_token")):
            if not token:
                continue
            try:
                await self.http.request(
                    "POST", REVOKE_URL, network=self.network, idempotent=True,
                    data={"token": token, "token_type_hint": hint, "client_id": self.credentials.client_id},
                    headers={"Authorization": self._basic_auth()},
                )
            except PlatformError:
                return  # the account is disconnected locally either way

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Upload the media (chunked, waiting for processing), then create the tweet.

        PermanentError for content X refuses (too long, duplicate, > 4 images, mixed media, media
        that failed processing); RetryableError when media never finishes processing (nothing was
        published); UnknownOutcomeError when the create call was sent but the answer was lost.
        """
        reply_to = post.options.get("reply_to")
        return await self._tweet(auth, post, reply_to=str(reply_to) if reply_to else None)

    async def reply(
        self, auth: AccountAuth, post: PublishRequest, *, parent: PostRef, root: PostRef
    ) -> PublishResult:
        """The next part of a thread: a tweet replying to `parent` (X puts it in `root`'s conversation
        itself). Raises as `publish` does; a deleted or invisible parent is a PermanentError (403)."""
        return await self._tweet(auth, post, reply_to=parent.remote_id)

    async def comment(self, auth: AccountAuth, text: str, *, on: PostRef, key: str | None = None) -> PublishResult:
        """A first comment: the account's own reply to its tweet `on` (X has no idempotency key)."""
        return await self.reply(auth, PublishRequest(text=text, target_key=key), parent=on, root=on)

    async def _tweet(self, auth: AccountAuth, post: PublishRequest, *, reply_to: str | None) -> PublishResult:
        """The media flow, then `POST /2/tweets` (as a reply to `reply_to` when given)."""
        text = post.text or ""
        if post.link and post.link not in text:
            text = f"{text}\n{post.link}".strip()
        images = [m for m in post.media if m.kind == "image"]
        videos = [m for m in post.media if m.kind == "video"]
        if videos and (images or len(videos) > 1):
            raise PermanentError("X allows 4 images or 1 video per post, not both", network=self.network)
        if len(images) > 4:
            raise PermanentError("X allows at most 4 images per post", network=self.network)
        if not text.strip() and not post.media:
            raise PermanentError("a post needs text or media", network=self.network)

        media_ids = [await self._upload(auth, media) for media in post.media]
        body: dict[str, Any] = {"text": text}
        if media_ids:
            body["media"] = {"media_ids": media_ids}
        if reply_to:
            body["reply"] = {"in_reply_to_tweet_id": reply_to}
        if post.options.get("reply_settings"):
            body["reply_settings"] = post.options["reply_settings"]
        data = await self._api("POST", "/2/tweets", auth.access_token, json=body)
        tweet_id = str(data["data"]["id"])
        username = auth.metadata.get("username")
        url = f"https://x.com/{username}/status/{tweet_id}" if username else f"https://x.com/i/web/status/{tweet_id}"
        extra: dict[str, Any] = {"media_ids": media_ids}
        if reply_to:
            extra["in_reply_to_tweet_id"] = reply_to
        return PublishResult(remote_id=tweet_id, url=url, extra=extra)

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """Delete the tweet. A tweet X no longer knows counts as deleted."""
        try:
            await self._api("DELETE", f"/2/tweets/{remote_id}", auth.access_token)
        except PermanentError as exc:
            if exc.status != 404:
                raise

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """public_metrics (+ non_public_metrics for own tweets under 30 days), mapped:
        impressions = impression_count, engagement = engagements (else the sum of public actions),
        clicks = url_link_clicks, reach = 0 (X reports no reach).
        """
        data = await self._api(
            "GET", f"/2/tweets/{remote_id}", auth.access_token,
            params={"tweet.fields": "public_metrics,non_public_metrics,organic_metrics"},
        )
        tweet = data.get("data")
        if not tweet:
            detail = (data.get("errors") or [{}])[0].get("detail", "tweet not found")
            raise PermanentError(detail, network=self.network, status=404, code="resource-not-found")
        public = tweet.get("public_metrics") or {}
        private = tweet.get("non_public_metrics") or {}
        metrics: dict[str, float] = {k: float(v) for k, v in public.items()}
        metrics.update({f"non_public.{k}": float(v) for k, v in private.items()})
        public_actions = sum(int(public.get(k, 0)) for k in (
            "like_count", "retweet_count", "reply_count", "quote_count", "bookmark_count"))
        return Insights(
            metrics=metrics,
            impressions=int(private.get("impression_count", public.get("impression_count", 0))),
            reach=0,
            engagement=int(private.get("engagements", public_actions)),
            clicks=int(private.get("url_link_clicks", 0)),
        )

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """followers_count, following_count and tweet_count of the user (no demographics in v2)."""
        data = await self._api("GET", "/2/users/me", auth.access_token,
                               params={"user.fields": "public_metrics"})
        metrics = (data.get("data") or {}).get("public_metrics") or {}
        return AccountStats(
            followers=metrics.get("followers_count"),
            following=metrics.get("following_count"),
            posts_total=metrics.get("tweet_count"),
        )

    # Media -------------------------------------------------------------------------------------

    async def _upload(self, auth: AccountAuth, media: MediaFile) -> str:
        """INIT -> APPEND segments in order -> FINALIZE -> poll STATUS until succeeded."""
        if media.kind == "video":
            category = "tweet_video"
        elif media.mime_type == "image/gif":
            category = "tweet_gif"
        else:
            category = "tweet_image"
        # A media id whose answer is lost is never attached to a tweet: asking for another is safe.
        init = await self._api("POST", "/2/media/upload/initialize", auth.access_token, idempotent=True, json={
            "media_type": media.mime_type, "total_bytes": media.size, "media_category": category,
        })
        media_id = str(init["data"]["id"])
        index = 0
        async for segment in _segments(media, self.chunk_size):
            form = _multipart({"segment_index": str(index)}, segment, media.filename, media.mime_type)
            # Re-sending a segment index overwrites it at X, so a lost answer may be retried.
            await self._api("POST", f"/2/media/upload/{media_id}/append", auth.access_token,
                            data=form, idempotent=True)
            index += 1
        final = await self._api("POST", f"/2/media/upload/{media_id}/finalize", auth.access_token,
                                idempotent=True)
        info = (final.get("data") or {}).get("processing_info")
        if info:
            await self._wait_for_processing(auth, media_id, info)
        if media.alt_text:
            await self._api("POST", "/2/media/metadata", auth.access_token, idempotent=True, json={
                "id": media_id, "metadata": {"alt_text": {"text": media.alt_text[:1000]}},
            })
        return media_id

    async def _wait_for_processing(self, auth: AccountAuth, media_id: str, info: dict[str, Any]) -> None:
        deadline = self.clock.monotonic() + self.poll_timeout
        while True:
            state = info.get("state")
            if state == "succeeded":
                return
            if state == "failed":
                error = info.get("error") or {}
                raise PermanentError(
                    f"X could not process the media: {error.get('message') or error.get('name') or 'failed'}",
                    network=self.network, code=str(error.get("name") or "media-failed"),
                )
            wait = self.poll_interval
            if wait is None:
                wait = float(info.get("check_after_secs", 1))
            if self.clock.monotonic() + wait > deadline:
                raise RetryableError(
                    f"X media {media_id} still {state} after {self.poll_timeout:.0f}s; nothing was posted",
                    network=self.network, retry_after=60.0,
                )
            await self.clock.sleep(wait)
            status = await self._api("GET", "/2/media/upload", auth.access_token,
                                     params={"command": "STATUS", "media_id": media_id})
            info = (status.get("data") or {}).get("processing_info") or {"state": "succeeded"}

    # HTTP and errors ---------------------------------------------------------------------------

    def _basic_auth(self) -> str:
        raw = f"{self.credentials.client_id}:{self.credentials.client_secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def _token_request(self, form: dict[str, str]) -> PlatformResponse:
        return await self.http.request(
            "POST", TOKEN_URL, network=self.network, data=form,
            headers={"Authorization": self._basic_auth()},
        )

    def _token_set(self, body: dict[str, Any]) -> TokenSet:
        expires_in = body.get("expires_in")
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=self.clock.now() + timedelta(seconds=int(expires_in)) if expires_in else None,
            scopes=str(body.get("scope", "")).split(),
        )

    def _raise_token_error(self, resp: PlatformResponse, *, refresh: bool) -> NoReturn:
        if resp.status == 429 or resp.status >= 500:
            self._raise_for(resp)
        body = resp.json()
        message = f"X token endpoint: {body.get('error_description') or body.get('error') or resp.status}"
        if refresh:
            raise TokenExpiredError(message, network=self.network, code=body.get("error"), status=resp.status)
        raise PermanentError(message, network=self.network, code=body.get("error"), status=resp.status)

    async def _api(
        self, method: str, path: str, token: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        resp = await self.http.request(
            method, API + path, network=self.network, idempotent=idempotent,
            headers={"Authorization": f"Bearer {token}"}, **kwargs,
        )
        if not resp.ok:
            self._raise_for(resp)
        body = resp.json()
        return body if isinstance(body, dict) else {}

    def _raise_for(self, resp: PlatformResponse) -> NoReturn:
        """Map an X error answer (problem JSON) onto the outcome classes."""
        body = resp.json() if isinstance(resp.json(), dict) else {}
        kind = str(body.get("type", "")).rsplit("/", 1)[-1]
        errors = body.get("errors") or []
        detail = body.get("detail") or (errors[0].get("message") if errors else None) or body.get("title")
        message = f"X {resp.status}: {detail or resp.text[:200]}"
        common: dict[str, Any] = {"network": self.network, "status": resp.status, "code": kind or None}
        if resp.status == 429:
            if kind == "usage-capped":
                raise RetryableError(message, retry_after=self.usage_cap_wait, **common)
            raise RetryableError(message, retry_after=self._until_reset(resp), **common)
        if resp.status == 401:
            raise TokenExpiredError(message, **common)
        if resp.status == 403:
            lowered = str(detail).lower()
            if kind == "unsupported-authentication":
                raise TokenExpiredError(message, **common)
            # Missing scopes / app not allowed: the user must reconnect with the right grant.
            reconnect = kind == "client-forbidden" or "not permitted" in lowered or "scope" in lowered
            raise PermanentError(message, reconnect=reconnect, **common)
        if resp.status >= 500:
            raise RetryableError(message, **common)
        raise PermanentError(message, **common)

    def _until_reset(self, resp: PlatformResponse) -> float:
        reset = resp.headers.get("x-rate-limit-reset")
        try:
            return max(1.0, float(reset) - self.clock.now().timestamp() + 1) if reset else self.default_rate_limit_wait
        except ValueError:
            return self.default_rate_limit_wait


async def _segments(media: MediaFile, size: int) -> AsyncIterator[bytes]:
    """The file's bytes in segments of exactly `size` (the last one shorter), whatever the stream yields."""
    buffer = bytearray()
    async for chunk in media.stream(size):
        buffer.extend(chunk)
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _multipart(fields: dict[str, str], payload: bytes, filename: str, mime: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("media", payload, filename=filename, content_type=mime)
    return form
