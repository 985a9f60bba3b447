"""Sandbox Pinterest API v5: OAuth with Basic client auth, boards, pins, video media, analytics.

Imitates (shared/platforms.md section 7):
- `GET www.pinterest.com/oauth/` -> 302 to redirect_uri with code+state at once; codes single use,
  10 min, bound to client_id and redirect_uri. `POST /v5/oauth/token` requires
  `Authorization: Basic` (401 otherwise); access tokens `pina_...` (30 days), continuous refresh tokens
  `pinr_...` (60 days, each refresh hands out a new one; the old one keeps its own expiry).
- Tokens checked on every call: 401 `{"code":2,"message":"Authentication failed."}`; missing scope
  -> 403 naming the scope.
- `GET /v5/user_account`, `GET /v5/boards` (page_size <= 250, bookmark paging, secret boards only
  with boards:read_secret).
- `POST /v5/pins`: numeric board_id of one's own board, title <= 100, description <= 800,
  link <= 2048, alt_text <= 500; `image_url` and `multiple_image_urls` (2-5 items) are fetched over
  real HTTP and must be images; `image_base64` is decoded and checked; `video_id` needs a media
  that `succeeded` and a cover (URL, base64 or key frame time).
- `POST /v5/media` -> `upload_url` on the pre-signed S3 host: a multipart POST with every
  upload_parameters field and `file` (no Authorization header, as S3 refuses two auth methods) -> 204;
  then registered -> processing -> succeeded on the `processing_polls`-th `GET /v5/media/{id}` (or after
  `processing_seconds`); bytes that are not MP4/MOV, or `fail_processing`, end `failed`.
- `DELETE /v5/pins/{id}` -> 204; `GET /v5/pins/{id}`; `GET /v5/pins/{id}/analytics`.
- Rate limiting: 429 `{"code":8,...}` with x-ratelimit-limit/-remaining/-reset (seconds; the header
  names and units are unconfirmed).

Metrics of a pin, with m = minutes since it was created counting the one under way (sandbox clock,
core.units_under_way): IMPRESSION 12m,
PIN_CLICK m//4, OUTBOUND_CLICK m//6, SAVE m//8, TOTAL_COMMENTS m//30, TOTAL_REACTIONS m//10,
PROFILE_VISIT m//15, USER_FOLLOW m//60, SAVE_RATE SAVE/IMPRESSION. Video metrics are not imitated.

Not imitated: board creation/sections, account analytics, video duration/size limits, carousel
per-item links beyond storing them, per-category rate limits, trial-access daily quota.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web

from ouipost.posts.media import sniff_mime
from ouipost.sandbox.core import Sandbox, TokenInfo, units_under_way

NETWORK = "pinterest"
UPLOAD_HOST = "pinterest-media-upload.s3-accelerate.amazonaws.com"
HOSTS: tuple[str, ...] = ("www.pinterest.com", "api.pinterest.com", UPLOAD_HOST)

ACCOUNT = {
    "account_type": "BUSINESS",
    "id": "549755885175",
    "username": "ouipost_sandbox",
    "profile_image": "https://i.pinimg.com/280x280_RS/sandbox/ouipost.jpg",
    "website_url": "https://ouipost.example",
    "business_name": "Oui Post Sandbox",
    "follower_count": 842,
    "following_count": 97,
    "monthly_views": 12000,
}
BASE_PIN_COUNT = 40
DEFAULT_BOARDS = [
    {"id": "1099511627781", "name": "Oui Post", "privacy": "PUBLIC"},
    {"id": "1099511627782", "name": "Ideas", "privacy": "PUBLIC"},
    {"id": "1099511627783", "name": "Drafts", "privacy": "SECRET"},
]
FOREIGN_BOARD = "1099511627999"  # exists, owned by someone else
KNOWN_SCOPES = frozenset({
    "ads:read", "ads:write", "boards:read", "boards:read_secret", "boards:write", "boards:write_secret",
    "catalogs:read", "catalogs:write", "pins:read", "pins:read_secret", "pins:write", "pins:write_secret",
    "user_accounts:read", "user_accounts:write",
})
DEFAULTS: dict[str, Any] = {
    "code_ttl": 600.0,
    "access_ttl": 2_592_000,  # 30 days [2nd]
    "refresh_ttl": 5_184_000,  # continuous refresh: 60 days, renewed at every refresh
    "processing_polls": 2,
    "processing_seconds": 60.0,
    "fail_processing": False,
    "client_secrets": None,  # {client_id: secret}; None: any non-empty secret
}
PIN_METRICS = ("IMPRESSION", "OUTBOUND_CLICK", "PIN_CLICK", "SAVE", "SAVE_RATE", "TOTAL_COMMENTS",
               "TOTAL_REACTIONS", "USER_FOLLOW", "PROFILE_VISIT", "OUTBOUND_CLICK_RATE", "PIN_CLICK_RATE",
               "ENGAGEMENT", "ENGAGEMENT_RATE", "CLOSEUP", "CLICKTHROUGH")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff")

Handler = Callable[[web.Request], Awaitable[web.Response]]


class _Reject(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def error(status: int, code: int, message: str) -> _Reject:
    """Pinterest's error body: {code, message}."""
    return _Reject(web.json_response({"code": code, "message": message}, status=status))


def invalid(message: str) -> _Reject:
    return error(400, 1, f"Invalid request: {message}")


def metrics_for(minutes: int) -> dict[str, float]:
    impressions, saves = 12 * minutes, minutes // 8
    pin_clicks, outbound = minutes // 4, minutes // 6
    reactions, comments = minutes // 10, minutes // 30
    engagement = pin_clicks + outbound + saves + reactions + comments
    return {
        "IMPRESSION": impressions, "PIN_CLICK": pin_clicks, "OUTBOUND_CLICK": outbound, "SAVE": saves,
        "TOTAL_COMMENTS": comments, "TOTAL_REACTIONS": reactions, "PROFILE_VISIT": minutes // 15,
        "USER_FOLLOW": minutes // 60, "CLOSEUP": pin_clicks, "CLICKTHROUGH": outbound, "ENGAGEMENT": engagement,
        "SAVE_RATE": saves / impressions if impressions else 0.0,
        "PIN_CLICK_RATE": pin_clicks / impressions if impressions else 0.0,
        "OUTBOUND_CLICK_RATE": outbound / impressions if impressions else 0.0,
        "ENGAGEMENT_RATE": engagement / impressions if impressions else 0.0,
    }


class PinterestSandbox:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @property
    def state(self) -> dict[str, Any]:
        state = self.sandbox.network_state(NETWORK)
        for key, value in DEFAULTS.items():
            state.setdefault(key, value)
        state.setdefault("boards", [dict(b) for b in DEFAULT_BOARDS])
        state.setdefault("pins", {})
        state.setdefault("media", {})
        return state

    def route(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except _Reject as reject:
                return reject.response

        return wrapped

    def authorize(self, request: web.Request, *scopes: str) -> TokenInfo:
        header = request.headers.get("Authorization", "")
        info = self.sandbox.token(NETWORK, header[7:].strip() if header.startswith("Bearer ") else None)
        if info is None:
            raise error(401, 2, "Authentication failed.")
        missing = [s for s in scopes if s not in info.scopes]
        if missing:
            raise error(403, 3, f"Not authorized to access this resource. Missing OAuth scope: {missing[0]}")
        return info

    # OAuth -------------------------------------------------------------------------------------

    async def oauth_authorize(self, request: web.Request) -> web.Response:
        q = request.query
        missing = [n for n in ("client_id", "redirect_uri", "response_type", "scope") if not q.get(n)]
        redirect_uri = q.get("redirect_uri", "")
        if missing or q["response_type"] != "code" or urlsplit(redirect_uri).scheme not in ("http", "https"):
            return web.Response(status=400, content_type="text/html",
                                text=f"<h1>Invalid OAuth request</h1><p>{', '.join(missing)}</p>")
        scopes = [s for s in q["scope"].split(",") if s]
        state = {"state": q["state"]} if q.get("state") else {}
        if not set(scopes) <= KNOWN_SCOPES:
            return _redirect(redirect_uri, error="invalid_scope", **state)
        code = self.sandbox.new_code(NETWORK, client_id=q["client_id"], redirect_uri=redirect_uri,
                                     scopes=scopes, subject=ACCOUNT["id"])
        return _redirect(redirect_uri, code=code, **state)

    def client(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            raise error(401, 1, "Authentication method not supported: the token endpoint needs Basic "
                                "client authentication")
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id, secret = "", ""
        expected = self.state["client_secrets"]
        wrong_secret = isinstance(expected, dict) and expected.get(client_id) not in (None, secret)
        if not client_id or not secret or wrong_secret:
            raise error(401, 1, "Invalid client credentials")
        return client_id

    async def oauth_token(self, request: web.Request) -> web.Response:
        client_id = self.client(request)
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "authorization_code":
            data = self.sandbox.take_code(NETWORK, str(form.get("code", "")), ttl=self.state["code_ttl"])
            if data is None or data["client_id"] != client_id or data["redirect_uri"] != form.get("redirect_uri"):
                raise invalid("the authorization code is invalid, expired or was issued for another "
                              "client or redirect_uri")
            return web.json_response(self._issue(data["subject"], data["scopes"], client_id, "authorization_code"))
        if grant == "refresh_token":
            info = self.sandbox.token(NETWORK, str(form.get("refresh_token", "")), kind="refresh")
            if info is None or info.extra.get("client_id") != client_id:
                raise invalid("refresh_token is invalid or expired")
            scopes = info.scopes
            if form.get("scope"):
                asked = [s for s in str(form["scope"]).split(",") if s]
                if not set(asked) <= set(info.scopes):
                    raise invalid("scope exceeds the original grant")
                scopes = asked
            return web.json_response(self._issue(info.subject, scopes, client_id, "refresh_token"))
        raise invalid("grant_type must be authorization_code or refresh_token")

    def _issue(self, subject: str, scopes: list[str], client_id: str, response_type: str) -> dict[str, Any]:
        access_ttl, refresh_ttl = int(self.state["access_ttl"]), int(self.state["refresh_ttl"])
        return {
            "access_token": self.sandbox.new_token(NETWORK, subject, scopes, access_ttl, prefix="pina_",
                                                   client_id=client_id),
            "refresh_token": self.sandbox.new_token(NETWORK, subject, scopes, refresh_ttl, kind="refresh",
                                                    prefix="pinr_", client_id=client_id),
            "response_type": response_type,
            "token_type": "bearer",
            "expires_in": access_ttl,
            "refresh_token_expires_in": refresh_ttl,
            "refresh_token_expires_at": int(self.sandbox.now() + refresh_ttl),
            "scope": ",".join(scopes),
        }

    # Account and boards ------------------------------------------------------------------------

    async def user_account(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "user_accounts:read")
        pins = sum(1 for p in self.state["pins"].values() if not p["deleted"] and p["owner"] == info.subject)
        return web.json_response({**ACCOUNT, "board_count": len(self.state["boards"]),
                                  "pin_count": BASE_PIN_COUNT + pins})

    async def list_boards(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "boards:read")
        try:
            page_size = int(request.query.get("page_size", "25"))
            start = int(base64.urlsafe_b64decode(request.query["bookmark"]).decode()) if request.query.get(
                "bookmark") else 0
        except (ValueError, binascii.Error) as exc:
            raise invalid("page_size must be 1-250 and bookmark a value we returned") from exc
        if not 1 <= page_size <= 250:
            raise invalid("constraint: maximum=250 for page_size")
        boards = [b for b in self.state["boards"]
                  if b["privacy"] != "SECRET" or "boards:read_secret" in info.scopes]
        page = boards[start:start + page_size]
        more = start + page_size < len(boards)
        bookmark = base64.urlsafe_b64encode(str(start + page_size).encode()).decode() if more else None
        items = [{**b, "description": "", "owner": {"username": ACCOUNT["username"]},
                  "pin_count": sum(1 for p in self.state["pins"].values()
                                   if p["board_id"] == b["id"] and not p["deleted"])} for b in page]
        return web.json_response({"items": items, "bookmark": bookmark})

    # Media -------------------------------------------------------------------------------------

    async def register_media(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "pins:write")
        body = await _json(request)
        if body.get("media_type") != "video":
            raise invalid("media_type must be 'video'")
        media_id = str(5_190_000_000 + self.sandbox.next_id())
        params = {
            "x-amz-date": datetime.fromtimestamp(self.sandbox.now(), UTC).strftime("%Y%m%dT%H%M%SZ"),
            "x-amz-signature": secrets.token_hex(32),
            "x-amz-security-token": secrets.token_urlsafe(48),
            "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "key": f"uploads/{secrets.token_hex(4)}/{media_id}",
            "policy": base64.b64encode(f'{{"expiration":"{media_id}"}}'.encode()).decode(),
            "x-amz-credential": "ASIASANDBOX/20260101/us-east-1/s3/aws4_request",
            "Content-Type": "multipart/form-data",
        }
        self.state["media"][media_id] = {"owner": info.subject, "status": "registered", "params": params,
                                         "polls": 0, "uploaded_at": None, "size": None}
        return web.json_response({"media_id": media_id, "media_type": "video",
                                  "upload_url": f"https://{UPLOAD_HOST}/", "upload_parameters": params},
                                 status=201)

    async def s3_upload(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization"):
            return _s3_error(400, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm "
                                                     "form field or the Authorization header may be specified")
        if request.content_type != "multipart/form-data":
            return _s3_error(412, "PreconditionFailed", "Bucket POST must be of the enclosure-type multipart/form-data")
        form = await request.post()
        key = str(form.get("key", ""))
        media = next((m for m in self.state["media"].values() if m["params"]["key"] == key), None)
        if media is None:
            return _s3_error(403, "AccessDenied", "Invalid according to Policy: Policy Condition failed: key")
        for name, value in media["params"].items():
            if name != "Content-Type" and form.get(name) != value:
                return _s3_error(403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {name}")
        file = form.get("file")
        if file is None or isinstance(file, str):
            return _s3_error(400, "InvalidArgument", "POST requires exactly one file upload per request.")
        # A part without a filename and with a binary type arrives as bytes, not as a FileField.
        data = file.file.read() if isinstance(file, web.FileField) else bytes(file)
        if media["status"] != "registered":
            return _s3_error(403, "AccessDenied", "Upload already received for this key")
        media.update(status="processing", uploaded_at=self.sandbox.now(), size=len(data), type=sniff_mime(data))
        media["will_fail"] = bool(self.state["fail_processing"]) or media["type"] not in ("video/mp4",
                                                                                        "video/quicktime")
        return web.Response(status=204)

    def _advance(self, media: dict[str, Any]) -> str:
        if media["status"] == "processing":
            elapsed = self.sandbox.now() - media["uploaded_at"]
            if media["polls"] >= self.state["processing_polls"] or elapsed >= self.state["processing_seconds"]:
                media["status"] = "failed" if media["will_fail"] else "succeeded"
        return str(media["status"])

    async def get_media(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "pins:read")
        media_id = request.match_info["media_id"]
        media = self.state["media"].get(media_id)
        if media is None or media["owner"] != info.subject:
            raise error(404, 4, "Media not found.")
        media["polls"] += 1
        return web.json_response({"media_id": media_id, "media_type": "video", "status": self._advance(media)})

    # Pins --------------------------------------------------------------------------------------

    async def create_pin(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "boards:read", "pins:write")
        body = await _json(request)
        board_id = body.get("board_id")
        if board_id is None:
            raise invalid("'board_id' is a required property")
        if not isinstance(board_id, str) or not re.fullmatch(r"\d+", board_id):
            raise invalid(f"{board_id!r} does not match '^\\d+$' for board_id")
        if board_id == FOREIGN_BOARD:
            raise error(403, 29, "You are not permitted to create Pins on this board.")
        if not any(b["id"] == board_id for b in self.state["boards"]):
            raise error(404, 40, "Board not found.")
        for field, limit in (("title", 100), ("description", 800), ("link", 2048), ("alt_text", 500)):
            value = body.get(field)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise invalid(f"constraint: maxLength={limit} for {field}")
        if body.get("link") and urlsplit(body["link"]).scheme not in ("http", "https"):
            raise invalid("link must be an http(s) URL")
        source = body.get("media_source")
        if not isinstance(source, dict):
            raise invalid("'media_source' is a required property")
        media, media_type = await self._media_source(info, source)
        pin_id = str(813_000_000_000_000_000 + self.sandbox.next_id())
        created = datetime.fromtimestamp(self.sandbox.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S")
        pin = {
            "id": pin_id, "created_at": created, "link": body.get("link"), "title": body.get("title"),
            "description": body.get("description"), "dominant_color": "#6E7874", "alt_text": body.get("alt_text"),
            "board_id": board_id, "board_section_id": body.get("board_section_id"),
            "board_owner": {"username": ACCOUNT["username"]}, "parent_pin_id": None, "is_standard": True,
            "has_been_promoted": False, "note": "", "pin_metrics": None,
            "creative_type": {"image": "REGULAR", "video": "VIDEO", "multiple_images": "CAROUSEL"}[media_type],
            "media": {"media_type": media_type},
        }
        self.state["pins"][pin_id] = {"pin": pin, "owner": info.subject, "board_id": board_id, "deleted": False}
        self.sandbox.publish(NETWORK, info.subject, pin_id, body.get("description") or "", media,
                             board_id=board_id, title=body.get("title"), link=body.get("link"),
                             media_type=media_type)
        return web.json_response(pin, status=201)

    async def _media_source(self, info: TokenInfo, source: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        kind = source.get("source_type")
        if kind == "image_url":
            return [await self._fetch_image(source.get("url"), "media_source.url")], "image"
        if kind == "image_base64":
            if source.get("content_type") not in ("image/jpeg", "image/png"):
                raise invalid("content_type must be image/jpeg or image/png")
            data = _b64(source.get("data"), "media_source.data")
            if sniff_mime(data) != source["content_type"]:
                raise invalid("media_source.data is not a valid image of content_type")
            return [{"source": "base64", "type": source["content_type"], "size": len(data)}], "image"
        if kind == "multiple_image_urls":
            items = source.get("items")
            if not isinstance(items, list) or len(items) < 2:
                raise invalid("constraint: minItems=2 for media_source.items")
            if len(items) > 5:
                raise invalid("constraint: maxItems=5 for media_source.items")
            fetched = [await self._fetch_image((item or {}).get("url"), f"media_source.items[{i}].url")
                       for i, item in enumerate(items)]
            return fetched, "multiple_images"
        if kind == "video_id":
            media = self.state["media"].get(str(source.get("media_id", "")))
            if media is None or media["owner"] != info.subject:
                raise invalid("media_id does not refer to an uploaded video")
            if self._advance(media) != "succeeded":
                raise invalid(f"the video is not ready (status {media['status']})")
            cover: dict[str, Any]
            if source.get("cover_image_url"):
                cover = await self._fetch_image(source["cover_image_url"], "media_source.cover_image_url")
            elif source.get("cover_image_data"):
                data = _b64(source.get("cover_image_data"), "media_source.cover_image_data")
                if sniff_mime(data) not in ("image/jpeg", "image/png"):
                    raise invalid("cover_image_data is not a JPEG or PNG image")
                cover = {"source": "base64", "size": len(data)}
            elif isinstance(source.get("cover_image_key_frame_time"), int | float):
                cover = {"key_frame_time": source["cover_image_key_frame_time"]}
            else:
                raise invalid("a video pin needs cover_image_url, cover_image_data or cover_image_key_frame_time")
            return [{"media_id": source["media_id"], "type": media["type"], "size": media["size"],
                     "cover": cover}], "video"
        raise invalid(f"unsupported media_source.source_type {kind!r}")

    async def _fetch_image(self, url: Any, field: str) -> dict[str, Any]:
        """Pull the image like Pinterest does, over real HTTP."""
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise invalid(f"{field} must be an http(s) URL")
        try:
            async with aiohttp.ClientSession() as session, session.get(
                url, timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                data = await resp.read() if resp.status == 200 else b""
        except (aiohttp.ClientError, TimeoutError):
            data = b""
        if not data:
            raise invalid(f"Unable to reach the URL {url}")
        kind = sniff_mime(data)
        if kind not in IMAGE_TYPES:
            raise invalid(f"the file at {url} is not a supported image")
        return {"url": url, "type": kind, "size": len(data)}

    def _pin(self, info: TokenInfo, pin_id: str) -> dict[str, Any]:
        pin = self.state["pins"].get(pin_id)
        if pin is None or pin["deleted"] or self.sandbox.publication(NETWORK, pin_id) is None:
            raise error(404, 50, "Pin not found.")
        if pin["owner"] != info.subject:
            raise error(403, 29, "You are not permitted to access that Pin.")
        return pin

    async def get_pin(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "boards:read", "pins:read")
        return web.json_response(self._pin(info, request.match_info["pin_id"])["pin"])

    async def delete_pin(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "boards:read", "pins:write")
        pin_id = request.match_info["pin_id"]
        self._pin(info, pin_id)["deleted"] = True
        pub = self.sandbox.publication(NETWORK, pin_id)
        if pub is not None:
            pub.deleted = True
        return web.Response(status=204)

    async def pin_analytics(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "boards:read", "pins:read", "user_accounts:read")
        pin_id = request.match_info["pin_id"]
        self._pin(info, pin_id)
        q = request.query
        try:
            start, end = date.fromisoformat(q["start_date"]), date.fromisoformat(q["end_date"])
        except (KeyError, ValueError) as exc:
            raise invalid("start_date and end_date (YYYY-MM-DD) are required") from exc
        today = datetime.fromtimestamp(self.sandbox.now(), UTC).date()
        if start > end or start < today - timedelta(days=90):
            raise invalid("start_date must be before end_date and at most 90 days ago")
        wanted = [m for m in q.get("metric_types", "").split(",") if m]
        if not wanted or any(m not in PIN_METRICS for m in wanted):
            raise invalid(f"metric_types must be a comma list of {', '.join(PIN_METRICS)}")
        pub = self.sandbox.publication(NETWORK, pin_id)
        assert pub is not None  # _pin checked it
        values = metrics_for(units_under_way(self.sandbox, pub.at, 60))
        chosen = {m: values[m] for m in wanted}
        return web.json_response({"all": {
            "lifetime_metrics": chosen,
            "daily_metrics": [{"date": end.isoformat(), "data_status": "READY", "metrics": chosen}],
            "summary_metrics": chosen,
        }})


def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Register Pinterest's OAuth, API and upload routes."""
    pin = PinterestSandbox(sandbox)
    api = "/api.pinterest.com/v5"
    app.router.add_get("/www.pinterest.com/oauth/", pin.oauth_authorize)
    app.router.add_post(f"{api}/oauth/token", pin.route(pin.oauth_token))
    app.router.add_get(f"{api}/user_account", pin.route(pin.user_account))
    app.router.add_get(f"{api}/boards", pin.route(pin.list_boards))
    app.router.add_post(f"{api}/media", pin.route(pin.register_media))
    app.router.add_get(f"{api}/media/{{media_id}}", pin.route(pin.get_media))
    app.router.add_post(f"{api}/pins", pin.route(pin.create_pin))
    app.router.add_get(f"{api}/pins/{{pin_id}}", pin.route(pin.get_pin))
    app.router.add_delete(f"{api}/pins/{{pin_id}}", pin.route(pin.delete_pin))
    app.router.add_get(f"{api}/pins/{{pin_id}}/analytics", pin.route(pin.pin_analytics))
    app.router.add_post(f"/{UPLOAD_HOST}/", pin.s3_upload)


def fault_response(kind: str, sandbox: Sandbox, wait: float | None = None) -> web.Response:
    """Pinterest's own answers: 429 code 8 (+ x-ratelimit-*: the window resets in `wait` seconds,
    else 60), 401 code 2, 500."""
    if kind == "rate_limit":
        # Whole seconds, rounded up so that it never says sooner than `wait`.
        reset = str(math.ceil(wait)) if wait is not None else "60"
        return web.json_response(
            {"code": 8, "message": "You have exceeded your rate limit. Try again later."}, status=429,
            headers={"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    if kind == "expire_token":
        return web.json_response({"code": 2, "message": "Authentication failed."}, status=401)
    return web.json_response({"code": -1, "message": "Something went wrong on our end. Sorry about that."},
                             status=500)


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return web.Response(status=status, text=body, content_type="application/xml")


def _redirect(uri: str, **params: str) -> web.Response:
    sep = "&" if urlsplit(uri).query else "?"
    return web.Response(status=302, headers={"Location": f"{uri}{sep}{urlencode(params)}"})


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise invalid(f"{field} is required")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise invalid(f"{field} is not valid base64") from exc


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise invalid("the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    return body
