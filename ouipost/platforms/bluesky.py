"""Bluesky: AT Protocol with an app password (shared/platforms.md section 9).

Flows:
- Connect: com.atproto.server.createSession at the entryway (bsky.social) with identifier + app
  password; every later call goes to the account's PDS from the session's DID document
  (metadata["pds_url"]). AccountAuth.access_token holds the accessJwt, refresh_token the refreshJwt.
- Refresh: refreshSession with the refreshJwt, which Bluesky rotates (store the new one). There is
  no OAuth here: authorization_url / exchange_code raise NotSupportedError.
- Post: text with facets (links, @mentions resolved with resolveHandle, #tags) on UTF-8 byte
  offsets; embeds: up to 4 images (uploadBlob, alt text, aspectRatio), or one video (service auth
  token -> video.bsky.app uploadVideo -> getJobStatus polling -> blob), or a link card
  (app.bsky.embed.external) when there is a link and no media. Then createRecord.
- Delete: deleteRecord by the rkey of the at:// URI. Insights: getPosts counts; stats: getProfile.
- Follow-ups: a thread part is the same post record with `reply = {root: {uri, cid}, parent: {uri,
  cid}}` (every part cites the first post as root and the previous part as parent); a first comment
  is the account's own reply with parent = root = the post. publish() and reply() put the record's
  `uri` (also the remote id) and `cid` in PublishResult.extra, so PostRef.of(result) is all a later
  part needs. Bluesky has no idempotency key: a lost createRecord answer is UnknownOutcomeError.

Link cards: Bluesky does not build them; the client fetches the page's OpenGraph tags. That fetch
goes straight to the linked site (not through the platform host rewriting), http(s) only, 5 s,
at most 1 MiB, and any failure just yields a card titled with the URL.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import quote, urljoin, urlsplit

import aiohttp

from ouipost.platforms.base import (
    AccountAuth,
    AccountStats,
    AuthorizationRequest,
    ConnectedIdentity,
    Insights,
    MediaFile,
    NotSupportedError,
    PermanentError,
    PlatformAdapter,
    PostRef,
    PublishRequest,
    PublishResult,
    RetryableError,
    TokenExpiredError,
    TokenSet,
    UnknownOutcomeError,
)
from ouipost.platforms.http import PlatformResponse

log = logging.getLogger(__name__)

ENTRYWAY = "https://bsky.social"
VIDEO_SERVICE = "https://video.bsky.app"
POST = "app.bsky.feed.post"
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 2_000_000
MAX_THUMB_BYTES = 1_000_000
TOKEN_ERRORS = {"ExpiredToken", "InvalidToken", "AuthMissing", "AuthenticationRequired"}
TOO_LARGE_ERRORS = {"BlobTooLarge", "PayloadTooLarge"}

URL_RE = re.compile(r"https?://[^\s<>\"']+")
MENTION_RE = re.compile(r"(?<![\w@/])@([a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)+)")
TAG_RE = re.compile(r"(?:^|(?<=\s))[#\uff03]([^\s#\uff03]+)")
TRAILING_PUNCT = ".,;:!?)]}'\"\u2026"


class BlueskyAdapter(PlatformAdapter):
    """Bluesky accounts on bsky.social or any PDS it delegates to."""

    network = "bluesky"
    default_scopes = ()
    supports_refresh = True

    video_poll_interval: float = 1.5
    media_poll_attributes: ClassVar[tuple[str, ...]] = ("video_poll_interval",)
    video_timeout: float = 300.0
    fetch_link_cards: bool = True
    card_fetch_timeout: float = 5.0
    rate_limit_wait: float = 60.0

    # Connect -----------------------------------------------------------------------------------

    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """Not available: Bluesky accounts connect with an identifier and an app password."""
        raise NotSupportedError("Bluesky connects with a handle and an app password, not OAuth",
                                network=self.network, code="oauth_not_supported")

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Not available: Bluesky accounts connect with an identifier and an app password."""
        raise NotSupportedError("Bluesky connects with a handle and an app password, not OAuth",
                                network=self.network, code="oauth_not_supported")

    async def login_with_password(self, identifier: str, password: str) -> ConnectedIdentity:
        """createSession with a handle/e-mail/DID and an app password; the profile fills the name.

        PermanentError for wrong credentials (AuthenticationRequired) or an account that needs an
        e-mail code (use an app password); RetryableError when rate limited (30 per 5 min).
        """
        resp = await self.http.request(
            "POST", f"{ENTRYWAY}/xrpc/com.atproto.server.createSession", network=self.network,
            json={"identifier": identifier.strip().lstrip("@"), "password": password}, idempotent=True,
        )
        if resp.status == 401 or _error_name(resp) in ("AuthenticationRequired", "AuthFactorTokenRequired"):
            name = _error_name(resp) or "AuthenticationRequired"
            hint = ("this account asks for an e-mail code: create an app password in Bluesky's settings"
                    if name == "AuthFactorTokenRequired" else "wrong identifier or app password")
            raise PermanentError(f"bluesky login refused: {hint}", network=self.network, code=name,
                                 status=resp.status)
        self._check(resp, what="createSession")
        session = resp.json()
        pds_url = _pds_from_did_doc(session.get("didDoc")) or ENTRYWAY
        tokens = _token_set(session)
        did, handle = str(session["did"]), str(session.get("handle") or "")
        auth = AccountAuth(remote_id=did, access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                           metadata={"pds_url": pds_url, "handle": handle})
        profile = await self._get(auth, "app.bsky.actor.getProfile", {"actor": did})
        return ConnectedIdentity(
            remote_id=did,
            type="profile",
            name=str(profile.get("displayName") or handle),
            username=handle or None,
            profile_image=profile.get("avatar"),
            token=tokens,
            permissions=["com.atproto.appPass"],
            metadata={"pds_url": pds_url, "handle": handle, "did": did},
        )

    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """refreshSession: a new accessJwt and a rotated refreshJwt (the old one dies at once).

        TokenExpiredError when the refreshJwt is expired or revoked: log in again.
        """
        if not auth.refresh_token:
            raise TokenExpiredError("no Bluesky refresh token stored; log in again", network=self.network)
        resp = await self.http.request(
            "POST", f"{self._pds(auth)}/xrpc/com.atproto.server.refreshSession", network=self.network,
            headers={"Authorization": f"Bearer {auth.refresh_token}"},
        )
        self._check(resp, what="refreshSession")
        return _token_set(resp.json())

    async def revoke(self, auth: AccountAuth) -> None:
        """deleteSession with the refreshJwt. Best effort: failures are logged."""
        if not auth.refresh_token:
            return
        try:
            resp = await self.http.request(
                "POST", f"{self._pds(auth)}/xrpc/com.atproto.server.deleteSession", network=self.network,
                headers={"Authorization": f"Bearer {auth.refresh_token}"},
            )
        except (RetryableError, UnknownOutcomeError) as exc:
            log.warning("bluesky deleteSession failed: %s", exc)
            return
        if not resp.ok:
            log.warning("bluesky deleteSession answered %s: %s", resp.status, resp.text[:200])

    # Content -----------------------------------------------------------------------------------

    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Create an app.bsky.feed.post with facets and the right embed.

        PermanentError for content Bluesky refuses (more than 4 images, images with a video, an
        image over 2 MB, text over 300 graphemes / 3,000 bytes, failed video processing);
        RetryableError when nothing was posted; UnknownOutcomeError when createRecord was sent
        but its answer was lost.
        """
        record = await self._post_record(auth, post)
        return await self._create_post(auth, record)

    async def reply(
        self, auth: AccountAuth, post: PublishRequest, *, parent: PostRef, root: PostRef
    ) -> PublishResult:
        """The next part of a thread: the same record as `publish` (facets, images, video, link card)
        with `reply = {root: {uri, cid}, parent: {uri, cid}}`.

        Bluesky has no idempotency key (`post.target_key` is not sent): a lost createRecord answer
        is an UnknownOutcomeError, as for a post. A parent or root that no longer exists is a
        PermanentError (InvalidRequest), like any refused record.
        """
        refs = {"root": await self._strong_ref(auth, root), "parent": await self._strong_ref(auth, parent)}
        record = await self._post_record(auth, post)
        record["reply"] = refs
        return await self._create_post(auth, record)

    async def comment(self, auth: AccountAuth, text: str, *, on: PostRef, key: str | None = None) -> PublishResult:
        """A first comment is the account's own reply to the post: parent = root = `on`."""
        return await self.reply(auth, PublishRequest(text=text, target_key=key), parent=on, root=on)

    async def _post_record(self, auth: AccountAuth, post: PublishRequest) -> dict[str, Any]:
        """The app.bsky.feed.post record for `post`: checks, facets, langs and the embed (the media
        are uploaded here, so nothing is created when one of them fails)."""
        images = [m for m in post.media if m.kind == "image"]
        videos = [m for m in post.media if m.kind == "video"]
        if images and videos:
            raise PermanentError("Bluesky posts hold images or one video, not both", network=self.network,
                                 code="mixed_media")
        if len(images) > MAX_IMAGES:
            raise PermanentError(f"Bluesky posts hold at most {MAX_IMAGES} images ({len(images)} given)",
                                 network=self.network, code="too_many_images")
        if len(videos) > 1:
            raise PermanentError("Bluesky posts hold one video", network=self.network, code="too_many_videos")
        for image in images:
            if image.size > MAX_IMAGE_BYTES:
                raise PermanentError(f"Bluesky images are limited to 2 MB; {image.filename} is {image.size} bytes",
                                     network=self.network, code="BlobTooLarge")
        if not post.text.strip() and not post.media:
            raise PermanentError("an empty Bluesky post needs an image or a video", network=self.network,
                                 code="empty_post")
        text = post.text
        facets, links = await self.detect_facets(auth, text)
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": _now_iso(self.clock.now())}
        if facets:
            record["facets"] = facets
        langs = post.options.get("langs")
        if langs:
            record["langs"] = list(langs)[:3]
        if images:
            record["embed"] = {"$type": "app.bsky.embed.images",
                               "images": [await self._image(auth, m) for m in images]}
        elif videos:
            record["embed"] = await self._video(auth, videos[0])
        elif post.link or links:
            record["embed"] = await self._link_card(auth, post.link or links[0])
        return record

    async def _create_post(self, auth: AccountAuth, record: dict[str, Any]) -> PublishResult:
        """createRecord; the result carries the record's uri and cid in `extra`, which is what a
        later reply must cite (PostRef.of(result) is enough)."""
        did = auth.remote_id
        resp = await self.http.request(
            "POST", f"{self._pds(auth)}/xrpc/com.atproto.repo.createRecord", network=self.network,
            headers=self._auth_headers(auth), json={"repo": did, "collection": POST, "record": record},
        )
        self._check(resp, what="createRecord")
        body = resp.json()
        uri = str(body["uri"])
        rkey = uri.rsplit("/", 1)[-1]
        handle = auth.metadata.get("handle") or did
        extra: dict[str, Any] = {"uri": uri, "cid": body.get("cid"), "rkey": rkey}
        if "reply" in record:
            extra["reply"] = {"root": record["reply"]["root"]["uri"], "parent": record["reply"]["parent"]["uri"]}
        return PublishResult(remote_id=uri, url=f"https://bsky.app/profile/{handle}/post/{rkey}", extra=extra)

    async def _strong_ref(self, auth: AccountAuth, ref: PostRef) -> dict[str, str]:
        """`{uri, cid}` of a published post. The cid comes from the PostRef; one that lacks it (a post
        published before the cid was kept) is looked up with getPosts, and a post the AppView does not
        know any more is a PermanentError."""
        uri = str(ref.extra.get("uri") or ref.remote_id)
        _split_at_uri(uri)
        cid = ref.extra.get("cid")
        if not cid:
            data = await self._get(auth, "app.bsky.feed.getPosts", {"uris": uri})
            found = [p for p in data.get("posts") or [] if p.get("uri") == uri]
            if not found or not found[0].get("cid"):
                raise PermanentError(f"bluesky post {uri} not found (deleted?): cannot reply to it",
                                     network=self.network, code="NotFound")
            cid = found[0]["cid"]
        return {"uri": uri, "cid": str(cid)}

    async def detect_facets(self, auth: AccountAuth, text: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Facets for links, resolvable @mentions and #tags, with UTF-8 byte offsets; and the links.

        Bluesky does not detect them itself. A handle that does not resolve stays plain text.
        """
        def byte_at(index: int) -> int:
            return len(text[:index].encode("utf-8"))

        facets: list[tuple[int, dict[str, Any]]] = []
        taken: list[tuple[int, int]] = []
        links: list[str] = []
        for match in URL_RE.finditer(text):
            url = match.group(0).rstrip(TRAILING_PUNCT)
            start, end = match.start(), match.start() + len(url)
            taken.append((start, end))
            links.append(url)
            facets.append((start, _facet(byte_at(start), byte_at(end),
                                         {"$type": "app.bsky.richtext.facet#link", "uri": url})))

        def free(start: int, end: int) -> bool:
            return all(end <= a or start >= b for a, b in taken)

        for match in MENTION_RE.finditer(text):
            handle = match.group(1).rstrip(".")
            start, end = match.start(), match.start() + 1 + len(handle)
            if not free(start, end):
                continue
            did = await self._resolve_handle(auth, handle)
            if did is None:
                continue
            taken.append((start, end))
            facets.append((start, _facet(byte_at(start), byte_at(end),
                                         {"$type": "app.bsky.richtext.facet#mention", "did": did})))
        for match in TAG_RE.finditer(text):
            tag = match.group(1).rstrip(TRAILING_PUNCT)
            start, end = match.start(), match.start(1) + len(tag)
            # Pure numbers ("#1") are not tags; Bluesky caps tags at 64 graphemes / 640 bytes.
            if not tag or tag.isdigit() or len(tag) > 64 or len(tag.encode()) > 640 or not free(start, end):
                continue
            taken.append((start, end))
            facets.append((start, _facet(byte_at(start), byte_at(end),
                                         {"$type": "app.bsky.richtext.facet#tag", "tag": tag})))
        facets.sort(key=lambda item: item[0])
        return [f for _, f in facets], links

    async def _resolve_handle(self, auth: AccountAuth, handle: str) -> str | None:
        resp = await self.http.request(
            "GET", f"{self._pds(auth)}/xrpc/com.atproto.identity.resolveHandle?handle={quote(handle)}",
            network=self.network,
        )
        if resp.status == 400:
            return None  # no such handle: the text stays as written
        self._check(resp, what="resolveHandle")
        did = resp.json().get("did")
        return str(did) if did else None

    async def _upload_blob(self, auth: AccountAuth, data: bytes, mime: str) -> dict[str, Any]:
        resp = await self.http.request(
            "POST", f"{self._pds(auth)}/xrpc/com.atproto.repo.uploadBlob", network=self.network,
            headers={**self._auth_headers(auth), "Content-Type": mime}, data=io.BytesIO(data),
            idempotent=True,  # an unreferenced blob is garbage-collected: re-sending is harmless
        )
        self._check(resp, what="uploadBlob")
        return dict(resp.json()["blob"])

    async def _image(self, auth: AccountAuth, media: MediaFile) -> dict[str, Any]:
        data = await media.read_all()
        blob = await self._upload_blob(auth, data, media.mime_type)
        image: dict[str, Any] = {"image": blob, "alt": media.alt_text or ""}
        size = (media.width, media.height) if media.width and media.height else image_size(data)
        if size:
            image["aspectRatio"] = {"width": size[0], "height": size[1]}
        return image

    async def _video(self, auth: AccountAuth, media: MediaFile) -> dict[str, Any]:
        """Upload through the video service and wait for its blob; nothing is posted before that."""
        pds = self._pds(auth)
        exp = int(self.clock.now().timestamp()) + 1800
        service = await self._get(auth, "com.atproto.server.getServiceAuth", {
            "aud": f"did:web:{urlsplit(pds).hostname}", "lxm": "com.atproto.repo.uploadBlob", "exp": str(exp)})
        data = await media.read_all()
        name = quote(media.filename or "video.mp4")
        try:
            resp = await self.http.request(
                "POST", f"{VIDEO_SERVICE}/xrpc/app.bsky.video.uploadVideo?did={quote(auth.remote_id)}&name={name}",
                network=self.network, data=io.BytesIO(data),
                headers={"Authorization": f"Bearer {service['token']}", "Content-Type": "video/mp4"},
            )
        except UnknownOutcomeError as exc:
            raise RetryableError("bluesky video upload was lost; no post was created", network=self.network) from exc
        body = resp.json()
        job = body.get("jobStatus") if isinstance(body.get("jobStatus"), dict) else body
        if not resp.ok and not (resp.status == 409 and job.get("jobId")):
            self._check(resp, what="uploadVideo")
        job_id = job.get("jobId")
        if not job_id:
            raise RetryableError("bluesky video service gave no job id", network=self.network, status=resp.status)
        blob = await self._await_video_job(str(job_id))
        embed: dict[str, Any] = {"$type": "app.bsky.embed.video", "video": blob}
        if media.alt_text:
            embed["alt"] = media.alt_text
        if media.width and media.height:
            embed["aspectRatio"] = {"width": media.width, "height": media.height}
        return embed

    async def _await_video_job(self, job_id: str) -> dict[str, Any]:
        deadline = self.clock.monotonic() + self.video_timeout
        while True:
            resp = await self.http.request(
                "GET", f"{VIDEO_SERVICE}/xrpc/app.bsky.video.getJobStatus?jobId={quote(job_id)}",
                network=self.network,
            )
            self._check(resp, what="getJobStatus")
            status = resp.json().get("jobStatus") or {}
            state = status.get("state")
            if state == "JOB_STATE_COMPLETED" and status.get("blob"):
                return dict(status["blob"])
            if state == "JOB_STATE_FAILED":
                code = str(status.get("failureCode") or status.get("error") or "generic_failure")
                message = status.get("message") or status.get("error") or code
                if code == "pds_upload_failure":
                    raise RetryableError(f"bluesky video processing failed: {message}", network=self.network,
                                         code=code)
                raise PermanentError(f"bluesky refused the video: {message}", network=self.network, code=code)
            if self.clock.monotonic() >= deadline:
                raise RetryableError(f"bluesky video job {job_id} still {state}; no post was created",
                                     network=self.network, code="video_processing_timeout")
            await self.clock.sleep(self.video_poll_interval)

    async def _link_card(self, auth: AccountAuth, url: str) -> dict[str, Any]:
        external: dict[str, Any] = {"uri": url, "title": url, "description": ""}
        if self.fetch_link_cards:
            meta = await self._fetch_og(url)
            external["title"] = meta.get("og:title") or meta.get("title") or url
            external["description"] = meta.get("og:description") or meta.get("description") or ""
            image_url = meta.get("og:image")
            if image_url:
                thumb = await self._fetch_bytes(urljoin(url, image_url), MAX_THUMB_BYTES)
                if thumb is not None and image_size(thumb[0]) is not None:
                    external["thumb"] = await self._upload_blob(auth, thumb[0], thumb[1])
        return {"$type": "app.bsky.embed.external", "external": external}

    async def _fetch_og(self, url: str) -> dict[str, str]:
        fetched = await self._fetch_bytes(url, 1 << 20)
        if fetched is None or "html" not in fetched[1]:
            return {}
        parser = _MetaParser()
        try:
            parser.feed(fetched[0].decode("utf-8", "replace"))
        except AssertionError:  # HTMLParser on badly broken markup
            pass
        return parser.meta

    async def _fetch_bytes(self, url: str, limit: int) -> tuple[bytes, str] | None:
        """GET a public page/image for a link card; None on any failure (cards are optional)."""
        if urlsplit(url).scheme not in ("http", "https"):
            return None
        try:
            async with self.http.session.get(
                url, timeout=aiohttp.ClientTimeout(total=self.card_fetch_timeout), max_redirects=3,
                headers={"User-Agent": "OuiPost link preview"},
            ) as resp:
                if resp.status != 200:
                    return None
                data = await resp.content.read(limit + 1)
                if len(data) > limit:
                    return None
                return data, resp.content_type or ""
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("link card fetch of %s failed: %s", url, exc)
            return None

    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """deleteRecord by the at:// URI's rkey (idempotent on Bluesky's side)."""
        repo, collection, rkey = _split_at_uri(remote_id)
        resp = await self.http.request(
            "POST", f"{self._pds(auth)}/xrpc/com.atproto.repo.deleteRecord", network=self.network,
            headers=self._auth_headers(auth), json={"repo": repo, "collection": collection, "rkey": rkey},
            idempotent=True,
        )
        self._check(resp, what="deleteRecord")

    # Insights ----------------------------------------------------------------------------------

    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """Likes, reposts, replies, quotes and bookmarks from app.bsky.feed.getPosts.

        Bluesky has no impressions, reach or clicks; engagement is the sum of the counts.
        PermanentError when the post no longer exists.
        """
        data = await self._get(auth, "app.bsky.feed.getPosts", {"uris": remote_id})
        posts = [p for p in data.get("posts") or [] if p.get("uri") == remote_id]
        if not posts:
            raise PermanentError(f"bluesky post {remote_id} not found (deleted?)", network=self.network,
                                 code="NotFound")
        view = posts[0]
        names = ("likeCount", "repostCount", "replyCount", "quoteCount", "bookmarkCount")
        metrics = {k: float(view.get(k) or 0) for k in names}
        return Insights(metrics=metrics, impressions=0, reach=0, engagement=int(sum(metrics.values())), clicks=0)

    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """followersCount, followsCount and postsCount from app.bsky.actor.getProfile."""
        profile = await self._get(auth, "app.bsky.actor.getProfile", {"actor": auth.remote_id})
        return AccountStats(followers=int(profile.get("followersCount") or 0),
                            following=int(profile.get("followsCount") or 0),
                            posts_total=int(profile.get("postsCount") or 0))

    # Plumbing ----------------------------------------------------------------------------------

    def _pds(self, auth: AccountAuth) -> str:
        return str((auth.metadata or {}).get("pds_url") or ENTRYWAY).rstrip("/")

    @staticmethod
    def _auth_headers(auth: AccountAuth) -> dict[str, str]:
        return {"Authorization": f"Bearer {auth.access_token}"}

    async def _get(self, auth: AccountAuth, nsid: str, params: dict[str, str]) -> dict[str, Any]:
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        resp = await self.http.request("GET", f"{self._pds(auth)}/xrpc/{nsid}?{query}", network=self.network,
                                       headers=self._auth_headers(auth))
        self._check(resp, what=nsid)
        body = resp.json()
        return body if isinstance(body, dict) else {}

    def _check(self, resp: PlatformResponse, *, what: str) -> None:
        """Raise the outcome of an XRPC error answer (platforms.md "Errors"); pass on success."""
        if resp.ok:
            return
        name = _error_name(resp)
        body = resp.json()
        detail = body.get("message") if isinstance(body, dict) else None
        message = f"bluesky {what}: {resp.status} {name or ''}: {detail or resp.text[:200]}"
        kw: dict[str, Any] = {"network": self.network, "code": name or None, "status": resp.status}
        if resp.status == 429 or name == "RateLimitExceeded":
            raise RetryableError(message, retry_after=self._retry_after(resp), **kw)
        if name in TOKEN_ERRORS or resp.status == 401:
            raise TokenExpiredError(message, **kw)
        if resp.status >= 500 or name == "UpstreamFailure":
            raise RetryableError(message, **kw)
        if resp.status == 413 or name in TOO_LARGE_ERRORS:
            raise PermanentError(message, **{**kw, "code": name or "BlobTooLarge"})
        raise PermanentError(message, **kw)

    def _retry_after(self, resp: PlatformResponse) -> float:
        reset = resp.headers.get("RateLimit-Reset", "")
        if reset.isdigit():
            return max(1.0, float(reset) - self.clock.now().timestamp())
        retry = resp.headers.get("Retry-After", "")
        return float(retry) if retry.isdigit() else self.rate_limit_wait


# ---------------------------------------------------------------------------------------------
# Helpers


def _facet(start: int, end: int, feature: dict[str, Any]) -> dict[str, Any]:
    return {"index": {"byteStart": start, "byteEnd": end}, "features": [feature]}


def _error_name(resp: PlatformResponse) -> str:
    body = resp.json()
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def _now_iso(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _jwt_exp(token: str) -> datetime | None:
    """The `exp` of a JWT, read without verifying (only the PDS can verify; we only plan ahead)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def _token_set(session: dict[str, Any]) -> TokenSet:
    access, refresh = str(session["accessJwt"]), str(session["refreshJwt"])
    return TokenSet(access_token=access, refresh_token=refresh, expires_at=_jwt_exp(access),
                    refresh_expires_at=_jwt_exp(refresh), scopes=["com.atproto.appPass"])


def _pds_from_did_doc(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    for service in doc.get("service") or []:
        if isinstance(service, dict) and str(service.get("id", "")).endswith("#atproto_pds"):
            endpoint = service.get("serviceEndpoint")
            if isinstance(endpoint, str) and endpoint.startswith("https://"):
                return endpoint.rstrip("/")
    return None


def _split_at_uri(uri: str) -> tuple[str, str, str]:
    match = re.fullmatch(r"at://([^/]+)/([^/]+)/([^/]+)", uri)
    if match is None:
        raise PermanentError(f"not a Bluesky post URI: {uri}", network="bluesky", code="invalid_uri")
    return match.group(1), match.group(2), match.group(3)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG, PNG or GIF from its header, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 9 < len(data):
            if data[pos] != 0xFF:
                pos += 1
                continue
            marker = data[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                pos += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
                return width, height
            pos += 2 + length
    return None


class _MetaParser(HTMLParser):
    """Collects <meta property|name=... content=...> and <title> for link cards."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta":
            key = values.get("property") or values.get("name")
            if key and values.get("content") and key.lower() not in self.meta:
                self.meta[key.lower()] = str(values["content"]).strip()
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and data.strip() and "title" not in self.meta:
            self.meta["title"] = data.strip()
