"""LinkedIn Posts API (Community Management) for a member: OAuth, images/videos, posts, analytics.

Flows (shared/platforms.md section 4):
- Connect: `www.linkedin.com/oauth/v2/authorization` -> `POST /oauth/v2/accessToken` (client_secret in
  the form, no PKCE) -> `GET /v2/userinfo`; the author is `urn:li:person:{sub}`.
  Choice: only the member profile is connected. Organization pages need the `w_organization_social`
  and `rw_organization_admin` products and a second identity type; they are not offered here.
- Refresh: only apps with programmatic refresh get a refresh token; it is not rotated (the same one
  comes back, with its 365-day life still counting down).
- Image: `POST /rest/images?action=initializeUpload` -> `PUT uploadUrl` -> poll `GET /rest/images/{urn}`
  until AVAILABLE. Video: `POST /rest/videos?action=initializeUpload` -> `PUT` each byte range (collect
  ETags) -> `action=finalizeUpload` -> poll `GET /rest/videos/{urn}` until AVAILABLE.
- Post: `POST /rest/posts` with `content.media` (1 image or video), `content.multiImage` (2-20
  images) or `content.article` (a link); the new URN comes back in the `x-restli-id` header.
- Every `/rest` call carries `LinkedIn-Version` (`api_version`) and `X-Restli-Protocol-Version: 2.0.0`.

Follow-ups: LinkedIn has comments, no reply chains (`PlatformSpec.comments`). `comment()` is the Comments
API: `POST /rest/socialActions/{urlencoded postUrn}/comments {actor, object: postUrn, message: {text}}`,
the actor being the post's author (the member, as `publish` used it; w_member_social). The message is
AnnotatedText, not little text: the comment is sent as written (mentions would be `attributes`). 201
gives the comment; its URN `urn:li:comment:({postUrn},{id})` (`$URN`) is the result's id and the link
is the post's with `?commentUrn=`. LinkedIn has no idempotency key: `key` is not sent, and an answer
lost after sending is an UnknownOutcomeError. Errors map as in `publish` (403 ACCESS_DENIED: reconnect;
404 for a deleted post and 400 for a comment over 1,250 characters: permanent).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote, urlencode

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

API = "https://api.linkedin.com"
OAUTH = "https://www.linkedin.com/oauth/v2"

# "Little text" reserved characters in commentary: escaped with a backslash so they show literally.
_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
# memberCreatorPostAnalytics query types we read, in the order we ask them.
_POST_METRICS = ("IMPRESSION", "MEMBERS_REACHED", "REACTION", "COMMENT", "RESHARE")


def escape_little_text(text: str) -> str:
    """Escape LinkedIn's reserved characters so the commentary shows exactly as written."""
    return _RESERVED.sub(r"\\\1", text)


class LinkedInAdapter(PlatformAdapter):
    """A LinkedIn member: text, article (link), 1 image, 2-20 images (multiImage) or 1 video."""

    network: ClassVar[str] = "linkedin"
    default_scopes: ClassVar[tuple[str, ...]] = (
        "openid", "profile", "email", "w_member_social", "r_member_postAnalytics", "r_member_profileAnalytics",
    )
    # A LinkedIn-Version is sunset about a year after release: move this forward with the API.
    api_version: ClassVar[str] = "202605"
    poll_interval: ClassVar[float] = 2.0
    media_poll_attributes: ClassVar[tuple[str, ...]] = ("poll_interval",)
    poll_timeout: ClassVar[float] = 600.0

    # OAuth -------------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """LinkedIn's consent URL (no PKCE for server-side apps)."""
        query = urlencode({
            "response_type": "code",
            "client_id": self.credentials.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "scope": " ".join(scopes or self.default_scopes),
        })
        return AuthorizationRequest(url=self.http.url(f"{OAUTH}/authorization?{query}"))

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Trade the code for tokens and read the member (`/v2/userinfo`).

        PermanentError when LinkedIn refuses the code (expired, reused, other redirect_uri/client).
        """
        resp = await self.http.request("POST", f"{OAUTH}/accessToken", network=self.network, data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret,
        })
        if not resp.ok:
            self._raise_token_error(resp, refresh=False)
        tokens = self._token_set(resp.json())
        info = await self._call("GET", f"{API}/v2/userinfo", tokens.access_token, rest=False)
        sub = str(info["sub"])
        return [ConnectedIdentity(
            remote_id=sub,
            type="profile",
            name=info.get("name") or " ".join(filter(None, (info.get("given_name"), info.get("family_name")))),
            username=None,  # vanityName needs r_basicprofile, which Community Management apps rarely hold
            profile_image=info.get("picture"),
            token=tokens,
            permissions=list(tokens.scopes),
            metadata={"urn": f"urn:li:person:{sub}", "email": info.get("email")},
        )]

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """A new 60-day access token; the refresh token stays the same (not rotated).

        TokenExpiredError without a refresh token (most apps) or when LinkedIn refuses it.
        """
        if not auth.refresh_token:
            raise TokenExpiredError("LinkedIn gave no refresh token: reconnect the account", network=self.network)
        resp = await self.http.request("POST", f"{OAUTH}/accessToken", network=self.network, data={
            "grant_type": "refresh_token",
            "refresh_token": auth.refresh_token,
            "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret,
        })
        if not resp.ok:
            self._raise_token_error(resp, refresh=True)
        tokens = self._token_set(resp.json())
        tokens.refresh_token = tokens.refresh_token or auth.refresh_token
        return tokens

    async def revoke(self, auth: AccountAuth) -> None:
        """`POST /oauth/v2/revoke` (an endpoint platforms.md marks unconfirmed). Best effort."""
        try:
            await self.http.request("POST", f"{OAUTH}/revoke", network=self.network, idempotent=True, data={
                "client_id": self.credentials.client_id,
                "client_secret": self.credentials.client_secret,
                "token": auth.access_token,
            })
        except PlatformError:
            return  # the account is disconnected locally either way

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Upload media (waiting until AVAILABLE), then create the post.

        PermanentError for content LinkedIn refuses (mixed media, > 20 images, duplicate, media that
        failed processing); RetryableError when media never becomes AVAILABLE (nothing was posted);
        UnknownOutcomeError when the create call was sent but its answer was lost.
        """
        author = self._author(auth)
        images = [m for m in post.media if m.kind == "image"]
        videos = [m for m in post.media if m.kind == "video"]
        if videos and (images or len(videos) > 1):
            raise PermanentError("LinkedIn takes 1 video or images, not both", network=self.network)
        if len(images) > 20:
            raise PermanentError("LinkedIn takes at most 20 images per post", network=self.network)
        text = post.text or ""
        if post.link and post.media and post.link not in text:
            text = f"{text}\n{post.link}".strip()  # a post with media has no link card: keep the link visible

        content: dict[str, Any] | None = None
        if videos:
            urn = await self._upload_video(auth, author, videos[0])
            content = {"media": {"id": urn, **({"title": post.title} if post.title else {})}}
        elif len(images) == 1:
            urn = await self._upload_image(auth, author, images[0])
            content = {"media": {"id": urn, **_alt(images[0])}}
        elif images:
            urns = [await self._upload_image(auth, author, image) for image in images]
            content = {"multiImage": {"images": [{"id": u, **_alt(m)} for u, m in zip(urns, images, strict=True)]}}
        elif post.link:
            article: dict[str, Any] = {"source": post.link, "title": post.title or post.link}
            if post.options.get("link_description"):
                article["description"] = post.options["link_description"]
            content = {"article": article}

        body: dict[str, Any] = {
            "author": author,
            "commentary": escape_little_text(text),
            "visibility": post.options.get("visibility", "PUBLIC"),
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                             "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        if content:
            body["content"] = content
        resp = await self._request("POST", f"{API}/rest/posts", auth.access_token, json=body)
        post_urn = resp.headers.get("x-restli-id") or resp.headers.get("x-linkedin-id")
        if not post_urn:
            raise PermanentError("LinkedIn created the post but returned no x-restli-id", network=self.network)
        return PublishResult(remote_id=post_urn, url=f"https://www.linkedin.com/feed/update/{post_urn}/")

    async def comment(self, auth: AccountAuth, text: str, *, on: PostRef, key: str | None = None) -> PublishResult:
        """Comment `text` on the post `on` as its author (the Comments API). LinkedIn takes no
        idempotency key, so `key` is unused.

        PermanentError when LinkedIn refuses (deleted post 404, text over 1,250 characters 400; 403
        ACCESS_DENIED asks for reconnection); UnknownOutcomeError when the answer was lost after sending.
        """
        post_urn = on.remote_id
        body = {"actor": self._author(auth), "object": post_urn, "message": {"text": text}}
        resp = await self._request("POST", f"{API}/rest/socialActions/{quote(post_urn, safe='')}/comments",
                                   auth.access_token, json=body)
        created = resp.json() if isinstance(resp.json(), dict) else {}
        comment_id = str(created.get("id") or resp.headers.get("x-restli-id") or "")
        urn = created.get("$URN") or created.get("commentUrn") or (
            f"urn:li:comment:({post_urn},{comment_id})" if comment_id else "")
        if not urn:
            raise PermanentError("LinkedIn created the comment but returned no id", network=self.network)
        return PublishResult(
            remote_id=str(urn),
            url=f"https://www.linkedin.com/feed/update/{post_urn}/?commentUrn={quote(str(urn), safe='')}",
            extra={"post": post_urn, "comment_id": comment_id},
        )

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """`DELETE /rest/posts/{urn}`; a post LinkedIn no longer knows counts as deleted."""
        try:
            await self._request("DELETE", f"{API}/rest/posts/{quote(remote_id, safe='')}", auth.access_token)
        except PermanentError as exc:
            if exc.status != 404:
                raise

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """Member post analytics (one TOTAL query per metric), mapped:
        impressions = IMPRESSION, reach = MEMBERS_REACHED, engagement = REACTION + COMMENT + RESHARE,
        clicks = 0 (member analytics report no clicks).
        """
        kind = "ugcPost" if remote_id.startswith("urn:li:ugcPost:") else "share"
        entity = f"({kind}:{quote(remote_id, safe='')})"
        metrics: dict[str, float] = {}
        for query_type in _POST_METRICS:
            url = (f"{API}/rest/memberCreatorPostAnalytics?q=entity&entity={entity}"
                   f"&queryType={query_type}&aggregation=TOTAL")
            data = (await self._request("GET", url, auth.access_token)).json()
            metrics[query_type] = float(sum(int(e.get("count", 0)) for e in data.get("elements", [])))
        return Insights(
            metrics=metrics,
            impressions=int(metrics["IMPRESSION"]),
            reach=int(metrics["MEMBERS_REACHED"]),
            engagement=int(metrics["REACTION"] + metrics["COMMENT"] + metrics["RESHARE"]),
            clicks=0,
        )

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """The member's follower count (`/rest/memberFollowersCount?q=me`); LinkedIn gives no more."""
        data = (await self._request("GET", f"{API}/rest/memberFollowersCount?q=me", auth.access_token)).json()
        elements = data.get("elements") or [{}]
        return AccountStats(followers=elements[0].get("memberFollowersCount"))

    # Media -------------------------------------------------------------------------------------

    def _author(self, auth: AccountAuth) -> str:
        return str(auth.metadata.get("urn") or f"urn:li:person:{auth.remote_id}")

    async def _upload_image(self, auth: AccountAuth, owner: str, image: MediaFile) -> str:
        # An upload slot whose answer is lost is never referenced by a post: asking for another is safe.
        init = (await self._request("POST", f"{API}/rest/images?action=initializeUpload", auth.access_token,
                                    idempotent=True, json={"initializeUploadRequest": {"owner": owner}})
                ).json()["value"]
        data = await image.read_all()
        try:
            await self._request("PUT", init["uploadUrl"], auth.access_token, rest=False, data=data,
                                headers={"Content-Type": image.mime_type})
        except PlatformError as exc:
            # The answer may belong to a second send of bytes that got through (the first answer
            # lost, the PUT sent again by the HTTP client: "upload already completed"): the
            # image's own status says whether LinkedIn has them. Nothing is posted yet, so when
            # that cannot be read either, trying the whole post again later is safe.
            status = await self._image_status(auth, init["image"])
            if status is None:
                raise RetryableError(f"LinkedIn image upload failed and its status is unknown ({exc.message}); "
                                     "nothing was posted", network=self.network) from exc
            if status == "WAITING_UPLOAD":
                raise
        await self._wait_available(auth, "images", init["image"])
        return str(init["image"])

    async def _image_status(self, auth: AccountAuth, urn: str) -> str | None:
        """The image's upload status (WAITING_UPLOAD, PROCESSING, AVAILABLE...), None when unreadable."""
        try:
            asset = (await self._request("GET", f"{API}/rest/images/{quote(urn, safe='')}", auth.access_token)).json()
        except PlatformError:
            return None
        return str(asset.get("status") or "") or None

    async def _upload_video(self, auth: AccountAuth, owner: str, video: MediaFile) -> str:
        init = (await self._request("POST", f"{API}/rest/videos?action=initializeUpload", auth.access_token,
                                    idempotent=True, json={"initializeUploadRequest": {
                                        "owner": owner, "fileSizeBytes": video.size,
                                        "uploadCaptions": False, "uploadThumbnail": False}})).json()["value"]
        etags: list[str] = []
        parts = _byte_ranges(video, init["uploadInstructions"])
        async for instruction, chunk in parts:
            resp = await self._request("PUT", instruction["uploadUrl"], auth.access_token, rest=False, data=chunk,
                                       headers={"Content-Type": "application/octet-stream"})
            etag = resp.headers.get("ETag")
            if not etag:
                raise RetryableError("LinkedIn returned no ETag for a video part", network=self.network)
            etags.append(etag)
        await self._request("POST", f"{API}/rest/videos?action=finalizeUpload", auth.access_token,
                            idempotent=True, json={"finalizeUploadRequest": {
                                "video": init["video"], "uploadToken": init.get("uploadToken", ""),
                                "uploadedPartIds": etags}})
        await self._wait_available(auth, "videos", init["video"])
        return str(init["video"])

    async def _wait_available(self, auth: AccountAuth, kind: str, urn: str) -> None:
        """Poll the asset until AVAILABLE; PROCESSING_FAILED is permanent, a timeout retryable."""
        deadline = self.clock.monotonic() + self.poll_timeout
        while True:
            asset = (await self._request("GET", f"{API}/rest/{kind}/{quote(urn, safe='')}", auth.access_token)).json()
            status = asset.get("status")
            if status == "AVAILABLE":
                return
            if status == "PROCESSING_FAILED":
                reason = asset.get("processingFailureReason") or "processing failed"
                raise PermanentError(f"LinkedIn could not process {urn}: {reason}", network=self.network,
                                     code="PROCESSING_FAILED")
            if self.clock.monotonic() + self.poll_interval > deadline:
                raise RetryableError(f"LinkedIn {urn} still {status} after {self.poll_timeout:.0f}s; "
                                     "nothing was posted", network=self.network, retry_after=60.0)
            await self.clock.sleep(self.poll_interval)

    # HTTP and errors ---------------------------------------------------------------------------

    def _token_set(self, body: dict[str, Any]) -> TokenSet:
        now = self.clock.now()
        expires_in = body.get("expires_in")
        refresh_in = body.get("refresh_token_expires_in")
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=now + timedelta(seconds=int(expires_in)) if expires_in else None,
            refresh_expires_at=now + timedelta(seconds=int(refresh_in)) if refresh_in else None,
            scopes=[s for s in re.split(r"[,\s]+", str(body.get("scope", ""))) if s],
        )

    def _raise_token_error(self, resp: PlatformResponse, *, refresh: bool) -> NoReturn:
        if resp.status == 429 or resp.status >= 500:
            self._raise_for(resp)
        body = resp.json()
        message = f"LinkedIn token endpoint: {body.get('error_description') or body.get('error') or resp.status}"
        error = TokenExpiredError if refresh else PermanentError
        raise error(message, network=self.network, code=body.get("error"), status=resp.status)

    async def _call(self, method: str, url: str, token: str, *, rest: bool = True, **kwargs: Any) -> dict[str, Any]:
        body = (await self._request(method, url, token, rest=rest, **kwargs)).json()
        return body if isinstance(body, dict) else {}

    async def _request(
        self, method: str, url: str, token: str, *, rest: bool = True, headers: dict[str, str] | None = None,
        idempotent: bool | None = None, **kwargs: Any,
    ) -> PlatformResponse:
        all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        if rest:
            all_headers["LinkedIn-Version"] = self.api_version
            all_headers["X-Restli-Protocol-Version"] = "2.0.0"
        resp = await self.http.request(method, url, network=self.network, headers=all_headers,
                                       idempotent=idempotent, **kwargs)
        if not resp.ok:
            self._raise_for(resp)
        return resp

    def _raise_for(self, resp: PlatformResponse) -> NoReturn:
        """Map a LinkedIn error ({status, serviceErrorCode, code, message}) onto the outcome classes."""
        body = resp.json() if isinstance(resp.json(), dict) else {}
        service_code = body.get("serviceErrorCode")
        code = str(service_code) if service_code is not None else body.get("code")
        message = f"LinkedIn {resp.status}: {body.get('message') or resp.text[:200]}"
        # Validation errors name the field and the reason in errorDetails.inputErrors: keep them,
        # "Invalid request body" alone tells the user nothing.
        details = body.get("errorDetails")
        inputs = details.get("inputErrors") if isinstance(details, dict) else None
        reasons = [_input_error(e) for e in inputs or [] if isinstance(e, dict)]
        if reasons:
            message = f"{message} ({'; '.join(reasons)})"
        common: dict[str, Any] = {"network": self.network, "status": resp.status, "code": code}
        if resp.status == 429:
            # No rate-limit headers: daily quotas reset at midnight UTC.
            raise RetryableError(message, retry_after=_seconds_to_utc_midnight(self.clock.now()), **common)
        if resp.status == 401 or service_code in (65600, 65601, 65602):
            raise TokenExpiredError(message, **common)
        if resp.status == 403:
            raise PermanentError(message, reconnect=True, **common)
        if resp.status >= 500:
            raise RetryableError(message, **common)
        raise PermanentError(message, **common)


def _input_error(item: dict[str, Any]) -> str:
    """One of a validation error's inputErrors as "field: reason"."""
    where = item.get("input")
    path = where.get("inputPath") if isinstance(where, dict) else None
    field = str(path.get("fieldPath") or "") if isinstance(path, dict) else ""
    return f"{field}: {item.get('description') or item.get('code') or ''}".strip(": ")


def _alt(media: MediaFile) -> dict[str, str]:
    return {"altText": media.alt_text[:4086]} if media.alt_text else {}


def _seconds_to_utc_midnight(now: datetime) -> float:
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - now).total_seconds())


async def _byte_ranges(
    media: MediaFile, instructions: list[dict[str, Any]]
) -> AsyncIterator[tuple[dict[str, Any], bytes]]:
    """Pair each upload instruction with exactly its [firstByte, lastByte] slice of the file."""
    ordered = sorted(instructions, key=lambda i: int(i["firstByte"]))
    buffer = bytearray()
    offset = 0  # file offset of buffer[0]
    stream = media.stream(1 << 20)
    for instruction in ordered:
        first, last = int(instruction["firstByte"]), int(instruction["lastByte"])
        while offset + len(buffer) <= last:
            try:
                buffer.extend(await anext(stream))
            except StopAsyncIteration as exc:
                raise PermanentError("the video is shorter than LinkedIn expects", network="linkedin") from exc
        chunk = bytes(buffer[first - offset:last - offset + 1])
        del buffer[:last - offset + 1]
        offset = last + 1
        yield instruction, chunk
