"""Sandbox Instagram: the Instagram API with Instagram Login (shared/platforms.md section 2).

The world (deterministic): one professional (BUSINESS) account, app-scoped id 9000000000000001,
Instagram user id 17841400000000001, @ouibakery "Oui Bakery", 2,500 followers, 180 follows,
42 media before the tests publish any.

Imitated:
- `GET /www.instagram.com/oauth/authorize` -> 302 to redirect_uri?code&state#_ (consent implied).
- `POST /api.instagram.com/oauth/access_token` (form; 1 h token; errors in the old Instagram envelope
  `{"error_type", "code", "error_message"}`), `GET /graph.instagram.com/access_token`
  (`ig_exchange_token` -> 60 d), `GET /graph.instagram.com/refresh_access_token` (`ig_refresh_token`,
  only for long-lived tokens at least 24 h old and unexpired).
- `GET /v25.0/me|{ig-user-id}`, `POST /{ig-user-id}/media` (image_url, REELS video_url, STORIES,
  carousel items, CAROUSEL children), `GET /{container}?fields=status_code,status`,
  `POST /{ig-user-id}/media_publish?creation_id`, `GET /{media}?fields=permalink,shortcode,...`,
  `GET /{media}/insights`, `GET /{ig-user-id}/content_publishing_limit`, `DELETE /{media}`.
- Media URLs are fetched over HTTP when the container is created; a failed fetch, bytes that are not
  a JPEG (images; `network_state["jpeg_only"]`, default True) or not an MP4/MOV (videos) make the
  container end in ERROR. An aspect ratio outside 4:5..1.91:1 is refused at once (36003/2207009).
- Containers: IN_PROGRESS -> FINISHED (see sandbox/_meta.py knobs), EXPIRED after 24 h, PUBLISHED once.
  media_publish before FINISHED -> 9007/2207027; a CAROUSEL whose children are not all FINISHED is
  refused the same way; carousels need 2..10 children.
- Captions: 2,200 chars, 30 hashtags, 20 mentions (100/2207010). Publishing limit
  `network_state["publish_limit"]` per rolling 24 h (default 100) -> 9/2207042.
- `POST /{ig-media-id}/comments {message}` -> `{id}` (`instagram_business_manage_comments`, else #10
  HTTP 403; unknown, deleted or another account's media -> 100/33; a story -> #100; an empty message
  or one over `comment_max_chars`, default 2,200 [unconf] -> #100), read back with
  `GET /{ig-media-id}/comments` (`{data: [{timestamp, text, id}]}`, other fields on request) and
  counted in the media's `comments_count`.
- DELETE answers `{success: true}` only when `network_state["delete_supported"]` is true (the doc marks
  media deletion as unconfirmed); otherwise Graph's "Unsupported delete request" (100/33).

Media insights grow per hour h since publishing
(h counts the hour under way: 1 in the first hour) (MEDIA_METRICS_PER_HOUR): views 120h,
reach 90h, likes 9h, comments 3h, shares 2h, saved 1h, total_interactions 15h.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ouipost.sandbox._meta import (
    Container,
    GraphError,
    access_token_of,
    apps,
    as_bool,
    buc_header,
    container_status,
    containers,
    exchange_for_long_lived,
    expired_token_response,
    fetch_media,
    graph_error_response,
    graph_route,
    hours_since,
    live_token,
    parse_fields,
    read_params,
    refresh_long_lived,
    require_param,
    require_scopes,
    server_error_response,
    with_query,
)
from ouipost.sandbox.core import Sandbox, TokenInfo

NETWORK = "instagram"
HOSTS = ("www.instagram.com", "api.instagram.com", "graph.instagram.com")
VERSION = "v25.0"

SHORT_TOKEN_TTL = 3600
LONG_TOKEN_TTL = 5183944
MIN_REFRESH_AGE = 24 * 3600
MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
CAROUSEL_MIN, CAROUSEL_MAX = 2, 10
DEFAULT_PUBLISH_LIMIT = 100

ACCOUNT: dict[str, Any] = {
    "id": "9000000000000001", "user_id": "17841400000000001", "username": "ouibakery", "name": "Oui Bakery",
    "account_type": "BUSINESS", "profile_picture_url": "https://scontent.cdninstagram.com/v/ouibakery.jpg",
    "followers_count": 2500, "follows_count": 180, "media_count": 42,
}
BASIC = "instagram_business_basic"
PUBLISH = "instagram_business_content_publish"
INSIGHTS = "instagram_business_manage_insights"
COMMENTS = "instagram_business_manage_comments"
MAX_COMMENT = 2200  # [unconf] as long as a caption; `comment_max_chars` changes it
MEDIA_METRICS_PER_HOUR = {"views": 120, "reach": 90, "likes": 9, "comments": 3, "shares": 2, "saved": 1,
                          "total_interactions": 15}
REELS_METRICS = {"ig_reels_avg_watch_time": 0, "ig_reels_video_view_total_time": 0}
DEPRECATED_METRICS = {"impressions", "plays", "clips_replays_count", "ig_reels_aggregated_all_plays_count",
                      "video_views"}


def _state(sandbox: Sandbox) -> dict[str, Any]:
    state = sandbox.network_state(NETWORK)
    state.setdefault("media", {})  # media id -> dict
    state.setdefault("comments", {})  # comment id -> {"id", "media", "text", "timestamp"}
    state.setdefault("used_codes", set())
    return state


def _ig_error(message: str, status: int = 400) -> web.Response:
    """The old Instagram envelope that api.instagram.com still answers with."""
    return web.json_response({"error_type": "OAuthException", "code": status, "error_message": message},
                             status=status)


def _unknown_object(object_id: str, verb: str = "get") -> GraphError:
    return GraphError(
        400, f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be loaded due "
             "to missing permissions, or does not support this operation.", 100, 33, type="IGApiException",
    )



def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Register the Instagram (Instagram Login) routes on the sandbox app."""
    route = graph_route(sandbox, NETWORK)

    @route
    async def authorize(request: web.Request) -> web.StreamResponse:
        q = request.query
        client_id, redirect_uri = q.get("client_id"), q.get("redirect_uri")
        if not client_id or client_id not in apps(sandbox, NETWORK):
            return web.Response(status=400, text="Invalid platform app", content_type="text/html")
        if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
            return web.Response(status=400, text="Invalid redirect_uri", content_type="text/html")
        if q.get("response_type") != "code":
            return web.Response(status=400, text="Invalid response_type", content_type="text/html")
        requested = [s for s in re.split(r"[,\s]+", q.get("scope", "")) if s]
        if BASIC not in requested:
            return web.Response(status=400, text=f"Invalid scope: {BASIC} is required", content_type="text/html")
        declined = set(sandbox.network_state(NETWORK).get("declined_scopes", []))
        code = sandbox.new_code(NETWORK, client_id=client_id, redirect_uri=redirect_uri,
                                scopes=[s for s in requested if s not in declined])
        params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        # Instagram appends "#_" to the redirect.
        return web.Response(status=302, headers={"Location": with_query(redirect_uri, params, "_")})

    @route
    async def code_exchange(request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/x-www-form-urlencoded":
            return _ig_error("Missing required field client_id")
        form = dict((await request.post()).items())
        for name in ("client_id", "client_secret", "grant_type", "redirect_uri", "code"):
            if not form.get(name):
                return _ig_error(f"Missing required field {name}")
        known = apps(sandbox, NETWORK)
        if form["client_id"] not in known:
            return _ig_error("Invalid platform app")
        if known[str(form["client_id"])] != form["client_secret"]:
            return _ig_error("Error validating client secret")
        if form["grant_type"] != "authorization_code":
            return _ig_error("Unsupported grant_type")
        code = str(form["code"])
        used: set[str] = _state(sandbox)["used_codes"]
        if code in used:
            return _ig_error("This authorization code has been used")
        data = sandbox.take_code(NETWORK, code)
        if data is None:
            return _ig_error("Invalid authorization code")
        used.add(code)
        if data["client_id"] != form["client_id"] or data["redirect_uri"] != form["redirect_uri"]:
            return _ig_error("Error validating verification code. Please make sure your redirect_uri is "
                             "identical to the one you used in the OAuth dialog request")
        token = sandbox.new_token(NETWORK, ACCOUNT["user_id"], data["scopes"], SHORT_TOKEN_TTL,
                                  client_id=data["client_id"], long_lived=False, issued_at=sandbox.now())
        return web.json_response({"access_token": token, "user_id": int(ACCOUNT["id"]),
                                  "permissions": ",".join(data["scopes"])})

    @route
    async def exchange(request: web.Request) -> web.StreamResponse:
        params, _ = await read_params(request)
        return exchange_for_long_lived(sandbox, NETWORK, params, grant_type="ig_exchange_token", ttl=LONG_TOKEN_TTL)

    @route
    async def refresh(request: web.Request) -> web.StreamResponse:
        params, _ = await read_params(request)
        return refresh_long_lived(sandbox, NETWORK, params, grant_type="ig_refresh_token", ttl=LONG_TOKEN_TTL,
                                  min_age=MIN_REFRESH_AGE)

    @route
    async def node(request: web.Request) -> web.StreamResponse:
        object_id = request.match_info["object_id"]
        params, _ = await read_params(request)
        info = live_token(sandbox, NETWORK, access_token_of(request, params))
        require_scopes(info, BASIC)
        if request.method == "DELETE":
            return _delete(sandbox, info, object_id)
        if request.method != "GET":
            raise _unknown_object(object_id, request.method.lower())
        fields = parse_fields(params.get("fields"))
        if object_id in ("me", ACCOUNT["id"], ACCOUNT["user_id"]):
            return web.json_response(_account_view(sandbox, fields))
        found = containers(sandbox, NETWORK).get(object_id)
        if found is not None and found.owner == info.subject:
            return web.json_response(_container_view(sandbox, found, fields))
        media = _state(sandbox)["media"].get(object_id)
        if media is not None and media["owner"] == info.subject and not media.get("deleted"):
            return web.json_response(_media_view(sandbox, media, fields))
        raise _unknown_object(object_id)

    @route
    async def edge(request: web.Request) -> web.StreamResponse:
        object_id, name = request.match_info["object_id"], request.match_info["edge"]
        params, _ = await read_params(request)
        info = live_token(sandbox, NETWORK, access_token_of(request, params))
        require_scopes(info, BASIC)
        if object_id == "me" or object_id == ACCOUNT["id"]:
            object_id = ACCOUNT["user_id"]
        if name == "insights" and request.method == "GET":
            return _insights(sandbox, info, object_id, params)
        if name == "comments" and request.method == "POST":
            return _comment(sandbox, info, object_id, params)
        if name == "comments" and request.method == "GET":
            return _list_comments(sandbox, info, object_id, params)
        if object_id != info.subject:
            raise _unknown_object(object_id, request.method.lower())
        if name == "media" and request.method == "POST":
            return await _create_container(sandbox, info, params)
        if name == "media_publish" and request.method == "POST":
            return _publish(sandbox, info, params)
        if name == "content_publishing_limit" and request.method == "GET":
            limit = int(sandbox.network_state(NETWORK).get("publish_limit", DEFAULT_PUBLISH_LIMIT))
            return web.json_response({"data": [{"quota_usage": _published_last_day(sandbox, info.subject),
                                                "config": {"quota_total": limit, "quota_duration": 86400}}]})
        raise GraphError(400, f"(#100) Tried accessing nonexisting field ({name})", 100)

    app.router.add_get("/www.instagram.com/oauth/authorize", authorize)
    app.router.add_post("/api.instagram.com/oauth/access_token", code_exchange)
    app.router.add_get("/graph.instagram.com/access_token", exchange)
    app.router.add_get("/graph.instagram.com/refresh_access_token", refresh)
    app.router.add_route("*", f"/graph.instagram.com/{VERSION}/{{object_id}}/{{edge}}", edge)
    app.router.add_route("*", f"/graph.instagram.com/{VERSION}/{{object_id}}", node)


def _pick(data: dict[str, Any], fields: list[str], default: list[str]) -> dict[str, Any]:
    out = {"id": data["id"]}
    for name in fields or default:
        if name in data:
            out[name] = data[name]
    return out


def _account_view(sandbox: Sandbox, fields: list[str]) -> dict[str, Any]:
    data = dict(ACCOUNT)
    data["media_count"] = ACCOUNT["media_count"] + sum(
        1 for m in _state(sandbox)["media"].values() if not m.get("deleted") and m["product"] != "STORY")
    return _pick(data, fields, ["user_id", "username"])


def _container_view(sandbox: Sandbox, container: Container, fields: list[str]) -> dict[str, Any]:
    polled = not fields or "status_code" in fields or "status" in fields
    status = container_status(sandbox, NETWORK, container, poll=polled)
    data = {"id": container.id, "status_code": status,
            "status": f"Error: {container.error}" if status == "ERROR" else status.title().replace("_", " ")}
    return _pick(data, fields, ["status_code"])


def _media_view(sandbox: Sandbox, media: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    pub = sandbox.publication(NETWORK, media["id"])
    h = hours_since(sandbox, pub.at) if pub else 0
    data = dict(media)
    data["like_count"] = MEDIA_METRICS_PER_HOUR["likes"] * h
    data["comments_count"] = MEDIA_METRICS_PER_HOUR["comments"] * h + len(_comments_on(sandbox, media["id"]))
    data.pop("owner", None)
    return _pick(data, fields, ["id"])


# --------------------------------------------------------------------------------------------------
# Containers


def _check_caption(caption: str) -> None:
    if len(caption) > MAX_CAPTION:
        raise GraphError(400, f"(#100) The caption is longer than {MAX_CAPTION} characters.", 100, 2207010,
                         user_title="Caption too long")
    if len(re.findall(r"(?<!\w)#\w", caption)) > MAX_HASHTAGS:
        raise GraphError(400, f"(#100) The caption has more than {MAX_HASHTAGS} hashtags.", 100, 2207010)
    if len(re.findall(r"(?<!\w)@\w", caption)) > MAX_MENTIONS:
        raise GraphError(400, f"(#100) The caption has more than {MAX_MENTIONS} mentions.", 100, 2207010)


async def _fetch_into(sandbox: Sandbox, container: Container, url: str, kind: str) -> None:
    """Download like Instagram does; failures turn the container to ERROR (seen when polled)."""
    fetched = await fetch_media(url)
    media = fetched.describe() | {"kind": kind}
    container.media.append(media)
    if not fetched.ok:
        container.error = "Media download has failed. The media URI doesn't meet our requirements. (2207052)"
        return
    if kind == "image":
        jpeg_only = as_bool(sandbox.network_state(NETWORK).get("jpeg_only"), True)
        allowed = ("image/jpeg",) if jpeg_only else ("image/jpeg", "image/png")
        if fetched.mime not in allowed:
            container.error = f"The image format is not supported ({fetched.mime}). Only JPEG is. (2207005)"
            return
        if fetched.width and fetched.height:
            ratio = fetched.width / fetched.height
            if ratio < 0.8 - 1e-3 or ratio > 1.91 + 1e-3:
                raise GraphError(400, "The aspect ratio is not supported.", 36003, 2207009,
                                 user_title="Invalid aspect ratio",
                                 user_msg="The submitted image with aspect ratio ('{0}', '{1}') cannot be "
                                          "published. Please submit an image with a valid aspect ratio.")
    elif fetched.mime not in ("video/mp4", "video/quicktime"):
        container.error = f"The video format is not supported ({fetched.mime}). (2207026)"


async def _create_container(sandbox: Sandbox, info: TokenInfo, params: dict[str, Any]) -> web.Response:
    require_scopes(info, PUBLISH)
    media_type = str(params.get("media_type") or "IMAGE").upper()
    is_item = as_bool(params.get("is_carousel_item"))
    caption = str(params.get("caption") or "")
    _check_caption(caption)
    if params.get("alt_text") and media_type not in ("IMAGE",):
        raise GraphError(400, "(#100) alt_text is only supported for images", 100)
    box = containers(sandbox, NETWORK)
    knob_error = sandbox.network_state(NETWORK).get("container_error")
    container = Container(id=str(17_900_000_000_000_000 + sandbox.next_id()), owner=info.subject,
                          media_type=media_type, created_at=sandbox.now(), text=caption,
                          params={k: v for k, v in params.items() if k != "access_token"},
                          is_carousel_item=is_item)
    if media_type == "CAROUSEL":
        if is_item:
            raise GraphError(400, "(#100) A carousel cannot be a carousel item", 100)
        children = [c for c in str(require_param(params, "children")).split(",") if c]
        if not CAROUSEL_MIN <= len(children) <= CAROUSEL_MAX:
            raise GraphError(400, f"(#100) The carousel must have between {CAROUSEL_MIN} and {CAROUSEL_MAX} "
                                  "children: too little or too many attachments", 100, 2207028)
        for child_id in children:
            child = box.get(child_id)
            if child is None or child.owner != info.subject or not child.is_carousel_item:
                raise GraphError(400, f"(#100) Invalid carousel child {child_id}", 100, 2207028)
            if container_status(sandbox, NETWORK, child, poll=False) != "FINISHED":
                raise GraphError(400, "Media ID is not available", 9007, 2207027,
                                 user_msg=f"The carousel item {child_id} is not ready; wait until it is FINISHED")
        container.children = children
        container.media = [m for c in children for m in box[c].media]
    elif media_type == "IMAGE" or (media_type == "STORIES" and params.get("image_url")):
        await _fetch_into(sandbox, container, require_param(params, "image_url"), "image")
        if params.get("alt_text"):
            container.media[-1]["alt_text"] = str(params["alt_text"])
    elif media_type in ("REELS", "STORIES") or (media_type == "VIDEO" and is_item):
        await _fetch_into(sandbox, container, require_param(params, "video_url"), "video")
    elif media_type == "VIDEO":
        raise GraphError(400, "(#100) The VIDEO media type is only supported for carousel items; "
                              "publish single videos as REELS", 100, 2207053)
    else:
        raise GraphError(400, "(#100) Param media_type must be one of IMAGE, VIDEO, REELS, STORIES, CAROUSEL", 100)
    if media_type == "STORIES" and is_item:
        raise GraphError(400, "(#100) Stories cannot be carousel items", 100)
    if knob_error and not container.error:
        container.error = str(knob_error)
    box[container.id] = container
    return web.json_response({"id": container.id})


def _published_last_day(sandbox: Sandbox, owner: str) -> int:
    return sum(1 for p in sandbox.publications
               if p.network == NETWORK and p.account_id == owner and sandbox.now() - p.at < 86400)


def _publish(sandbox: Sandbox, info: TokenInfo, params: dict[str, Any]) -> web.Response:
    require_scopes(info, PUBLISH)
    creation_id = require_param(params, "creation_id")
    container = containers(sandbox, NETWORK).get(creation_id)
    if container is None or container.owner != info.subject:
        raise GraphError(400, "(#100) Param creation_id is not a valid container id", 100, 2207006)
    status = container_status(sandbox, NETWORK, container, poll=False)
    if status == "IN_PROGRESS":
        raise GraphError(400, "Media ID is not available", 9007, 2207027,
                         user_title="Media not ready",
                         user_msg="The media is not ready for publishing, please wait for a moment")
    if status == "EXPIRED":
        raise GraphError(400, "The media builder has expired", 100, 2207020)
    if status == "ERROR":
        raise GraphError(400, f"Media could not be published: {container.error}", 9007, 2207032)
    if status == "PUBLISHED":
        raise GraphError(400, "(#100) This container has already been published", 100)
    if container.is_carousel_item:
        raise GraphError(400, "(#100) Carousel items are published through their CAROUSEL container", 100)
    limit = int(sandbox.network_state(NETWORK).get("publish_limit", DEFAULT_PUBLISH_LIMIT))
    if _published_last_day(sandbox, info.subject) >= limit:
        raise GraphError(400, "The user has reached the maximum number of posts that can be published through "
                              "the API in 24 hours.", 9, 2207042, user_title="Publishing limit reached")
    media_id = str(18_000_000_000_000_000 + sandbox.next_id())
    shortcode = secrets.token_urlsafe(8)[:11].replace("-", "C").replace("_", "x")
    product = {"REELS": "REELS", "STORIES": "STORY"}.get(container.media_type, "FEED")
    if product == "STORY":
        permalink = f"https://www.instagram.com/stories/{ACCOUNT['username']}/{media_id}/"
    else:
        permalink = f"https://www.instagram.com/{'reel' if product == 'REELS' else 'p'}/{shortcode}/"
    media_type = {"CAROUSEL": "CAROUSEL_ALBUM", "REELS": "VIDEO"}.get(container.media_type, "IMAGE")
    if container.media_type == "STORIES" and container.media and container.media[0]["kind"] == "video":
        media_type = "VIDEO"
    _state(sandbox)["media"][media_id] = {
        "id": media_id, "owner": info.subject, "media_type": media_type, "media_product_type": product,
        "product": product, "permalink": permalink, "shortcode": shortcode, "caption": container.text,
        "timestamp": _iso(sandbox.now()), "username": ACCOUNT["username"], "container": container.id,
    }
    container.status = "PUBLISHED"
    sandbox.publish(NETWORK, info.subject, media_id, container.text, container.media,
                    media_type=media_type, product=product, shortcode=shortcode, container_id=container.id)
    return web.json_response({"id": media_id})


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


def _delete(sandbox: Sandbox, info: TokenInfo, object_id: str) -> web.Response:
    media = _state(sandbox)["media"].get(object_id)
    supported = as_bool(sandbox.network_state(NETWORK).get("delete_supported"), False)
    if not supported or media is None or media["owner"] != info.subject or media.get("deleted"):
        raise _unknown_object(object_id, "delete")
    require_scopes(info, PUBLISH)
    media["deleted"] = True
    for pub in sandbox.publications:
        if pub.network == NETWORK and pub.remote_id == object_id:
            pub.deleted = True
    return web.json_response({"success": True})


def _commented_media(sandbox: Sandbox, info: TokenInfo, media_id: str, verb: str) -> dict[str, Any]:
    media = _state(sandbox)["media"].get(media_id)
    if media is None or media["owner"] != info.subject or media.get("deleted"):
        raise _unknown_object(media_id, verb)
    return media


def _comments_on(sandbox: Sandbox, media_id: str) -> list[dict[str, Any]]:
    return [c for c in _state(sandbox)["comments"].values() if c["media"] == media_id]


def _comment_view(comment: dict[str, Any]) -> dict[str, Any]:
    return {"id": comment["id"], "text": comment["text"], "timestamp": _iso(comment["created"]),
            "username": ACCOUNT["username"], "from": {"id": ACCOUNT["user_id"], "username": ACCOUNT["username"]},
            "like_count": 0, "hidden": False, "media": {"id": comment["media"]}}


def _comment(sandbox: Sandbox, info: TokenInfo, media_id: str, params: dict[str, Any]) -> web.Response:
    """`POST /{ig-media-id}/comments?message=` -> `{id}` (needs instagram_business_manage_comments)."""
    media = _commented_media(sandbox, info, media_id, "post")
    require_scopes(info, COMMENTS)
    if media["product"] == "STORY":
        raise GraphError(400, "(#100) Comments are not supported on story media", 100)
    message = require_param(params, "message")
    limit = int(sandbox.network_state(NETWORK).get("comment_max_chars", MAX_COMMENT))
    if len(message) > limit:
        raise GraphError(400, f"(#100) The comment is longer than {limit} characters.", 100)
    comment_id = str(17_850_000_000_000_000 + sandbox.next_id())
    _state(sandbox)["comments"][comment_id] = {"id": comment_id, "media": media_id, "text": message,
                                               "created": sandbox.now()}
    return web.json_response({"id": comment_id})


def _list_comments(sandbox: Sandbox, info: TokenInfo, media_id: str, params: dict[str, Any]) -> web.Response:
    """`GET /{ig-media-id}/comments`: `{data: [{timestamp, text, id}]}` oldest first, as the docs' example."""
    _commented_media(sandbox, info, media_id, "get")
    require_scopes(info, COMMENTS)
    fields = parse_fields(params.get("fields"))
    comments = sorted(_comments_on(sandbox, media_id), key=lambda c: (c["created"], c["id"]))
    return web.json_response({"data": [_pick(_comment_view(c), fields, ["timestamp", "text"]) for c in comments]})


def _insights(sandbox: Sandbox, info: TokenInfo, object_id: str, params: dict[str, Any]) -> web.Response:
    media = _state(sandbox)["media"].get(object_id)
    if media is None or media["owner"] != info.subject or media.get("deleted"):
        raise _unknown_object(object_id)
    require_scopes(info, INSIGHTS)
    names = [m for m in str(params.get("metric") or "").split(",") if m]
    if not names:
        raise GraphError(400, "(#100) The parameter metric is required", 100)
    allowed = dict(MEDIA_METRICS_PER_HOUR)
    if media["product"] == "REELS":
        allowed.update(REELS_METRICS)
    for index, name in enumerate(names):
        if name not in allowed:
            hint = " (this metric is no longer supported)" if name in DEPRECATED_METRICS else ""
            raise GraphError(400, f"(#100) metric[{index}] must be one of the following values: "
                                  f"{', '.join(allowed)}{hint}", 100)
    pub = sandbox.publication(NETWORK, object_id)
    h = hours_since(sandbox, pub.at) if pub else 0
    data = [{"name": n, "period": "lifetime", "values": [{"value": allowed[n] * h}],
             "title": n.replace("_", " ").title(), "description": f"Lifetime {n}",
             "id": f"{object_id}/insights/{n}/lifetime"} for n in names]
    return web.json_response({"data": data})


def fault_response(kind: str, sandbox: Sandbox) -> web.StreamResponse:
    """Instagram's own answers: BUC throttling (80002), expired token (190/463), 500 (code 2)."""
    if kind == "rate_limit":
        return graph_error_response(
            400, "(#80002) There have been too many calls to this Instagram account. Wait a bit and try "
                 "again. For more info, please refer to https://developers.facebook.com/docs/graph-api/"
                 "overview/rate-limiting.", 80002,
            headers={"X-Business-Use-Case-Usage": buc_header(ACCOUNT["user_id"], "instagram", 100, 12),
                     "X-App-Usage": json.dumps({"call_count": 30, "total_cputime": 5, "total_time": 8})},
        )
    if kind == "expire_token":
        return expired_token_response(sandbox.now())
    return server_error_response()
