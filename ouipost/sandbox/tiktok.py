"""Sandbox imitation of TikTok's Login Kit v2 and Content Posting API v2 (platforms.md section 5).

Hosts: `www.tiktok.com` (consent page), `open.tiktokapis.com` (API) and `open-upload.tiktokapis.com`
(chunk uploads). Every API answer uses TikTok's envelope
`{"data": {...}, "error": {"code": "ok", "message": "", "log_id": "..."}}`; OAuth endpoints answer
flat JSON (`{"access_token": ...}` or `{"error", "error_description", "log_id"}`) as the real ones do.

The one sandbox creator (any client may authorize it): open_id `tt-open-alice`, username
`alice.creates`, display name "Alice Creates".

What it enforces:
- authorize: client_key, response_type=code, known scopes, redirect_uri; answers 302 at once to
  redirect_uri with `code`, `scopes` and `state` (no consent form). Codes are single use and bound
  to client_key and redirect_uri.
- token: form-encoded only; access 2 h, refresh 180 d (current doc, returned in `expires_in` /
  `refresh_expires_in`); the refresh token is rotated, the old one stops working.
- scopes on every call: `video.publish` (direct post, creator_info), `video.upload` (inbox),
  `user.info.basic/profile/stats` (user fields), `video.list` (video/query).
- video/init: post_info / source_info shapes, privacy_level among the creator's options,
  FILE_UPLOAD chunk arithmetic (chunks 5-64 MiB, last up to 128 MiB, files under 5 MiB in one
  chunk, total_chunk_count = floor(video_size / chunk_size), 1..1000), 6 inits per minute per token
  (`inits_per_minute` in the network state).
- chunk PUT: Content-Type video/*, Content-Range `bytes first-last/total` matching the declared
  geometry, chunks in order; 206 for intermediate chunks, 201 for the last.
- uploaded/pulled bytes: type by magic numbers (MP4/MOV/WebM videos; JPEG/WEBP photos, no PNG),
  MP4 duration 3 s .. max_video_post_duration_sec. Failures surface as status FAILED + fail_reason.
- PULL_FROM_URL media is fetched over real HTTP; `verified_url_prefixes` (state) imitates domain
  verification (`url_ownership_unverified`).

Processing (configurable in `sandbox.network_state("tiktok")`): once the media is in, the status is
PROCESSING_UPLOAD / PROCESSING_DOWNLOAD for `processing_seconds` (0.05), then PUBLISH_COMPLETE; the
public post id appears `post_id_delay` seconds (0) after that. `unaudited: True` refuses every
privacy level but SELF_ONLY (`unaudited_client_can_only_post_to_private_accounts`).

Insights (video/query), with m = minutes since the post was published counting the one under way
(`floor((sandbox.now() - publication.at) / 60) + 1`, core.units_under_way):
view_count = 50*m, like_count = 5*m, comment_count = m, share_count = m // 2.
User stats: follower_count 1500, following_count 42, likes_count 9000, video_count = 10 + live posts.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import struct
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from ouipost.posts.media import sniff_mime
from ouipost.sandbox.core import Sandbox, units_under_way

NETWORK = "tiktok"
HOSTS = ("www.tiktok.com", "open.tiktokapis.com", "open-upload.tiktokapis.com")

API = "/open.tiktokapis.com"
MIB = 1024 * 1024
MIN_CHUNK = 5 * MIB
MAX_CHUNK = 64 * MIB
MAX_LAST_CHUNK = 128 * MIB
ACCESS_TTL = 2 * 3600
REFRESH_TTL = 180 * 86400
KNOWN_SCOPES = {
    "user.info.basic", "user.info.profile", "user.info.stats", "video.publish", "video.upload",
    "video.list",
}
PRIVACY_LEVELS = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"]
CREATOR = {
    "open_id": "tt-open-alice",
    "union_id": "tt-union-alice",
    "username": "alice.creates",
    "display_name": "Alice Creates",
    "avatar_url": "https://p16-sign.tiktokcdn-us.com/tos-useast5-avt-0068-tx/alice~c5_168x168.jpeg",
    "bio_description": "Sandbox creator",
    "is_verified": False,
}
USER_FIELDS = {
    "open_id": "user.info.basic", "union_id": "user.info.basic", "avatar_url": "user.info.basic",
    "avatar_url_100": "user.info.basic", "avatar_large_url": "user.info.basic",
    "display_name": "user.info.basic", "username": "user.info.profile",
    "bio_description": "user.info.profile", "profile_deep_link": "user.info.profile",
    "is_verified": "user.info.profile", "follower_count": "user.info.stats",
    "following_count": "user.info.stats", "likes_count": "user.info.stats",
    "video_count": "user.info.stats",
}
VIDEO_FIELDS = {
    "id", "title", "create_time", "share_url", "view_count", "like_count", "comment_count",
    "share_count", "cover_image_url", "video_description", "duration", "height", "width", "embed_html",
    "embed_link",
}


# ---------------------------------------------------------------------------------------------
# Media: the duration a network reads from an MP4 (bluesky's sandbox reads it too).


def mp4_duration(data: bytes) -> float | None:
    """Duration in seconds from an ISO-BMFF file's moov/mvhd box, or None when it has none."""
    box = _find_box(data, 0, len(data), b"moov")
    if box is None:
        return None
    mvhd = _find_box(data, box[0], box[1], b"mvhd")
    if mvhd is None:
        return None
    start = mvhd[0]
    version = data[start]
    try:
        if version == 1:
            timescale, duration = struct.unpack(">IQ", data[start + 20:start + 32])
        else:
            timescale, duration = struct.unpack(">II", data[start + 12:start + 20])
    except struct.error:
        return None
    return duration / timescale if timescale else None


def _find_box(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """(payload start, payload end) of the first box `kind` among the boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, box_kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                return None
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return None
        if box_kind == kind:
            return pos + header, min(pos + size, end)
        pos += size
    return None


# ---------------------------------------------------------------------------------------------
# Answers


def _log_id() -> str:
    return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()


def envelope(data: dict[str, Any] | None = None, *, code: str = "ok", message: str = "",
             status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """TikTok's API envelope, always both keys."""
    body = {"data": data if data is not None else {},
            "error": {"code": code, "message": message, "log_id": _log_id()}}
    return web.json_response(body, status=status, headers=headers)


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description, "log_id": _log_id()}, status=status
    )


def fault_response(kind: str, sandbox: Sandbox) -> web.StreamResponse:
    """TikTok's own answer for a sandbox fault."""
    if kind == "rate_limit":
        return envelope(code="rate_limit_exceeded",
                        message="API rate limit was exceeded, please try again later.", status=429)
    if kind == "expire_token":
        return envelope(code="access_token_invalid",
                        message="The access token is invalid or not found in the request.", status=401)
    return envelope(code="internal_error", message="Something went wrong. Please try again later.",
                    status=500)


def _state(sandbox: Sandbox) -> dict[str, Any]:
    state = sandbox.network_state(NETWORK)
    state.setdefault("processing_seconds", 0.05)
    state.setdefault("post_id_delay", 0.0)
    state.setdefault("unaudited", False)
    state.setdefault("verified_url_prefixes", None)
    state.setdefault("max_video_post_duration_sec", 600)
    state.setdefault("inits_per_minute", 6)
    state.setdefault("publishes", {})
    state.setdefault("inits", {})
    state.setdefault("uploads", {})
    return state


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


class _Refusal(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__("refused")
        self.response = response


def _require(sandbox: Sandbox, request: web.Request, *scopes: str) -> Any:
    """The token's info, or raise a _Refusal with TikTok's answer (invalid token, missing scope)."""
    info = sandbox.token(NETWORK, _bearer(request))
    if info is None:
        raise _Refusal(envelope(code="access_token_invalid",
                                message="The access token is invalid or not found in the request.",
                                status=401))
    missing = [s for s in scopes if s not in info.scopes]
    if missing:
        raise _Refusal(envelope(
            code="scope_not_authorized",
            message=f"The user did not authorize the scope required for completing this request: "
                    f"{','.join(missing)}",
            status=401,
        ))
    return info


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise _Refusal(envelope(code="invalid_params",
                                message="Content-Type must be application/json; charset=UTF-8",
                                status=400))
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Refusal(envelope(code="invalid_params", message="The request body is not a JSON object.",
                                status=400))
    return body


def _guard(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Refusal as refusal:
            return refusal.response

    return wrapped


def _minutes(sandbox: Sandbox, at: float) -> int:
    return units_under_way(sandbox, at, 60)


# ---------------------------------------------------------------------------------------------
# Routes


def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Register TikTok's routes on the sandbox app."""
    state = _state(sandbox)
    tasks: set[asyncio.Task[None]] = set()

    async def cancel_tasks(_app: web.Application) -> None:
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    app.on_cleanup.append(cancel_tasks)

    # OAuth ---------------------------------------------------------------------------------------

    async def authorize(request: web.Request) -> web.StreamResponse:
        q = request.query
        client_key, redirect_uri = q.get("client_key"), q.get("redirect_uri")
        if not client_key or not redirect_uri:
            return web.Response(status=400, text="client_key and redirect_uri are required")
        if not redirect_uri.startswith(("https://", "http://")):
            return web.Response(status=400, text="redirect_uri is not a registered redirect URI")
        params: dict[str, str] = {}
        scopes = [s.strip() for s in q.get("scope", "").split(",") if s.strip()]
        if q.get("response_type") != "code":
            params = {"error": "invalid_request", "error_description": "response_type must be code"}
        elif not scopes or any(s not in KNOWN_SCOPES for s in scopes):
            params = {"error": "invalid_scope", "error_description": "scope is missing or unknown"}
        else:
            granted = state.get("grant_scopes") or scopes
            code = sandbox.new_code(NETWORK, client=client_key, redirect_uri=redirect_uri,
                                    scopes=list(granted), subject=CREATOR["open_id"],
                                    code_challenge=q.get("code_challenge"))
            params = {"code": code, "scopes": ",".join(granted)}
        if "state" in q:
            params["state"] = q["state"]
        sep = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(f"{redirect_uri}{sep}{urlencode(params)}")

    def _issue(subject: str, scopes: list[str], client: str) -> dict[str, Any]:
        access = sandbox.new_token(NETWORK, subject, scopes, ACCESS_TTL, prefix="act.", client=client)
        refresh = sandbox.new_token(NETWORK, subject, scopes, REFRESH_TTL, kind="refresh", prefix="rft.",
                                    client=client, access=access)
        return {
            "open_id": subject, "scope": ",".join(scopes), "access_token": access,
            "expires_in": ACCESS_TTL, "refresh_token": refresh, "refresh_expires_in": REFRESH_TTL,
            "token_type": "Bearer",
        }

    async def token(request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = await request.post()
        client_key, secret = form.get("client_key"), form.get("client_secret")
        if not client_key or not secret:
            return _oauth_error("invalid_client", "Client key or secret is incorrect.", 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            data = sandbox.take_code(NETWORK, str(form.get("code", "")))
            if data is None or data["client"] != client_key:
                return _oauth_error("invalid_grant", "Authorization code is expired or invalid.")
            if data["redirect_uri"] != form.get("redirect_uri"):
                return _oauth_error("invalid_request", "redirect_uri does not match the authorize request.")
            return web.json_response(_issue(data["subject"], data["scopes"], str(client_key)))
        if grant == "refresh_token":
            old = str(form.get("refresh_token", ""))
            info = sandbox.token(NETWORK, old, kind="refresh")
            if info is None or info.extra.get("client") != client_key:
                return _oauth_error("invalid_grant", "Refresh token is invalid or expired.")
            info.revoked = True  # rotated: the old refresh token stops working
            return web.json_response(_issue(info.subject, info.scopes, str(client_key)))
        return _oauth_error("unsupported_grant_type", "grant_type is not supported.")

    async def revoke(request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = await request.post()
        if not form.get("client_key") or not form.get("client_secret"):
            return _oauth_error("invalid_client", "Client key or secret is incorrect.", 401)
        tok = str(form.get("token", ""))
        target = sandbox.tokens.get(tok)
        if target is None or target.network != NETWORK:
            return _oauth_error("invalid_request", "The token is invalid.")
        # Revoking ends the whole grant: this token and every token of the same user and client.
        for info in sandbox.tokens.values():
            if (info.network == NETWORK and info.subject == target.subject
                    and info.extra.get("client") == target.extra.get("client")):
                info.revoked = True
        return web.json_response({})

    # User ----------------------------------------------------------------------------------------

    async def user_info(request: web.Request) -> web.StreamResponse:
        info = _require(sandbox, request)
        fields = [f for f in request.query.get("fields", "").split(",") if f]
        if not fields or any(f not in USER_FIELDS for f in fields):
            return envelope(code="invalid_params", message="fields is missing or has unknown fields",
                            status=400)
        missing = sorted({USER_FIELDS[f] for f in fields} - set(info.scopes))
        if missing:
            return envelope(code="scope_not_authorized",
                            message=f"The user did not authorize the scope: {','.join(missing)}",
                            status=401)
        live = [p for p in sandbox.publications
                if p.network == NETWORK and p.account_id == info.subject and not p.deleted]
        values = dict(CREATOR)
        values.update({
            "avatar_url_100": CREATOR["avatar_url"], "avatar_large_url": CREATOR["avatar_url"],
            "profile_deep_link": f"https://vm.tiktok.com/{CREATOR['username']}/",
            "follower_count": state.get("follower_count", 1500),
            "following_count": state.get("following_count", 42),
            "likes_count": state.get("likes_count", 9000),
            "video_count": 10 + len(live),
        })
        return envelope({"user": {f: values[f] for f in fields}})

    # Publishing ----------------------------------------------------------------------------------

    def _creator_options() -> dict[str, Any]:
        return {
            "creator_avatar_url": CREATOR["avatar_url"], "creator_username": CREATOR["username"],
            "creator_nickname": CREATOR["display_name"],
            "privacy_level_options": list(state.get("privacy_level_options", PRIVACY_LEVELS)),
            "comment_disabled": False, "duet_disabled": False, "stitch_disabled": False,
            "max_video_post_duration_sec": state["max_video_post_duration_sec"],
        }

    async def creator_info(request: web.Request) -> web.StreamResponse:
        _require(sandbox, request, "video.publish")
        return envelope(_creator_options())

    def _check_post_info(post_info: Any, *, photo: bool) -> None:
        if not isinstance(post_info, dict):
            raise _Refusal(envelope(code="invalid_params", message="post_info is required", status=400))
        level = post_info.get("privacy_level")
        options = _creator_options()["privacy_level_options"]
        if level not in PRIVACY_LEVELS:
            raise _Refusal(envelope(code="invalid_params", message="privacy_level is invalid", status=400))
        if level not in options:
            raise _Refusal(envelope(code="privacy_level_option_mismatch",
                                    message="privacy_level is not one of the creator's options",
                                    status=400))
        if state["unaudited"] and level != "SELF_ONLY":
            raise _Refusal(envelope(
                code="unaudited_client_can_only_post_to_private_accounts",
                message="Unaudited clients can only post to private accounts.", status=403))
        title = post_info.get("title", "")
        if not isinstance(title, str):
            raise _Refusal(envelope(code="invalid_params", message="title must be a string", status=400))
        # TikTok counts UTF-16 code units ("runes").
        limit = 90 if photo else 2200
        if len(title.encode("utf-16-le")) // 2 > limit:
            raise _Refusal(envelope(code="invalid_params",
                                    message=f"title is longer than {limit} runes", status=400))
        if photo and len(str(post_info.get("description", "")).encode("utf-16-le")) // 2 > 4000:
            raise _Refusal(envelope(code="invalid_params", message="description is longer than 4000 runes",
                                    status=400))

    def _check_url(url: Any) -> str:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _Refusal(envelope(code="invalid_params", message="media URL is invalid", status=400))
        prefixes = state["verified_url_prefixes"]
        if prefixes is not None and not any(url.startswith(p) for p in prefixes):
            raise _Refusal(envelope(code="url_ownership_unverified",
                                    message="The domain or URL prefix of the media is not verified.",
                                    status=403))
        return url

    def _count_init(token: str) -> None:
        # 6 requests per minute per access token on the init endpoints (`inits_per_minute`).
        now = sandbox.now()
        recent = [t for t in state["inits"].get(token, []) if now - t < 60]
        if len(recent) >= int(state["inits_per_minute"]):
            raise _Refusal(envelope(code="rate_limit_exceeded",
                                    message="API rate limit was exceeded, please try again later.",
                                    status=429))
        recent.append(now)
        state["inits"][token] = recent

    def _new_publish(kind: str, source: str, info: Any, **fields: Any) -> dict[str, Any]:
        prefix = "p_pub_url" if kind == "photo" else ("v_pub_file" if source == "FILE_UPLOAD" else "v_pub_url")
        publish_id = f"{prefix}~v2-1.{secrets.randbelow(10**18):018d}"
        record = {
            "publish_id": publish_id, "kind": kind, "source": source, "open_id": info.subject,
            "created_at": sandbox.now(), "media_done_at": None, "fail_reason": "", "post_id": None,
            "uploaded_bytes": 0, "downloaded_bytes": 0, "inbox": False, **fields,
        }
        state["publishes"][publish_id] = record
        return record

    def _accept_media(record: dict[str, Any], media: list[dict[str, Any]], text: str) -> None:
        """The media is complete and valid: the post now exists on TikTok (moderation pending)."""
        record["media_done_at"] = sandbox.now()
        if record["inbox"]:
            return
        post_id = str(7_300_000_000_000_000_000 + sandbox.next_id())
        record["post_id"] = post_id
        sandbox.publish(NETWORK, record["open_id"], post_id, text, media, publish_id=record["publish_id"],
                        kind=record["kind"], privacy_level=record["post_info"].get("privacy_level"))

    def _check_video(data: bytes) -> str:
        """'' when TikTok accepts the video, else its fail_reason."""
        kind = sniff_mime(data)
        if kind not in ("video/mp4", "video/quicktime", "video/webm"):
            return "file_format_check_failed"
        if kind != "video/webm":
            duration = mp4_duration(data)
            if duration is None:
                return "file_format_check_failed"
            if duration < 3 or duration > state["max_video_post_duration_sec"]:
                return "duration_check_failed"
        return ""

    async def _fetch(url: str, limit: int) -> bytes:
        async with aiohttp.ClientSession() as session, session.get(
            url, timeout=aiohttp.ClientTimeout(total=15)
        ) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            data = await resp.content.read(limit + 1)
            if len(data) > limit:
                raise ValueError("too large")
            return data

    async def _pull(record: dict[str, Any], urls: list[str], text: str) -> None:
        media: list[dict[str, Any]] = []
        for url in urls:
            limit = 20 * MIB if record["kind"] == "photo" else 4096 * MIB
            try:
                data = await _fetch(url, limit)
            except (TimeoutError, aiohttp.ClientError, ValueError):
                record["fail_reason"] = "photo_pull_failed" if record["kind"] == "photo" else "video_pull_failed"
                return
            record["downloaded_bytes"] += len(data)
            if record["kind"] == "photo":
                if sniff_mime(data) not in ("image/jpeg", "image/webp"):
                    record["fail_reason"] = "file_format_check_failed"
                    return
            else:
                reason = _check_video(data)
                if reason:
                    record["fail_reason"] = reason
                    return
            media.append({"url": url, "type": sniff_mime(data), "size": len(data)})
        _accept_media(record, media, text)

    def _spawn(coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def video_init(request: web.Request, *, inbox: bool = False) -> web.StreamResponse:
        info = _require(sandbox, request, "video.upload" if inbox else "video.publish")
        body = await _json_body(request)
        post_info = body.get("post_info") if not inbox else {"privacy_level": "SELF_ONLY", "title": ""}
        if not inbox:
            _check_post_info(post_info, photo=False)
        source_info = body.get("source_info")
        if not isinstance(source_info, dict):
            return envelope(code="invalid_params", message="source_info is required", status=400)
        source = source_info.get("source")
        _count_init(_bearer(request) or "")
        assert isinstance(post_info, dict)
        if source == "FILE_UPLOAD":
            size, chunk, count = (source_info.get(k) for k in ("video_size", "chunk_size", "total_chunk_count"))
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (size, chunk, count)):
                return envelope(code="invalid_params",
                                message="video_size, chunk_size and total_chunk_count must be positive integers",
                                status=400)
            assert isinstance(size, int) and isinstance(chunk, int) and isinstance(count, int)
            problem = _chunk_problem(size, chunk, count)
            if problem:
                return envelope(code="invalid_params", message=problem, status=400)
            record = _new_publish("video", source, info, post_info=post_info, video_size=size,
                                  chunk_size=chunk, total_chunk_count=count, next_chunk=0,
                                  buffer=bytearray(), inbox=inbox)
            upload_token = secrets.token_urlsafe(16)
            upload_id = secrets.token_hex(12)
            state["uploads"][upload_id] = (record["publish_id"], upload_token)
            upload_url = (f"https://open-upload.tiktokapis.com/video/?"
                          f"{urlencode({'upload_id': upload_id, 'upload_token': upload_token})}")
            return envelope({"publish_id": record["publish_id"], "upload_url": upload_url})
        if source == "PULL_FROM_URL":
            url = _check_url(source_info.get("video_url"))
            record = _new_publish("video", source, info, post_info=post_info, inbox=inbox)
            _spawn(_pull(record, [url], str(post_info.get("title", ""))))
            return envelope({"publish_id": record["publish_id"]})
        return envelope(code="invalid_params", message="source must be FILE_UPLOAD or PULL_FROM_URL",
                        status=400)

    async def inbox_init(request: web.Request) -> web.StreamResponse:
        return await video_init(request, inbox=True)

    async def content_init(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        mode = body.get("post_mode")
        if mode not in ("DIRECT_POST", "MEDIA_UPLOAD"):
            return envelope(code="invalid_params", message="post_mode must be DIRECT_POST or MEDIA_UPLOAD",
                            status=400)
        info = _require(sandbox, request, "video.publish" if mode == "DIRECT_POST" else "video.upload")
        if body.get("media_type") != "PHOTO":
            return envelope(code="invalid_params", message="media_type must be PHOTO", status=400)
        post_info = body.get("post_info")
        if mode == "DIRECT_POST":
            _check_post_info(post_info, photo=True)
        elif not isinstance(post_info, dict):
            return envelope(code="invalid_params", message="post_info is required", status=400)
        source_info = body.get("source_info")
        if not isinstance(source_info, dict) or source_info.get("source") != "PULL_FROM_URL":
            return envelope(code="invalid_params", message="photo posts need source PULL_FROM_URL",
                            status=400)
        images = source_info.get("photo_images")
        if not isinstance(images, list) or not 1 <= len(images) <= 35:
            return envelope(code="invalid_params", message="photo_images must hold 1 to 35 URLs", status=400)
        cover = source_info.get("photo_cover_index", 0)
        if not isinstance(cover, int) or not 0 <= cover < len(images):
            return envelope(code="invalid_params", message="photo_cover_index is out of range", status=400)
        urls = [_check_url(u) for u in images]
        _count_init(_bearer(request) or "")
        assert isinstance(post_info, dict)
        record = _new_publish("photo", "PULL_FROM_URL", info, post_info=post_info,
                              inbox=mode == "MEDIA_UPLOAD")
        text = "\n".join(str(post_info.get(k, "")) for k in ("title", "description") if post_info.get(k))
        _spawn(_pull(record, urls, text))
        return envelope({"publish_id": record["publish_id"]})

    async def upload_chunk(request: web.Request) -> web.StreamResponse:
        entry = state["uploads"].get(request.query.get("upload_id", ""))
        if entry is None or entry[1] != request.query.get("upload_token"):
            return envelope(code="invalid_params", message="upload_id or upload_token is invalid", status=404)
        record = state["publishes"][entry[0]]
        if record["media_done_at"] is not None or record["fail_reason"]:
            return envelope(code="invalid_params", message="the upload is already complete", status=400)
        if not request.content_type.startswith("video/") or request.content_type not in (
            "video/mp4", "video/quicktime", "video/webm"
        ):
            return envelope(code="invalid_params",
                            message="Content-Type must be video/mp4, video/quicktime or video/webm",
                            status=400)
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers.get("Content-Range", ""))
        if match is None:
            return envelope(code="invalid_params", message="Content-Range is missing or malformed",
                            status=400)
        first, last, total = (int(g) for g in match.groups())
        index = record["next_chunk"]
        count, chunk, size = record["total_chunk_count"], record["chunk_size"], record["video_size"]
        exp_first = index * chunk
        exp_last = size - 1 if index == count - 1 else exp_first + chunk - 1
        if total != size or first != exp_first or last != exp_last:
            return envelope(
                code="invalid_params",
                message=f"Content-Range must be bytes {exp_first}-{exp_last}/{size} for chunk {index + 1} "
                        f"of {count}", status=400)
        data = await request.read()
        if len(data) != last - first + 1:
            return envelope(code="invalid_params", message="the body length does not match Content-Range",
                            status=400)
        record["buffer"] += data
        record["uploaded_bytes"] = len(record["buffer"])
        record["next_chunk"] = index + 1
        if record["next_chunk"] < count:
            return web.Response(status=206)
        video = bytes(record.pop("buffer"))
        reason = _check_video(video)
        if reason:
            record["fail_reason"] = reason
        else:
            _accept_media(record, [{"type": sniff_mime(video), "size": len(video)}],
                          str(record["post_info"].get("title", "")))
        return web.Response(status=201)

    def _status(record: dict[str, Any]) -> str:
        if record["fail_reason"]:
            return "FAILED"
        pending = "PROCESSING_UPLOAD" if record["source"] == "FILE_UPLOAD" else "PROCESSING_DOWNLOAD"
        done = record["media_done_at"]
        if done is None or sandbox.now() < done + state["processing_seconds"]:
            return pending
        return "SEND_TO_USER_INBOX" if record["inbox"] else "PUBLISH_COMPLETE"

    async def status_fetch(request: web.Request) -> web.StreamResponse:
        info = _require(sandbox, request)
        if not ({"video.publish", "video.upload"} & set(info.scopes)):
            return envelope(code="scope_not_authorized",
                            message="The user did not authorize the scope: video.publish", status=401)
        body = await _json_body(request)
        record = state["publishes"].get(body.get("publish_id"))
        if record is None or record["open_id"] != info.subject:
            return envelope(code="invalid_params", message="publish_id is invalid", status=400)
        status = _status(record)
        ids: list[str] = []
        if status == "PUBLISH_COMPLETE" and record["post_id"] and sandbox.now() >= (
            record["media_done_at"] + state["processing_seconds"] + state["post_id_delay"]
        ):
            ids = [record["post_id"]]
        data: dict[str, Any] = {"status": status, "fail_reason": record["fail_reason"],
                                "publicaly_available_post_id": ids}
        if record["source"] == "FILE_UPLOAD":
            data["uploaded_bytes"] = record["uploaded_bytes"]
        else:
            data["downloaded_bytes"] = record["downloaded_bytes"]
        return envelope(data)

    async def video_query(request: web.Request) -> web.StreamResponse:
        info = _require(sandbox, request, "video.list")
        fields = [f for f in request.query.get("fields", "").split(",") if f]
        if not fields or any(f not in VIDEO_FIELDS for f in fields):
            return envelope(code="invalid_params", message="fields is missing or has unknown fields",
                            status=400)
        body = await _json_body(request)
        ids = (body.get("filters") or {}).get("video_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 20:
            return envelope(code="invalid_params", message="filters.video_ids must hold 1 to 20 ids",
                            status=400)
        videos = []
        for vid in ids:
            pub = sandbox.publication(NETWORK, str(vid))
            if pub is None or pub.account_id != info.subject:
                continue
            m = _minutes(sandbox, pub.at)
            kind = "photo" if pub.extra.get("kind") == "photo" else "video"
            values = {
                "id": pub.remote_id, "title": pub.text.split("\n", 1)[0], "create_time": int(pub.at),
                "share_url": f"https://www.tiktok.com/@{CREATOR['username']}/{kind}/{pub.remote_id}",
                "view_count": 50 * m, "like_count": 5 * m, "comment_count": m, "share_count": m // 2,
                "cover_image_url": "", "video_description": pub.text, "duration": 0, "height": 0,
                "width": 0, "embed_html": "", "embed_link": "",
            }
            videos.append({f: values[f] for f in fields})
        return envelope({"videos": videos, "cursor": 0, "has_more": False})

    routes = [
        ("GET", "/www.tiktok.com/v2/auth/authorize/", authorize),
        ("POST", f"{API}/v2/oauth/token/", token),
        ("POST", f"{API}/v2/oauth/revoke/", revoke),
        ("GET", f"{API}/v2/user/info/", user_info),
        ("POST", f"{API}/v2/post/publish/creator_info/query/", creator_info),
        ("POST", f"{API}/v2/post/publish/video/init/", video_init),
        ("POST", f"{API}/v2/post/publish/inbox/video/init/", inbox_init),
        ("POST", f"{API}/v2/post/publish/content/init/", content_init),
        ("POST", f"{API}/v2/post/publish/status/fetch/", status_fetch),
        ("POST", f"{API}/v2/video/query/", video_query),
        ("PUT", "/open-upload.tiktokapis.com/video/", upload_chunk),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guard(handler))


def _chunk_problem(size: int, chunk: int, count: int) -> str:
    """Why TikTok's media transfer rules refuse this geometry, or '' when they accept it."""
    if size < MIN_CHUNK:
        if chunk != size or count != 1:
            return "videos under 5 MB must be uploaded as a single chunk (chunk_size = video_size)"
        return ""
    if chunk > size:
        return "chunk_size cannot exceed video_size"
    if size > MAX_CHUNK and chunk == size:
        return "videos over 64 MB must be uploaded in several chunks"
    if not MIN_CHUNK <= chunk <= MAX_CHUNK and chunk != size:
        return "chunk_size must be between 5 MB and 64 MB"
    if count != size // chunk:
        return f"total_chunk_count must be floor(video_size / chunk_size) = {size // chunk}"
    if not 1 <= count <= 1000:
        return "total_chunk_count must be between 1 and 1000"
    if size - (count - 1) * chunk > MAX_LAST_CHUNK:
        return "the last chunk cannot exceed 128 MB"
    return ""


__all__ = ["HOSTS", "NETWORK", "envelope", "fault_response", "mp4_duration", "setup"]
