"""Mastodon (and any server speaking its API): per-instance OAuth apps, statuses, media v2, insights.

Flows (docs/platforms/mastodon.md):
- App: a Mastodon app exists per server, so `register_app` creates one with `POST /api/v1/apps`
  (scopes `read write:statuses write:media`) and reads `/.well-known/oauth-authorization-server`
  to learn whether the server takes PKCE (4.3 and later). ouipost/accounts/instance_apps.py keeps the app per
  server and redirect URI (secret encrypted) and hands it back through `for_instance`.
- Connect: `/oauth/authorize` on the server, then `POST /oauth/token` (authorization_code, PKCE
  verifier when supported), `GET /api/v1/accounts/verify_credentials` and `GET /api/v2/instance`,
  whose `configuration.statuses` and `configuration.media_attachments` limits go into the account's
  metadata (`limits`) and are checked before anything is sent. The server, app id and secret and the
  PKCE verifier travel from authorize to exchange inside the state's encrypted verifier slot
  (`AuthorizationRequest.code_verifier`), so the OAuth state table needs nothing Mastodon-specific.
  Tokens do not expire and there is no refresh token. Disconnecting revokes the token with the
  account's app (`POST /oauth/revoke`), once instance_apps.bind_for_account has bound the adapter to it.
- Post: each file through `POST /api/v2/media` (with its alt text as `description`); 202 means the
  server still processes it, and `GET /api/v1/media/{id}` answers 206 until it is ready (200). Then
  `POST /api/v1/statuses` with an `Idempotency-Key`, so a re-sent creation returns the first status
  instead of a second one: a lost answer is asked again at once with the same key. Options:
  `visibility` (public, unlisted, private, direct), `spoiler_text` (content warning), `sensitive`,
  `language`.
- Follow-ups (a thread is a reply chain): `reply` is the same media flow and `POST /api/v1/statuses`
  with `in_reply_to_id` = the parent (the server files it under the parent's root itself) and the
  part's own Idempotency-Key (from its target_key), so a retried part finds its first status;
  `comment` is the account's own reply to its status (parent = root = the post). A parent that is gone
  answers 404 ("The post you are trying to reply to does not appear to exist."): PermanentError. No
  scope beyond write:statuses is needed.
- Insights: favourites, reblogs and replies of `GET /api/v1/statuses/{id}`; followers from
  verify_credentials. Rate limits: `X-RateLimit-Remaining` / `X-RateLimit-Reset` (ISO 8601) on every
  answer; a 429 waits until the reset, and a media upload that leaves no request in the window defers
  the status until the reset instead of being refused halfway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, NoReturn
from urllib.parse import urlencode

import aiohttp

from ouipost.core.clock import Clock
from ouipost.platforms.base import (
    AccountAuth,
    AccountStats,
    AuthorizationRequest,
    ClientCredentials,
    ConnectedIdentity,
    Insights,
    MediaFile,
    NotSupportedError,
    PermanentError,
    PlatformAdapter,
    PlatformError,
    PostRef,
    PublishRequest,
    PublishResult,
    RetryableError,
    TokenExpiredError,
    TokenSet,
    UnknownOutcomeError,
)
from ouipost.platforms.http import PlatformHttp, PlatformResponse

log = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = ("read", "write:statuses", "write:media")
APP_NAME = "Oui Post"
VISIBILITIES = ("public", "unlisted", "private", "direct")
URL_WEIGHT = 23
# What a server without /api/v2/instance (or an older one) is assumed to allow: Mastodon's defaults.
DEFAULT_LIMITS: dict[str, int] = {
    "max_characters": 500, "max_media_attachments": 4, "max_images": 4, "characters_reserved_per_url": URL_WEIGHT,
    "image_size_limit": 16 * 1024 * 1024, "video_size_limit": 99 * 1024 * 1024,
}
_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
                   r"(?::\d{1,5})?$")
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_MENTION_DOMAIN = re.compile(r"(?<![\w@])(@[a-zA-Z0-9_]+(?:\.[a-zA-Z0-9_]+)*)@[a-zA-Z0-9.-]+[a-zA-Z0-9]")


class InvalidInstance(ValueError):
    """The text given as a server is not a host name."""


def normalise_instance(value: str) -> str:
    """`mastodon.social` from `mastodon.social`, `https://Mastodon.Social/`, `@alice@mastodon.social`.

    Raises InvalidInstance for anything that is not a host name (with an optional port): paths,
    credentials, spaces, an empty string.
    """
    text = value.strip()
    if text.startswith("@") and text.count("@") == 2:
        text = text.rsplit("@", 1)[1]
    text = re.sub(r"^https?://", "", text, flags=re.IGNORECASE).rstrip("/").lower()
    try:
        text = text.encode("idna").decode("ascii") if any(ord(c) > 127 for c in text) else text
    except UnicodeError as exc:
        raise InvalidInstance(f"{value!r} is not a server name") from exc
    if not _HOST.match(text):
        raise InvalidInstance(f"{value!r} is not a server name such as mastodon.social")
    return text


def counted_length(text: str, url_weight: int = URL_WEIGHT) -> int:
    """The length Mastodon gives `text`: every http(s) URL counts `url_weight` (23) whatever its
    length, a mention `@user@domain` counts as `@user`, everything else one per code point."""
    text = _MENTION_DOMAIN.sub(lambda m: m.group(1), text)
    urls = _URL.findall(text)
    return len(_URL.sub("", text)) + url_weight * len(urls)


@dataclass(frozen=True)
class InstanceApp:
    """The OAuth app registered on one server for one redirect URI."""

    instance: str
    client_id: str
    client_secret: str
    pkce: bool = True


class MastodonAdapter(PlatformAdapter):
    """One Mastodon server per account (`metadata["instance"]`); see the module docstring."""

    network: ClassVar[str] = "mastodon"
    default_scopes: ClassVar[tuple[str, ...]] = SCOPES
    uses_pkce: ClassVar[bool] = True
    supports_refresh: ClassVar[bool] = False

    # Media processing polls (tests shrink them); a server that never finishes: nothing is posted.
    media_poll_interval: ClassVar[float] = 1.0
    media_poll_attributes: ClassVar[tuple[str, ...]] = ("media_poll_interval",)
    media_poll_timeout: ClassVar[float] = 300.0
    # A 429 without a usable reset header (Mastodon's windows are 5 minutes).
    default_rate_limit_wait: ClassVar[float] = 300.0

    def __init__(self, http: PlatformHttp, credentials: ClientCredentials, clock: Clock | None = None, *,
                 instance: str | None = None, pkce: bool = True) -> None:
        super().__init__(http, credentials, clock)
        self.instance = instance
        self.pkce = pkce

    def for_instance(self, app: InstanceApp) -> MastodonAdapter:
        """This adapter bound to a server and the app registered there (for the OAuth dance)."""
        return type(self)(self.http, ClientCredentials(app.client_id, app.client_secret), self.clock,
                          instance=app.instance, pkce=app.pkce)

    # App registration --------------------------------------------------------------------------

    async def register_app(self, instance: str, *, redirect_uri: str, scopes: Sequence[str]) -> InstanceApp:
        """Create an OAuth app on `instance` for `redirect_uri` (POST /api/v1/apps).

        PermanentError when the server refuses (422: a bad redirect URI or scope, or no Mastodon API
        at all: 404); RetryableError when it cannot be reached or is rate limited.
        """
        resp = await self.http.request(
            "POST", f"https://{instance}/api/v1/apps", network=self.network, idempotent=True,
            json={"client_name": APP_NAME, "redirect_uris": redirect_uri, "scopes": " ".join(scopes)},
        )
        body = self._checked(resp, what="register the app")
        client_id, client_secret = body.get("client_id"), body.get("client_secret")
        if not client_id or not client_secret:
            raise PermanentError(f"{instance} did not answer like a Mastodon server (no client_id)",
                                 network=self.network, code="not_mastodon", status=resp.status)
        return InstanceApp(instance, str(client_id), str(client_secret), pkce=await self._supports_pkce(instance))

    async def _supports_pkce(self, instance: str) -> bool:
        """Whether the server's OAuth metadata lists S256 (Mastodon 4.3+); older servers have none."""
        try:
            resp = await self.http.request(
                "GET", f"https://{instance}/.well-known/oauth-authorization-server", network=self.network,
            )
        except PlatformError:
            return False
        body = resp.json() if resp.ok else {}
        methods = body.get("code_challenge_methods_supported") if isinstance(body, dict) else None
        return isinstance(methods, list) and "S256" in methods

    # OAuth -------------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """The server's consent URL. Needs `for_instance` first (the app is per server)."""
        if not self.instance or not self.credentials.client_id:
            raise NotSupportedError("Mastodon needs the server (instance) and its registered app",
                                    network=self.network, code="instance_required")
        query: dict[str, str] = {
            "response_type": "code", "client_id": self.credentials.client_id, "redirect_uri": redirect_uri,
            "scope": " ".join(scopes or self.default_scopes), "state": state,
        }
        verifier = None
        if self.pkce:
            verifier = secrets.token_urlsafe(64)[:96]
            query["code_challenge"] = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            query["code_challenge_method"] = "S256"
        # The state row keeps this slot encrypted and gives it back to exchange_code: what the
        # exchange needs besides the code (the server, its app, the PKCE verifier) rides in it.
        handoff = json.dumps({"instance": self.instance, "client_id": self.credentials.client_id,
                              "client_secret": self.credentials.client_secret, "verifier": verifier})
        url = self.http.url(f"https://{self.instance}/oauth/authorize?{urlencode(query)}")
        return AuthorizationRequest(url=url, code_verifier=handoff)

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Trade the code for a token on the server the flow started on; read the account and the
        server's limits. PermanentError when the server refuses the code."""
        handoff = _handoff(code_verifier)
        instance = handoff["instance"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": handoff["client_id"], "client_secret": handoff["client_secret"],
                "scope": " ".join(self.default_scopes)}
        if handoff.get("verifier"):
            form["code_verifier"] = handoff["verifier"]
        resp = await self.http.request("POST", f"https://{instance}/oauth/token", network=self.network, data=form)
        if not resp.ok:
            if resp.status == 429 or resp.status >= 500:
                self._raise_for(resp, what="token")
            body = resp.json() if isinstance(resp.json(), dict) else {}
            reason = body.get("error_description") or body.get("error") or resp.status
            raise PermanentError(
                f"mastodon {instance} refused the code: {reason}",
                network=self.network, code=str(body.get("error") or "invalid_grant"), status=resp.status,
            )
        token = resp.json()
        access = str(token["access_token"])
        scopes = str(token.get("scope") or " ".join(self.default_scopes)).split()
        auth = AccountAuth(remote_id="", access_token=access, metadata={"instance": instance})
        me = await self._api(auth, "GET", "/api/v1/accounts/verify_credentials", what="verify_credentials")
        limits = await self.instance_limits(instance)
        username = str(me.get("username") or me.get("acct") or "")
        return [ConnectedIdentity(
            remote_id=f"{me['id']}@{instance}",
            type="profile",
            name=str(me.get("display_name") or username),
            username=f"{username}@{instance}",
            profile_image=me.get("avatar"),
            token=TokenSet(access_token=access, scopes=scopes),
            permissions=scopes,
            metadata={"instance": instance, "account_id": str(me["id"]), "acct": username,
                      "url": me.get("url"), "client_id": handoff["client_id"], "limits": limits},
        )]

    async def instance_limits(self, instance: str) -> dict[str, int]:
        """The server's own limits from GET /api/v2/instance (Mastodon's defaults where it is silent)."""
        try:
            resp = await self.http.request("GET", f"https://{instance}/api/v2/instance", network=self.network)
        except PlatformError:
            return dict(DEFAULT_LIMITS)
        config = (resp.json() or {}).get("configuration") if resp.ok and isinstance(resp.json(), dict) else None
        limits = dict(DEFAULT_LIMITS)
        if isinstance(config, dict):
            for section, names in (("statuses", ("max_characters", "max_media_attachments",
                                                 "characters_reserved_per_url")),
                                   ("media_attachments", ("image_size_limit", "video_size_limit"))):
                values = config.get(section) or {}
                for name in names:
                    if isinstance(values.get(name), int) and values[name] > 0:
                        limits[name] = int(values[name])
        # Under the registry's names too: validation reads an account's `limits` by those.
        limits["max_images"] = limits["max_media_attachments"]
        return limits

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """Mastodon tokens do not expire and come without a refresh token: a refused one is revoked."""
        raise TokenExpiredError("the Mastodon token was revoked; reconnect the account", network=self.network)

    async def revoke(self, auth: AccountAuth) -> None:
        """POST /oauth/revoke with the app's id and secret, which this adapter holds once bound to the
        account's app (`for_instance`, as instance_apps.bind_for_account does). Best effort: without
        the app (it was forgotten) or when the server refuses, the user can still revoke it in the
        server's settings; the account is disconnected here either way."""
        instance = self.instance  # set only when bound to the account's app
        if not instance or instance != (auth.metadata or {}).get("instance"):
            log.info("mastodon: %s disconnected without its app; revoke it on %s if wanted", auth.remote_id,
                     (auth.metadata or {}).get("instance"))
            return
        try:
            resp = await self.http.request(
                "POST", f"https://{instance}/oauth/revoke", network=self.network, idempotent=True,
                data={"client_id": self.credentials.client_id, "client_secret": self.credentials.client_secret,
                      "token": auth.access_token},
            )
        except PlatformError as exc:
            log.info("mastodon: revoking at %s failed: %s", instance, exc.message)
            return
        if not resp.ok:
            log.info("mastodon: %s answered %s to the revocation", instance, resp.status)

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Upload the media (waiting for processing), then create the status once.

        PermanentError for what the server refuses or would refuse (over its character or
        attachment limits, 4 images or 1 video, a bad visibility); RetryableError when nothing was
        posted (rate limit, 5xx, media never processed); UnknownOutcomeError when the status was
        sent and its answer lost.
        """
        return await self._status(auth, post, in_reply_to=None)

    async def reply(
        self, auth: AccountAuth, post: PublishRequest, *, parent: PostRef, root: PostRef
    ) -> PublishResult:
        """The next part of a thread: a status with `in_reply_to_id` = `parent` and the part's own
        Idempotency-Key. Raises as `publish` does; a parent that is gone is a PermanentError (404)."""
        return await self._status(auth, post, in_reply_to=parent.remote_id)

    async def comment(self, auth: AccountAuth, text: str, *, on: PostRef, key: str | None = None) -> PublishResult:
        """A first comment: the account's own reply to its status `on`, keyed by `key`."""
        return await self.reply(auth, PublishRequest(text=text, target_key=key), parent=on, root=on)

    async def _status(self, auth: AccountAuth, post: PublishRequest, *, in_reply_to: str | None) -> PublishResult:
        """Check against the server's limits, upload the media, create the status (a reply to
        `in_reply_to` when given, else to `options.in_reply_to_id` if any) once."""
        limits = {**DEFAULT_LIMITS, **((auth.metadata or {}).get("limits") or {})}
        self._check_content(post, limits)
        options = dict(post.options or {})
        if in_reply_to:
            options["in_reply_to_id"] = in_reply_to
        media_ids = [await self._upload(auth, media) for media in post.media]
        body: dict[str, Any] = {"status": post.text}
        if media_ids:
            body["media_ids"] = media_ids
        for name in ("visibility", "spoiler_text", "language", "in_reply_to_id"):
            if options.get(name):
                body[name] = str(options[name])
        if "sensitive" in options:
            body["sensitive"] = bool(options["sensitive"])
        # One key per publication: the same target re-sent after a lost answer finds its status.
        key = _idempotency_key(auth, post, options)
        status = await self._create_status(auth, body, key)
        extra: dict[str, Any] = {"media_ids": media_ids, "instance": self._instance(auth)}
        if options.get("in_reply_to_id"):
            extra["in_reply_to_id"] = str(options["in_reply_to_id"])
        return PublishResult(remote_id=str(status["id"]), url=status.get("url") or status.get("uri"), extra=extra)

    async def _create_status(self, auth: AccountAuth, body: dict[str, Any], key: str) -> dict[str, Any]:
        """POST /api/v1/statuses once; when its answer is lost, once more at once with the same
        Idempotency-Key: the server answers the status the first call created, or creates it now, so
        either way it exists once. A second loss (or an error after the first loss) stays unknown."""
        try:
            return await self._api(auth, "POST", "/api/v1/statuses", json=body, what="create the status",
                                   headers={"Idempotency-Key": key})
        except UnknownOutcomeError as lost:
            try:
                return await self._api(auth, "POST", "/api/v1/statuses", json=body, what="create the status",
                                       headers={"Idempotency-Key": key})
            except PlatformError as again:
                raise UnknownOutcomeError(
                    f"mastodon: the status may have been created; its answer was lost ({lost.message}), and "
                    f"asking again with its Idempotency-Key failed ({again.message})", network=self.network,
                ) from again

    def _check_content(self, post: PublishRequest, limits: dict[str, int]) -> None:
        images = [m for m in post.media if m.kind == "image"]
        videos = [m for m in post.media if m.kind == "video"]
        fail = self._refuse
        if videos and (images or len(videos) > 1):
            fail("Mastodon statuses hold images or one video, not both", "mixed_media")
        if len(post.media) > limits["max_media_attachments"]:
            fail(f"this server allows {limits['max_media_attachments']} attachments ({len(post.media)} given)",
                 "too_many_attachments")
        length = counted_length(post.text, limits["characters_reserved_per_url"])
        if length > limits["max_characters"]:
            fail(f"{length} of {limits['max_characters']} characters on this server", "text_too_long")
        if not post.text.strip() and not post.media:
            fail("a status needs text or media", "empty_status")
        visibility = (post.options or {}).get("visibility")
        if visibility and visibility not in VISIBILITIES:
            fail(f"visibility must be one of {', '.join(VISIBILITIES)}", "invalid_visibility")
        for media in post.media:
            cap = limits["video_size_limit" if media.kind == "video" else "image_size_limit"]
            if media.size > cap:
                fail(f"{media.filename} is {media.size} bytes; this server takes {media.kind}s up to {cap}",
                     "file_too_large")

    def _refuse(self, message: str, code: str) -> NoReturn:
        raise PermanentError(f"mastodon: {message}", network=self.network, code=code)

    async def _upload(self, auth: AccountAuth, media: MediaFile) -> str:
        """POST /api/v2/media with the alt text; wait while the server answers 206 for it."""
        form = aiohttp.FormData()
        form.add_field("file", await media.read_all(), filename=media.filename, content_type=media.mime_type)
        if media.alt_text:
            form.add_field("description", media.alt_text[:1500])
        # An attachment that no status uses is deleted by the server: re-sending one is harmless.
        body = await self._api(auth, "POST", "/api/v2/media", data=form, idempotent=True, what="upload media",
                               defer_when_exhausted=True)
        media_id = str(body["id"])
        if body.get("url") is None:
            await self._wait_for_media(auth, media_id)
        return media_id

    async def _wait_for_media(self, auth: AccountAuth, media_id: str) -> None:
        deadline = self.clock.monotonic() + self.media_poll_timeout
        while True:
            resp = await self._request(auth, "GET", f"/api/v1/media/{media_id}")
            if resp.status == 200:
                return
            if resp.status != 206:
                self._raise_for(resp, what="media status")
            if self.clock.monotonic() >= deadline:
                raise RetryableError(
                    f"mastodon: media {media_id} still processing after {self.media_poll_timeout:.0f} s; "
                    "nothing was posted", network=self.network, code="media_processing_timeout",
                )
            await self.clock.sleep(self.media_poll_interval)

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """DELETE /api/v1/statuses/{id}; a status the server no longer knows counts as deleted."""
        try:
            await self._api(auth, "DELETE", f"/api/v1/statuses/{remote_id}", what="delete the status")
        except PermanentError as exc:
            if exc.status != 404:
                raise

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """favourites_count, reblogs_count and replies_count of the status; engagement is their sum.
        Mastodon has no impressions, reach or clicks. PermanentError (404) when the status is gone."""
        status = await self._api(auth, "GET", f"/api/v1/statuses/{remote_id}", what="read the status")
        metrics = {name: float(status.get(name) or 0)
                   for name in ("favourites_count", "reblogs_count", "replies_count")}
        return Insights(metrics=metrics, impressions=0, reach=0, engagement=int(sum(metrics.values())), clicks=0)

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """followers_count, following_count and statuses_count from verify_credentials."""
        me = await self._api(auth, "GET", "/api/v1/accounts/verify_credentials", what="verify_credentials")
        return AccountStats(followers=int(me.get("followers_count") or 0),
                            following=int(me.get("following_count") or 0),
                            posts_total=int(me.get("statuses_count") or 0))

    # HTTP and errors ---------------------------------------------------------------------------

    def _instance(self, auth: AccountAuth) -> str:
        instance = (auth.metadata or {}).get("instance") or self.instance
        if not instance:
            raise PermanentError("mastodon: the account has no server; reconnect it", network=self.network,
                                 code="instance_required", reconnect=True)
        return str(instance)

    async def _request(self, auth: AccountAuth, method: str, path: str, *, idempotent: bool | None = None,
                       headers: dict[str, str] | None = None, **kwargs: Any) -> PlatformResponse:
        return await self.http.request(
            method, f"https://{self._instance(auth)}{path}", network=self.network, idempotent=idempotent,
            headers={"Authorization": f"Bearer {auth.access_token}", **(headers or {})}, **kwargs,
        )

    async def _api(self, auth: AccountAuth, method: str, path: str, *, what: str,
                   defer_when_exhausted: bool = False, **kwargs: Any) -> dict[str, Any]:
        """One API call: its JSON on success, else the mapped PlatformError. With
        `defer_when_exhausted`, an answer that leaves no request in the rate-limit window stops the
        flow before the status (RetryableError until the reset): nothing half-done is posted."""
        resp = await self._request(auth, method, path, **kwargs)
        body = self._checked(resp, what=what)
        if defer_when_exhausted and resp.headers.get("X-RateLimit-Remaining") == "0":
            raise RetryableError(f"mastodon: no request left before {resp.headers.get('X-RateLimit-Reset')}; "
                                 "nothing was posted", network=self.network, code="rate_limit_exhausted",
                                 retry_after=self._until_reset(resp))
        return body

    def _checked(self, resp: PlatformResponse, *, what: str) -> dict[str, Any]:
        if not resp.ok:
            self._raise_for(resp, what=what)
        body = resp.json()
        return body if isinstance(body, dict) else {}

    def _raise_for(self, resp: PlatformResponse, *, what: str) -> NoReturn:
        """401 revoked token, 403 missing scope (reconnect), 404 gone, 422 refused content,
        429 until X-RateLimit-Reset, 5xx retryable; the server's `error` text is the message."""
        body = resp.json()
        detail = (body.get("error_description") or body.get("error")) if isinstance(body, dict) else None
        # Only the API's own `error` text is repeated: a body that is not Mastodon JSON (a proxy's
        # page, or whatever a renamed host answers) never reaches an error message users read.
        message = f"mastodon {what}: {resp.status} {str(detail)[:300] if detail else 'without a Mastodon error'}"
        kw: dict[str, Any] = {"network": self.network, "status": resp.status, "code": str(resp.status)}
        if resp.status == 429:
            raise RetryableError(message, retry_after=self._until_reset(resp), **{**kw, "code": "rate_limited"})
        if resp.status == 401:
            raise TokenExpiredError(message, **{**kw, "code": "invalid_token"})
        if resp.status == 403:
            raise PermanentError(message, reconnect=True, **{**kw, "code": "forbidden"})
        if resp.status >= 500:
            raise RetryableError(message, **kw)
        if resp.status == 404:
            raise PermanentError(message, **{**kw, "code": "not_found"})
        if resp.status == 422:
            raise PermanentError(message, **{**kw, "code": "unprocessable"})
        raise PermanentError(message, **kw)

    def _until_reset(self, resp: PlatformResponse) -> float:
        """Seconds until X-RateLimit-Reset (an ISO 8601 time), at least 1; the default when absent."""
        raw = resp.headers.get("X-RateLimit-Reset")
        if raw:
            try:
                reset = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                return max(1.0, reset.timestamp() - self.clock.now().timestamp())
            except ValueError:
                pass
        retry = resp.headers.get("Retry-After", "")
        return float(retry) if retry.isdigit() else self.default_rate_limit_wait


def _handoff(code_verifier: str | None) -> dict[str, Any]:
    try:
        data = json.loads(code_verifier or "")
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(data.get(k) for k in ("instance", "client_id", "client_secret")):
        raise PermanentError("this Mastodon authorization was not started by Oui Post; start again",
                             network="mastodon", code="invalid_state")
    return data


def _idempotency_key(auth: AccountAuth, post: PublishRequest, options: dict[str, Any]) -> str:
    """The publication's key: made of its target (PublishRequest.target_key), so every attempt of one
    target sends the same key and two posts that say the same thing, even within Mastodon's hour of
    remembering keys, are two statuses. Without a target key (a direct adapter call), the account,
    text, files and options (the status replied to among them) make it (the attachments' ids are new
    on each upload, so the files are named by what they are)."""
    if post.target_key:
        return "ouipost-" + hashlib.sha256(f"{auth.remote_id}\n{post.target_key}".encode()).hexdigest()[:40]
    files = [[m.filename, m.size, m.mime_type, m.alt_text] for m in post.media]
    raw = json.dumps([auth.remote_id, post.text, files, options], sort_keys=True, default=str)
    return "ouipost-" + hashlib.sha256(raw.encode()).hexdigest()[:40]
