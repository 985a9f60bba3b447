"""Sandbox Mastodon: any server name under the sandbox prefix is a Mastodon 4.3 instance.

`/sandbox/<any host>/api/v1/...` answers as that server would (docs/platforms/mastodon.md), each host
with its own apps, accounts, statuses and media (state is keyed by host):

- `POST /api/v1/apps` (JSON or form: client_name, redirect_uris, scopes, website) -> client_id and
  client_secret; `/.well-known/oauth-authorization-server` lists S256 unless `pkce_supported` is off
  (then 404, as before 4.3).
- `GET /oauth/authorize` -> 302 to the redirect URI with code and state at once; the client must be
  an app of this host, the redirect URI one of its own, the scopes within the app's. Codes are single
  use, live 10 minutes, are bound to the client, the redirect URI and the PKCE challenge.
- `POST /oauth/token` (authorization_code; client_secret checked; code_verifier when a challenge was
  given) -> a token that never expires; `POST /oauth/revoke` (client_id, client_secret, token).
- `GET /api/v1/accounts/verify_credentials`, `GET /api/v2/instance` (max_characters and
  max_media_attachments from the host's knobs, 23 characters per URL, media size limits).
- `POST /api/v2/media` (multipart `file`, `description` as alt text): images answer 200 with a url;
  videos and GIFs answer 202 with url null and `GET /api/v1/media/{id}` answers 206 for
  `processing_polls` reads, then 200 (or 422 with `fail_processing`).
- `POST /api/v1/statuses` (JSON or form; status, media_ids, visibility, spoiler_text, sensitive,
  language, in_reply_to_id): text counted as Mastodon counts it (URLs 23), at most max_media_attachments
  files, all processed, 4 images or 1 video, visibility known; `Idempotency-Key` answers the first
  status again for the same account and key within an hour. `GET` / `DELETE /api/v1/statuses/{id}`.
- Replies (threads are reply chains): `in_reply_to_id` must name a status of this server that is
  there and visible to the poster, checked first as Mastodon's set_thread does (before the
  Idempotency-Key), else 404 `{"error": "The post you are trying to reply to does not appear to
  exist."}`. A status shows `in_reply_to_id` and `in_reply_to_account_id` (null when not a reply);
  `GET /api/v1/statuses/{id}/context` answers `{ancestors (root first), descendants (depth first)}`;
  the publication's extra carries `in_reply_to_id`.
- Scopes: read for reads, write:statuses and write:media for writes (403 otherwise); a revoked or
  unknown token 401 `{"error": "The access token is invalid"}`; 404 `{"error": "Record not found"}`.
- `X-RateLimit-Limit/-Remaining/-Reset` (reset in ISO 8601) on every API answer, for the window
  closest to its limit: 300 requests per 5 minutes per token, and 30 media uploads per 30 minutes;
  past one, 429 `{"error": "Too many requests"}`.

Counts of a status, with m = minutes since it was published counting the one under way (sandbox
clock, core.units_under_way): favourites m//2, reblogs m//6, replies m//10. Followers: 321 (+ nothing).

Not imitated: HTML content rendering beyond a paragraph, polls, scheduled statuses, edits, focal
points, thumbnails, streaming, federation, replies in a status's replies_count (a formula of time).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import BodyPartReader, web

from ouipost.sandbox.core import Sandbox, TokenInfo, record_of, units_under_way

NETWORK = "mastodon"
HOSTS: tuple[str, ...] = ()  # no fixed host: every host answers on the paths below
ANY_HOST_PATHS: tuple[str, ...] = ("/api/v1/", "/api/v2/", "/oauth/", "/.well-known/oauth-authorization-server")

USER = {"id": "109000000000000001", "username": "ouipost", "display_name": "Oui Post Sandbox"}
FOLLOWERS, FOLLOWING, BASE_STATUSES = 321, 123, 40
WINDOW = 300.0
LIMIT = 300
MEDIA_WINDOW = 1800.0
MEDIA_LIMIT = 30
IDEMPOTENCY_SECONDS = 3600.0
KNOWN_SCOPES = frozenset({"read", "write", "follow", "push", "profile", "write:statuses", "write:media",
                          "read:accounts", "read:statuses", "write:accounts"})
DEFAULTS: dict[str, Any] = {
    "max_characters": 500,
    "max_media_attachments": 4,
    "processing_polls": 2,
    "fail_processing": False,
    "pkce_supported": True,
    "code_ttl": 600.0,
}
IMAGE_LIMIT = 16 * 1024 * 1024
VIDEO_LIMIT = 99 * 1024 * 1024
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_MENTION_DOMAIN = re.compile(r"(?<![\w@])(@[a-zA-Z0-9_]+(?:\.[a-zA-Z0-9_]+)*)@[a-zA-Z0-9.-]+[a-zA-Z0-9]")

Handler = Callable[[web.Request], Awaitable[web.Response]]


class _Reject(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def reject(status: int, message: str) -> _Reject:
    return _Reject(error(status, message))


def text_length(text: str) -> int:
    """Mastodon's count: URLs 23, `@user@domain` as `@user`, otherwise code points."""
    text = _MENTION_DOMAIN.sub(lambda m: m.group(1), text)
    return len(_URL.sub("", text)) + 23 * len(_URL.findall(text))


def sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class MastodonSandbox:
    """Handlers; the state of host H lives in `sandbox.network_state("mastodon")["hosts"][H]`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @property
    def state(self) -> dict[str, Any]:
        state = self.sandbox.network_state(NETWORK)
        for key, value in DEFAULTS.items():
            state.setdefault(key, value)
        state.setdefault("hosts", {})
        return state

    def host(self, request: web.Request) -> dict[str, Any]:
        name = request.match_info["instance"].lower()
        host = self.state["hosts"].setdefault(name, {"name": name, "apps": {}, "statuses": {}, "media": {},
                                                      "idempotency": {}, "windows": {}})
        return host

    # plumbing ----------------------------------------------------------------------------------

    def api(self, handler: Handler, *, media: bool = False) -> Handler:
        """Turn _Reject into its answer; count the token's windows and emit the X-RateLimit headers
        of the one closest to its limit (the general 300 / 5 min, and 30 uploads / 30 min for media)."""

        async def wrapped(request: web.Request) -> web.Response:
            host = self.host(request)
            token = _bearer(request) or "anonymous:" + (request.remote or "")
            windows = [self._window(host, token, LIMIT, WINDOW)]
            if media:
                windows.append(self._window(host, f"media:{token}", MEDIA_LIMIT, MEDIA_WINDOW))
            for window in windows:
                if window["used"] >= window["limit"]:
                    response = error(429, "Too many requests")
                    _limit_headers(response, 0, window["reset"], window["limit"])
                    return response
            for window in windows:
                window["used"] += 1
            try:
                response = await handler(request)
            except _Reject as exc:
                response = exc.response
            closest = min(windows, key=lambda w: w["limit"] - w["used"])
            _limit_headers(response, int(closest["limit"] - closest["used"]), closest["reset"], closest["limit"])
            return response

        return wrapped

    def _window(self, host: dict[str, Any], key: str, limit: int, seconds: float) -> dict[str, Any]:
        now = self.sandbox.now()
        window = host["windows"].get(key)
        if window is None or now >= window["reset"]:
            window = {"reset": now + seconds, "used": 0, "limit": limit}
            host["windows"][key] = window
        return window

    def authorize(self, request: web.Request, scope: str) -> TokenInfo:
        """The live token of this host, holding `scope` (or its parent: write covers write:media)."""
        info = self.sandbox.token(NETWORK, _bearer(request))
        if info is None or info.extra.get("instance") != self.host(request)["name"]:
            raise reject(401, "The access token is invalid")
        parent = scope.split(":", 1)[0]
        if scope not in info.scopes and parent not in info.scopes:
            raise reject(403, "This action is outside the authorized scopes")
        return info

    async def body(self, request: web.Request) -> dict[str, Any]:
        """JSON or form fields; repeated form keys (media_ids[]) become lists."""
        if request.content_type == "application/json":
            try:
                data = await request.json()
            except ValueError as exc:
                raise reject(400, "Invalid JSON") from exc
            return data if isinstance(data, dict) else {}
        form = await request.post()
        out: dict[str, Any] = {}
        for key in set(form.keys()):
            values = form.getall(key)
            if key.endswith("[]"):
                out[key[:-2]] = [str(v) for v in values]
            else:
                out[key] = values[-1]
        return out

    # apps and OAuth ----------------------------------------------------------------------------

    async def create_app(self, request: web.Request) -> web.Response:
        data = await self.body(request)
        name = str(data.get("client_name") or "").strip()
        uris = data.get("redirect_uris")
        uri_list = [str(u) for u in uris] if isinstance(uris, list) else str(uris or "").split()
        problems = []
        if not name:
            problems.append("Name can't be blank")
        if not uri_list or any(urlsplit(u).scheme not in ("http", "https") and u != "urn:ietf:wg:oauth:2.0:oob"
                               for u in uri_list):
            problems.append("Redirect URI must be an absolute URI.")
        scopes = str(data.get("scopes") or "read").split()
        if not set(scopes) <= KNOWN_SCOPES:
            problems.append("Scopes are invalid")
        if problems:
            raise reject(422, "Validation failed: " + ", ".join(problems))
        app_id = str(self.sandbox.next_id())
        client_id = secrets.token_urlsafe(32)
        app = {"id": app_id, "name": name, "website": data.get("website"), "redirect_uris": uri_list,
               "scopes": scopes, "client_id": client_id, "client_secret": secrets.token_urlsafe(32)}
        self.host(request)["apps"][client_id] = app
        return web.json_response({
            "id": app_id, "name": name, "website": app["website"], "scopes": scopes,
            "redirect_uri": "\n".join(uri_list), "redirect_uris": uri_list, "client_id": client_id,
            "client_secret": app["client_secret"], "vapid_key": "BSandboxVapidKey=",
        })

    async def oauth_metadata(self, request: web.Request) -> web.Response:
        if not self.state["pkce_supported"]:
            raise web.HTTPNotFound(text="<html><body>The page you are looking for isn't here.</body></html>",
                                   content_type="text/html")
        base = f"https://{self.host(request)['name']}"
        return web.json_response({
            "issuer": base, "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token", "revocation_endpoint": f"{base}/oauth/revoke",
            "scopes_supported": sorted(KNOWN_SCOPES), "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        })

    async def oauth_authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        host = self.host(request)
        app = host["apps"].get(q.get("client_id", ""))
        redirect_uri = q.get("redirect_uri", "")
        if app is None:
            return _error_page("Client authentication failed due to unknown client.")
        if redirect_uri not in app["redirect_uris"]:
            return _error_page("The redirect uri included is not valid.")
        scopes = q.get("scope", "read").split()
        if q.get("response_type") != "code" or not set(scopes) <= set(app["scopes"]):
            return _redirect(redirect_uri, error="invalid_scope", state=q.get("state", ""))
        if q.get("code_challenge") and q.get("code_challenge_method", "plain") != "S256":
            return _redirect(redirect_uri, error="invalid_request", state=q.get("state", ""))
        code = self.sandbox.new_code(NETWORK, instance=host["name"], client_id=app["client_id"],
                                     redirect_uri=redirect_uri, scopes=scopes, challenge=q.get("code_challenge"))
        query = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return _redirect(redirect_uri, **query)

    async def oauth_token(self, request: web.Request) -> web.Response:
        form = await self.body(request)
        host = self.host(request)
        app = host["apps"].get(str(form.get("client_id", "")))
        if app is None or app["client_secret"] != form.get("client_secret"):
            return web.json_response({"error": "invalid_client", "error_description": "Client authentication "
                                      "failed due to unknown client, no client authentication included, or "
                                      "unsupported authentication method."}, status=401)
        if form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type",
                                      "error_description": "The authorization grant type is not supported."},
                                     status=400)
        data = self.sandbox.take_code(NETWORK, str(form.get("code", "")), ttl=self.state["code_ttl"])
        invalid = web.json_response({"error": "invalid_grant", "error_description": "The provided authorization "
                                     "grant is invalid, expired, revoked, does not match the redirection URI "
                                     "used in the authorization request, or was issued to another client."},
                                    status=400)
        if (data is None or data["instance"] != host["name"] or data["client_id"] != app["client_id"]
                or data["redirect_uri"] != form.get("redirect_uri")):
            return invalid
        if data["challenge"] and not _pkce_ok(data["challenge"], str(form.get("code_verifier", ""))):
            return invalid
        token = self.sandbox.new_token(NETWORK, f"{host['name']}:{USER['id']}", data["scopes"], None,
                                       instance=host["name"], client_id=app["client_id"])
        return web.json_response({"access_token": token, "token_type": "Bearer", "scope": " ".join(data["scopes"]),
                                  "created_at": int(self.sandbox.now())})

    async def oauth_revoke(self, request: web.Request) -> web.Response:
        form = await self.body(request)
        app = self.host(request)["apps"].get(str(form.get("client_id", "")))
        if app is None or app["client_secret"] != form.get("client_secret"):
            return web.json_response({"error": "unauthorized_client",
                                      "error_description": "You are not authorized to revoke this token"},
                                     status=403)
        info = self.sandbox.tokens.get(str(form.get("token", "")))
        if info is not None and info.network == NETWORK and info.extra.get("client_id") == app["client_id"]:
            info.revoked = True
        return web.json_response({})

    # accounts and instance ---------------------------------------------------------------------

    def _account(self, host: dict[str, Any]) -> dict[str, Any]:
        live = sum(1 for s in host["statuses"].values() if not s["deleted"])
        return {
            "id": USER["id"], "username": USER["username"], "acct": USER["username"],
            "display_name": USER["display_name"], "locked": False, "bot": False,
            "url": f"https://{host['name']}/@{USER['username']}",
            "avatar": f"https://{host['name']}/avatars/original/missing.png",
            "followers_count": FOLLOWERS, "following_count": FOLLOWING,
            "statuses_count": BASE_STATUSES + live, "created_at": "2024-01-01T00:00:00.000Z",
        }

    async def verify_credentials(self, request: web.Request) -> web.Response:
        self.authorize(request, "read:accounts")
        return web.json_response(self._account(self.host(request)))

    async def instance(self, request: web.Request) -> web.Response:
        name = self.host(request)["name"]
        return web.json_response({
            "domain": name, "title": f"{name} (Oui Post sandbox)", "version": "4.3.0",
            "source_url": "https://github.com/mastodon/mastodon", "description": "A sandbox Mastodon server",
            "configuration": {
                "urls": {"streaming": f"wss://{name}"},
                "accounts": {"max_featured_tags": 10},
                "statuses": {"max_characters": int(self.state["max_characters"]),
                             "max_media_attachments": int(self.state["max_media_attachments"]),
                             "characters_reserved_per_url": 23},
                "media_attachments": {
                    "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4"],
                    "image_size_limit": IMAGE_LIMIT, "image_matrix_limit": 33177600,
                    "video_size_limit": VIDEO_LIMIT, "video_frame_rate_limit": 120,
                    "video_matrix_limit": 8294400,
                },
                "polls": {"max_options": 4, "max_characters_per_option": 50},
            },
            "registrations": {"enabled": False, "approval_required": False},
        })

    # media -------------------------------------------------------------------------------------

    async def upload_media(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "write:media")
        host = self.host(request)
        if not request.content_type.startswith("multipart/"):
            raise reject(422, "Validation failed: File can't be blank")
        data, description = b"", None
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue  # a nested multipart: not a field Mastodon reads
            if part.name == "file":
                data = bytes(await part.read())
            elif part.name == "description":
                description = await part.text()
        mime = sniff(data)
        if not data or mime is None:
            raise reject(422, "Validation failed: File content type is invalid")
        is_video = mime.startswith("video/") or mime == "image/gif"
        if len(data) > (VIDEO_LIMIT if is_video else IMAGE_LIMIT):
            raise reject(422, "Validation failed: File file size must be less than the server's limit")
        if description is not None and len(description) > 1500:
            raise reject(422, "Validation failed: Description is too long (maximum is 1500 characters)")
        media_id = str(110_000_000_000_000_000 + self.sandbox.next_id())
        media = {"id": media_id, "owner": info.subject, "type": "gifv" if mime == "image/gif" else
                 ("video" if is_video else "image"), "mime": mime, "bytes": len(data), "description": description,
                 "polls_left": int(self.state["processing_polls"]) if is_video else 0, "status_id": None,
                 "failed": bool(self.state["fail_processing"]) and is_video}
        host["media"][media_id] = media
        record = record_of(request)
        if record is not None:
            record.notes.update({"bytes": len(data), "mime": mime, "description": description})
        return web.json_response(self._media_view(host, media), status=202 if is_video else 200)

    def _media_view(self, host: dict[str, Any], media: dict[str, Any]) -> dict[str, Any]:
        ready = media["polls_left"] <= 0 and not media["failed"]
        url = f"https://{host['name']}/system/media_attachments/files/{media['id']}/original"
        return {"id": media["id"], "type": media["type"], "url": url if ready else None,
                "preview_url": url + "?small", "remote_url": None, "description": media["description"],
                "blurhash": "UeKUpFxuo~R%0nW;WCnhF6RjaJt757oJodS$", "meta": {}}

    async def get_media(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "write:media")
        host = self.host(request)
        media = host["media"].get(request.match_info["id"])
        if media is None or media["owner"] != info.subject:
            raise reject(404, "Record not found")
        if media["failed"]:
            raise reject(422, "Error processing thumbnail for uploaded media")
        if media["polls_left"] > 0:
            media["polls_left"] -= 1
            return web.json_response(self._media_view(host, media), status=206)
        return web.json_response(self._media_view(host, media))

    # statuses ----------------------------------------------------------------------------------

    async def create_status(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "write:statuses")
        host = self.host(request)
        now = self.sandbox.now()
        data = await self.body(request)
        parent = self._thread(host, info, data.get("in_reply_to_id"))
        key = request.headers.get("Idempotency-Key")
        if key:
            seen = host["idempotency"].get((info.subject, key))
            if seen is not None and now - seen[1] < IDEMPOTENCY_SECONDS:
                record = record_of(request)
                if record is not None:
                    record.notes["idempotent_replay"] = True
                return web.json_response(self._status_view(host, host["statuses"][seen[0]]))
        text = str(data.get("status") or "")
        media_ids = [str(m) for m in (data.get("media_ids") or [])]
        if not text.strip() and not media_ids:
            raise reject(422, "Validation failed: Text can't be blank")
        if text_length(text) > int(self.state["max_characters"]):
            raise reject(422, f"Validation failed: Text character limit of {self.state['max_characters']} exceeded")
        if len(media_ids) > int(self.state["max_media_attachments"]):
            raise reject(422, f"Cannot attach more than {self.state['max_media_attachments']} files")
        attached = []
        for media_id in media_ids:
            media = host["media"].get(media_id)
            if media is None or media["owner"] != info.subject or media["status_id"] is not None:
                raise reject(422, "Validation failed: Media attachments are invalid")
            if media["polls_left"] > 0 or media["failed"]:
                raise reject(422, "Cannot attach files that have not finished processing. Try again in a moment!")
            attached.append(media)
        if any(m["type"] != "image" for m in attached) and len(attached) > 1:
            raise reject(422, "Cannot attach a video to a post that already contains images")
        visibility = str(data.get("visibility") or "public")
        if visibility not in ("public", "unlisted", "private", "direct"):
            raise reject(422, "Validation failed: Visibility is not included in the list")
        spoiler = str(data.get("spoiler_text") or "")
        status_id = str(111_000_000_000_000_000 + self.sandbox.next_id())
        status = {"id": status_id, "owner": info.subject, "text": text, "media": [m["id"] for m in attached],
                  "visibility": visibility, "spoiler_text": spoiler,
                  "sensitive": _truthy(data.get("sensitive")) or bool(spoiler),
                  "language": data.get("language") or "en", "at": now, "deleted": False,
                  "in_reply_to_id": parent["id"] if parent else None,
                  "in_reply_to_account_id": USER["id"] if parent else None}
        for media in attached:
            media["status_id"] = status_id
        host["statuses"][status_id] = status
        if key:
            host["idempotency"][(info.subject, key)] = (status_id, now)
        self.sandbox.publish(
            NETWORK, info.subject, status_id, text,
            [{"id": m["id"], "type": m["type"], "mime": m["mime"], "alt": m["description"], "bytes": m["bytes"]}
             for m in attached],
            instance=host["name"], visibility=visibility, spoiler_text=spoiler, sensitive=status["sensitive"],
            in_reply_to_id=status["in_reply_to_id"],
        )
        return web.json_response(self._status_view(host, status))

    def _thread(self, host: dict[str, Any], info: TokenInfo, parent_id: Any) -> dict[str, Any] | None:
        """The status `in_reply_to_id` names (None without one), as Mastodon's set_thread finds it: it
        must be there and visible to the poster, else 404 with its own message."""
        if parent_id in (None, ""):
            return None
        parent: dict[str, Any] | None = host["statuses"].get(str(parent_id))
        hidden = parent is not None and parent["owner"] != info.subject and parent["visibility"] in (
            "private", "direct")
        if parent is None or parent["deleted"] or hidden:
            raise reject(404, "The post you are trying to reply to does not appear to exist.")
        return parent

    def _status_view(self, host: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        minutes = units_under_way(self.sandbox, status["at"], 60.0)
        url = f"https://{host['name']}/@{USER['username']}/{status['id']}"
        return {
            "id": status["id"], "created_at": iso(status["at"]), "uri": f"https://{host['name']}/users/"
            f"{USER['username']}/statuses/{status['id']}", "url": url, "visibility": status["visibility"],
            "sensitive": status["sensitive"], "spoiler_text": status["spoiler_text"],
            "language": status["language"], "content": f"<p>{escape(status['text'])}</p>",
            "in_reply_to_id": status.get("in_reply_to_id"),
            "in_reply_to_account_id": status.get("in_reply_to_account_id"),
            "favourites_count": minutes // 2, "reblogs_count": minutes // 6, "replies_count": minutes // 10,
            "account": self._account(host),
            "media_attachments": [self._media_view(host, host["media"][m]) for m in status["media"]],
        }

    def _own_status(self, request: web.Request, info: TokenInfo) -> dict[str, Any]:
        status = self.host(request)["statuses"].get(request.match_info["id"])
        if status is None or status["deleted"] or status["owner"] != info.subject:
            raise reject(404, "Record not found")
        return status

    async def get_status(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "read:statuses")
        return web.json_response(self._status_view(self.host(request), self._own_status(request, info)))

    async def status_context(self, request: web.Request) -> web.Response:
        """`GET /api/v1/statuses/{id}/context`: the statuses above it, root first, and every reply
        below it in thread order (depth first, each level oldest first)."""
        info = self.authorize(request, "read:statuses")
        host = self.host(request)
        status = self._own_status(request, info)
        statuses = host["statuses"]
        ancestors: list[dict[str, Any]] = []
        above = statuses.get(status.get("in_reply_to_id") or "")
        while above is not None and not above["deleted"]:
            ancestors.insert(0, above)
            above = statuses.get(above.get("in_reply_to_id") or "")
        children: dict[str, list[dict[str, Any]]] = {}
        for item in sorted(statuses.values(), key=lambda s: int(s["id"])):
            if item.get("in_reply_to_id") and not item["deleted"]:
                children.setdefault(item["in_reply_to_id"], []).append(item)
        descendants: list[dict[str, Any]] = []
        stack = list(reversed(children.get(status["id"], [])))
        while stack:
            item = stack.pop()
            descendants.append(item)
            stack.extend(reversed(children.get(item["id"], [])))
        return web.json_response({"ancestors": [self._status_view(host, s) for s in ancestors],
                                  "descendants": [self._status_view(host, s) for s in descendants]})

    async def delete_status(self, request: web.Request) -> web.Response:
        info = self.authorize(request, "write:statuses")
        status = self._own_status(request, info)
        status["deleted"] = True
        publication = self.sandbox.publication(NETWORK, status["id"])
        if publication is not None:
            publication.deleted = True
        view = self._status_view(self.host(request), status)
        view["text"] = status["text"]
        return web.json_response(view)


def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Routes on `/{instance}/...`: added after every fixed-host network, so those keep their paths."""
    m = MastodonSandbox(sandbox)
    base = "/{instance}"
    app.router.add_post(f"{base}/api/v1/apps", m.api(m.create_app))
    app.router.add_get(f"{base}/.well-known/oauth-authorization-server", m.oauth_metadata)
    app.router.add_get(f"{base}/oauth/authorize", m.oauth_authorize)
    app.router.add_post(f"{base}/oauth/token", m.oauth_token)
    app.router.add_post(f"{base}/oauth/revoke", m.oauth_revoke)
    app.router.add_get(f"{base}/api/v1/accounts/verify_credentials", m.api(m.verify_credentials))
    app.router.add_get(f"{base}/api/v2/instance", m.api(m.instance))
    app.router.add_post(f"{base}/api/v2/media", m.api(m.upload_media, media=True))
    app.router.add_get(f"{base}/api/v1/media/{{id}}", m.api(m.get_media))
    app.router.add_post(f"{base}/api/v1/statuses", m.api(m.create_status))
    app.router.add_get(f"{base}/api/v1/statuses/{{id}}", m.api(m.get_status))
    app.router.add_get(f"{base}/api/v1/statuses/{{id}}/context", m.api(m.status_context))
    app.router.add_delete(f"{base}/api/v1/statuses/{{id}}", m.api(m.delete_status))


def fault_response(kind: str, sandbox: Sandbox, wait: float | None = None) -> web.Response:
    """Mastodon's own answers: 429 with X-RateLimit headers (reset in `wait` seconds, else a whole
    window), 401 for a token the server no longer knows, 503 from the proxy in front of it."""
    if kind == "rate_limit":
        response = error(429, "Too many requests")
        _limit_headers(response, 0, sandbox.now() + (wait if wait is not None else WINDOW))
        return response
    if kind == "expire_token":
        return error(401, "The access token is invalid")
    return error(503, "Service Unavailable")


def _limit_headers(response: web.StreamResponse, remaining: int, reset: float, limit: int = LIMIT) -> None:
    response.headers["X-RateLimit-Limit"] = str(limit)
    response.headers["X-RateLimit-Remaining"] = str(max(0, remaining))
    response.headers["X-RateLimit-Reset"] = iso(reset)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else None


def _pkce_ok(challenge: str, verifier: str) -> bool:
    if not 43 <= len(verifier) <= 128:
        return False
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "on")


def _redirect(uri: str, **query: str) -> web.Response:
    sep = "&" if urlsplit(uri).query else "?"
    return web.Response(status=302, headers={"Location": f"{uri}{sep}{urlencode(query)}"})


def _error_page(message: str) -> web.Response:
    return web.Response(status=400, content_type="text/html",
                        text=f"<html><body><h1>An error has occurred</h1><p>{escape(message)}</p></body></html>")
