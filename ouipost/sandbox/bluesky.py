"""Sandbox imitation of Bluesky's AT Protocol XRPC endpoints (platforms.md section 9).

Hosts: `bsky.social` (the entryway), `morel.us-east.host.bsky.network` (the accounts' PDS, named
in their DID documents; every XRPC route answers on both) and `video.bsky.app` (video service).

Test accounts (app passwords; the identifier may be the handle, the e-mail or the DID):
- `alice.bsky.social` / `abcd-efgh-ijkl-mnop`, did `did:plc:ouipostalice2sandbox0001`,
  e-mail alice@example.com, display name "Alice".
- `bob.bsky.social` / `bbbb-cccc-dddd-eeee`, did `did:plc:ouipostbob22sandbox00002` (to mention).
A wrong password answers 401 AuthenticationRequired; 30 logins per 5 minutes per identifier.

Sessions: accessJwt (2 h) and refreshJwt (90 d) are real HS256 JWTs with `exp`; an expired
access token answers 400 ExpiredToken ("Token has expired"), a rotated-out refresh token 400
ExpiredToken ("Token has been revoked"), an unknown one 400 InvalidToken, none 401 AuthMissing.

Records (`app.bsky.feed.post` via createRecord) are validated like the PDS validates the lexicon:
text <= 300 graphemes and <= 3,000 UTF-8 bytes, createdAt a datetime, langs <= 3, facets with byte
ranges inside the text on UTF-8 character boundaries and known feature types, embeds: images
(<= 4, alt required, image/* blobs <= 2,000,000 bytes, aspectRatio >= 1), external (uri, title,
description, thumb <= 1,000,000 bytes), video (video/mp4 blob); every blob must have been uploaded
by this account (BlobNotFound otherwise). Beyond the real PDS (`strict_facets`, on by default):
the text a facet covers must match it (`#tag` for tags, `@handle` of the mentioned DID, the URL or
a shortened display of it for links), so byte-offset bugs fail loudly instead of rendering wrong.

Replies (threads, and a first comment as the account's own reply): `record.reply = {root: {uri,
cid}, parent: {uri, cid}}`, two strongRefs checked like the lexicon (an at-uri and a cid string;
400 InvalidRequest otherwise). Beyond the real PDS, which stores any well-formed reply and leaves it
to the AppView to show a reply to a missing post as detached (`strict_replies`, on by default): the
parent and the root must be live records of this sandbox cited by their current cid, and the root
must be the parent's own root (the parent itself when it is not a reply), else 400 InvalidRequest.
A reply is read back with getPosts (its `record.reply`); the parent's replyCount counts it.

Video: getServiceAuth issues a service JWT (aud = the PDS's did:web, lxm); uploadVideo on
video.bsky.app checks it and answers a bare JobStatus (`upload_video_shape: "wrapped"` answers
`{"jobStatus": ...}` as the lexicon says); the job walks CREATED -> ENCODING -> SCANNING ->
UPLOADING -> COMPLETED over `video_processing_seconds` (0.05) and then holds the blob (in the PDS
too). Files that are not MP4 or last over `video_max_seconds` (180) end FAILED.

Every answer from the Bluesky hosts carries RateLimit-Limit/-Remaining/-Reset/-Policy
(3000 per 5 minutes, counted per sandbox).

Counts, with m = minutes since the post was created counting the one under way
(`floor((now - publication.at) / 60) + 1`, core.units_under_way):
likeCount = 3*m, repostCount = m, replyCount = m // 2, quoteCount = m // 4, bookmarkCount = m // 5.
Profile: followersCount 321, followsCount 123, postsCount 40 + live posts.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import secrets
from datetime import datetime
from typing import Any

import jwt
from aiohttp import web

from ouipost.platforms.text import grapheme_count
from ouipost.posts.media import sniff_mime
from ouipost.sandbox.core import Sandbox, TokenInfo, units_under_way
from ouipost.sandbox.tiktok import mp4_duration

NETWORK = "bluesky"
PDS_HOST = "morel.us-east.host.bsky.network"
VIDEO_HOST = "video.bsky.app"
HOSTS = ("bsky.social", PDS_HOST, VIDEO_HOST)
ACCESS_TTL = 2 * 3600
REFRESH_TTL = 90 * 86400
ACCOUNTS = {
    "did:plc:ouipostalice2sandbox0001": {
        "handle": "alice.bsky.social", "email": "alice@example.com", "password": "abcd-efgh-ijkl-mnop",
        "displayName": "Alice",
    },
    "did:plc:ouipostbob22sandbox00002": {
        "handle": "bob.bsky.social", "email": "bob@example.com", "password": "bbbb-cccc-dddd-eeee",
        "displayName": "Bob",
    },
}
JOB_STATES = ["JOB_STATE_CREATED", "JOB_STATE_ENCODING", "JOB_STATE_SCANNING", "JOB_STATE_UPLOADING"]
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
AT_URI_RE = re.compile(r"at://[^/\s]+(/[a-zA-Z0-9.-]+(/[a-zA-Z0-9._~:-]+)?)?")
CID_RE = re.compile(r"b[a-z2-7]{20,}|Qm[1-9A-HJ-NP-Za-km-z]{44}")
DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


# ---------------------------------------------------------------------------------------------
# Identifiers


def _cid(data: bytes, codec: int) -> str:
    """A CIDv1 (sha2-256) in base32: raw blobs give bafkrei..., dag-cbor records bafyrei..."""
    digest = hashlib.sha256(data).digest()
    raw = bytes([0x01, codec, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def _tid(sandbox: Sandbox) -> str:
    """A record key TID: 53 bits of microseconds and 10 bits of clock id, base32-sortable."""
    micros = int(sandbox.now() * 1_000_000) + sandbox.next_id()  # strictly increasing
    value = (micros << 10) | 7
    out = []
    for _ in range(13):
        out.append(TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


# ---------------------------------------------------------------------------------------------
# Answers


def xrpc_error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


def fault_response(kind: str, sandbox: Sandbox, wait: float | None = None) -> web.StreamResponse:
    """Bluesky's own answers for sandbox faults (a rate limit resets in `wait` seconds, else 30)."""
    if kind == "rate_limit":
        # RateLimit-Reset is a whole epoch second: round up so that it never says sooner than `wait`.
        reset = math.ceil(sandbox.now() + wait) if wait is not None else int(sandbox.now()) + 30
        return xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers={
            "RateLimit-Limit": "3000", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset),
            "RateLimit-Policy": "3000;w=300"})
    if kind == "expire_token":
        return xrpc_error(400, "ExpiredToken", "Token has expired")
    return xrpc_error(500, "InternalServerError", "Internal Server Error")


def _state(sandbox: Sandbox) -> dict[str, Any]:
    state = sandbox.network_state(NETWORK)
    for key, value in {
        "video_processing_seconds": 0.05, "video_max_seconds": 180, "strict_facets": True, "strict_replies": True,
        "upload_video_shape": "bare", "pds_host": PDS_HOST,
    }.items():
        state.setdefault(key, value)
    state.setdefault("secret", secrets.token_bytes(32))
    state.setdefault("blobs", {})
    state.setdefault("jobs", {})
    state.setdefault("records", {})
    state.setdefault("logins", {})
    state.setdefault("rate", {"window": 0, "used": 0})
    return state


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


def _invalid(message: str, error: str = "InvalidRequest") -> _Refusal:
    return _Refusal(xrpc_error(400, error, message))


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def _did_doc(did: str, pds_host: str) -> dict[str, Any]:
    handle = ACCOUNTS[did]["handle"]
    return {
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "alsoKnownAs": [f"at://{handle}"],
        "verificationMethod": [{"id": f"{did}#atproto", "type": "Multikey", "controller": did,
                                "publicKeyMultibase": "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"}],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                     "serviceEndpoint": f"https://{pds_host}"}],
    }


def setup(app: web.Application, sandbox: Sandbox) -> None:
    """Register the PDS routes on every Bluesky host and the video service routes."""
    state = _state(sandbox)

    async def rate_headers(request: web.Request, response: web.StreamResponse) -> None:
        if "RateLimit-Limit" in response.headers or not any(f"/{h}/xrpc/" in request.path for h in HOSTS):
            return
        now = int(sandbox.now())
        rate = state["rate"]
        if now >= rate["window"] + 300:
            rate["window"], rate["used"] = now - now % 300, 0
        rate["used"] += 1
        response.headers["RateLimit-Limit"] = "3000"
        response.headers["RateLimit-Remaining"] = str(max(0, 3000 - rate["used"]))
        response.headers["RateLimit-Reset"] = str(rate["window"] + 300)
        response.headers["RateLimit-Policy"] = "3000;w=300"

    app.on_response_prepare.append(rate_headers)

    # Sessions ------------------------------------------------------------------------------------

    def issue(did: str) -> dict[str, Any]:
        now = sandbox.now()
        pds = f"did:web:{state['pds_host']}"
        # jti keeps two sessions issued in the same second distinct (tokens are keys in sandbox.tokens).
        access = jwt.encode({"scope": "com.atproto.appPass", "sub": did, "aud": pds, "iat": int(now),
                             "exp": int(now + ACCESS_TTL), "jti": secrets.token_urlsafe(12)},
                            state["secret"], algorithm="HS256", headers={"typ": "at+jwt"})
        jti = secrets.token_urlsafe(32)
        refresh = jwt.encode({"scope": "com.atproto.refresh", "sub": did, "aud": "did:web:bsky.social",
                              "jti": jti, "iat": int(now), "exp": int(now + REFRESH_TTL)}, state["secret"],
                             algorithm="HS256", headers={"typ": "refresh+jwt"})
        sandbox.tokens[access] = TokenInfo(NETWORK, did, ["com.atproto.appPass"], now + ACCESS_TTL)
        sandbox.tokens[refresh] = TokenInfo(NETWORK, did, ["com.atproto.refresh"], now + REFRESH_TTL,
                                            kind="refresh")
        account = ACCOUNTS[did]
        return {"did": did, "handle": account["handle"], "email": account["email"], "emailConfirmed": True,
                "accessJwt": access, "refreshJwt": refresh, "active": True,
                "didDoc": _did_doc(did, state["pds_host"])}

    def check_token(request: web.Request, kind: str = "access") -> TokenInfo:
        tok = _bearer(request)
        if not tok:
            raise _Refusal(xrpc_error(401, "AuthMissing", "Authentication Required"))
        info = sandbox.tokens.get(tok)
        if info is None or info.network != NETWORK or info.kind != kind:
            raise _invalid("Token could not be verified", "InvalidToken")
        if info.revoked:
            raise _invalid("Token has been revoked", "ExpiredToken")
        if info.expires_at is not None and info.expires_at <= sandbox.now():
            raise _invalid("Token has expired", "ExpiredToken")
        return info

    async def json_body(request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise _invalid("Wrong request encoding (Content-Type): " + (request.content_type or "none"))
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _invalid("Request body must be a JSON object")
        return body

    def find_account(identifier: str) -> str | None:
        ident = identifier.strip().lower().lstrip("@")
        for did, account in ACCOUNTS.items():
            if ident in (did, account["handle"], account["email"]):
                return did
        return None

    async def create_session(request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        identifier, password = body.get("identifier"), body.get("password")
        if not isinstance(identifier, str) or not isinstance(password, str):
            raise _invalid("Input must have the properties \"identifier\" and \"password\"")
        now = sandbox.now()
        recent = [t for t in state["logins"].get(identifier.lower(), []) if now - t < 300]
        if len(recent) >= 30:
            reset = int(min(recent) + 300)
            return xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers={
                "RateLimit-Limit": "30", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset),
                "RateLimit-Policy": "30;w=300"})
        recent.append(now)
        state["logins"][identifier.lower()] = recent
        did = find_account(identifier)
        if did is None or ACCOUNTS[did]["password"] != password:
            return xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        return web.json_response(issue(did))

    async def refresh_session(request: web.Request) -> web.StreamResponse:
        info = check_token(request, "refresh")
        info.revoked = True  # rotated: the old refresh JWT stops working at once
        session = issue(info.subject)
        session.pop("email")
        session.pop("emailConfirmed")
        return web.json_response(session)

    async def delete_session(request: web.Request) -> web.StreamResponse:
        info = check_token(request, "refresh")
        info.revoked = True
        return web.Response(status=200)

    async def get_service_auth(request: web.Request) -> web.StreamResponse:
        info = check_token(request)
        aud, lxm = request.query.get("aud"), request.query.get("lxm")
        if not aud or not aud.startswith("did:"):
            raise _invalid("aud must be a DID")
        now = sandbox.now()
        try:
            exp = int(request.query.get("exp", str(int(now + 60))))
        except ValueError:
            raise _invalid("exp must be an integer") from None
        if exp <= now:
            raise _invalid("expiration is in past", "BadExpiration")
        if exp > now + 3600:
            raise _invalid("cannot request a token with an expiration more than an hour in the future",
                           "BadExpiration")
        token = jwt.encode({"iss": info.subject, "aud": aud, "lxm": lxm, "exp": exp, "iat": int(now),
                            "jti": secrets.token_hex(16)}, state["secret"], algorithm="HS256")
        sandbox.tokens[token] = TokenInfo(NETWORK, info.subject, [], float(exp), kind="service",
                                          extra={"aud": aud, "lxm": lxm})
        return web.json_response({"token": token})

    async def resolve_handle(request: web.Request) -> web.StreamResponse:
        did = find_account(request.query.get("handle", "")) if "@" not in request.query.get("handle", "") else None
        if did is None:
            raise _invalid("Unable to resolve handle")
        return web.json_response({"did": did})

    # Repo ----------------------------------------------------------------------------------------

    async def upload_blob(request: web.Request) -> web.StreamResponse:
        info = check_token(request)
        data = await request.read()
        if not data:
            raise _invalid("Request body is empty")
        if len(data) > 100_000_000:
            return xrpc_error(413, "PayloadTooLarge", "request entity too large")
        # The PDS sniffs the real type; the declared Content-Type is only a hint.
        mime = sniff_mime(data) or request.content_type or "application/octet-stream"
        cid = _cid(data, 0x55)
        state["blobs"].setdefault(info.subject, {})[cid] = {"mimeType": mime, "size": len(data)}
        return web.json_response({"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime,
                                           "size": len(data)}})

    def check_blob(did: str, blob: Any, path: str, *, accept: str, max_size: int) -> dict[str, Any]:
        if not isinstance(blob, dict) or blob.get("$type") != "blob" or not isinstance(blob.get("ref"), dict):
            raise _invalid(f"Invalid app.bsky.feed.post record: {path} should be a blob ref")
        cid = blob["ref"].get("$link")
        stored = state["blobs"].get(did, {}).get(cid)
        if stored is None:
            raise _invalid(f"Could not find blob: {cid}", "BlobNotFound")
        if not stored["mimeType"].startswith(accept):
            raise _invalid(f"Invalid app.bsky.feed.post record: {path} has the wrong mime type "
                           f"{stored['mimeType']}")
        if stored["size"] > max_size:
            raise _invalid(f"Invalid app.bsky.feed.post record: {path} is too big ({stored['size']} bytes, "
                           f"max {max_size})", "BlobTooLarge")
        return {"cid": cid, **stored}

    def check_aspect(value: Any, path: str) -> None:
        if value is None:
            return
        if not (isinstance(value, dict) and all(isinstance(value.get(k), int) and value[k] >= 1
                                                for k in ("width", "height"))):
            raise _invalid(f"Invalid app.bsky.feed.post record: {path} must have integer width and height >= 1")

    def check_facets(text: str, facets: Any) -> None:
        if facets is None:
            return
        if not isinstance(facets, list):
            raise _invalid("Invalid app.bsky.feed.post record: Record/facets must be an array")
        raw = text.encode()
        for i, facet in enumerate(facets):
            path = f"Record/facets/{i}"
            index = facet.get("index") if isinstance(facet, dict) else None
            if not isinstance(index, dict):
                raise _invalid(f"Invalid app.bsky.feed.post record: {path}/index is required")
            start, end = index.get("byteStart"), index.get("byteEnd")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(raw)):
                raise _invalid(f"Invalid app.bsky.feed.post record: {path}/index is outside the text "
                               f"({len(raw)} bytes)")
            try:
                covered = raw[start:end].decode()
            except UnicodeDecodeError:
                raise _invalid(f"Invalid app.bsky.feed.post record: {path}/index splits a UTF-8 "
                               "character") from None
            features = facet.get("features")
            if not isinstance(features, list) or not features:
                raise _invalid(f"Invalid app.bsky.feed.post record: {path}/features is required")
            for feature in features:
                check_feature(feature, covered, path)

    def check_feature(feature: Any, covered: str, path: str) -> None:
        kind = feature.get("$type") if isinstance(feature, dict) else None
        strict = state["strict_facets"]
        if kind == "app.bsky.richtext.facet#link":
            uri = feature.get("uri")
            if not isinstance(uri, str) or not re.match(r"^[a-z][a-z0-9+.-]*:", uri):
                raise _invalid(f"Invalid app.bsky.feed.post record: {path} link uri must be a URI")
            shown = covered.rstrip("…").rstrip(".")
            if strict and not (uri == covered or uri.split("://", 1)[-1].startswith(shown.split("://", 1)[-1])):
                raise _invalid(f"{path}: the link facet covers {covered!r}, not {uri!r} (wrong byte offsets?)")
        elif kind == "app.bsky.richtext.facet#mention":
            did = feature.get("did")
            if not isinstance(did, str) or not did.startswith("did:"):
                raise _invalid(f"Invalid app.bsky.feed.post record: {path} mention did must be a DID")
            handle = ACCOUNTS.get(did, {}).get("handle")
            if strict and handle and covered.lower() != f"@{handle}":
                raise _invalid(f"{path}: the mention facet covers {covered!r}, not '@{handle}' (wrong byte offsets?)")
        elif kind == "app.bsky.richtext.facet#tag":
            tag = feature.get("tag")
            if not isinstance(tag, str) or not tag or len(tag.encode()) > 640 or grapheme_count(tag) > 64:
                raise _invalid(f"Invalid app.bsky.feed.post record: {path} tag must be 1-64 graphemes")
            if strict and covered not in (f"#{tag}", f"\uff03{tag}"):
                raise _invalid(f"{path}: the tag facet covers {covered!r}, not '#{tag}' (wrong byte offsets?)")
        else:
            raise _invalid(f"Invalid app.bsky.feed.post record: {path} has an unknown feature type {kind!r}")

    def check_embed(did: str, embed: Any) -> list[dict[str, Any]]:
        """Validate the embed union; return the media it references (for the publication)."""
        if embed is None:
            return []
        kind = embed.get("$type") if isinstance(embed, dict) else None
        if kind == "app.bsky.embed.images":
            images = embed.get("images")
            if not isinstance(images, list) or not images:
                raise _invalid("Invalid app.bsky.feed.post record: Record/embed/images must be a non-empty array")
            if len(images) > 4:
                raise _invalid("Invalid app.bsky.feed.post record: Record/embed/images must not have more "
                               "than 4 elements")
            media = []
            for i, image in enumerate(images):
                path = f"Record/embed/images/{i}"
                if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
                    raise _invalid(f"Invalid app.bsky.feed.post record: {path} must have the property \"alt\"")
                stored = check_blob(did, image.get("image"), f"{path}/image", accept="image/", max_size=2_000_000)
                check_aspect(image.get("aspectRatio"), f"{path}/aspectRatio")
                media.append({"type": stored["mimeType"], "size": stored["size"], "alt": image["alt"],
                              "cid": stored["cid"], "aspectRatio": image.get("aspectRatio")})
            return media
        if kind == "app.bsky.embed.external":
            ext = embed.get("external")
            if not isinstance(ext, dict) or not all(isinstance(ext.get(k), str) for k in ("uri", "title",
                                                                                          "description")):
                raise _invalid("Invalid app.bsky.feed.post record: Record/embed/external must have uri, title "
                               "and description")
            media = [{"type": "external", "uri": ext["uri"], "title": ext["title"]}]
            if ext.get("thumb") is not None:
                stored = check_blob(did, ext["thumb"], "Record/embed/external/thumb", accept="image/",
                                    max_size=1_000_000)
                media[0]["thumb"] = stored["cid"]
            return media
        if kind == "app.bsky.embed.video":
            stored = check_blob(did, embed.get("video"), "Record/embed/video", accept="video/mp4",
                                max_size=300_000_000)
            check_aspect(embed.get("aspectRatio"), "Record/embed/aspectRatio")
            if embed.get("alt") is not None and not isinstance(embed.get("alt"), str):
                raise _invalid("Invalid app.bsky.feed.post record: Record/embed/alt must be a string")
            return [{"type": "video/mp4", "size": stored["size"], "cid": stored["cid"], "alt": embed.get("alt")}]
        raise _invalid(f"Invalid app.bsky.feed.post record: Record/embed has an unsupported type {kind!r}")

    def check_reply(reply: Any) -> dict[str, str] | None:
        """Validate record.reply (two strongRefs, as the lexicon says); return {root, parent} uris.

        With `strict_replies` both must name a live post of this sandbox by its current cid, and the
        root must be the parent's own root (or the parent itself when it is not a reply)."""
        if reply is None:
            return None
        if not isinstance(reply, dict):
            raise _invalid("Invalid app.bsky.feed.post record: Record/reply must be an object")
        refs: dict[str, str] = {}
        for name in ("root", "parent"):
            ref = reply.get(name)
            path = f"Record/reply/{name}"
            if not isinstance(ref, dict):
                raise _invalid(f"Invalid app.bsky.feed.post record: {path} must be an object")
            uri, cid = ref.get("uri"), ref.get("cid")
            if not isinstance(uri, str) or not AT_URI_RE.fullmatch(uri):
                raise _invalid(f"Invalid app.bsky.feed.post record: {path}/uri must be a valid at-uri")
            if not isinstance(cid, str) or not CID_RE.fullmatch(cid):
                raise _invalid(f"Invalid app.bsky.feed.post record: {path}/cid must be a cid string")
            if state["strict_replies"]:
                stored = state["records"].get(uri)
                if stored is None:
                    raise _invalid(f"Invalid app.bsky.feed.post record: {path} refers to a post that does not "
                                   f"exist (deleted?): {uri}")
                if stored["cid"] != cid:
                    raise _invalid(f"Invalid app.bsky.feed.post record: {path}/cid {cid} is not the current "
                                   f"version of {uri} ({stored['cid']})")
            refs[name] = uri
        if state["strict_replies"]:
            parent_reply = state["records"][refs["parent"]]["record"].get("reply")
            expected = parent_reply["root"]["uri"] if isinstance(parent_reply, dict) else refs["parent"]
            if refs["root"] != expected:
                raise _invalid(f"Invalid app.bsky.feed.post record: Record/reply/root must be the thread's root "
                               f"{expected}, not {refs['root']}")
        return refs

    def repo_did(info: TokenInfo, repo: Any) -> str:
        did = find_account(repo) if isinstance(repo, str) else None
        if did != info.subject:
            raise _invalid("Invalid repo: the authenticated account may only write its own repo")
        return did

    async def create_record(request: web.Request) -> web.StreamResponse:
        info = check_token(request)
        body = await json_body(request)
        did = repo_did(info, body.get("repo"))
        collection, record = body.get("collection"), body.get("record")
        if collection != "app.bsky.feed.post":
            raise _invalid("The sandbox accepts app.bsky.feed.post records only")
        if not isinstance(record, dict):
            raise _invalid("Input/record must be an object")
        if record.get("$type", collection) != collection:
            raise _invalid(f"Invalid $type: expected {collection}, got {record.get('$type')}")
        text = record.get("text")
        if not isinstance(text, str):
            raise _invalid("Invalid app.bsky.feed.post record: Record must have the property \"text\"")
        if grapheme_count(text) > 300:
            raise _invalid("Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes")
        if len(text.encode()) > 3000:
            raise _invalid("Invalid app.bsky.feed.post record: Record/text must not be longer than 3000 characters")
        created = record.get("createdAt")
        if not isinstance(created, str) or not DATETIME_RE.fullmatch(created):
            raise _invalid("Invalid app.bsky.feed.post record: Record/createdAt must be an valid atproto datetime "
                           "(both RFC-3339 and ISO-8601)")
        langs = record.get("langs", [])
        if not isinstance(langs, list) or len(langs) > 3:
            raise _invalid("Invalid app.bsky.feed.post record: Record/langs must not have more than 3 elements")
        check_facets(text, record.get("facets"))
        reply = check_reply(record.get("reply"))
        media = check_embed(did, record.get("embed"))
        if not text and not media:
            raise _invalid("Invalid app.bsky.feed.post record: a post needs text or an embed")
        rkey = body.get("rkey") or _tid(sandbox)
        uri = f"at://{did}/{collection}/{rkey}"
        if uri in state["records"]:
            raise _invalid(f"Record already exists: {uri}")
        cid = _cid(repr(sorted(record.items())).encode() + rkey.encode(), 0x71)
        state["records"][uri] = {"cid": cid, "record": record}
        thread = {"reply_to": reply["parent"], "root": reply["root"]} if reply else {}
        sandbox.publish(NETWORK, did, uri, text, media, cid=cid, facets=record.get("facets") or [],
                        embed_type=(record.get("embed") or {}).get("$type"), **thread)
        rev = _tid(sandbox)
        return web.json_response({"uri": uri, "cid": cid, "commit": {"cid": _cid(rev.encode(), 0x71), "rev": rev},
                                  "validationStatus": "valid"})

    async def delete_record(request: web.Request) -> web.StreamResponse:
        info = check_token(request)
        body = await json_body(request)
        did = repo_did(info, body.get("repo"))
        if not isinstance(body.get("collection"), str) or not isinstance(body.get("rkey"), str):
            raise _invalid("Input must have the properties \"collection\" and \"rkey\"")
        uri = f"at://{did}/{body['collection']}/{body['rkey']}"
        state["records"].pop(uri, None)  # idempotent: absent records are fine
        pub = sandbox.publication(NETWORK, uri)
        if pub is not None:
            pub.deleted = True
        rev = _tid(sandbox)
        return web.json_response({"commit": {"cid": _cid(rev.encode(), 0x71), "rev": rev}})

    # AppView (proxied by the PDS) ----------------------------------------------------------------

    def profile_basic(did: str) -> dict[str, Any]:
        account = ACCOUNTS[did]
        return {"did": did, "handle": account["handle"], "displayName": account["displayName"],
                "avatar": f"https://cdn.bsky.app/img/avatar/plain/{did}/bafkreisandbox@jpeg",
                "createdAt": "2023-05-01T12:00:00.000Z"}

    async def get_posts(request: web.Request) -> web.StreamResponse:
        check_token(request)
        uris = request.query.getall("uris", [])
        if not uris or len(uris) > 25:
            raise _invalid("uris must hold 1 to 25 AT-URIs")
        posts = []
        for uri in uris:
            pub = sandbox.publication(NETWORK, uri)
            stored = state["records"].get(uri)
            if pub is None or stored is None:
                continue  # the AppView omits posts it does not have
            m = units_under_way(sandbox, pub.at, 60)
            replies = sum(1 for other in state["records"].values()
                          if ((other["record"].get("reply") or {}).get("parent") or {}).get("uri") == uri)
            posts.append({
                "uri": uri, "cid": stored["cid"], "author": profile_basic(pub.account_id),
                "record": stored["record"], "replyCount": m // 2 + replies, "repostCount": m, "likeCount": 3 * m,
                "quoteCount": m // 4, "bookmarkCount": m // 5,
                "indexedAt": datetime.fromtimestamp(pub.at).astimezone().isoformat(), "labels": [],
            })
        return web.json_response({"posts": posts})

    async def get_profile(request: web.Request) -> web.StreamResponse:
        check_token(request)
        did = find_account(request.query.get("actor", ""))
        if did is None:
            raise _invalid("Profile not found")
        live = [p for p in sandbox.publications if p.network == NETWORK and p.account_id == did and not p.deleted]
        return web.json_response({**profile_basic(did), "description": "", "followersCount": 321,
                                  "followsCount": 123, "postsCount": 40 + len(live)})

    # Video service -------------------------------------------------------------------------------

    def job_view(job: dict[str, Any]) -> dict[str, Any]:
        elapsed = sandbox.now() - job["created"]
        total = state["video_processing_seconds"]
        view: dict[str, Any] = {"jobId": job["id"], "did": job["did"]}
        if elapsed >= total:
            if job["failure"]:
                view.update({"state": "JOB_STATE_FAILED", "error": job["failure"][1],
                             "failureCode": job["failure"][0], "message": job["failure"][1]})
            else:
                state["blobs"].setdefault(job["did"], {})[job["cid"]] = {"mimeType": "video/mp4",
                                                                         "size": job["size"]}
                view.update({"state": "JOB_STATE_COMPLETED", "progress": 100,
                             "blob": {"$type": "blob", "ref": {"$link": job["cid"]}, "mimeType": "video/mp4",
                                      "size": job["size"]}})
        else:
            step = min(len(JOB_STATES) - 1, int(elapsed / total * len(JOB_STATES))) if total else 0
            view.update({"state": JOB_STATES[step], "progress": int(100 * elapsed / total) if total else 0})
        return view

    async def upload_video(request: web.Request) -> web.StreamResponse:
        tok = _bearer(request)
        info = sandbox.tokens.get(tok or "")
        if info is None or info.kind != "service" or info.network != NETWORK:
            return xrpc_error(401, "AuthenticationRequired", "Service auth token required")
        if info.expires_at is not None and info.expires_at <= sandbox.now():
            return xrpc_error(400, "ExpiredToken", "Token has expired")
        if info.extra.get("aud") != f"did:web:{state['pds_host']}":
            return xrpc_error(401, "AuthenticationRequired", "jwt audience does not match the user's PDS")
        if info.extra.get("lxm") != "com.atproto.repo.uploadBlob":
            return xrpc_error(401, "AuthenticationRequired", "bad token method (lxm)")
        did = request.query.get("did")
        if did != info.subject or not request.query.get("name"):
            return xrpc_error(400, "InvalidRequest", "did (the token's) and name are required")
        if request.content_type != "video/mp4":
            return xrpc_error(400, "InvalidRequest", "Content-Type must be video/mp4")
        data = await request.read()
        failure = None
        if sniff_mime(data) != "video/mp4":
            failure = ("validation_failure", "Video is not a valid MP4 file")
        else:
            duration = mp4_duration(data)
            if duration is None or duration > state["video_max_seconds"]:
                failure = ("validation_failure", f"Video is longer than {state['video_max_seconds']} seconds")
        job = {"id": secrets.token_hex(8), "did": did, "created": sandbox.now(), "size": len(data),
               "cid": _cid(data, 0x55), "failure": failure}
        state["jobs"][job["id"]] = job
        view = {"jobId": job["id"], "did": did, "state": "JOB_STATE_CREATED"}
        return web.json_response({"jobStatus": view} if state["upload_video_shape"] == "wrapped" else view)

    async def get_job_status(request: web.Request) -> web.StreamResponse:
        job = state["jobs"].get(request.query.get("jobId", ""))
        if job is None:
            return xrpc_error(404, "NotFound", "Job not found")
        return web.json_response({"jobStatus": job_view(job)})

    pds_routes = [
        ("POST", "com.atproto.server.createSession", create_session),
        ("POST", "com.atproto.server.refreshSession", refresh_session),
        ("POST", "com.atproto.server.deleteSession", delete_session),
        ("GET", "com.atproto.server.getServiceAuth", get_service_auth),
        ("GET", "com.atproto.identity.resolveHandle", resolve_handle),
        ("POST", "com.atproto.repo.uploadBlob", upload_blob),
        ("POST", "com.atproto.repo.createRecord", create_record),
        ("POST", "com.atproto.repo.deleteRecord", delete_record),
        ("GET", "app.bsky.feed.getPosts", get_posts),
        ("GET", "app.bsky.actor.getProfile", get_profile),
    ]
    for host in ("bsky.social", PDS_HOST):
        for method, nsid, handler in pds_routes:
            app.router.add_route(method, f"/{host}/xrpc/{nsid}", _guard(handler))
    app.router.add_route("POST", f"/{VIDEO_HOST}/xrpc/app.bsky.video.uploadVideo", _guard(upload_video))
    app.router.add_route("GET", f"/{VIDEO_HOST}/xrpc/app.bsky.video.getJobStatus", _guard(get_job_status))

