"""Sandbox imitation of Google OAuth and the YouTube Data API v3 / Analytics v2 (platforms.md section 6).

Hosts: `accounts.google.com` (consent), `oauth2.googleapis.com` (token, revoke), `www.googleapis.com`
(Data API and the resumable upload endpoint) and `youtubeanalytics.googleapis.com`.

The Google account the consent page grants: one channel, id `UCsandboxAliceChannel0001`, title
"Alice Makes Videos", handle `@alicemakes`.

What it enforces:
- consent: client_id, redirect_uri, response_type=code, scopes; answers 302 at once with `code`,
  `scope` and `state`. A `code_challenge` (S256 or plain) binds the code to its `code_verifier`.
  A refresh token is issued only with access_type=offline (Google's rule); prompt=consent is what
  makes Google issue one again on later consents, which the sandbox does not track.
- token: code single use, bound to client_id and redirect_uri; access tokens live 3599 s; refresh
  tokens are not rotated; a revoked refresh token answers 400 invalid_grant.
- scopes per method (channels/videos.list need youtube.readonly|youtube|youtube.force-ssl,
  videos.insert youtube.upload|youtube|youtube.force-ssl, videos.delete youtube|youtube.force-ssl,
  commentThreads.insert youtube.force-ssl, Analytics yt-analytics.readonly): 403
  insufficientPermissions otherwise.
- videos.insert resumable: uploadType=resumable, `part` covering the body, title required,
  <=100 characters, description <=5000 bytes, no < or >, privacyStatus, publishAt only with private,
  X-Upload-Content-Length/-Type (video/* or application/octet-stream). 200 + Location.
- session PUTs: `Content-Range: bytes a-b/N` (a = bytes already received, chunks a multiple of
  256 KiB except the last) or `bytes */N` (status probe); 308 + `Range: bytes=0-last` while
  incomplete, 200 + the video resource at the end; unknown session 404, expired session 410.
- quota per project (client_id) per Pacific day: `videos.insert` has its own bucket of 100 calls
  (current doc), other calls spend units from 10,000 (list 1, delete 50, commentThreads.insert 50):
  403 quotaExceeded.
- commentThreads.insert (`POST /youtube/v3/commentThreads?part=snippet`, a top-level comment): only
  youtube.force-ssl will do (youtube.upload, youtube.readonly or youtube are not enough: 403
  insufficientPermissions). `snippet.channelId` and `snippet.videoId` required (400
  channelOrVideoIdMissing; a channel other than the sandbox's: 404 channelNotFound), the video must
  exist (404 videoNotFound) and take comments (403 commentsDisabled: videos made for kids, as on
  YouTube, and those the `comments_disabled` knob names), `textOriginal` 1-10,000 characters (400
  commentTextRequired / commentTextTooLong). Answers the commentThread resource (thread id = its top
  comment's id, `Ugz...4AaABAg`). Read back with commentThreads.list (`videoId` or `id`, newest
  first, maxResults 1-100, default 20); a video's statistics.commentCount counts them.

Knobs in `sandbox.network_state("youtube")`: `processing_seconds` (0.05) from upload to
processed; `unverified_project` (False) locks every upload to private; `session_ttl` (7 days);
`truncate_next_chunk` (bytes: the next chunk PUT keeps only that many bytes, as when a connection
delivers part of a chunk, and answers 308 with the shorter Range); `uploads_per_day` (None) for
the per-channel `uploadLimitExceeded`; `insert_calls_per_day` (100), `daily_units` (10,000).
`rate_limit_status` (403) picks 403 rateLimitExceeded or 429 for the rate-limit fault.
`comments_disabled` (False): True, or a list of video ids, whose comments are turned off.

Insights, with m = minutes since the upload finished counting the one under way
(`floor((now - publication.at) / 60) + 1`, core.units_under_way):
viewCount = 20*m, likeCount = 2*m, commentCount = m // 5 + the comment threads written through the API,
favoriteCount = 0 (strings, as Google sends them; the audience's comments are counted, never listed).
Analytics over [startDate, endDate] clipped to [upload, now] gives the difference of the same formulas
(without the written comments) at the ends of that window, plus shares = m // 10 and
estimatedMinutesWatched = 10*m.
Channel statistics: subscriberCount 1200, viewCount 50000, videoCount 8 + live videos.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from ouipost.posts.media import sniff_mime
from ouipost.sandbox.core import Sandbox, TokenInfo, units_under_way

NETWORK = "youtube"
HOSTS = ("accounts.google.com", "oauth2.googleapis.com", "www.googleapis.com",
         "youtubeanalytics.googleapis.com")

SCOPE = "https://www.googleapis.com/auth/"
READ_SCOPES = {f"{SCOPE}youtube.readonly", f"{SCOPE}youtube", f"{SCOPE}youtube.force-ssl"}
UPLOAD_SCOPES = {f"{SCOPE}youtube.upload", f"{SCOPE}youtube", f"{SCOPE}youtube.force-ssl"}
MANAGE_SCOPES = {f"{SCOPE}youtube", f"{SCOPE}youtube.force-ssl"}
COMMENT_SCOPES = {f"{SCOPE}youtube.force-ssl"}  # commentThreads.insert lists this scope alone
COMMENT_LIMIT = 10_000  # characters of textOriginal
ANALYTICS_SCOPES = {f"{SCOPE}yt-analytics.readonly", f"{SCOPE}yt-analytics-monetary.readonly"}
KNOWN_SCOPES = READ_SCOPES | UPLOAD_SCOPES | ANALYTICS_SCOPES | {
    "openid", "email", "profile", f"{SCOPE}userinfo.email", f"{SCOPE}userinfo.profile",
    f"{SCOPE}youtubepartner",
}
ACCESS_TTL = 3599
CHUNK_UNIT = 256 * 1024
PACIFIC = ZoneInfo("America/Los_Angeles")
CHANNEL = {
    "id": "UCsandboxAliceChannel0001",
    "title": "Alice Makes Videos",
    "customUrl": "@alicemakes",
    "thumbnail": "https://yt3.ggpht.com/sandbox-alice=s88-c-k-c0x00ffffff-no-rj",
}
GOOGLE_SUBJECT = "109876543210987654321"


def google_error(status: int, reason: str, message: str, *, domain: str = "global",
                 headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    """Google's JSON error body: {"error": {"code", "message", "errors": [...], "status"}}."""
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
             410: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
    item = {"message": message, "domain": domain, "reason": reason, **extra}
    body = {"error": {"code": status, "message": message, "errors": [item],
                      "status": names.get(status, "UNKNOWN")}}
    return web.json_response(body, status=status, headers=headers)


def _auth_error() -> web.Response:
    return google_error(
        401, "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential.",
        location="Authorization", locationType="header",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
    )


def fault_response(kind: str, sandbox: Sandbox, wait: float | None = None) -> web.StreamResponse:
    """Google's own answers for sandbox faults (a rate limit with a `wait` is the 429 whose
    Retry-After says it, in whole seconds rounded up)."""
    if kind == "rate_limit":
        if wait is not None or _state(sandbox)["rate_limit_status"] == 429:
            retry_after = str(math.ceil(wait)) if wait is not None else "30"
            return google_error(429, "userRateLimitExceeded", "User Rate Limit Exceeded",
                                domain="usageLimits", headers={"Retry-After": retry_after})
        return google_error(403, "rateLimitExceeded",
                            "The request cannot be completed because you have exceeded your quota.",
                            domain="youtube.quota")
    if kind == "expire_token":
        return _auth_error()
    return google_error(503, "backendError", "Backend Error")


def _state(sandbox: Sandbox) -> dict[str, Any]:
    state = sandbox.network_state(NETWORK)
    for key, value in {
        "processing_seconds": 0.05, "unverified_project": False, "session_ttl": 7 * 86400.0,
        "truncate_next_chunk": None, "uploads_per_day": None, "insert_calls_per_day": 100,
        "daily_units": 10_000, "rate_limit_status": 403, "comments_disabled": False,
    }.items():
        state.setdefault(key, value)
    state.setdefault("sessions", {})
    state.setdefault("videos", {})
    state.setdefault("quota", {})
    state.setdefault("comments", {})  # video id -> comment threads, oldest first
    return state


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


class _Refusal(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__("refused")
        self.response = response


def _guard(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Refusal as refusal:
            return refusal.response

    return wrapped


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stat_values(m: int) -> dict[str, int]:
    return {"views": 20 * m, "likes": 2 * m, "comments": m // 5, "shares": m // 10,
            "estimatedMinutesWatched": 10 * m}


def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Register Google OAuth, YouTube Data and Analytics routes on the sandbox app."""
    state = _state(sandbox)

    def require(request: web.Request, allowed: set[str]) -> TokenInfo:
        info = sandbox.token(NETWORK, _bearer(request))
        if info is None:
            raise _Refusal(_auth_error())
        if not allowed & set(info.scopes):
            raise _Refusal(google_error(403, "insufficientPermissions", "Insufficient Permission",
                                        domain="global"))
        return info

    def spend(info: TokenInfo, units: int, *, insert: bool = False) -> None:
        """Quota per project (OAuth client) per Pacific day."""
        day = datetime.fromtimestamp(sandbox.now(), PACIFIC).date().isoformat()
        key = (info.extra.get("client", ""), day)
        used = state["quota"].setdefault(key, {"units": 0, "inserts": 0})
        if insert:
            if used["inserts"] + 1 > state["insert_calls_per_day"]:
                raise _Refusal(google_error(
                    403, "quotaExceeded", "The request cannot be completed because you have exceeded your "
                    "<a href=\"/youtube/v3/getting-started#quota\">quota</a>.", domain="youtube.quota"))
            used["inserts"] += 1
            return
        if used["units"] + units > state["daily_units"]:
            raise _Refusal(google_error(
                403, "quotaExceeded", "The request cannot be completed because you have exceeded your quota.",
                domain="youtube.quota"))
        used["units"] += units

    # OAuth ---------------------------------------------------------------------------------------

    async def consent(request: web.Request) -> web.StreamResponse:
        q = request.query
        client_id, redirect_uri = q.get("client_id"), q.get("redirect_uri")
        if not client_id or not redirect_uri:
            return web.Response(status=400, text="Error 400: invalid_request (Missing required parameter)")
        scopes = q.get("scope", "").split()
        params: dict[str, str]
        if q.get("response_type") != "code":
            params = {"error": "unsupported_response_type"}
        elif not scopes or any(s not in KNOWN_SCOPES for s in scopes):
            params = {"error": "invalid_scope"}
        elif q.get("code_challenge") and q.get("code_challenge_method", "plain") not in ("S256", "plain"):
            params = {"error": "invalid_request"}
        else:
            granted = state.get("grant_scopes") or scopes
            code = sandbox.new_code(
                NETWORK, client=client_id, redirect_uri=redirect_uri, scopes=list(granted),
                offline=q.get("access_type") == "offline", challenge=q.get("code_challenge"),
                challenge_method=q.get("code_challenge_method", "plain"),
            )
            params = {"code": code, "scope": " ".join(granted)}
        if "state" in q:
            params["state"] = q["state"]
        sep = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(f"{redirect_uri}{sep}{urlencode(params)}")

    async def token(request: web.Request) -> web.StreamResponse:
        if request.content_type == "application/json":
            form: dict[str, Any] = await request.json()
        elif request.content_type == "application/x-www-form-urlencoded":
            form = dict(await request.post())
        else:
            return _oauth_error("invalid_request", "Invalid content type.")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if not client_id or not secret:
            return _oauth_error("invalid_client", "The OAuth client was not found.", 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            data = sandbox.take_code(NETWORK, str(form.get("code", "")))
            if data is None or data["client"] != client_id:
                return _oauth_error("invalid_grant", "Malformed auth code.")
            if data["redirect_uri"] != form.get("redirect_uri"):
                return _oauth_error("redirect_uri_mismatch", "Bad Request")
            if data["challenge"]:
                verifier = str(form.get("code_verifier", ""))
                expected = verifier if data["challenge_method"] == "plain" else base64.urlsafe_b64encode(
                    hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if not verifier or expected != data["challenge"]:
                    return _oauth_error("invalid_grant", "Invalid code verifier.")
            access = sandbox.new_token(NETWORK, GOOGLE_SUBJECT, data["scopes"], ACCESS_TTL, prefix="ya29.",
                                       client=client_id)
            body: dict[str, Any] = {"access_token": access, "expires_in": ACCESS_TTL,
                                    "scope": " ".join(data["scopes"]), "token_type": "Bearer"}
            if data["offline"]:
                body["refresh_token"] = sandbox.new_token(NETWORK, GOOGLE_SUBJECT, data["scopes"], None,
                                                          kind="refresh", prefix="1//", client=client_id)
            return web.json_response(body)
        if grant == "refresh_token":
            info = sandbox.token(NETWORK, str(form.get("refresh_token", "")), kind="refresh")
            if info is None or info.extra.get("client") != client_id:
                return _oauth_error("invalid_grant", "Token has been expired or revoked.")
            access = sandbox.new_token(NETWORK, info.subject, info.scopes, ACCESS_TTL, prefix="ya29.",
                                       client=client_id)
            # Google does not rotate refresh tokens: no refresh_token in this answer.
            return web.json_response({"access_token": access, "expires_in": ACCESS_TTL,
                                      "scope": " ".join(info.scopes), "token_type": "Bearer"})
        return _oauth_error("unsupported_grant_type", "Invalid grant_type.")

    async def revoke(request: web.Request) -> web.StreamResponse:
        tok = request.query.get("token")
        if not tok and request.content_type == "application/x-www-form-urlencoded":
            tok = str((await request.post()).get("token", ""))
        target = sandbox.tokens.get(tok or "")
        if target is None or target.network != NETWORK or target.revoked:
            return _oauth_error("invalid_token", "Token expired or revoked")
        # Revoking any token of a grant revokes the grant: all its tokens for that client.
        for info in sandbox.tokens.values():
            if (info.network == NETWORK and info.subject == target.subject
                    and info.extra.get("client") == target.extra.get("client")):
                info.revoked = True
        return web.json_response({})

    # Data API ------------------------------------------------------------------------------------

    def live_videos() -> list[Any]:
        return [p for p in sandbox.publications if p.network == NETWORK and not p.deleted]

    async def channels(request: web.Request) -> web.StreamResponse:
        info = require(request, READ_SCOPES)
        spend(info, 1)
        parts = [p for p in request.query.get("part", "").split(",") if p]
        if not parts or any(p not in ("id", "snippet", "statistics", "contentDetails", "status") for p in parts):
            return google_error(400, "unknownPart", "'part' is missing or has unknown values",
                                domain="youtube.part")
        if request.query.get("mine") != "true" and request.query.get("id") != CHANNEL["id"]:
            return web.json_response({"kind": "youtube#channelListResponse", "etag": secrets.token_hex(8),
                                      "pageInfo": {"totalResults": 0, "resultsPerPage": 5}, "items": []})
        item: dict[str, Any] = {"kind": "youtube#channel", "etag": secrets.token_hex(8), "id": CHANNEL["id"]}
        if "snippet" in parts:
            item["snippet"] = {"title": CHANNEL["title"], "description": "", "customUrl": CHANNEL["customUrl"],
                               "publishedAt": "2019-04-01T10:00:00Z",
                               "thumbnails": {"default": {"url": CHANNEL["thumbnail"], "width": 88,
                                                          "height": 88}}}
        if "statistics" in parts:
            item["statistics"] = {"viewCount": "50000", "subscriberCount": "1200",
                                  "hiddenSubscriberCount": False, "videoCount": str(8 + len(live_videos()))}
        return web.json_response({"kind": "youtube#channelListResponse", "etag": secrets.token_hex(8),
                                  "pageInfo": {"totalResults": 1, "resultsPerPage": 5}, "items": [item]})

    def check_metadata(body: Any, parts: list[str]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Refusal(google_error(400, "parseError", "Parse Error"))
        extra = [k for k in body if k not in parts]
        if extra:
            raise _Refusal(google_error(400, "unexpectedPart", f"The part parameter does not include {extra[0]}",
                                        domain="youtube.part"))
        snippet = body.get("snippet") or {}
        title = snippet.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > 100 or re.search("[<>]", title):
            raise _Refusal(google_error(400, "invalidTitle", "The request metadata specifies an invalid or "
                                        "empty video title.", domain="youtube.video"))
        description = snippet.get("description", "")
        if (not isinstance(description, str) or len(description.encode()) > 5000
                or re.search("[<>]", description)):
            raise _Refusal(google_error(400, "invalidDescription", "The request metadata specifies an invalid "
                                        "video description.", domain="youtube.video"))
        tags = snippet.get("tags", [])
        if not isinstance(tags, list) or sum(len(str(t)) for t in tags) > 500:
            raise _Refusal(google_error(400, "invalidTags", "The request metadata specifies invalid video "
                                        "keywords.", domain="youtube.video"))
        category = snippet.get("categoryId", "22")
        if not str(category).isdigit():
            raise _Refusal(google_error(400, "invalidCategoryId", "The snippet.categoryId property specifies "
                                        "an invalid category ID.", domain="youtube.video"))
        status = body.get("status") or {}
        privacy = status.get("privacyStatus", "public")
        if privacy not in ("public", "unlisted", "private"):
            raise _Refusal(google_error(400, "invalidVideoMetadata", "The request metadata is invalid.",
                                        domain="youtube.video"))
        if status.get("publishAt") and privacy != "private":
            raise _Refusal(google_error(400, "invalidPublishAt", "The request metadata specifies an invalid "
                                        "scheduled publishing time.", domain="youtube.video"))
        return {"snippet": {**snippet, "categoryId": str(category)}, "status": {**status, "privacyStatus": privacy}}

    async def insert(request: web.Request) -> web.StreamResponse:
        if request.query.get("uploadType") != "resumable":
            return google_error(400, "invalidParameter", "uploadType must be resumable in the sandbox",
                                domain="global")
        info = require(request, UPLOAD_SCOPES)
        parts = [p for p in request.query.get("part", "").split(",") if p]
        if not parts or any(p not in ("snippet", "status", "recordingDetails", "localizations") for p in parts):
            return google_error(400, "unknownPart", "'part' is missing or has unknown values",
                                domain="youtube.part")
        try:
            length = int(request.headers.get("X-Upload-Content-Length", ""))
        except ValueError:
            return google_error(400, "mediaBodyRequired", "X-Upload-Content-Length is required.",
                                domain="youtube.video")
        mime = request.headers.get("X-Upload-Content-Type", "")
        if not (mime.startswith("video/") or mime == "application/octet-stream") or length <= 0:
            return google_error(400, "invalidVideoMetadata", "The upload is not a video.", domain="youtube.video")
        if not request.content_type.startswith("application/json"):
            return google_error(400, "parseError", "The metadata must be application/json.")
        meta = check_metadata(await request.json(), parts)
        limit = state["uploads_per_day"]
        if limit is not None:
            today = [v for v in state["videos"].values() if sandbox.now() - v["uploaded_at"] < 86400]
            if len(today) >= limit:
                return google_error(400, "uploadLimitExceeded", "The user has exceeded the number of videos "
                                    "they may upload.", domain="youtube.video")
        spend(info, 1, insert=True)
        upload_id = "AUMG" + secrets.token_urlsafe(30)
        state["sessions"][upload_id] = {
            "length": length, "mime": mime, "meta": meta, "received": bytearray(), "created": sandbox.now(),
            "video_id": None, "client": info.extra.get("client"), "notify": request.query.get(
                "notifySubscribers", "true"),
        }
        location = ("https://www.googleapis.com/upload/youtube/v3/videos?"
                    + urlencode({"uploadType": "resumable", "part": ",".join(parts), "upload_id": upload_id}))
        return web.Response(status=200, headers={"Location": location, "X-GUploader-UploadID": upload_id})

    def video_resource(video_id: str, parts: list[str]) -> dict[str, Any]:
        video = state["videos"][video_id]
        pub = sandbox.publication(NETWORK, video_id)
        item: dict[str, Any] = {"kind": "youtube#video", "etag": secrets.token_hex(8), "id": video_id}
        processed = sandbox.now() >= video["uploaded_at"] + state["processing_seconds"]
        if "snippet" in parts:
            item["snippet"] = {**video["meta"]["snippet"], "publishedAt": _rfc3339(video["uploaded_at"]),
                               "channelId": CHANNEL["id"], "channelTitle": CHANNEL["title"]}
        if "status" in parts:
            upload_status = "uploaded"
            if processed:
                upload_status = "failed" if video["invalid"] else "processed"
            item["status"] = {**video["meta"]["status"], "uploadStatus": upload_status,
                              "license": "youtube", "embeddable": True}
            if upload_status == "failed":
                item["status"]["failureReason"] = "invalidFile"
        if "processingDetails" in parts:
            proc = "processing"
            if processed:
                proc = "failed" if video["invalid"] else "succeeded"
            item["processingDetails"] = {"processingStatus": proc}
            if proc == "failed":
                item["processingDetails"]["processingFailureReason"] = "invalidFile"
        if "statistics" in parts and pub is not None:
            v = _stat_values(units_under_way(sandbox, pub.at, 60))
            comments = v["comments"] + len(state["comments"].get(video_id, []))
            item["statistics"] = {"viewCount": str(v["views"]), "likeCount": str(v["likes"]),
                                  "favoriteCount": "0", "commentCount": str(comments)}
        return item

    async def upload_put(request: web.Request) -> web.StreamResponse:
        session = state["sessions"].get(request.query.get("upload_id", ""))
        if session is None:
            return google_error(404, "notFound", "Not Found")
        if sandbox.now() - session["created"] > state["session_ttl"]:
            return google_error(410, "uploadExpired", "The upload session has expired.")
        # The session URI itself is the credential (Google does not re-check the bearer token here).
        length = session["length"]
        received = session["received"]
        content_range = request.headers.get("Content-Range", "")
        data = await request.read()

        def answer_incomplete() -> web.Response:
            headers = {"Range": f"bytes=0-{len(received) - 1}"} if received else {}
            return web.Response(status=308, headers=headers)

        if session["video_id"] is not None:
            return web.json_response(video_resource(session["video_id"], ["snippet", "status"]), status=200)
        if re.fullmatch(rf"bytes \*/{length}", content_range):
            if data:
                return google_error(400, "badRequest", "A status query must have an empty body.")
            return answer_incomplete()
        if content_range:
            match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", content_range)
            if match is None:
                return google_error(400, "badRequest", "Content-Range is malformed.")
            first, last, total = (int(g) for g in match.groups())
        else:
            first, last, total = 0, len(data) - 1, len(data)
        if total != length:
            return google_error(400, "badRequest", f"The declared total {total} differs from "
                                f"X-Upload-Content-Length {length}.")
        if len(data) != last - first + 1:
            return google_error(400, "badRequest", "The body length does not match Content-Range.")
        if first != len(received):
            return google_error(400, "badRequest", f"Content-Range must start at byte {len(received)}.")
        if last + 1 < length and len(data) % CHUNK_UNIT:
            return google_error(400, "badRequest", "Chunks other than the last must be a multiple of 256 KiB.")
        keep = state["truncate_next_chunk"]
        if keep is not None:
            state["truncate_next_chunk"] = None
            data = data[:keep]
        received += data
        if len(received) < length:
            return answer_incomplete()
        video_bytes = bytes(received)
        session["received"] = bytearray()  # the upload is done; keep memory small
        video_id = secrets.token_urlsafe(8)[:11].replace("-", "x").replace("_", "y")
        meta = session["meta"]
        if state["unverified_project"]:
            meta["status"]["privacyStatus"] = "private"
        kind = sniff_mime(video_bytes)
        state["videos"][video_id] = {"meta": meta, "uploaded_at": sandbox.now(),
                                     "invalid": kind is None or not kind.startswith("video/"),
                                     "size": len(video_bytes)}
        session["video_id"] = video_id
        snippet = meta["snippet"]
        sandbox.publish(NETWORK, CHANNEL["id"], video_id, f"{snippet['title']}\n{snippet.get('description', '')}",
                        [{"type": kind, "size": len(video_bytes)}], privacy=meta["status"]["privacyStatus"],
                        title=snippet["title"])
        return web.json_response(video_resource(video_id, ["snippet", "status"]), status=200)

    async def videos_list(request: web.Request) -> web.StreamResponse:
        info = require(request, READ_SCOPES)
        spend(info, 1)
        parts = [p for p in request.query.get("part", "").split(",") if p]
        allowed = ("id", "snippet", "status", "processingDetails", "statistics", "contentDetails")
        if not parts or any(p not in allowed for p in parts):
            return google_error(400, "unknownPart", "'part' is missing or has unknown values",
                                domain="youtube.part")
        ids = [i for i in request.query.get("id", "").split(",") if i]
        if len(ids) > 50:
            return google_error(400, "invalidParameter", "Too many ids.")
        items = [video_resource(i, parts) for i in ids
                 if i in state["videos"] and sandbox.publication(NETWORK, i) is not None]
        return web.json_response({"kind": "youtube#videoListResponse", "etag": secrets.token_hex(8),
                                  "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
                                  "items": items})

    async def videos_delete(request: web.Request) -> web.StreamResponse:
        info = require(request, MANAGE_SCOPES)
        spend(info, 50)
        video_id = request.query.get("id", "")
        pub = sandbox.publication(NETWORK, video_id)
        if pub is None:
            return google_error(404, "videoNotFound", "The video that you are trying to delete cannot be found.",
                                domain="youtube.video")
        pub.deleted = True
        return web.Response(status=204)

    # Comments ------------------------------------------------------------------------------------

    def comment_error(status: int, reason: str, message: str) -> _Refusal:
        return _Refusal(google_error(status, reason, message, domain="youtube.commentThread"))

    def commentable(video_id: str) -> None:
        """404 videoNotFound for a video that is not (or no longer) there, 403 commentsDisabled."""
        if video_id not in state["videos"] or sandbox.publication(NETWORK, video_id) is None:
            raise comment_error(404, "videoNotFound", "The video identified by the <code><a href=\"/youtube/v3/"
                                "docs/commentThreads/list#videoId\">videoId</a></code> parameter could not be found.")
        disabled = state["comments_disabled"]
        made_for_kids = bool(state["videos"][video_id]["meta"]["status"].get("selfDeclaredMadeForKids"))
        if disabled is True or (isinstance(disabled, list) and video_id in disabled) or made_for_kids:
            raise comment_error(403, "commentsDisabled", "The video identified by the <code><a href=\"/youtube/"
                                "v3/docs/commentThreads/list#videoId\">videoId</a></code> parameter has disabled "
                                "comments.")

    def check_parts(request: web.Request) -> None:
        parts = [p for p in request.query.get("part", "").split(",") if p]
        if "snippet" not in parts or any(p not in ("id", "snippet", "replies") for p in parts):
            raise _Refusal(google_error(400, "unknownPart", "'part' is missing or has unknown values",
                                        domain="youtube.part"))

    async def comment_threads_insert(request: web.Request) -> web.StreamResponse:
        info = require(request, COMMENT_SCOPES)
        check_parts(request)
        try:
            body = await request.json()
        except ValueError:
            body = None
        snippet = body.get("snippet") if isinstance(body, dict) else None
        if not isinstance(snippet, dict):
            raise comment_error(400, "invalidCommentThreadMetadata", "The request metadata is invalid.")
        channel_id, video_id = snippet.get("channelId"), snippet.get("videoId")
        if not channel_id or not video_id:
            raise comment_error(400, "channelOrVideoIdMissing", "Each comment thread must be linked to a video. "
                                "Make sure the resource specifies values for both the snippet.channelId and "
                                "snippet.videoId properties.")
        if channel_id != CHANNEL["id"]:
            raise comment_error(404, "channelNotFound", "The specified channel could not be found.")
        top = snippet.get("topLevelComment")
        top_snippet = top.get("snippet") if isinstance(top, dict) else None
        text = top_snippet.get("textOriginal") if isinstance(top_snippet, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise comment_error(400, "commentTextRequired", "The comment resource that is being inserted must "
                                "specify a value for the snippet.topLevelComment.snippet.textOriginal property. "
                                "Comments cannot be empty.")
        if len(text) > COMMENT_LIMIT:
            raise comment_error(400, "commentTextTooLong", "The comment resource that is being inserted contains "
                                "too many characters in the snippet.topLevelComment.snippet.textOriginal property.")
        commentable(str(video_id))
        spend(info, 50)
        comment_id = "Ugz" + secrets.token_urlsafe(12)[:16] + "4AaABAg"
        stamp = _rfc3339(sandbox.now())
        display = html.escape(text).replace("\n", "<br>")
        thread = {
            "kind": "youtube#commentThread", "id": comment_id,
            "snippet": {
                "channelId": channel_id, "videoId": video_id,
                "topLevelComment": {"kind": "youtube#comment", "id": comment_id, "snippet": {
                    "channelId": channel_id, "videoId": video_id, "textDisplay": display, "textOriginal": text,
                    "authorDisplayName": CHANNEL["customUrl"], "authorProfileImageUrl": CHANNEL["thumbnail"],
                    "authorChannelUrl": f"http://www.youtube.com/{CHANNEL['customUrl']}",
                    "authorChannelId": {"value": CHANNEL["id"]}, "canRate": True, "viewerRating": "none",
                    "likeCount": 0, "publishedAt": stamp, "updatedAt": stamp}},
                "canReply": True, "totalReplyCount": 0, "isPublic": True,
            },
        }
        state["comments"].setdefault(str(video_id), []).append(thread)
        return web.json_response({**thread, "etag": secrets.token_hex(8)})

    async def comment_threads_list(request: web.Request) -> web.StreamResponse:
        info = require(request, READ_SCOPES)
        check_parts(request)
        q = request.query
        filters = [name for name in ("videoId", "id", "allThreadsRelatedToChannelId") if q.get(name)]
        if len(filters) != 1 or filters[0] == "allThreadsRelatedToChannelId":
            return google_error(400, "missingRequiredParameter", "Specify exactly one of videoId or id "
                                "(allThreadsRelatedToChannelId is not imitated).")
        try:
            limit = int(q.get("maxResults", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return google_error(400, "invalidParameter", "maxResults must be 1 to 100.")
        spend(info, 1)
        if filters[0] == "videoId":
            commentable(q["videoId"])
            threads = state["comments"].get(q["videoId"], [])
        else:
            wanted = set(q["id"].split(","))
            threads = [t for video_id, items in state["comments"].items() for t in items
                       if t["id"] in wanted and sandbox.publication(NETWORK, video_id) is not None]
        items = [{**t, "etag": secrets.token_hex(8)} for t in reversed(threads)][:limit]  # order=time
        return web.json_response({"kind": "youtube#commentThreadListResponse", "etag": secrets.token_hex(8),
                                  "pageInfo": {"totalResults": len(items), "resultsPerPage": limit},
                                  "items": items})

    async def reports(request: web.Request) -> web.StreamResponse:
        require(request, ANALYTICS_SCOPES)
        q = request.query
        if q.get("ids") not in ("channel==MINE", f"channel=={CHANNEL['id']}"):
            return google_error(400, "invalid", "Invalid value for ids.")
        try:
            start = date.fromisoformat(q.get("startDate", ""))
            end = date.fromisoformat(q.get("endDate", ""))
        except ValueError:
            return google_error(400, "required", "startDate and endDate (YYYY-MM-DD) are required.")
        if start > end:
            return google_error(400, "badRequest", "startDate is after endDate.")
        metrics = [m for m in q.get("metrics", "").split(",") if m]
        known = ("views", "likes", "comments", "shares", "estimatedMinutesWatched")
        if not metrics or any(m not in known for m in metrics):
            return google_error(400, "badRequest", "Unknown or missing metrics.")
        dims = q.get("dimensions", "")
        if dims not in ("", "day"):
            return google_error(400, "badRequest", "The sandbox supports no dimension or dimensions=day.")
        filt = q.get("filters", "")
        pubs = live_videos()
        if filt:
            match = re.fullmatch(r"video==([\w-]+)", filt)
            if match is None:
                return google_error(400, "badRequest", "Unsupported filter.")
            pubs = [p for p in pubs if p.remote_id == match.group(1)]
        now = sandbox.now()

        def window(day_from: date, day_to: date) -> list[int]:
            lo = datetime(day_from.year, day_from.month, day_from.day, tzinfo=UTC).timestamp()
            hi = (datetime(day_to.year, day_to.month, day_to.day, tzinfo=UTC) + timedelta(days=1)).timestamp()
            totals = dict.fromkeys(metrics, 0)
            for pub in pubs:
                a, b = max(lo, pub.at), min(hi, now)
                if b <= a:
                    continue
                # The totals at each end of the window, counting the minute under way (as the
                # statistics do); nothing before the upload.
                upper = _stat_values(int((b - pub.at) // 60) + 1)
                lower = _stat_values(int((a - pub.at) // 60) + 1 if a > pub.at else 0)
                for m in metrics:
                    totals[m] += upper[m] - lower[m]
            return [totals[m] for m in metrics]

        headers = [{"name": m, "columnType": "METRIC", "dataType": "INTEGER"} for m in metrics]
        if dims == "day":
            headers.insert(0, {"name": "day", "columnType": "DIMENSION", "dataType": "STRING"})
            rows: list[list[Any]] = []
            day = start
            while day <= end:
                rows.append([day.isoformat(), *window(day, day)])
                day += timedelta(days=1)
        else:
            rows = [window(start, end)]
        return web.json_response({"kind": "youtubeAnalytics#resultTable", "columnHeaders": headers, "rows": rows})

    routes = [
        ("GET", "/accounts.google.com/o/oauth2/v2/auth", consent),
        ("POST", "/oauth2.googleapis.com/token", token),
        ("POST", "/oauth2.googleapis.com/revoke", revoke),
        ("GET", "/www.googleapis.com/youtube/v3/channels", channels),
        ("POST", "/www.googleapis.com/upload/youtube/v3/videos", insert),
        ("PUT", "/www.googleapis.com/upload/youtube/v3/videos", upload_put),
        ("GET", "/www.googleapis.com/youtube/v3/videos", videos_list),
        ("DELETE", "/www.googleapis.com/youtube/v3/videos", videos_delete),
        ("POST", "/www.googleapis.com/youtube/v3/commentThreads", comment_threads_insert),
        ("GET", "/www.googleapis.com/youtube/v3/commentThreads", comment_threads_list),
        ("GET", "/youtubeanalytics.googleapis.com/v2/reports", reports),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guard(handler))
