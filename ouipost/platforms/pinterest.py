"""Pinterest API v5: OAuth (Basic client auth, continuous refresh), boards, image/carousel/video pins.

Flows (shared/platforms.md section 7):
- Connect: `www.pinterest.com/oauth/` -> `POST /v5/oauth/token` with `Authorization: Basic` ->
  `GET /v5/user_account` and `GET /v5/boards` (paged by bookmark). Every pin needs a board: the
  identity keeps the boards in metadata and the first one as `board_id`; `options["board_id"]`
  picks another per post.
- Image pin: `media_source` `image_url` (Pinterest pulls the URL) or `image_base64`
  (`options["image_source"] = "base64"` when the URL is not reachable from the internet).
- Carousel: `multiple_image_urls` with 2-5 items.
- Video: `POST /v5/media` -> multipart `POST upload_url` with every `upload_parameters` field and the
  file (no bearer: the URL is pre-signed) -> poll `GET /v5/media/{id}` until `succeeded` -> pin with
  `video_id` and a cover (`options["cover_image_url"]`, else key frame `options["cover_key_frame_time"]`
  seconds, default 0).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
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
    PublishRequest,
    PublishResult,
    RetryableError,
    TokenExpiredError,
    TokenSet,
)
from ouipost.platforms.http import PlatformResponse

API = "https://api.pinterest.com/v5"
AUTHORIZE_URL = "https://www.pinterest.com/oauth/"
PIN_METRICS = ("IMPRESSION", "OUTBOUND_CLICK", "PIN_CLICK", "SAVE", "SAVE_RATE", "TOTAL_COMMENTS",
               "TOTAL_REACTIONS", "USER_FOLLOW", "PROFILE_VISIT")


class PinterestAdapter(PlatformAdapter):
    """A Pinterest account: image pins, carousels of 2-5 images, video pins (media is required)."""

    network: ClassVar[str] = "pinterest"
    default_scopes: ClassVar[tuple[str, ...]] = (
        "boards:read", "boards:write", "pins:read", "pins:write", "user_accounts:read",
    )
    # Apps created before 2025-09-25 must ask for continuous refresh explicitly; newer apps get it anyway.
    continuous_refresh: ClassVar[bool] = True
    poll_interval: ClassVar[float] = 3.0
    media_poll_attributes: ClassVar[tuple[str, ...]] = ("poll_interval",)
    poll_timeout: ClassVar[float] = 900.0
    default_rate_limit_wait: ClassVar[float] = 60.0
    max_board_pages: ClassVar[int] = 20

    # OAuth -------------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """Pinterest's consent URL (comma-separated scopes, no PKCE)."""
        query = urlencode({
            "client_id": self.credentials.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": ",".join(scopes or self.default_scopes),
            "state": state,
        })
        return AuthorizationRequest(url=self.http.url(f"{AUTHORIZE_URL}?{query}"))

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Trade the code for tokens, then read the account and its boards.

        PermanentError when Pinterest refuses the code or the client credentials.
        """
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if self.continuous_refresh:
            form["continuous_refresh"] = "true"
        resp = await self._token_request(form)
        if not resp.ok:
            self._raise_token_error(resp, refresh=False)
        tokens = self._token_set(resp.json())
        account = await self._call("GET", "/user_account", tokens.access_token)
        boards = await self._boards(tokens.access_token)
        username = account.get("username")
        return [ConnectedIdentity(
            remote_id=str(account.get("id") or username),
            type="business" if account.get("account_type") == "BUSINESS" else "profile",
            name=account.get("business_name") or username or "",
            username=username,
            profile_image=account.get("profile_image"),
            token=tokens,
            permissions=list(tokens.scopes),
            metadata={
                "boards": boards,
                "board_id": boards[0]["id"] if boards else None,
                "account_type": account.get("account_type"),
            },
        )]

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """A new access token; keeps the refresh token unless Pinterest hands out a new one.

        TokenExpiredError when Pinterest refuses the refresh token (expired after 60 idle days, revoked).
        """
        if not auth.refresh_token:
            raise TokenExpiredError("no refresh token: reconnect the account", network=self.network)
        form = {"grant_type": "refresh_token", "refresh_token": auth.refresh_token}
        if self.continuous_refresh:
            form["continuous_refresh"] = "true"
        resp = await self._token_request(form)
        if not resp.ok:
            self._raise_token_error(resp, refresh=True)
        tokens = self._token_set(resp.json())
        tokens.refresh_token = tokens.refresh_token or auth.refresh_token
        return tokens

    async def revoke(self, auth: AccountAuth) -> None:
        """Pinterest documents no revocation endpoint: the user removes the app in their settings."""
        return None

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Create the pin on `options["board_id"]` or the account's default board.

        PermanentError without media or board, for > 5 images or mixed media, and for what Pinterest
        refuses (unreachable image URL, foreign board, limits); RetryableError when the video never
        finishes processing (nothing was pinned); UnknownOutcomeError when the create call was sent but
        its answer was lost.
        """
        board_id = post.options.get("board_id") or auth.metadata.get("board_id")
        if not board_id:
            raise PermanentError("a pin needs a board: create one on Pinterest or choose board_id",
                                 network=self.network)
        images = [m for m in post.media if m.kind == "image"]
        videos = [m for m in post.media if m.kind == "video"]
        if not post.media:
            raise PermanentError("a pin needs an image or a video", network=self.network)
        if videos and (images or len(videos) > 1):
            raise PermanentError("a pin has one video or images, not both", network=self.network)
        if len(images) > 5:
            raise PermanentError("a carousel pin has at most 5 images", network=self.network)

        body: dict[str, Any] = {"board_id": str(board_id)}
        if post.title:
            body["title"] = post.title
        if post.text:
            body["description"] = post.text
        if post.link:
            body["link"] = post.link
        if post.options.get("board_section_id"):
            body["board_section_id"] = str(post.options["board_section_id"])
        alt = next((m.alt_text for m in post.media if m.alt_text), None)
        if alt:
            body["alt_text"] = alt[:500]

        if videos:
            body["media_source"] = await self._video_source(auth, videos[0], post.options)
        elif len(images) == 1:
            body["media_source"] = await self._image_source(images[0], post.options)
        else:
            body["media_source"] = {"source_type": "multiple_image_urls", "items": [
                {"url": m.url, **({"title": post.title} if post.title else {})} for m in images]}
        pin = await self._call("POST", "/pins", auth.access_token, json=body)
        pin_id = str(pin["id"])
        return PublishResult(remote_id=pin_id, url=f"https://www.pinterest.com/pin/{pin_id}/",
                             extra={"board_id": str(board_id)})

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """`DELETE /v5/pins/{id}`; a pin Pinterest no longer knows counts as deleted."""
        try:
            await self._call("DELETE", f"/pins/{remote_id}", auth.access_token)
        except PermanentError as exc:
            if exc.status != 404:
                raise

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """Lifetime pin metrics over the last 90 days, mapped:
        impressions = IMPRESSION, clicks = OUTBOUND_CLICK, engagement = PIN_CLICK + OUTBOUND_CLICK + SAVE
        + TOTAL_REACTIONS + TOTAL_COMMENTS, reach = 0 (Pinterest reports no reach per pin).
        """
        today = self.clock.now().date()
        data = await self._call("GET", f"/pins/{remote_id}/analytics", auth.access_token, params={
            "start_date": (today - timedelta(days=89)).isoformat(),
            "end_date": today.isoformat(),
            "metric_types": ",".join(PIN_METRICS),
        })
        section = data.get("all") or {}
        lifetime = section.get("lifetime_metrics") or section.get("summary_metrics") or {}
        metrics = {k: float(v) for k, v in lifetime.items() if isinstance(v, int | float)}

        def count(name: str) -> int:
            return int(metrics.get(name, 0))

        return Insights(
            metrics=metrics,
            impressions=count("IMPRESSION"),
            reach=0,
            engagement=sum(count(k) for k in ("PIN_CLICK", "OUTBOUND_CLICK", "SAVE", "TOTAL_REACTIONS",
                                              "TOTAL_COMMENTS")),
            clicks=count("OUTBOUND_CLICK"),
        )

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """follower_count, following_count and pin_count of the account (`GET /v5/user_account`)."""
        account = await self._call("GET", "/user_account", auth.access_token)
        return AccountStats(followers=account.get("follower_count"), following=account.get("following_count"),
                            posts_total=account.get("pin_count"))

    # Media -------------------------------------------------------------------------------------

    async def _image_source(self, image: MediaFile, options: dict[str, Any]) -> dict[str, Any]:
        if options.get("image_source") == "base64":
            if image.mime_type not in ("image/jpeg", "image/png"):
                raise PermanentError("image_base64 takes JPEG or PNG only", network=self.network)
            data = base64.b64encode(await image.read_all()).decode()
            return {"source_type": "image_base64", "content_type": image.mime_type, "data": data}
        return {"source_type": "image_url", "url": image.url}

    async def _video_source(self, auth: AccountAuth, video: MediaFile, options: dict[str, Any]) -> dict[str, Any]:
        """Register the upload, send the file to the pre-signed URL, wait until it succeeded."""
        media = await self._call("POST", "/media", auth.access_token, json={"media_type": "video"})
        form = aiohttp.FormData()
        for name, value in (media.get("upload_parameters") or {}).items():
            form.add_field(name, str(value))
        form.add_field("file", await video.read_all(), filename=video.filename, content_type=video.mime_type)
        # The upload URL is pre-signed (S3 POST policy): it must not carry our bearer token.
        resp = await self.http.request("POST", media["upload_url"], network=self.network, data=form,
                                       idempotent=True)
        if not resp.ok:
            self._raise_for(resp)
        media_id = str(media["media_id"])
        await self._wait_for_video(auth, media_id)
        source: dict[str, Any] = {"source_type": "video_id", "media_id": media_id}
        if options.get("cover_image_url"):
            source["cover_image_url"] = options["cover_image_url"]
        else:
            source["cover_image_key_frame_time"] = float(options.get("cover_key_frame_time", 0))
        return source

    async def _wait_for_video(self, auth: AccountAuth, media_id: str) -> None:
        deadline = self.clock.monotonic() + self.poll_timeout
        while True:
            status = (await self._call("GET", f"/media/{media_id}", auth.access_token)).get("status")
            if status == "succeeded":
                return
            if status == "failed":
                raise PermanentError(f"Pinterest could not process video {media_id}", network=self.network,
                                     code="media-failed")
            if self.clock.monotonic() + self.poll_interval > deadline:
                raise RetryableError(f"Pinterest video {media_id} still {status} after {self.poll_timeout:.0f}s; "
                                     "nothing was pinned", network=self.network, retry_after=60.0)
            await self.clock.sleep(self.poll_interval)

    async def _boards(self, token: str) -> list[dict[str, Any]]:
        boards: list[dict[str, Any]] = []
        bookmark: str | None = None
        for _ in range(self.max_board_pages):
            params = {"page_size": "250", **({"bookmark": bookmark} if bookmark else {})}
            page = await self._call("GET", "/boards", token, params=params)
            boards.extend({"id": str(b["id"]), "name": b.get("name"), "privacy": b.get("privacy")}
                          for b in page.get("items", []))
            bookmark = page.get("bookmark")
            if not bookmark:
                break
        return boards

    # HTTP and errors ---------------------------------------------------------------------------

    async def _token_request(self, form: dict[str, str]) -> PlatformResponse:
        raw = f"{self.credentials.client_id}:{self.credentials.client_secret}".encode()
        return await self.http.request("POST", f"{API}/oauth/token", network=self.network, data=form,
                                       headers={"Authorization": "Basic " + base64.b64encode(raw).decode()})

    def _token_set(self, body: dict[str, Any]) -> TokenSet:
        now = self.clock.now()
        expires_in = body.get("expires_in")
        refresh_in = body.get("refresh_token_expires_in")
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=now + timedelta(seconds=int(expires_in)) if expires_in else None,
            refresh_expires_at=now + timedelta(seconds=int(refresh_in)) if refresh_in else None,
            scopes=[s for s in str(body.get("scope", "")).replace(" ", ",").split(",") if s],
        )

    def _raise_token_error(self, resp: PlatformResponse, *, refresh: bool) -> NoReturn:
        if resp.status == 429 or resp.status >= 500:
            self._raise_for(resp)
        body = resp.json()
        message = f"Pinterest token endpoint: {body.get('message') or resp.status}"
        error = TokenExpiredError if refresh else PermanentError
        raise error(message, network=self.network, code=str(body.get("code")), status=resp.status)

    async def _call(self, method: str, path: str, token: str, **kwargs: Any) -> dict[str, Any]:
        resp = await self.http.request(method, API + path, network=self.network,
                                       headers={"Authorization": f"Bearer {token}"}, **kwargs)
        if not resp.ok:
            self._raise_for(resp)
        body = resp.json()
        return body if isinstance(body, dict) else {}

    def _raise_for(self, resp: PlatformResponse) -> NoReturn:
        """Map a Pinterest error ({code, message}) onto the outcome classes."""
        body = resp.json() if isinstance(resp.json(), dict) else {}
        code = body.get("code")
        message = f"Pinterest {resp.status}: {body.get('message') or resp.text[:200]}"
        common: dict[str, Any] = {"network": self.network, "status": resp.status,
                                  "code": str(code) if code is not None else None}
        if resp.status == 429:
            raise RetryableError(message, retry_after=self._retry_after(resp), **common)
        if resp.status == 401 or code == 2:
            raise TokenExpiredError(message, **common)
        if resp.status == 403:
            # Missing scope needs a new grant; a board that is not ours needs another board.
            raise PermanentError(message, reconnect="scope" in message.lower(), **common)
        if resp.status >= 500:
            raise RetryableError(message, **common)
        raise PermanentError(message, **common)

    def _retry_after(self, resp: PlatformResponse) -> float:
        """Retry-After, else x-ratelimit-reset (seconds to wait, or an epoch when that large)."""
        for header in ("Retry-After", "x-ratelimit-reset"):
            value = resp.headers.get(header)
            try:
                seconds = float(value) if value else None
            except ValueError:
                continue
            if seconds is not None:
                return max(1.0, seconds - self.clock.now().timestamp() if seconds > 1e9 else seconds)
        return self.default_rate_limit_wait
