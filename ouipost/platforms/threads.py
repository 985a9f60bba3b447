"""Threads through the Threads API v1.0 (shared/platforms.md section 8).

Connect: `threads.net/oauth/authorize` (comma-separated scopes, no PKCE) ->
`POST graph.threads.net/oauth/access_token` (1 h token) -> `GET graph.threads.net/access_token
?grant_type=th_exchange_token` (60 days) -> `GET /v1.0/me`: one identity, the profile.
Refresh: `GET graph.threads.net/refresh_access_token?grant_type=th_refresh_token` (tokens at least 24 h
old and unexpired; the new one lasts 60 days). Threads documents no revoke endpoint.

Publish (container flow; media is pulled by Threads from `media.url`):
- text:      `POST /{user}/threads {media_type=TEXT, text, link_attachment?}`
- image:     `{media_type=IMAGE, image_url, text, alt_text?}`;  video: `{media_type=VIDEO, video_url, ...}`
- carousel:  2..20 items `{media_type=IMAGE|VIDEO, is_carousel_item=true, ...}`, each polled until
             FINISHED, then `{media_type=CAROUSEL, children, text}`
then `GET /{container}?fields=status,error_message` until FINISHED, `POST /{user}/threads_publish
{creation_id}`, and `GET /{media}?fields=permalink,shortcode`. Delete: `DELETE /{media}` (threads_delete).

Follow-ups (a thread is a reply chain): `reply` runs the same container flow with `reply_to_id` = the
parent on the top-level container (text, media or carousel), then threads_publish; Threads puts the
reply under the parent's root itself. `comment` is the account's own reply to its post (parent = root
= the post). Replies need `threads_manage_replies` (missing: code 10, PermanentError with reconnect)
and have their own quota, 1,000 per 24 h apart from the 250 posts (`threads_publishing_limit`'s
`reply_quota_usage` / `reply_config`; reached: deferred like the post quota). A deleted or unknown
parent is Graph's "Object with ID ... does not exist" (code 100): PermanentError. Threads takes no
idempotency key; a lost threads_publish answer is settled by the container's status as for posts.
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
    MediaFile,
    PermanentError,
    PlatformError,
    PostRef,
    PublishRequest,
    PublishResult,
    TokenExpiredError,
    TokenSet,
)

log = logging.getLogger(__name__)

VERSION = "v1.0"
GRAPH = f"https://graph.threads.net/{VERSION}"
AUTHORIZE = "https://threads.net/oauth/authorize"
CODE_EXCHANGE = "https://graph.threads.net/oauth/access_token"
LONG_LIVED = "https://graph.threads.net/access_token"
REFRESH = "https://graph.threads.net/refresh_access_token"
CAROUSEL_MIN, CAROUSEL_MAX = 2, 20
MEDIA_METRICS = ("views", "likes", "replies", "reposts", "quotes", "shares")


class ThreadsAdapter(GraphAdapter):
    """Threads: text (with link preview), image, video, carousel (2..20, mixed); insights, followers."""

    network: ClassVar[str] = "threads"
    default_scopes: ClassVar[tuple[str, ...]] = (
        "threads_basic", "threads_content_publish", "threads_manage_insights", "threads_delete",
        "threads_read_replies", "threads_manage_replies",
    )
    uses_pkce: ClassVar[bool] = False
    supports_refresh: ClassVar[bool] = True
    graph_base: ClassVar[str] = GRAPH
    container_edge: ClassVar[str] = "threads"
    container_status_field: ClassVar[str] = "status"
    container_fields: ClassVar[str] = "status,error_message"
    # Postiz polls Threads every 2.2 s; videos can take minutes.
    container_poll_interval: ClassVar[float] = 2.0
    container_poll_timeout: ClassVar[float] = 300.0

    # OAuth -------------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """The Threads consent page (comma-separated scopes, no PKCE)."""
        query = urlencode({
            "client_id": self.credentials.client_id,
            "redirect_uri": redirect_uri,
            "scope": ",".join(scopes or self.default_scopes),
            "response_type": "code",
            "state": state,
        })
        return AuthorizationRequest(url=self.http.url(f"{AUTHORIZE}?{query}"))

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Code -> 1 h token -> 60-day token -> the profile. A refused code is a PermanentError.

        The token answers do not list the granted scopes, so `permissions` stays empty: the first
        call that needs a missing scope reports it (PermanentError with reconnect).
        """
        try:
            short = await self._call("POST", CODE_EXCHANGE, data={
                "client_id": self.credentials.client_id, "client_secret": self.credentials.client_secret,
                "grant_type": "authorization_code", "redirect_uri": redirect_uri, "code": code,
            }, action="code exchange")
        except (TokenExpiredError, PermanentError) as exc:
            raise PermanentError(exc.message, network=self.network, code=exc.code, status=exc.status) from exc
        long_lived = await self._call("GET", LONG_LIVED, params={
            "grant_type": "th_exchange_token", "client_secret": self.credentials.client_secret,
            "access_token": short["access_token"],
        }, action="long-lived token exchange")
        token = str(long_lived["access_token"])
        me = await self._call("GET", f"{GRAPH}/me", token=token, params={
            "fields": "id,username,name,threads_profile_picture_url",
        }, action="profile")
        user_id = str(me.get("id") or short.get("user_id"))
        return [ConnectedIdentity(
            remote_id=user_id, type="profile", name=str(me.get("name") or me.get("username") or user_id),
            username=me.get("username"), profile_image=me.get("threads_profile_picture_url"),
            token=TokenSet(access_token=token, expires_at=expires_at(long_lived.get("expires_in"), self.clock.now())),
            metadata={"threads_user_id": user_id},
        )]

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """`th_refresh_token`: a new 60-day token. TokenExpiredError once the token has expired."""
        body = await self._call("GET", REFRESH, params={
            "grant_type": "th_refresh_token", "access_token": auth.access_token,
        }, action="token refresh")
        return TokenSet(access_token=str(body["access_token"]),
                        expires_at=expires_at(body.get("expires_in"), self.clock.now()))

    async def revoke(self, auth: AccountAuth) -> None:
        """Threads documents no revoke call: the user removes the app from their Threads settings."""
        log.info("threads: no revoke endpoint; account %s disconnected locally", auth.remote_id)

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Containers -> poll until FINISHED -> threads_publish -> permalink.

        A container in ERROR raises PermanentError; one that never finishes raises RetryableError
        (nothing was published); a lost threads_publish answer raises UnknownOutcomeError.
        """
        return await self._thread(auth, post, reply_to=None)

    async def reply(
        self, auth: AccountAuth, post: PublishRequest, *, parent: PostRef, root: PostRef
    ) -> PublishResult:
        """The next part of a thread: the same containers with `reply_to_id` = `parent` (Threads
        files it under the parent's root itself). Raises as `publish` does; a missing
        threads_manage_replies asks for a reconnect, a deleted parent is a PermanentError."""
        return await self._thread(auth, post, reply_to=parent.remote_id)

    async def comment(self, auth: AccountAuth, text: str, *, on: PostRef, key: str | None = None) -> PublishResult:
        """A first comment: the account's own reply to its post `on` (Threads takes no idempotency key)."""
        return await self.reply(auth, PublishRequest(text=text, target_key=key), parent=on, root=on)

    async def _thread(self, auth: AccountAuth, post: PublishRequest, *, reply_to: str | None) -> PublishResult:
        """The container flow of a post, or of a reply to `reply_to` (on the top-level container)."""
        user = auth.metadata.get("threads_user_id") or auth.remote_id
        token = auth.access_token
        reply = {"reply_to_id": reply_to}  # None is left out of the request
        if not post.media:
            if not post.text and not post.link:
                raise PermanentError("threads: nothing to publish", network=self.network)
            container = await self._container(token, user, {
                "media_type": "TEXT", "text": post.text or post.link, "link_attachment": post.link, **reply,
            }, "text reply" if reply_to else "text post")
        elif len(post.media) == 1:
            params = _media_params(post.media[0])
            params["text"] = _with_link(post.text, post.link)
            container = await self._container(token, user, {**params, **reply}, post.media[0].kind)
        else:
            if not CAROUSEL_MIN <= len(post.media) <= CAROUSEL_MAX:
                raise PermanentError(f"threads: a carousel holds {CAROUSEL_MIN} to {CAROUSEL_MAX} items",
                                     network=self.network)
            children = []
            for index, item in enumerate(post.media):
                params = _media_params(item)
                params["is_carousel_item"] = True
                children.append(await self._container(token, user, params, f"carousel item {index + 1}"))
            container = await self._container(token, user, {
                "media_type": "CAROUSEL", "children": ",".join(children), "text": _with_link(post.text, post.link),
                **reply,
            }, "carousel")
        media_id = await self._publish_container(token, f"{GRAPH}/{user}/threads_publish", container,
                                                 action="threads_publish")
        url, shortcode = await self._permalink(token, media_id)
        return PublishResult(media_id, url, extra={"container_id": container, "shortcode": shortcode})

    async def _permalink(self, token: str, media_id: str) -> tuple[str | None, str | None]:
        try:
            body = await self._call("GET", f"{GRAPH}/{media_id}", token=token,
                                    params={"fields": "id,permalink,shortcode"}, action="permalink")
        except PlatformError as exc:
            log.warning("threads: permalink of %s unavailable: %s", media_id, exc.message)
            return None, None
        return body.get("permalink"), body.get("shortcode")

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """`DELETE /{media}` -> `{success, deleted_id}` (needs threads_delete; 100 per 24 h)."""
        body = await self._call("DELETE", f"{GRAPH}/{remote_id}", token=auth.access_token, action="delete")
        if body.get("success") is False:
            raise PermanentError(f"threads: deleting {remote_id} was refused", network=self.network)

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """impressions = views; engagement = likes + replies + reposts + quotes + shares.

        Threads reports no per-post reach or clicks, so those stay 0.
        """
        body = await self._call("GET", f"{GRAPH}/{remote_id}/insights", token=auth.access_token,
                                params={"metric": ",".join(MEDIA_METRICS)}, action="media insights")
        metrics = {name: numeric(value) for name, value in metric_values(body).items()}
        engagement = sum(metrics.get(k, 0.0) for k in ("likes", "replies", "reposts", "quotes", "shares"))
        return Insights(metrics=metrics, impressions=int(metrics.get("views", 0)), engagement=int(engagement))

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """`GET /{user}/threads_insights?metric=followers_count` (a current total)."""
        user = auth.metadata.get("threads_user_id") or auth.remote_id
        body = await self._call("GET", f"{GRAPH}/{user}/threads_insights", token=auth.access_token,
                                params={"metric": "followers_count"}, action="account insights")
        followers = metric_values(body).get("followers_count")
        return AccountStats(followers=int(followers) if followers is not None else None)


def _media_params(item: MediaFile) -> dict[str, Any]:
    if item.kind == "image":
        return {"media_type": "IMAGE", "image_url": item.url, "alt_text": item.alt_text}
    return {"media_type": "VIDEO", "video_url": item.url, "alt_text": item.alt_text}


def _with_link(text: str, link: str | None) -> str:
    if not link or link in text:
        return text
    return f"{text}\n\n{link}" if text else link
