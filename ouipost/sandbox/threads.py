"""Sandbox Threads: the Threads API v1.0 (shared/platforms.md section 8).

The world (deterministic): one profile, id 26000000000000001, @ouibakery "Oui Bakery", 900 followers.

Imitated:
- `GET /threads.net/oauth/authorize` -> 302 to redirect_uri?code&state#_ (consent implied; scopes are
  comma-separated and `threads_basic` is required).
- `POST /graph.threads.net/oauth/access_token` (1 h token, `{access_token, user_id}`),
  `GET /graph.threads.net/access_token?grant_type=th_exchange_token` (60 d),
  `GET /graph.threads.net/refresh_access_token?grant_type=th_refresh_token` (long-lived tokens at
  least 24 h old and unexpired).
- `/v1.0/me`, `POST /{user}/threads` (TEXT, IMAGE, VIDEO, CAROUSEL; text <= 500 with emojis counted
  as their UTF-8 bytes; carousel 2..20 FINISHED items), `GET /{container}?fields=status,error_message`,
  `POST /{user}/threads_publish?creation_id`, `GET /{media}?fields=permalink,shortcode,...`,
  `GET /{media}/insights`, `GET /{user}/threads_insights`, `GET /{user}/threads_publishing_limit`,
  `DELETE /{media}` (`threads_delete`; 100 deletions per 24 h).
- Media URLs are fetched when the container is created; a failed fetch or wrong bytes end the
  container in ERROR with an `error_message` (FAILED_DOWNLOADING_VIDEO, FAILED_PROCESSING_VIDEO,
  FAILED_DOWNLOADING_IMAGE, INVALID_IMAGE_FORMAT; the image labels are the sandbox's own).
- threads_publish before FINISHED -> 9007/2207027 (Instagram's code; the Threads one is not
  documented). 250 posts per 24 h (`network_state["publish_limit"]`) -> 9/2207042.
- Replies: a container with `reply_to_id` (any media type) needs `threads_manage_replies` (code 10,
  HTTP 403 otherwise); a parent that does not exist, is deleted or is not the profile's -> code 100
  subcode 33 "Object with ID ... does not exist", checked at creation and again at threads_publish.
  Published replies count against 1,000 per 24 h (`network_state["reply_limit"]`; reached -> 9/2207042,
  the sandbox's choice: the Threads code is not documented), apart from the 250 posts;
  `threads_publishing_limit` reports `reply_quota_usage` and `reply_config` (asking for them by
  `fields` needs threads_manage_replies). A reply reads back with `is_reply`, `replied_to{id}`,
  `root_post{id}`, `is_reply_owned_by_me`, and the parent with `has_replies`; `GET /{media}/replies`
  (top-level replies) and `GET /{media}/conversation` (every reply below, flattened) need
  threads_read_replies, list newest first (`reverse=false`: oldest first), `fields` default `id`.
  Replies are not added to the parent's `replies` insight (a formula of time, below).

Media insights grow per hour h since publishing
(h counts the hour under way: 1 in the first hour) (MEDIA_METRICS_PER_HOUR): views 60h, likes 6h,
replies 2h, reposts 1h, quotes 1h, shares 1h. followers_count is FOLLOWERS.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ouipost.sandbox._meta import (
    Container,
    GraphError,
    access_token_of,
    apps,
    as_bool,
    check_client,
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

NETWORK = "threads"
HOSTS = ("threads.net", "www.threads.net", "graph.threads.net")
VERSION = "v1.0"

SHORT_TOKEN_TTL = 3600
LONG_TOKEN_TTL = 5183944
MIN_REFRESH_AGE = 24 * 3600
MAX_TEXT = 500
CAROUSEL_MIN, CAROUSEL_MAX = 2, 20
DEFAULT_PUBLISH_LIMIT = 250
DEFAULT_REPLY_LIMIT = 1000
DELETE_LIMIT = 100

PROFILE: dict[str, Any] = {
    "id": "26000000000000001", "username": "ouibakery", "name": "Oui Bakery",
    "threads_profile_picture_url": "https://scontent.cdninstagram.com/v/threads-ouibakery.jpg",
    "threads_biography": "Bread, daily.",
}
FOLLOWERS = 900
BASIC = "threads_basic"
PUBLISH = "threads_content_publish"
INSIGHTS = "threads_manage_insights"
DELETE = "threads_delete"
MANAGE_REPLIES = "threads_manage_replies"
READ_REPLIES = "threads_read_replies"
LIMIT_FIELDS = ("quota_usage", "config", "reply_quota_usage", "reply_config")
MEDIA_METRICS_PER_HOUR = {"views": 60, "likes": 6, "replies": 2, "reposts": 1, "quotes": 1, "shares": 1}
USER_METRICS = ("views", "likes", "replies", "reposts", "quotes", "clicks", "followers_count")


def threads_length(text: str) -> int:
    """Threads' count: one per character, except emojis, which count their UTF-8 bytes."""
    total = 0
    for char in text:
        emoji_like = (unicodedata.category(char) == "So" or ord(char) >= 0x1F000
                      or char in ("\u200d", "\ufe0f"))
        total += len(char.encode()) if emoji_like else 1
    return total


def _state(sandbox: Sandbox) -> dict[str, Any]:
    state = sandbox.network_state(NETWORK)
    state.setdefault("media", {})
    state.setdefault("used_codes", set())
    state.setdefault("deletions", [])
    return state


def _unknown_object(object_id: str, verb: str = "get") -> GraphError:
    return GraphError(
        400, f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be loaded due "
             "to missing permissions, or does not support this operation", 100, 33, type="THApiException",
    )



def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Register the Threads routes on the sandbox app."""
    route = graph_route(sandbox, NETWORK)

    @route
    async def authorize(request: web.Request) -> web.StreamResponse:
        q = request.query
        client_id, redirect_uri = q.get("client_id"), q.get("redirect_uri")
        if not client_id or client_id not in apps(sandbox, NETWORK):
            return web.Response(status=400, text="Invalid app ID", content_type="text/html")
        if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
            return web.Response(status=400, text="Invalid redirect_uri", content_type="text/html")
        if q.get("response_type") != "code":
            return web.Response(status=400, text="Invalid response_type", content_type="text/html")
        requested = [s for s in q.get("scope", "").split(",") if s]
        if BASIC not in requested:
            return web.Response(status=400, text=f"Invalid scope: {BASIC} is required", content_type="text/html")
        declined = set(sandbox.network_state(NETWORK).get("declined_scopes", []))
        code = sandbox.new_code(NETWORK, client_id=client_id, redirect_uri=redirect_uri,
                                scopes=[s for s in requested if s not in declined])
        params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        return web.Response(status=302, headers={"Location": with_query(redirect_uri, params, "_")})

    @route
    async def code_exchange(request: web.Request) -> web.StreamResponse:
        params, _ = await read_params(request)
        check_client(sandbox, NETWORK, params.get("client_id"), require_param(params, "client_secret"))
        if params.get("grant_type") != "authorization_code":
            raise GraphError(400, "Unsupported grant_type, expected authorization_code", 100)
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
            raise GraphError(400, "Error validating verification code. Please make sure your redirect_uri is "
                                  "identical to the one you used in the OAuth dialog request", 100, 36008)
        token = sandbox.new_token(NETWORK, PROFILE["id"], data["scopes"], SHORT_TOKEN_TTL,
                                  client_id=data["client_id"], long_lived=False, issued_at=sandbox.now())
        return web.json_response({"access_token": token, "user_id": int(PROFILE["id"])})

    @route
    async def exchange(request: web.Request) -> web.StreamResponse:
        params, _ = await read_params(request)
        return exchange_for_long_lived(sandbox, NETWORK, params, grant_type="th_exchange_token", ttl=LONG_TOKEN_TTL)

    @route
    async def refresh(request: web.Request) -> web.StreamResponse:
        params, _ = await read_params(request)
        return refresh_long_lived(sandbox, NETWORK, params, grant_type="th_refresh_token", ttl=LONG_TOKEN_TTL,
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
        if object_id in ("me", PROFILE["id"]):
            return web.json_response(_pick(PROFILE, fields, ["id"]))
        found = containers(sandbox, NETWORK).get(object_id)
        if found is not None and found.owner == info.subject:
            polled = not fields or "status" in fields
            status = container_status(sandbox, NETWORK, found, poll=polled)
            data: dict[str, Any] = {"id": found.id, "status": status}
            if status == "ERROR":
                data["error_message"] = found.error
            return web.json_response(_pick(data, fields, ["id"]))
        media = _state(sandbox)["media"].get(object_id)
        if media is not None and media["owner"] == info.subject and not media.get("deleted"):
            return web.json_response(_pick(_media_view(sandbox, media), fields, ["id"]))
        raise _unknown_object(object_id)

    @route
    async def edge(request: web.Request) -> web.StreamResponse:
        object_id, name = request.match_info["object_id"], request.match_info["edge"]
        params, _ = await read_params(request)
        info = live_token(sandbox, NETWORK, access_token_of(request, params))
        require_scopes(info, BASIC)
        if object_id == "me":
            object_id = info.subject
        if name == "insights" and request.method == "GET":
            return _media_insights(sandbox, info, object_id, params)
        if name in ("replies", "conversation") and request.method == "GET":
            return _replies(sandbox, info, object_id, params, nested=name == "conversation")
        if object_id != info.subject:
            raise _unknown_object(object_id, request.method.lower())
        if name == "threads" and request.method == "POST":
            return await _create_container(sandbox, info, params)
        if name == "threads_publish" and request.method == "POST":
            return _publish(sandbox, info, params)
        if name == "threads_insights" and request.method == "GET":
            return _user_insights(sandbox, info, params)
        if name == "threads_publishing_limit" and request.method == "GET":
            return _publishing_limit(sandbox, info, params)
        raise GraphError(400, f"(#100) Tried accessing nonexisting field ({name})", 100)

    app.router.add_get("/threads.net/oauth/authorize", authorize)
    app.router.add_get("/www.threads.net/oauth/authorize", authorize)
    app.router.add_post("/graph.threads.net/oauth/access_token", code_exchange)
    app.router.add_get("/graph.threads.net/access_token", exchange)
    app.router.add_get("/graph.threads.net/refresh_access_token", refresh)
    app.router.add_route("*", f"/graph.threads.net/{VERSION}/{{object_id}}/{{edge}}", edge)
    app.router.add_route("*", f"/graph.threads.net/{VERSION}/{{object_id}}", node)


def _pick(data: dict[str, Any], fields: list[str], default: list[str]) -> dict[str, Any]:
    out = {"id": data["id"]}
    for name in fields or default:
        if name in data:
            out[name] = data[name]
    return out


# --------------------------------------------------------------------------------------------------
# Containers


async def _fetch_into(container: Container, url: str, kind: str) -> None:
    fetched = await fetch_media(url)
    container.media.append(fetched.describe() | {"kind": kind})
    if kind == "video":
        if not fetched.ok:
            container.error = "FAILED_DOWNLOADING_VIDEO"
        elif fetched.mime not in ("video/mp4", "video/quicktime"):
            container.error = "FAILED_PROCESSING_VIDEO"
    elif not fetched.ok and fetched.mime is None and fetched.error != "not an image or video":
        container.error = "FAILED_DOWNLOADING_IMAGE"
    elif fetched.mime not in ("image/jpeg", "image/png"):
        container.error = "INVALID_IMAGE_FORMAT"


async def _create_container(sandbox: Sandbox, info: TokenInfo, params: dict[str, Any]) -> web.Response:
    require_scopes(info, PUBLISH)
    media_type = str(require_param(params, "media_type")).upper()
    is_item = as_bool(params.get("is_carousel_item"))
    text = str(params.get("text") or "")
    if params.get("reply_to_id"):
        require_scopes(info, MANAGE_REPLIES)
        _parent(sandbox, info, str(params["reply_to_id"]))
    if threads_length(text) > MAX_TEXT:
        raise GraphError(400, f"Param text must be at most {MAX_TEXT} characters long.", 100,
                         user_title="Text too long")
    if is_item and media_type not in ("IMAGE", "VIDEO"):
        raise GraphError(400, "(#100) Only IMAGE and VIDEO containers can be carousel items", 100)
    if params.get("link_attachment") and media_type != "TEXT":
        raise GraphError(400, "(#100) link_attachment is only supported for TEXT posts", 100)
    box = containers(sandbox, NETWORK)
    container = Container(id=str(17_950_000_000_000_000 + sandbox.next_id()), owner=info.subject,
                          media_type=media_type, created_at=sandbox.now(), text=text,
                          params={k: v for k, v in params.items() if k != "access_token"},
                          is_carousel_item=is_item)
    if media_type == "TEXT":
        if not text:
            raise GraphError(400, "(#100) The parameter text is required for TEXT posts", 100)
    elif media_type == "IMAGE":
        await _fetch_into(container, require_param(params, "image_url"), "image")
    elif media_type == "VIDEO":
        await _fetch_into(container, require_param(params, "video_url"), "video")
    elif media_type == "CAROUSEL":
        children = [c for c in str(require_param(params, "children")).split(",") if c]
        if not CAROUSEL_MIN <= len(children) <= CAROUSEL_MAX:
            raise GraphError(400, f"(#100) A carousel needs {CAROUSEL_MIN} to {CAROUSEL_MAX} children", 100)
        for child_id in children:
            child = box.get(child_id)
            if child is None or child.owner != info.subject or not child.is_carousel_item:
                raise GraphError(400, f"(#100) Invalid carousel child {child_id}", 100)
            if container_status(sandbox, NETWORK, child, poll=False) != "FINISHED":
                raise GraphError(400, "Media Not Ready To Be Published", 9007, 2207027,
                                 user_msg=f"The carousel item {child_id} is not ready; wait until it is FINISHED")
        container.children = children
        container.media = [m for c in children for m in box[c].media]
    else:
        raise GraphError(400, "(#100) Param media_type must be one of TEXT, IMAGE, VIDEO, CAROUSEL", 100)
    if media_type in ("IMAGE", "VIDEO") and params.get("alt_text"):
        container.media[-1]["alt_text"] = str(params["alt_text"])
    knob_error = sandbox.network_state(NETWORK).get("container_error")
    if knob_error and not container.error:
        container.error = str(knob_error)
    box[container.id] = container
    return web.json_response({"id": container.id})


def _published_last_day(sandbox: Sandbox, owner: str, *, replies: bool = False) -> int:
    """Posts (or, with `replies`, replies) the profile published in the rolling 24 hours: two quotas."""
    return sum(1 for p in sandbox.publications
               if p.network == NETWORK and p.account_id == owner and sandbox.now() - p.at < 86400
               and bool(p.extra.get("reply_to_id")) == replies)


def _limits(sandbox: Sandbox) -> tuple[int, int]:
    state = sandbox.network_state(NETWORK)
    return (int(state.get("publish_limit", DEFAULT_PUBLISH_LIMIT)),
            int(state.get("reply_limit", DEFAULT_REPLY_LIMIT)))


def _publishing_limit(sandbox: Sandbox, info: TokenInfo, params: dict[str, Any]) -> web.Response:
    """`GET /{user}/threads_publishing_limit`: both rolling-day quotas (the reply ones need
    threads_manage_replies when asked for)."""
    fields = parse_fields(params.get("fields")) or list(LIMIT_FIELDS)
    for name in fields:
        if name not in LIMIT_FIELDS:
            raise GraphError(400, f"(#100) Tried accessing nonexisting field ({name})", 100)
    if params.get("fields") and {"reply_quota_usage", "reply_config"} & set(fields):
        require_scopes(info, MANAGE_REPLIES)
    posts, replies = _limits(sandbox)
    values: dict[str, Any] = {
        "quota_usage": _published_last_day(sandbox, info.subject),
        "config": {"quota_total": posts, "quota_duration": 86400},
        "reply_quota_usage": _published_last_day(sandbox, info.subject, replies=True),
        "reply_config": {"quota_total": replies, "quota_duration": 86400},
    }
    return web.json_response({"data": [{name: values[name] for name in fields}]})


def _parent(sandbox: Sandbox, info: TokenInfo, parent_id: str) -> dict[str, Any]:
    """The live media a reply answers, else Graph's unknown-object error for its id."""
    media: dict[str, Any] | None = _state(sandbox)["media"].get(parent_id)
    if media is None or media["owner"] != info.subject or media.get("deleted"):
        raise _unknown_object(parent_id, "post")
    return media


def _publish(sandbox: Sandbox, info: TokenInfo, params: dict[str, Any]) -> web.Response:
    require_scopes(info, PUBLISH)
    creation_id = require_param(params, "creation_id")
    container = containers(sandbox, NETWORK).get(creation_id)
    if container is None or container.owner != info.subject:
        raise GraphError(400, "(#100) Param creation_id is not a valid container id", 100)
    status = container_status(sandbox, NETWORK, container, poll=False)
    if status == "IN_PROGRESS":
        raise GraphError(400, "Media Not Ready To Be Published", 9007, 2207027,
                         user_msg="The media is not ready to be published, please wait for a moment")
    if status == "EXPIRED":
        raise GraphError(400, "The media container has expired", 100, 2207020)
    if status == "ERROR":
        raise GraphError(400, f"The media container failed: {container.error}", 100)
    if status == "PUBLISHED":
        raise GraphError(400, "(#100) This container has already been published", 100)
    if container.is_carousel_item:
        raise GraphError(400, "(#100) Carousel items are published through their CAROUSEL container", 100)
    reply_to = str(container.params.get("reply_to_id") or "")
    parent = _parent(sandbox, info, reply_to) if reply_to else None  # deleted since the container
    post_limit, reply_limit = _limits(sandbox)
    if parent is not None and _published_last_day(sandbox, info.subject, replies=True) >= reply_limit:
        raise GraphError(400, "The user has reached the maximum number of replies per 24 hours.", 9, 2207042)
    if parent is None and _published_last_day(sandbox, info.subject) >= post_limit:
        raise GraphError(400, "The user has reached the maximum number of posts per 24 hours.", 9, 2207042)
    media_id = str(19_000_000_000_000_000 + sandbox.next_id())
    shortcode = re.sub(r"[-_]", "A", secrets.token_urlsafe(8))[:11]
    media_type = {"TEXT": "TEXT_POST", "CAROUSEL": "CAROUSEL_ALBUM"}.get(container.media_type,
                                                                        container.media_type)
    _state(sandbox)["media"][media_id] = {
        "id": media_id, "owner": info.subject, "media_type": media_type, "media_product_type": "THREADS",
        "permalink": f"https://www.threads.com/@{PROFILE['username']}/post/{shortcode}",
        "shortcode": shortcode, "text": container.text, "username": PROFILE["username"],
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(sandbox.now())),
        "is_quote_post": False, "is_reply": parent is not None,
    }
    root_id = None
    if parent is not None:
        root_id = parent["root_post"]["id"] if parent.get("is_reply") else parent["id"]
        _state(sandbox)["media"][media_id].update(
            replied_to={"id": parent["id"]}, root_post={"id": root_id}, is_reply_owned_by_me=True)
    container.status = "PUBLISHED"
    sandbox.publish(NETWORK, info.subject, media_id, container.text, container.media, media_type=media_type,
                    shortcode=shortcode, link_attachment=container.params.get("link_attachment"),
                    container_id=container.id, reply_to_id=parent["id"] if parent else None,
                    root_post_id=root_id)
    return web.json_response({"id": media_id})


def _media_view(sandbox: Sandbox, media: dict[str, Any]) -> dict[str, Any]:
    """A published media as its node answers: the stored fields and whether live replies sit under it."""
    has_replies = any(m.get("replied_to", {}).get("id") == media["id"] and not m.get("deleted")
                      for m in _state(sandbox)["media"].values())
    return {**media, "has_replies": has_replies}


def _replies(sandbox: Sandbox, info: TokenInfo, object_id: str, params: dict[str, Any], *,
             nested: bool) -> web.Response:
    """`GET /{media}/replies` (the replies to it) or `/conversation` (every reply below it, flattened)."""
    media = _state(sandbox)["media"].get(object_id)
    if media is None or media["owner"] != info.subject or media.get("deleted"):
        raise _unknown_object(object_id)
    require_scopes(info, READ_REPLIES)
    live = [m for m in _state(sandbox)["media"].values() if m.get("is_reply") and not m.get("deleted")]
    found: list[dict[str, Any]] = []
    parents = {object_id}
    while parents:
        children = [m for m in live if m["replied_to"]["id"] in parents]
        found.extend(children)
        parents = {m["id"] for m in children} if nested else set()
    found.sort(key=lambda m: int(m["id"]), reverse=as_bool(params.get("reverse"), default=True))
    fields = parse_fields(params.get("fields"))
    return web.json_response({"data": [_pick(_media_view(sandbox, m), fields, ["id"]) for m in found]})


def _delete(sandbox: Sandbox, info: TokenInfo, object_id: str) -> web.Response:
    media = _state(sandbox)["media"].get(object_id)
    if media is None or media["owner"] != info.subject or media.get("deleted"):
        raise _unknown_object(object_id, "delete")
    require_scopes(info, DELETE)
    state = _state(sandbox)
    recent = [t for t in state["deletions"] if sandbox.now() - t < 86400]
    if len(recent) >= DELETE_LIMIT:
        raise GraphError(400, f"You have reached the limit of {DELETE_LIMIT} deletions per 24 hours.", 4)
    state["deletions"] = [*recent, sandbox.now()]
    media["deleted"] = True
    for pub in sandbox.publications:
        if pub.network == NETWORK and pub.remote_id == object_id:
            pub.deleted = True
    return web.json_response({"success": True, "deleted_id": object_id})


# --------------------------------------------------------------------------------------------------
# Insights


def _metric_names(params: dict[str, Any], allowed: Any) -> list[str]:
    names = [m for m in str(params.get("metric") or "").split(",") if m]
    if not names:
        raise GraphError(400, "(#100) The parameter metric is required", 100)
    for index, name in enumerate(names):
        if name not in allowed:
            raise GraphError(400, f"(#100) metric[{index}] must be one of the following values: "
                                  f"{', '.join(allowed)}", 100)
    return names


def _media_insights(sandbox: Sandbox, info: TokenInfo, object_id: str, params: dict[str, Any]) -> web.Response:
    media = _state(sandbox)["media"].get(object_id)
    if media is None or media["owner"] != info.subject or media.get("deleted"):
        raise _unknown_object(object_id)
    require_scopes(info, INSIGHTS)
    names = _metric_names(params, MEDIA_METRICS_PER_HOUR)
    pub = sandbox.publication(NETWORK, object_id)
    h = hours_since(sandbox, pub.at) if pub else 0
    data = [{"name": n, "period": "lifetime", "values": [{"value": MEDIA_METRICS_PER_HOUR[n] * h}],
             "title": n.title(), "description": f"Lifetime {n}", "id": f"{object_id}/insights/{n}/lifetime"}
            for n in names]
    return web.json_response({"data": data})


def _user_insights(sandbox: Sandbox, info: TokenInfo, params: dict[str, Any]) -> web.Response:
    require_scopes(info, INSIGHTS)
    names = _metric_names(params, USER_METRICS)
    for bound in ("since", "until"):
        if params.get(bound) and int(params[bound]) < 1712991600:
            raise GraphError(400, f"(#100) Param {bound} must be at or after 1712991600", 100)
    pubs = [p for p in sandbox.publications if p.network == NETWORK and p.account_id == info.subject
            and not p.deleted]
    data = []
    for name in names:
        item: dict[str, Any] = {"name": name, "title": name, "description": f"Total {name}",
                                "id": f"{info.subject}/insights/{name}/day", "period": "day"}
        if name == "followers_count":
            item["total_value"] = {"value": FOLLOWERS}
        elif name == "views":  # a daily series of profile views
            end = time.strftime("%Y-%m-%dT07:00:00+0000", time.gmtime(sandbox.now()))
            item["values"] = [{"value": sum(MEDIA_METRICS_PER_HOUR["views"] * hours_since(sandbox, p.at)
                                            for p in pubs), "end_time": end}]
        else:
            per_hour = MEDIA_METRICS_PER_HOUR.get(name, 0)
            item["total_value"] = {"value": sum(per_hour * hours_since(sandbox, p.at) for p in pubs)}
        data.append(item)
    return web.json_response({"data": data})


def fault_response(kind: str, sandbox: Sandbox) -> web.StreamResponse:
    """Threads' answers: app budget exhausted (code 4 + X-App-Usage 100 %), 190/463, 500 (code 2)."""
    if kind == "rate_limit":
        return graph_error_response(
            400, "(#4) Application request limit reached", 4, is_transient=True,
            headers={"X-App-Usage": json.dumps({"call_count": 100, "total_cputime": 64, "total_time": 71})},
        )
    if kind == "expire_token":
        return expired_token_response(sandbox.now())
    return server_error_response()
