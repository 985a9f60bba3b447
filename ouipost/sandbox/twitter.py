"""Sandbox X API v2: OAuth 2.0 + PKCE, chunked media upload with processing, tweets, metrics.

Imitates (shared/platforms.md section 3):
- `GET x.com/i/oauth2/authorize` -> 302 to redirect_uri with code+state at once (no consent form).
  Codes live `code_ttl` (30 s), are single use and bound to client_id, redirect_uri and the PKCE
  challenge (S256 or plain).
- `POST /2/oauth2/token` (authorization_code / refresh_token; Basic or public client_id), 7200 s access
  tokens, refresh tokens only with offline.access. Refresh tokens rotate: a used one is refused, and
  replaying it revokes the whole token family (access tokens included), as X does.
- `POST /2/oauth2/revoke`.
- Media: `/2/media/upload/initialize`, `/{id}/append` (segments strictly in order), `/{id}/finalize`
  (total size must equal total_bytes; bytes must look like media_type), `GET /2/media/upload?command=STATUS`,
  the legacy `POST /2/media/upload` with command=INIT|APPEND|FINALIZE or a one-shot `media` upload, and
  `POST /2/media/metadata` (alt text). Videos/GIFs move pending -> in_progress -> succeeded after
  `processing_polls` STATUS polls or `processing_seconds`; bytes that are not a video, or
  `fail_processing`, end in `failed`.
- `POST /2/tweets` (weighted 280, media must have succeeded, <= 4 images or 1 video, duplicate text ->
  403), `GET /2/tweets/{id}` with public/non_public/organic metrics, `DELETE /2/tweets/{id}`,
  `GET /2/users/me`.
- Replies (threads are reply chains): `reply: {in_reply_to_tweet_id}` on `POST /2/tweets`. An id that
  is not a tweet id -> 400 invalid-request naming `reply.in_reply_to_tweet_id`; a tweet that does not
  exist or is deleted -> 403 "You attempted to reply to a Tweet that is deleted or not visible to
  you." (about:blank), as X answers. Each part is counted and checked on its own (weighted 280,
  duplicates) and counts against tweets_create. Read back with `GET /2/tweets/{id}?tweet.fields=
  conversation_id,referenced_tweets,in_reply_to_user_id,author_id`: `referenced_tweets[{type:
  "replied_to", id}]` and `conversation_id` = the root tweet's id (a tweet's own id when it replies to
  nothing); the publication's extra carries `in_reply_to_tweet_id` and `conversation_id` too.
- x-rate-limit-limit/-remaining/-reset on every API answer, counted per user per endpoint over 15 min
  (LIMITS; `limits` in the network state replaces some, e.g. for a burst of one sandbox user);
  `usage_capped` in the network state answers 429 usage-capped on POST /2/tweets.

Metrics of a tweet, with m = minutes since it was published counting the one under way (sandbox
clock; 1 in the first minute, core.units_under_way):
  impression_count 10m, like_count m//2, retweet_count m//10, reply_count m//15, quote_count m//30,
  bookmark_count m//20; non-public: url_link_clicks m//5, user_profile_clicks m//12,
  engagements = likes + retweets + replies + quotes + bookmarks + url_link_clicks + user_profile_clicks.

Not imitated: OAuth 1.0a, polls, quotes, reply_settings (who may reply), conversation search
(`/2/tweets/search/recent?query=conversation_id:`), replies in public_metrics.reply_count, the analytics
endpoint, GIF frame and video duration/codec checks, app-level (per client) quotas.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from ouipost.platforms.text import twitter_weighted_length
from ouipost.posts.media import sniff_mime
from ouipost.sandbox.core import Sandbox, TokenInfo, record_of, units_under_way

NETWORK = "twitter"
HOSTS: tuple[str, ...] = ("x.com", "api.x.com", "api.twitter.com")
API_HOSTS = ("api.x.com", "api.twitter.com")

# The one sandbox user every grant acts for (deterministic ids keep tests exact).
USER = {
    "id": "1593000000000000001",
    "name": "Oui Post Sandbox",
    "username": "ouipost_sandbox",
    "profile_image_url": "https://pbs.twimg.com/profile_images/1593000000000000001/sandbox_normal.jpg",
}
FOLLOWERS, FOLLOWING, LISTED, BASE_TWEET_COUNT = 1234, 321, 7, 100

KNOWN_SCOPES = frozenset({
    "tweet.read", "tweet.write", "tweet.moderate.write", "users.read", "users.email", "follows.read",
    "follows.write", "offline.access", "space.read", "mute.read", "mute.write", "like.read", "like.write",
    "list.read", "list.write", "block.read", "block.write", "bookmark.read", "bookmark.write",
    "media.write", "dm.read", "dm.write",
})

DEFAULTS: dict[str, Any] = {
    "code_ttl": 30.0,  # X auth codes are valid for 30 s
    "access_ttl": 7200,
    "processing_polls": 2,  # STATUS polls before a video succeeds
    "processing_seconds": 30.0,  # ... or seconds after FINALIZE, whichever comes first
    "check_after_secs": 1,
    "fail_processing": False,
    "usage_capped": False,
    "deny_consent": False,  # the user clicks "Cancel" on the consent screen
    "client_secrets": None,  # {client_id: secret} to check Basic credentials; None: any non-empty
    "max_weighted_length": 280,
    "limits": None,  # {endpoint: requests per 15-minute window per user} in place of LIMITS' documented ones
}

# (requests per 15-minute window per user) as documented.
LIMITS = {
    "tweets_create": 100, "tweets_delete": 50, "tweets_lookup": 900, "users_me": 75,
    "media_chunked": 1875, "media_status": 1000, "media_simple": 500, "media_metadata": 500,
}
WINDOW = 900.0

Handler = Callable[[web.Request], Awaitable[web.Response]]

IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/bmp", "image/pjpeg", "image/tiff"}
VIDEO_TYPES = {"video/mp4", "video/webm", "video/mp2t", "video/quicktime"}
CATEGORY_LIMITS = {"tweet_image": 5 << 20, "tweet_gif": 15 << 20, "tweet_video": 512 << 20,
                   "amplify_video": 512 << 20, "dm_image": 5 << 20, "dm_gif": 15 << 20,
                   "dm_video": 512 << 20, "subtitles": 1 << 20}


class _Reject(Exception):
    """Raised inside a handler to answer with X's own error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def problem(status: int, title: str, detail: str, kind: str = "about:blank", **extra: Any) -> web.Response:
    """X's problem JSON (`type` is a problems URL or about:blank)."""
    type_ = kind if kind == "about:blank" else f"https://api.x.com/2/problems/{kind}"
    return web.json_response({"title": title, "detail": detail, "type": type_, "status": status, **extra},
                             status=status)


def invalid_request(detail: str, **extra: Any) -> _Reject:
    return _Reject(problem(400, "Invalid Request", detail, "invalid-request", **extra))


def oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def metrics_for(minutes: int) -> tuple[dict[str, int], dict[str, int]]:
    """(public_metrics, non_public_metrics) after `minutes` whole minutes (see the module docstring)."""
    public = {
        "retweet_count": minutes // 10, "reply_count": minutes // 15, "like_count": minutes // 2,
        "quote_count": minutes // 30, "bookmark_count": minutes // 20, "impression_count": 10 * minutes,
    }
    clicks, profile = minutes // 5, minutes // 12
    engagements = sum(v for k, v in public.items() if k != "impression_count") + clicks + profile
    private = {"impression_count": 10 * minutes, "url_link_clicks": clicks,
               "user_profile_clicks": profile, "engagements": engagements}
    return public, private


class TwitterSandbox:
    """Handlers; all state lives in `sandbox.network_state("twitter")`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @property
    def state(self) -> dict[str, Any]:
        state = self.sandbox.network_state(NETWORK)
        for key, value in DEFAULTS.items():
            state.setdefault(key, value)
        state.setdefault("media", {})
        state.setdefault("tweets", {})
        state.setdefault("windows", {})
        return state

    # plumbing ----------------------------------------------------------------------------------

    def api(self, limit: str | None, handler: Handler) -> Handler:
        """Wrap a handler: turn _Reject into its response and count/emit the x-rate-limit headers."""

        async def wrapped(request: web.Request) -> web.Response:
            info = self.sandbox.token(NETWORK, _bearer(request))
            window: dict[str, float] | None = None
            allowed = int((self.state["limits"] or {}).get(limit, LIMITS[limit])) if limit is not None else 0
            if limit is not None and info is not None:
                now = self.sandbox.now()
                key = f"{info.subject}:{limit}"
                window = self.state["windows"].get(key)
                if window is None or now >= window["reset"]:
                    window = {"reset": now + WINDOW, "used": 0}
                    self.state["windows"][key] = window
                if window["used"] >= allowed:
                    response = problem(429, "Too Many Requests", "Too Many Requests")
                    _limit_headers(response, allowed, 0, window["reset"])
                    return response
                window["used"] += 1
            try:
                response = await handler(request)
            except _Reject as reject:
                response = reject.response
            if limit is not None and window is not None:
                _limit_headers(response, allowed, allowed - int(window["used"]), window["reset"])
            return response

        return wrapped

    def authorize(self, request: web.Request, *scopes: str) -> TokenInfo:
        info = self.sandbox.token(NETWORK, _bearer(request))
        if info is None:
            raise _Reject(problem(401, "Unauthorized", "Unauthorized"))
        missing = [s for s in scopes if s not in info.scopes]
        if missing:
            raise _Reject(problem(403, "Forbidden", "You are not permitted to perform this action.",
                                  required_scopes=missing))
        return info

    # OAuth -------------------------------------------------------------------------------------

    async def oauth_authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        required = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge")
        missing = [name for name in required if not q.get(name)]
        redirect_uri = q.get("redirect_uri", "")
        if missing or q["response_type"] != "code" or urlsplit(redirect_uri).scheme not in ("http", "https"):
            return _error_page(f"Something went wrong. Missing or invalid: {', '.join(missing) or 'request'}")
        method = q.get("code_challenge_method", "plain")
        scopes = q["scope"].split()
        if method not in ("S256", "plain") or len(q["state"]) > 500 or not set(scopes) <= KNOWN_SCOPES:
            return _error_page("Something went wrong. You weren't able to give access to the App.")
        if self.state["deny_consent"]:
            return _redirect(redirect_uri, error="access_denied", state=q["state"])
        code = self.sandbox.new_code(
            NETWORK, client_id=q["client_id"], redirect_uri=redirect_uri, scopes=scopes,
            challenge=q["code_challenge"], method=method, subject=USER["id"],
        )
        return _redirect(redirect_uri, code=code, state=q["state"])

    def client_id(self, request: web.Request, form: Any) -> str:
        """The authenticated client: Basic credentials (confidential) or form client_id (public)."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id, secret = "", ""
            secrets_ = self.state["client_secrets"]
            expected = secrets_.get(client_id) if isinstance(secrets_, dict) else None
            if not client_id or not secret or (expected is not None and expected != secret):
                raise _Reject(oauth_error(401, "unauthorized_client", "Missing valid authorization header"))
            return client_id
        if form.get("client_id"):
            return str(form["client_id"])
        raise _Reject(oauth_error(401, "unauthorized_client", "Missing valid authorization header"))

    async def oauth_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id = self.client_id(request, form)
        grant = form.get("grant_type")
        invalid = oauth_error(400, "invalid_request", "Value passed for the token was invalid.")
        if grant == "authorization_code":
            data = self.sandbox.take_code(NETWORK, str(form.get("code", "")), ttl=self.state["code_ttl"])
            if (data is None or data["client_id"] != client_id or data["redirect_uri"] != form.get("redirect_uri")
                    or not _pkce_ok(data, str(form.get("code_verifier", "")))):
                return invalid
            family = f"fam{self.sandbox.next_id()}"
            return web.json_response(self._issue(data["subject"], data["scopes"], client_id, family))
        if grant == "refresh_token":
            token = str(form.get("refresh_token", ""))
            known = self.sandbox.tokens.get(token)
            if known is not None and known.network == NETWORK and known.extra.get("used"):
                # Replay of a rotated refresh token: X kills the whole grant.
                self._revoke_family(known.extra.get("family"))
                return invalid
            info = self.sandbox.token(NETWORK, token, kind="refresh")
            if info is None or info.extra.get("client_id") != client_id:
                return invalid
            info.extra["used"] = True
            return web.json_response(self._issue(info.subject, info.scopes, client_id, info.extra["family"]))
        return oauth_error(400, "invalid_request", "Missing required parameter [grant_type].")

    def _issue(self, subject: str, scopes: list[str], client_id: str, family: str) -> dict[str, Any]:
        ttl = int(self.state["access_ttl"])
        extra = {"family": family, "client_id": client_id}
        body: dict[str, Any] = {
            "token_type": "bearer",
            "expires_in": ttl,
            "access_token": self.sandbox.new_token(NETWORK, subject, scopes, ttl, **extra),
            "scope": " ".join(scopes),
        }
        if "offline.access" in scopes:
            body["refresh_token"] = self.sandbox.new_token(NETWORK, subject, scopes, None, kind="refresh", **extra)
        return body

    def _revoke_family(self, family: str | None) -> None:
        for info in self.sandbox.tokens.values():
            if info.network == NETWORK and family and info.extra.get("family") == family:
                info.revoked = True

    async def oauth_revoke(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id = self.client_id(request, form)
        info = self.sandbox.tokens.get(str(form.get("token", "")))
        if info is not None and info.network == NETWORK and info.extra.get("client_id") == client_id:
            if info.kind == "refresh":
                self._revoke_family(info.extra.get("family"))
            info.revoked = True
        return web.json_response({"revoked": True})

    # Users -------------------------------------------------------------------------------------

    async def users_me(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "tweet.read", "users.read")
        fields = _fields(request, "user.fields")
        user: dict[str, Any] = {k: USER[k] for k in ("id", "name", "username")}
        if "profile_image_url" in fields:
            user["profile_image_url"] = USER["profile_image_url"]
        if "public_metrics" in fields:
            live = sum(1 for t in self.state["tweets"].values() if t["author"] == info.subject and not t["deleted"])
            user["public_metrics"] = {"followers_count": FOLLOWERS, "following_count": FOLLOWING,
                                      "tweet_count": BASE_TWEET_COUNT + live, "listed_count": LISTED,
                                      "like_count": 0}
        return web.json_response({"data": user})

    # Media -------------------------------------------------------------------------------------

    def _media(self, info: TokenInfo, media_id: str) -> dict[str, Any]:
        media = self.state["media"].get(media_id)
        if media is None or media["owner"] != info.subject:
            raise invalid_request(f"The media_id parameter is invalid: {media_id}")
        if self.sandbox.now() > media["expires_at"]:
            raise invalid_request(f"The media_id {media_id} has expired")
        return media

    def _initialize(self, info: TokenInfo, media_type: str, total_bytes: Any, category: str) -> dict[str, Any]:
        if not media_type or not category or total_bytes in (None, ""):
            raise invalid_request("media_type, total_bytes and media_category are required")
        try:
            size = int(total_bytes)
        except (TypeError, ValueError) as exc:
            raise invalid_request("total_bytes must be an integer") from exc
        if category not in CATEGORY_LIMITS:
            raise invalid_request(f"Invalid media_category: {category}")
        is_video = category.endswith("video")
        is_gif = category.endswith("gif")
        allowed = VIDEO_TYPES if is_video else {"image/gif"} if is_gif else IMAGE_TYPES | {"image/gif"}
        if media_type not in allowed:
            raise invalid_request(f"media_type {media_type} does not match media_category {category}")
        if size <= 0 or size > CATEGORY_LIMITS[category]:
            raise invalid_request(f"total_bytes {size} is out of range for {category}")
        media_id = str(1_880_000_000_000_000_000 + self.sandbox.next_id())
        prefix = "7" if is_video else "16" if is_gif else "3"
        media = self.state["media"][media_id] = {
            "id": media_id, "media_key": f"{prefix}_{media_id}", "owner": info.subject, "media_type": media_type,
            "category": category, "total_bytes": size, "segments": [], "finalized": False, "state": None,
            "polls": 0, "finalized_at": None, "expires_at": self.sandbox.now() + 86400, "alt_text": None,
        }
        return media

    @staticmethod
    def _initialized(media: dict[str, Any]) -> web.Response:
        return web.json_response({"data": {"id": media["id"], "media_key": media["media_key"],
                                           "expires_after_secs": 86400}})

    def _append(self, media: dict[str, Any], segment_index: Any, payload: bytes | None) -> web.Response:
        if media["finalized"]:
            raise invalid_request("Segments cannot be appended after FINALIZE")
        try:
            index = int(segment_index)
        except (TypeError, ValueError) as exc:
            raise invalid_request("segment_index is required (0-999)") from exc
        if not 0 <= index <= 999:
            raise invalid_request("segment_index must be between 0 and 999")
        if index != len(media["segments"]):
            raise invalid_request(f"Segment {index} is out of order: expected segment {len(media['segments'])}")
        if not payload:
            raise invalid_request("media is required")
        if len(payload) > 5 << 20:
            raise invalid_request("A segment may not be larger than 5 MB")
        media["segments"].append(payload)
        return web.json_response({"data": {"expires_at": int(media["expires_at"])}})

    def _finalize(self, media: dict[str, Any]) -> web.Response:
        if media["finalized"]:
            raise invalid_request("The media has already been finalized")
        data = b"".join(media["segments"])
        if len(data) != media["total_bytes"]:
            raise invalid_request(
                f"File size mismatch: received {len(data)} bytes, total_bytes was {media['total_bytes']}")
        real = sniff_mime(data)
        media["finalized"] = True
        media["finalized_at"] = self.sandbox.now()
        media["size"] = len(data)
        needs_processing = media["category"].endswith(("video", "gif"))
        if not needs_processing:
            if real is None or not real.startswith("image/"):
                media["finalized"] = False
                raise invalid_request("media type unrecognized.")
            media["state"] = "succeeded"
        else:
            media["state"] = "pending"
            media["will_fail"] = bool(self.state["fail_processing"]) or real is None or (
                media["category"].endswith("video") and not real.startswith("video/"))
        body: dict[str, Any] = {"id": media["id"], "media_key": media["media_key"], "size": len(data),
                                "expires_after_secs": int(media["expires_at"] - self.sandbox.now())}
        if needs_processing:
            body["processing_info"] = self._processing_info(media)
        return web.json_response({"data": body})

    def _advance(self, media: dict[str, Any]) -> None:
        if media["state"] in ("succeeded", "failed", None):
            return
        elapsed = self.sandbox.now() - media["finalized_at"]
        if media["polls"] >= self.state["processing_polls"] or elapsed >= self.state["processing_seconds"]:
            media["state"] = "failed" if media.get("will_fail") else "succeeded"
        elif media["polls"] >= 1:
            media["state"] = "in_progress"

    def _processing_info(self, media: dict[str, Any]) -> dict[str, Any]:
        state = media["state"]
        info: dict[str, Any] = {"state": state}
        if state in ("pending", "in_progress"):
            info["check_after_secs"] = self.state["check_after_secs"]
            info["progress_percent"] = 0 if state == "pending" else 50
        else:
            info["progress_percent"] = 100
        if state == "failed":
            info["error"] = {"code": 1, "name": "InvalidMedia", "message": "Unsupported video format"}
        return info

    async def media_initialize(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "media.write")
        body = await _json(request)
        return self._initialized(self._initialize(info, body.get("media_type", ""), body.get("total_bytes"),
                                                  body.get("media_category", "")))

    async def media_append(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "media.write")
        media = self._media(info, request.match_info["media_id"])
        form = await _form(request)
        return self._append(media, form.get("segment_index"), _payload(form))

    async def media_finalize(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "media.write")
        return self._finalize(self._media(info, request.match_info["media_id"]))

    async def media_status(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "media.write")
        if request.query.get("command") != "STATUS":
            raise invalid_request("command must be STATUS")
        media = self._media(info, request.query.get("media_id", ""))
        if not media["finalized"]:
            raise invalid_request("The media has not been finalized")
        body: dict[str, Any] = {"id": media["id"], "media_key": media["media_key"]}
        if media["state"] != "succeeded" or media["category"].endswith(("video", "gif")):
            media["polls"] += 1
            self._advance(media)
            body["processing_info"] = self._processing_info(media)
        return web.json_response({"data": body})

    async def media_upload_legacy(self, request: web.Request) -> web.Response:
        """`POST /2/media/upload`: command=INIT|APPEND|FINALIZE, or a one-shot image upload."""
        info = self.authorize(request, "media.write")
        form = await _form(request)
        command = str(form.get("command") or request.query.get("command") or "").upper()
        if command == "INIT":
            return self._initialized(self._initialize(
                info, str(form.get("media_type", "")), form.get("total_bytes"),
                str(form.get("media_category", "tweet_image"))))
        if command == "APPEND":
            media = self._media(info, str(form.get("media_id", "")))
            return self._append(media, form.get("segment_index"), _payload(form))
        if command == "FINALIZE":
            return self._finalize(self._media(info, str(form.get("media_id", ""))))
        if command:
            raise invalid_request(f"Unknown command: {command}")
        payload = _payload(form)
        if not payload:
            raise invalid_request("media is required")
        real = sniff_mime(payload) or ""
        category = str(form.get("media_category", "tweet_image"))
        if category not in ("tweet_image", "dm_image") or not real.startswith("image/") or real == "image/gif":
            raise invalid_request("Simple upload takes images only; use the chunked upload for video and GIF")
        media = self._initialize(info, real, len(payload), category)
        self._append(media, 0, payload)
        return self._finalize(media)

    async def media_metadata(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "media.write")
        body = await _json(request)
        media = self._media(info, str(body.get("id", "")))
        alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
        if not isinstance(alt, str) or len(alt) > 1000:
            raise invalid_request("metadata.alt_text.text is required (at most 1000 characters)")
        media["alt_text"] = alt
        return web.json_response({"data": {"id": media["id"], "associated_metadata": True}})

    # Tweets ------------------------------------------------------------------------------------

    async def create_tweet(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "tweet.read", "tweet.write", "users.read")
        body = await _json(request)
        if self.state["usage_capped"]:
            raise _Reject(problem(429, "UsageCapExceeded", "Usage cap exceeded: Monthly product cap",
                                  "usage-capped", period="Monthly", scope="Product"))
        text = body.get("text", "")
        if not isinstance(text, str):
            raise invalid_request("text must be a string")
        media_ids = (body.get("media") or {}).get("media_ids") or []
        if not isinstance(media_ids, list) or not all(isinstance(m, str) for m in media_ids):
            raise invalid_request("media.media_ids must be a list of strings")
        if not text.strip() and not media_ids:
            raise invalid_request("Post text or media is required")
        if twitter_weighted_length(text) > self.state["max_weighted_length"]:
            raise _Reject(problem(403, "Forbidden", "Your Tweet text is too long. For more information on how "
                                  "Twitter determines text length see https://github.com/twitter/twitter-text."))
        attached = []
        for media_id in media_ids:
            media = self.state["media"].get(media_id)
            if media is None or media["owner"] != info.subject or media["state"] != "succeeded":
                raise invalid_request("Your media IDs are invalid.")
            attached.append(media)
        kinds = {m["category"].split("_")[-1] for m in attached}
        if len(attached) > 4 or len(kinds) > 1 or (kinds and kinds != {"image"} and len(attached) > 1):
            raise invalid_request("Your media IDs are invalid.")
        parent = self._replied_to(body.get("reply"))
        live_texts = self.state.setdefault("live_texts", {})  # (author, text) -> live tweets: no O(n) scan
        if text.strip() and live_texts.get((info.subject, text)):
            raise _Reject(problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."))
        tweet_id = str(1_900_000_000_000_000_000 + self.sandbox.next_id())
        live_texts[(info.subject, text)] = live_texts.get((info.subject, text), 0) + 1
        conversation_id = parent["conversation_id"] if parent else tweet_id
        self.state["tweets"][tweet_id] = {
            "author": info.subject, "text": text, "deleted": False, "media_ids": media_ids,
            "reply": body.get("reply"), "in_reply_to": parent["id"] if parent else None,
            "in_reply_to_user_id": parent["author"] if parent else None, "conversation_id": conversation_id,
            "id": tweet_id,
        }
        self.sandbox.publish(
            NETWORK, info.subject, tweet_id, text,
            [{"media_id": m["id"], "type": m["media_type"], "category": m["category"], "size": m["size"],
              "alt_text": m["alt_text"]} for m in attached],
            username=USER["username"], in_reply_to_tweet_id=parent["id"] if parent else None,
            conversation_id=conversation_id,
        )
        return web.json_response({"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}},
                                 status=201)

    def _replied_to(self, reply: Any) -> dict[str, Any] | None:
        """The live tweet `reply.in_reply_to_tweet_id` names (None without `reply`), else X's refusal."""
        if reply is None:
            return None
        parent_id = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
        if not isinstance(parent_id, str) or not parent_id.isdigit() or len(parent_id) > 19:
            raise invalid_request(
                "One or more parameters to your request was invalid.",
                errors=[{"parameters": {"reply.in_reply_to_tweet_id": [str(parent_id)]},
                         "message": f"The `reply.in_reply_to_tweet_id` field value [{parent_id}] is not valid"}])
        parent: dict[str, Any] | None = self.state["tweets"].get(parent_id)
        if parent is None or parent["deleted"]:
            raise _Reject(problem(403, "Forbidden",
                                  "You attempted to reply to a Tweet that is deleted or not visible to you."))
        return parent

    async def get_tweet(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "tweet.read", "users.read")
        tweet_id = request.match_info["tweet_id"]
        tweet = self.state["tweets"].get(tweet_id)
        pub = self.sandbox.publication(NETWORK, tweet_id)
        if tweet is None or tweet["deleted"] or pub is None:
            return web.json_response({"errors": [{
                "value": tweet_id, "detail": f"Could not find tweet with id: [{tweet_id}].",
                "title": "Not Found Error", "resource_type": "tweet", "parameter": "id",
                "resource_id": tweet_id, "type": "https://api.x.com/2/problems/resource-not-found",
            }]})
        fields = _fields(request, "tweet.fields")
        data: dict[str, Any] = {"id": tweet_id, "text": tweet["text"], "edit_history_tweet_ids": [tweet_id]}
        age = self.sandbox.now() - pub.at
        public, private = metrics_for(units_under_way(self.sandbox, pub.at, 60))
        errors = []
        if "public_metrics" in fields:
            data["public_metrics"] = public
        if "author_id" in fields:
            data["author_id"] = tweet["author"]
        if "conversation_id" in fields:
            data["conversation_id"] = tweet.get("conversation_id", tweet_id)
        if "in_reply_to_user_id" in fields and tweet.get("in_reply_to"):
            data["in_reply_to_user_id"] = tweet["in_reply_to_user_id"]
        if "referenced_tweets" in fields and tweet.get("in_reply_to"):
            data["referenced_tweets"] = [{"type": "replied_to", "id": tweet["in_reply_to"]}]
        for field in ("non_public_metrics", "organic_metrics"):
            if field not in fields:
                continue
            if tweet["author"] != info.subject or age > 30 * 86400:
                errors.append({"title": "Field Authorization Error", "resource_type": "tweet",
                               "field": field, "resource_id": tweet_id, "parameter": "tweet.fields",
                               "detail": f"Sorry, you are not authorized to access '{field}' on a Tweet.",
                               "type": "https://api.x.com/2/problems/not-authorized-for-field"})
            elif field == "non_public_metrics":
                data[field] = private
            else:
                data[field] = {"impression_count": private["impression_count"], "like_count": public["like_count"],
                               "reply_count": public["reply_count"], "retweet_count": public["retweet_count"],
                               "url_link_clicks": private["url_link_clicks"],
                               "user_profile_clicks": private["user_profile_clicks"]}
        return web.json_response({"data": data, **({"errors": errors} if errors else {})})

    async def delete_tweet(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "tweet.read", "tweet.write", "users.read")
        tweet_id = request.match_info["tweet_id"]
        tweet = self.state["tweets"].get(tweet_id)
        if tweet is None or tweet["deleted"]:
            return problem(404, "Not Found Error", f"Could not find tweet with id: [{tweet_id}].",
                           "resource-not-found")
        if tweet["author"] != info.subject:
            return problem(403, "Forbidden", "You are not authorized to delete this Tweet.")
        tweet["deleted"] = True
        live_texts = self.state.setdefault("live_texts", {})
        if live_texts.get((tweet["author"], tweet["text"])):
            live_texts[(tweet["author"], tweet["text"])] -= 1
        pub = self.sandbox.publication(NETWORK, tweet_id)
        if pub is not None:
            pub.deleted = True
        return web.json_response({"data": {"deleted": True}})


# ---------------------------------------------------------------------------------------------


def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Register X's routes under /x.com and both API hosts."""
    x = TwitterSandbox(sandbox)
    app.router.add_get("/x.com/i/oauth2/authorize", x.oauth_authorize)
    for host in API_HOSTS:
        routes: list[tuple[str, str, str | None, Handler]] = [
            ("POST", "/2/oauth2/token", None, x.oauth_token),
            ("POST", "/2/oauth2/revoke", None, x.oauth_revoke),
            ("GET", "/2/users/me", "users_me", x.users_me),
            ("POST", "/2/media/upload/initialize", "media_chunked", x.media_initialize),
            ("POST", "/2/media/upload/{media_id}/append", "media_chunked", x.media_append),
            ("POST", "/2/media/upload/{media_id}/finalize", "media_chunked", x.media_finalize),
            ("GET", "/2/media/upload", "media_status", x.media_status),
            ("POST", "/2/media/upload", "media_simple", x.media_upload_legacy),
            ("POST", "/2/media/metadata", "media_metadata", x.media_metadata),
            ("POST", "/2/tweets", "tweets_create", x.create_tweet),
            ("GET", "/2/tweets/{tweet_id}", "tweets_lookup", x.get_tweet),
            ("DELETE", "/2/tweets/{tweet_id}", "tweets_delete", x.delete_tweet),
        ]
        for method, path, limit, handler in routes:
            app.router.add_route(method, f"/{host}{path}", x.api(limit, handler))


def fault_response(kind: str, sandbox: Sandbox, wait: float | None = None) -> web.Response:
    """X's own answers: 429 with x-rate-limit headers (the window resets in `wait` seconds, else a
    whole window), 401 Unauthorized, 503."""
    if kind == "rate_limit":
        response = problem(429, "Too Many Requests", "Too Many Requests")
        # x-rate-limit-reset is a whole epoch second: round up so that it never says sooner than `wait`.
        reset = math.ceil(sandbox.now() + wait) if wait is not None else sandbox.now() + WINDOW
        _limit_headers(response, LIMITS["tweets_create"], 0, reset)
        return response
    if kind == "expire_token":
        return problem(401, "Unauthorized", "Unauthorized")
    return problem(503, "Service Unavailable", "Service Unavailable")


def _limit_headers(response: web.Response, limit: int, remaining: int, reset: float) -> None:
    response.headers["x-rate-limit-limit"] = str(limit)
    response.headers["x-rate-limit-remaining"] = str(max(0, remaining))
    response.headers["x-rate-limit-reset"] = str(int(reset))


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else None


def _pkce_ok(code: dict[str, Any], verifier: str) -> bool:
    if not 43 <= len(verifier) <= 128:
        return False
    if code["method"] == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == code["challenge"]
    return verifier == code["challenge"]


def _redirect(uri: str, **params: str) -> web.Response:
    sep = "&" if urlsplit(uri).query else "?"
    return web.Response(status=302, headers={"Location": f"{uri}{sep}{urlencode(params)}"})


def _error_page(message: str) -> web.Response:
    return web.Response(status=400, text=f"<html><body><h1>{message}</h1></body></html>", content_type="text/html")


def _fields(request: web.Request, name: str) -> set[str]:
    return {f.strip() for f in request.query.get(name, "").split(",") if f.strip()}


async def _json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise invalid_request("Content-Type must be application/json")
    try:
        body = await request.json()
    except ValueError as exc:
        raise invalid_request("The request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object")
    return body


async def _form(request: web.Request) -> Any:
    if request.content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise invalid_request("Expected multipart/form-data")
    form = await request.post()
    record = record_of(request)
    if record is not None:
        record.notes["fields"] = {k: _field_note(v) for k, v in form.items()}
    return form


def _field_note(value: str | bytes | bytearray | web.FileField) -> str:
    """A form field as the request record shows it: text as sent, a file or a binary part by its size
    or name (aiohttp gives a part without a filename and with a binary type as bytes)."""
    if isinstance(value, str):
        return value
    if isinstance(value, web.FileField):
        return f"<file {value.filename}>"
    return f"<{len(value)} bytes>"


def _payload(form: Any) -> bytes | None:
    """The segment bytes: a `media` file part, or base64 `media_data`."""
    media = form.get("media")
    if media is not None and not isinstance(media, str):
        return media.file.read()
    if isinstance(media, str) and media:
        return media.encode("latin-1")
    data = form.get("media_data")
    if isinstance(data, str) and data:
        try:
            return base64.b64decode(data, validate=True)
        except binascii.Error:
            return None
    return None

