"""Sandbox LinkedIn: OAuth, userinfo, Images/Videos APIs, Posts API, member analytics.

Imitates (shared/platforms.md section 4):
- `GET www.linkedin.com/oauth/v2/authorization` -> 302 to redirect_uri with code+state at once; unknown
  scopes -> 302 with error=unauthorized_scope_error. Codes: single use, 30 min, bound to client_id and
  redirect_uri. `POST /oauth/v2/accessToken` (client_secret in the form): 60-day access tokens; refresh
  tokens (365 days, not rotated, `issue_refresh_tokens`) for programmatic-refresh apps.
  `POST /oauth/v2/revoke` and `POST /oauth/v2/introspectToken`.
- Every `/rest` call needs `LinkedIn-Version: YYYYMM` active within the last 12 months (400
  VERSION_MISSING / 426 NONEXISTENT_VERSION) and `X-Restli-Protocol-Version: 2.0.0`.
- Tokens checked on every call: 401 65600 invalid / 65601 revoked / 65602 expired; missing scopes ->
  403 ACCESS_DENIED.
- Images: initializeUpload -> PUT uploadUrl (bearer, bytes must be JPEG/PNG/GIF) -> PROCESSING ->
  AVAILABLE on the `image_polls`-th GET (or after `processing_seconds`).
- Videos: initializeUpload gives `part_size` byte ranges -> PUT each (exact length, ETag back) ->
  finalizeUpload (uploadToken and ETags in order) -> AVAILABLE on the `video_polls`-th GET; bytes that
  are not MP4 or last outside 3 s - 30 min end PROCESSING_FAILED.
- `POST /rest/posts`: author must be the member, commentary <= 3,000, media/multiImage (2-20)/article
  shapes checked, every referenced asset must be AVAILABLE, duplicate commentary -> 422
  (`reject_duplicates`, unconfirmed status). 201 with an empty body and `x-restli-id`.
  `DELETE /rest/posts/{urn}` -> 204.
- `POST /rest/socialActions/{postUrn}/comments {actor, object, message:{text}}` (Comments API): the actor
  must be the member (w_member_social; an organization actor needs w_organization_social and a page
  role the sandbox never gives: 403 ACCESS_DENIED), `object` must be the post of the path, the text
  1-1,250 characters (400 otherwise), taken as written (a comment's message is AnnotatedText: no
  little-text escaping). Unknown or deleted post -> 404 NOT_FOUND. 201 with the comment
  (`id`, `commentUrn` = `$URN` = `urn:li:comment:({postUrn},{id})`, `created`, `message`) and the id
  in `x-restli-id`. Read back: `GET /rest/socialActions/{postUrn}/comments` (paging, elements in
  the order written) and `GET /rest/socialActions/{postUrn}` (`commentsSummary`, `likesSummary`), both
  with r_member_social (restricted, or r_organization_social).
- `GET /rest/memberCreatorPostAnalytics?q=entity` (aggregation TOTAL) and `memberFollowersCount?q=me`.
- 429 has no rate-limit headers (LinkedIn sends none).

Metrics of a post, with m = minutes since publishing counting the one under way (sandbox clock,
core.units_under_way): IMPRESSION 8m,
MEMBERS_REACHED 5m, REACTION m//3, COMMENT m//10 + the comments written through the API, RESHARE m//20
(socialActions: totalLikes = REACTION, totalFirstLevelComments = COMMENT; the comments list holds
only the comments written through the API). Followers: 512.

Not imitated: organizations (pages, organizationalEntityAcls, share statistics), documents, captions and
thumbnails, DAILY aggregation, id_token (OpenID JWT), reshares, replies to comments, editing and deleting
comments, the audience's own comments (counted, never listed), the little-text parser
(escaped characters are simply unescaped; unescaped reserved characters are kept as they are).
"""

from __future__ import annotations

import re
import secrets
import struct
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from ouipost.posts.media import sniff_mime
from ouipost.sandbox.core import Sandbox, TokenInfo, units_under_way

NETWORK = "linkedin"
HOSTS: tuple[str, ...] = ("www.linkedin.com", "api.linkedin.com")

MEMBER = {
    "sub": "q8Xk2LmN0p",
    "name": "Camille Sandbox",
    "given_name": "Camille",
    "family_name": "Sandbox",
    "email": "camille.sandbox@example.com",
    "picture": "https://media.licdn.com/dms/image/sandbox/profile-displayphoto-shrink_100_100/0/1",
    "locale": {"country": "FR", "language": "fr"},
}
FOLLOWERS = 512
KNOWN_SCOPES = frozenset({
    "openid", "profile", "email", "w_member_social", "r_member_postAnalytics", "r_member_profileAnalytics",
    "w_organization_social", "r_organization_social", "rw_organization_admin", "r_organization_admin",
    "r_basicprofile", "r_liteprofile", "r_emailaddress", "r_member_social",
})
COMMENT_LIMIT = 1250  # characters of a comment's message (LinkedIn's limit on comments)
READ_SOCIAL = ("r_member_social", "r_organization_social")
DEFAULTS: dict[str, Any] = {
    "code_ttl": 1800.0,
    "access_ttl": 5_184_000,  # 60 days
    "refresh_ttl": 31_536_000,  # 365 days from first consent, never extended
    "issue_refresh_tokens": True,
    "image_polls": 1,  # the n-th GET of a processing asset finds it AVAILABLE
    "video_polls": 2,
    "processing_seconds": 30.0,
    "part_size": 4 * 1024 * 1024,
    "reject_duplicates": True,
    "client_secrets": None,  # {client_id: secret}; None: any non-empty secret
}
METRIC_TYPE_KEY = "com.linkedin.adsexternalapi.memberanalytics.v1.CreatorPostAnalyticsMetricTypeV1"

Handler = Callable[[web.Request], Awaitable[web.Response]]


class _Reject(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def error(status: int, message: str, code: str | None = None, service_code: int | None = None,
          **extra: Any) -> _Reject:
    """LinkedIn's error body: {status, serviceErrorCode?, code?, message}."""
    body: dict[str, Any] = {"status": status}
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    if code is not None:
        body["code"] = code
    body["message"] = message
    body.update(extra)
    return _Reject(web.json_response(body, status=status))


def input_error(field: str, description: str, code: str = "INVALID_VALUE") -> _Reject:
    """A 400 validation error naming the field, as the Posts API reports them."""
    return error(400, "Invalid request body", errorDetailType="com.linkedin.common.error.BadRequest",
                 errorDetails={"inputErrors": [{"description": description, "code": code,
                                                "input": {"inputPath": {"fieldPath": field}}}]})


def metrics_for(minutes: int) -> dict[str, int]:
    return {"IMPRESSION": 8 * minutes, "MEMBERS_REACHED": 5 * minutes, "REACTION": minutes // 3,
            "COMMENT": minutes // 10, "RESHARE": minutes // 20}


def mp4_duration(data: bytes) -> float | None:
    """Seconds from the mvhd box (version 0 or 1), or None when there is none."""
    at = data.find(b"mvhd")
    if at < 4:
        return None
    version = data[at + 4]
    try:
        if version == 1:
            timescale, duration = struct.unpack(">IQ", data[at + 24:at + 36])
        else:
            timescale, duration = struct.unpack(">II", data[at + 16:at + 24])
    except struct.error:
        return None
    return duration / timescale if timescale else None


class LinkedInSandbox:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @property
    def state(self) -> dict[str, Any]:
        state = self.sandbox.network_state(NETWORK)
        for key, value in DEFAULTS.items():
            state.setdefault(key, value)
        for key in ("assets", "posts", "uploads", "comments"):
            state.setdefault(key, {})
        return state

    # plumbing ----------------------------------------------------------------------------------

    def route(self, handler: Handler, *, rest: bool) -> Handler:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                if rest:
                    self.check_versions(request)
                return await handler(request)
            except _Reject as reject:
                return reject.response

        return wrapped

    def check_versions(self, request: web.Request) -> None:
        version = request.headers.get("LinkedIn-Version")
        if not version:
            raise error(400, "A version must be present. Please specify a version by adding the "
                             "LinkedIn-Version header.", "VERSION_MISSING")
        match = re.fullmatch(r"(\d{4})(\d{2})(?:\.\d{2})?", version)
        now = datetime.fromtimestamp(self.sandbox.now(), UTC)
        months_old = (now.year * 12 + now.month) - (int(match[1]) * 12 + int(match[2])) if match else -1
        if match is None or not 1 <= int(match[2]) <= 12 or not 0 <= months_old <= 12:
            raise error(426, f"Requested version {version} is not active", "NONEXISTENT_VERSION")
        if request.headers.get("X-Restli-Protocol-Version") != "2.0.0":
            raise error(400, "X-Restli-Protocol-Version header must be 2.0.0 for this resource",
                        "ILLEGAL_ARGUMENT")

    def authorize(self, request: web.Request, *scopes: str, resource: str = "",
                  any_of: tuple[str, ...] = ()) -> TokenInfo:
        """The live token's info; 401 as LinkedIn words it, 403 ACCESS_DENIED without every one of
        `scopes` or without at least one of `any_of`."""
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        info = self.sandbox.token(NETWORK, token)
        if info is None:
            known = self.sandbox.tokens.get(token)
            if known is not None and known.network == NETWORK and known.revoked:
                raise error(401, "The token used in the request has been revoked by the user",
                            "REVOKED_ACCESS_TOKEN", 65601)
            if known is not None and known.network == NETWORK and known.kind == "access":
                raise error(401, "The token used in the request has expired", "EXPIRED_ACCESS_TOKEN", 65602)
            raise error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        if any(scope not in info.scopes for scope in scopes) or (
                any_of and not set(any_of) & set(info.scopes)):
            version = request.headers.get("LinkedIn-Version", "")
            raise error(403, f"Not enough permissions to access: {resource}.{request.method}.{version}",
                        "ACCESS_DENIED", 100)
        return info

    def owner_of(self, info: TokenInfo) -> str:
        return f"urn:li:person:{info.subject}"

    # OAuth -------------------------------------------------------------------------------------

    async def oauth_authorize(self, request: web.Request) -> web.Response:
        q = request.query
        missing = [n for n in ("response_type", "client_id", "redirect_uri", "state", "scope") if not q.get(n)]
        redirect_uri = q.get("redirect_uri", "")
        if missing or q["response_type"] != "code" or urlsplit(redirect_uri).scheme not in ("http", "https"):
            return web.Response(status=400, content_type="text/html",
                                text=f"<h1>Bummer, something went wrong.</h1><p>{', '.join(missing)}</p>")
        scopes = q["scope"].replace(",", " ").split()
        unknown = [s for s in scopes if s not in KNOWN_SCOPES]
        if unknown:
            return _redirect(redirect_uri, error="unauthorized_scope_error", state=q["state"],
                             error_description=f'Scope "{unknown[0]}" is not authorized for your application')
        code = self.sandbox.new_code(NETWORK, client_id=q["client_id"], redirect_uri=redirect_uri,
                                     scopes=scopes, subject=MEMBER["sub"])
        return _redirect(redirect_uri, code=code, state=q["state"])

    def client(self, form: Any) -> str:
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if not client_id or not secret:
            name = "client_id" if not client_id else "client_secret"
            raise _Reject(_oauth_error(400, "invalid_request", f'A required parameter "{name}" is missing'))
        expected = self.state["client_secrets"]
        if isinstance(expected, dict) and expected.get(client_id) not in (None, secret):
            raise _Reject(_oauth_error(401, "invalid_client", "Client authentication failed"))
        return client_id

    async def oauth_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id = self.client(form)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            data = self.sandbox.take_code(NETWORK, str(form.get("code", "")), ttl=self.state["code_ttl"])
            if data is None or data["client_id"] != client_id or data["redirect_uri"] != form.get("redirect_uri"):
                return _oauth_error(400, "invalid_request", "Unable to retrieve access token: appid/redirect uri/"
                                    "code verifier does not match authorization code. Or authorization code "
                                    "expired. Or external member binding exists")
            body = self._access(data["subject"], data["scopes"], client_id)
            if self.state["issue_refresh_tokens"]:
                ttl = self.state["refresh_ttl"]
                body["refresh_token"] = self.sandbox.new_token(NETWORK, data["subject"], data["scopes"], ttl,
                                                               kind="refresh", client_id=client_id)
                body["refresh_token_expires_in"] = int(ttl)
            return web.json_response(body)
        if grant == "refresh_token":
            token = str(form.get("refresh_token", ""))
            info = self.sandbox.token(NETWORK, token, kind="refresh")
            if info is None or info.extra.get("client_id") != client_id:
                return _oauth_error(400, "invalid_request", "The provided refresh token is invalid")
            body = self._access(info.subject, info.scopes, client_id)
            # Not rotated: the same refresh token, its life still counting down from the first consent.
            body["refresh_token"] = token
            body["refresh_token_expires_in"] = int((info.expires_at or self.sandbox.now()) - self.sandbox.now())
            return web.json_response(body)
        return _oauth_error(400, "invalid_request", 'A required parameter "grant_type" is missing')

    def _access(self, subject: str, scopes: list[str], client_id: str) -> dict[str, Any]:
        ttl = int(self.state["access_ttl"])
        return {"access_token": self.sandbox.new_token(NETWORK, subject, scopes, ttl, client_id=client_id),
                "expires_in": ttl, "scope": ",".join(sorted(scopes)), "token_type": "Bearer"}

    async def oauth_revoke(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id = self.client(form)
        info = self.sandbox.tokens.get(str(form.get("token", "")))
        if info is not None and info.network == NETWORK and info.extra.get("client_id") == client_id:
            for other in self.sandbox.tokens.values():  # revoking the grant ends every token of it
                if other.network == NETWORK and other.subject == info.subject:
                    other.revoked = True
        return web.Response(status=200)

    async def oauth_introspect(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.client(form)
        info = self.sandbox.tokens.get(str(form.get("token", "")))
        live = self.sandbox.token(NETWORK, str(form.get("token", "")), kind=info.kind if info else "access")
        if info is None or info.network != NETWORK:
            return web.json_response({"active": False})
        status = "active" if live else "revoked" if info.revoked else "expired"
        return web.json_response({"active": live is not None, "status": status,
                                  "client_id": info.extra.get("client_id"), "scope": ",".join(info.scopes),
                                  "auth_type": "3L",
                                  "expires_at": int(info.expires_at) if info.expires_at else None})

    async def userinfo(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "openid", "profile", resource="userinfo")
        body = {"sub": info.subject, "email_verified": True, **{k: v for k, v in MEMBER.items() if k != "sub"}}
        if "email" not in info.scopes:
            body.pop("email")
            body.pop("email_verified")
        return web.json_response(body)

    # Images and videos -------------------------------------------------------------------------

    def _asset(self, urn: str) -> dict[str, Any] | None:
        return self.state["assets"].get(urn)

    def _status(self, asset: dict[str, Any], *, poll: bool) -> str:
        if asset["status"] == "PROCESSING":
            if poll:
                asset["polls"] += 1
            needed = self.state["image_polls" if asset["kind"] == "image" else "video_polls"]
            elapsed = self.sandbox.now() - asset["uploaded_at"]
            if asset["polls"] >= needed or elapsed >= self.state["processing_seconds"]:
                asset["status"] = "PROCESSING_FAILED" if asset.get("failure") else "AVAILABLE"
        return str(asset["status"])

    async def images(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "w_member_social", resource="images")
        if request.query.get("action") != "initializeUpload":
            raise error(400, "Unsupported action", "ILLEGAL_ARGUMENT")
        body = await _json(request)
        owner = (body.get("initializeUploadRequest") or {}).get("owner")
        if not owner:
            raise input_error("/initializeUploadRequest/owner", "Field is required", "MISSING_FIELD")
        if owner != self.owner_of(info):
            raise error(403, f"Not enough permissions to act as {owner}", "ACCESS_DENIED", 100)
        asset_id = f"D4E10AQ{self.sandbox.next_id():09d}"
        urn = f"urn:li:image:{asset_id}"
        self.state["assets"][urn] = {"kind": "image", "owner": owner, "status": "WAITING_UPLOAD", "polls": 0,
                                     "uploaded_at": None, "size": None, "type": None}
        self.state["uploads"][asset_id] = urn
        expires = int((self.sandbox.now() + 86400) * 1000)
        return web.json_response({"value": {
            "uploadUrlExpiresAt": expires,
            "uploadUrl": f"https://www.linkedin.com/dms-uploads/sp/v2/{asset_id}/uploaded-image/0"
                         f"?ca=vector_feedshare&cn=uploads&sync=0&v=beta",
            "image": urn,
        }})

    async def upload_image(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "w_member_social", resource="images")
        urn = self.state["uploads"].get(request.match_info["asset"])
        asset = self._asset(urn or "")
        if asset is None or asset["kind"] != "image":
            return web.Response(status=404)
        if asset["owner"] != self.owner_of(info):
            return web.Response(status=403)
        data = await request.read()
        kind = sniff_mime(data)
        if asset["status"] != "WAITING_UPLOAD":
            return web.Response(status=400, text="upload already completed")
        asset.update(status="PROCESSING", uploaded_at=self.sandbox.now(), size=len(data), type=kind)
        if kind not in ("image/jpeg", "image/png", "image/gif"):
            asset["failure"] = "UNSUPPORTED_MEDIA_TYPE"
        return web.Response(status=201)

    async def get_image(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "w_member_social", resource="images")
        urn = request.match_info["urn"]
        asset = self._asset(urn)
        if asset is None or asset["kind"] != "image" or asset["owner"] != self.owner_of(info):
            raise error(404, f"Image {urn} not found", "NOT_FOUND")
        status = self._status(asset, poll=True)
        body: dict[str, Any] = {"id": urn, "owner": asset["owner"], "status": status}
        if status == "AVAILABLE":
            body["downloadUrl"] = f"https://media.licdn.com/dms/image/{urn.rsplit(':', 1)[-1]}/feedshare/0"
            body["downloadUrlExpiresAt"] = int((self.sandbox.now() + 86400) * 1000)
        return web.json_response(body)

    async def videos(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "w_member_social", resource="videos")
        action = request.query.get("action")
        body = await _json(request)
        if action == "initializeUpload":
            return self._init_video(info, body.get("initializeUploadRequest") or {})
        if action == "finalizeUpload":
            return self._finalize_video(info, body.get("finalizeUploadRequest") or {})
        raise error(400, "Unsupported action", "ILLEGAL_ARGUMENT")

    def _init_video(self, info: TokenInfo, req: dict[str, Any]) -> web.Response:
        owner, size = req.get("owner"), req.get("fileSizeBytes")
        if not owner or not isinstance(size, int):
            raise input_error("/initializeUploadRequest", "owner and fileSizeBytes are required", "MISSING_FIELD")
        if owner != self.owner_of(info):
            raise error(403, f"Not enough permissions to act as {owner}", "ACCESS_DENIED", 100)
        if not 0 < size <= 500 * 1024 * 1024:
            raise input_error("/initializeUploadRequest/fileSizeBytes", "File size must be 1 byte to 500 MB")
        asset_id = f"D5610AQ{self.sandbox.next_id():09d}"
        urn = f"urn:li:video:{asset_id}"
        part = int(self.state["part_size"])
        ranges = [(start, min(start + part, size) - 1) for start in range(0, size, part)]
        token = secrets.token_urlsafe(12)
        self.state["assets"][urn] = {"kind": "video", "owner": owner, "status": "WAITING_UPLOAD", "polls": 0,
                                     "uploaded_at": None, "size": size, "ranges": ranges, "parts": {},
                                     "upload_token": token}
        self.state["uploads"][asset_id] = urn
        return web.json_response({"value": {
            "uploadUrlsExpireAt": int((self.sandbox.now() + 86400) * 1000),
            "video": urn,
            "uploadInstructions": [
                {"uploadUrl": f"https://www.linkedin.com/dms-uploads/sp/v2/{asset_id}/uploaded-video/{i}"
                              f"?ca=vector_feedshare&cn=uploads_secure",
                 "firstByte": first, "lastByte": last}
                for i, (first, last) in enumerate(ranges)],
            "uploadToken": token,
        }})

    async def upload_video_part(self, request: web.Request) -> web.Response:
        # Part URLs are pre-signed: no bearer token needed, as on LinkedIn's upload hosts.
        urn = self.state["uploads"].get(request.match_info["asset"])
        asset = self._asset(urn or "")
        index = int(request.match_info["part"])
        if asset is None or asset["kind"] != "video" or index >= len(asset["ranges"]):
            return web.Response(status=404)
        data = await request.read()
        first, last = asset["ranges"][index]
        if len(data) != last - first + 1:
            return web.Response(status=400, text=f"expected {last - first + 1} bytes, got {len(data)}")
        etag = f"/ambry-video/signedId/{secrets.token_hex(8)}"
        asset["parts"][index] = (etag, data)
        return web.Response(status=200, headers={"ETag": etag})

    def _finalize_video(self, info: TokenInfo, req: dict[str, Any]) -> web.Response:
        urn = str(req.get("video", ""))
        asset = self._asset(urn)
        if asset is None or asset["kind"] != "video" or asset["owner"] != self.owner_of(info):
            raise error(404, f"Video {urn} not found", "NOT_FOUND")
        if asset["status"] != "WAITING_UPLOAD":
            raise input_error("/finalizeUploadRequest/video", "Upload already finalized")
        if req.get("uploadToken", "") != asset["upload_token"]:
            raise input_error("/finalizeUploadRequest/uploadToken", "Invalid upload token")
        expected = [asset["parts"].get(i, ("",))[0] for i in range(len(asset["ranges"]))]
        if "" in expected or req.get("uploadedPartIds") != expected:
            raise input_error("/finalizeUploadRequest/uploadedPartIds",
                              "Uploaded part ids do not match the uploaded parts")
        data = b"".join(asset["parts"][i][1] for i in range(len(asset["ranges"])))
        asset.update(status="PROCESSING", uploaded_at=self.sandbox.now())
        duration = mp4_duration(data)
        if sniff_mime(data) != "video/mp4" or duration is None:
            asset["failure"] = "The uploaded file is not a supported video"
        elif not 3 <= duration <= 1800:
            asset["failure"] = f"Video duration {duration:.1f}s is outside 3 s - 30 min"
        asset["duration"] = duration
        return web.Response(status=200)

    async def get_video(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "w_member_social", resource="videos")
        urn = request.match_info["urn"]
        asset = self._asset(urn)
        if asset is None or asset["kind"] != "video" or asset["owner"] != self.owner_of(info):
            raise error(404, f"Video {urn} not found", "NOT_FOUND")
        status = self._status(asset, poll=True)
        body: dict[str, Any] = {"id": urn, "owner": asset["owner"], "status": status}
        if status == "PROCESSING_FAILED":
            body["processingFailureReason"] = asset["failure"]
        if status == "AVAILABLE":
            body["duration"] = int((asset.get("duration") or 0) * 1000)
        return web.json_response(body)

    # Posts -------------------------------------------------------------------------------------

    def _available(self, urn: Any, field: str, kinds: tuple[str, ...], owner: str) -> dict[str, Any]:
        asset = self._asset(str(urn))
        if asset is None or asset["kind"] not in kinds or asset["owner"] != owner:
            raise input_error(field, f"{urn} is not a valid {'/'.join(kinds)} URN of the author")
        status = self._status(asset, poll=False)
        if status != "AVAILABLE":
            raise input_error(field, f"{urn} is not AVAILABLE (status {status})")
        return asset

    async def create_post(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "w_member_social", resource="partnerApiPostsExternal")
        body = await _json(request)
        for name in ("author", "visibility", "distribution", "lifecycleState"):
            if name not in body:
                raise input_error(f"/{name}", "Field is required", "MISSING_FIELD")
        author = body["author"]
        if author != self.owner_of(info):
            version = request.headers.get("LinkedIn-Version", "")
            raise error(403, f"Not enough permissions to access: partnerApiPostsExternal.CREATE.{version}",
                        "ACCESS_DENIED", 100)
        if body["visibility"] not in ("PUBLIC", "CONNECTIONS", "LOGGED_IN"):
            raise input_error("/visibility", f"Invalid visibility {body['visibility']}")
        if (body["distribution"] or {}).get("feedDistribution") not in ("MAIN_FEED", "NONE"):
            raise input_error("/distribution/feedDistribution", "Field is required", "MISSING_FIELD")
        if body["lifecycleState"] != "PUBLISHED":
            raise input_error("/lifecycleState", "Only PUBLISHED posts can be created")
        commentary = str(body.get("commentary", ""))
        text = re.sub(r"\\(.)", r"\1", commentary)
        if len(text) > 3000:
            raise input_error("/commentary", f"Commentary length {len(text)} exceeds 3000 characters")
        media = self._content(body.get("content"), author)
        if not text.strip() and not media:
            raise input_error("/commentary", "A post needs commentary or content", "MISSING_FIELD")
        if self.state["reject_duplicates"] and text.strip():
            for urn, existing in self.state["posts"].items():
                if existing["author"] == author and existing["text"] == text and not existing["deleted"]:
                    raise error(422, f"Content is a duplicate of {urn}", "DUPLICATE_POST")
        urn = f"urn:li:share:{7_300_000_000_000_000_000 + self.sandbox.next_id()}"
        self.state["posts"][urn] = {"author": author, "text": text, "content": body.get("content"),
                                    "deleted": False}
        self.sandbox.publish(NETWORK, info.subject, urn, text, media, content=body.get("content"),
                             visibility=body["visibility"])
        return web.Response(status=201, headers={"x-restli-id": urn})

    def _content(self, content: Any, author: str) -> list[dict[str, Any]]:
        """Validate `content` and describe its media for the publication record."""
        if content is None:
            return []
        if not isinstance(content, dict) or len(content) != 1:
            raise input_error("/content", "Exactly one of media, multiImage, article is allowed")
        [(kind, value)] = content.items()
        if kind == "media":
            asset = self._available((value or {}).get("id"), "/content/media/id", ("image", "video"), author)
            return [{"id": value["id"], "kind": asset["kind"], "size": asset["size"],
                     "alt_text": value.get("altText")}]
        if kind == "multiImage":
            images = (value or {}).get("images") or []
            if not 2 <= len(images) <= 20:
                raise input_error("/content/multiImage/images", "A multiImage post has 2 to 20 images")
            described = []
            for i, image in enumerate(images):
                asset = self._available(image.get("id"), f"/content/multiImage/images/{i}/id", ("image",), author)
                described.append({"id": image["id"], "kind": "image", "size": asset["size"],
                                  "alt_text": image.get("altText")})
            return described
        if kind == "article":
            source, title = (value or {}).get("source"), (value or {}).get("title")
            if not source or urlsplit(str(source)).scheme not in ("http", "https"):
                raise input_error("/content/article/source", "A valid http(s) URL is required")
            if not title:
                raise input_error("/content/article/title", "Field is required", "MISSING_FIELD")
            if value.get("thumbnail"):
                self._available(value["thumbnail"], "/content/article/thumbnail", ("image",), author)
            return [{"kind": "article", "source": source, "title": title}]
        raise input_error(f"/content/{kind}", f"Unsupported content type {kind}")

    async def delete_post(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "w_member_social", resource="partnerApiPostsExternal")
        urn = request.match_info["urn"]
        post = self.state["posts"].get(urn)
        if post is None or post["deleted"]:
            raise error(404, f"Post {urn} not found", "NOT_FOUND")
        if post["author"] != self.owner_of(info):
            raise error(403, f"Not enough permissions to delete {urn}", "ACCESS_DENIED", 100)
        post["deleted"] = True
        pub = self.sandbox.publication(NETWORK, urn)
        if pub is not None:
            pub.deleted = True
        return web.Response(status=204)

    # Comments ----------------------------------------------------------------------------------

    def _live_post(self, urn: str) -> dict[str, Any]:
        post = self.state["posts"].get(urn)
        if post is None or post["deleted"] or self.sandbox.publication(NETWORK, urn) is None:
            raise error(404, f"Not Found: {urn} does not exist", "NOT_FOUND")
        return post

    def _comment_count(self, urn: str, pub_at: float) -> int:
        """First-level comments: the audience's (COMMENT's formula) and the ones written here."""
        audience = metrics_for(units_under_way(self.sandbox, pub_at, 60))["COMMENT"]
        return audience + len(self.state["comments"].get(urn, []))

    async def create_comment(self, request: web.Request) -> web.Response:
        info = self.authorize(request, resource="socialActions")
        target = request.match_info["urn"]
        body = await _json(request)
        actor = body.get("actor")
        if not actor:
            raise input_error("/actor", "Field is required", "MISSING_FIELD")
        version = request.headers.get("LinkedIn-Version", "")
        if str(actor).startswith("urn:li:organization:"):
            # Commenting as a page needs w_organization_social and a page role (ADMINISTRATOR,
            # DIRECT_SPONSORED_CONTENT_POSTER, RECRUITING_POSTER); the sandbox member holds none.
            self.authorize(request, "w_organization_social", resource="socialActions")
            raise error(403, f"Not enough permissions to access: socialActions.CREATE.{version}",
                        "ACCESS_DENIED", 100)
        self.authorize(request, "w_member_social", resource="socialActions")
        if actor != self.owner_of(info):
            raise error(403, f"Not enough permissions to access: socialActions.CREATE.{version}",
                        "ACCESS_DENIED", 100)
        if body.get("object") != target:
            raise input_error("/object", f"object must be the entity of the path ({target})")
        if not re.fullmatch(r"urn:li:(share|ugcPost):\d+", target):
            raise input_error("/object", f"{target} is not a share or ugcPost URN")
        self._live_post(target)
        message = body.get("message")
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise input_error("/message/text", "Field is required", "MISSING_FIELD")
        if len(text) > COMMENT_LIMIT:
            raise input_error("/message/text", f"Comment length {len(text)} exceeds {COMMENT_LIMIT} characters")
        comment_id = str(7_300_000_000_000_000_000 + self.sandbox.next_id())
        urn = f"urn:li:comment:({target},{comment_id})"
        stamp = {"actor": actor, "time": int(self.sandbox.now() * 1000)}
        comment = {"actor": actor, "commentUrn": urn, "created": stamp, "lastModified": stamp, "id": comment_id,
                   "message": {"attributes": [], "text": text}, "object": target, "$URN": urn}
        self.state["comments"].setdefault(target, []).append(comment)
        return web.json_response(comment, status=201, headers={"x-restli-id": comment_id})

    async def list_comments(self, request: web.Request) -> web.Response:
        self.authorize(request, resource="socialActions", any_of=READ_SOCIAL)
        target = request.match_info["urn"]
        self._live_post(target)
        try:
            start = max(0, int(request.query.get("start", "0")))
            count = min(100, max(1, int(request.query.get("count", "10"))))
        except ValueError as exc:
            raise error(400, "start and count must be integers", "ILLEGAL_ARGUMENT") from exc
        comments = self.state["comments"].get(target, [])
        return web.json_response({"paging": {"start": start, "count": count, "total": len(comments), "links": []},
                                  "elements": comments[start:start + count]})

    async def social_actions(self, request: web.Request) -> web.Response:
        self.authorize(request, resource="socialActions", any_of=READ_SOCIAL)
        target = request.match_info["urn"]
        self._live_post(target)
        pub = self.sandbox.publication(NETWORK, target)
        assert pub is not None  # _live_post checked it
        comments = self.state["comments"].get(target, [])
        return web.json_response({
            "target": target,
            "commentsSummary": {"selectedComments": [c["$URN"] for c in comments[-10:]],
                                "totalFirstLevelComments": self._comment_count(target, pub.at),
                                "aggregatedTotalComments": self._comment_count(target, pub.at)},
            "likesSummary": {"selectedLikes": [], "likedByCurrentUser": False,
                             "totalLikes": metrics_for(units_under_way(self.sandbox, pub.at, 60))["REACTION"]},
        })

    # Analytics ---------------------------------------------------------------------------------

    async def post_analytics(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "r_member_postAnalytics", resource="memberCreatorPostAnalytics")
        q = request.query
        if q.get("q") != "entity":
            raise error(400, "Only the entity finder is supported with q=entity", "ILLEGAL_ARGUMENT")
        match = re.fullmatch(r"\((share|ugcPost):(urn:li:(?:share|ugcPost):\d+)\)", q.get("entity", ""))
        if match is None:
            raise error(400, "Invalid entity: expected (share:urn:li:share:ID) or (ugcPost:...)", "ILLEGAL_ARGUMENT")
        query_type = q.get("queryType")
        if query_type not in metrics_for(0) or q.get("aggregation") != "TOTAL":
            raise error(400, "queryType (IMPRESSION|MEMBERS_REACHED|REACTION|COMMENT|RESHARE) and "
                             "aggregation=TOTAL are required", "ILLEGAL_ARGUMENT")
        urn = match[2]
        post = self.state["posts"].get(urn)
        pub = self.sandbox.publication(NETWORK, urn)
        if post is None or pub is None or post["author"] != self.owner_of(info):
            raise error(404, f"Post {urn} not found", "NOT_FOUND")
        count = metrics_for(units_under_way(self.sandbox, pub.at, 60))[query_type]
        if query_type == "COMMENT":
            count = self._comment_count(urn, pub.at)
        return web.json_response({"paging": {"start": 0, "count": 10, "links": []}, "elements": [
            {"count": count, "metricType": {METRIC_TYPE_KEY: query_type}, "targetEntity": {match[1]: urn}}]})

    async def followers_count(self, request: web.Request) -> web.Response:
        self.authorize(request, "r_member_profileAnalytics", resource="memberFollowersCount")
        if request.query.get("q") != "me":
            raise error(400, "Only the me finder is supported", "ILLEGAL_ARGUMENT")
        return web.json_response({"paging": {"start": 0, "count": 10, "links": []},
                                  "elements": [{"memberFollowersCount": FOLLOWERS}]})


def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Register LinkedIn's OAuth, upload and REST routes."""
    li = LinkedInSandbox(sandbox)
    www, api = "/www.linkedin.com", "/api.linkedin.com"
    app.router.add_get(f"{www}/oauth/v2/authorization", li.oauth_authorize)
    app.router.add_post(f"{www}/oauth/v2/accessToken", li.route(li.oauth_token, rest=False))
    app.router.add_post(f"{www}/oauth/v2/revoke", li.route(li.oauth_revoke, rest=False))
    app.router.add_post(f"{www}/oauth/v2/introspectToken", li.route(li.oauth_introspect, rest=False))
    app.router.add_put(f"{www}/dms-uploads/sp/v2/{{asset}}/uploaded-image/0", li.route(li.upload_image, rest=False))
    app.router.add_put(f"{www}/dms-uploads/sp/v2/{{asset}}/uploaded-video/{{part:\\d+}}",
                       li.route(li.upload_video_part, rest=False))
    app.router.add_get(f"{api}/v2/userinfo", li.route(li.userinfo, rest=False))
    app.router.add_post(f"{api}/rest/images", li.route(li.images, rest=True))
    app.router.add_get(f"{api}/rest/images/{{urn}}", li.route(li.get_image, rest=True))
    app.router.add_post(f"{api}/rest/videos", li.route(li.videos, rest=True))
    app.router.add_get(f"{api}/rest/videos/{{urn}}", li.route(li.get_video, rest=True))
    app.router.add_post(f"{api}/rest/posts", li.route(li.create_post, rest=True))
    app.router.add_delete(f"{api}/rest/posts/{{urn}}", li.route(li.delete_post, rest=True))
    app.router.add_post(f"{api}/rest/socialActions/{{urn}}/comments", li.route(li.create_comment, rest=True))
    app.router.add_get(f"{api}/rest/socialActions/{{urn}}/comments", li.route(li.list_comments, rest=True))
    app.router.add_get(f"{api}/rest/socialActions/{{urn}}", li.route(li.social_actions, rest=True))
    app.router.add_get(f"{api}/rest/memberCreatorPostAnalytics", li.route(li.post_analytics, rest=True))
    app.router.add_get(f"{api}/rest/memberFollowersCount", li.route(li.followers_count, rest=True))


def fault_response(kind: str, sandbox: Sandbox) -> web.Response:
    """LinkedIn's own answers: 429 without any rate-limit header, 401 65602, 500."""
    if kind == "rate_limit":
        return web.json_response({"status": 429, "serviceErrorCode": 101, "code": "TOO_MANY_REQUESTS",
                                  "message": "Resource level throttle APPLICATION DAY limit for calls to this "
                                             "resource is reached."}, status=429)
    if kind == "expire_token":
        return web.json_response({"status": 401, "serviceErrorCode": 65602, "code": "EXPIRED_ACCESS_TOKEN",
                                  "message": "The token used in the request has expired"}, status=401)
    return web.json_response({"message": "Internal Server Error", "status": 500}, status=500)


def _oauth_error(status: int, err: str, description: str) -> web.Response:
    return web.json_response({"error": err, "error_description": description}, status=status)


def _redirect(uri: str, **params: str) -> web.Response:
    sep = "&" if urlsplit(uri).query else "?"
    return web.Response(status=302, headers={"Location": f"{uri}{sep}{urlencode(params)}"})


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise error(400, "Request body is not valid JSON", "ILLEGAL_ARGUMENT") from exc
    if not isinstance(body, dict):
        raise error(400, "Request body must be a JSON object", "ILLEGAL_ARGUMENT")
    return body
