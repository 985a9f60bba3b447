"""Facebook Pages through the Graph API v25.0 (shared/platforms.md section 1).

Connect: Facebook Login code grant (no PKCE) -> short-lived user token -> `fb_exchange_token` long-lived
user token (about 60 days) -> `GET /me/accounts` -> one ConnectedIdentity per Page, carrying the Page
token. Page tokens obtained from a long-lived user token never expire, and Facebook has no refresh
grant: when a Page token dies (password change, role lost, app removed) the user logs in again.

Publish (all with the Page token):
- text / link:     `POST /{page}/feed {message, link?}` -> `{id: "{page}_{post}"}`
- one image:       `POST /{page}/photos {url, caption, alt_text_custom?}` -> `{id, post_id}`
- several images:  each `POST /{page}/photos {url, published:false}` (invisible until attached, so a
                   lost answer there is harmless), then `POST /{page}/feed {message, attached_media}`
- one video:       `POST /{page}/videos {file_url, description, title?}` -> `{id}`; the status is then
                   polled (`GET /{video}?fields=status`) to surface processing errors
- photo story:     `options={"story": True}` with one image: unpublished photo, then
                   `POST /{page}/photo_stories {photo_id}` -> `{post_id}`
Mixing images and a video in one post is not possible on Facebook (NotSupportedError).

Permalinks come from `GET /{id}?fields=permalink_url` (relative for videos, so made absolute here).

Follow-ups: Facebook has no reply chains, only comments. A first comment is
`POST /{post-id}/comments {message}` with the Page token -> `{id: "{post}_{comment}"}` (the post id
is the result's remote id: the feed post, the photo's post or the video); it needs
`pages_manage_engagement` (in the default scopes; without it Graph answers #200 -> reconnect).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlencode

from ouipost.platforms._meta import GraphAdapter, expires_at, metric_values, numeric
from ouipost.platforms.base import (
    AccountAuth,
    AccountStats,
    AuthorizationRequest,
    ConnectedIdentity,
    Insights,
    NotSupportedError,
    PermanentError,
    PlatformError,
    PostRef,
    PublishRequest,
    PublishResult,
    RetryableError,
    TokenExpiredError,
    TokenSet,
    UnknownOutcomeError,
)

log = logging.getLogger(__name__)

VERSION = "v25.0"
GRAPH = f"https://graph.facebook.com/{VERSION}"
DIALOG = f"https://www.facebook.com/{VERSION}/dialog/oauth"
POST_METRICS = ("post_total_media_view_unique", "post_reactions_by_type_total", "post_clicks",
                "post_clicks_by_type")
MAX_PHOTOS = 10


class FacebookAdapter(GraphAdapter):
    """Facebook Pages: text, link, photos (1..10), one video, photo stories; insights and followers."""

    network: ClassVar[str] = "facebook"
    default_scopes: ClassVar[tuple[str, ...]] = (
        "pages_show_list", "pages_manage_posts", "pages_read_engagement", "pages_manage_engagement",
        "read_insights", "business_management", "publish_video",
    )
    uses_pkce: ClassVar[bool] = False
    supports_refresh: ClassVar[bool] = False
    graph_base: ClassVar[str] = GRAPH
    #: How long to watch a new video's processing before returning (it stays published either way).
    video_poll_interval: ClassVar[float] = 5.0
    media_poll_attributes: ClassVar[tuple[str, ...]] = ("video_poll_interval",)
    video_poll_timeout: ClassVar[float] = 60.0

    # OAuth -------------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """The Facebook Login dialog; scopes are comma-separated, no PKCE."""
        query = urlencode({
            "client_id": self.credentials.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "response_type": "code",
            "scope": ",".join(scopes or self.default_scopes),
        })
        return AuthorizationRequest(url=self.http.url(f"{DIALOG}?{query}"))

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Code -> short token -> long-lived user token -> one identity per Page the user manages.

        A refused code (used, expired, redirect mismatch, wrong secret) is a PermanentError; a user
        who manages no Page gets a PermanentError that says so.
        """
        short = await self._token_call({
            "client_id": self.credentials.client_id, "client_secret": self.credentials.client_secret,
            "redirect_uri": redirect_uri, "code": code,
        }, action="code exchange")
        long_lived = await self._token_call({
            "grant_type": "fb_exchange_token", "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret, "fb_exchange_token": short["access_token"],
        }, action="long-lived token exchange")
        user_token = str(long_lived["access_token"])
        me = await self._call("GET", f"{GRAPH}/me", token=user_token, params={"fields": "id,name"},
                              action="profile")
        perms = await self._call("GET", f"{GRAPH}/me/permissions", token=user_token, action="permissions")
        granted = [p["permission"] for p in perms.get("data", [])
                   if isinstance(p, dict) and p.get("status") == "granted"]
        pages = await self._pages(user_token)
        if not pages:
            raise PermanentError(
                "facebook: this Facebook user manages no Page that the app may publish to "
                "(check the Pages selected during login)", network=self.network, reconnect=True,
            )
        identities = []
        for page in pages:
            picture = ((page.get("picture") or {}).get("data") or {}).get("url")
            identities.append(ConnectedIdentity(
                remote_id=str(page["id"]), type="page", name=str(page.get("name") or page["id"]),
                username=page.get("username"), profile_image=picture,
                # Page tokens from a long-lived user token do not expire.
                token=TokenSet(access_token=str(page["access_token"]), expires_at=None, scopes=granted),
                permissions=granted,
                metadata={"page_id": str(page["id"]), "user_id": str(me.get("id")),
                          "tasks": page.get("tasks") or [], "category": page.get("category"),
                          "user_token_expires_at": _iso(expires_at(long_lived.get("expires_in"), self.clock.now()))},
            ))
        return identities

    async def _pages(self, user_token: str) -> list[dict[str, Any]]:
        """`/me/accounts`, following `paging.next` (bounded, in case a cursor loops)."""
        pages: list[dict[str, Any]] = []
        params: dict[str, Any] = {"fields": "id,name,username,access_token,picture,tasks,category", "limit": 100}
        for _ in range(20):
            body = await self._call("GET", f"{GRAPH}/me/accounts", token=user_token, params=params,
                                    action="list Pages")
            pages.extend(p for p in body.get("data", []) if isinstance(p, dict) and p.get("access_token"))
            after = ((body.get("paging") or {}).get("cursors") or {}).get("after")
            if not (body.get("paging") or {}).get("next") or not after:
                break
            params = {**params, "after": after}
        return pages

    async def _token_call(self, params: dict[str, Any], *, action: str) -> dict[str, Any]:
        try:
            body = await self._call("GET", f"{GRAPH}/oauth/access_token", params=params, action=action)
        except (TokenExpiredError, PermanentError) as exc:
            raise PermanentError(exc.message, network=self.network, code=exc.code, status=exc.status) from exc
        except RetryableError as exc:
            # "Error validating client secret" is code 1, which elsewhere means "transient".
            if exc.status == 400 and exc.code == "1":
                raise PermanentError(exc.message, network=self.network, code=exc.code, status=exc.status) from exc
            raise
        if not body.get("access_token"):
            raise PermanentError(f"facebook: {action}: no access_token in answer", network=self.network)
        return body

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """Facebook has no refresh grant: Page tokens do not expire and a dead one needs a new login."""
        raise TokenExpiredError(
            "facebook: Page tokens cannot be refreshed; the user must connect the Page again",
            network=self.network,
        )

    async def revoke(self, auth: AccountAuth) -> None:
        """`DELETE /{user-id}/permissions` with the app token (best effort: errors are logged)."""
        user_id = auth.metadata.get("user_id")
        if not user_id:
            log.info("facebook: no user id stored for Page %s, nothing to revoke", auth.remote_id)
            return
        app_token = f"{self.credentials.client_id}|{self.credentials.client_secret}"
        try:
            await self._call("DELETE", f"{GRAPH}/{user_id}/permissions", token=app_token, action="revoke")
        except PlatformError as exc:
            log.warning("facebook: revoking the grant of user %s failed: %s", user_id, exc.message)

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Publish to the Page with the flow the media calls for (see the module docstring).

        Lost answers of the final POST raise UnknownOutcomeError (never re-sent); a video whose
        processing fails raises PermanentError.
        """
        page_id = auth.metadata.get("page_id") or auth.remote_id
        token = auth.access_token
        images = [m for m in post.media if m.kind == "image"]
        videos = [m for m in post.media if m.kind == "video"]
        if images and videos:
            raise NotSupportedError("facebook: a post cannot mix photos and a video", network=self.network)
        if len(videos) > 1:
            raise NotSupportedError("facebook: a post carries at most one video", network=self.network)
        if len(images) > MAX_PHOTOS:
            raise PermanentError(f"facebook: at most {MAX_PHOTOS} photos per post", network=self.network)

        if post.options.get("story"):
            return await self._photo_story(token, page_id, images)
        if videos:
            return await self._video(token, page_id, post)
        if len(images) == 1:
            caption = _with_link(post.text, post.link)
            body = await self._call("POST", f"{GRAPH}/{page_id}/photos", token=token, data={
                "url": images[0].url, "caption": caption, "published": True,
                "alt_text_custom": images[0].alt_text,
            }, action="publish photo")
            post_id = str(body.get("post_id") or body["id"])
            return PublishResult(post_id, await self._permalink(token, post_id),
                                 extra={"photo_id": str(body.get("id"))})
        data: dict[str, Any] = {"message": post.text or None, "link": post.link}
        photo_ids = []
        if images:
            for image in images:
                # Unpublished photos are invisible: a duplicate upload costs nothing, so a lost answer
                # here is retryable rather than unknown.
                uploaded = await self._call("POST", f"{GRAPH}/{page_id}/photos", token=token, idempotent=True,
                                            data={"url": image.url, "published": False,
                                                  "alt_text_custom": image.alt_text},
                                            action="upload photo")
                photo_ids.append(str(uploaded["id"]))
            data["attached_media"] = [{"media_fbid": pid} for pid in photo_ids]
            if post.link:  # attached photos and a link preview exclude each other; keep the link visible
                data["message"] = _with_link(post.text, post.link)
                data["link"] = None
        if not data.get("message") and not data.get("link") and not photo_ids:
            raise PermanentError("facebook: nothing to publish (no text, link or media)", network=self.network)
        body = await self._call("POST", f"{GRAPH}/{page_id}/feed", token=token, data=data, action="publish")
        post_id = str(body["id"])
        return PublishResult(post_id, await self._permalink(token, post_id),
                             extra={"photo_ids": photo_ids} if photo_ids else {})

    async def _video(self, token: str, page_id: str, post: PublishRequest) -> PublishResult:
        body = await self._call("POST", f"{GRAPH}/{page_id}/videos", token=token, data={
            "file_url": post.media[0].url, "description": _with_link(post.text, post.link),
            "title": post.title, "published": True,
        }, action="publish video")
        video_id = str(body["id"])
        status = await self._watch_video(token, video_id)
        url = await self._permalink(token, video_id)
        return PublishResult(video_id, url, extra={"video_status": status, "post_id": f"{page_id}_{video_id}"})

    async def _watch_video(self, token: str, video_id: str) -> str | None:
        """Follow processing for a while: `error` is reported, still processing is fine (it is posted)."""
        deadline = self.clock.monotonic() + self.video_poll_timeout
        status: str | None = None
        while True:
            try:
                body = await self._call("GET", f"{GRAPH}/{video_id}", token=token,
                                        params={"fields": "status"}, action="video status")
            except PlatformError as exc:
                # The video was accepted: a failing status read must not make the worker post it again.
                log.warning("facebook: cannot read status of video %s: %s", video_id, exc.message)
                return status
            status = ((body.get("status") or {}).get("video_status") or "").lower() or None
            if status == "error":
                raise PermanentError(f"facebook: video {video_id} failed processing", network=self.network)
            if status in ("ready", "upload_complete") or self.clock.monotonic() >= deadline:
                return status
            await self.clock.sleep(self.video_poll_interval)

    async def _photo_story(self, token: str, page_id: str, images: list[Any]) -> PublishResult:
        if len(images) != 1:
            raise NotSupportedError("facebook: a Page story is published from exactly one photo",
                                    network=self.network)
        uploaded = await self._call("POST", f"{GRAPH}/{page_id}/photos", token=token, idempotent=True,
                                    data={"url": images[0].url, "published": False}, action="upload story photo")
        body = await self._call("POST", f"{GRAPH}/{page_id}/photo_stories", token=token,
                                data={"photo_id": str(uploaded["id"])}, action="publish story")
        post_id = str(body["post_id"])
        return PublishResult(post_id, f"https://www.facebook.com/stories/{post_id}", extra={"story": True})

    async def _permalink(self, token: str, object_id: str) -> str | None:
        """The post's permalink; a failure here is logged, never raised (the post exists already)."""
        try:
            body = await self._call("GET", f"{GRAPH}/{object_id}", token=token,
                                    params={"fields": "permalink_url"}, action="permalink")
        except PlatformError as exc:
            log.warning("facebook: permalink of %s unavailable: %s", object_id, exc.message)
            return None
        url = body.get("permalink_url")
        if isinstance(url, str) and url.startswith("/"):
            url = f"https://www.facebook.com{url}"
        return url if isinstance(url, str) else None

    async def comment(self, auth: AccountAuth, text: str, *, on: PostRef, key: str | None = None) -> PublishResult:
        """`POST /{post-id}/comments {message}` -> `{id: "{post}_{comment}"}`, as the Page (its token).

        Needs `pages_manage_engagement`: a grant without it is a PermanentError asking to reconnect
        (Graph #200). A deleted or unknown post is a PermanentError (Graph #100); a lost answer is an
        UnknownOutcomeError (Graph takes no idempotency key, so `key` is not sent). Stories take no
        comments through the API (NotSupportedError).
        """
        if on.extra.get("story"):
            raise NotSupportedError("facebook: Page stories cannot be commented through the API",
                                    network=self.network)
        if not text.strip():
            raise PermanentError("facebook: a comment needs text", network=self.network)
        token = auth.access_token
        body = await self._call("POST", f"{GRAPH}/{on.remote_id}/comments", token=token,
                                data={"message": text}, action="comment")
        comment_id = str(body.get("id") or "")
        if not comment_id:
            raise UnknownOutcomeError("facebook: comment answered without an id", network=self.network)
        return PublishResult(comment_id, await self._permalink(token, comment_id), extra={"post_id": on.remote_id})

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """`DELETE /{post-id}` (or the video id); Graph answers `{success: true}`."""
        body = await self._call("DELETE", f"{GRAPH}/{remote_id}", token=auth.access_token, action="delete")
        if body.get("success") is False:
            raise PermanentError(f"facebook: Graph refused to delete {remote_id}", network=self.network)

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """Post metrics plus reaction/comment/share counts.

        reach = impressions = `post_total_media_view_unique` (Meta retired the impression metrics);
        engagement = reactions + comments + shares; clicks = `post_clicks`. Videos are read through
        their feed story `{page}_{video}`.
        """
        page_id = auth.metadata.get("page_id") or auth.remote_id
        post_id = remote_id if "_" in remote_id else f"{page_id}_{remote_id}"
        token = auth.access_token
        body = await self._call("GET", f"{GRAPH}/{post_id}/insights", token=token,
                                params={"metric": ",".join(POST_METRICS)}, action="post insights")
        raw = metric_values(body)
        counts = await self._call("GET", f"{GRAPH}/{post_id}", token=token, params={
            "fields": "shares,reactions.summary(total_count),comments.summary(total_count)",
        }, action="post counts")
        reactions = int(((counts.get("reactions") or {}).get("summary") or {}).get("total_count") or 0)
        comments = int(((counts.get("comments") or {}).get("summary") or {}).get("total_count") or 0)
        shares = int((counts.get("shares") or {}).get("count") or 0)
        metrics: dict[str, float] = {name: numeric(value) for name, value in raw.items()}
        for name, value in raw.items():
            if isinstance(value, dict):
                metrics.update({f"{name}.{k}": numeric(v) for k, v in value.items()})
        metrics.update({"reactions": reactions, "comments": comments, "shares": shares})
        reach = int(metrics.get("post_total_media_view_unique", 0))
        return Insights(metrics=metrics, impressions=reach, reach=reach,
                        engagement=reactions + comments + shares, clicks=int(metrics.get("post_clicks", 0)))

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """`GET /{page}?fields=followers_count,fan_count` (followers; fan_count = Page likes)."""
        page_id = auth.metadata.get("page_id") or auth.remote_id
        body = await self._call("GET", f"{GRAPH}/{page_id}", token=auth.access_token,
                                params={"fields": "followers_count,fan_count"}, action="Page stats")
        followers = body.get("followers_count", body.get("fan_count"))
        return AccountStats(followers=int(followers) if followers is not None else None,
                            demographics={"fan_count": body.get("fan_count")} if "fan_count" in body else None)


def _with_link(text: str, link: str | None) -> str:
    """Photos and videos have no link field: the link goes at the end of the text, once."""
    if not link or link in text:
        return text
    return f"{text}\n\n{link}" if text else link


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
