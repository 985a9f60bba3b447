"""Instagram professional accounts through the Instagram API with **Instagram Login**.

Why this flavour (shared/platforms.md section 2 describes both): Instagram Login needs no Facebook
Page, gives one token per professional account (BUSINESS or MEDIA_CREATOR) and has a real refresh grant
(`ig_refresh_token`), whereas the Facebook Login flavour can only be renewed by logging in again. All
calls go to `graph.instagram.com/v25.0`; the paths are the same as with Facebook Login.

Connect: `www.instagram.com/oauth/authorize` (comma-separated scopes, no PKCE) ->
`POST api.instagram.com/oauth/access_token` (1 h token) -> `GET graph.instagram.com/access_token
?grant_type=ig_exchange_token` (60 days) -> `GET /me?fields=user_id,username,...`: one identity, the
professional account. Refresh: `GET graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token`
(only for tokens at least 24 h old and unexpired; the new one lasts 60 days). No revoke endpoint exists
for Instagram Login, so `revoke` does nothing remotely.

Publish (container flow; media is pulled by Instagram from `media.url`):
- one image:    `POST /{ig-user-id}/media {image_url, caption, alt_text?}`
- one video:    `POST /{ig-user-id}/media {media_type=REELS, video_url, caption, share_to_feed=true}`
- carousel:     2..10 items `{is_carousel_item=true, image_url | media_type=VIDEO&video_url}`, each polled
                until FINISHED, then `{media_type=CAROUSEL, children, caption}`
- story:        `options={"story": True}` with one image or video: `{media_type=STORIES, image_url|video_url}`
then `GET /{container}?fields=status_code,status` until FINISHED, `POST /{ig-user-id}/media_publish
{creation_id}`, and `GET /{media}?fields=permalink,shortcode`. Text-only posts do not exist on Instagram
(NotSupportedError). Deleting media is not confirmed by the docs: the adapter asks, and maps Graph's
"Unsupported delete request" to NotSupportedError.

Follow-ups: Instagram has no reply chains, only comments. A first comment is
`POST /{ig-media-id}/comments {message}` -> `{id}` with the account's token (the media id is the
published result's remote id); it needs `instagram_business_manage_comments` (in the default
scopes; without it Graph answers #10 -> reconnect).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlencode

from ouipost.platforms._meta import GraphAdapter, expires_at, metric_values, numeric, split_scopes
from ouipost.platforms.base import (
    AccountAuth,
    AccountStats,
    AuthorizationRequest,
    ConnectedIdentity,
    Insights,
    MediaFile,
    NotSupportedError,
    PermanentError,
    PlatformError,
    PostRef,
    PublishRequest,
    PublishResult,
    TokenExpiredError,
    TokenSet,
    UnknownOutcomeError,
)

log = logging.getLogger(__name__)

VERSION = "v25.0"
GRAPH = f"https://graph.instagram.com/{VERSION}"
AUTHORIZE = "https://www.instagram.com/oauth/authorize"
CODE_EXCHANGE = "https://api.instagram.com/oauth/access_token"
LONG_LIVED = "https://graph.instagram.com/access_token"
REFRESH = "https://graph.instagram.com/refresh_access_token"
CAROUSEL_MIN, CAROUSEL_MAX = 2, 10
FEED_METRICS = ("views", "reach", "likes", "comments", "shares", "saved", "total_interactions")
STORY_METRICS = ("views", "reach", "shares", "total_interactions")
PROFESSIONAL = {"BUSINESS": "business", "MEDIA_CREATOR": "creator"}


class InstagramAdapter(GraphAdapter):
    """Instagram (Instagram Login): image, reel, carousel (2..10, mixed), story; insights, followers."""

    network: ClassVar[str] = "instagram"
    default_scopes: ClassVar[tuple[str, ...]] = (
        "instagram_business_basic", "instagram_business_content_publish",
        "instagram_business_manage_insights", "instagram_business_manage_comments",
    )
    uses_pkce: ClassVar[bool] = False
    supports_refresh: ClassVar[bool] = True
    graph_base: ClassVar[str] = GRAPH
    container_edge: ClassVar[str] = "media"
    container_status_field: ClassVar[str] = "status_code"
    container_fields: ClassVar[str] = "status_code,status"
    # Postiz polls every 30 s for up to 8 minutes; images are usually ready at once.
    container_poll_interval: ClassVar[float] = 5.0
    container_poll_timeout: ClassVar[float] = 480.0

    # OAuth -------------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """The Instagram Login consent page (comma-separated scopes, no PKCE)."""
        query = urlencode({
            "client_id": self.credentials.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "state": state,
            "scope": ",".join(scopes or self.default_scopes),
        })
        return AuthorizationRequest(url=self.http.url(f"{AUTHORIZE}?{query}"))

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Code -> 1 h token -> 60-day token -> the professional account behind it.

        A refused code or secret is a PermanentError; a personal (non-professional) account too,
        since the publishing API only serves professional accounts.
        """
        try:
            short = await self._call("POST", CODE_EXCHANGE, data={
                "client_id": self.credentials.client_id, "client_secret": self.credentials.client_secret,
                "grant_type": "authorization_code", "redirect_uri": redirect_uri, "code": code,
            }, action="code exchange")
        except (TokenExpiredError, PermanentError) as exc:
            raise PermanentError(exc.message, network=self.network, code=exc.code, status=exc.status) from exc
        # The newer docs wrap the answer in {"data": [...]}; the older shape is flat.
        if isinstance(short.get("data"), list) and short["data"]:
            short = short["data"][0]
        if not short.get("access_token"):
            raise PermanentError("instagram: code exchange answered without a token", network=self.network)
        scopes = split_scopes(short.get("permissions"))
        long_lived = await self._call("GET", LONG_LIVED, params={
            "grant_type": "ig_exchange_token", "client_secret": self.credentials.client_secret,
            "access_token": short["access_token"],
        }, action="long-lived token exchange")
        token = str(long_lived["access_token"])
        me = await self._call("GET", f"{GRAPH}/me", token=token, params={
            "fields": "id,user_id,username,name,account_type,profile_picture_url",
        }, action="profile")
        account_type = str(me.get("account_type") or "").upper()
        if account_type and account_type not in PROFESSIONAL:
            raise PermanentError(
                f"instagram: @{me.get('username')} is a personal account; switch it to a professional "
                "(business or creator) account to publish through the API", network=self.network,
            )
        ig_user_id = str(me.get("user_id") or me.get("id"))
        return [ConnectedIdentity(
            remote_id=ig_user_id, type=PROFESSIONAL.get(account_type, "business"),
            name=str(me.get("name") or me.get("username") or ig_user_id), username=me.get("username"),
            profile_image=me.get("profile_picture_url"),
            token=TokenSet(access_token=token, expires_at=expires_at(long_lived.get("expires_in"), self.clock.now()),
                           scopes=scopes),
            permissions=scopes,
            metadata={"ig_user_id": ig_user_id, "app_scoped_id": str(me.get("id")),
                      "account_type": account_type, "login": "instagram"},
        )]

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """`ig_refresh_token`: a new 60-day token. TokenExpiredError when the token is already dead."""
        body = await self._call("GET", REFRESH, params={
            "grant_type": "ig_refresh_token", "access_token": auth.access_token,
        }, action="token refresh")
        return TokenSet(access_token=str(body["access_token"]),
                        expires_at=expires_at(body.get("expires_in"), self.clock.now()))

    async def revoke(self, auth: AccountAuth) -> None:
        """Instagram Login documents no revoke call: the user removes the app in Instagram's settings."""
        log.info("instagram: no revoke endpoint for Instagram Login; account %s disconnected locally",
                 auth.remote_id)

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Containers -> poll until FINISHED -> media_publish -> permalink (see the module docstring).

        A container in ERROR raises PermanentError; one that never finishes raises RetryableError
        (nothing was published); a lost media_publish answer raises UnknownOutcomeError.
        """
        if not post.media:
            raise NotSupportedError("instagram: posts need an image or a video (no text-only posts)",
                                    network=self.network)
        ig = auth.metadata.get("ig_user_id") or auth.remote_id
        token = auth.access_token
        caption = _with_link(post.text, post.link)
        if post.options.get("story"):
            if len(post.media) != 1:
                raise NotSupportedError("instagram: a story is published from exactly one image or video",
                                        network=self.network)
            item = post.media[0]
            key = "image_url" if item.kind == "image" else "video_url"
            container = await self._container(token, ig, {"media_type": "STORIES", key: item.url}, "story")
        elif len(post.media) == 1:
            container = await self._container(token, ig, _single(post.media[0], caption), "media")
        else:
            if not CAROUSEL_MIN <= len(post.media) <= CAROUSEL_MAX:
                raise PermanentError(f"instagram: a carousel holds {CAROUSEL_MIN} to {CAROUSEL_MAX} items",
                                     network=self.network)
            children = []
            for index, item in enumerate(post.media):
                params: dict[str, Any] = {"is_carousel_item": True}
                if item.kind == "image":
                    params.update(image_url=item.url, alt_text=item.alt_text)
                else:
                    params.update(media_type="VIDEO", video_url=item.url)
                children.append(await self._container(token, ig, params, f"carousel item {index + 1}"))
            container = await self._container(token, ig, {
                "media_type": "CAROUSEL", "children": ",".join(children), "caption": caption,
            }, "carousel")
        media_id = await self._publish_container(token, f"{GRAPH}/{ig}/media_publish", container,
                                                 action="media_publish")
        url, shortcode = await self._permalink(token, media_id)
        return PublishResult(media_id, url, extra={"container_id": container, "shortcode": shortcode})

    async def _permalink(self, token: str, media_id: str) -> tuple[str | None, str | None]:
        """Permalink and shortcode; failures are logged, never raised (the media is published)."""
        try:
            body = await self._call("GET", f"{GRAPH}/{media_id}", token=token,
                                    params={"fields": "permalink,shortcode"}, action="permalink")
        except PlatformError as exc:
            log.warning("instagram: permalink of %s unavailable: %s", media_id, exc.message)
            return None, None
        shortcode = body.get("shortcode")
        url = body.get("permalink") or (f"https://www.instagram.com/p/{shortcode}/" if shortcode else None)
        return url, shortcode

    async def comment(self, auth: AccountAuth, text: str, *, on: PostRef, key: str | None = None) -> PublishResult:
        """`POST /{ig-media-id}/comments {message}` -> `{id}`: a comment by the account on its media.

        Needs `instagram_business_manage_comments`: a grant without it is a PermanentError asking to
        reconnect (Graph #10). Unknown or deleted media is a PermanentError (Graph #100); a lost
        answer is an UnknownOutcomeError (Graph takes no idempotency key, so `key` is not sent).
        Instagram gives comments no permalink (url None).
        """
        if not text.strip():
            raise PermanentError("instagram: a comment needs text", network=self.network)
        body = await self._call("POST", f"{GRAPH}/{on.remote_id}/comments", token=auth.access_token,
                                data={"message": text}, action="comment")
        comment_id = str(body.get("id") or "")
        if not comment_id:
            raise UnknownOutcomeError("instagram: comment answered without an id", network=self.network)
        return PublishResult(comment_id, None, extra={"media_id": on.remote_id})

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """`DELETE /{ig-media-id}`; NotSupportedError when Instagram says it cannot delete it."""
        try:
            body = await self._call("DELETE", f"{GRAPH}/{remote_id}", token=auth.access_token, action="delete")
        except PermanentError as exc:
            if exc.code == "100/33":
                raise NotSupportedError(f"instagram: the API does not delete this media ({exc.message})",
                                        network=self.network, code=exc.code, status=exc.status) from exc
            raise
        if body.get("success") is False:
            raise PermanentError(f"instagram: deleting {remote_id} was refused", network=self.network)

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """Media insights: impressions = views, reach, engagement = total_interactions, clicks 0.

        Stories take a smaller metric set, so the product type is read first.
        """
        token = auth.access_token
        media = await self._call("GET", f"{GRAPH}/{remote_id}", token=token,
                                 params={"fields": "media_product_type"}, action="media")
        metrics_asked = STORY_METRICS if media.get("media_product_type") == "STORY" else FEED_METRICS
        body = await self._call("GET", f"{GRAPH}/{remote_id}/insights", token=token,
                                params={"metric": ",".join(metrics_asked)}, action="media insights")
        metrics = {name: numeric(value) for name, value in metric_values(body).items()}
        engagement = metrics.get("total_interactions")
        if engagement is None:
            engagement = sum(metrics.get(k, 0.0) for k in ("likes", "comments", "shares", "saved"))
        return Insights(metrics=metrics, impressions=int(metrics.get("views", 0)),
                        reach=int(metrics.get("reach", 0)), engagement=int(engagement), clicks=0)

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """`GET /{ig-user-id}?fields=followers_count,follows_count,media_count`."""
        ig = auth.metadata.get("ig_user_id") or auth.remote_id
        body = await self._call("GET", f"{GRAPH}/{ig}", token=auth.access_token,
                                params={"fields": "followers_count,follows_count,media_count"},
                                action="account stats")
        return AccountStats(followers=_int(body.get("followers_count")), following=_int(body.get("follows_count")),
                            posts_total=_int(body.get("media_count")))


def _single(item: MediaFile, caption: str) -> dict[str, Any]:
    if item.kind == "image":
        return {"image_url": item.url, "caption": caption, "alt_text": item.alt_text}
    # Every single feed video is a Reel since 2023; share_to_feed keeps it on the grid too.
    return {"media_type": "REELS", "video_url": item.url, "caption": caption, "share_to_feed": True}


def _with_link(text: str, link: str | None) -> str:
    if not link or link in text:
        return text
    return f"{text}\n\n{link}" if text else link


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
