"""Sandbox Facebook: Facebook Login, Pages and the Graph API v25.0 (shared/platforms.md section 1).

The world (deterministic): user 10001 "Sandra Box" admins two Pages, 20001 "Oui Bakery" (@ouibakery)
and 20002 "Oui Garage" (@ouigarage). Each Page names a linked Instagram business account in
`instagram_business_account`.

Imitated:
- `GET /www.facebook.com/v25.0/dialog/oauth` -> 302 to redirect_uri?code&state#_=_ (consent is
  implied; `network_state("facebook")["declined_scopes"]` lists scopes the user "unticks").
- `GET|POST /oauth/access_token` (code -> short token, expires_in 5400; `fb_exchange_token` ->
  long-lived, expires_in 5183944; `client_credentials` -> app token `id|secret`). Codes are single use
  (reuse: 100/36009), bound to client_id and redirect_uri (100/36008).
- `/me`, `/me/accounts` (Page tokens that never expire), `/me/permissions`,
  `DELETE /{user-id}/permissions` (user or app token).
- `POST /{page}/feed` (message, link, attached_media), `/{page}/photos` (url|source, published),
  `/{page}/videos` (file_url|source; the video goes processing -> ready after
  `network_state["video_polls"]` status reads, default 1, or -> error when
  `network_state["video_error"]` is set), `/{page}/photo_stories`.
- `GET /{id}?fields=...` for pages, posts, photos, videos; `DELETE /{id}`; `GET /{post}/insights`.
- `POST /{post|photo|video}/comments {message}` as the Page (its token, `pages_manage_engagement`, else
  #200 HTTP 403) -> `{id: "{post}_{comment}"}`; `GET /{object}/comments` (`pages_read_engagement`;
  oldest first, `limit`/`after` cursors, `summary=true`) and `GET /{comment-id}` read them back, and the
  post's `comments.summary.total_count` counts them. A deleted or unknown post, a story, or another
  Page's post -> 100/33 (GraphMethodException); an empty message or one over `comment_max_chars`
  (default 8,000 [unconf]) -> #100. Deleting a post deletes its comments.
- Errors: 190/463 expired, 190/458 revoked, 10/200 permissions (HTTP 403), 100 parameters,
  324/352 media, 506 duplicate text within `duplicate_window` seconds (default 600), code 4 when the
  app budget is spent, X-App-Usage on every answer, X-Business-Use-Case-Usage on Page calls.

Post insights grow per hour h since publishing
(h counts the hour under way: 1 in the first hour) (see POST_METRICS_PER_HOUR):
post_total_media_view_unique = 40h, post_reactions_by_type_total = {like: 5h, love: 2h},
post_clicks = 3h, post_clicks_by_type = {"link clicks": 2h, "other clicks": h};
fields: reactions total 7h, comments total 2h, shares 1h.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ouipost.posts.media import sniff_mime
from ouipost.sandbox._meta import (
    GraphError,
    access_token_of,
    apps,
    as_bool,
    buc_header,
    check_client,
    expired_token_response,
    fetch_media,
    graph_error_response,
    graph_route,
    hours_since,
    image_size,
    live_token,
    parse_fields,
    read_params,
    require_param,
    require_scopes,
    server_error_response,
    with_query,
)
from ouipost.sandbox.core import Publication, Sandbox, TokenInfo

NETWORK = "facebook"
HOSTS = ("www.facebook.com", "graph.facebook.com", "graph-video.facebook.com")
VERSION = "v25.0"

SHORT_TOKEN_TTL = 5400
LONG_TOKEN_TTL = 5183944
MAX_MESSAGE = 63206
MAX_PHOTO_BYTES = 10 * 1024 * 1024
PUBLISH_SCOPES = ("pages_manage_posts", "pages_read_engagement")
COMMENT_SCOPES = ("pages_manage_engagement",)
MAX_COMMENT = 8000  # [unconf] Facebook's comment box limit; `comment_max_chars` changes it

USER = {"id": "10001", "name": "Sandra Box"}
PAGES: dict[str, dict[str, Any]] = {
    "20001": {"id": "20001", "name": "Oui Bakery", "username": "ouibakery", "category": "Bakery",
              "followers_count": 1200, "fan_count": 1150, "instagram_business_account": "17841400000000001",
              "tasks": ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"]},
    "20002": {"id": "20002", "name": "Oui Garage", "username": "ouigarage", "category": "Automotive",
              "followers_count": 3400, "fan_count": 3300, "instagram_business_account": "17841400000000002",
              "tasks": ["ANALYZE", "CREATE_CONTENT"]},
}
POST_METRICS_PER_HOUR: dict[str, Any] = {
    "post_total_media_view_unique": 40,
    "post_reactions_by_type_total": {"like": 5, "love": 2},
    "post_clicks": 3,
    "post_clicks_by_type": {"link clicks": 2, "other clicks": 1},
}
FIELD_COUNTS_PER_HOUR = {"reactions": 7, "comments": 2, "shares": 1}
DEPRECATED_METRICS = {"post_impressions", "post_impressions_unique", "post_impressions_paid",
                      "post_impressions_organic", "page_impressions_unique", "page_fans"}


def _state(sandbox: Sandbox) -> dict[str, Any]:
    state = sandbox.network_state(NETWORK)
    state.setdefault("objects", {})  # id -> {"kind": post|photo|video|story, "page": ..., ...}
    state.setdefault("used_codes", set())
    return state


def _objects(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return _state(sandbox)["objects"]


def _trace_headers(page_id: str, sandbox: Sandbox) -> dict[str, str]:
    """Page calls also report the Business Use Case budget of the Page (never exhausted here)."""
    calls = len(sandbox.network_state(NETWORK).get("app_calls", []))
    return {"X-Business-Use-Case-Usage": buc_header(page_id, "pages", min(99, calls // 50), 0)}


def _json(data: Any, *, page_id: str | None = None, sandbox: Sandbox | None = None) -> web.Response:
    headers = _trace_headers(page_id, sandbox) if page_id and sandbox else None
    return web.json_response(data, headers=headers)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


def _unknown_object(object_id: str, verb: str = "get") -> GraphError:
    return GraphError(
        400, f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be loaded "
             "due to missing permissions, or does not support this operation. Please read the Graph API "
             "documentation at https://developers.facebook.com/docs/graph-api", 100, 33, type="GraphMethodException",
    )


def _page_token_for(sandbox: Sandbox, info: TokenInfo, page_id: str, *scopes: str) -> None:
    """Page edges need that Page's token with the publishing scopes (user tokens get #200)."""
    if page_id not in PAGES:
        raise _unknown_object(page_id, "post")
    if info.extra.get("type") != "page" or info.subject != page_id:
        raise GraphError(403, "(#200) If posting to a page, requires both pages_read_engagement and "
                              "pages_manage_posts as an admin with sufficient administrative permission", 200)
    require_scopes(info, *scopes, code=200,
                   message="(#200) If posting to a page, requires both pages_read_engagement and "
                           "pages_manage_posts as an admin with sufficient administrative permission")


# --------------------------------------------------------------------------------------------------
# OAuth


def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Register the Facebook routes on the sandbox app."""
    route = graph_route(sandbox, NETWORK)

    @route
    async def dialog(request: web.Request) -> web.StreamResponse:
        q = request.query
        client_id = q.get("client_id")
        redirect_uri = q.get("redirect_uri")
        if not client_id or client_id not in _state_apps(sandbox):
            return web.Response(status=400, text="Invalid App ID: the provided app ID does not look like a "
                                                 "valid app ID.", content_type="text/html")
        if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
            return web.Response(status=400, text="URL Blocked: This redirect failed because the redirect "
                                                 "URI is not whitelisted.", content_type="text/html")
        if q.get("response_type", "code") != "code":
            return web.Response(status=400, text="Unsupported response_type", content_type="text/html")
        requested = [s for s in q.get("scope", "").replace(" ", ",").split(",") if s]
        declined = set(sandbox.network_state(NETWORK).get("declined_scopes", []))
        granted = [s for s in requested if s not in declined]
        code = sandbox.new_code(NETWORK, client_id=client_id, redirect_uri=redirect_uri,
                                scopes=granted, declined=[s for s in requested if s in declined],
                                user_id=USER["id"])
        params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        return web.Response(status=302, headers={"Location": with_query(redirect_uri, params, "_=_")})

    @route
    async def access_token(request: web.Request) -> web.StreamResponse:
        params, _ = await read_params(request)
        grant = params.get("grant_type")
        if grant == "fb_exchange_token":
            check_client(sandbox, NETWORK, params.get("client_id"), require_param(params, "client_secret"))
            short = live_token(sandbox, NETWORK, str(require_param(params, "fb_exchange_token")))
            if short.extra.get("type") != "user":
                raise GraphError(400, "(#100) fb_exchange_token must be a user access token", 100)
            token = sandbox.new_token(NETWORK, short.subject, short.scopes, LONG_TOKEN_TTL, type="user",
                                      client_id=params["client_id"], declined=short.extra.get("declined", []))
            return web.json_response({"access_token": token, "token_type": "bearer",
                                      "expires_in": LONG_TOKEN_TTL})
        if grant == "client_credentials":
            check_client(sandbox, NETWORK, params.get("client_id"), require_param(params, "client_secret"))
            return web.json_response({"access_token": f"{params['client_id']}|{params['client_secret']}",
                                      "token_type": "bearer"})
        check_client(sandbox, NETWORK, params.get("client_id"), require_param(params, "client_secret"))
        redirect_uri = require_param(params, "redirect_uri")
        code = require_param(params, "code")
        used: set[str] = _state(sandbox)["used_codes"]
        if code in used:
            raise GraphError(400, "This authorization code has been used.", 100, 36009)
        data = sandbox.take_code(NETWORK, code)
        if data is None:
            raise GraphError(400, "Invalid verification code format.", 100, 36007)
        used.add(code)
        if data["client_id"] != params["client_id"] or data["redirect_uri"] != redirect_uri:
            raise GraphError(400, "Error validating verification code. Please make sure your redirect_uri "
                                  "is identical to the one you used in the OAuth dialog request", 100, 36008)
        token = sandbox.new_token(NETWORK, data["user_id"], data["scopes"], SHORT_TOKEN_TTL, type="user",
                                  client_id=data["client_id"], declined=data["declined"])
        return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": SHORT_TOKEN_TTL})

    # ----------------------------------------------------------------------------------------------
    # Graph objects and edges

    @route
    async def get_object(request: web.Request) -> web.StreamResponse:
        object_id = request.match_info["object_id"]
        params, _ = await read_params(request)
        if request.method == "DELETE":
            return await _delete(sandbox, request, params, object_id)
        if request.method == "POST":
            raise GraphError(400, f"Unsupported post request. Object with ID '{object_id}' does not "
                                  "support this operation", 100, 33, type="GraphMethodException")
        info = live_token(sandbox, NETWORK, access_token_of(request, params))
        fields = parse_fields(params.get("fields"))
        if object_id == "me":
            object_id = info.subject
        if object_id == USER["id"]:
            if info.extra.get("type") != "user":
                raise _unknown_object(object_id)
            return web.json_response(_pick(dict(USER), fields or ["id", "name"]))
        if object_id in PAGES:
            page = PAGES[object_id]
            if not (info.extra.get("type") == "page" and info.subject == object_id) and \
                    "pages_show_list" not in info.scopes:
                raise GraphError(403, "(#10) This endpoint requires the 'pages_read_engagement' permission "
                                      "or the 'Page Public Content Access' feature.", 10)
            return _json(_page_view(page, fields), page_id=object_id, sandbox=sandbox)
        obj = _objects(sandbox).get(object_id)
        if obj is None or obj.get("deleted"):
            raise _unknown_object(object_id)
        if obj["page"] != info.subject or info.extra.get("type") != "page":
            raise _unknown_object(object_id)
        return _json(_object_view(sandbox, object_id, obj, fields), page_id=obj["page"], sandbox=sandbox)

    @route
    async def edge(request: web.Request) -> web.StreamResponse:
        object_id = request.match_info["object_id"]
        name = request.match_info["edge"]
        if object_id == "oauth" and name == "access_token":
            return await access_token(request)
        params, files = await read_params(request)
        if name == "permissions":
            return await _permissions(sandbox, request, params, object_id)
        info = live_token(sandbox, NETWORK, access_token_of(request, params))
        if object_id == "me":
            object_id = info.subject
        if name == "accounts" and request.method == "GET":
            return _accounts(sandbox, info, object_id, params)
        if name == "insights" and request.method == "GET":
            return _insights(sandbox, info, object_id, params)
        if name == "comments" and request.method == "GET":
            return _list_comments(sandbox, info, object_id, params)
        if name == "comments" and request.method == "POST":
            return _comment(sandbox, info, object_id, params)
        if request.method != "POST":
            raise _unknown_object(object_id)
        if name == "feed":
            return await _feed(sandbox, info, object_id, params)
        if name == "photos":
            return await _photos(sandbox, info, object_id, params, files)
        if name == "videos":
            return await _videos(sandbox, info, object_id, params, files)
        if name == "photo_stories":
            return _photo_story(sandbox, info, object_id, params)
        raise GraphError(400, f"(#100) Unknown edge '{name}'", 100)

    for host in ("graph.facebook.com", "graph-video.facebook.com"):
        app.router.add_route("*", f"/{host}/{VERSION}/{{object_id}}/{{edge}}", edge)
        app.router.add_route("*", f"/{host}/{VERSION}/{{object_id}}", get_object)
    app.router.add_get(f"/www.facebook.com/{VERSION}/dialog/oauth", dialog)


def _state_apps(sandbox: Sandbox) -> dict[str, str]:
    return apps(sandbox, NETWORK)



def _pick(data: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    out = {"id": data["id"]} if "id" in data else {}
    for name in fields:
        if name in data:
            out[name] = data[name]
    return out


def _page_view(page: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    data = dict(page)
    data["instagram_business_account"] = {"id": page["instagram_business_account"]}
    data["link"] = f"https://www.facebook.com/{page['username']}"
    data["picture"] = {"data": {"url": f"https://scontent.xx.fbcdn.net/v/{page['id']}.jpg",
                                "is_silhouette": False, "height": 50, "width": 50}}
    data.pop("tasks", None)
    return _pick(data, fields or ["name"])


def _object_view(sandbox: Sandbox, object_id: str, obj: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    page = PAGES[obj["page"]]
    pub = sandbox.publication(NETWORK, obj.get("remote_id", "")) if obj.get("remote_id") else None
    h = hours_since(sandbox, pub.at) if pub else 0
    data: dict[str, Any] = {"id": object_id, "created_time": _iso(obj["created"])}
    if obj["kind"] == "post":
        data["message"] = obj.get("message", "")
        data["is_published"] = obj.get("published", True)
        data["permalink_url"] = f"https://www.facebook.com/{page['username']}/posts/{object_id.split('_', 1)[1]}"
        data["reactions"] = {"data": [], "summary": {"total_count": FIELD_COUNTS_PER_HOUR["reactions"] * h}}
        written = len(_comments_on(sandbox, object_id))
        data["comments"] = {"data": [], "summary": {"total_count": FIELD_COUNTS_PER_HOUR["comments"] * h + written,
                                                   "can_comment": True}}
        if h:
            data["shares"] = {"count": FIELD_COUNTS_PER_HOUR["shares"] * h}  # absent when never shared
    elif obj["kind"] == "photo":
        data["link"] = f"https://www.facebook.com/photo.php?fbid={object_id}"
        data["alt_text_custom"] = obj.get("alt_text")
        if obj.get("post_id"):
            data["page_story_id"] = obj["post_id"]
    elif obj["kind"] == "video":
        data["description"] = obj.get("description", "")
        data["title"] = obj.get("title")
        # Graph answers a *relative* permalink for videos.
        data["permalink_url"] = f"/{page['username']}/videos/{object_id}/"
        data["status"] = _video_status(sandbox, obj, poll="status" in fields)
    elif obj["kind"] == "story":
        data["url"] = f"https://www.facebook.com/stories/{object_id}"
    elif obj["kind"] == "comment":
        data.update(_comment_view(object_id, obj))
    return _pick(data, fields or ["id"]) if fields else {"id": object_id,
                                                           "created_time": data["created_time"]}


def _video_status(sandbox: Sandbox, obj: dict[str, Any], *, poll: bool) -> dict[str, Any]:
    if poll and obj["video_status"] == "processing":
        obj["polls"] = obj.get("polls", 0) + 1
        state = sandbox.network_state(NETWORK)
        if obj["polls"] > int(state.get("video_polls", 1)):
            if state.get("video_error"):
                # Processing failed: the video never shows on the Page.
                obj["video_status"] = "error"
                for pub in sandbox.publications:
                    if pub.network == NETWORK and pub.remote_id == obj["remote_id"]:
                        pub.deleted = True
            else:
                obj["video_status"] = "ready"
    done = obj["video_status"] == "ready"
    return {
        "video_status": obj["video_status"],
        "uploading_phase": {"status": "complete"},
        "processing_phase": {"status": "complete" if done else "in_progress"},
        "publishing_phase": {"status": "complete" if done else "not_started"},
    }


async def _permissions(sandbox: Sandbox, request: web.Request, params: dict[str, Any],
                       user_id: str) -> web.StreamResponse:
    token = access_token_of(request, params)
    if request.method == "DELETE":
        # An app token (id|secret) may revoke any user's grant; a user token only its own.
        if token and "|" in token:
            app_id, _, secret = token.partition("|")
            check_client(sandbox, NETWORK, app_id, secret)
            subject = USER["id"] if user_id == "me" else user_id
        else:
            info = live_token(sandbox, NETWORK, token)
            subject = info.extra.get("user_id", info.subject) if user_id == "me" else user_id
            if info.extra.get("type") != "user" or info.subject != subject:
                raise GraphError(403, "(#200) Permissions error", 200)
        if subject != USER["id"]:
            raise _unknown_object(user_id, "delete")
        for info in sandbox.tokens.values():
            if info.network == NETWORK and (info.subject == subject or info.extra.get("user_id") == subject):
                info.revoked = True
        return web.json_response({"success": True})
    info = live_token(sandbox, NETWORK, token)
    if info.extra.get("type") != "user":
        raise GraphError(400, "(#100) Tried accessing nonexisting field (permissions) on node type (Page)", 100)
    data = [{"permission": s, "status": "granted"} for s in info.scopes]
    data += [{"permission": s, "status": "declined"} for s in info.extra.get("declined", [])]
    return web.json_response({"data": data})


def _accounts(sandbox: Sandbox, info: TokenInfo, user_id: str, params: dict[str, Any]) -> web.Response:
    if info.extra.get("type") != "user" or user_id != info.subject:
        raise GraphError(400, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)", 100)
    require_scopes(info, "pages_show_list", code=200,
                   message="(#200) Requires pages_show_list permission to manage the object")
    fields = parse_fields(params.get("fields")) or ["name", "access_token", "category", "tasks"]
    data = []
    for page in PAGES.values():
        token = sandbox.new_token(NETWORK, page["id"], info.scopes, None, type="page", user_id=info.subject)
        view = _page_view(page, [f for f in fields if f not in ("access_token", "tasks")])
        if "access_token" in fields:
            view["access_token"] = token
        if "tasks" in fields:
            view["tasks"] = page["tasks"]
        data.append(view)
    return web.json_response({"data": data, "paging": {"cursors": {"before": "QVFIUjE", "after": "QVFIUjI"}}})


# --------------------------------------------------------------------------------------------------
# Publishing


def _register_post(sandbox: Sandbox, page_id: str, *, message: str, media: list[dict[str, Any]],
                   link: str | None, published: bool, post_id: str | None = None,
                   **extra: Any) -> str:
    post_id = post_id or f"{page_id}_{sandbox.next_id() + 1_000_000}"
    _objects(sandbox)[post_id] = {"kind": "post", "page": page_id, "message": message, "link": link,
                                  "created": sandbox.now(), "published": published, "remote_id": post_id}
    if published:
        sandbox.publish(NETWORK, page_id, post_id, message, media, link=link, **extra)
    return post_id


async def _feed(sandbox: Sandbox, info: TokenInfo, page_id: str, params: dict[str, Any]) -> web.Response:
    _page_token_for(sandbox, info, page_id, *PUBLISH_SCOPES)
    message = str(params.get("message") or "")
    link = params.get("link") or None
    attached = _attached_media(params)
    if not message and not link and not attached:
        raise GraphError(400, "(#100) Missing message or attachment.", 100)
    if len(message) > MAX_MESSAGE:
        raise GraphError(400, f"(#100) Param message must be at most {MAX_MESSAGE} characters long.", 100)
    if link and urlsplit(str(link)).scheme not in ("http", "https"):
        raise GraphError(400, "(#100) The link could not be scraped: it is not a valid URL.", 100, 1609005)
    objects = _objects(sandbox)
    photos = []
    for index, fbid in enumerate(attached):
        photo = objects.get(fbid)
        if photo is None or photo["kind"] != "photo" or photo["page"] != page_id or photo.get("published") \
                or photo.get("attached") or photo.get("deleted"):
            raise GraphError(400, f"(#100) param attached_media[{index}] has invalid media_fbid {fbid}", 100)
        photos.append((fbid, photo))
    if not attached:
        window = float(sandbox.network_state(NETWORK).get("duplicate_window", 600))
        for pub in sandbox.publications:
            if pub.network == NETWORK and pub.account_id == page_id and not pub.deleted and not pub.media \
                    and pub.text == message and pub.extra.get("link") == link and sandbox.now() - pub.at < window:
                raise GraphError(400, "(#506) Duplicate status message", 506)
    published = as_bool(params.get("published"), True)
    if not published and "scheduled_publish_time" in params:
        raise GraphError(400, "(#100) Scheduled posts are not imitated by the sandbox", 100)
    media = [dict(p["media"], photo_id=fbid) for fbid, p in photos]
    post_id = _register_post(sandbox, page_id, message=message, media=media, link=link, published=published)
    for _fbid, photo in photos:
        photo["attached"] = True
        photo["post_id"] = post_id
    return _json({"id": post_id}, page_id=page_id, sandbox=sandbox)


def _attached_media(params: dict[str, Any]) -> list[str]:
    """attached_media as a JSON array string, a JSON list, or attached_media[N]={"media_fbid":..}."""
    raw: Any = params.get("attached_media")
    items: list[Any] = []
    if isinstance(raw, str) and raw:
        try:
            items = json.loads(raw)
        except ValueError as exc:
            raise GraphError(400, "(#100) param attached_media must be an array.", 100) from exc
    elif isinstance(raw, list):
        items = raw
    indexed = sorted((k for k in params if k.startswith("attached_media[")),
                     key=lambda k: int(k[len("attached_media["):-1] or 0))
    for key in indexed:
        try:
            items.append(json.loads(params[key]) if isinstance(params[key], str) else params[key])
        except ValueError as exc:
            raise GraphError(400, f"(#100) param {key} must be a JSON object.", 100) from exc
    out = []
    for item in items:
        if not isinstance(item, dict) or not item.get("media_fbid"):
            raise GraphError(400, "(#100) param attached_media must contain objects with media_fbid.", 100)
        out.append(str(item["media_fbid"]))
    return out


async def _media_bytes(params: dict[str, Any], files: dict[str, bytes], url_field: str,
                       *, video: bool) -> dict[str, Any]:
    """Fetch `url_field` (or read the multipart `source`) and check the bytes like Facebook does."""
    if "source" in files:
        data = files["source"]
        mime = sniff_mime(data)
        width, height = image_size(data, mime)
        described: dict[str, Any] = {"url": None, "mime": mime, "bytes": len(data), "width": width,
                                     "height": height}
    elif params.get(url_field):
        fetched = await fetch_media(str(params[url_field]))
        if not fetched.ok and fetched.mime is None and fetched.error and fetched.error != "not an image or video":
            raise GraphError(400, f"(#100) {url_field} should represent a valid URL: the file could not be "
                                  f"downloaded ({fetched.error})", 100, 2061006)
        mime = fetched.mime
        described = fetched.describe()
    else:
        if video:
            raise GraphError(400, "(#100) One of the parameters file_url, source or upload_phase is required",
                             100)
        raise GraphError(400, "(#324) Requires upload file", 324)
    if video:
        if not mime or not mime.startswith("video/"):
            raise GraphError(400, "(#352) Sorry, the video file you selected is in a format that we don't "
                                  "support.", 352)
    else:
        if not mime or not mime.startswith("image/"):
            raise GraphError(400, "(#324) Missing or invalid image file", 324)
        if described["bytes"] > MAX_PHOTO_BYTES:
            raise GraphError(400, "(#100) The photo is too big.", 100, 1366046)
    return described


async def _photos(sandbox: Sandbox, info: TokenInfo, page_id: str, params: dict[str, Any],
                  files: dict[str, bytes]) -> web.Response:
    _page_token_for(sandbox, info, page_id, *PUBLISH_SCOPES)
    media = await _media_bytes(params, files, "url", video=False)
    media["kind"] = "image"
    caption = str(params.get("caption") or params.get("message") or "")
    if len(caption) > MAX_MESSAGE:
        raise GraphError(400, f"(#100) Param caption must be at most {MAX_MESSAGE} characters long.", 100)
    published = as_bool(params.get("published"), True)
    photo_id = str(30_000_000 + sandbox.next_id())
    alt = params.get("alt_text_custom")
    if alt:
        media["alt_text"] = str(alt)
    photo = {"kind": "photo", "page": page_id, "created": sandbox.now(), "media": media,
             "published": published, "alt_text": alt}
    _objects(sandbox)[photo_id] = photo
    if not published:
        return _json({"id": photo_id}, page_id=page_id, sandbox=sandbox)
    post_id = _register_post(sandbox, page_id, message=caption, media=[dict(media, photo_id=photo_id)],
                             link=None, published=True)
    photo["post_id"] = post_id
    photo["remote_id"] = post_id
    return _json({"id": photo_id, "post_id": post_id}, page_id=page_id, sandbox=sandbox)


async def _videos(sandbox: Sandbox, info: TokenInfo, page_id: str, params: dict[str, Any],
                  files: dict[str, bytes]) -> web.Response:
    _page_token_for(sandbox, info, page_id, *PUBLISH_SCOPES)
    require_scopes(info, "publish_video", code=200,
                   message="(#200) Requires publish_video permission to upload a video")
    if params.get("upload_phase"):
        raise GraphError(400, "(#100) The chunked upload_phase flow is not imitated by the sandbox; use "
                              "file_url or source", 100)
    media = await _media_bytes(params, files, "file_url", video=True)
    media["kind"] = "video"
    description = str(params.get("description") or "")
    if len(description) > MAX_MESSAGE:
        raise GraphError(400, f"(#100) Param description must be at most {MAX_MESSAGE} characters long.", 100)
    video_id = str(40_000_000 + sandbox.next_id())
    published = as_bool(params.get("published"), True)
    _objects(sandbox)[video_id] = {
        "kind": "video", "page": page_id, "created": sandbox.now(), "media": media, "published": published,
        "description": description, "title": params.get("title"), "video_status": "processing",
        "remote_id": video_id,
    }
    if published:
        # The video's feed story is {page}_{video}: insights and reactions are read there.
        _objects(sandbox)[f"{page_id}_{video_id}"] = {
            "kind": "post", "page": page_id, "message": description, "created": sandbox.now(),
            "published": True, "remote_id": video_id,
        }
        sandbox.publish(NETWORK, page_id, video_id, description, [media], title=params.get("title"))
    return _json({"id": video_id}, page_id=page_id, sandbox=sandbox)


def _photo_story(sandbox: Sandbox, info: TokenInfo, page_id: str, params: dict[str, Any]) -> web.Response:
    _page_token_for(sandbox, info, page_id, *PUBLISH_SCOPES)
    photo_id = require_param(params, "photo_id")
    photo = _objects(sandbox).get(photo_id)
    if photo is None or photo["kind"] != "photo" or photo["page"] != page_id or photo.get("published") \
            or photo.get("attached"):
        raise GraphError(400, f"(#100) param photo_id has invalid photo {photo_id}", 100)
    photo["attached"] = True
    post_id = str(50_000_000 + sandbox.next_id())
    _objects(sandbox)[post_id] = {"kind": "story", "page": page_id, "created": sandbox.now(), "remote_id": post_id}
    sandbox.publish(NETWORK, page_id, post_id, "", [dict(photo["media"], photo_id=photo_id)], story=True)
    return _json({"success": True, "post_id": post_id}, page_id=page_id, sandbox=sandbox)


async def _delete(sandbox: Sandbox, request: web.Request, params: dict[str, Any],
                  object_id: str) -> web.StreamResponse:
    info = live_token(sandbox, NETWORK, access_token_of(request, params))
    obj = _objects(sandbox).get(object_id)
    if obj is None or obj.get("deleted"):
        raise _unknown_object(object_id, "delete")
    if info.extra.get("type") != "page" or info.subject != obj["page"]:
        raise _unknown_object(object_id, "delete")
    require_scopes(info, *PUBLISH_SCOPES, code=200,
                   message="(#200) The user hasn't authorized the application to perform this action")
    obj["deleted"] = True
    targets = {object_id, obj.get("remote_id"), obj.get("post_id")}
    for other_id, other in _objects(sandbox).items():
        if other.get("remote_id") in targets or other_id in targets or other.get("on") in targets:
            other["deleted"] = True
    for pub in sandbox.publications:
        if pub.network == NETWORK and pub.remote_id in targets:
            pub.deleted = True
    return _json({"success": True}, page_id=obj["page"], sandbox=sandbox)


# --------------------------------------------------------------------------------------------------
# Comments


COMMENTABLE = ("post", "photo", "video")


def _commented_object(sandbox: Sandbox, info: TokenInfo, object_id: str, verb: str) -> dict[str, Any]:
    """The live post, photo or video the Page's own token may comment on (else Graph's #100)."""
    obj = _objects(sandbox).get(object_id)
    if obj is None or obj.get("deleted") or obj["kind"] not in COMMENTABLE or not obj.get("published", True):
        raise _unknown_object(object_id, verb)
    if info.extra.get("type") != "page" or info.subject != obj["page"]:
        raise _unknown_object(object_id, verb)
    return obj


def _comments_on(sandbox: Sandbox, object_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(cid, c) for cid, c in _objects(sandbox).items()
            if c["kind"] == "comment" and c.get("on") == object_id and not c.get("deleted")]


def _comment_view(comment_id: str, comment: dict[str, Any]) -> dict[str, Any]:
    page = PAGES[comment["page"]]
    post_part, _, fbid = comment_id.partition("_")
    return {"id": comment_id, "message": comment["message"], "created_time": _iso(comment["created"]),
            "from": {"name": page["name"], "id": page["id"]}, "object": {"id": comment["on"]},
            "can_remove": True, "like_count": 0, "comment_count": 0, "is_hidden": False,
            "permalink_url": f"https://www.facebook.com/{page['username']}/posts/{post_part}?comment_id={fbid}"}


def _comment(sandbox: Sandbox, info: TokenInfo, object_id: str, params: dict[str, Any]) -> web.Response:
    """`POST /{object}/comments {message}` as the Page: `{id: "{post}_{comment}"}`."""
    obj = _commented_object(sandbox, info, object_id, "post")
    require_scopes(info, *COMMENT_SCOPES, code=200,
                   message="(#200) The user hasn't authorized the application to perform this action: "
                           "commenting as the Page requires pages_manage_engagement")
    message = str(params.get("message") or "")
    if not message.strip() and not params.get("attachment_url") and not params.get("attachment_id"):
        raise GraphError(400, "(#100) The parameter message, attachment_id or attachment_url is required", 100)
    limit = int(sandbox.network_state(NETWORK).get("comment_max_chars", MAX_COMMENT))
    if len(message) > limit:
        raise GraphError(400, f"(#100) Param message must be at most {limit} characters long.", 100)
    # Graph names a comment after the object it is on: "{post}_{comment}", the post part being the
    # object's own id (the part after the Page's for a feed post).
    comment_id = f"{object_id.rsplit('_', 1)[-1]}_{60_000_000 + sandbox.next_id()}"
    _objects(sandbox)[comment_id] = {"kind": "comment", "page": obj["page"], "on": object_id, "message": message,
                                     "created": sandbox.now(), "published": True}
    return _json({"id": comment_id}, page_id=obj["page"], sandbox=sandbox)


def _list_comments(sandbox: Sandbox, info: TokenInfo, object_id: str, params: dict[str, Any]) -> web.Response:
    """`GET /{object}/comments`: oldest first, `limit` (25) per page with an `after` cursor;
    `summary=true` adds the total."""
    obj = _commented_object(sandbox, info, object_id, "get")
    require_scopes(info, "pages_read_engagement", code=10,
                   message="(#10) This endpoint requires the 'pages_read_engagement' permission or the "
                           "'Page Public Content Access' feature.")
    comments = _comments_on(sandbox, object_id)
    fields = parse_fields(params.get("fields")) or ["created_time", "from", "message"]
    try:
        limit = max(1, min(100, int(params.get("limit") or 25)))
        start = int(base64.urlsafe_b64decode(str(params["after"]).encode()).decode()) if params.get("after") else 0
    except ValueError as exc:
        raise GraphError(400, "(#100) Invalid limit or cursor", 100) from exc
    page = comments[start:start + limit]
    data = [_pick(_comment_view(cid, c), fields) for cid, c in page]
    body: dict[str, Any] = {"data": data}
    if page:
        def cursor(index: int) -> str:
            return base64.urlsafe_b64encode(str(index).encode()).decode()

        body["paging"] = {"cursors": {"before": cursor(start), "after": cursor(start + len(page))}}
        if start + len(page) < len(comments):
            body["paging"]["next"] = (f"https://graph.facebook.com/{VERSION}/{object_id}/comments"
                                      f"?limit={limit}&after={cursor(start + len(page))}")
    if as_bool(params.get("summary")):
        body["summary"] = {"order": "chronological", "total_count": len(comments), "can_comment": True}
    return _json(body, page_id=obj["page"], sandbox=sandbox)


# --------------------------------------------------------------------------------------------------
# Insights


def _insights(sandbox: Sandbox, info: TokenInfo, object_id: str, params: dict[str, Any]) -> web.Response:
    obj = _objects(sandbox).get(object_id)
    if obj is None or obj.get("deleted") or obj["kind"] != "post":
        raise _unknown_object(object_id)
    if info.extra.get("type") != "page" or info.subject != obj["page"]:
        raise _unknown_object(object_id)
    require_scopes(info, "read_insights", "pages_read_engagement", code=10,
                   message="(#10) Requires read_insights permission")
    names = [m for m in str(params.get("metric") or "").split(",") if m]
    if not names:
        raise GraphError(400, "(#100) The parameter metric is required", 100)
    for name in names:
        if name not in POST_METRICS_PER_HOUR:
            detail = " (deprecated)" if name in DEPRECATED_METRICS else ""
            raise GraphError(400, f"(#100) The value must be a valid insights metric{detail}: {name}", 100)
    pub: Publication | None = sandbox.publication(NETWORK, obj["remote_id"])
    h = hours_since(sandbox, pub.at if pub else obj["created"])
    data = []
    for name in names:
        per_hour = POST_METRICS_PER_HOUR[name]
        value = {k: v * h for k, v in per_hour.items()} if isinstance(per_hour, dict) else per_hour * h
        data.append({"name": name, "period": "lifetime", "values": [{"value": value}],
                     "title": name.replace("_", " ").title(), "description": f"Lifetime: {name}",
                     "id": f"{object_id}/insights/{name}/lifetime"})
    return _json({"data": data, "paging": {}}, page_id=obj["page"], sandbox=sandbox)


# --------------------------------------------------------------------------------------------------
# Faults


def fault_response(kind: str, sandbox: Sandbox) -> web.StreamResponse:
    """Facebook's own answers: Pages BUC throttling (80001), expired token (190/463), 500 (code 2)."""
    if kind == "rate_limit":
        return graph_error_response(
            400, "(#80001) There have been too many calls to this Page account. Wait a bit and try again. "
                 "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/"
                 "rate-limiting.", 80001,
            headers={"X-Business-Use-Case-Usage": buc_header("20001", "pages", 100, 7),
                     "X-App-Usage": json.dumps({"call_count": 42, "total_cputime": 10, "total_time": 12})},
        )
    if kind == "expire_token":
        return expired_token_response(sandbox.now())
    return server_error_response()
